//! Shared helpers of the signal-ws integration tests: a real server on 127.0.0.1 port 0, raw
//! WebSocket clients (to check frames and close codes exactly), `CallApi` devices over
//! supervised `WsTransport`s, plain HTTP GETs and a metrics reader.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use callapi_core::call::{
    CallConfig, CallEvent, CallState, Notification, PrepareConfig, StateChange, StateReason,
};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, SupervisorConfig, TokenError};
use callapi_core::protocol::{
    encode_string, Body, CallId, CallType, DeviceId, Envelope, Extension, MessageId, UserId,
};
use callapi_core::signal::LinkState;
use callapi_core::{CallApi, NotificationStream};
use callapi_signal_mock::next_matching;
use callapi_signal_mock::{MockMedia, MockMediaControl};
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::client::{ClientOptions, WsSignalClient, WsTransport};
use callapi_signal_ws::server::{ServerConfig, ServerHandle, SignalServer};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod fleet;

/// The tests' token secret.
pub const SECRET: &[u8] = b"signal-ws-test-secret-0123456789";

/// Longest wait for anything expected.
pub const WAIT: Duration = Duration::from_secs(10);

pub const HOUR: Duration = Duration::from_secs(3600);

/// Defaults, on 127.0.0.1 port 0, sweeping every 50 ms.
pub fn config() -> ServerConfig {
    let mut c = ServerConfig::new("127.0.0.1:0".parse().unwrap(), SECRET.to_vec());
    c.timers.sweep_interval = Duration::from_millis(50);
    c.timers.close_timeout = Duration::from_millis(500);
    c
}

pub async fn start(config: ServerConfig) -> ServerHandle {
    SignalServer::start(config).await.expect("server starts")
}

pub fn authority() -> TokenAuthority {
    TokenAuthority::new(SECRET).unwrap()
}

/// A token for `user`, valid for an hour.
pub fn token(user: &str) -> String {
    authority().mint(&Claims::new(user, HOUR)).unwrap()
}

pub fn mint(claims: &Claims) -> String {
    authority().mint(claims).unwrap()
}

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

pub fn identity(u: &str, d: &str) -> Identity {
    Identity {
        user: user(u),
        device: device(d),
    }
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

pub fn now_secs() -> u64 {
    now_ms() / 1000
}

// ---------------------------------------------------------------- envelopes

pub fn envelope(from: (&str, &str), to: &str, call_id: CallId, body: Body) -> Envelope {
    Envelope {
        v: 1,
        id: MessageId::new_v4(),
        ts: now_ms(),
        from: user(from.0),
        from_device: device(from.1),
        to: user(to),
        to_device: None,
        call_id,
        lifetime_ms: 60_000,
        body,
    }
}

pub fn message(from: (&str, &str), to: &str, data: &str) -> Envelope {
    envelope(
        from,
        to,
        CallId::new_v4(),
        Body::Message { data: data.into() },
    )
}

pub fn invite(from: (&str, &str), to: &str, room: &str) -> Envelope {
    envelope(
        from,
        to,
        CallId::new_v4(),
        Body::Invite {
            room_id: room.into(),
            call_type: CallType::Video,
            extension: Extension::new(),
            members: None,
        },
    )
}

// ---------------------------------------------------------------- raw clients

/// What a raw client read.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    Json(Value),
    Close(Option<u16>, String),
    /// The socket ended without a close frame.
    End,
}

/// A bare WebSocket client: sees every frame and close code.
pub struct Raw {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// Opens a raw socket to `url` as `device` with `token` in the Authorization header (or none).
pub async fn raw_connect(
    url: &str,
    token: Option<&str>,
    device: &str,
) -> Result<Raw, tokio_tungstenite::tungstenite::Error> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut req = format!("{url}{sep}device={device}").into_client_request()?;
    if let Some(t) = token {
        req.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(req).await?;
    Ok(Raw { ws })
}

/// A raw socket that has read its `hello`.
pub async fn raw_user(server: &ServerHandle, u: &str, d: &str) -> Raw {
    let mut raw = raw_connect(&server.url(), Some(&token(u)), d)
        .await
        .expect("upgrade");
    let hello = raw.json().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    raw
}

/// The HTTP status of a refused upgrade.
pub fn http_status(err: &tokio_tungstenite::tungstenite::Error) -> Option<u16> {
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => Some(resp.status().as_u16()),
        _ => None,
    }
}

