//! [`WsTransport`]: one connection attempt to a callapi signaling server (or to the first
//! reachable one of several), for the core's `Supervisor`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::connection::{
    ConnectError, Credentials, Identity, Supervisor, SupervisorConfig, TokenProvider, Transport,
};
use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::error::Error as WsError;
use tokio_tungstenite::tungstenite::http::header::{HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use tokio_tungstenite::tungstenite::http::{StatusCode, Uri};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_tls_with_config, Connector, WebSocketStream};

use super::link::{close_error, WsLink};
use crate::frames::{close_code, ServerFrame};
use crate::server::SIGNAL_PATH;

/// Why a client could not be set up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The URL is not a `ws://` or `wss://` URL with a host.
    #[error("invalid signaling URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A transport was asked for with an empty list of server URLs.
    #[error("no signaling URL given: pass at least one ws:// or wss:// URL")]
    NoUrl,
    /// The TLS settings could not be built.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientOptions {
    /// The client pings the server this often. Default 15 s.
    pub ping_interval: Duration,
    /// A link silent for this many ping intervals is dead (half-open after a network change).
    /// Default 2.
    pub missed_pongs: u32,
    /// Longest wait for the server's `hello` after the upgrade. Default 10 s.
    pub hello_timeout: Duration,
    /// Longest wait for the answer to an in-band renewal. Default 10 s.
    pub renew_timeout: Duration,
    /// Longest wait for the server's close frame when closing. Default 1 s.
    pub close_timeout: Duration,
    /// Initial read buffer of the socket. Default 4 KiB (tungstenite's is 128 KiB).
    pub read_buffer_bytes: usize,
    /// Largest message accepted from the server. Default 256 KiB.
    pub max_message_bytes: usize,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            ping_interval: Duration::from_secs(15),
            missed_pongs: 2,
            hello_timeout: Duration::from_secs(10),
            renew_timeout: Duration::from_secs(10),
            close_timeout: Duration::from_secs(1),
            read_buffer_bytes: 4 * 1024,
            max_message_bytes: 256 * 1024,
        }
    }
}

impl ClientOptions {
    fn websocket_config(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_bytes)
            .write_buffer_size(0)
            .max_write_buffer_size(self.max_message_bytes.saturating_mul(4).max(1))
            .max_message_size(Some(self.max_message_bytes))
            .max_frame_size(Some(self.max_message_bytes))
    }
}

/// A [`Transport`] to a callapi signaling server over WebSocket (`ws://` or `wss://` via
/// rustls). Give it to the core's `Supervisor` (or use [`WsSignalClient`]) for tokens,
/// reconnection and renewal.
///
/// With several URLs ([`WsTransport::with_failover`], the nodes of a fleet) an attempt starts
/// at the URL that worked last and, when a server cannot be reached or fails transiently,
/// tries the next one in the same attempt, each URL at most once; the supervisor's reconnect
/// schedule and its bound on one attempt are unchanged. A refusal of the token (unauthorized,
/// expired) ends the attempt at once: the nodes of one fleet share the token secret, so the
/// next one would say the same.
///
/// ```
/// use callapi_signal_ws::client::WsTransport;
///
/// let one = WsTransport::new("ws://127.0.0.1:8765")?;
/// assert_eq!(one.url(), "ws://127.0.0.1:8765/v1/signal");
/// let fleet = WsTransport::with_failover(["ws://10.0.0.1:8765", "ws://10.0.0.2:8765"])?;
/// assert_eq!(fleet.urls().len(), 2);
/// # Ok::<(), callapi_signal_ws::client::ClientError>(())
/// ```
#[derive(Debug, Clone)]
pub struct WsTransport {
    /// The endpoint URLs, each with its path.
    urls: Arc<[String]>,
    /// The index into `urls` of the next attempt's first try (the one that worked last, or the
    /// one after the last that failed). Shared with the attempt futures, which outlive `&mut self`.
    cursor: Arc<AtomicUsize>,
    tls: Option<Arc<rustls::ClientConfig>>,
    options: ClientOptions,
}

/// `url` checked and completed with the signaling path; whether it is `wss`.
fn endpoint(url: &str) -> Result<(String, bool), ClientError> {
    let invalid = |reason: &str| ClientError::InvalidUrl {
        url: url.to_owned(),
        reason: reason.to_owned(),
    };
    let uri: Uri = url.parse().map_err(|e| invalid(&format!("{e}")))?;
    let secure = match uri.scheme_str() {
        Some("ws") => false,
        Some("wss") => true,
        _ => return Err(invalid("the scheme must be ws:// or wss://")),
    };
    if uri.host().is_none_or(str::is_empty) {
        return Err(invalid("no host"));
    }
    let mut full = url.to_owned();
    if matches!(uri.path(), "" | "/") {
        let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let scheme = if secure { "wss" } else { "ws" };
        let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
        full = format!("{scheme}://{authority}{SIGNAL_PATH}{query}");
    }
    Ok((full, secure))
}

