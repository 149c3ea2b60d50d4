//! `prepare` makes a device reachable and sets the room and call settings: calls need it, it
//! cannot change settings in the middle of a call, a second `prepare` changes the room; bad
//! arguments are refused; `Deinitialize` ends any call and makes the device unreachable again.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{CallEvent as E, CallState, Command, PrepareConfig, StateReason as R};
use callapi_core::protocol::{Body, CallType, Envelope, Extension};
use callapi_signal_mock::world::{SimMedia, SimWorld};
use common::*;

fn invites(w: &SimWorld, d: usize) -> Vec<Envelope> {
    w.device(d)
        .sent
        .iter()
        .filter(|e| matches!(e.body, Body::Invite { .. }))
        .cloned()
        .collect()
}

fn invite_room(env: &Envelope) -> &str {
    match &env.body {
        Body::Invite { room_id, .. } => room_id,
        _ => unreachable!(),
    }
}

fn unprepared() -> (SimWorld, usize, usize) {
    let mut w = SimWorld::new(23, clean_plan());
    let a = w.add_device("alice", "a1", Some(SimMedia::default()));
    let b = w.add_device("bob", "b1", Some(SimMedia::default()));
    (w, a, b)
}

fn assert_untouched(w: &SimWorld, d: usize, notes: usize, sent: usize) {
    assert_eq!(w.device(d).notifications.len(), notes);
    assert_eq!(w.device(d).sent.len(), sent);
}

#[test]
fn call_before_prepare_is_refused_as_not_prepared() {
    let (mut w, a, _b) = unprepared();
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
    let err = w.call(a, "bob", CallType::Video).unwrap_err();
    assert_eq!(err, CommandError::NotPrepared);
    assert!(w.device(a).notifications.is_empty());
    assert!(w.device(a).sent.is_empty());
    assert!(w.device(a).media_commands.is_empty());
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
}

#[test]
fn prepare_from_idle_goes_prepared_and_a_second_prepare_changes_no_state() {
    let (mut w, a, _b) = unprepared();
    w.prepare_default(a).unwrap();
    let changes = state_changes(&w, a);
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].1.state, Prepared);
    assert_eq!(changes[0].1.previous, CallState::Idle);
    assert_eq!(changes[0].1.reason, R::None);
    prepare_with(&mut w, a, PrepareConfig::new("room-2"));
    assert_eq!(state_changes(&w, a).len(), 1);
    assert_eq!(w.device(a).machine.state(), Prepared);
}

#[test]
fn prepare_during_a_call_is_refused_as_busy_and_keeps_the_settings() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    for d in [a, b] {
        let (notes, sent) = (w.device(d).notifications.len(), w.device(d).sent.len());
        let err = w
            .command(d, Command::Prepare(PrepareConfig::new("elsewhere")))
            .unwrap_err();
        assert_eq!(err, CommandError::Busy(Calling));
        assert_untouched(&w, d, notes, sent);
    }
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    for d in [a, b] {
        let err = w
            .command(d, Command::Prepare(PrepareConfig::new("elsewhere")))
            .unwrap_err();
        assert_eq!(err, CommandError::Busy(Connected));
    }
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    assert_eq!(
        states(&w, b).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    // The refused prepare left the room as it was.
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(invite_room(&invites(&w, a)[1]), "alice-room");
}

#[test]
fn a_second_call_during_a_call_is_refused_as_busy() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    let (notes, sent) = (w.device(a).notifications.len(), w.device(a).sent.len());
    assert_eq!(
        w.call(a, "carol", CallType::Video).unwrap_err(),
        CommandError::Busy(Calling)
    );
    assert_untouched(&w, a, notes, sent);
    assert_eq!(
        w.call(b, "alice", CallType::Video).unwrap_err(),
        CommandError::Busy(Calling)
    );
}

