//! A device that is in a call (or not prepared) declines other invitations by itself with
//! `reject{busy}`, reports `BusyAutoRejected`, and its own state does not change; the third
//! caller ends `Prepared(RemoteCallBusy)`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, CallState, Command, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::{SimMedia, SimWorld};
use common::*;

/// alice/a1, bob/b1 and carol/c1, all prepared, with the given media.
fn three_party(media: SimMedia) -> (SimWorld, usize, usize, usize) {
    let mut w = SimWorld::new(5, clean_plan());
    let a = w.add_device("alice", "a1", Some(media));
    let b = w.add_device("bob", "b1", Some(media));
    let c = w.add_device("carol", "c1", Some(media));
    for d in [a, b, c] {
        w.prepare_default(d).unwrap();
    }
    (w, a, b, c)
}

fn no_frames() -> SimMedia {
    SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    }
}

/// Carol calls `target` (user `target_user`), who is busy: checks the busy reply, that the busy
/// device's state did not move, and that carol ends `RemoteCallBusy`.
fn carol_calls_busy(w: &mut SimWorld, c: usize, target: usize, target_user: &str) {
    let target_states = w.device(target).states();
    let target_events = events(w, target);
    let target_state = w.device(target).machine.state();
    let target_call = w.device(target).machine.call_info().map(|i| i.call_id);

    let carol_states_before = states(w, c).len();
    let carol_events_before = call_events(w, c).len();
    let started = w.elapsed();
    w.call(c, target_user, CallType::Video).unwrap();
    let carol_call = current_call_id(w, c);
    w.run_for(Duration::from_secs(2));

    // The busy device: one busy reject to carol's device, one event, no state change.
    assert_eq!(w.device(target).states(), target_states);
    assert_eq!(w.device(target).machine.state(), target_state);
    assert_eq!(
        w.device(target).machine.call_info().map(|i| i.call_id),
        target_call
    );
    assert_eq!(
        events(w, target)[target_events.len()..],
        [E::BusyAutoRejected]
    );
    let busy_ev = event_infos(w, target).pop().unwrap();
    assert_eq!(busy_ev.call_id, Some(carol_call));
    let rejects: Vec<_> = sent_without_acks(w, target)
        .into_iter()
        .filter(|e| e.call_id == carol_call)
        .collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert!(matches!(rejects[0].body, Body::Reject { busy: true, .. }));
    assert_eq!(rejects[0].to.as_str(), "carol");
    assert_eq!(rejects[0].to_device.as_ref().unwrap().as_str(), "c1");

    // Carol: busy, after the grace for other devices to ring (250 ms minimum).
    assert_eq!(
        states(w, c)[carol_states_before..],
        [(Calling, R::LocalVideoCall), (Prepared, R::RemoteCallBusy)]
    );
    assert_eq!(
        call_events(w, c)[carol_events_before..],
        [E::OnCalling, E::RemoteCallBusy]
    );
    let busy_at = time_of(w, c, Prepared, R::RemoteCallBusy) - started;
    assert_eq!(busy_at, Duration::from_millis(20 + 250));
    assert_eq!(last_change(w, c).duration, None);
    assert_eq!(w.device(c).machine.state(), Prepared);
}

#[test]
fn callee_ringing_declines_a_second_invite_as_busy() {
    let (mut w, a, b, c) = three_party(SimMedia::default());
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(b).machine.state(), Calling);
    carol_calls_busy(&mut w, c, b, "bob");
    // Alice's call was never disturbed and can still be answered.
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
}

#[test]
fn caller_placing_a_call_declines_an_invite_from_someone_else_as_busy() {
    let (mut w, a, _b, c) = three_party(SimMedia::default());
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Calling);
    carol_calls_busy(&mut w, c, a, "alice");
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::BusyAutoRejected]
    );
}

#[test]
fn both_parties_connecting_decline_invites_as_busy() {
    let (mut w, a, b, c) = three_party(no_frames());
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connecting);
    assert_eq!(w.device(b).machine.state(), Connecting);
    carol_calls_busy(&mut w, c, b, "bob");
    carol_calls_busy(&mut w, c, a, "alice");
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted)
        ]
    );
    assert_eq!(
        call_events(&w, b),
        vec![E::LocalAccepted, E::BusyAutoRejected]
    );
}

#[test]
fn both_parties_connected_decline_invites_as_busy() {
    let (mut w, a, b, c) = three_party(SimMedia::default());
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
    carol_calls_busy(&mut w, c, a, "alice");
    carol_calls_busy(&mut w, c, b, "bob");
    let connected = vec![
        (Calling, R::RemoteVideoCall),
        (Connecting, R::LocalAccepted),
        (Connected, R::RecvRemoteFirstFrame),
    ];
    assert_eq!(states(&w, b), connected);
    // The call still works: hang up normally.
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::RemoteHangup)));
}

#[test]
fn a_device_that_is_not_prepared_declines_as_busy_and_stays_idle() {
    let mut w = SimWorld::new(5, clean_plan());
    let d = w.add_device("dave", "d1", Some(SimMedia::default()));
    let c = w.add_device("carol", "c1", Some(SimMedia::default()));
    w.prepare_default(c).unwrap();
    assert_eq!(w.device(d).machine.state(), CallState::Idle);
    carol_calls_busy(&mut w, c, d, "dave");
    assert_eq!(w.device(d).machine.state(), CallState::Idle);
    assert_eq!(w.device(d).states(), vec![]);
    assert_eq!(events(&w, d), vec![E::BusyAutoRejected]);
    assert!(w.device(d).media_commands.is_empty());
}

#[test]
fn busy_reason_reaches_the_third_caller() {
    let (mut w, a, _b, c) = three_party(SimMedia::default());
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.call(c, "bob", CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    let end = last_change(&w, c);
    assert_eq!(end.reason, R::RemoteCallBusy);
    assert_eq!(end.event_reason.as_deref(), Some("busy"));
    assert_eq!(
        states(&w, c),
        vec![(Calling, R::LocalAudioCall), (Prepared, R::RemoteCallBusy)]
    );
    let ev = event_infos(&w, c).pop().unwrap();
    assert_eq!(ev.event, E::RemoteCallBusy);
    assert_eq!(ev.reason.as_deref(), Some("busy"));
}
