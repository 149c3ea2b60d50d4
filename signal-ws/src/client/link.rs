//! A live client connection: a task owns the socket (reads, writes, pings, watches for
//! silence); [`WsLink`] talks to it through channels, so `next_event` is cancel-safe.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::connection::{ConnectError, LinkEvent, TransportLink};
use callapi_core::protocol::{decode_str, encode_string, DecodeError, Envelope};
use callapi_core::signal::SignalError;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::transport::Hello;
use super::ClientOptions;
use crate::frames::{close_code, ClientFrame, ErrorCode, Probe, ServerFrame};

type RenewReply = oneshot::Sender<Result<(), ConnectError>>;

enum Cmd {
    Send(String),
    Renew(String, RenewReply),
    Close(oneshot::Sender<()>),
}

/// What a server close frame means to the supervisor.
pub(crate) fn close_error(frame: Option<&CloseFrame>) -> Option<ConnectError> {
    let frame = frame?;
    let code = u16::from(frame.code);
    let reason = frame.reason.as_str();
    match code {
        close_code::NORMAL | close_code::GOING_AWAY => None,
        close_code::TOKEN_EXPIRED => Some(ConnectError::TokenExpired),
        close_code::UNAUTHORIZED => Some(ConnectError::Unauthorized(format!(
            "server closed the link ({code}): {reason}"
        ))),
        _ => Some(ConnectError::Transient(format!(
            "server closed the link ({code}): {reason}"
        ))),
    }
}

/// A live WebSocket link (what [`WsTransport`](super::WsTransport) connects).
#[derive(Debug)]
pub struct WsLink {
    cmds: mpsc::UnboundedSender<Cmd>,
    events: mpsc::UnboundedReceiver<LinkEvent>,
    task: JoinHandle<()>,
    user: String,
    device: String,
    exp: Arc<AtomicU64>,
    room: Option<String>,
    renew_timeout: Duration,
    close_timeout: Duration,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cmd::Send(_) => "Send",
            Cmd::Renew(..) => "Renew",
            Cmd::Close(_) => "Close",
        })
    }
}

impl WsLink {
    pub(crate) fn start<S>(ws: WebSocketStream<S>, hello: Hello, options: &ClientOptions) -> Self
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let Hello {
            user,
            device,
            exp,
            room,
        } = hello;
        let exp = Arc::new(AtomicU64::new(exp));
        let task = LinkTask {
            ws,
            cmds: cmd_rx,
            events: ev_tx,
            ping_interval: options.ping_interval,
            dead_after: options
                .ping_interval
                .saturating_mul(options.missed_pongs.max(1)),
            close_timeout: options.close_timeout,
            pending_renew: None,
            exp: exp.clone(),
        };
        Self {
            cmds: cmd_tx,
            events: ev_rx,
            task: tokio::spawn(task.run()),
            user,
            device,
            exp,
            room,
            renew_timeout: options.renew_timeout,
            close_timeout: options.close_timeout,
        }
    }

    /// The user the server took from the token.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The device the server registered.
    pub fn device(&self) -> &str {
        &self.device
    }

    /// The room of an access-link token.
    pub fn room(&self) -> Option<&str> {
        self.room.as_deref()
    }

    /// When the link's token expires (seconds since the Unix epoch; updated by renewals).
    pub fn expires_at(&self) -> u64 {
        self.exp.load(Ordering::Relaxed)
    }
}

impl Drop for WsLink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TransportLink for WsLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        let text = encode_string(&envelope).map_err(|e| SignalError::Rejected(e.to_string()))?;
        self.cmds
            .send(Cmd::Send(text))
            .map_err(|_| SignalError::NotConnected)
    }

    async fn next_event(&mut self) -> Option<LinkEvent> {
        self.events.recv().await
    }

    async fn renew(&mut self, token: &str) -> Result<(), ConnectError> {
        let (tx, rx) = oneshot::channel();
        self.cmds
            .send(Cmd::Renew(token.to_owned(), tx))
            .map_err(|_| ConnectError::Transient("link closed".into()))?;
        match timeout(self.renew_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ConnectError::Transient("link closed".into())),
            Err(_) => Err(ConnectError::Transient(format!(
                "no answer to the renewal within {:?}",
                self.renew_timeout
            ))),
        }
    }

    async fn close(&mut self) {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Close(tx)).is_ok() {
            let _ = timeout(self.close_timeout.saturating_mul(3), rx).await;
        }
        self.task.abort();
    }
}

struct LinkTask<S> {
    ws: WebSocketStream<S>,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<LinkEvent>,
    ping_interval: Duration,
    dead_after: Duration,
    close_timeout: Duration,
    pending_renew: Option<RenewReply>,
    exp: Arc<AtomicU64>,
}

enum Step {
    Go,
    /// The link ended; tell the supervisor why.
    Ended(Option<ConnectError>),
    /// Closed on request; nothing to report.
    Quiet,
}

