//! The signaling server: `GET /v1/signal` (WebSocket, JWT-authenticated), `/healthz` and
//! Prometheus `/metrics`, over plain TCP or TLS.
//!
//! [`SignalServer::start`] binds and serves on the current tokio runtime and returns a
//! [`ServerHandle`]:
//!
//! ```
//! use callapi_signal_ws::server::{ServerConfig, SignalServer};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = SignalServer::start(ServerConfig::new("127.0.0.1:0".parse()?, b"secret".to_vec())).await?;
//! println!("signaling on {}", server.url());
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod config;
mod connection;
mod fleet;
#[doc(hidden)]
pub mod fuzzing;
mod http;
mod hub;
mod limits;
mod metrics;
mod outbox;
mod push;
mod shutdown;
mod web;
mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

pub use config::{Buffers, Limits, ServerConfig, Timers, WebPage};
pub use fleet::{FleetConfig, FleetError};
pub use http::SIGNAL_PATH;
pub use metrics::Metrics;
pub use push::{PushError, PushFuture, PushNotification, PushNotifier, WebhookNotifier};
pub use shutdown::shutdown_signal;
pub use web::DEV_TOKEN_PATH;

pub use crate::tls::TlsSettings;

use crate::auth::{AuthError, TokenAuthority};
use fleet::{Fleet, LocalNode};
use hub::Hub;

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// The settings are inconsistent; the message says which.
    #[error("invalid server configuration: {0}")]
    Config(String),
    /// The token secret is unusable.
    #[error(transparent)]
    Secret(#[from] AuthError),
    /// The address could not be bound (in use, no permission).
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The fleet (`ServerConfig::fleet`) could not be joined: NATS unreachable, credentials
    /// refused, or JetStream unavailable; the message says which.
    #[error(transparent)]
    Fleet(#[from] FleetError),
}

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) config: ServerConfig,
    pub(crate) authority: TokenAuthority,
    pub(crate) hub: Arc<Hub>,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) shutdown: watch::Sender<bool>,
    handshakes: Arc<Semaphore>,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    pub(crate) fn metrics_text(&self) -> String {
        let pending = self
            .config
            .limits
            .max_pending_handshakes
            .saturating_sub(self.handshakes.available_permits());
        self.metrics
            .pending_handshakes
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.metrics.encode()
    }
}

/// Counts of what the server holds right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServerStats {
    /// Open WebSocket connections.
    pub connections: usize,
    /// Registered devices.
    pub devices: usize,
    /// Users with at least one device online.
    pub users: usize,
    /// Envelopes held for offline users.
    pub offline_queued: usize,
}

/// The signaling server.
#[derive(Debug)]
#[non_exhaustive]
pub struct SignalServer;

impl SignalServer {
    /// Binds `config.listen` (with `SO_REUSEADDR`, so a restarted server gets its port back at
    /// once) and serves on the current tokio runtime until the handle shuts it down.
    pub async fn start(config: ServerConfig) -> Result<ServerHandle, ServerError> {
        config.validate()?;
        let authority =
            TokenAuthority::new(&config.secret)?.with_leeway(config.timers.token_leeway);
        let listener = bind(config.listen).map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
        let metrics = Arc::new(Metrics::new());
        let fleet = match &config.fleet {
            Some(f) => Some(Fleet::start(f, &config.limits, metrics.clone()).await?),
            None => None,
        };
        let hub = Arc::new(Hub::new(
            config.limits.clone(),
            metrics.clone(),
            config.push.clone(),
            fleet.clone(),
        ));
        if let Some(f) = &fleet {
            let local: Arc<dyn LocalNode> = hub.clone();
            f.attach(Arc::downgrade(&local));
        }
        let (shutdown, _) = watch::channel(false);
        let tls = config
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsAcceptor::from(t.config.clone()));
        let shared = Arc::new(Shared {
            handshakes: Arc::new(Semaphore::new(config.limits.max_pending_handshakes)),
            config,
            authority,
            hub,
            metrics,
            shutdown,
        });
        let secure = tls.is_some();
        let task = tokio::spawn(accept_loop(listener, tls, shared.clone()));
        tracing::info!(%local_addr, tls = secure, "signaling server listening");
        Ok(ServerHandle {
            local_addr,
            secure,
            shared,
            task: Some(task),
        })
    }
}

