//! The same video call as `video_call.rs`, with signaling over a real `callapi-signal-ws`
//! server on 127.0.0.1 (port 0) instead of the mock network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::client::{WsSignalClient, WsTransport};
use callapi_signal_ws::server::{ServerConfig, SignalServer};
use common::*;

const SECRET: &[u8] = b"media-webrtc-test-secret-0123456";

/// A supervised signaling client for `u`/`d` that connects at once (no start-up jitter).
fn signal(url: &str, u: &str, d: &str) -> Supervisor<WsTransport> {
    let name = u.to_owned();
    let credentials = Credentials::token(move || {
        let t = TokenAuthority::new(SECRET)
            .and_then(|a| a.mint(&Claims::new(name.clone(), Duration::from_secs(3600))));
        async move { t.map_err(|e| TokenError(e.to_string())) }
    });
    let identity = Identity {
        user: user(u),
        device: device(d),
    };
    WsSignalClient::start(
        WsTransport::new(url).unwrap(),
        SupervisorConfig::new(identity, credentials)
            .with_schedule(RetrySchedule::immediate_first_attempt()),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_over_websocket_connects_on_keyframes_and_frees_its_peer_connections() {
    init_tracing();
    let server = SignalServer::start(ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.to_vec(),
    ))
    .await
    .unwrap();
    let url = server.url();
    let mut alice = Peer::start(
        "alice",
        "a1",
        signal(&url, "alice", "a1"),
        WebRtcConfig::loopback(),
    );
    let mut bob = Peer::start(
        "bob",
        "b1",
        signal(&url, "bob", "b1"),
        WebRtcConfig::loopback(),
    );
    for p in [&mut alice, &mut bob] {
        p.wait_for(
            "link up",
            |n| matches!(n, callapi_core::call::Notification::Link(s) if s.is_connected()),
        )
        .await;
        p.prepare(true).await;
    }
    video_call_scenario(&mut alice, &mut bob).await;
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
    server.shutdown().await;
}
