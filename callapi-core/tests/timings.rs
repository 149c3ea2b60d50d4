//! Timing diagnostics: milliseconds from the call's start (caller: `call()`; callee: invite
//! received) to each milestone, on the `Connected` notification and from `call_timings()`; the
//! end of a connected call carries its duration.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallState, CallTimings, Command, StateReason as R};
use callapi_core::media::MediaEvent;
use callapi_core::protocol::CallType;
use callapi_signal_mock::world::{SimMedia, SimWorld};
use callapi_signal_mock::FaultPlan;
use common::*;

fn ms(n: u64) -> Option<Duration> {
    Some(Duration::from_millis(n))
}

/// The timings on a device's `Connected` notification, checking that it is the only state
/// change that carries timings.
fn connected_timings(w: &SimWorld, d: usize) -> CallTimings {
    let changes = state_changes(w, d);
    for (_, c) in &changes {
        if c.state != CallState::Connected {
            assert_eq!(c.timings, None, "{c:?}");
        }
    }
    changes
        .into_iter()
        .find(|(_, c)| c.state == CallState::Connected)
        .expect("a Connected change")
        .1
        .timings
        .expect("timings on Connected")
}

#[test]
fn connected_carries_timings_consistent_with_the_virtual_clock() {
    // 10 ms network; media joins in 20 ms and shows a first frame 80 ms after joining.
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));

    assert_eq!(
        connected_timings(&w, a),
        CallTimings {
            remote_user_recv_call: ms(20), // invite 10 ms there, ringing 10 ms back
            accept: ms(1010),              // accepted at 1 s, heard 10 ms later
            local_joined: ms(20),
            remote_joined: None,
            first_local_frame_published: None,
            first_remote_frame: ms(80),
            connected: ms(1010),
        }
    );
    // The callee counts from the invite's arrival (10 ms).
    assert_eq!(
        connected_timings(&w, b),
        CallTimings {
            remote_user_recv_call: None,
            accept: ms(990),
            local_joined: ms(20),
            remote_joined: None,
            first_local_frame_published: None,
            first_remote_frame: ms(80),
            connected: ms(1010), // the caller's confirmation at 1020 ms
        }
    );
    // The notification times agree with the milestones.
    assert_eq!(
        time_of(&w, a, Connected, R::RecvRemoteFirstFrame),
        Duration::from_millis(1010)
    );
    assert_eq!(
        time_of(&w, b, Connected, R::RecvRemoteFirstFrame),
        Duration::from_millis(10 + 1010)
    );
}

#[test]
fn every_media_milestone_is_recorded_when_it_first_happens() {
    let media = SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    };
    let (mut w, a, b) = two_party_with(Some(media));
    w.call(a, "bob", CallType::Video).unwrap();
    let id = current_call_id(&w, a);
    w.run_for(Duration::from_millis(100));
    w.media_event(a, MediaEvent::FirstLocalFramePublished { call_id: id });
    w.run_for(Duration::from_millis(100));
    w.media_event(a, MediaEvent::RemoteJoined { call_id: id });
    // Repeats do not move a milestone.
    w.run_for(Duration::from_millis(100));
    w.media_event(a, MediaEvent::RemoteJoined { call_id: id });
    w.media_event(a, MediaEvent::FirstLocalFramePublished { call_id: id });
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_millis(100));
    w.media_event(
        a,
        MediaEvent::FirstRemoteFrame {
            call_id: id,
            kind: callapi_core::media::MediaKind::Video,
        },
    );
    assert_eq!(
        connected_timings(&w, a),
        CallTimings {
            remote_user_recv_call: ms(20),
            accept: ms(310),
            local_joined: ms(20),
            remote_joined: ms(200),
            first_local_frame_published: ms(100),
            first_remote_frame: ms(400),
            connected: ms(400),
        }
    );
    assert_eq!(
        w.device(a).machine.call_timings(),
        Some(connected_timings(&w, a))
    );
}