impl Raw {
    /// The next frame (text as JSON, close code), skipping pings and pongs.
    pub async fn next(&mut self) -> Frame {
        let read = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => {
                        return Frame::Json(serde_json::from_str(&t).expect("JSON text frame"))
                    }
                    Some(Ok(Message::Close(f))) => {
                        return Frame::Close(
                            f.as_ref().map(|f| u16::from(f.code)),
                            f.map(|f| f.reason.to_string()).unwrap_or_default(),
                        )
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return Frame::End,
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("a frame within the wait")
    }

    /// The next text frame's exact text, skipping pings and pongs.
    pub async fn text(&mut self) -> String {
        let read = async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => return t.to_string(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => panic!("expected a text frame, got {other:?}"),
                }
            }
        };
        tokio::time::timeout(WAIT, read)
            .await
            .expect("a text frame within the wait")
    }

    /// The next frame, which must be a JSON text frame.
    pub async fn json(&mut self) -> Value {
        match self.next().await {
            Frame::Json(v) => v,
            other => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// The next frame must be an `error` frame with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let v = self.json().await;
        assert_eq!(v["type"], "error", "{v}");
        assert_eq!(v["code"], code, "{v}");
        v
    }

    /// Reads until a close frame and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            match self.next().await {
                Frame::Close(code, _) => return code.expect("a close code"),
                Frame::End => panic!("socket ended without a close frame"),
                Frame::Json(_) => continue,
            }
        }
    }

    pub async fn send_text(&mut self, text: impl Into<String>) {
        self.ws
            .send(Message::text(text.into()))
            .await
            .expect("send");
    }

    pub async fn send_env(&mut self, env: &Envelope) {
        self.send_text(encode_string(env).unwrap()).await;
    }

    /// Asserts that no frame arrives within `quiet` (pings and pongs aside).
    pub async fn expect_silence(&mut self, quiet: Duration) {
        let r = tokio::time::timeout(quiet, async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    other => return other,
                }
            }
        })
        .await;
        if let Ok(frame) = r {
            panic!("expected silence, got {frame:?}");
        }
    }
}

// ---------------------------------------------------------------- processes

/// The `callapi-signal-server` binary, serving on 127.0.0.1 port 0 with the tests' secret as a
/// child process (killed when dropped, its temp dir removed).
pub struct ServerProcess {
    child: tokio::process::Child,
    /// The `ws://` URL it printed.
    pub url: String,
    dir: std::path::PathBuf,
}

impl ServerProcess {
    /// Starts `serve` with `args` added; `tag` names its temp dir.
    pub async fn start(tag: &str, args: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let dir = std::env::temp_dir().join(format!("callapi-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("secret");
        std::fs::write(&secret, std::str::from_utf8(SECRET).unwrap()).unwrap();
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_callapi-signal-server"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .arg("--secret-file")
            .arg(&secret)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next_line().await.unwrap().unwrap();
        let url = line.strip_prefix("listening on ").unwrap().to_owned();
        Self { child, url, dir }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The resident memory of process `pid`, in KiB (from `/proc`).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

// ---------------------------------------------------------------- HTTP and metrics

/// A plain HTTP/1.1 GET; returns (status, head, body).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String, String) {
    http_request(addr, "GET", path, "").await
}

/// A plain HTTP/1.1 request (other than a GET, with `body` as JSON); returns (status, head,
/// body).
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let content = if method == "GET" {
        String::new()
    } else {
        format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        )
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{content}\r\n{body}"
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, tcp.read_to_end(&mut buf))
        .await
        .expect("HTTP answer in time")
        .unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// The value of the sample `name` (with its labels, e.g.
/// `callapi_signal_envelopes_dropped_total{reason="expired"}`) in a metrics text; 0 if absent.
pub fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(name)?;
            rest.strip_prefix(' ')?.trim().parse().ok()
        })
        .unwrap_or(0.0)
}

