//! Limits, each answered as documented and never with a crash: oversize frames (close 1009),
//! invalid envelopes (`invalid_envelope` / `too_large` errors, the socket stays), message floods
//! (`rate_limited` errors, then close 4008), too many connections for one user (close 4029),
//! too many pending handshakes (HTTP 503). Meanwhile other users' calls go on unaffected.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallState, StateReason};
use callapi_core::connection::{ConnectError, Transport};
use callapi_signal_ws::client::WsTransport;
use callapi_signal_ws::frames::close_code;
use common::*;
use futures::SinkExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

#[tokio::test]
async fn an_oversize_frame_closes_with_1009() {
    let server = start(config()).await;
    let mut mallory = raw_user(&server, "mallory", "m1").await;
    mallory.send_text("x".repeat(100 * 1024)).await;
    assert_eq!(mallory.expect_close().await, close_code::MESSAGE_TOO_BIG);
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_limit_hits_total{limit=\"frame_size\"}"
        ),
        1.0
    );
}

#[tokio::test]
async fn invalid_frames_get_error_frames_and_the_socket_stays() {
    let mut c = config();
    c.limits.max_frame_bytes = 128 * 1024;
    let server = start(c).await;
    let mut alice = raw_user(&server, "alice", "a1").await;

    alice.send_text("{not json").await;
    let e = alice.expect_error("invalid_envelope").await;
    assert!(e.get("id").is_none(), "{e}");
    alice
        .send_text(r#"{"v":1,"id":"0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60","kind":"invite"}"#)
        .await;
    let e = alice.expect_error("invalid_envelope").await;
    assert_eq!(e["id"], "0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60");
    alice.send_text(r#"{"type":"subscribe"}"#).await;
    alice.expect_error("invalid_envelope").await;
    alice
        .ws
        .send(Message::binary(b"\x00\x01".to_vec()))
        .await
        .unwrap();
    alice.expect_error("invalid_envelope").await;
    // Within the frame limit (128 KiB here) but over the protocol's 64 KiB envelope limit.
    let mut big = message(("alice", "a1"), "alice", "");
    big.body = callapi_core::protocol::Body::Message {
        data: "y".repeat(70 * 1024),
    };
    let json = serde_json::json!({
        "v": 1, "id": big.id.to_string(), "ts": big.ts, "from": "alice", "from_device": "a1",
        "to": "alice", "call_id": big.call_id.to_string(), "kind": "message",
        "lifetime_ms": 60000, "data": "y".repeat(70 * 1024),
    });
    alice.send_text(json.to_string()).await;
    alice.expect_error("too_large").await;

    // Still connected and relaying.
    alice
        .send_env(&message(("alice", "a1"), "alice", "still here"))
        .await;
    assert_eq!(alice.json().await["data"], "still here");
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"invalid\"}"
        ),
        4.0
    );
}

