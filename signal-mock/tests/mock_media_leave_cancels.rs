//! `leave` cancels a call's pending media events: none is reported after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::media::{MediaEngine, MediaEvent, MediaRole};
use callapi_core::protocol::{CallId, CallType};
use callapi_signal_mock::MockMedia;
use common::join_request as request;
use tokio::time::{timeout, Instant};

/// Every event until none arrives for ten (paused) seconds, with its time since `t0`.
async fn events_until_quiet(media: &mut MockMedia, t0: Instant) -> Vec<(Duration, MediaEvent)> {
    let mut out = Vec::new();
    while let Ok(Some(event)) = timeout(Duration::from_secs(10), media.next_event()).await {
        out.push((t0.elapsed(), event));
    }
    out
}

#[tokio::test(start_paused = true)]
async fn leave_cancels_pending_events_of_that_call_only() {
    let (mut media, control) = MockMedia::new();
    let (left, kept) = (CallId::new_v4(), CallId::new_v4());
    let t0 = Instant::now();
    media
        .join(request(left, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    media
        .join(request(kept, MediaRole::Callee, CallType::Video))
        .await
        .unwrap();
    assert_eq!(
        media.next_event().await,
        Some(MediaEvent::LocalJoined { call_id: left })
    );
    assert_eq!(
        media.next_event().await,
        Some(MediaEvent::LocalJoined { call_id: kept })
    );
    media.leave(left).await;
    assert!(!control.is_active(left));
    let rest = events_until_quiet(&mut media, t0).await;
    assert!(rest.iter().all(|(_, e)| e.call_id() == kept), "{rest:?}");
    assert_eq!(rest.len(), 3);
}

#[tokio::test(start_paused = true)]
async fn events_already_queued_before_leave_are_not_reported_after_it() {
    let (mut media, _control) = MockMedia::new();
    let call_id = CallId::new_v4();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    // Let every scheduled event fire without reading any of them.
    tokio::time::advance(Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    media.leave(call_id).await;
    assert!(events_until_quiet(&mut media, Instant::now())
        .await
        .is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_call_can_be_joined_again_after_leaving() {
    let (mut media, control) = MockMedia::new();
    let call_id = CallId::new_v4();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    media.leave(call_id).await;
    let t0 = Instant::now();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    assert_eq!(events_until_quiet(&mut media, t0).await.len(), 4);
    assert_eq!(control.active_calls(), vec![call_id]);
}

#[tokio::test(start_paused = true)]
async fn dropping_the_engine_stops_its_timers() {
    let (mut media, control) = MockMedia::new();
    let call_id = CallId::new_v4();
    media
        .join(request(call_id, MediaRole::Caller, CallType::Video))
        .await
        .unwrap();
    drop(media);
    assert!(control.active_calls().is_empty());
    tokio::time::advance(Duration::from_secs(1)).await;
}
