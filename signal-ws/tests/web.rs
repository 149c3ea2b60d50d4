//! The web softphone page (`--web`) and the development token endpoint (`--dev-tokens`): the
//! page's files are served only when enabled, with the right content types; `POST /dev/token`
//! exists only with dev tokens on, refuses bad input with a 400 that says why, and the token it
//! returns authenticates a WebSocket as that user and device.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use callapi_signal_ws::server::{ServerConfig, DEV_TOKEN_PATH};
use common::*;
use serde_json::Value;

fn web_config(dev_tokens: bool) -> ServerConfig {
    let mut c = config();
    c.web.enabled = true;
    c.web.dev_tokens = dev_tokens;
    c
}

/// A plain HTTP/1.1 request with `body`; returns (status, head in lower case, body).
async fn http(addr: SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let (status, head, body) = http_request(addr, method, path, body).await;
    (status, head.to_ascii_lowercase(), body)
}

async fn post_token(addr: SocketAddr, body: &str) -> (u16, String, String) {
    http(addr, "POST", DEV_TOKEN_PATH, body).await
}

fn content_type(head: &str) -> &str {
    head.lines()
        .find_map(|l| l.strip_prefix("content-type:"))
        .map(str::trim)
        .unwrap_or("")
}

#[tokio::test]
async fn the_page_is_served_only_with_web() {
    let off = start(config()).await;
    for path in ["/", "/index.html", "/softphone.js", "/softphone.css"] {
        let (status, _, body) = http_get(off.local_addr(), path).await;
        assert_eq!(status, 404, "{path} without --web: {body}");
    }
    let on = start(web_config(false)).await;
    let addr = on.local_addr();
    let cases = [
        ("/", "text/html; charset=utf-8", "callapi softphone"),
        ("/index.html", "text/html; charset=utf-8", "softphone.js"),
        (
            "/softphone.js",
            "text/javascript; charset=utf-8",
            "WebSocketTransport",
        ),
        ("/softphone.css", "text/css; charset=utf-8", ".tile"),
    ];
    for (path, ctype, needle) in cases {
        let (status, head, body) = http_get(addr, path).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(content_type(&head), ctype, "{path}");
        assert!(body.contains(needle), "{path} lacks {needle:?}");
        assert!(head.contains("x-content-type-options: nosniff"), "{head}");
    }
    let (status, head, body) = http(addr, "HEAD", "/", "").await;
    assert_eq!(
        (status, content_type(&head), body.as_str()),
        (200, "text/html; charset=utf-8", "")
    );
    // Everything else is as without the page.
    assert_eq!(http_get(addr, "/nope").await.0, 404);
    assert_eq!(http_get(addr, "/healthz").await.0, 200);
    assert_eq!(http_get(addr, "/v1/signal").await.0, 401);
    assert_eq!(http(addr, "POST", "/", "").await.0, 404);
    // The dev token endpoint stays off with the page alone.
    let (status, _, body) = post_token(addr, r#"{"user":"web","device":"b1"}"#).await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn a_dev_token_authenticates_a_websocket_as_that_user() {
    let server = start(web_config(true)).await;
    let addr = server.local_addr();
    let (status, head, body) = post_token(addr, r#"{"user":"web","device":"b1"}"#).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(content_type(&head), "application/json");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (answer["user"].as_str(), answer["device"].as_str()),
        (Some("web"), Some("b1"))
    );
    let token = answer["token"].as_str().unwrap();
    let verified = server.authority().verify(token).unwrap();
    assert_eq!(verified.user.as_str(), "web");
    assert_eq!(verified.device.as_ref().map(|d| d.as_str()), Some("b1"));
    // Short-lived: the default TTL (10 min), not hours.
    let ttl = verified.exp.saturating_sub(now_secs());
    assert!((590..=601).contains(&ttl), "ttl {ttl} s");
    assert_eq!(answer["exp"].as_u64(), Some(verified.exp));

    // It connects as web/b1; another device name is refused.
    let mut raw = raw_connect(&server.url(), Some(token), "b1").await.unwrap();
    let hello = raw.json().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    tokio::time::timeout(WAIT, async {
        while server.stats().devices < 1 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the device registered");
    let err = raw_connect(&server.url(), Some(token), "b2")
        .await
        .err()
        .unwrap();
    assert_eq!(http_status(&err), Some(401));

    // A GET says how to use it (the page probes for the endpoint this way).
    assert_eq!(http(addr, "GET", DEV_TOKEN_PATH, "").await.0, 405);
}

#[tokio::test]
async fn bad_dev_token_requests_get_a_clear_400() {
    let mut c = web_config(true);
    c.web.dev_token_ttl = Duration::from_secs(60);
    let server = start(c).await;
    let addr = server.local_addr();
    let long = "x".repeat(300);
    let cases = [
        ("not json", "expected a JSON body"),
        ("", "expected a JSON body"),
        (r#"{"user":"web"}"#, "missing field `device`"),
        (r#"{"device":"b1"}"#, "missing field `user`"),
        (
            r#"{"user":"web","device":"b1","room":"r"}"#,
            "unknown field `room`",
        ),
        (r#"{"user":7,"device":"b1"}"#, "expected a JSON body"),
        (r#"{"user":"","device":"b1"}"#, "invalid user id"),
        (r#"{"user":"web","device":""}"#, "invalid device id"),
        (
            &format!(r#"{{"user":"{long}","device":"b1"}}"#),
            "invalid user id",
        ),
        (r#"{"user":"we\u0001b","device":"b1"}"#, "invalid user id"),
    ];
    for (body, needle) in cases {
        let (status, head, answer) = post_token(addr, body).await;
        assert_eq!(status, 400, "{body:?}: {answer}");
        assert_eq!(content_type(&head), "application/json", "{body:?}");
        let json: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(json["code"], "bad_request", "{body:?}");
        let message = json["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body:?}: {message}");
    }
    let big = format!(r#"{{"user":"web","device":"{}"}}"#, "d".repeat(8000));
    let (status, _, answer) = post_token(addr, &big).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("over 4096 bytes"), "{answer}");
    // The configured TTL is used.
    let (_, _, ok) = post_token(addr, r#"{"user":"web","device":"b1"}"#).await;
    let exp = serde_json::from_str::<Value>(&ok).unwrap()["exp"]
        .as_u64()
        .unwrap();
    assert!((59..=61).contains(&exp.saturating_sub(now_secs())), "{ok}");
}

#[test]
fn dev_tokens_need_the_page() {
    let mut c = config();
    c.web.dev_tokens = true;
    let err = c.validate().unwrap_err().to_string();
    assert!(err.contains("--web"), "{err}");
}

#[tokio::test]
async fn the_binary_serves_the_page_and_dev_tokens_with_its_flags() {
    let server = ServerProcess::start("web-flags", &["--web", "--dev-tokens"]).await;
    let addr: SocketAddr = server
        .url
        .trim_start_matches("ws://")
        .trim_end_matches("/v1/signal")
        .parse()
        .unwrap();
    assert_eq!(http_get(addr, "/").await.0, 200);
    let (status, _, body) = post_token(addr, r#"{"user":"web","device":"b1"}"#).await;
    assert_eq!(status, 200, "{body}");
    let token = serde_json::from_str::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(authority().verify(&token).unwrap().user.as_str(), "web");

    // --dev-tokens without --web is refused before anything listens.
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_callapi-signal-server"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--secret-file",
                "/nonexistent",
            ])
            .arg("--dev-tokens")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("exits in time")
    .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--web"), "{stderr}");
}
