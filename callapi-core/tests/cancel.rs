//! Withdrawing a call: the caller's `cancel()` stops the callee's ringing (even when nothing
//! rang at the caller yet, through a user-addressed cancel), and only the caller may cancel.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{CallEvent as E, CallState, Command, MediaCommand, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::{SimMedia, SimWorld};
use callapi_signal_mock::FaultPlan;
use common::*;

fn cancels(w: &SimWorld, d: usize) -> Vec<callapi_core::protocol::Envelope> {
    let mut seen = std::collections::HashSet::new();
    sent_without_acks(w, d)
        .into_iter()
        .filter(|e| matches!(e.body, Body::Cancel { .. }) && seen.insert(e.id))
        .collect()
}

#[test]
fn caller_cancels_while_ringing_and_the_callee_stops() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    let call_id = current_call_id(&w, a);
    w.command(
        a,
        Command::Cancel {
            reason: Some("wrong number".into()),
        },
    )
    .unwrap();
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    w.run_for(Duration::from_secs(1));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::LocalCancelled]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCancelled]);
    // The callee stopped 10 ms (one network delay) after the cancel.
    assert_eq!(
        time_of(&w, b, Prepared, R::RemoteCancelled),
        Duration::from_millis(1010)
    );
    for d in [a, b] {
        assert_eq!(
            last_change(&w, d).event_reason.as_deref(),
            Some("wrong number")
        );
        assert_eq!(
            event_infos(&w, d).pop().unwrap().reason.as_deref(),
            Some("wrong number")
        );
        assert!(matches!(
            w.device(d).media_commands.last(),
            Some(MediaCommand::Leave { call_id: c }) if *c == call_id
        ));
    }
    // The ringing device is known: the cancel goes to it, not to every device of bob.
    let sent = cancels(&w, a);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to.as_str(), "bob");
    assert_eq!(sent[0].to_device.as_ref().unwrap().as_str(), "b1");
    assert_eq!(
        sent[0].body,
        Body::Cancel {
            reason: Some("wrong number".into()),
            timeout: false,
            elsewhere: None,
            seq: None
        }
    );
    assert_eq!(sent_kinds(&w, a), vec!["invite", "cancel"]);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    assert_eq!(w.device(a).machine.pending_messages(), 0);
}

#[test]
fn cancel_right_after_call_is_user_addressed_and_still_stops_the_callee() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.command(a, Command::Cancel { reason: None }).unwrap();
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    assert_eq!(call_events(&w, a), vec![E::OnCalling, E::LocalCancelled]);
    // The invite and the cancel arrive together; the cancel ends the ringing at once.
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCancelled]);
    assert_eq!(w.device(b).machine.state(), Prepared);
    let first = &cancels(&w, a)[0];
    assert_eq!(
        first.to_device, None,
        "nothing rang yet: cancel goes to the user"
    );
}

#[test]
fn cancel_before_ringing_reached_the_caller_stops_a_slow_callee() {
    // Every message takes 2 s: the invite reaches bob at 2 s, his ringing would reach alice at
    // 4 s, but alice cancels at 1 s, before she knows of any ringing device.
    let plan = FaultPlan::default().with_delay(Duration::from_secs(2), Duration::from_secs(2));
    let (mut w, a, b) = two_party_on(3, plan, Some(SimMedia::default()));
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b), vec![]);
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_millis(1500));
    // At 2.5 s bob rings (for the cancelled call; the cancel is still on its way).
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    assert_eq!(call_events(&w, a), vec![E::OnCalling, E::LocalCancelled]);
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCancelled]);
    // The user-addressed cancel sent at 1 s arrived at 3 s.
    assert_eq!(
        time_of(&w, b, Prepared, R::RemoteCancelled),
        Duration::from_secs(3)
    );
    let sent = cancels(&w, a);
    assert_eq!(sent[0].to_device, None);
    assert_eq!(sent[0].to.as_str(), "bob");
    // Bob's late ringing (arriving at 4 s) was answered with a device-addressed cancel.
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert_eq!(sent[1].to_device.as_ref().unwrap().as_str(), "b1");
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
}

#[test]
fn a_cancel_that_overtakes_its_invite_keeps_the_invite_from_ringing() {
    let (mut w, a, b) = two_party();
    // Bob's link is down and the network keeps nothing for him.
    w.net.set_store_offline(false);
    w.set_online(b, false);
    w.call(a, "bob", CallType::Video).unwrap();
    let invite = w.device(a).sent[0].clone();
    assert!(matches!(invite.body, Body::Invite { .. }));
    w.run_for(Duration::from_millis(200));
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_millis(100));
    // Bob comes back: the cancel's next retransmission reaches him first, the invite later.
    w.set_online(b, true);
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b), vec![]);
    let invite_id = invite.id;
    let now = w.now();
    w.net.send(invite, now);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    // The invite did arrive (bob acknowledged it) but found the cancel's tombstone.
    assert!(w
        .device(b)
        .sent
        .iter()
        .any(|e| e.body == Body::Ack { ack_id: invite_id }));

    assert_eq!(states(&w, b), vec![], "the invite must never ring");
    assert_eq!(call_events(&w, b), vec![]);
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    assert_eq!(call_events(&w, a), vec![E::OnCalling, E::LocalCancelled]);
}

#[test]
fn caller_may_cancel_while_connecting() {
    // Accepted, but no first frame yet: the caller is Connecting and may still withdraw.
    let media = SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    };
    let (mut w, a, b) = two_party_with(Some(media));
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connecting);
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Prepared, R::LocalCancelled)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(
        call_events(&w, a),
        vec![
            E::OnCalling,
            E::RemoteUserRecvCall,
            E::RemoteAccepted,
            E::LocalCancelled
        ]
    );
    assert_eq!(
        call_events(&w, b),
        vec![E::LocalAccepted, E::RemoteCancelled]
    );
}

fn assert_cancel_refused(w: &mut SimWorld, d: usize, state: CallState) {
    let notes = w.device(d).notifications.len();
    let sent = w.device(d).sent.len();
    let err = w.command(d, Command::Cancel { reason: None }).unwrap_err();
    assert_eq!(
        err,
        CommandError::InvalidState {
            action: "cancel",
            state
        }
    );
    assert_eq!(w.device(d).notifications.len(), notes);
    assert_eq!(w.device(d).sent.len(), sent);
    assert_eq!(w.device(d).machine.state(), state);
}

#[test]
fn cancel_by_the_callee_is_an_error_and_the_call_rings_on() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_cancel_refused(&mut w, b, Calling);
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(call_events(&w, b), vec![]);
}

#[test]
fn cancel_without_a_call_or_after_connecting_is_an_error() {
    let (mut w, a, b) = two_party();
    assert_cancel_refused(&mut w, a, Prepared);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    // Connected: hang up, do not cancel.
    assert_cancel_refused(&mut w, a, Connected);
    assert_cancel_refused(&mut w, b, Connected);
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
}
