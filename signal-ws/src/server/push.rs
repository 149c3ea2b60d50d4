//! Waking offline devices: the server calls a [`PushNotifier`] for every invite to a user with
//! no device online (the invite itself waits in the offline queue). A device woken by the push
//! connects and receives the queued invite, so devices need no registration with the server.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use callapi_core::protocol::{CallType, Extension};
use http_body_util::Full;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::Serialize;
use tokio::net::TcpStream;

/// What a push says: an invite is waiting for `to`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PushNotification {
    /// Always `"invite"`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// The callee (the user to wake).
    pub to: String,
    /// The caller.
    pub from: String,
    /// The caller's device.
    pub from_device: String,
    /// The call.
    pub call_id: String,
    /// The invite envelope's id.
    pub envelope_id: String,
    /// The caller's room.
    pub room_id: String,
    /// `"video"` or `"audio"`.
    pub call_type: CallType,
    /// The invite's extension (display name and the like).
    pub extension: Extension,
    /// When the invite stops being worth ringing, in milliseconds since the Unix epoch.
    pub expires_at_ms: u64,
}

/// Why a push failed (it is counted in metrics and logged; the invite stays queued).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The push service could not be reached or did not answer in time.
    #[error("push service unreachable: {0}")]
    Unreachable(String),
    /// The push service answered with an error.
    #[error("push service refused: {0}")]
    Refused(String),
    /// The notifier is misconfigured (bad URL, TLS settings).
    #[error("push notifier misconfigured: {0}")]
    Config(String),
}

/// A boxed push future.
pub type PushFuture = Pin<Box<dyn Future<Output = Result<(), PushError>> + Send>>;

/// Wakes a user's devices for an invite (APNs, FCM, a webhook to the app's backend...).
/// A closure returning a future works:
///
/// ```
/// use callapi_signal_ws::server::{PushError, PushNotification, PushNotifier};
/// let notifier = |push: PushNotification| async move {
///     println!("wake {} for a call from {}", push.to, push.from);
///     Ok::<(), PushError>(())
/// };
/// fn takes(_n: impl PushNotifier) {}
/// takes(notifier);
/// ```
pub trait PushNotifier: Send + Sync + 'static {
    /// Sends one push. Runs on its own task; at most `Limits::max_pending_pushes` at once.
    fn notify(&self, push: PushNotification) -> PushFuture;
}

impl<F, Fut> PushNotifier for F
where
    F: Fn(PushNotification) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), PushError>> + Send + 'static,
{
    fn notify(&self, push: PushNotification) -> PushFuture {
        Box::pin(self(push))
    }
}

/// A [`PushNotifier`] that POSTs each [`PushNotification`] as JSON to a URL (`http://` or
/// `https://`), for the app's backend to forward to APNs/FCM. A 2xx answer is success.
#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    uri: Uri,
    authorization: Option<String>,
    timeout: Duration,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl WebhookNotifier {
    /// Posts to `url` (5 s timeout; `https` trusts the Mozilla roots).
    pub fn new(url: &str) -> Result<Self, PushError> {
        let uri: Uri = url
            .parse()
            .map_err(|e| PushError::Config(format!("webhook URL {url:?}: {e}")))?;
        let tls = match uri.scheme_str() {
            Some("http") => None,
            Some("https") => Some(
                crate::tls::client_config(None).map_err(|e| PushError::Config(e.to_string()))?,
            ),
            _ => {
                return Err(PushError::Config(format!(
                    "webhook URL {url:?} must start with http:// or https://"
                )))
            }
        };
        if uri.host().is_none() {
            return Err(PushError::Config(format!(
                "webhook URL {url:?} has no host"
            )));
        }
        Ok(Self {
            uri,
            authorization: None,
            timeout: Duration::from_secs(5),
            tls,
        })
    }

    /// Sends `Authorization: Bearer <token>` with every post.
    pub fn with_bearer(mut self, token: impl Into<String>) -> Self {
        self.authorization = Some(format!("Bearer {}", token.into()));
        self
    }

    /// Bounds each post (default 5 s).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses this TLS configuration for `https` URLs.
    pub fn with_tls_config(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }
}

impl PushNotifier for WebhookNotifier {
    fn notify(&self, push: PushNotification) -> PushFuture {
        let this = self.clone();
        Box::pin(async move {
            let body = serde_json::to_vec(&push).map_err(|e| PushError::Config(e.to_string()))?;
            match tokio::time::timeout(this.timeout, this.post(body)).await {
                Ok(result) => result,
                Err(_) => Err(PushError::Unreachable(format!(
                    "no answer within {:?}",
                    this.timeout
                ))),
            }
        })
    }
}

impl WebhookNotifier {
    async fn post(&self, body: Vec<u8>) -> Result<(), PushError> {
        let host = self.uri.host().unwrap_or_default();
        let host_bare = host.trim_start_matches('[').trim_end_matches(']');
        let port = self
            .uri
            .port_u16()
            .unwrap_or(if self.tls.is_some() { 443 } else { 80 });
        let tcp = TcpStream::connect((host_bare, port))
            .await
            .map_err(|e| PushError::Unreachable(e.to_string()))?;
        let authority = self
            .uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = self
            .uri
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_else(|| "/".into());
        let mut req = Request::post(path)
            .header(HOST, authority)
            .header(CONTENT_TYPE, "application/json");
        if let Some(auth) = &self.authorization {
            req = req.header(AUTHORIZATION, auth);
        }
        let req = req
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| PushError::Config(e.to_string()))?;
        match &self.tls {
            None => send(TokioIo::new(tcp), req).await,
            Some(config) => {
                let name = ServerName::try_from(host_bare.to_owned())
                    .map_err(|e| PushError::Config(e.to_string()))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| PushError::Unreachable(e.to_string()))?;
                send(TokioIo::new(tls), req).await
            }
        }
    }
}

async fn send<I>(io: I, req: Request<Full<Bytes>>) -> Result<(), PushError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| PushError::Unreachable(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let result = sender.send_request(req).await;
    drop(sender);
    conn.abort();
    let resp = result.map_err(|e| PushError::Unreachable(e.to_string()))?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(PushError::Refused(format!("HTTP {}", resp.status())))
    }
}
