//! First-frame wait: with it on, each side is `Connected` when the call is accepted AND the first
//! remote frame arrived (either order; the callee also needs the caller's confirmation); with it
//! off, or without media, `Connected` follows accept. Audio calls wait for an audio frame.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, PrepareConfig, StateReason as R};
use callapi_core::media::{MediaEvent, MediaKind};
use callapi_core::protocol::CallType;
use callapi_signal_mock::world::{SimMedia, SimWorld};
use common::*;

/// Media that joins but never reports frames by itself: the test delivers them.
fn manual_frames() -> Option<SimMedia> {
    Some(SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    })
}

fn frame(w: &mut SimWorld, d: usize, kind: MediaKind) {
    let call_id = current_call_id(w, d);
    w.media_event(d, MediaEvent::FirstRemoteFrame { call_id, kind });
}

fn ring(call_type: CallType) -> (SimWorld, usize, usize) {
    let (mut w, a, b) = two_party_with(manual_frames());
    w.call(a, "bob", call_type).unwrap();
    w.run_for(Duration::from_secs(1));
    (w, a, b)
}

#[test]
fn frames_before_accept_connect_both_sides_at_accept() {
    let (mut w, a, b) = ring(CallType::Video);
    frame(&mut w, a, MediaKind::Video);
    frame(&mut w, b, MediaKind::Video);
    w.run_for(Duration::from_secs(1));
    // Early media flows, but nobody is connected before accept.
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert!(events(&w, a).contains(&E::RecvRemoteFirstFrame));
    assert!(events(&w, b).contains(&E::RecvRemoteFirstFrame));

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
    // Caller: at the accept's arrival; callee: at the caller's confirmation.
    assert_eq!(
        time_of(&w, a, Connected, R::RecvRemoteFirstFrame),
        Duration::from_millis(2010)
    );
    assert_eq!(
        time_of(&w, b, Connected, R::RecvRemoteFirstFrame),
        Duration::from_millis(2020)
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
}

#[test]
fn frames_after_accept_connect_each_side_at_its_frame() {
    let (mut w, a, b) = ring(CallType::Video);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted)
        ]
    );

    frame(&mut w, a, MediaKind::Video);
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    w.run_for(Duration::from_secs(1));
    // The caller's confirmation arrived, but bob has no frame yet.
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted)
        ]
    );
    frame(&mut w, b, MediaKind::Video);
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        time_of(&w, a, Connected, R::RecvRemoteFirstFrame),
        Duration::from_secs(2)
    );
    assert_eq!(
        time_of(&w, b, Connected, R::RecvRemoteFirstFrame),
        Duration::from_secs(3)
    );
}

#[test]
fn callee_with_a_frame_waits_for_the_callers_confirmation() {
    let (mut w, a, b) = ring(CallType::Video);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    frame(&mut w, b, MediaKind::Video);
    w.run_for(Duration::from_secs(1));
    // Bob has accepted and sees video, but alice (no frame yet) has not confirmed.
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted)
        ]
    );
    frame(&mut w, a, MediaKind::Video);
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
    assert_eq!(
        time_of(&w, b, Connected, R::RecvRemoteFirstFrame),
        Duration::from_millis(3010)
    );
}

#[test]
fn without_first_frame_wait_connected_follows_accept() {
    let (mut w, a, b) = two_party_with(manual_frames());
    for (d, room) in [(a, "alice-room"), (b, "bob-room")] {
        let mut cfg = PrepareConfig::new(room);
        cfg.first_frame_wait = false;
        prepare_with(&mut w, d, cfg);
    }
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RemoteAccepted)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    // No frame ever arrived.
    assert!(!events(&w, a).contains(&E::RecvRemoteFirstFrame));
    assert_eq!(
        time_of(&w, a, Connected, R::RemoteAccepted),
        Duration::from_millis(1010)
    );
    assert_eq!(
        time_of(&w, b, Connected, R::LocalAccepted),
        Duration::from_millis(1020)
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
}

#[test]
fn first_frame_wait_is_per_side() {
    // Alice does not wait for frames; bob does.
    let (mut w, a, b) = two_party_with(manual_frames());
    let mut cfg = PrepareConfig::new("alice-room");
    cfg.first_frame_wait = false;
    prepare_with(&mut w, a, cfg);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Connected, R::RemoteAccepted)));
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted)
        ]
    );
    frame(&mut w, b, MediaKind::Video);
    assert_eq!(
        states(&w, b).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
}

#[test]
fn without_media_connected_follows_accept() {
    let (mut w, a, b) = two_party_with(None);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RemoteAccepted)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    assert_eq!(
        time_of(&w, a, Connected, R::RemoteAccepted),
        Duration::from_millis(1010)
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
}

#[test]
fn audio_calls_wait_for_an_audio_frame_not_a_video_frame() {
    let (mut w, a, b) = ring(CallType::Audio);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteAudioCall)]);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    frame(&mut w, a, MediaKind::Video);
    frame(&mut w, b, MediaKind::Video);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalAudioCall),
            (Connecting, R::RemoteAccepted)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteAudioCall),
            (Connecting, R::LocalAccepted)
        ]
    );
    assert!(!events(&w, a).contains(&E::RecvRemoteFirstFrame));

    frame(&mut w, a, MediaKind::Audio);
    frame(&mut w, b, MediaKind::Audio);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalAudioCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteAudioCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        events(&w, a)
            .iter()
            .filter(|e| **e == E::RecvRemoteFirstFrame)
            .count(),
        1
    );
}

#[test]
fn video_calls_ignore_an_audio_first_frame() {
    let (mut w, a, b) = ring(CallType::Video);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    frame(&mut w, a, MediaKind::Audio);
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted)
        ]
    );
    frame(&mut w, a, MediaKind::Video);
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
}

#[test]
fn a_second_first_frame_changes_nothing() {
    let (mut w, a, b) = ring(CallType::Video);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    frame(&mut w, a, MediaKind::Video);
    frame(&mut w, a, MediaKind::Video);
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(
        events(&w, a)
            .iter()
            .filter(|e| **e == E::RecvRemoteFirstFrame)
            .count(),
        1
    );
}
