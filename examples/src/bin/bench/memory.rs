//! Figure 4: resident memory per idle connection. N authenticated idle WebSocket connections
//! to `callapi-signal-server` (run as a child process: this binary re-executed with
//! `--serve-ws`), against N authenticated idle MQTT connections to Mosquitto (child process).
//! Server RSS growth (from `/proc/<pid>/status`) divided by N, after a warm-up batch, read at
//! two sizes of one run (10,000 and 50,000 connections, the second capped to what the open-file
//! limit holds; 2,000 and 5,000 with `--quick`) so the growth is seen to be linear. Client sockets are bound to source addresses spread over
//! 127.0.0.0/8 (one address per connection); each WebSocket client is read by a task of its
//! own, which answers the server's pings (tungstenite does on reading), so no connection is
//! dropped as dead however long the opening of the others takes.

use std::net::SocketAddr;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

use crate::common::*;
use crate::mosquitto::Mosquitto;
use crate::mqtt_wire;
use crate::report::{verdict, Report};
use crate::stats::round3;

/// Connections opened (and kept) before the first RSS reading.
const WARMUP: usize = 200;
/// Connections opened at a time.
const PARALLEL: usize = 64;
/// Time for the server to settle before an RSS reading.
const SETTLE: Duration = Duration::from_millis(700);

/// A held WebSocket client: the task reading it (and so answering pings); aborted on drop.
struct Held(JoinHandle<()>);

impl Drop for Held {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Connects client `i` as user `m<i>` (distinct users: the per-user connection limit never
/// applies) and hands the socket to a reading task.
async fn ws_idle(i: usize, url: &str, addr: SocketAddr) -> Res<Held> {
    let mut ws = ws_connect(i, url, addr, &format!("m{i}"), "d").await?;
    Ok(Held(tokio::spawn(async move {
        while let Some(Ok(_)) = ws.next().await {}
    })))
}

async fn mqtt_connect(i: usize, addr: SocketAddr) -> Res<TcpStream> {
    let mut tcp = tcp_from(i, addr).await?;
    tcp.write_all(&mqtt_wire::connect(
        &format!("mem-{i}"),
        "mem",
        "pw-mem",
        true,
    ))
    .await?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut connack))
        .await
        .map_err(|_| "no CONNACK in time")??;
    if connack != mqtt_wire::CONNACK_ACCEPTED {
        return Err(format!("CONNACK refused: {connack:?}").into());
    }
    Ok(tcp)
}

/// Opens `from..to` connections with `open`, `PARALLEL` at a time.
async fn open_all<C, F, Fut>(from: usize, to: usize, open: F) -> Res<Vec<C>>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Res<C>>,
{
    futures::stream::iter(from..to)
        .map(open)
        .buffer_unordered(PARALLEL)
        .try_collect()
        .await
}

/// The server's RSS growth at each of `sizes` connections (ascending, counted after the
/// warm-up), the connections opened by `open` and all held until the last reading.
async fn growth<C, F, Fut>(pid: u32, sizes: &[usize], open: F) -> Res<Vec<u64>>
where
    F: Fn(usize) -> Fut + Copy,
    Fut: std::future::Future<Output = Res<C>>,
{
    let mut held = open_all(0, WARMUP, open).await?;
    tokio::time::sleep(SETTLE).await;
    let before = rss_bytes(pid)?;
    let mut opened = 0;
    let mut out = Vec::with_capacity(sizes.len());
    for &n in sizes {
        held.extend(open_all(WARMUP + opened, WARMUP + n, open).await?);
        opened = n;
        tokio::time::sleep(SETTLE).await;
        out.push(rss_bytes(pid)?.saturating_sub(before));
    }
    drop(held);
    Ok(out)
}

/// Bytes per connection at `n` connections for a growth of `bytes`.
fn per_conn(bytes: u64, n: usize) -> f64 {
    round3(bytes as f64 / n as f64)
}

/// Runs the figure at `n` and at `large` connections (`large > n`).
pub async fn run(report: &mut Report, n: usize, large: usize) -> Res<()> {
    let sizes = [n, large];

    // callapi-signal-server: this binary in server mode.
    let server = child_server("--serve-ws").await?;
    let (url, addr) = (server.url.clone(), server.addr);
    let ours = growth(server.pid, &sizes, |i| {
        let url = url.clone();
        async move { ws_idle(i, &url, addr).await }
    })
    .await?;
    drop(server);

    // Mosquitto.
    let broker = Mosquitto::start(&[("mem", "pw-mem")])?;
    let maddr: SocketAddr = format!("127.0.0.1:{}", broker.port()).parse()?;
    let theirs = growth(broker.pid(), &sizes, |i| mqtt_connect(i, maddr)).await?;
    drop(broker);

    let (ours_n, ours_l) = (per_conn(ours[0], n), per_conn(ours[1], large));
    let (theirs_n, theirs_l) = (per_conn(theirs[0], n), per_conn(theirs[1], large));
    // The growth from the first size to the second, per connection added.
    let added = large - n;
    let ours_slope = per_conn(ours[1].saturating_sub(ours[0]), added);
    let theirs_slope = per_conn(theirs[1].saturating_sub(theirs[0]), added);
    report.set("memory.callapi_bytes_per_conn", ours_n);
    report.set("memory.mosquitto_bytes_per_conn", theirs_n);
    report.set("memory.connections", n as u64);
    report.set("memory.callapi_bytes_per_conn_large", ours_l);
    report.set("memory.mosquitto_bytes_per_conn_large", theirs_l);
    report.set("memory.connections_large", large as u64);
    report.set("memory.callapi_bytes_per_added_conn", ours_slope);
    report.set("memory.mosquitto_bytes_per_added_conn", theirs_slope);
    report.set("memory.callapi_growth_bytes_large", ours[1]);
    report.set("memory.mosquitto_growth_bytes_large", theirs[1]);
    report.row(
        format!("4. memory per idle connection ({n} conns)"),
        format!("callapi-signal-server {:.2} KiB", ours_n / 1024.0),
        format!("Mosquitto {:.2} KiB", theirs_n / 1024.0),
        format!("≤ 4 KiB: {}", verdict(ours_n <= 4096.0)),
    );
    report.row(
        format!("4. memory per idle connection ({large} conns)"),
        format!(
            "callapi-signal-server {:.2} KiB ({:.2} KiB per conn from {n} to {large})",
            ours_l / 1024.0,
            ours_slope / 1024.0
        ),
        format!(
            "Mosquitto {:.2} KiB ({:.2} KiB per conn from {n} to {large})",
            theirs_l / 1024.0,
            theirs_slope / 1024.0
        ),
        format!("≤ 4 KiB: {}", verdict(ours_l <= 4096.0)),
    );
    Ok(())
}

/// The `--serve-ws` mode: an in-process server on a free loopback port; prints
/// `listening on <url>` and runs until stdin closes.
pub async fn serve() -> Res<()> {
    let server = start_server().await?;
    callapi_examples::child::announce_and_wait(&server.url()).await?;
    server.shutdown().await;
    Ok(())
}
