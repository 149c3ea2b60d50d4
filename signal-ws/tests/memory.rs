//! Measurement (ignored by default): the server's resident memory per idle connection, with the
//! default (small) socket buffers and with tungstenite's 128 KiB read buffer. Run with
//! `cargo test -p callapi-signal-ws --test memory -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Stdio;

use common::*;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_callapi-signal-server");
const CONNECTIONS: usize = 400;

async fn per_connection(read_buffer: usize) -> f64 {
    let dir =
        std::env::temp_dir().join(format!("callapi-mem-{}-{read_buffer}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, std::str::from_utf8(SECRET).unwrap()).unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--read-buffer-bytes"])
        .arg(read_buffer.to_string())
        .arg("--secret-file")
        .arg(&secret)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let url = lines.next_line().await.unwrap().unwrap();
    let url = url.strip_prefix("listening on ").unwrap().to_owned();
    // Warm up allocator and code paths.
    let mut warm = Vec::new();
    for i in 0..20 {
        let mut r = raw_connect(&url, Some(&token(&format!("w{i}"))), "d")
            .await
            .unwrap();
        r.json().await;
        warm.push(r);
    }
    let before = rss_kib(pid);
    let mut held = Vec::new();
    for i in 0..CONNECTIONS {
        let mut r = raw_connect(&url, Some(&token(&format!("u{i}"))), "d")
            .await
            .unwrap();
        r.json().await;
        held.push(r);
    }
    let after = rss_kib(pid);
    let _ = std::fs::remove_dir_all(&dir);
    (after - before) as f64 * 1024.0 / CONNECTIONS as f64
}

#[tokio::test]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn memory_per_idle_connection() {
    let small = per_connection(4 * 1024).await;
    let large = per_connection(128 * 1024).await;
    println!(
        "server RSS per idle connection: {:.1} KiB with a 4 KiB read buffer, {:.1} KiB with 128 KiB",
        small / 1024.0,
        large / 1024.0
    );
    assert!(small < large);
}