#[test]
fn the_callees_clock_starts_when_the_invite_arrives() {
    // 500 ms one way.
    let plan =
        FaultPlan::default().with_delay(Duration::from_millis(500), Duration::from_millis(500));
    let (mut w, a, b) = two_party_on(17, plan, Some(SimMedia::default()));
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    // Bob has been ringing for 500 ms.
    let ringing = w.device(b).machine.call_timings().unwrap();
    assert_eq!(ringing.local_joined, ms(20));
    assert_eq!(ringing.accept, None);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));

    assert_eq!(
        connected_timings(&w, a),
        CallTimings {
            remote_user_recv_call: ms(1000),
            accept: ms(1500),
            local_joined: ms(20),
            remote_joined: None,
            first_local_frame_published: None,
            first_remote_frame: ms(80),
            connected: ms(1500),
        }
    );
    assert_eq!(
        connected_timings(&w, b),
        CallTimings {
            remote_user_recv_call: None,
            accept: ms(500),
            local_joined: ms(20),
            remote_joined: None,
            first_local_frame_published: None,
            first_remote_frame: ms(80),
            connected: ms(1500), // confirmation at 2 s, 1.5 s after the invite arrived
        }
    );
}

#[test]
fn call_timings_are_kept_after_the_call_ends() {
    let (mut w, a, b) = two_party();
    assert_eq!(w.device(a).machine.call_timings(), None);
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let at_connect_a = connected_timings(&w, a);
    let at_connect_b = connected_timings(&w, b);
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.call_info(), None);
    assert_eq!(w.device(a).machine.call_timings(), Some(at_connect_a));
    assert_eq!(w.device(b).machine.call_timings(), Some(at_connect_b));

    // A new call starts a new record.
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(
        w.device(a).machine.call_timings(),
        Some(CallTimings::default())
    );
    w.run_for(Duration::from_secs(1));
    let ringing = w.device(a).machine.call_timings().unwrap();
    assert_eq!(ringing.remote_user_recv_call, ms(20));
    assert_eq!(ringing.accept, None);
    assert_eq!(ringing.connected, None);
    // Ended without connecting: the record keeps what happened, no more.
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.call_timings(), Some(ringing));
}

#[test]
fn the_end_of_a_connected_call_carries_its_duration() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    // Alice connects at 1.010 s; hang up exactly 5 s later.
    w.run_until(w.now() + Duration::from_millis(5010));
    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));

    let end_a = last_change(&w, a);
    assert_eq!(end_a.state, Prepared);
    assert_eq!(end_a.reason, R::LocalHangup);
    assert_eq!(end_a.previous, Connected);
    assert_eq!(end_a.duration, Some(Duration::from_secs(5)));
    // Bob connected 10 ms after alice and heard the hangup 10 ms after she sent it.
    let end_b = last_change(&w, b);
    assert_eq!(end_b.reason, R::RemoteHangup);
    assert_eq!(end_b.duration, Some(Duration::from_secs(5)));
    // No other state change carries a duration.
    for d in [a, b] {
        let with_duration = state_changes(&w, d)
            .into_iter()
            .filter(|(_, c)| c.duration.is_some())
            .count();
        assert_eq!(with_duration, 1);
    }
}

#[test]
fn calls_that_never_connected_end_without_a_duration() {
    // Cancelled.
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(3));
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    // Rejected.
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(3));
    w.command(b, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    // Timed out.
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(20));
    // Accepted, timed out while Connecting.
    let media = SimMedia {
        first_frame_delay: None,
        ..SimMedia::default()
    };
    let (mut w2, a2, b2) = two_party_with(Some(media));
    w2.call(a2, "bob", CallType::Video).unwrap();
    w2.run_for(Duration::from_secs(1));
    w2.command(b2, Command::Accept).unwrap();
    w2.run_for(Duration::from_secs(20));

    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Prepared, R::LocalCancelled),
            (Calling, R::LocalVideoCall),
            (Prepared, R::RemoteRejected),
            (Calling, R::LocalVideoCall),
            (Prepared, R::CallingTimeout),
        ]
    );
    assert_eq!(states(&w2, a2).last(), Some(&(Prepared, R::CallingTimeout)));
    assert_eq!(
        states(&w2, b2).last(),
        Some(&(Prepared, R::RemoteCallingTimeout))
    );
    for (world, d) in [(&w, a), (&w, b), (&w2, a2), (&w2, b2)] {
        for (_, c) in state_changes(world, d) {
            assert_eq!(c.duration, None, "{c:?}");
            assert_eq!(c.timings, None, "{c:?}");
        }
    }
}
