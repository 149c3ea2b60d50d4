//! Figure 8: connection churn. WebSocket connects per second against `callapi-signal-server`
//! run as a child process (this binary with `--serve-ws`, as in figure 4), where one connect is:
//! TCP connect from a fresh loopback source address, the HTTP upgrade with a freshly minted JWT
//! in the `Authorization` header (the server verifies it), the server's `hello`, one `message`
//! envelope sent to a second, always-connected device and its delivery observed there, then the
//! WebSocket close handshake. The floor: the raw TCP accept rate of the same machine, a plain
//! listener in a child process (`--serve-tcp`) that accepts and closes, driven by the same
//! connectors minus the WebSocket (TCP connect, then read until the listener's FIN). Both
//! alternate in rounds of one window each, so competing load hits both alike.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use callapi_core::protocol::encode_string;
use futures::{SinkExt, StreamExt};
use tokio::io::AsyncReadExt;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::report::Report;
use crate::stats::{ms, round3, Samples};

/// What one kind of connect achieved over all its windows.
#[derive(Default)]
struct Tally {
    connects: usize,
    failed: usize,
    elapsed: Duration,
    cpu: Duration,
    samples: Vec<Duration>,
    first_error: Option<String>,
}

impl Tally {
    fn rate(&self) -> f64 {
        self.connects as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Runs `connectors` loops of `connect(k, i)` (connector `k`, connection number `i`, unique
/// over the whole run) until `window` has passed, each connect bounded by [`WAIT`]; adds the
/// results and the CPU time of server `pid` to `tally`.
async fn window<S, F, Fut>(
    tally: &mut Tally,
    pid: u32,
    window: Duration,
    states: Vec<S>,
    next: Arc<AtomicUsize>,
    connect: F,
) -> Res<Vec<S>>
where
    S: Send + 'static,
    F: Fn(usize, S) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = (S, Res<()>)> + Send,
{
    let cpu0 = cpu_time(pid)?;
    let start = Instant::now();
    let deadline = start + window;
    let mut tasks = Vec::with_capacity(states.len());
    for mut state in states {
        let (next, connect) = (next.clone(), connect.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut failed, mut samples, mut error) = (0, 0, Vec::new(), None);
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let t0 = Instant::now();
                let result = match tokio::time::timeout(WAIT, connect(i, state)).await {
                    Ok((s, r)) => {
                        state = s;
                        r
                    }
                    Err(_) => return (None, ok, failed + 1, samples, error),
                };
                match result {
                    Ok(()) => {
                        ok += 1;
                        samples.push(t0.elapsed());
                    }
                    Err(e) => {
                        failed += 1;
                        error.get_or_insert(e.to_string());
                    }
                }
            }
            (Some(state), ok, failed, samples, error)
        }));
    }
    let mut back = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (state, ok, failed, samples, error) = t.await?;
        tally.connects += ok;
        tally.failed += failed;
        tally.samples.extend(samples);
        if tally.first_error.is_none() {
            tally.first_error = error;
        }
        back.push(state.ok_or("a connector timed out and lost its receiving device")?);
    }
    tally.elapsed += start.elapsed();
    tally.cpu += cpu_time(pid)?.saturating_sub(cpu0);
    Ok(back)
}

/// One raw TCP connect: connect from source `i`, read until the listener's FIN.
async fn tcp_connect(i: usize, addr: SocketAddr) -> Res<()> {
    let mut tcp = tcp_from(i, addr).await?;
    let mut buf = [0u8; 16];
    if tcp.read(&mut buf).await? != 0 {
        return Err("the TCP listener sent data".into());
    }
    Ok(())
}

/// One WebSocket connect of connector `sink`'s loop: as user `c<i>` (a new user each time, so
/// the per-user connection limit never applies), a `message` to the sink's user, observed on
/// the sink, then the close handshake.
async fn ws_connect_once(i: usize, url: &str, addr: SocketAddr, sink: &mut (Ws, usize)) -> Res<()> {
    let user = format!("c{i}");
    let mut ws = ws_connect(i, url, addr, &user, "d").await?;
    let from = identity(&user, "d")?;
    let to = callapi_core::protocol::UserId::new(format!("sink{}", sink.1))?;
    let envelope = message(&from, &to, "churn".to_owned());
    let id = envelope.id.to_string();
    ws.send(Message::text(encode_string(&envelope)?)).await?;
    // The sink skips anything else (an envelope of an earlier, failed connect).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sink.0.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.as_str().contains(&id) => break,
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("the receiving device: {e}").into()),
            Ok(None) => return Err("the receiving device's socket closed".into()),
            Err(_) => return Err(format!("the envelope was not delivered within {WAIT:?}").into()),
        }
    }
    ws.close(None).await?;
    // The close handshake: read until the server's close frame and the end of the stream.
    while let Some(frame) = ws.next().await {
        if frame.is_err() {
            break;
        }
    }
    Ok(())
}

