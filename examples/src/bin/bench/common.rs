//! Shared pieces: the in-process signal server with benchmark limits, tokens, identities,
//! supervisor settings that connect at once, envelopes and notification waits; the open-file
//! limit, client sockets from spread loopback sources, raw WebSocket clients and servers run
//! as child processes (figures 4 and 8).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use futures::StreamExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

pub use callapi_examples::procfs::{clock_ticks, cpu_time, own_cpu_time, rss_bytes};

use callapi_core::call::{CallState, Notification};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, SupervisorConfig, TokenError};
use callapi_core::protocol::{Body, CallId, DeviceId, Envelope, MessageId, UserId};

use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::next_matching;
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::server::{ServerConfig, ServerHandle, SignalServer};

/// Any error of the harness.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The harness's result.
pub type Res<T> = Result<T, BoxError>;

/// The benchmark servers' token secret.
pub const SECRET: &[u8] = b"callapi-bench-secret-0123456789abcdef";
/// Token lifetime.
pub const HOUR: Duration = Duration::from_secs(3600);
/// Longest wait for one expected thing.
pub const WAIT: Duration = Duration::from_secs(10);

/// Server defaults on 127.0.0.1 port 0, with the per-connection rate limits, the handshake
/// limit and the per-socket write budget raised so the load generators are not throttled or
/// closed as slow consumers under bursts (the limits are a policy, not a cost).
pub fn server_config() -> Res<ServerConfig> {
    let mut c = ServerConfig::new("127.0.0.1:0".parse()?, SECRET.to_vec());
    c.limits.rate_per_sec = 1_000_000;
    c.limits.rate_burst = 1_000_000;
    c.limits.rate_close_after = 1_000_000;
    c.limits.max_pending_handshakes = 20_000;
    c.limits.outbound_queue = 4096;
    c.buffers.max_write_buffer_bytes = 16 * 1024 * 1024;
    Ok(c)
}

/// Starts an in-process server with [`server_config`].
pub async fn start_server() -> Res<ServerHandle> {
    Ok(SignalServer::start(server_config()?).await?)
}

/// A token for `user`, valid for an hour.
pub fn token(user: &str) -> Res<String> {
    Ok(TokenAuthority::new(SECRET)?.mint(&Claims::new(user, HOUR))?)
}

/// Token credentials minting `user`'s token on each fetch.
pub fn credentials(user: &str) -> Credentials {
    let u = user.to_owned();
    Credentials::token(move || {
        let t = token(&u);
        async move { t.map_err(|e| TokenError(e.to_string())) }
    })
}

/// Fixed-password credentials (MQTT).
pub fn password(pw: &str) -> Credentials {
    let pw = pw.to_owned();
    Credentials::token(move || {
        let t = pw.clone();
        async move { Ok::<_, TokenError>(t) }
    })
}

/// `user`/`device` as an identity.
pub fn identity(user: &str, device: &str) -> Res<Identity> {
    Ok(Identity {
        user: UserId::new(user)?,
        device: DeviceId::new(device)?,
    })
}

/// Supervisor settings for `identity` with `credentials` whose first connection starts at once
/// (no start-up jitter, [`RetrySchedule::immediate_first_attempt`]): the devices come up
/// without seconds of jitter; everything after is the default schedule.
pub fn supervised(identity: Identity, credentials: Credentials) -> SupervisorConfig {
    SupervisorConfig::new(identity, credentials)
        .with_schedule(RetrySchedule::immediate_first_attempt())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A `message` envelope from `from` to `to` carrying `data`.
pub fn message(from: &Identity, to: &UserId, data: String) -> Envelope {
    Envelope {
        v: 1,
        id: MessageId::new_v4(),
        ts: now_ms(),
        from: from.user.clone(),
        from_device: from.device.clone(),
        to: to.clone(),
        to_device: None,
        call_id: CallId::new_v4(),
        lifetime_ms: 15_000,
        body: Body::Message { data },
    }
}

/// Waits for the first notification matching `pred`, within [`WAIT`].
pub async fn wait_for(
    stream: &mut NotificationStream,
    what: &str,
    pred: impl FnMut(&Notification) -> bool,
) -> Res<Notification> {
    next_matching(stream, WAIT, |_| {}, pred)
        .await
        .map_err(|err| format!("waiting for {what}: {err}").into())
}

/// Waits for the link to be up (already up counts).
pub async fn wait_linked(api: &CallApi) -> Res<()> {
    callapi_signal_mock::wait_linked(api, WAIT)
        .await
        .map_err(|err| format!("waiting for the link: {err}").into())
}

/// Waits for a state change to `state`.
pub async fn wait_state(stream: &mut NotificationStream, state: CallState) -> Res<()> {
    wait_for(
        stream,
        &format!("state {state:?}"),
        |n| matches!(n, Notification::StateChanged(c) if c.state == state),
    )
    .await
    .map(|_| ())
}

/// Waits until a state watch shows `state`.
pub async fn wait_watch(
    watch: &mut tokio::sync::watch::Receiver<CallState>,
    state: CallState,
) -> Res<()> {
    match tokio::time::timeout(WAIT, watch.wait_for(|s| *s == state)).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err("state watch closed".into()),
        Err(_) => Err(format!("state {state:?} not reached within {WAIT:?}").into()),
    }
}

