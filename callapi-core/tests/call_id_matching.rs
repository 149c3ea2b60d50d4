//! Every received message is matched on call id and sender: messages of an earlier call, of an
//! unknown call, or from someone who is not the peer leave the current call alone; a late
//! `accept` for a call that ended is answered so the late device stops too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallId, CallType, DeviceId, Envelope, MessageId, UserId};
use callapi_signal_mock::world::SimWorld;
use callapi_signal_mock::FaultPlan;
use common::*;

/// The first envelope of `kind` device `d` sent for `call`.
fn sent_of(w: &SimWorld, d: usize, call: CallId, kind: &str) -> Envelope {
    w.device(d)
        .sent
        .iter()
        .find(|e| e.call_id == call && e.body.kind() == kind)
        .unwrap_or_else(|| panic!("device {d} sent no {kind} for {call}"))
        .clone()
}

/// Puts a copy of `env` on the network now, as a fresh message (new id, current timestamp).
/// Returns the new id.
fn replay(w: &mut SimWorld, mut env: Envelope) -> MessageId {
    env.id = MessageId::new_v4();
    env.ts = w.net.unix_ms(w.now());
    let id = env.id;
    let now = w.now();
    w.net.send(env, now);
    id
}

/// Checks that every injected message reached its device (which acknowledged it), so the
/// test is not passing because a message got lost.
fn assert_delivered(w: &SimWorld, ids: &[MessageId]) {
    for id in ids {
        let acked = w
            .devices
            .iter()
            .any(|d| d.sent.iter().any(|e| e.body == Body::Ack { ack_id: *id }));
        assert!(acked, "injected message {id} was never delivered");
    }
}

fn connect(w: &mut SimWorld, a: usize, b: usize) -> CallId {
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
    current_call_id(w, a)
}

const CONNECTED_A: [(callapi_core::call::CallState, R); 3] = [
    (Calling, R::LocalVideoCall),
    (Connecting, R::RemoteAccepted),
    (Connected, R::RecvRemoteFirstFrame),
];
const CONNECTED_B: [(callapi_core::call::CallState, R); 3] = [
    (Calling, R::RemoteVideoCall),
    (Connecting, R::LocalAccepted),
    (Connected, R::RecvRemoteFirstFrame),
];

#[test]
fn stale_messages_of_an_earlier_call_leave_the_current_call_alone() {
    let mut injected = Vec::new();
    let (mut w, a, b) = two_party();
    // Call 1: connected, then alice hangs up.
    let call1 = connect(&mut w, a, b);
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    let old_hangup = sent_of(&w, a, call1, "hangup");
    let old_accept = sent_of(&w, b, call1, "accept");
    let old_ringing = sent_of(&w, b, call1, "ringing");
    let mut old_cancel = old_hangup.clone();
    old_cancel.body = Body::Cancel {
        reason: None,
        timeout: false,
        elsewhere: None,
        seq: None,
    };
    let a_states_1 = states(&w, a).len();
    let b_states_1 = states(&w, b).len();
    let a_events_1 = call_events(&w, a).len();
    let b_events_1 = call_events(&w, b).len();

    // Call 2 rings: an old accept must not connect alice, an old cancel must not stop bob.
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    let call2 = current_call_id(&w, a);
    assert_ne!(call1, call2);
    injected.push(replay(&mut w, old_accept.clone()));
    injected.push(replay(&mut w, old_ringing));
    injected.push(replay(&mut w, old_cancel.clone()));
    injected.push(replay(&mut w, old_hangup.clone()));
    w.run_for(Duration::from_secs(2));
    assert_eq!(states(&w, a)[a_states_1..], [(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b)[b_states_1..], [(Calling, R::RemoteVideoCall)]);
    assert_eq!(
        call_events(&w, a)[a_events_1..],
        [E::OnCalling, E::RemoteUserRecvCall]
    );
    assert_eq!(call_events(&w, b)[b_events_1..], []);
    assert_eq!(current_call_id(&w, b), call2);

    // Call 2 connects: old hangups and cancels must not end it.
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    injected.push(replay(&mut w, old_hangup));
    injected.push(replay(&mut w, old_cancel));
    let mut old_hangup_from_b = old_accept.clone();
    old_hangup_from_b.body = Body::Hangup { reason: None };
    injected.push(replay(&mut w, old_hangup_from_b));
    injected.push(replay(&mut w, old_accept));
    w.run_for(Duration::from_secs(2));
    assert_eq!(states(&w, a)[a_states_1..], CONNECTED_A);
    assert_eq!(states(&w, b)[b_states_1..], CONNECTED_B);
    assert_eq!(
        call_events(&w, a)[a_events_1..],
        [E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b)[b_events_1..], [E::LocalAccepted]);

    // And call 2 still ends normally.
    w.command(b, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::RemoteHangup)));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::LocalHangup)));
    assert_delivered(&w, &injected);
}

