//! The same video call as `video_call.rs`, with signaling over a real `callapi-signal-ws`
//! server on 127.0.0.1 (port 0) instead of the mock network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_media_webrtc::WebRtcConfig;
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_over_websocket_connects_on_keyframes_and_frees_its_peer_connections() {
    init_tracing();
    let server = ws_server().await;
    let url = server.url();
    let mut alice = Peer::start(
        "alice",
        "a1",
        ws_signal(&url, "alice", "a1"),
        WebRtcConfig::loopback(),
    );
    let mut bob = Peer::start(
        "bob",
        "b1",
        ws_signal(&url, "bob", "b1"),
        WebRtcConfig::loopback(),
    );
    for p in [&mut alice, &mut bob] {
        p.wait_link_up().await;
        p.prepare(true).await;
    }
    video_call_scenario(&mut alice, &mut bob).await;
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
    server.shutdown().await;
}
