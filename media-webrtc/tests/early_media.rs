//! Early media follows the callee's `join_media_on_ringing`: with it, the caller's first remote
//! video frame arrives before accept; without it, the callee has no media while ringing and
//! the first frame comes only after accept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallEvent, CallState, StateReason};
use callapi_core::protocol::CallType;
use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_mock::{FaultPlan, MockNetwork};
use common::*;

async fn pair(seed: u64, early_media: bool) -> (Peer, Peer) {
    let net = MockNetwork::new(seed, FaultPlan::none());
    let mut alice = Peer::start(
        "alice",
        "a1",
        net.connect(user("alice"), device("a1")),
        WebRtcConfig::loopback(),
    );
    let mut bob = Peer::start(
        "bob",
        "b1",
        net.connect(user("bob"), device("b1")),
        WebRtcConfig::loopback(),
    );
    alice.prepare(true).await;
    bob.prepare(early_media).await;
    (alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_join_on_ringing_the_callers_first_video_frame_arrives_before_accept() {
    init_tracing();
    let (mut alice, mut bob) = pair(11, true).await;
    alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    alice.wait_event(CallEvent::RecvRemoteFirstFrame).await;
    assert_eq!(alice.api.state(), CallState::Calling, "not accepted yet");
    assert!(alice.media.counters().video.frames_received > 0);

    bob.api.accept().await.unwrap();
    let c = alice.wait_state(CallState::Connected).await;
    let t = c.timings.unwrap();
    assert!(
        t.first_remote_frame.unwrap() < t.accept.unwrap(),
        "first frame before accept: {t:?}"
    );
    bob.wait_state(CallState::Connected).await;
    alice.api.hangup(None).await.unwrap();
    bob.wait_state(CallState::Prepared).await;
    alice.assert_media_freed().await;
    bob.assert_media_freed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_join_on_ringing_the_first_video_frame_arrives_only_after_accept() {
    init_tracing();
    let (mut alice, mut bob) = pair(12, false).await;
    alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    alice.wait_event(CallEvent::RemoteUserRecvCall).await;
    // Ringing without media: bob has no peer connection, so nothing can reach alice.
    assert_eq!(bob.media.counters().peer_connections_opened, 0);
    assert_eq!(alice.media.counters().video.packets_received, 0);
    assert!(!alice.saw_event(CallEvent::RecvRemoteFirstFrame));

    bob.api.accept().await.unwrap();
    let c = alice
        .wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
        .await;
    let t = c.timings.unwrap();
    assert!(
        t.first_remote_frame.unwrap() > t.accept.unwrap(),
        "first frame after accept: {t:?}"
    );
    bob.wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
        .await;
    bob.api.hangup(None).await.unwrap();
    alice.wait_state(CallState::Prepared).await;
    alice.assert_media_freed().await;
    bob.assert_media_freed().await;
}