impl WsTransport {
    /// A transport to `url`: `ws://host:port/v1/signal` or `wss://...`. A URL without a path
    /// gets `/v1/signal`. `wss` trusts the Mozilla roots (`webpki-roots`).
    pub fn new(url: &str) -> Result<Self, ClientError> {
        Self::with_failover([url])
    }

    /// A transport to the first reachable of several servers (the nodes of a fleet), each URL
    /// as for [`new`](Self::new); see the type's docs for the order they are tried in.
    pub fn with_failover<I, S>(urls: I) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut full = Vec::new();
        let mut secure = false;
        for url in urls {
            let (url, tls) = endpoint(url.as_ref())?;
            secure |= tls;
            full.push(url);
        }
        if full.is_empty() {
            return Err(ClientError::NoUrl);
        }
        let tls = if secure {
            Some(crate::tls::client_config(None)?)
        } else {
            None
        };
        Ok(Self {
            urls: full.into(),
            cursor: Arc::new(AtomicUsize::new(0)),
            tls,
            options: ClientOptions::default(),
        })
    }

    /// Uses this rustls configuration for `wss://`.
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Also trusts the certificates in `pem` (a private CA, a self-signed certificate).
    pub fn with_root_certificates_pem(mut self, pem: &[u8]) -> Result<Self, ClientError> {
        self.tls = Some(crate::tls::client_config(Some(pem))?);
        Ok(self)
    }

    /// Replaces the client settings.
    pub fn with_options(mut self, options: ClientOptions) -> Self {
        self.options = options;
        self
    }

    /// The endpoint URL the next attempt tries first.
    pub fn url(&self) -> &str {
        let i = self.cursor.load(Ordering::Relaxed) % self.urls.len();
        &self.urls[i]
    }

    /// Every endpoint URL, in the order given.
    pub fn urls(&self) -> &[String] {
        &self.urls
    }
}

/// The upgrade request to `endpoint` for `identity` with `token`.
fn request(
    endpoint: &str,
    identity: &Identity,
    token: &str,
) -> Result<tokio_tungstenite::tungstenite::handshake::client::Request, ConnectError> {
    let sep = if endpoint.contains('?') { '&' } else { '?' };
    let device: String =
        form_urlencoded::byte_serialize(identity.device.as_str().as_bytes()).collect();
    let url = format!("{endpoint}{sep}device={device}");
    let mut req = url
        .into_client_request()
        .map_err(|e| ConnectError::Unauthorized(format!("bad signaling URL: {e}")))?;
    let auth = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
        ConnectError::Unauthorized("the token is not a valid HTTP header value".into())
    })?;
    req.headers_mut().insert(AUTHORIZATION, auth);
    Ok(req)
}

/// Maps a failed WebSocket handshake to what the supervisor should do.
fn handshake_error(err: WsError) -> ConnectError {
    match err {
        WsError::Http(resp) => {
            let status = resp.status();
            let body = resp
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default()
                .into_owned();
            let message = serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or_else(|| format!("HTTP {status}"));
            if status == StatusCode::UNAUTHORIZED {
                let expired_header = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.contains("error_description=\"token expired\""));
                if expired_header || body.contains("\"token_expired\"") {
                    ConnectError::TokenExpired
                } else {
                    ConnectError::Unauthorized(message)
                }
            } else {
                ConnectError::Transient(format!("HTTP {status}: {message}"))
            }
        }
        other => ConnectError::Transient(other.to_string()),
    }
}

/// What the server's `hello` said: the identity it took from the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hello {
    pub(crate) user: String,
    pub(crate) device: String,
    /// The token's expiry, in seconds since the Unix epoch.
    pub(crate) exp: u64,
    /// The room of an access-link token.
    pub(crate) room: Option<String>,
}

