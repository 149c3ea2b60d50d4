//! A video call between two `CallApi`s with `WebRtcMedia` over `signal-mock`, with real UDP on
//! loopback: early media, `Connected` on a complete keyframe, samples in both sinks, remote
//! audio only from `Connected` on, and both peer connections freed after the hang-up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_mock::{FaultPlan, MockNetwork};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_over_mock_connects_on_keyframes_and_frees_its_peer_connections() {
    init_tracing();
    let net = MockNetwork::new(7, FaultPlan::none());
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
    bob.prepare(true).await;
    video_call_scenario(&mut alice, &mut bob).await;
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
}
