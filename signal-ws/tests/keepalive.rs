//! Keepalive: the server pings and drops a socket that stays silent for two ping intervals
//! (missed pongs); the client pings too and treats a silent server as a dead link (a
//! half-open socket after a network change); a live idle connection survives.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::connection::{LinkEvent, Transport, TransportLink};
use callapi_signal_ws::client::{ClientOptions, WsTransport};
use common::*;
use futures::SinkExt;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

const INTERVAL: Duration = Duration::from_millis(200);
/// Scheduling slack on a loaded 2-core machine.
const SLACK: Duration = Duration::from_millis(250);

#[tokio::test]
async fn the_server_drops_a_socket_that_stops_answering_pings_within_two_intervals() {
    let mut c = config();
    c.timers.ping_interval = INTERVAL;
    let server = start(c).await;
    let mut silent = raw_user(&server, "mute", "m1").await;
    let went_quiet = Instant::now();
    assert_eq!(server.stats().devices, 1);

    // From now on the client reads raw bytes (the server's pings) but never answers them.
    let MaybeTlsStream::Plain(tcp) = silent.ws.get_mut() else {
        panic!("plain TCP expected");
    };
    let mut buf = [0u8; 1024];
    let dropped_after = tokio::time::timeout(WAIT, async {
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => return went_quiet.elapsed(),
                Ok(_) => continue,
            }
        }
    })
    .await
    .expect("the server drops the socket");
    assert!(
        dropped_after <= 2 * INTERVAL + SLACK,
        "dropped after {dropped_after:?}"
    );
    assert!(dropped_after >= INTERVAL, "dropped after {dropped_after:?}");
    assert_eq!(server.stats().devices, 0);
    assert_eq!(
        server_metric(&server, "callapi_signal_keepalive_drops_total"),
        1.0
    );
}

#[tokio::test]
async fn an_idle_connection_that_answers_pings_stays_up() {
    let mut c = config();
    c.timers.ping_interval = Duration::from_millis(100);
    let server = start(c).await;
    let mut options = ClientOptions::default();
    options.ping_interval = Duration::from_millis(100);
    let mut link = WsTransport::new(&server.url())
        .unwrap()
        .with_options(options)
        .connect(&identity("idle", "i1"), &token("idle"))
        .await
        .unwrap();
    // Eight ping intervals of silence from the application: nothing happens to the link.
    let quiet = tokio::time::timeout(Duration::from_millis(800), link.next_event()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    link.send(message(("idle", "i1"), "idle", "ping?"))
        .await
        .unwrap();
    let ev = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert!(matches!(ev, Some(LinkEvent::Message(_))), "{ev:?}");
    assert_eq!(
        server_metric(&server, "callapi_signal_keepalive_drops_total"),
        0.0
    );
}

#[tokio::test]
async fn the_client_treats_a_silent_server_as_a_dead_link() {
    // A server that says hello and then never reads or writes again (a half-open socket).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (held_tx, mut held_rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut ws = tokio_tungstenite::accept_async(tcp).await.unwrap();
        let hello = r#"{"type":"hello","user":"alice","device":"a1","exp":4102444800}"#;
        ws.send(Message::text(hello)).await.unwrap();
        let _ = held_tx.send(ws); // kept open, never polled again
    });
    let mut options = ClientOptions::default();
    options.ping_interval = INTERVAL;
    let mut link = WsTransport::new(&format!("ws://{addr}/v1/signal"))
        .unwrap()
        .with_options(options)
        .connect(&identity("alice", "a1"), "any")
        .await
        .unwrap();
    let since = Instant::now();
    let _held = held_rx.recv().await.unwrap();
    let ev = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    let after = since.elapsed();
    assert_eq!(ev, Some(LinkEvent::Closed { error: None }));
    assert!(after <= 2 * INTERVAL + SLACK, "dead after {after:?}");
    assert!(after >= INTERVAL, "dead after {after:?}");
}

#[tokio::test]
async fn a_browser_can_ping_with_a_control_frame() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    alice.send_text(r#"{"type":"ping","nonce":"n-1"}"#).await;
    let pong = alice.json().await;
    assert_eq!(pong, serde_json::json!({"type": "pong", "nonce": "n-1"}));
    alice.send_text(r#"{"type":"ping"}"#).await;
    assert_eq!(alice.json().await, serde_json::json!({"type": "pong"}));
}