impl<S> LinkTask<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    async fn run(mut self) {
        let mut last_seen = Instant::now();
        let mut ping =
            tokio::time::interval_at(Instant::now() + self.ping_interval, self.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = loop {
            let step = tokio::select! {
                msg = self.ws.next() => {
                    last_seen = Instant::now();
                    match msg {
                        Some(Ok(Message::Text(text))) => self.on_text(&text),
                        Some(Ok(Message::Close(frame))) => {
                            let _ = timeout(self.close_timeout, self.ws.close(None)).await;
                            Step::Ended(close_error(frame.as_ref()))
                        }
                        Some(Ok(_)) => Step::Go,
                        Some(Err(err)) => {
                            tracing::debug!(%err, "signaling socket error");
                            Step::Ended(None)
                        }
                        None => Step::Ended(None),
                    }
                }
                cmd = self.cmds.recv() => match cmd {
                    Some(Cmd::Send(text)) => self.send(Message::text(text)).await,
                    Some(Cmd::Renew(token, reply)) => {
                        if let Some(old) = self.pending_renew.replace(reply) {
                            let _ = old.send(Err(ConnectError::Transient("superseded by a newer renewal".into())));
                        }
                        match serde_json::to_string(&ClientFrame::Renew { token }) {
                            Ok(json) => self.send(Message::text(json)).await,
                            Err(_) => Step::Go,
                        }
                    }
                    Some(Cmd::Close(done)) => {
                        self.close().await;
                        let _ = done.send(());
                        Step::Quiet
                    }
                    None => {
                        self.close().await;
                        Step::Quiet
                    }
                },
                _ = ping.tick() => self.send(Message::Ping(Default::default())).await,
                () = sleep_until(last_seen + self.dead_after) => {
                    tracing::info!("signaling server silent for {:?}; treating the link as dead", self.dead_after);
                    Step::Ended(None)
                }
            };
            match step {
                Step::Go => {}
                other => break other,
            }
        };
        let (error, report) = match end {
            Step::Ended(error) => (error, true),
            _ => (None, false),
        };
        if let Some(reply) = self.pending_renew.take() {
            let _ = reply.send(Err(error
                .clone()
                .unwrap_or_else(|| ConnectError::Transient("link closed".into()))));
        }
        if report {
            let _ = self.events.send(LinkEvent::Closed { error });
        }
    }

    fn on_text(&mut self, text: &str) -> Step {
        // A relayed envelope is never taken for a control frame: whatever decodes as an
        // envelope is one, and an envelope that also carries `type` (which the server refuses
        // to relay) is dropped as invalid. Only what is no envelope at all can be a control
        // frame, and only the server sends those.
        match decode_str(text) {
            Ok(env) => {
                let _ = self.events.send(LinkEvent::Message(env));
                Step::Go
            }
            Err(err) => {
                let control = match err {
                    DecodeError::ReservedMember { .. } => None,
                    _ => Probe::of(text).and_then(|p| p.kind),
                };
                match control {
                    Some(kind) => self.on_control(text, &kind),
                    None => {
                        let _ = self.events.send(LinkEvent::Invalid(err));
                        Step::Go
                    }
                }
            }
        }
    }

    /// A control frame of `type` `kind` from the server.
    fn on_control(&mut self, text: &str, kind: &str) -> Step {
        match serde_json::from_str::<ServerFrame>(text) {
            Ok(ServerFrame::TokenWillExpire { exp }) => {
                tracing::debug!(exp, "token will expire");
                let _ = self.events.send(LinkEvent::TokenWillExpire);
            }
            Ok(ServerFrame::Renewed { exp }) => {
                self.exp.store(exp, Ordering::Relaxed);
                if let Some(reply) = self.pending_renew.take() {
                    let _ = reply.send(Ok(()));
                }
            }
            Ok(ServerFrame::Error {
                code: ErrorCode::BadToken,
                message,
                ..
            }) => match self.pending_renew.take() {
                Some(reply) => {
                    let _ = reply.send(Err(ConnectError::Transient(message)));
                }
                None => tracing::warn!(%message, "server refused a token"),
            },
            Ok(ServerFrame::Error { code, message, id }) => {
                tracing::warn!(code = code.as_str(), %message, ?id, "server refused a frame");
            }
            Ok(_) => {}
            Err(_) => tracing::debug!(?kind, "ignoring an unknown control frame"),
        }
        Step::Go
    }

    async fn send(&mut self, msg: Message) -> Step {
        match timeout(self.dead_after, self.ws.send(msg)).await {
            Ok(Ok(())) => Step::Go,
            Ok(Err(err)) => {
                tracing::debug!(%err, "signaling write failed");
                Step::Ended(None)
            }
            Err(_) => {
                tracing::info!("signaling write stalled; treating the link as dead");
                Step::Ended(None)
            }
        }
    }

    async fn close(&mut self) {
        let frame = CloseFrame {
            code: CloseCode::from(close_code::NORMAL),
            reason: "client closing".into(),
        };
        if matches!(
            timeout(self.close_timeout, self.ws.close(Some(frame))).await,
            Ok(Ok(()))
        ) {
            let _ = timeout(self.close_timeout, async {
                while let Some(Ok(msg)) = self.ws.next().await {
                    if let Message::Close(_) = msg {
                        break;
                    }
                }
            })
            .await;
        }
    }
}
