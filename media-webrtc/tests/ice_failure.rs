//! A call whose ICE cannot connect (every candidate blocked on the way) ends with `MediaFailed`
//! within the configured media timeout, and its peer connections are freed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_core::call::{CallState, StateReason};
use callapi_core::protocol::CallType;
use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_mock::{FaultPlan, MockNetwork};
use common::*;

const MEDIA_TIMEOUT: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocked_candidates_end_the_call_with_media_failed_within_the_media_timeout() {
    init_tracing();
    let net = MockNetwork::new(31, FaultPlan::none());
    let config = WebRtcConfig::loopback().with_connect_timeout(MEDIA_TIMEOUT);
    let (alice_signal, offers) = Recorder::new(
        net.connect(user("alice"), device("a1")),
        Rewrite::BlockCandidates,
    );
    let (bob_signal, _) = Recorder::new(
        net.connect(user("bob"), device("b1")),
        Rewrite::BlockCandidates,
    );
    let mut alice = Peer::start("alice", "a1", alice_signal, config.clone());
    let mut bob = Peer::start("bob", "b1", bob_signal, config);
    alice.prepare(true).await;
    bob.prepare(true).await;

    alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    let accepted = Instant::now();
    bob.api.accept().await.unwrap();

    // Both media timeouts start when the descriptions are set, about together: the side whose
    // timer fires first ends with `MediaFailed` and hangs up; the other fails too, or hears
    // that hang-up (reason `media_failed`) first.
    let bob_end = bob.wait_state(CallState::Prepared).await;
    let alice_end = alice.wait_state(CallState::Prepared).await;
    let failed = |c: &callapi_core::call::StateChange| c.reason == StateReason::MediaFailed;
    let told = |c: &callapi_core::call::StateChange| {
        c.reason == StateReason::RemoteHangup && c.event_reason.as_deref() == Some("media_failed")
    };
    assert!(
        (failed(&bob_end) || failed(&alice_end))
            && (failed(&bob_end) || told(&bob_end))
            && (failed(&alice_end) || told(&alice_end)),
        "alice: {alice_end:#?}\nbob: {bob_end:#?}"
    );
    let took = accepted.elapsed();
    assert!(
        took <= MEDIA_TIMEOUT + Duration::from_millis(1500),
        "ended {took:?} after accept (media timeout {MEDIA_TIMEOUT:?})"
    );
    assert!(
        !first_sdp(&offers).contains("a=candidate"),
        "candidates were blocked"
    );
    assert_eq!(alice.media.counters().video.packets_received, 0);
    alice.assert_media_freed().await;
    bob.assert_media_freed().await;
}