/// `metric` of the server's current metrics.
pub fn server_metric(server: &ServerHandle, name: &str) -> f64 {
    metric(&server.metrics_text(), name)
}

// ---------------------------------------------------------------- supervisor schedules

/// The devices' retry schedule: the default one, except that the first connection attempt and
/// its token fetch start at once instead of after seconds of start-up jitter. Reconnects keep
/// the default schedule, jitter included.
pub fn quick_start() -> RetrySchedule {
    RetrySchedule::immediate_first_attempt()
}

/// [`quick_start`], with the first connection attempt exactly `after` the start: it leaves time
/// to `prepare` before the link is up. (A reconnect series after a drop starts `after` later
/// too.)
pub fn starting_after(after: Duration) -> RetrySchedule {
    let mut schedule = quick_start();
    if let Some(first) = schedule.reconnect_at.first_mut() {
        *first = after;
    }
    schedule
}

// ---------------------------------------------------------------- CallApi devices

/// Fast keepalive for clients in tests.
pub fn client_options() -> ClientOptions {
    let mut o = ClientOptions::default();
    o.ping_interval = Duration::from_millis(500);
    o
}

/// A client transport to the server at `url`, with [`client_options`].
pub fn ws_transport(url: &str) -> WsTransport {
    WsTransport::new(url)
        .unwrap()
        .with_options(client_options())
}

/// Token credentials minting an hour-long token for `u` on every fetch.
pub fn credentials(u: &str) -> Credentials {
    let u = u.to_owned();
    Credentials::token(move || {
        let t = authority().mint(&Claims::new(u.clone(), HOUR));
        async move { t.map_err(|e| TokenError(e.to_string())) }
    })
}

/// One `CallApi` device over a supervised `WsTransport`, with its notifications logged.
pub struct Device {
    pub api: CallApi,
    pub media: MockMediaControl,
    pub user: UserId,
    pub device: DeviceId,
    stream: NotificationStream,
    pub log: Vec<Notification>,
}

impl Device {
    /// `u`/`d` on the server at `url` (token credentials, `MockMedia`), seed `seed` (the
    /// supervisor's jitter and the call machine's ids), connecting at once ([`quick_start`]).
    pub fn start(url: &str, u: &str, d: &str, seed: u64) -> Self {
        Self::start_with(ws_transport(url), u, d, seed, credentials(u))
    }

    /// [`start`](Self::start) over `transport` with `creds`.
    pub fn start_with(
        transport: WsTransport,
        u: &str,
        d: &str,
        seed: u64,
        creds: Credentials,
    ) -> Self {
        Self::start_scheduled(transport, u, d, seed, creds, quick_start())
    }