/// Runs the figure: `connectors` concurrent connectors, `rounds` rounds of one TCP window
/// and one WebSocket window of `each`.
pub async fn run(report: &mut Report, connectors: usize, each: Duration, rounds: usize) -> Res<()> {
    let tcp_server = child_server("--serve-tcp").await?;
    let ws_server = child_server("--serve-ws").await?;
    let (url, addr, taddr) = (ws_server.url.clone(), ws_server.addr, tcp_server.addr);
    // Connection numbers (hence source addresses) unique over the run; the sinks take 0..k.
    let next = Arc::new(AtomicUsize::new(connectors));
    let mut sinks = Vec::with_capacity(connectors);
    for k in 0..connectors {
        sinks.push((
            ws_connect(k, &url, addr, &format!("sink{k}"), "s").await?,
            k,
        ));
    }
    let url: Arc<str> = url.into();
    let (mut tcp, mut ws) = (Tally::default(), Tally::default());
    for _ in 0..rounds {
        window(
            &mut tcp,
            tcp_server.pid,
            each,
            vec![(); connectors],
            next.clone(),
            move |i, ()| async move { ((), tcp_connect(i, taddr).await) },
        )
        .await?;
        let url = url.clone();
        sinks = window(
            &mut ws,
            ws_server.pid,
            each,
            sinks,
            next.clone(),
            move |i, mut sink| {
                let url = url.clone();
                async move {
                    let r = ws_connect_once(i, &url, addr, &mut sink).await;
                    (sink, r)
                }
            },
        )
        .await?;
    }
    drop(sinks);
    drop(ws_server);
    drop(tcp_server);

    let (ws_rate, tcp_rate) = (ws.rate(), tcp.rate());
    let ratio = ws_rate / tcp_rate.max(1e-9);
    let (ws_s, tcp_s) = (
        Samples::new(std::mem::take(&mut ws.samples)),
        Samples::new(std::mem::take(&mut tcp.samples)),
    );
    let cpu_us = |t: &Tally| round3(t.cpu.as_secs_f64() * 1e6 / t.connects.max(1) as f64);
    report.set("churn.ws_connects_per_s", round3(ws_rate));
    report.set("churn.tcp_accepts_per_s", round3(tcp_rate));
    report.set("churn.ratio", round3(ratio));
    report.set("churn.ws_connect_p50_ms", round3(ms(ws_s.p50())));
    report.set("churn.ws_connect_p99_ms", round3(ms(ws_s.p99())));
    report.set("churn.tcp_connect_p50_ms", round3(ms(tcp_s.p50())));
    report.set("churn.tcp_connect_p99_ms", round3(ms(tcp_s.p99())));
    report.set("churn.ws_connects", ws.connects as u64);
    report.set("churn.tcp_connects", tcp.connects as u64);
    report.set("churn.ws_failed", ws.failed as u64);
    report.set("churn.tcp_failed", tcp.failed as u64);
    report.set("churn.ws_server_cpu_us_per_connect", cpu_us(&ws));
    report.set("churn.tcp_server_cpu_us_per_connect", cpu_us(&tcp));
    report.set("churn.connectors", connectors as u64);
    report.set("churn.window_s", round3(ws.elapsed.as_secs_f64()));
    if let Some(e) = ws.first_error.as_ref().or(tcp.first_error.as_ref()) {
        report.set("churn.first_error", e.as_str());
    }
    report.row(
        format!(
            "8. churn, {connectors} connectors, {rounds}×{:.0} s each",
            each.as_secs_f64()
        ),
        format!(
            "{ws_rate:.0} WebSocket connects/s (JWT, hello, 1 envelope delivered, close; {} failed), \
             p50 {:.2} ms, p99 {:.2} ms; server {:.0} µs CPU each",
            ws.failed,
            ms(ws_s.p50()),
            ms(ws_s.p99()),
            cpu_us(&ws)
        ),
        format!(
            "raw TCP accept+close {tcp_rate:.0}/s ({} failed), p50 {:.2} ms",
            tcp.failed,
            ms(tcp_s.p50())
        ),
        format!("ratio {ratio:.2} of the TCP floor (no target)"),
    );
    Ok(())
}

/// The `--serve-tcp` mode: a plain TCP listener on a free loopback port that accepts and
/// closes each connection; prints `listening on tcp://<addr>` and runs until stdin closes.
pub async fn serve_tcp() -> Res<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("tcp://{}", listener.local_addr()?);
    let accepting = tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => drop(stream),
                // Out of descriptors or the like: keep listening.
                Err(_) => tokio::task::yield_now().await,
            }
        }
    });
    callapi_examples::child::announce_and_wait(&url).await?;
    accepting.abort();
    Ok(())
}
