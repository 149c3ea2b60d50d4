//! Multi-device: an invite rings every device of the callee; the first accept wins and the
//! others end `AnsweredElsewhere`; a decline ends all (`RejectedElsewhere`); a busy device
//! declines only for itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::{SimMedia, SimWorld};
use common::*;

fn alice_and_two_bobs() -> (SimWorld, usize, usize, usize) {
    let mut w = SimWorld::new(11, clean_plan());
    let a = w.add_device("alice", "a1", Some(SimMedia::default()));
    let b1 = w.add_device("bob", "b1", Some(SimMedia::default()));
    let b2 = w.add_device("bob", "b2", Some(SimMedia::default()));
    for d in [a, b1, b2] {
        w.prepare_default(d).unwrap();
    }
    (w, a, b1, b2)
}

#[test]
fn invite_rings_every_device_and_first_accept_wins() {
    let (mut w, a, b1, b2) = alice_and_two_bobs();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b1), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(states(&w, b2), vec![(Calling, R::RemoteVideoCall)]);
    // One "ringing" event for the caller, however many devices ring.
    assert_eq!(
        call_events(&w, a)
            .iter()
            .filter(|e| **e == E::RemoteUserRecvCall)
            .count(),
        1
    );

    w.command(b2, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    assert_eq!(
        w.device(a)
            .machine
            .call_info()
            .unwrap()
            .remote_device
            .unwrap()
            .as_str(),
        "b2"
    );
    assert_eq!(
        states(&w, b2).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    assert_eq!(
        states(&w, b1),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::AnsweredElsewhere)
        ]
    );
    assert_eq!(call_events(&w, b1), vec![E::AnsweredElsewhere]);
    // b1 left its early media.
    assert!(w
        .device(b1)
        .media_commands
        .iter()
        .any(|c| matches!(c, callapi_core::call::MediaCommand::Leave { .. })));
}

#[test]
fn two_accepts_at_once_one_wins_the_other_ends_answered_elsewhere() {
    let (mut w, a, b1, b2) = alice_and_two_bobs();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b1, Command::Accept).unwrap();
    w.command(b2, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));
    let winner = w
        .device(a)
        .machine
        .call_info()
        .unwrap()
        .remote_device
        .unwrap();
    let (win, lose) = if winner.as_str() == "b1" {
        (b1, b2)
    } else {
        (b2, b1)
    };
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    assert_eq!(
        states(&w, win),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        states(&w, lose),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::AnsweredElsewhere)
        ]
    );
}

#[test]
fn a_decline_ends_the_call_on_every_device() {
    let (mut w, a, b1, b2) = alice_and_two_bobs();
    w.call(a, "bob", CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(
        b1,
        Command::Reject {
            reason: Some("in a meeting".into()),
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalAudioCall), (Prepared, R::RemoteRejected)]
    );
    assert_eq!(
        last_change(&w, a).event_reason.as_deref(),
        Some("in a meeting")
    );
    assert_eq!(
        states(&w, b1),
        vec![(Calling, R::RemoteAudioCall), (Prepared, R::LocalRejected)]
    );
    assert_eq!(
        states(&w, b2),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RejectedElsewhere)
        ]
    );
}

#[test]
fn a_busy_device_declines_only_for_itself() {
    let mut w = SimWorld::new(12, clean_plan());
    let a = w.add_device("alice", "a1", None);
    let b1 = w.add_device("bob", "b1", None);
    let b2 = w.add_device("bob", "b2", None);
    let c = w.add_device("carol", "c1", None);
    for d in [a, b1, b2, c] {
        w.prepare_default(d).unwrap();
    }
    // b1 is in a call with carol.
    w.call(c, "bob", CallType::Audio).unwrap();
    w.run_for(Duration::from_millis(100));
    w.command(b1, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(b1).machine.state(), Connected);
    assert_eq!(
        states(&w, b2).last(),
        Some(&(Prepared, R::AnsweredElsewhere))
    );

    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    // b1 declined as busy without changing state; b2 rings; alice keeps calling.
    assert_eq!(w.device(b1).machine.state(), Connected);
    assert!(call_events(&w, b1).contains(&E::BusyAutoRejected));
    assert!(w
        .device(b1)
        .sent
        .iter()
        .any(|e| matches!(e.body, Body::Reject { busy: true, .. })));
    assert_eq!(states(&w, b2).last(), Some(&(Calling, R::RemoteVideoCall)));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    w.command(b2, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Connected, R::RemoteAccepted)));
    assert_eq!(
        w.device(b1).machine.state(),
        Connected,
        "b1's own call is untouched"
    );
}

#[test]
fn all_devices_busy_ends_with_remote_call_busy() {
    let mut w = SimWorld::new(13, clean_plan());
    let a = w.add_device("alice", "a1", None);
    let b1 = w.add_device("bob", "b1", None);
    let b2 = w.add_device("bob", "b2", None);
    w.prepare_default(a).unwrap();
    // Neither bob device is prepared: both are busy.
    let _ = (b1, b2);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::RemoteCallBusy)]
    );
    assert!(call_events(&w, a).contains(&E::RemoteCallBusy));
}