/// Resolves once shutdown is requested.
pub(crate) async fn wait_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// A running server. Dropping it stops the server abruptly (like [`abort`](Self::abort), without
/// waiting);
/// [`shutdown`](Self::shutdown) stops it gracefully.
#[derive(Debug)]
pub struct ServerHandle {
    local_addr: SocketAddr,
    secure: bool,
    shared: Arc<Shared>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl ServerHandle {
    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The signaling URL: `ws://ADDR/v1/signal`, or `wss://` with TLS.
    pub fn url(&self) -> String {
        let scheme = if self.secure { "wss" } else { "ws" };
        format!("{scheme}://{}{SIGNAL_PATH}", self.local_addr)
    }

    /// The server's token authority (mints tokens with its secret).
    pub fn authority(&self) -> &TokenAuthority {
        &self.shared.authority
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The metrics as `/metrics` serves them.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics_text()
    }

    /// What the server holds right now.
    pub fn stats(&self) -> ServerStats {
        let counts = self.shared.hub.counts();
        ServerStats {
            connections: usize::try_from(self.shared.metrics.connections.get()).unwrap_or(0),
            devices: counts.devices,
            users: counts.users,
            offline_queued: counts.queued,
        }
    }

    /// Graceful shutdown: stops accepting, closes every socket with 1001 ("going away", so
    /// clients reconnect at once, to another instance), and waits up to
    /// `Timers::shutdown_grace` for them to go.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.shared.hub.stop_fleet();
    }

    /// Stops at once, as if the process died: sockets are dropped without a close frame.
    /// Returns once the listening socket is closed (the port can be bound again).
    pub async fn abort(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        self.shared.hub.stop_fleet();
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        self.shared.hub.stop_fleet();
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
) {
    let mut conns = JoinSet::new();
    let mut shutdown = shared.shutdown.subscribe();
    let mut sweep = tokio::time::interval(shared.config.timers.sweep_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = wait_shutdown(&mut shutdown) => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            _ = sweep.tick() => shared.hub.sweep(),
            accepted = listener.accept() => match accepted {
                Ok((tcp, _peer)) => {
                    let _ = tcp.set_nodelay(true);
                    match shared.handshakes.clone().try_acquire_owned() {
                        Ok(permit) => {
                            conns.spawn(serve_tcp(tcp, tls.clone(), shared.clone(), permit));
                        }
                        Err(_) => {
                            shared.metrics.limit_hit("pending_handshakes");
                            if tls.is_none() {
                                conns.spawn(refuse_busy(tcp));
                            }
                        }
                    }
                }
                Err(err) => {
                    // Out of file descriptors and the like: back off a little.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let grace = shared.config.timers.shutdown_grace;
    let _ = tokio::time::timeout(grace, async { while conns.join_next().await.is_some() {} }).await;
    conns.shutdown().await;
    tracing::info!("signaling server stopped");
}

/// Serves one accepted connection: the HTTP (and TLS) handshake, then the WebSocket. Each
/// phase runs boxed, so the task of an idle connection holds only the WebSocket phase's state,
/// not hyper's or rustls's handshake state too.
async fn serve_tcp(
    tcp: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) {
    let upgraded = match tls {
        None => Box::pin(http::upgrade(tcp, shared.clone(), permit)).await,
        Some(acceptor) => Box::pin(tls_upgrade(acceptor, tcp, shared.clone(), permit)).await,
    };
    if let Some((ws, session)) = upgraded {
        Box::pin(connection::run(ws, session, shared)).await;
    }
}

/// The TLS handshake, then [`http::upgrade`].
async fn tls_upgrade(
    acceptor: tokio_rustls::TlsAcceptor,
    tcp: TcpStream,
    shared: Arc<Shared>,
    permit: OwnedSemaphorePermit,
) -> Option<(http::Upgraded, connection::Session)> {
    let limit = shared.config.timers.handshake_timeout;
    match tokio::time::timeout(limit, acceptor.accept(tcp)).await {
        Ok(Ok(stream)) => http::upgrade(stream, shared, permit).await,
        Ok(Err(err)) => {
            tracing::debug!(%err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!("TLS handshake timed out");
            None
        }
    }
}

/// Answers a connection over the pending-handshake limit with 503 and closes it.
async fn refuse_busy(mut tcp: TcpStream) {
    const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nContent-Length: 70\r\nConnection: close\r\n\r\n\
{\"type\":\"error\",\"code\":\"busy\",\"message\":\"too many pending handshakes\"}";
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = tcp.write_all(BUSY).await;
        let _ = tcp.shutdown().await;
    })
    .await;
}