    /// [`start_with`](Self::start_with) on the retry schedule `schedule`.
    pub fn start_scheduled(
        transport: WsTransport,
        u: &str,
        d: &str,
        seed: u64,
        creds: Credentials,
        schedule: RetrySchedule,
    ) -> Self {
        let signal = WsSignalClient::start(
            transport,
            SupervisorConfig::new(identity(u, d), creds)
                .with_seed(seed)
                .with_schedule(schedule),
        );
        let (media, control) = MockMedia::new();
        let api = CallApi::new(
            CallConfig::new(user(u), device(d)).with_seed(seed),
            signal,
            media,
        );
        let stream = api.subscribe();
        Self {
            api,
            media: control,
            user: user(u),
            device: device(d),
            stream,
            log: Vec::new(),
        }
    }

    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl FnMut(&Notification) -> bool,
    ) -> Notification {
        let (stream, log) = (&mut self.stream, &mut self.log);
        match next_matching(stream, WAIT, |n| log.push(n.clone()), pred).await {
            Ok(n) => n,
            Err(err) => panic!(
                "{}/{}: no {what}: {err}; log: {:#?}",
                self.user, self.device, self.log
            ),
        }
    }

    /// [`wait_for`](Self::wait_for) with its own bound (what crosses processes and NATS).
    pub async fn wait_for_within(
        &mut self,
        what: &str,
        within: Duration,
        pred: impl FnMut(&Notification) -> bool,
    ) -> Notification {
        let (stream, log) = (&mut self.stream, &mut self.log);
        match next_matching(stream, within, |n| log.push(n.clone()), pred).await {
            Ok(n) => n,
            Err(err) => panic!(
                "{}/{}: no {what} within {within:?}: {err}; log: {:#?}",
                self.user, self.device, self.log
            ),
        }
    }

    pub async fn wait_link(&mut self, state: &LinkState) {
        let what = format!("link {state:?}");
        self.wait_for(&what, |n| matches!(n, Notification::Link(s) if s == state))
            .await;
    }

    pub async fn wait_state(&mut self, state: CallState) -> StateChange {
        let what = format!("state {state:?}");
        match self
            .wait_for(
                &what,
                |n| matches!(n, Notification::StateChanged(c) if c.state == state),
            )
            .await
        {
            Notification::StateChanged(c) => c,
            _ => unreachable!(),
        }
    }

    /// Waits for a state change to `state` for `reason`.
    pub async fn wait_change(&mut self, state: CallState, reason: StateReason) -> StateChange {
        let what = format!("state {state:?}({reason:?})");
        match self
            .wait_for(&what, |n| {
                matches!(n, Notification::StateChanged(c) if c.state == state && c.reason == reason)
            })
            .await
        {
            Notification::StateChanged(c) => c,
            _ => unreachable!(),
        }
    }

    pub async fn wait_event(&mut self, event: CallEvent) {
        let what = format!("event {event:?}");
        self.wait_for(
            &what,
            |n| matches!(n, Notification::Event(e) if e.event == event),
        )
        .await;
    }

    /// Logs the notifications already waiting.
    pub fn drain(&mut self) {
        while let Some(n) = self.stream.try_recv() {
            self.log.push(n);
        }
    }

    /// The link states logged so far.
    pub fn links(&self) -> Vec<LinkState> {
        self.log
            .iter()
            .filter_map(|n| match n {
                Notification::Link(s) => Some(s.clone()),
                _ => None,
            })
            .collect()
    }

    /// The call states logged so far.
    pub fn states(&self) -> Vec<(CallState, StateReason)> {
        self.log
            .iter()
            .filter_map(|n| match n {
                Notification::StateChanged(c) => Some((c.state, c.reason)),
                _ => None,
            })
            .collect()
    }

    pub async fn prepare(&self, room: &str) {
        self.api.prepare(PrepareConfig::new(room)).await.unwrap();
    }

    /// Waits for the first link-up (one before this call counts), then prepares in
    /// `{user}-room`.
    pub async fn ready(&mut self) {
        let mut link = self.api.link_watch();
        tokio::time::timeout(WAIT, async {
            link.wait_for(LinkState::is_connected).await.map(|_| ())
        })
        .await
        .unwrap_or_else(|_| panic!("{}/{}: no link up within {WAIT:?}", self.user, self.device))
        .expect("the CallApi is alive");
        let room = format!("{}-room", self.user);
        self.prepare(&room).await;
    }
}

/// `caller` video-calls `callee`, who accepts; both reach `Connected`.
pub async fn connected_call(caller: &mut Device, callee: &mut Device) -> CallId {
    let id = caller
        .api
        .call(callee.user.as_str(), CallType::Video)
        .await
        .unwrap();
    callee
        .wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    callee.api.accept().await.unwrap();
    caller.wait_state(CallState::Connected).await;
    callee.wait_state(CallState::Connected).await;
    id
}

/// Shared handle on a list, for closures that record what they were called with.
pub type Recorder<T> = Arc<std::sync::Mutex<Vec<T>>>;
