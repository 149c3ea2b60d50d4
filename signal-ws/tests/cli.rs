//! The `callapi-signal-server` binary: `token` prints a token signed with the secret file;
//! `serve` (flags from environment variables too) listens, answers `/healthz`, takes a client,
//! and on SIGTERM closes sockets with 1001 and exits cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use callapi_core::connection::{LinkEvent, Transport, TransportLink};
use callapi_signal_ws::auth::TokenAuthority;
use callapi_signal_ws::client::WsTransport;
use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const BIN: &str = env!("CARGO_BIN_EXE_callapi-signal-server");

/// A secret file in a fresh temporary directory (removed on drop).
struct Secret {
    dir: PathBuf,
    path: PathBuf,
}

impl Secret {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("callapi-cli-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("secret.txt");
        std::fs::write(&path, "cli-test-secret\n").unwrap();
        Self { dir, path }
    }
}

impl Drop for Secret {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn mint_with_cli(secret: &Secret, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("token")
        .arg("--secret-file")
        .arg(&secret.path)
        .args(args)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[tokio::test]
async fn token_prints_a_token_signed_with_the_secret_file() {
    let secret = Secret::new("token");
    let token = mint_with_cli(
        &secret,
        &[
            "--user", "alice", "--device", "d1", "--room", "R", "--ttl", "1h",
        ],
    )
    .await;
    let v = TokenAuthority::new(b"cli-test-secret")
        .unwrap()
        .verify(&token)
        .unwrap();
    assert_eq!(v.user.as_str(), "alice");
    assert_eq!(v.device.unwrap().as_str(), "d1");
    assert_eq!(v.room.as_deref(), Some("R"));
    assert!(
        (3599..=3601).contains(&(v.exp - now_secs())),
        "exp {}",
        v.exp
    );
}

#[tokio::test]
async fn serve_starts_answers_healthz_and_stops_on_sigterm() {
    let secret = Secret::new("serve");
    let mut child: Child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("CALLAPI_SECRET_FILE", &secret.path)
        .env("CALLAPI_PING_INTERVAL", "5s")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("the server prints its address")
        .unwrap()
        .expect("a line");
    let url = line.strip_prefix("listening on ").expect(&line).to_owned();
    let addr: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .trim_end_matches("/v1/signal")
        .parse()
        .unwrap();

    let (status, _, body) = http_get(addr, "/healthz").await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    let token = mint_with_cli(&secret, &["--user", "alice", "--ttl", "10m"]).await;
    let mut link = WsTransport::new(&url)
        .unwrap()
        .connect(&identity("alice", "a1"), &token)
        .await
        .unwrap();
    let (_, _, metrics) = http_get(addr, "/metrics").await;
    assert_eq!(metric(&metrics, "callapi_signal_devices"), 1.0);

    // SIGTERM: the client is told "going away" (reconnect elsewhere), the process exits 0.
    let pid = child.id().unwrap().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let ev = tokio::time::timeout(WAIT, link.next_event()).await.unwrap();
    assert_eq!(ev, Some(LinkEvent::Closed { error: None }));
    let status = tokio::time::timeout(WAIT, child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn serve_refuses_a_missing_secret_file() {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--secret-file"])
            .arg(std::env::temp_dir().join("callapi-no-such-secret"))
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read"), "{err}");
}

/// Runs `serve` with `args` after the listen address and secret file; returns its failure text.
async fn serve_fails(secret: &Secret, args: &[&str]) -> String {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--secret-file"])
            .arg(&secret.path)
            .args(args)
            .output(),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn serve_with_unreachable_nats_fails_with_the_fleet_error() {
    let secret = Secret::new("nats-down");
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let err = serve_fails(&secret, &["--nats", "nats://127.0.0.1:1", "--node", "n1"]).await;
    assert!(err.contains("cannot connect to NATS"), "{err}");
    assert!(err.contains("nats://127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn serve_refuses_bad_fleet_flags() {
    let secret = Secret::new("nats-flags");
    let err = serve_fails(&secret, &["--nats", "nats://127.0.0.1:1", "--node", "a.b"]).await;
    assert!(err.contains("node name"), "{err}");
    let err = serve_fails(
        &secret,
        &["--nats", "nats://127.0.0.1:1", "--nats-replicas", "0"],
    )
    .await;
    assert!(err.contains("--nats-replicas"), "{err}");
    let err = serve_fails(
        &secret,
        &["--nats", "nats://127.0.0.1:1", "--nats-user", "u"],
    )
    .await;
    assert!(err.contains("--nats-password"), "{err}");
    let err = serve_fails(&secret, &["--node", "n1"]).await;
    assert!(err.contains("--nats"), "{err}");
    let err = serve_fails(&secret, &["--nats", "nats://127.0.0.1:1,"]).await;
    assert!(err.contains("separated by commas"), "{err}");
}