#[tokio::test]
async fn an_envelope_of_a_newer_major_version_gets_its_own_error_code() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let mut bob = raw_user(&server, "bob", "b1").await;
    // A version-2 client talking through this (version-1) server: not relayed, and told why.
    let id = "0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60";
    alice
        .send_text(format!(
            r#"{{"v":2,"id":"{id}","from":"alice","from_device":"a1","to":"bob","kind":"teleport"}}"#
        ))
        .await;
    let e = alice.expect_error("unsupported_version").await;
    assert_eq!(e["id"], id);
    assert!(e["message"].as_str().unwrap().contains("upgrade"), "{e}");
    let marker = message(("alice", "a1"), "bob", "v1 still works");
    alice.send_env(&marker).await;
    assert_eq!(bob.json().await["data"], "v1 still works");
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_with_4008() {
    let mut c = config();
    c.limits.rate_per_sec = 5;
    c.limits.rate_burst = 5;
    c.limits.rate_close_after = 20;
    let server = start(c).await;
    let mut mallory = raw_user(&server, "mallory", "m1").await;
    let mut victim = raw_user(&server, "victim", "v1").await;
    let flood: Vec<_> = (0..40)
        .map(|i| message(("mallory", "m1"), "victim", &format!("spam {i}")))
        .collect();
    for env in &flood {
        if mallory
            .ws
            .send(Message::text(
                callapi_core::protocol::encode_string(env).unwrap(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    let mut limited = Vec::new();
    let code = loop {
        match mallory.next().await {
            Frame::Json(v) => {
                assert_eq!(v["code"], "rate_limited", "{v}");
                limited.push(v["id"].as_str().unwrap().to_owned());
            }
            Frame::Close(code, _) => break code,
            Frame::End => panic!("no close frame"),
        }
    };
    assert_eq!(code, Some(close_code::RATE_LIMITED));
    // The burst went through (a few more may have refilled), the rest was refused by id.
    assert!(limited.len() >= 15, "{} limited", limited.len());
    let first_refused = flood.iter().position(|e| e.id.to_string() == limited[0]);
    assert!(matches!(first_refused, Some(5..=7)), "{first_refused:?}");
    let mut delivered = 0;
    while let Ok(Frame::Json(_)) =
        tokio::time::timeout(Duration::from_millis(200), victim.next()).await
    {
        delivered += 1;
    }
    assert!((5..=7).contains(&delivered), "{delivered} delivered");
    let m = server.metrics_text();
    assert_eq!(
        metric(&m, "callapi_signal_limit_hits_total{limit=\"rate_close\"}"),
        1.0
    );
    assert!(metric(&m, "callapi_signal_limit_hits_total{limit=\"rate\"}") >= 15.0);
}

#[tokio::test]
async fn one_connection_too_many_for_a_user_closes_with_4029() {
    let mut c = config();
    c.limits.max_connections_per_user = 2;
    let server = start(c).await;
    let _d1 = raw_user(&server, "alice", "d1").await;
    let _d2 = raw_user(&server, "alice", "d2").await;
    let mut d3 = raw_connect(&server.url(), Some(&token("alice")), "d3")
        .await
        .unwrap();
    assert_eq!(d3.expect_close().await, close_code::TOO_MANY_CONNECTIONS);
    let err = WsTransport::new(&server.url())
        .unwrap()
        .connect(&identity("alice", "d4"), &token("alice"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ConnectError::Transient(m) if m.contains("4029")),
        "{err:?}"
    );
    // A device reconnecting replaces its old connection, cap or not.
    let mut old = raw_user(&server, "bob", "b1").await;
    let _new = raw_user(&server, "bob", "b1").await;
    assert_eq!(old.expect_close().await, close_code::REPLACED);
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_limit_hits_total{limit=\"connections_per_user\"}"
        ),
        2.0
    );
    assert_eq!(server.stats().devices, 3);
}

#[tokio::test]
async fn a_reconnecting_device_replaces_its_old_connection_even_at_the_user_limit() {
    let mut c = config();
    c.limits.max_connections_per_user = 2;
    let server = start(c).await;
    let mut old_d1 = raw_user(&server, "alice", "d1").await;
    let _d2 = raw_user(&server, "alice", "d2").await;
    // alice holds the maximum; d1 connecting again is a replacement, not one more connection.
    let mut new_d1 = raw_user(&server, "alice", "d1").await;
    assert_eq!(old_d1.expect_close().await, close_code::REPLACED);
    new_d1
        .send_env(&message(("alice", "d1"), "alice", "from d1"))
        .await;
    assert_eq!(new_d1.json().await["data"], "from d1");
    // A new device is still one too many.
    let mut d3 = raw_connect(&server.url(), Some(&token("alice")), "d3")
        .await
        .unwrap();
    assert_eq!(d3.expect_close().await, close_code::TOO_MANY_CONNECTIONS);
}

#[tokio::test]
async fn connections_beyond_the_pending_handshake_limit_get_503() {
    let mut c = config();
    c.limits.max_pending_handshakes = 2;
    c.timers.handshake_timeout = Duration::from_millis(500);
    let server = start(c).await;
    let addr = server.local_addr();
    // Two connections that never send a request hold both handshake slots.
    let mut idle1 = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut idle2 = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut third = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(WAIT, third.read_to_string(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_limit_hits_total{limit=\"pending_handshakes\"}"
        ),
        1.0
    );
    // The server ends the idle ones after the handshake timeout; then connections work again.
    let mut sink = Vec::new();
    for idle in [&mut idle1, &mut idle2] {
        let _ = tokio::time::timeout(WAIT, idle.read_to_end(&mut sink)).await;
    }
    let _ = idle1.shutdown().await;
    raw_user(&server, "alice", "a1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abuse_on_the_same_server_does_not_disturb_other_calls() {
    let mut c = config();
    c.limits.rate_per_sec = 20;
    c.limits.rate_burst = 40;
    c.limits.rate_close_after = 50;
    c.limits.max_connections_per_user = 2;
    let server = start(c).await;
    let url = server.url();
    let mut carol = Device::start(&url, "carol", "c1", 1);
    let mut dave = Device::start(&url, "dave", "d1", 2);
    carol.ready().await;
    dave.ready().await;

    let abuse = {
        let url = url.clone();
        tokio::spawn(async move {
            let mut codes = Vec::new();
            // Oversize.
            let mut m = raw_connect(&url, Some(&token("mallory")), "m1")
                .await
                .unwrap();
            m.json().await;
            m.send_text("z".repeat(80 * 1024)).await;
            codes.push(m.expect_close().await);
            // Garbage, then a flood at carol.
            let mut m = raw_connect(&url, Some(&token("mallory")), "m1")
                .await
                .unwrap();
            m.json().await;
            m.send_text("][").await;
            m.expect_error("invalid_envelope").await;
            for i in 0..300 {
                let env = message(("mallory", "m1"), "carol", &format!("spam {i}"));
                if m.ws
                    .send(Message::text(
                        callapi_core::protocol::encode_string(&env).unwrap(),
                    ))
                    .await
                    .is_err()
                {
                    break;
                }
            }
            codes.push(m.expect_close().await);
            // Connection cap.
            let _m1 = raw_user_at(&url, "mallory", "m1").await;
            let _m2 = raw_user_at(&url, "mallory", "m2").await;
            let mut m3 = raw_connect(&url, Some(&token("mallory")), "m3")
                .await
                .unwrap();
            codes.push(m3.expect_close().await);
            codes
        })
    };

    let call_id = carol
        .api
        .call("dave", callapi_core::protocol::CallType::Video)
        .await
        .unwrap();
    dave.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    dave.api.accept().await.unwrap();
    carol.wait_state(CallState::Connected).await;
    dave.wait_state(CallState::Connected).await;
    let codes = tokio::time::timeout(WAIT, abuse).await.unwrap().unwrap();
    assert_eq!(
        codes,
        [
            close_code::MESSAGE_TOO_BIG,
            close_code::RATE_LIMITED,
            close_code::TOO_MANY_CONNECTIONS
        ]
    );
    carol.api.send_message("all fine").await.unwrap();
    dave.wait_for("message", |n| {
        matches!(n, callapi_core::call::Notification::MessageReceived { data, .. } if data == "all fine")
    })
    .await;
    dave.api.hangup(None).await.unwrap();
    carol
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    assert_eq!(
        carol.api.call_timings().await.unwrap().map(|_| call_id),
        Some(call_id)
    );
    // carol's and dave's links never dropped.
    carol.drain();
    dave.drain();
    for d in [&carol, &dave] {
        let links = d.links();
        assert!(
            links.iter().all(|s| matches!(
                s,
                callapi_core::signal::LinkState::Connecting
                    | callapi_core::signal::LinkState::Connected
            )),
            "{}: {links:?}",
            d.user
        );
    }
}

async fn raw_user_at(url: &str, u: &str, d: &str) -> Raw {
    let mut raw = raw_connect(url, Some(&token(u)), d).await.unwrap();
    assert_eq!(raw.json().await["type"], "hello");
    raw
}
