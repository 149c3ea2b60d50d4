//! Media failures: a failed join ends the call (`JoinMediaFailed`, `MediaError`) and stops the
//! other side; a media failure in a call ends it (`MediaFailed` here, `RemoteHangup` there); a
//! capture failure is reported and the call goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{
    codes, CallErrorEvent, CallEvent as E, Command, ErrorCodeType, MediaCommand, StateReason as R,
};
use callapi_core::media::MediaEvent;
use callapi_core::protocol::{Body, CallId, CallType};
use callapi_signal_mock::world::{SimMedia, SimWorld};
use common::*;

fn world(a_media: SimMedia, b_media: SimMedia) -> (SimWorld, usize, usize) {
    let mut w = SimWorld::new(13, clean_plan());
    let a = w.add_device("alice", "a1", Some(a_media));
    let b = w.add_device("bob", "b1", Some(b_media));
    w.prepare_default(a).unwrap();
    w.prepare_default(b).unwrap();
    (w, a, b)
}

fn failing_join() -> SimMedia {
    SimMedia {
        fail_join: true,
        ..SimMedia::default()
    }
}

fn connected() -> (SimWorld, usize, usize, CallId) {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
    let id = current_call_id(&w, a);
    (w, a, b, id)
}

#[test]
fn caller_join_failure_ends_the_call_and_stops_the_callee_ringing() {
    let (mut w, a, b) = world(failing_join(), SimMedia::default());
    w.call(a, "bob", CallType::Video).unwrap();
    // The failure is immediate.
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::JoinMediaFailed)]
    );
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::JoinMediaFailed)]
    );
    assert_eq!(call_events(&w, a), vec![E::OnCalling, E::JoinMediaFailed]);
    assert_eq!(
        last_change(&w, a).event_reason.as_deref(),
        Some("media_failed")
    );
    let errs = errors(&w, a);
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].event, CallErrorEvent::MediaError);
    assert_eq!(errs[0].code_type, ErrorCodeType::Media);
    assert_eq!(errs[0].code, codes::JOIN_FAILED);
    assert!(errs[0].call_id.is_some());

    // The callee rang (the invite was out) and stopped on the caller's cancel.
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::RemoteCancelled]);
    assert!(
        time_of(&w, b, Prepared, R::RemoteCancelled) <= Duration::from_millis(10),
        "{:?}",
        time_of(&w, b, Prepared, R::RemoteCancelled)
    );
    assert_eq!(
        last_change(&w, b).event_reason.as_deref(),
        Some("media_failed")
    );
    assert!(errors(&w, b).is_empty());
    // Nothing rang yet at the caller: the cancel went to every device of bob.
    let cancel = sent_without_acks(&w, a)
        .into_iter()
        .find(|e| matches!(e.body, Body::Cancel { .. }))
        .unwrap();
    assert_eq!(cancel.to_device, None);
    assert_eq!(w.device(a).machine.pending_messages(), 0);
}

#[test]
fn callee_join_failure_while_ringing_declines_the_call() {
    let (mut w, a, b) = world(SimMedia::default(), failing_join());
    w.call(a, "bob", CallType::Video).unwrap();
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::JoinMediaFailed)
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::JoinMediaFailed]);
    let errs = errors(&w, b);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].event, CallErrorEvent::MediaError);
    assert_eq!(errs[0].code, codes::JOIN_FAILED);
    // The caller learns that the callee could not take the call.
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::RemoteRejected)]
    );
    assert_eq!(
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteRejected]
    );
    assert_eq!(
        last_change(&w, a).event_reason.as_deref(),
        Some("media_failed")
    );
}

#[test]
fn callee_join_failure_at_accept_hangs_up() {
    // Bob joins only at accept, and that fails. (Alice's media reports no frame by itself: with
    // real media her first frame would come from bob's.)
    let no_frames = SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    };
    let (mut w, a, b) = world(no_frames, failing_join());
    let mut cfg = callapi_core::call::PrepareConfig::new("bob-room");
    cfg.join_media_on_ringing = false;
    prepare_with(&mut w, b, cfg);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    assert!(w.run_until_quiet(Duration::from_secs(120)));

    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::JoinMediaFailed)
        ]
    );
    assert_eq!(
        call_events(&w, b),
        vec![E::LocalAccepted, E::JoinMediaFailed]
    );
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Prepared, R::RemoteHangup)
        ]
    );
    assert_eq!(
        call_events(&w, a),
        vec![
            E::OnCalling,
            E::RemoteUserRecvCall,
            E::RemoteAccepted,
            E::RemoteHangup
        ]
    );
    assert_eq!(
        last_change(&w, a).event_reason.as_deref(),
        Some("media_failed")
    );
    assert_eq!(last_change(&w, a).duration, None);
}

