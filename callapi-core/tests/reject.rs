//! Declining a call: the callee's `reject(reason)` ends the call on both sides with the matching
//! local/remote reasons and carries the app's reason text; a reject that does not fit the state
//! is refused and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{CallEvent as E, CallState, Command, MediaCommand, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use common::*;

fn ringing() -> (callapi_signal_mock::world::SimWorld, usize, usize) {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    (w, a, b)
}

#[test]
fn callee_rejects_with_a_reason_and_both_sides_end_with_it() {
    let (mut w, a, b) = ringing();
    let call_id = current_call_id(&w, a);
    w.command(
        b,
        Command::Reject {
            reason: Some("in a meeting".into()),
        },
    )
    .unwrap();
    // The callee ends at once, without waiting for the network.
    assert_eq!(
        states(&w, b),
        vec![(Calling, R::RemoteVideoCall), (Prepared, R::LocalRejected)]
    );
    w.run_for(Duration::from_secs(1));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::RemoteRejected)]
    );
    assert_eq!(
        states(&w, b),
        vec![(Calling, R::RemoteVideoCall), (Prepared, R::LocalRejected)]
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteRejected]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalRejected]);

    // The reason travels with the state change and with the event, on both sides.
    for d in [a, b] {
        let end = last_change(&w, d);
        assert_eq!(end.event_reason.as_deref(), Some("in a meeting"));
        assert_eq!(end.previous, Calling);
        assert_eq!(
            end.duration, None,
            "a call that never connected has no duration"
        );
        assert_eq!(end.call.unwrap().call_id, call_id);
        let ev = event_infos(&w, d).pop().unwrap();
        assert_eq!(ev.reason.as_deref(), Some("in a meeting"));
        assert_eq!(ev.call_id, Some(call_id));
    }

    // One reject went to the caller's device, not busy, with the reason.
    let rejects: Vec<_> = sent_without_acks(&w, b)
        .into_iter()
        .filter(|e| matches!(e.body, Body::Reject { .. }))
        .collect();
    assert_eq!(rejects.len(), 1);
    assert_eq!(rejects[0].to.as_str(), "alice");
    assert_eq!(rejects[0].to_device.as_ref().unwrap().as_str(), "a1");
    assert_eq!(rejects[0].call_id, call_id);
    assert_eq!(
        rejects[0].body,
        Body::Reject {
            reason: Some("in a meeting".into()),
            busy: false,
            seq: None
        }
    );
    assert_eq!(sent_kinds(&w, b), vec!["ringing", "reject"]);
    assert_eq!(sent_kinds(&w, a), vec!["invite"]);

    // Both sides left their media (caller at call(), callee's early media at ringing).
    for d in [a, b] {
        assert!(matches!(
            w.device(d).media_commands.last(),
            Some(MediaCommand::Leave { call_id: c }) if *c == call_id
        ));
    }
    assert!(w.device(a).machine.call_info().is_none());
    assert!(w.device(b).machine.call_info().is_none());
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
}

#[test]
fn reject_without_a_reason_carries_none() {
    let (mut w, a, b) = ringing();
    w.command(b, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::RemoteRejected)]
    );
    assert_eq!(last_change(&w, a).event_reason, None);
    assert_eq!(last_change(&w, b).event_reason, None);
}

#[test]
fn hangup_while_ringing_is_a_reject() {
    let (mut w, a, b) = ringing();
    w.command(
        b,
        Command::Hangup {
            reason: Some("no".into()),
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b),
        vec![(Calling, R::RemoteVideoCall), (Prepared, R::LocalRejected)]
    );
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::RemoteRejected)]
    );
    assert_eq!(last_change(&w, a).event_reason.as_deref(), Some("no"));
}

/// Runs `reject` on `d` and checks it is refused as `InvalidState` in `state` with nothing
/// reported or sent.
fn assert_reject_refused(w: &mut callapi_signal_mock::world::SimWorld, d: usize, state: CallState) {
    let notes = w.device(d).notifications.len();
    let sent = w.device(d).sent.len();
    let media = w.device(d).media_commands.len();
    let err = w
        .command(
            d,
            Command::Reject {
                reason: Some("x".into()),
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        CommandError::InvalidState {
            action: "reject",
            state
        }
    );
    assert_eq!(w.device(d).notifications.len(), notes);
    assert_eq!(w.device(d).sent.len(), sent);
    assert_eq!(w.device(d).media_commands.len(), media);
    assert_eq!(w.device(d).machine.state(), state);
}

#[test]
fn reject_without_a_call_is_invalid_state_and_changes_nothing() {
    let (mut w, _a, b) = two_party();
    assert_reject_refused(&mut w, b, Prepared);
    assert_eq!(states(&w, b), vec![]);
}

#[test]
fn caller_cannot_reject_its_own_call() {
    let (mut w, a, b) = ringing();
    assert_reject_refused(&mut w, a, Calling);
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
}

#[test]
fn reject_after_accept_is_invalid_state_and_the_call_goes_on() {
    let (mut w, a, b) = ringing();
    w.command(b, Command::Accept).unwrap();
    // Still Connecting (waiting for the caller's confirmation).
    assert_reject_refused(&mut w, b, Connecting);
    w.run_for(Duration::from_secs(1));
    assert_reject_refused(&mut w, b, Connected);
    assert_reject_refused(&mut w, a, Connected);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
}

#[test]
fn reject_after_the_call_ended_is_invalid_state() {
    let (mut w, _a, b) = ringing();
    w.command(b, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_reject_refused(&mut w, b, Prepared);
}