/// Reads frames until the server's `hello`.
async fn wait_hello<S>(ws: &mut WebSocketStream<S>) -> Result<Hello, ConnectError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Hello {
                    user,
                    device,
                    exp,
                    room,
                }) => {
                    return Ok(Hello {
                        user,
                        device,
                        exp,
                        room,
                    })
                }
                _ => {
                    return Err(ConnectError::Transient(
                        "the server did not start with a hello frame".into(),
                    ))
                }
            },
            Some(Ok(Message::Close(frame))) => {
                let code = frame.as_ref().map(|f| u16::from(f.code));
                return Err(match close_error(frame.as_ref()) {
                    Some(err) => err,
                    None if code == Some(close_code::GOING_AWAY) => {
                        ConnectError::Transient("server going away".into())
                    }
                    None => ConnectError::Transient("closed before hello".into()),
                });
            }
            Some(Ok(_)) => {}
            Some(Err(err)) => return Err(ConnectError::Transient(err.to_string())),
            None => return Err(ConnectError::Transient("closed before hello".into())),
        }
    }
}

/// One try at one endpoint: the upgrade, the server's `hello`, and its identity checked.
async fn connect_to(
    req: Result<tokio_tungstenite::tungstenite::handshake::client::Request, ConnectError>,
    connector: Connector,
    options: &ClientOptions,
    identity: &Identity,
) -> Result<WsLink, ConnectError> {
    let (mut ws, _resp) = connect_async_tls_with_config(
        req?,
        Some(options.websocket_config()),
        true,
        Some(connector),
    )
    .await
    .map_err(handshake_error)?;
    let hello = match timeout(options.hello_timeout, wait_hello(&mut ws)).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(ConnectError::Transient(
                "no hello from the server in time".into(),
            ))
        }
    };
    if hello.user != identity.user.as_str() {
        return Err(ConnectError::Unauthorized(format!(
            "the token is for user {:?}, not {:?}",
            hello.user,
            identity.user.as_str()
        )));
    }
    if hello.device != identity.device.as_str() {
        return Err(ConnectError::Unauthorized(format!(
            "the server registered device {:?}, not {:?}",
            hello.device,
            identity.device.as_str()
        )));
    }
    Ok(WsLink::new(ws, hello, options))
}

impl Transport for WsTransport {
    type Link = WsLink;

    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl std::future::Future<Output = Result<WsLink, ConnectError>> + Send + 'static {
        let connector = match &self.tls {
            Some(config) => Connector::Rustls(config.clone()),
            None => Connector::Plain,
        };
        let urls = Arc::clone(&self.urls);
        let cursor = Arc::clone(&self.cursor);
        let options = self.options.clone();
        let identity = identity.clone();
        let token = token.to_owned();
        async move {
            let first = cursor.load(Ordering::Relaxed) % urls.len();
            let mut failure = None;
            for k in 0..urls.len() {
                let i = (first + k) % urls.len();
                let req = request(&urls[i], &identity, &token);
                match connect_to(req, connector.clone(), &options, &identity).await {
                    Ok(link) => {
                        cursor.store(i, Ordering::Relaxed);
                        return Ok(link);
                    }
                    Err(err @ ConnectError::Transient(_)) => {
                        tracing::debug!(url = %urls[i], error = %err, "signaling server not reached");
                        cursor.store((i + 1) % urls.len(), Ordering::Relaxed);
                        failure = Some(err);
                    }
                    // The token was refused: every node of the fleet shares the secret.
                    Err(err) => return Err(err),
                }
            }
            Err(failure.unwrap_or_else(|| ConnectError::Transient("no signaling URL".into())))
        }
    }
}

/// Convenience constructors of a supervised WebSocket [`SignalClient`](callapi_core::signal::SignalClient).
#[derive(Debug)]
#[non_exhaustive]
pub struct WsSignalClient;

impl WsSignalClient {
    /// Connects `user` (user and device) to the server at `url` with tokens from
    /// `token_provider`: a `Supervisor` over a [`WsTransport`], which fetches tokens, connects,
    /// renews tokens in-band and reconnects on the schedule of `docs/ARCHITECTURE.md`,
    /// "Staying connected". The connection is made while the client is polled (a `CallApi`
    /// does that in its task): watch `link_state()` or the `SignalEvent::Link` events.
    pub fn connect(
        url: &str,
        user: Identity,
        token_provider: impl TokenProvider,
    ) -> Result<Supervisor<WsTransport>, ClientError> {
        let transport = WsTransport::new(url)?;
        Ok(Self::start(
            transport,
            SupervisorConfig::new(user, Credentials::token(token_provider)),
        ))
    }

    /// A supervisor over `transport` with full control of the settings (credentials, seed).
    pub fn start(transport: WsTransport, config: SupervisorConfig) -> Supervisor<WsTransport> {
        Supervisor::start(transport, config)
    }
}