#[test]
fn messages_for_an_unknown_call_are_ignored() {
    let mut injected = Vec::new();
    let (mut w, a, b) = two_party();
    let call = connect(&mut w, a, b);
    let mut stray = sent_of(&w, a, call, "invite");
    stray.call_id = CallId::new_v4();
    for body in [
        Body::Hangup { reason: None },
        Body::Accept {
            group: false,
            seq: None,
        },
        Body::Confirm { members: None },
        Body::Reject {
            reason: None,
            busy: false,
            seq: None,
        },
        Body::Message { data: "x".into() },
        Body::Dtmf { digits: "1".into() },
    ] {
        let mut env = stray.clone();
        env.body = body;
        injected.push(replay(&mut w, env.clone()));
        // The same from bob to alice.
        std::mem::swap(&mut env.from, &mut env.to);
        env.from_device = DeviceId::new("b1").unwrap();
        injected.push(replay(&mut w, env));
    }
    w.run_for(Duration::from_secs(2));
    assert_eq!(states(&w, a), CONNECTED_A);
    assert_eq!(states(&w, b), CONNECTED_B);
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
    let received = w.device(b).notifications.iter().any(|(_, n)| {
        matches!(
            n,
            callapi_core::call::Notification::MessageReceived { .. }
                | callapi_core::call::Notification::DtmfReceived { .. }
        )
    });
    assert!(!received);
    assert_delivered(&w, &injected);
}

#[test]
fn the_right_call_id_from_the_wrong_user_is_ignored() {
    let mut injected = Vec::new();
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    let call = current_call_id(&w, a);
    let carol = UserId::new("carol").unwrap();
    let c1 = DeviceId::new("c1").unwrap();

    // Carol (who knows the call id) tries to answer alice's call and to cancel bob's ringing.
    let mut fake_accept = sent_of(&w, b, call, "ringing");
    fake_accept.from = carol.clone();
    fake_accept.from_device = c1.clone();
    fake_accept.body = Body::Accept {
        group: false,
        seq: None,
    };
    injected.push(replay(&mut w, fake_accept));
    let mut fake_cancel = sent_of(&w, a, call, "invite");
    fake_cancel.from = carol.clone();
    fake_cancel.from_device = c1.clone();
    fake_cancel.body = Body::Cancel {
        reason: None,
        timeout: false,
        elsewhere: None,
        seq: None,
    };
    injected.push(replay(&mut w, fake_cancel.clone()));
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(call_events(&w, b), vec![]);

    // Connected: carol's hangups do not end the call on either side; neither do her messages.
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    for (to, body) in [
        ("alice", Body::Hangup { reason: None }),
        ("bob", Body::Hangup { reason: None }),
        ("bob", Body::Message { data: "hi".into() }),
        ("alice", Body::Dtmf { digits: "1".into() }),
    ] {
        let mut env = fake_cancel.clone();
        env.to = UserId::new(to).unwrap();
        env.to_device = None;
        env.body = body;
        injected.push(replay(&mut w, env));
    }
    // And a second device of alice, which is not the one in the call, cannot hang up bob's.
    let mut other_device = fake_cancel.clone();
    other_device.from = UserId::new("alice").unwrap();
    other_device.from_device = DeviceId::new("a2").unwrap();
    other_device.body = Body::Hangup { reason: None };
    injected.push(replay(&mut w, other_device));
    w.run_for(Duration::from_secs(2));
    assert_eq!(states(&w, a), CONNECTED_A);
    assert_eq!(states(&w, b), CONNECTED_B);
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
    for d in [a, b] {
        assert!(!w.device(d).notifications.iter().any(|(_, n)| matches!(
            n,
            callapi_core::call::Notification::MessageReceived { .. }
                | callapi_core::call::Notification::DtmfReceived { .. }
        )));
    }
    assert_delivered(&w, &injected);
}

