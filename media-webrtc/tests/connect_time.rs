//! Measures call() → `Connected` (the caller's `connected` timing) for video calls on loopback
//! over `signal-mock`, with early media on and off; prints the medians. Ignored by default:
//!
//! ```sh
//! cargo test -p callapi-media-webrtc --release --test connect_time -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::CallState;
use callapi_core::protocol::CallType;
use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_mock::{FaultPlan, MockNetwork};
use common::*;

const CALLS: usize = 20;

async fn measure(early_media: bool) -> Vec<Duration> {
    let net = MockNetwork::new(41, FaultPlan::none());
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
    let mut times = Vec::new();
    for _ in 0..CALLS {
        alice.api.call("bob", CallType::Video).await.unwrap();
        bob.wait_state(CallState::Calling).await;
        bob.api.accept().await.unwrap();
        let c = alice.wait_state(CallState::Connected).await;
        let t = c.timings.unwrap();
        if t.connected.unwrap() > Duration::from_millis(500) {
            eprintln!("slow call: {t:?}");
        }
        times.push(t.connected.unwrap());
        bob.wait_state(CallState::Connected).await;
        alice.api.hangup(None).await.unwrap();
        alice.wait_state(CallState::Prepared).await;
        bob.wait_state(CallState::Prepared).await;
        alice.assert_media_freed().await;
        bob.assert_media_freed().await;
    }
    times
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn median_call_to_connected_with_video_on_loopback() {
    init_tracing();
    let on = measure(true).await;
    let off = measure(false).await;
    println!(
        "call() -> Connected, video, loopback, {CALLS} calls each: early media on: median {:?} (min {:?}, max {:?}); off: median {:?} (min {:?}, max {:?})",
        median(on.clone()),
        on.iter().min().unwrap(),
        on.iter().max().unwrap(),
        median(off.clone()),
        off.iter().min().unwrap(),
        off.iter().max().unwrap(),
    );
}
