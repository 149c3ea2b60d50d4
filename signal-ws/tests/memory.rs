//! Measurement (ignored by default): the server's resident memory per idle connection with a
//! 4 KiB and with a 128 KiB read chunk. The chunk is one buffer per server thread, reused by
//! every socket that is read, so an idle connection holds no read buffer and the two figures
//! are the same within noise. Run with
//! `cargo test -p callapi-signal-ws --test memory -- --ignored --nocapture`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

const CONNECTIONS: usize = 2000;

async fn per_connection(read_buffer: usize) -> f64 {
    let buffer = read_buffer.to_string();
    let server = ServerProcess::start(
        &format!("mem-{read_buffer}"),
        &["--read-buffer-bytes", &buffer],
    )
    .await;
    let (url, pid) = (server.url.clone(), server.pid());
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
    (after - before) as f64 * 1024.0 / CONNECTIONS as f64
}

#[tokio::test]
#[ignore = "measurement; run with --ignored --nocapture"]
async fn memory_per_idle_connection() {
    let small = per_connection(4 * 1024).await;
    let large = per_connection(128 * 1024).await;
    println!(
        "server RSS per idle connection: {:.2} KiB with a 4 KiB read chunk, {:.2} KiB with 128 KiB",
        small / 1024.0,
        large / 1024.0
    );
    assert!(
        large - small < 1024.0,
        "an idle connection holds part of the read chunk: {small:.0} B vs {large:.0} B"
    );
    assert!(small <= 4096.0, "{small:.0} B per idle connection");
}