#[test]
fn prepare_again_changes_the_room_of_the_next_invite() {
    let (mut w, a, b) = two_party();
    prepare_with(&mut w, a, PrepareConfig::new("room-2"));
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(invite_room(&invites(&w, a)[0]), "room-2");
    assert_eq!(w.device(a).machine.call_info().unwrap().room_id, "room-2");
    assert_eq!(w.device(b).machine.call_info().unwrap().room_id, "room-2");
    // Both sides' media join the caller's new room.
    for d in [a, b] {
        let room = w
            .device(d)
            .media_commands
            .iter()
            .find_map(|c| match c {
                callapi_core::call::MediaCommand::Join(r) => Some(r.room_id.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(room, "room-2");
    }
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));

    prepare_with(&mut w, a, PrepareConfig::new("room-3"));
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(invite_room(&invites(&w, a)[1]), "room-3");
}

#[test]
fn the_prepare_extension_is_merged_under_the_call_extension() {
    let (mut w, a, b) = two_party();
    let mut cfg = PrepareConfig::new("alice-room");
    cfg.user_extension.insert("app".into(), "demo".into());
    cfg.user_extension.insert("k".into(), "from prepare".into());
    prepare_with(&mut w, a, cfg);
    let mut ext = Extension::new();
    ext.insert("k".into(), "from call".into());
    ext.insert("n".into(), 7.into());
    w.call_with_extension(a, "bob", CallType::Video, ext)
        .unwrap();
    w.run_for(Duration::from_secs(1));
    let mut expected = Extension::new();
    expected.insert("app".into(), "demo".into());
    expected.insert("k".into(), "from call".into());
    expected.insert("n".into(), 7.into());
    match &invites(&w, a)[0].body {
        Body::Invite { extension, .. } => assert_eq!(extension, &expected),
        _ => unreachable!(),
    }
    assert_eq!(w.device(b).machine.call_info().unwrap().extension, expected);
}

#[test]
fn an_empty_room_is_refused() {
    // Unprepared: stays Idle.
    let (mut w, a, _b) = unprepared();
    let err = w
        .command(a, Command::Prepare(PrepareConfig::new("")))
        .unwrap_err();
    assert!(matches!(err, CommandError::InvalidArgument(_)), "{err:?}");
    assert!(w.device(a).notifications.is_empty());
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
    assert_eq!(
        w.call(a, "bob", CallType::Video).unwrap_err(),
        CommandError::NotPrepared
    );

    // Prepared: keeps its room.
    let (mut w, a, _b) = two_party();
    let notes = w.device(a).notifications.len();
    assert!(matches!(
        w.command(a, Command::Prepare(PrepareConfig::new(""))),
        Err(CommandError::InvalidArgument(_))
    ));
    assert_eq!(w.device(a).notifications.len(), notes);
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(invite_room(&invites(&w, a)[0]), "alice-room");
}

#[test]
fn calling_yourself_is_refused() {
    let (mut w, a, _b) = two_party();
    let notes = w.device(a).notifications.len();
    let err = w.call(a, "alice", CallType::Video).unwrap_err();
    assert!(matches!(err, CommandError::InvalidArgument(_)), "{err:?}");
    assert_untouched(&w, a, notes, 0);
    assert!(w.device(a).media_commands.is_empty());
    assert_eq!(w.device(a).machine.state(), Prepared);
}

#[test]
fn deinitialize_during_a_call_hangs_up_straight_to_idle() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(a, Command::Deinitialize).unwrap();
    w.run_for(Duration::from_secs(1));

    // One change, from Connected to Idle, with the hangup as its reason: the device is never
    // shown as reachable (Prepared) on its way out.
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame),
            (CallState::Idle, R::LocalHangup)
        ]
    );
    let end = last_change(&w, a);
    assert_eq!(end.previous, Connected);
    assert!(end.duration.is_some());
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
}

#[test]
fn deinitialize_during_a_call_hangs_up_and_later_invites_are_declined_busy() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(a, Command::Deinitialize).unwrap();
    w.run_for(Duration::from_secs(1));

    assert_eq!(w.device(a).machine.state(), CallState::Idle);
    assert_eq!(w.device(a).machine.call_info(), None);
    assert_eq!(states(&w, a).last().unwrap().0, CallState::Idle);
    assert!(states(&w, a).contains(&(Connected, R::RecvRemoteFirstFrame)));
    assert_eq!(
        call_events(&w, a),
        vec![
            E::OnCalling,
            E::RemoteUserRecvCall,
            E::RemoteAccepted,
            E::LocalHangup
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame),
            (Prepared, R::RemoteHangup)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted, E::RemoteHangup]);
    assert_eq!(
        last_change(&w, b).event_reason.as_deref(),
        Some("deinitialize")
    );

    // Alice is unreachable now: bob's call is declined busy and alice stays Idle.
    let a_states = states(&w, a);
    w.call(b, "alice", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(2));
    assert_eq!(states(&w, a), a_states);
    assert_eq!(call_events(&w, a).last(), Some(&E::BusyAutoRejected));
    assert_eq!(
        states(&w, b)[4..],
        [(Calling, R::LocalVideoCall), (Prepared, R::RemoteCallBusy)]
    );
    // And alice cannot call until she prepares again.
    assert_eq!(
        w.call(a, "bob", CallType::Video).unwrap_err(),
        CommandError::NotPrepared
    );
    w.prepare_default(a).unwrap();
    assert_eq!(last_change(&w, a).state, Prepared);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(b).machine.state(), Calling);
}

#[test]
fn deinitialize_while_calling_cancels_the_invite() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(a, Command::Deinitialize).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), CallState::Idle);
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCancelled]);
}

#[test]
fn deinitialize_without_a_call_goes_idle() {
    let (mut w, a, _b) = two_party();
    w.command(a, Command::Deinitialize).unwrap();
    assert_eq!(states(&w, a), vec![(CallState::Idle, R::None)]);
    assert!(w.device(a).sent.is_empty());
    // Twice is harmless.
    w.command(a, Command::Deinitialize).unwrap();
    assert_eq!(states(&w, a), vec![(CallState::Idle, R::None)]);
}