#[test]
fn media_failure_in_a_connected_call_ends_it_on_both_sides() {
    let (mut w, a, b, id) = connected();
    w.run_for(Duration::from_secs(3));
    w.media_event(
        a,
        MediaEvent::Failed {
            call_id: id,
            message: "ICE failed".into(),
        },
    );
    w.run_for(Duration::from_secs(1));

    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connecting, R::RemoteAccepted),
            (Connected, R::RecvRemoteFirstFrame),
            (Prepared, R::MediaFailed)
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
    assert_eq!(
        call_events(&w, a),
        vec![
            E::OnCalling,
            E::RemoteUserRecvCall,
            E::RemoteAccepted,
            E::MediaFailed
        ]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted, E::RemoteHangup]);
    let errs = errors(&w, a);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].event, CallErrorEvent::MediaError);
    assert_eq!(errs[0].code_type, ErrorCodeType::Media);
    assert_eq!(errs[0].code, codes::MEDIA_FAILED);
    assert_eq!(errs[0].message, "ICE failed");
    assert_eq!(errs[0].call_id, Some(id));
    assert!(errors(&w, b).is_empty());
    assert_eq!(
        last_change(&w, b).event_reason.as_deref(),
        Some("media_failed")
    );
    // Both calls were connected: both ends carry a duration.
    assert!(last_change(&w, a).duration.is_some());
    assert!(last_change(&w, b).duration.is_some());
    assert!(matches!(
        w.device(a).media_commands.last(),
        Some(MediaCommand::Leave { .. })
    ));
    assert!(matches!(
        w.device(b).media_commands.last(),
        Some(MediaCommand::Leave { .. })
    ));
}

#[test]
fn media_failure_on_the_callee_ends_the_call_as_a_remote_hangup_for_the_caller() {
    let (mut w, a, b, id) = connected();
    w.media_event(
        b,
        MediaEvent::Failed {
            call_id: id,
            message: "DTLS failed".into(),
        },
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::MediaFailed)));
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::RemoteHangup)));
    assert_eq!(states(&w, a).len(), 4);
    assert_eq!(states(&w, b).len(), 4);
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted, E::MediaFailed]);
    assert_eq!(
        call_events(&w, a),
        vec![
            E::OnCalling,
            E::RemoteUserRecvCall,
            E::RemoteAccepted,
            E::RemoteHangup
        ]
    );
}

#[test]
fn capture_failure_is_reported_and_the_call_goes_on() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    let id = current_call_id(&w, a);
    w.media_event(
        a,
        MediaEvent::CaptureFailed {
            call_id: id,
            message: "camera busy".into(),
        },
    );
    let errs = errors(&w, a);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].event, CallErrorEvent::StartCaptureFail);
    assert_eq!(errs[0].code_type, ErrorCodeType::Media);
    assert_eq!(errs[0].code, codes::CAPTURE_FAILED);
    assert_eq!(errs[0].message, "camera busy");
    assert_eq!(errs[0].call_id, Some(id));
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    w.media_event(
        b,
        MediaEvent::CaptureFailed {
            call_id: id,
            message: "microphone".into(),
        },
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(errors(&w, b)[0].event, CallErrorEvent::StartCaptureFail);
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
        call_events(&w, a),
        vec![E::OnCalling, E::RemoteUserRecvCall, E::RemoteAccepted]
    );
    assert_eq!(call_events(&w, b), vec![E::LocalAccepted]);
}

#[test]
fn media_events_of_another_call_are_ignored() {
    let (mut w, a, b, _id) = connected();
    let other = CallId::new_v4();
    let notes = w.device(a).notifications.len();
    w.media_event(
        a,
        MediaEvent::Failed {
            call_id: other,
            message: "old call".into(),
        },
    );
    w.media_event(
        a,
        MediaEvent::CaptureFailed {
            call_id: other,
            message: "old call".into(),
        },
    );
    let now = w.now();
    w.devices[a].machine.handle_input(
        callapi_core::call::Input::MediaJoinFailed {
            call_id: other,
            message: "old call".into(),
        },
        now,
    );
    assert!(w.devices[a].machine.poll_output().is_none());
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).notifications.len(), notes);
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
}
