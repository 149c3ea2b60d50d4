//! Server settings: where to listen, the token secret, limits, timers and buffers.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::fleet::FleetConfig;
use super::push::PushNotifier;
use super::ServerError;
use crate::tls::TlsSettings;

/// Everything a [`SignalServer`](super::SignalServer) needs. Start from
/// [`ServerConfig::new`] and change fields:
///
/// ```
/// use std::time::Duration;
/// use callapi_signal_ws::server::ServerConfig;
///
/// let mut config = ServerConfig::new("127.0.0.1:0".parse()?, b"secret".to_vec());
/// config.timers.ping_interval = Duration::from_secs(30);
/// config.limits.max_connections_per_user = 4;
/// config.validate()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on (port 0 picks a free one; see `ServerHandle::local_addr`).
    pub listen: SocketAddr,
    /// The HS256 secret tokens are signed with.
    pub secret: Vec<u8>,
    /// Serve `wss://` with this certificate (`None`: plain `ws://`).
    pub tls: Option<TlsSettings>,
    /// Limits, each answered with a documented error frame or close code.
    pub limits: Limits,
    /// Keepalive, expiry and shutdown timers.
    pub timers: Timers,
    /// Per-socket buffer sizes.
    pub buffers: Buffers,
    /// Called for invites to users with no device online (`None`: nobody is told).
    pub push: Option<Arc<dyn PushNotifier>>,
    /// The web softphone page and the development token endpoint (both off by default).
    pub web: WebPage,
    /// Join a fleet of server nodes sharing routing through NATS (`None`: this server routes
    /// alone, keeping its offline queue in memory). See [`FleetConfig`].
    pub fleet: Option<FleetConfig>,
}

impl fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerConfig")
            .field("listen", &self.listen)
            .field("secret", &"<redacted>")
            .field("tls", &self.tls.is_some())
            .field("limits", &self.limits)
            .field("timers", &self.timers)
            .field("buffers", &self.buffers)
            .field("push", &self.push.is_some())
            .field("web", &self.web)
            .field("fleet", &self.fleet)
            .finish()
    }
}

impl ServerConfig {
    /// Defaults for a server on `listen` with token secret `secret`.
    pub fn new(listen: SocketAddr, secret: impl Into<Vec<u8>>) -> Self {
        Self {
            listen,
            secret: secret.into(),
            tls: None,
            limits: Limits::default(),
            timers: Timers::default(),
            buffers: Buffers::default(),
            push: None,
            web: WebPage::default(),
            fleet: None,
        }
    }

    /// Joins the fleet `fleet` (several nodes sharing routing through NATS; the offline queue
    /// lives in JetStream).
    #[must_use]
    pub fn with_fleet(mut self, fleet: FleetConfig) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<(), ServerError> {
        let bad = |m: &str| Err(ServerError::Config(m.to_owned()));
        if self.secret.is_empty() {
            return bad("the token secret is empty");
        }
        let l = &self.limits;
        if l.max_frame_bytes < 1024 {
            return bad("max_frame_bytes must be at least 1024");
        }
        if l.rate_per_sec == 0 || l.rate_burst == 0 {
            return bad("rate_per_sec and rate_burst must be positive");
        }
        if l.max_connections_per_user == 0 || l.max_pending_handshakes == 0 {
            return bad("max_connections_per_user and max_pending_handshakes must be positive");
        }
        if l.outbound_queue == 0 {
            return bad("outbound_queue must be positive");
        }
        let t = &self.timers;
        if t.ping_interval.is_zero() || t.missed_pongs == 0 {
            return bad("ping_interval and missed_pongs must be positive");
        }
        if t.handshake_timeout.is_zero() {
            return bad("handshake_timeout must be positive");
        }
        let b = &self.buffers;
        if b.read_buffer_bytes == 0 {
            return bad("read_buffer_bytes must be positive");
        }
        if b.max_write_buffer_bytes < l.max_frame_bytes {
            return bad("max_write_buffer_bytes must hold at least one frame (max_frame_bytes)");
        }
        let w = &self.web;
        if w.dev_tokens && !w.enabled {
            return bad("dev_tokens is part of the web page: enable web.enabled (--web) too");
        }
        if w.dev_tokens && w.dev_token_ttl.as_secs() == 0 {
            return bad("dev_token_ttl must be at least one second");
        }
        if let Some(f) = &self.fleet {
            f.check().map_err(ServerError::Config)?;
        }
        Ok(())
    }
}