/// Raises the open-file limit (`RLIMIT_NOFILE`) to `want`, children included: as root (with
/// `CAP_SYS_RESOURCE`) the hard limit first, up to `/proc/sys/fs/nr_open`; otherwise only the
/// soft limit, up to the hard one. Returns the soft limit now in force.
pub fn raise_nofile(want: u64) -> Res<u64> {
    use rlimit::Resource;
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let (_, hard) = rlimit::getrlimit(Resource::NOFILE)?;
    let target = want.min(nr_open);
    if target > hard {
        // Refused without the capability: the soft limit below still rises to the old hard one.
        let _ = rlimit::setrlimit(Resource::NOFILE, target, target);
    }
    Ok(rlimit::increase_nofile_limit(want)?)
}

/// The source address of client socket `i`: 127.x.y.z with x ≥ 1, a different address for
/// each `i` below 15 million, so neither ephemeral ports nor `TIME_WAIT` entries of one source
/// address run out (127.0.0.1, the servers' address, is never used).
pub fn source(i: usize) -> SocketAddr {
    let n = i / 250;
    let ip = Ipv4Addr::new(
        127,
        1 + ((n / 250) % 254) as u8,
        (n % 250) as u8,
        1 + (i % 250) as u8,
    );
    SocketAddr::V4(SocketAddrV4::new(ip, 0))
}

/// A TCP connection to `to` from [`source`]`(i)`, with Nagle's algorithm off (as the
/// server's sockets and callapi's client have it: a small frame after an unacknowledged one,
/// such as a close frame after an envelope, would otherwise wait for the peer's delayed ACK).
pub async fn tcp_from(i: usize, to: SocketAddr) -> Res<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(source(i))?;
    socket.set_nodelay(true)?;
    Ok(socket.connect(to).await?)
}

/// A raw WebSocket client (no callapi client library in between).
pub type Ws = tokio_tungstenite::WebSocketStream<TcpStream>;

/// Opens a WebSocket from [`source`]`(i)` to the server at `url` (`addr`) as `user`/`device`
/// with a freshly minted token in the `Authorization` header, and waits for the server's
/// `hello` (the connection is then authenticated and registered).
pub async fn ws_connect(
    i: usize,
    url: &str,
    addr: SocketAddr,
    user: &str,
    device: &str,
) -> Res<Ws> {
    let mut req = format!("{url}?device={device}").into_client_request()?;
    req.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {}", token(user)?))?,
    );
    let tcp = tcp_from(i, addr).await?;
    let (mut ws, _) = tokio_tungstenite::client_async(req, tcp).await?;
    next_text(&mut ws, "hello", |t| t.contains("\"hello\"")).await?;
    Ok(ws)
}

/// Reads `ws` until a text frame for which `pred` holds (within [`WAIT`]); any other text
/// frame is an error, other frames are skipped (pings are answered by reading).
pub async fn next_text(ws: &mut Ws, what: &str, pred: impl Fn(&str) -> bool) -> Res<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) if pred(t.as_str()) => return Ok(()),
            Ok(Some(Ok(Message::Text(t)))) => {
                return Err(format!("expected {what}, got {t}").into())
            }
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(e.into()),
            Ok(None) => return Err(format!("socket closed before {what}").into()),
            Err(_) => return Err(format!("no {what} within {WAIT:?}").into()),
        }
    }
}

pub use callapi_examples::child::ChildServer;

/// Starts this binary as a server child with the hidden `--serve-*` flag `flag` and waits
/// (within [`WAIT`]) for its address.
pub async fn child_server(flag: &str) -> Res<ChildServer> {
    Ok(ChildServer::start(flag, WAIT).await?)
}