#[test]
fn a_late_accept_for_a_cancelled_call_is_answered_with_a_cancel() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    let call = current_call_id(&w, a);
    // Alice cancels; the first copy of her cancel is lost on the way.
    let clean = w.net.plan().clone();
    w.net.set_plan(FaultPlan {
        drop_rate: 1.0,
        ..clean.clone()
    });
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.net.set_plan(clean);
    // Bob, still ringing, answers 100 ms later (before the cancel's retransmission at 500 ms).
    w.run_for(Duration::from_millis(100));
    w.command(b, Command::Accept).unwrap();
    assert_eq!(w.device(b).machine.state(), Connecting);
    w.run_for(Duration::from_millis(100));

    // Alice answered the late accept at once: bob stopped 20 ms after accepting.
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(
        time_of(&w, b, Prepared, R::RemoteCancelled),
        Duration::from_millis(1120)
    );
    assert_eq!(
        call_events(&w, b),
        vec![E::LocalAccepted, E::RemoteCancelled]
    );
    let cancels: Vec<_> = sent_without_acks(&w, a)
        .into_iter()
        .filter(|e| matches!(e.body, Body::Cancel { .. }))
        .collect();
    assert_eq!(
        cancels.len(),
        2,
        "the cancel and the answer to the late accept"
    );
    assert_ne!(cancels[0].id, cancels[1].id);
    assert_eq!(cancels[1].call_id, call);
    assert_eq!(cancels[1].to_device.as_ref().unwrap().as_str(), "b1");

    // Alice's own call is unaffected by the late accept.
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::LocalCancelled]
    );
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::RemoteCancelled)));
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
}

#[test]
fn a_late_accept_after_a_timeout_is_answered_with_a_timeout_cancel() {
    let mut injected = Vec::new();
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    let call = current_call_id(&w, a);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::CallingTimeout)));
    assert_eq!(
        states(&w, b).last(),
        Some(&(Prepared, R::RemoteCallingTimeout))
    );
    let before = sent_without_acks(&w, a).len();
    // An accept of bob's for the timed-out call turns up (a server replaying it, say).
    let mut late = sent_of(&w, b, call, "ringing");
    late.body = Body::Accept {
        group: false,
        seq: None,
    };
    injected.push(replay(&mut w, late));
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    let answers = &sent_without_acks(&w, a)[before..];
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].call_id, call);
    assert_eq!(answers[0].to_device.as_ref().unwrap().as_str(), "b1");
    assert_eq!(
        answers[0].body,
        Body::Cancel {
            reason: None,
            timeout: true,
            elsewhere: None,
            seq: None
        }
    );
    // Nobody's state moved.
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::CallingTimeout)]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert_delivered(&w, &injected);
}

#[test]
fn a_late_accept_from_the_answering_device_after_hangup_is_answered_with_a_hangup() {
    let mut injected = Vec::new();
    let (mut w, a, b) = two_party();
    let call = connect(&mut w, a, b);
    w.command(a, Command::Hangup { reason: None }).unwrap();
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    let before = sent_without_acks(&w, a).len();
    let old_accept = sent_of(&w, b, call, "accept");
    injected.push(replay(&mut w, old_accept));
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    let answers = &sent_without_acks(&w, a)[before..];
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(answers[0].to_device.as_ref().unwrap().as_str(), "b1");
    assert_eq!(answers[0].body, Body::Hangup { reason: None });
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::LocalHangup)));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::RemoteHangup)));
    assert_eq!(states(&w, a).len(), 4);
    assert_eq!(states(&w, b).len(), 4);
    assert_delivered(&w, &injected);
}

#[test]
fn a_cancel_from_the_wrong_user_does_not_keep_the_real_invite_from_ringing() {
    let (mut w, a, b) = two_party();
    // Bob is away and the network keeps nothing for him: alice's invite waits for its
    // retransmission (at 500 ms, 1.5 s, ...).
    w.net.set_store_offline(false);
    w.set_online(b, false);
    w.call(a, "bob", CallType::Video).unwrap();
    let call = current_call_id(&w, a);
    w.run_for(Duration::from_millis(600));
    w.set_online(b, true);
    // Carol, who knows the call id, cancels it at bob before alice's invite gets there.
    let mut fake_cancel = w.device(a).sent[0].clone();
    fake_cancel.from = UserId::new("carol").unwrap();
    fake_cancel.from_device = DeviceId::new("c1").unwrap();
    fake_cancel.body = Body::Cancel {
        reason: None,
        timeout: false,
        elsewhere: None,
        seq: None,
    };
    let injected = vec![replay(&mut w, fake_cancel)];
    w.run_for(Duration::from_secs(2));
    assert_delivered(&w, &injected);

    // Only alice can cancel alice's call: bob rings when her invite arrives (1.51 s).
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(current_call_id(&w, b), call);
    assert_eq!(
        time_of(&w, b, Calling, R::RemoteVideoCall),
        Duration::from_millis(1510)
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall]
    );
}
