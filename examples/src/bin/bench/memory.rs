//! Figure 4: resident memory per idle connection. N authenticated idle WebSocket connections
//! to `callapi-signal-server` (run as a child process: this binary re-executed with
//! `--serve-ws`), against N authenticated idle MQTT connections to Mosquitto (child process).
//! Server RSS growth (from `/proc/<pid>/status`) divided by N, after a warm-up batch. Client
//! sockets are bound to source addresses spread over 127.0.0.0/8.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::process::Stdio;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::mosquitto::Mosquitto;
use crate::report::{verdict, Report};
use crate::stats::round3;

/// Connections opened (and kept) before the first RSS reading.
const WARMUP: usize = 200;
/// Connections opened at a time.
const PARALLEL: usize = 64;
/// Time for the server to settle before an RSS reading.
const SETTLE: Duration = Duration::from_millis(700);

/// The source address of client `i`: 127.x.y.z, never 127.0.0.1's own collisions.
fn source(i: usize) -> SocketAddr {
    let n = i / 250;
    let ip = Ipv4Addr::new(
        127,
        1 + (n / 250) as u8,
        (n % 250) as u8,
        1 + (i % 250) as u8,
    );
    SocketAddr::V4(SocketAddrV4::new(ip, 0))
}

async fn tcp_from(i: usize, to: SocketAddr) -> Res<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(source(i))?;
    Ok(socket.connect(to).await?)
}

type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

async fn ws_connect(i: usize, url: &str, addr: SocketAddr) -> Res<Ws> {
    let user = format!("m{i}");
    let mut req = format!("{url}?device=d").into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token(&user)?))?,
    );
    let tcp = tcp_from(i, addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    // Authenticated: the server's `hello`.
    loop {
        match tokio::time::timeout(WAIT, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if t.contains("hello") => return Ok(ws),
            Ok(Some(Ok(Message::Text(t)))) => return Err(format!("expected hello, got {t}").into()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Err("socket closed before hello".into()),
            Err(_) => return Err("no hello in time".into()),
        }
    }
}

fn encode_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// An MQTT 3.1.1 CONNECT (clean session, no keep-alive, user name and password).
fn mqtt_connect_packet(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut body = Vec::new();
    encode_str(&mut body, "MQTT");
    body.push(4); // protocol level 3.1.1
    body.push(0x80 | 0x40 | 0x02); // user name, password, clean session
    body.extend_from_slice(&0u16.to_be_bytes()); // keep-alive off
    encode_str(&mut body, client_id);
    encode_str(&mut body, user);
    encode_str(&mut body, password);
    let mut packet = vec![0x10];
    let mut len = body.len();
    loop {
        let mut byte = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            byte |= 0x80;
        }
        packet.push(byte);
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

async fn mqtt_connect(i: usize, addr: SocketAddr) -> Res<TcpStream> {
    let mut tcp = tcp_from(i, addr).await?;
    tcp.write_all(&mqtt_connect_packet(&format!("mem-{i}"), "mem", "pw-mem"))
        .await?;
    let mut connack = [0u8; 4];
    tokio::time::timeout(WAIT, tcp.read_exact(&mut connack))
        .await
        .map_err(|_| "no CONNACK in time")??;
    if connack != [0x20, 0x02, 0x00, 0x00] {
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

/// Bytes per connection of the server `pid` for `n` connections opened by `open`.
async fn per_connection<C, F, Fut>(pid: u32, n: usize, open: F) -> Res<(f64, Vec<C>)>
where
    F: Fn(usize) -> Fut + Copy,
    Fut: std::future::Future<Output = Res<C>>,
{
    let mut held = open_all(0, WARMUP, open).await?;
    tokio::time::sleep(SETTLE).await;
    let before = rss_bytes(pid)?;
    held.extend(open_all(WARMUP, WARMUP + n, open).await?);
    tokio::time::sleep(SETTLE).await;
    let after = rss_bytes(pid)?;
    Ok((after.saturating_sub(before) as f64 / n as f64, held))
}

/// Runs the figure with `n` connections each.
pub async fn run(report: &mut Report, n: usize) -> Res<()> {
    // callapi-signal-server: this binary in server mode.
    let exe = std::env::current_exe()?;
    let mut child = tokio::process::Command::new(exe)
        .arg("--serve-ws")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().ok_or("server child has no pid")?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .map_err(|_| "server child did not start")??
        .ok_or("server child ended")?;
    let url = line
        .strip_prefix("listening on ")
        .ok_or("unexpected server output")?
        .to_owned();
    let addr: SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .ok_or("bad url")?
        .parse()?;
    let (ours, held) = per_connection(pid, n, |i| {
        let url = url.clone();
        async move { ws_connect(i, &url, addr).await }
    })
    .await?;
    drop(held);
    drop(child);

    // Mosquitto.
    let broker = Mosquitto::start(&[("mem", "pw-mem")])?;
    let maddr: SocketAddr = format!("127.0.0.1:{}", broker.port()).parse()?;
    let (theirs, held) = per_connection(broker.pid(), n, |i| mqtt_connect(i, maddr)).await?;
    drop(held);
    drop(broker);

    report.set("memory.callapi_bytes_per_conn", round3(ours));
    report.set("memory.mosquitto_bytes_per_conn", round3(theirs));
    report.set("memory.connections", n as u64);
    report.row(
        format!("4. memory per idle connection ({n} conns)"),
        format!("callapi-signal-server {:.2} KiB", ours / 1024.0),
        format!("Mosquitto {:.2} KiB", theirs / 1024.0),
        format!("≤ 4 KiB: {}", verdict(ours <= 4096.0)),
    );
    Ok(())
}

/// The `--serve-ws` mode: an in-process server on a free loopback port; prints
/// `listening on <url>` and runs until stdin closes.
pub async fn serve() -> Res<()> {
    let server = start_server().await?;
    let mut out = tokio::io::stdout();
    out.write_all(format!("listening on {}\n", server.url()).as_bytes())
        .await?;
    out.flush().await?;
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    server.shutdown().await;
    Ok(())
}