/// Limits. Each is answered as `docs/PROTOCOL.md` documents, never with a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest message (and frame) a client may send; larger closes with 1009. Default 64 KiB.
    pub max_frame_bytes: usize,
    /// Sustained messages per second per connection (token bucket refill). Default 50.
    pub rate_per_sec: u32,
    /// Burst size of the token bucket. Default 100.
    pub rate_burst: u32,
    /// Rate-limited messages within [`rate_window`](Self::rate_window) after which the
    /// connection is closed with 4008. Default 200.
    pub rate_close_after: u32,
    /// The window of [`rate_close_after`](Self::rate_close_after). Default 10 s.
    pub rate_window: Duration,
    /// Connections one user may hold at once (over all devices); one more closes with 4029.
    /// Default 8.
    pub max_connections_per_user: usize,
    /// TCP connections that have not yet sent a complete request (TLS and HTTP headers
    /// included); more are refused at once. Default 1024.
    pub max_pending_handshakes: usize,
    /// Envelopes kept per offline user. When full, the sender holding the most of them loses
    /// its oldest (on a tie the newcomer's own; with none of its own the new one is refused),
    /// so no sender can push out another's envelopes by sending many. Default 64.
    pub offline_queue_per_user: usize,
    /// Envelopes kept for offline users in total. Default 100 000.
    pub offline_queue_total: usize,
    /// Longest an envelope is kept for an offline user, whatever its lifetime says. Default 10 min.
    pub max_offline_lifetime: Duration,
    /// Frames waiting to be written to one socket; more are dropped (the sender's reliable
    /// layer retransmits). Their bytes are bounded by
    /// [`Buffers::max_write_buffer_bytes`]. Default 256.
    pub outbound_queue: usize,
    /// Push notifications in flight at once; more are skipped. Default 64.
    pub max_pending_pushes: usize,
    /// Calls of access-link sessions remembered for scope checks. Default 100 000.
    pub max_tracked_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_frame_bytes: 64 * 1024,
            rate_per_sec: 50,
            rate_burst: 100,
            rate_close_after: 200,
            rate_window: Duration::from_secs(10),
            max_connections_per_user: 8,
            max_pending_handshakes: 1024,
            offline_queue_per_user: 64,
            offline_queue_total: 100_000,
            max_offline_lifetime: Duration::from_secs(600),
            outbound_queue: 256,
            max_pending_pushes: 64,
            max_tracked_calls: 100_000,
        }
    }
}

/// Timers.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timers {
    /// The server pings every socket this often. Default 15 s.
    pub ping_interval: Duration,
    /// A socket that sent nothing (not even a pong) for this many ping intervals is dropped.
    /// Default 2.
    pub missed_pongs: u32,
    /// How long before the token's `exp` the server sends `token_will_expire`. Default 60 s.
    pub expiry_warning: Duration,
    /// Accepted lateness of `exp` at connect and renewal (clock skew). Default 0.
    pub token_leeway: Duration,
    /// Longest a TCP connection may take to finish TLS and send its request headers.
    /// Default 10 s.
    pub handshake_timeout: Duration,
    /// Longest a write to a socket may block before the socket is dropped. Default 10 s.
    pub write_timeout: Duration,
    /// How long a closing socket waits for the peer's close frame. Default 1 s.
    pub close_timeout: Duration,
    /// How long a graceful shutdown waits for sockets to close. Default 5 s.
    pub shutdown_grace: Duration,
    /// How often expired offline envelopes and idle call scopes are swept. Default 1 s.
    pub sweep_interval: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            missed_pongs: 2,
            expiry_warning: Duration::from_secs(60),
            token_leeway: Duration::ZERO,
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(5),
            sweep_interval: Duration::from_secs(1),
        }
    }
}

impl Timers {
    /// Silence after which a socket counts as dead: `ping_interval × missed_pongs`.
    pub fn dead_after(&self) -> Duration {
        self.ping_interval.saturating_mul(self.missed_pongs)
    }
}

/// Socket buffers. An idle connection holds none: sockets are read into a buffer each worker
/// thread shares, and only an incomplete frame is kept per connection, until it is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Buffers {
    /// Most bytes read from one socket at a time, into the worker thread's shared buffer (not a
    /// buffer per connection). Default 16 KiB.
    pub read_buffer_bytes: usize,
    /// Most bytes that may wait to be written to one socket (queued envelopes and the one being
    /// written, until the operating system took it). An envelope that would go over it is
    /// dropped and the socket is closed with 4010 (a slow consumer); the sender is not told.
    /// Default 1 MiB.
    pub max_write_buffer_bytes: usize,
}

impl Default for Buffers {
    fn default() -> Self {
        Self {
            read_buffer_bytes: 16 * 1024,
            max_write_buffer_bytes: 1024 * 1024,
        }
    }
}

/// The web softphone page (`--web`) and the development token endpoint (`--dev-tokens`).
///
/// With `enabled`, `GET /` serves a softphone page (HTML, JavaScript and CSS embedded in the
/// server binary) that signs in, places and answers calls over this server. With `dev_tokens`
/// too, `POST /dev/token` with `{"user": "...", "device": "..."}` answers
/// `{"token": "...", "user": "...", "device": "...", "exp": ...}`: a token signed with the
/// server's secret for **anyone who asks** — for development only, never on a reachable
/// address. Both are off by default; the routes then answer 404.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WebPage {
    /// Serve the softphone page at `/`. Default off.
    pub enabled: bool,
    /// Serve `POST /dev/token` (needs `enabled`). Default off.
    pub dev_tokens: bool,
    /// Lifetime of a development token (the page fetches a new one to renew). Default 10 min.
    pub dev_token_ttl: Duration,
}

impl Default for WebPage {
    fn default() -> Self {
        Self {
            enabled: false,
            dev_tokens: false,
            dev_token_ttl: Duration::from_secs(600),
        }
    }
}
