//! Invitation lifetime: an invite delivered after its lifetime (sent longer ago than the call
//! timeout) never rings and is reported as `InviteExpired`; the caller, who never heard of a
//! device, ends `MessageFailed`. An invite kept for an offline device rings when the device
//! comes back within the lifetime.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{codes, CallErrorEvent, CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::SimMedia;
use callapi_signal_mock::FaultPlan;
use common::*;

/// The caller's side of a call whose invite was never acknowledged: `MessageFailed` exactly at
/// the 15 s timeout, with a `SendMessageFail` error, and a user-addressed timeout cancel.
fn assert_caller_message_failed(w: &callapi_signal_mock::world::SimWorld, a: usize) {
    assert_eq!(
        states(w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::MessageFailed)]
    );
    assert_eq!(
        time_of(w, a, Prepared, R::MessageFailed),
        Duration::from_secs(15)
    );
    assert_eq!(call_events(w, a), vec![E::OnCalling, E::MessageFailed]);
    let errs = errors(w, a);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].event, CallErrorEvent::SendMessageFail);
    assert_eq!(errs[0].code, codes::MESSAGE_UNDELIVERED);
    let cancels: Vec<_> = sent_without_acks(w, a)
        .into_iter()
        .filter(|e| matches!(e.body, Body::Cancel { .. }))
        .collect();
    assert!(!cancels.is_empty());
    assert_eq!(cancels[0].to_device, None);
    assert!(matches!(
        cancels[0].body,
        Body::Cancel { timeout: true, .. }
    ));
}

#[test]
fn invite_delivered_after_its_lifetime_by_a_slow_network_never_rings() {
    // Every message takes 20 s: longer than the 15 s invitation lifetime.
    let plan = FaultPlan::default().with_delay(Duration::from_secs(20), Duration::from_secs(20));
    let (mut w, a, b) = two_party_on(9, plan, Some(SimMedia::default()));
    w.call(a, "bob", CallType::Video).unwrap();
    let call_id = current_call_id(&w, a);
    w.run_for(Duration::from_secs(19));
    assert_caller_message_failed(&w, a);
    assert_eq!(states(&w, b), vec![]);

    assert!(w.run_until_quiet(Duration::from_secs(300)));
    // The invite (and its retransmissions) arrived from 20 s on, expired: no ringing, one event.
    assert_eq!(states(&w, b), vec![], "an expired invite must never ring");
    assert_eq!(w.device(b).machine.state(), Prepared);
    assert_eq!(call_events(&w, b), vec![E::InviteExpired]);
    let ev = event_infos(&w, b).pop().unwrap();
    assert_eq!(ev.call_id, Some(call_id));
    assert!(w.device(b).media_commands.is_empty(), "no early media");
    assert!(
        !sent_kinds(&w, b).contains(&"ringing"),
        "{:?}",
        sent_kinds(&w, b)
    );
    // The caller's side is unchanged by the late acks.
    assert_caller_message_failed(&w, a);
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
}

#[test]
fn invite_for_a_device_offline_past_the_lifetime_never_rings() {
    let (mut w, a, b) = two_party();
    w.set_online(b, false);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(16));
    assert_caller_message_failed(&w, a);
    w.set_online(b, true);
    assert!(w.run_until_quiet(Duration::from_secs(300)));

    // The network dropped the stored invite copies when their lifetime ended; only the caller's
    // cancel reaches bob, for a call he never saw.
    assert!(w.net.stats().expired_offline > 0);
    assert_eq!(states(&w, b), vec![]);
    assert_eq!(call_events(&w, b), vec![]);
    assert!(w.device(b).media_commands.is_empty());
    assert_caller_message_failed(&w, a);
}

#[test]
fn stale_invite_redelivered_after_its_lifetime_is_dropped_with_invite_expired() {
    // A server that does not check lifetimes hands bob the invite 16 s late: bob's machine
    // checks it.
    let (mut w, a, b) = two_party();
    w.net.set_store_offline(false);
    w.set_online(b, false);
    w.call(a, "bob", CallType::Video).unwrap();
    let invite = w.device(a).sent[0].clone();
    let call_id = invite.call_id;
    w.run_for(Duration::from_secs(16));
    w.set_online(b, true);
    let now = w.now();
    w.net.send(invite, now);
    assert!(w.run_until_quiet(Duration::from_secs(300)));

    assert_eq!(states(&w, b), vec![]);
    assert_eq!(call_events(&w, b), vec![E::InviteExpired]);
    assert_eq!(event_infos(&w, b)[0].call_id, Some(call_id));
    assert_caller_message_failed(&w, a);
}

#[test]
fn invite_kept_for_an_offline_device_rings_when_it_comes_back_within_the_lifetime() {
    let (mut w, a, b) = two_party();
    w.set_online(b, false);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(5));
    assert_eq!(states(&w, b), vec![]);
    assert_eq!(call_events(&w, a), vec![E::OnCalling]);

    w.set_online(b, true);
    w.run_for(Duration::from_secs(1));
    // One ring, although the caller retransmitted the invite while bob was away.
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(
        time_of(&w, b, Calling, R::RemoteVideoCall),
        Duration::from_millis(5010)
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall]
    );
    assert_eq!(
        w.device(a)
            .machine
            .call_timings()
            .unwrap()
            .remote_user_recv_call,
        Some(Duration::from_millis(5020))
    );

    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
}

#[test]
fn invite_kept_for_an_offline_device_rings_only_for_the_rest_of_its_lifetime() {
    let (mut w, a, b) = two_party();
    w.set_online(b, false);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(10));
    w.set_online(b, true);
    assert!(w.run_until_quiet(Duration::from_secs(300)));

    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCallingTimeout]);
    // Rang at 10.01 s, stopped when the invitation's lifetime ended (15 s), not 15 s later.
    assert_eq!(
        time_of(&w, b, Calling, R::RemoteVideoCall),
        Duration::from_millis(10_010)
    );
    let stopped = time_of(&w, b, Prepared, R::RemoteCallingTimeout);
    assert!(
        stopped >= Duration::from_secs(15) && stopped <= Duration::from_millis(15_010),
        "{stopped:?}"
    );
    // The caller heard the ringing, so its end is an ordinary timeout.
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::CallingTimeout)]
    );
    assert_eq!(
        time_of(&w, a, Prepared, R::CallingTimeout),
        Duration::from_secs(15)
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::CallingTimeout]
    );
}

#[test]
fn invite_arriving_just_inside_its_lifetime_rings_until_the_lifetime_ends() {
    // 14 s one way: the invite is 1 s short of its lifetime on arrival; nothing reaches the
    // caller before its timeout.
    let plan = FaultPlan::default().with_delay(Duration::from_secs(14), Duration::from_secs(14));
    let (mut w, a, b) = two_party_on(9, plan, Some(SimMedia::default()));
    w.call(a, "bob", CallType::Video).unwrap();
    assert!(w.run_until_quiet(Duration::from_secs(300)));

    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert_eq!(
        time_of(&w, b, Calling, R::RemoteVideoCall),
        Duration::from_secs(14)
    );
    assert_eq!(
        time_of(&w, b, Prepared, R::RemoteCallingTimeout),
        Duration::from_secs(15)
    );
    // Bob's `ringing` (lifetime: what was left of the invite's) went unacknowledged too; its
    // expiry is the ringing's end, reported once as the timeout, not as a failed message.
    assert_eq!(call_events(&w, b), vec![E::RemoteCallingTimeout]);
    assert!(errors(&w, b).is_empty());
    assert_caller_message_failed(&w, a);
}
