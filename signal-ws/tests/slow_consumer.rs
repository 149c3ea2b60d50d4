//! A socket that does not read: what waits to be written to it stays within the per-socket
//! write buffer (`--max-write-buffer-bytes`, 1 MiB by default) in the server's memory; past
//! that the server closes it with 4010, after what the socket already took; the sender is told
//! nothing (its reliable layer retransmits). Measured on the real `callapi-signal-server`
//! binary, whose resident memory the test reads from `/proc`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use futures::StreamExt;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

/// Envelopes sent to the socket that does not read, each of about 60 kB.
const FLOOD: usize = 300;
const DATA_BYTES: usize = 60_000;
/// The server's default `--max-write-buffer-bytes`.
const WRITE_BUFFER: u64 = 1024 * 1024;

/// A WebSocket client whose socket has a small receive buffer, so that the server's writes
/// back up quickly once it stops reading.
async fn small_buffer_client(url: &str, u: &str, d: &str) -> Raw {
    let mut req = format!("{url}?device={d}").into_client_request().unwrap();
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token(u))).unwrap(),
    );
    let host = req.uri().authority().unwrap().as_str().to_owned();
    let addr: std::net::SocketAddr = host.parse().unwrap();
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(8 * 1024).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let (ws, _) =
        tokio_tungstenite::client_async(req, tokio_tungstenite::MaybeTlsStream::Plain(tcp))
            .await
            .unwrap();
    let mut raw = Raw { ws };
    assert_eq!(raw.json().await["type"], "hello");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_never_reads_is_bounded_by_the_write_buffer_then_closed_with_4010() {
    // The server binary with its defaults, but no rate limit in the way of the flood.
    let server = ServerProcess::start(
        "slow",
        &[
            "--rate-per-sec",
            "100000",
            "--rate-burst",
            "100000",
            "--rate-close-after",
            "100000",
        ],
    )
    .await;
    let mut slow = small_buffer_client(&server.url, "slowpoke", "s1").await;
    let mut alice = raw_connect(&server.url, Some(&token("alice")), "a1")
        .await
        .unwrap();
    assert_eq!(alice.json().await["type"], "hello");

    // Warm up the code paths (and the allocator) with a round trip of a large envelope.
    let data = "x".repeat(DATA_BYTES);
    let warm = message(("alice", "a1"), "alice", &data);
    alice.send_env(&warm).await;
    assert_eq!(alice.json().await["id"], warm.id.to_string());
    let before = rss_kib(server.pid());

    // slowpoke reads nothing while alice sends it ~18 MB.
    let flood: Vec<_> = (0..FLOOD)
        .map(|_| message(("alice", "a1"), "slowpoke", &data))
        .collect();
    for env in &flood {
        alice.send_env(env).await;
    }
    // The server handles one connection's frames in order: once this marker is back, every
    // envelope of the flood has been routed. No error frame came before it: the sender is told
    // nothing about a slow receiver.
    let marker = message(("alice", "a1"), "alice", "marker");
    alice.send_env(&marker).await;
    let back = alice.json().await;
    assert_eq!(back["id"], marker.id.to_string(), "{back}");
    let after = rss_kib(server.pid());
    let growth_kib = after.saturating_sub(before);
    println!(
        "server RSS {before} KiB -> {after} KiB (+{growth_kib} KiB) after {FLOOD} envelopes of \
         {DATA_BYTES} bytes to a socket that does not read"
    );
    // The write buffer, plus room for the allocator's own slack; without the bound the growth
    // was ~17 MB (the 256-frame queue filled with 64 kB frames).
    assert!(
        growth_kib * 1024 <= WRITE_BUFFER + 2 * 1024 * 1024,
        "server memory grew by {growth_kib} KiB for one slow socket"
    );

    // slowpoke finally reads: what the socket had taken, then the close frame with 4010.
    let mut got = 0usize;
    let code = loop {
        match slow.next().await {
            Frame::Json(v) => {
                assert_eq!(v["from"], "alice", "{v}");
                got += 1;
            }
            Frame::Close(code, reason) => {
                println!("slowpoke read {got} envelopes, then close {code:?} {reason:?}");
                break code;
            }
            Frame::End => panic!("the socket ended without a close frame after {got} envelopes"),
        }
    };
    assert_eq!(code, Some(4010));
    assert!(
        got < FLOOD,
        "{got} of {FLOOD} envelopes were kept for a slow socket"
    );

    let addr = server.url.trim_start_matches("ws://");
    let addr: std::net::SocketAddr = addr.split('/').next().unwrap().parse().unwrap();
    let (status, _, body) = http_get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert_eq!(
        metric(
            &body,
            "callapi_signal_limit_hits_total{limit=\"write_buffer\"}"
        ),
        1.0
    );
    assert!(
        metric(
            &body,
            "callapi_signal_envelopes_dropped_total{reason=\"slow_consumer\"}"
        ) >= 1.0
    );

    // slowpoke reconnects and is served normally.
    let mut again = raw_connect(&server.url, Some(&token("slowpoke")), "s1")
        .await
        .unwrap();
    assert_eq!(again.json().await["type"], "hello");
    let hi = message(("alice", "a1"), "slowpoke", "hi again");
    alice.send_env(&hi).await;
    assert_eq!(again.json().await["data"], "hi again");
    drop(slow.ws.next().await);
}
