//! `MockMedia` reports joins and first frames on schedule and records the commands it gets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::media::{MediaEngine, MediaError, MediaEvent, MediaKind, MediaPlan, MediaRole};
use callapi_core::protocol::{CallId, CallType};
use callapi_signal_mock::{MediaCommandRecord, MockMedia, MockMediaBehavior};
use common::join_request as request;
use serde_json::json;
use tokio::time::{timeout, Instant};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Every event until none arrives for ten (paused) seconds, with its time since `t0`.
async fn events_until_quiet(media: &mut MockMedia, t0: Instant) -> Vec<(Duration, MediaEvent)> {
    let mut out = Vec::new();
    while let Ok(Some(event)) = timeout(Duration::from_secs(10), media.next_event()).await {
        out.push((t0.elapsed(), event));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn default_behaviour_reports_the_call_progress_on_schedule() {
    let (mut media, control) = MockMedia::new();
    assert!(media.reports_frames());
    let call_id = CallId::new_v4();
    let t0 = Instant::now();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    assert_eq!(control.active_calls(), vec![call_id]);
    assert_eq!(
        events_until_quiet(&mut media, t0).await,
        vec![
            (ms(10), MediaEvent::LocalJoined { call_id }),
            (ms(30), MediaEvent::RemoteJoined { call_id }),
            (ms(60), MediaEvent::FirstLocalFramePublished { call_id }),
            (
                ms(60),
                MediaEvent::FirstRemoteFrame {
                    call_id,
                    kind: MediaKind::Video
                }
            ),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn audio_calls_report_an_audio_first_frame_and_signals_follow_the_role() {
    let behavior = MockMediaBehavior {
        join_delay: ms(5),
        first_frame_delay: Some(ms(10)),
        remote_joined_delay: Some(ms(40)),
        fail_join: None,
        emit_signal: true,
    };
    let (mut media, _control) = MockMedia::with_behavior(behavior);
    let call_id = CallId::new_v4();
    let t0 = Instant::now();
    media
        .join(request(call_id, MediaRole::Callee, CallType::Audio))
        .await
        .unwrap();
    assert_eq!(
        events_until_quiet(&mut media, t0).await,
        vec![
            (ms(5), MediaEvent::LocalJoined { call_id }),
            (
                ms(5),
                MediaEvent::Signal {
                    call_id,
                    payload: json!({"sdp": "mock-answer"})
                }
            ),
            (ms(15), MediaEvent::FirstLocalFramePublished { call_id }),
            (ms(45), MediaEvent::RemoteJoined { call_id }),
            (
                ms(45),
                MediaEvent::FirstRemoteFrame {
                    call_id,
                    kind: MediaKind::Audio
                }
            ),
        ]
    );

    let caller_call = CallId::new_v4();
    media
        .join(request(caller_call, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    let events = events_until_quiet(&mut media, Instant::now()).await;
    assert!(events.iter().any(|(_, e)| e
        == &MediaEvent::Signal {
            call_id: caller_call,
            payload: json!({"sdp": "mock-offer"})
        }));
}

#[tokio::test(start_paused = true)]
async fn no_first_frame_and_no_remote_mean_only_a_local_join() {
    let behavior = MockMediaBehavior {
        first_frame_delay: None,
        remote_joined_delay: None,
        ..MockMediaBehavior::default()
    };
    let (mut media, _control) = MockMedia::with_behavior(behavior);
    let call_id = CallId::new_v4();
    let t0 = Instant::now();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    assert_eq!(
        events_until_quiet(&mut media, t0).await,
        vec![(ms(10), MediaEvent::LocalJoined { call_id })]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_join_returns_the_error_and_schedules_nothing() {
    let (mut media, control) = MockMedia::new();
    control.set_behavior(MockMediaBehavior {
        fail_join: Some("no camera".into()),
        ..MockMediaBehavior::default()
    });
    assert_eq!(control.behavior().fail_join.as_deref(), Some("no camera"));
    let call_id = CallId::new_v4();
    assert_eq!(
        media
            .join(request(call_id, MediaRole::Caller, CallType::Video))
            .await,
        Err(MediaError::Join("no camera".into()))
    );
    assert!(control.active_calls().is_empty());
    assert!(events_until_quiet(&mut media, Instant::now())
        .await
        .is_empty());
    assert_eq!(control.commands().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn manual_events_are_always_reported() {
    let (mut media, control) = MockMedia::new();
    let call_id = CallId::new_v4();
    let failed = MediaEvent::Failed {
        call_id,
        message: "ICE failed".into(),
    };
    control.emit(failed.clone());
    assert_eq!(media.next_event().await, Some(failed));
    let other = media.control();
    other.emit(MediaEvent::RemoteLeft { call_id });
    assert_eq!(
        media.next_event().await,
        Some(MediaEvent::RemoteLeft { call_id })
    );
}

#[tokio::test(start_paused = true)]
async fn commands_are_recorded_in_order() {
    let (mut media, control) = MockMedia::new();
    let call_id = CallId::new_v4();
    let join = request(call_id, MediaRole::Caller, CallType::Video);
    let plan = MediaPlan {
        subscribe_audio: true,
        ..join.plan
    };
    media.join(join.clone()).await.unwrap();
    media.update_plan(call_id, plan).await.unwrap();
    media
        .remote_signal(call_id, json!({"candidate": "c"}))
        .await
        .unwrap();
    media.stats(call_id).await.unwrap();
    media.leave(call_id).await;
    assert_eq!(
        control.commands(),
        vec![
            MediaCommandRecord::Join(join),
            MediaCommandRecord::UpdatePlan { call_id, plan },
            MediaCommandRecord::RemoteSignal {
                call_id,
                payload: json!({"candidate": "c"})
            },
            MediaCommandRecord::Stats { call_id },
            MediaCommandRecord::Leave { call_id },
        ]
    );
    control.clear_commands();
    assert!(control.commands().is_empty());

    // Unknown calls: plan updates and stats fail, early negotiation data is accepted.
    let unknown = CallId::new_v4();
    assert_eq!(
        media.update_plan(unknown, plan).await,
        Err(MediaError::UnknownCall(unknown))
    );
    assert_eq!(
        media.stats(unknown).await,
        Err(MediaError::UnknownCall(unknown))
    );
    assert_eq!(media.remote_signal(unknown, json!({})).await, Ok(()));
}

#[tokio::test(start_paused = true)]
async fn stats_are_reported_for_a_joined_call() {
    let (mut media, _control) = MockMedia::with_behavior(MockMediaBehavior {
        join_delay: Duration::from_secs(5),
        ..MockMediaBehavior::default()
    });
    let call_id = CallId::new_v4();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    media.stats(call_id).await.unwrap();
    assert!(matches!(
        media.next_event().await,
        Some(MediaEvent::Stats { call_id: c, .. }) if c == call_id
    ));
}

#[tokio::test(start_paused = true)]
async fn joining_again_restarts_the_schedule() {
    let (mut media, control) = MockMedia::new();
    let call_id = CallId::new_v4();
    let t0 = Instant::now();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    tokio::time::advance(ms(5)).await;
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    let events = events_until_quiet(&mut media, t0).await;
    assert_eq!(
        events.first(),
        Some(&(ms(15), MediaEvent::LocalJoined { call_id }))
    );
    assert_eq!(events.len(), 4);
    assert_eq!(control.active_calls(), vec![call_id]);
}
