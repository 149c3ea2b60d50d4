//! The call timeout: it covers `Calling` and `Connecting` together (15 s by default, set by
//! `prepare`, zero meaning the 5 minute maximum), ends the caller `CallingTimeout` and the callee
//! `RemoteCallingTimeout`, and stops at `Connected`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CommandError;
use callapi_core::call::{
    CallEvent as E, Command, PrepareConfig, StateReason as R, MAX_CALL_TIMEOUT,
};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::SimMedia;
use common::*;

fn invite_lifetime_ms(w: &callapi_signal_mock::world::SimWorld, a: usize) -> u64 {
    w.device(a)
        .sent
        .iter()
        .find(|e| matches!(e.body, Body::Invite { .. }))
        .expect("an invite")
        .lifetime_ms
}

#[test]
fn nobody_answers_and_the_caller_times_out_at_exactly_15_s() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_millis(14_999));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::CallingTimeout)]
    );
    assert_eq!(
        time_of(&w, a, Prepared, R::CallingTimeout),
        Duration::from_secs(15)
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    // The callee stops when the invitation's lifetime ends, i.e. at the caller's timeout (its
    // own timer and the caller's timeout cancel agree).
    let b_end = time_of(&w, b, Prepared, R::RemoteCallingTimeout);
    assert!(
        b_end >= Duration::from_secs(15) && b_end <= Duration::from_millis(15_010),
        "{b_end:?}"
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::CallingTimeout]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCallingTimeout]);
    assert!(errors(&w, a).is_empty());
    assert!(errors(&w, b).is_empty());
    for d in [a, b] {
        assert_eq!(last_change(&w, d).duration, None);
    }
    // The caller told the ringing device that it timed out.
    let cancels: Vec<_> = sent_without_acks(&w, a)
        .into_iter()
        .filter(|e| matches!(e.body, Body::Cancel { .. }))
        .collect();
    assert!(!cancels.is_empty());
    assert_eq!(cancels[0].to_device.as_ref().unwrap().as_str(), "b1");
    assert_eq!(
        cancels[0].body,
        Body::Cancel {
            reason: None,
            timeout: true,
            elsewhere: None,
            seq: None
        }
    );
    assert_eq!(invite_lifetime_ms(&w, a), 15_000);
    assert_eq!(w.device(a).machine.pending_messages(), 0);
    assert_eq!(w.device(b).machine.pending_messages(), 0);
}

#[test]
fn the_timeout_covers_connecting_when_no_first_frame_arrives() {
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
    assert_eq!(w.device(b).machine.state(), Connecting);
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Prepared, R::CallingTimeout)
        ]
    );
    assert_eq!(
        time_of(&w, a, Prepared, R::CallingTimeout),
        Duration::from_secs(15)
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert_eq!(
        time_of(&w, b, Prepared, R::RemoteCallingTimeout),
        Duration::from_millis(15_010)
    );
    assert_eq!(
        call_events(&w, a),
        vec![
            E::OnCalling,
            E::RemoteUserRecvCall,
            E::RemoteAccepted,
            E::CallingTimeout
        ]
    );
    assert_eq!(
        call_events(&w, b),
        vec![E::LocalAccepted, E::RemoteCallingTimeout]
    );
    for d in [a, b] {
        assert_eq!(last_change(&w, d).duration, None);
        assert!(w.device(d).machine.call_info().is_none());
    }
}

#[test]
fn a_connected_call_outlives_the_timeout() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(10));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(60));
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
    assert_eq!(w.device(a).machine.poll_timeout(), None);
    assert_eq!(w.device(b).machine.poll_timeout(), None);
}

#[test]
fn a_custom_timeout_from_prepare_applies() {
    let (mut w, a, b) = two_party();
    let mut cfg = PrepareConfig::new("alice-room");
    cfg.call_timeout = Duration::from_secs(5);
    prepare_with(&mut w, a, cfg);
    w.call(a, "bob", CallType::Audio).unwrap();
    assert_eq!(invite_lifetime_ms(&w, a), 5_000);
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalAudioCall), (Prepared, R::CallingTimeout)]
    );
    assert_eq!(
        time_of(&w, a, Prepared, R::CallingTimeout),
        Duration::from_secs(5)
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    let b_end = time_of(&w, b, Prepared, R::RemoteCallingTimeout);
    assert!(
        b_end >= Duration::from_secs(5) && b_end <= Duration::from_millis(5_010),
        "{b_end:?}"
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::CallingTimeout]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCallingTimeout]);
}

#[test]
fn a_zero_timeout_means_the_five_minute_maximum() {
    let (mut w, a, b) = two_party();
    let mut cfg = PrepareConfig::new("alice-room");
    cfg.call_timeout = Duration::ZERO;
    prepare_with(&mut w, a, cfg);
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(
        invite_lifetime_ms(&w, a),
        u64::try_from(MAX_CALL_TIMEOUT.as_millis()).unwrap()
    );
    w.run_for(MAX_CALL_TIMEOUT - Duration::from_millis(1));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::CallingTimeout)]
    );
    assert_eq!(
        time_of(&w, a, Prepared, R::CallingTimeout),
        MAX_CALL_TIMEOUT
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
}

#[test]
fn prepare_with_a_timeout_above_five_minutes_is_refused() {
    let (mut w, a, b) = two_party();
    let notes = w.device(a).notifications.len();
    let mut cfg = PrepareConfig::new("other-room");
    cfg.call_timeout = MAX_CALL_TIMEOUT + Duration::from_millis(1);
    let err = w.command(a, Command::Prepare(cfg)).unwrap_err();
    assert!(matches!(err, CommandError::InvalidArgument(_)), "{err:?}");
    assert_eq!(w.device(a).notifications.len(), notes);

    // The previous settings stay: default room and 15 s.
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(invite_lifetime_ms(&w, a), 15_000);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        w.device(b).machine.call_info().unwrap().room_id,
        "alice-room"
    );

    // Exactly the maximum is fine.
    let mut w2 = two_party().0;
    let mut cfg = PrepareConfig::new("alice-room");
    cfg.call_timeout = MAX_CALL_TIMEOUT;
    w2.command(0, Command::Prepare(cfg)).unwrap();
}
