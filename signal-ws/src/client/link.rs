//! A live client connection, driven from the owner's task: [`WsLink::next_event`] does the
//! socket's I/O (reads, queued writes, pings, the silence and write-stall watch) and keeps
//! everything in the link, so the future can be dropped at any point without losing a frame.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use callapi_core::connection::{ConnectError, LinkEvent, Renewal, TransportLink};
use callapi_core::protocol::{decode_str, encode_string, DecodeError, Envelope};
use callapi_core::signal::SignalError;
use futures::{Sink, SinkExt, Stream, StreamExt};
use tokio::net::TcpStream;
use tokio::time::{sleep_until, timeout, Instant, Sleep};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::transport::Hello;
use super::ClientOptions;
use crate::frames::{close_code, ClientFrame, ErrorCode, Probe, ServerFrame};

/// Frames a link queues for a socket that does not take them; beyond, `send` fails (the
/// reliable layer retransmits) and a socket that stays stalled is declared dead.
const MAX_QUEUED_FRAMES: usize = 1024;

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

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

/// A live WebSocket link (what [`WsTransport`](super::WsTransport) connects). It has no task:
/// its owner's calls to [`next_event`](TransportLink::next_event) move its bytes.
pub struct WsLink {
    ws: Socket,
    /// Frames waiting for the socket to take them, in order.
    outbox: VecDeque<Message>,
    /// Frames the socket took that are not flushed yet.
    unflushed: bool,
    /// Events not yet taken by the owner.
    events: VecDeque<LinkEvent>,
    /// The link ended: `Closed` is (or was) reported, nothing more follows.
    ended: bool,
    /// Wakes the owner at the earliest of the deadlines below.
    timer: Pin<Box<Sleep>>,
    /// When the server was last heard from.
    last_seen: Instant,
    /// When the next ping goes out.
    next_ping: Instant,
    /// Since when frames have waited for the socket.
    stalled_since: Option<Instant>,
    /// The answer to the renewal under way is due by then.
    renew_due: Option<Instant>,
    ping_interval: Duration,
    dead_after: Duration,
    renew_timeout: Duration,
    close_timeout: Duration,
    user: String,
    device: String,
    exp: u64,
    room: Option<String>,
}

impl std::fmt::Debug for WsLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsLink")
            .field("user", &self.user)
            .field("device", &self.device)
            .field("queued", &self.outbox.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl WsLink {
    pub(crate) fn new(ws: Socket, hello: Hello, options: &ClientOptions) -> Self {
        let Hello {
            user,
            device,
            exp,
            room,
        } = hello;
        let now = Instant::now();
        let dead_after = options
            .ping_interval
            .saturating_mul(options.missed_pongs.max(1));
        Self {
            ws,
            outbox: VecDeque::new(),
            unflushed: false,
            events: VecDeque::new(),
            ended: false,
            timer: Box::pin(sleep_until(now + options.ping_interval)),
            last_seen: now,
            next_ping: now + options.ping_interval,
            stalled_since: None,
            renew_due: None,
            ping_interval: options.ping_interval,
            dead_after,
            renew_timeout: options.renew_timeout,
            close_timeout: options.close_timeout,
            user,
            device,
            exp,
            room,
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
        self.exp
    }

    /// Ends the link: `Closed { error }` is its last event.
    fn end(&mut self, error: Option<ConnectError>) {
        if !self.ended {
            self.ended = true;
            self.outbox.clear();
            if self.renew_due.take().is_some() {
                // The renewal under way gets the link's end as its answer.
                let why = error
                    .clone()
                    .unwrap_or_else(|| ConnectError::Transient("link closed".into()));
                self.events.push_back(LinkEvent::Renewed(Err(why)));
            }
            self.events.push_back(LinkEvent::Closed { error });
        }
    }

    /// Hands queued frames to the socket and flushes, as far as it takes them now.
    fn poll_write(&mut self, cx: &mut Context<'_>, now: Instant) {
        while !self.outbox.is_empty() {
            match Pin::new(&mut self.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(err)) => return self.write_failed(&err),
                Poll::Pending => break,
            }
            let Some(frame) = self.outbox.pop_front() else {
                break;
            };
            if let Err(err) = Pin::new(&mut self.ws).start_send(frame) {
                return self.write_failed(&err);
            }
            self.unflushed = true;
        }
        if self.unflushed {
            match Pin::new(&mut self.ws).poll_flush(cx) {
                Poll::Ready(Ok(())) => self.unflushed = false,
                Poll::Ready(Err(err)) => return self.write_failed(&err),
                Poll::Pending => {}
            }
        }
        self.stalled_since = if self.unflushed || !self.outbox.is_empty() {
            self.stalled_since.or(Some(now))
        } else {
            None
        };
    }

    fn write_failed(&mut self, err: &dyn std::fmt::Display) {
        tracing::debug!(%err, "signaling write failed");
        self.end(None);
    }

    /// The link's work: events first, then deadlines, writes and reads.
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<LinkEvent>> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Poll::Ready(Some(ev));
            }
            if self.ended {
                return Poll::Ready(None);
            }
            let now = Instant::now();
            if now >= self.last_seen + self.dead_after {
                tracing::info!(
                    "signaling server silent for {:?}; treating the link as dead",
                    self.dead_after
                );
                self.end(None);
                continue;
            }
            if self
                .stalled_since
                .is_some_and(|since| now >= since + self.dead_after)
            {
                tracing::info!("signaling write stalled; treating the link as dead");
                self.end(None);
                continue;
            }
            if self.renew_due.is_some_and(|due| now >= due) {
                self.renew_due = None;
                self.events
                    .push_back(LinkEvent::Renewed(Err(ConnectError::Transient(format!(
                        "no answer to the renewal within {:?}",
                        self.renew_timeout
                    )))));
                continue;
            }
            if now >= self.next_ping {
                self.next_ping = now + self.ping_interval;
                self.outbox.push_back(Message::Ping(Default::default()));
            }
            self.poll_write(cx, now);
            if self.ended {
                continue;
            }
            match Pin::new(&mut self.ws).poll_next(cx) {
                Poll::Ready(Some(Ok(msg))) => {
                    self.last_seen = now;
                    self.on_message(msg, cx);
                    continue;
                }
                Poll::Ready(Some(Err(err))) => {
                    tracing::debug!(%err, "signaling socket error");
                    self.end(None);
                    continue;
                }
                Poll::Ready(None) => {
                    self.end(None);
                    continue;
                }
                Poll::Pending => {}
            }
            let mut due = (self.last_seen + self.dead_after).min(self.next_ping);
            if let Some(since) = self.stalled_since {
                due = due.min(since + self.dead_after);
            }
            if let Some(at) = self.renew_due {
                due = due.min(at);
            }
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
        }
    }

    fn on_message(&mut self, msg: Message, cx: &mut Context<'_>) {
        match msg {
            Message::Text(text) => self.on_text(&text),
            Message::Close(frame) => {
                // tungstenite queued the reply; hand it to the socket before the link ends.
                let _ = Pin::new(&mut self.ws).poll_flush(cx);
                self.end(close_error(frame.as_ref()));
            }
            _ => {}
        }
    }

    fn on_text(&mut self, text: &str) {
        // A relayed envelope is never taken for a control frame: whatever decodes as an
        // envelope is one, and an envelope that also carries `type` (which the server refuses
        // to relay) is dropped as invalid. Only what is no envelope at all can be a control
        // frame, and only the server sends those.
        match decode_str(text) {
            Ok(env) => self.events.push_back(LinkEvent::Message(env)),
            Err(err) => {
                let control = match err {
                    DecodeError::ReservedMember { .. } => None,
                    _ => Probe::of(text).and_then(|p| p.kind),
                };
                match control {
                    Some(kind) => self.on_control(text, &kind),
                    None => self.events.push_back(LinkEvent::Invalid(err)),
                }
            }
        }
    }

    /// A control frame of `type` `kind` from the server.
    fn on_control(&mut self, text: &str, kind: &str) {
        match serde_json::from_str::<ServerFrame>(text) {
            Ok(ServerFrame::TokenWillExpire { exp }) => {
                tracing::debug!(exp, "token will expire");
                self.events.push_back(LinkEvent::TokenWillExpire);
            }
            Ok(ServerFrame::Renewed { exp }) => {
                self.exp = exp;
                if self.renew_due.take().is_some() {
                    self.events.push_back(LinkEvent::Renewed(Ok(())));
                }
            }
            Ok(ServerFrame::Error {
                code: ErrorCode::BadToken,
                message,
                ..
            }) => {
                if self.renew_due.take().is_some() {
                    self.events
                        .push_back(LinkEvent::Renewed(Err(ConnectError::Transient(message))));
                } else {
                    tracing::warn!(%message, "server refused a token");
                }
            }
            Ok(ServerFrame::Error { code, message, id }) => {
                tracing::warn!(code = code.as_str(), %message, ?id, "server refused a frame");
            }
            Ok(_) => {}
            Err(_) => tracing::debug!(?kind, "ignoring an unknown control frame"),
        }
    }

    /// Queues `frame` and writes what the socket takes now.
    async fn queue(&mut self, frame: Message) -> Result<(), SignalError> {
        if self.ended {
            return Err(SignalError::NotConnected);
        }
        if self.outbox.len() >= MAX_QUEUED_FRAMES {
            return Err(SignalError::Transport(format!(
                "{MAX_QUEUED_FRAMES} frames are waiting for the socket"
            )));
        }
        self.outbox.push_back(frame);
        futures::future::poll_fn(|cx| {
            self.poll_write(cx, Instant::now());
            Poll::Ready(())
        })
        .await;
        Ok(())
    }
}

impl TransportLink for WsLink {
    async fn send(&mut self, envelope: Envelope) -> Result<(), SignalError> {
        let text = encode_string(&envelope).map_err(|e| SignalError::Rejected(e.to_string()))?;
        self.queue(Message::text(text)).await
    }

    async fn next_event(&mut self) -> Option<LinkEvent> {
        futures::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    /// Sends the token; the server's `renewed` (or `error`) comes back as
    /// [`LinkEvent::Renewed`], or a failure after the renewal timeout.
    async fn renew(&mut self, token: &str) -> Renewal {
        let frame = match serde_json::to_string(&ClientFrame::Renew {
            token: token.to_owned(),
        }) {
            Ok(json) => Message::text(json),
            Err(err) => return Renewal::Done(Err(ConnectError::Transient(err.to_string()))),
        };
        match self.queue(frame).await {
            Ok(()) => {
                self.renew_due = Some(Instant::now() + self.renew_timeout);
                Renewal::Pending
            }
            Err(err) => Renewal::Done(Err(ConnectError::Transient(err.to_string()))),
        }
    }

    /// Writes what is queued, sends a close frame and waits for the server's (each within the
    /// close timeout).
    async fn close(&mut self) {
        if self.ended {
            return;
        }
        self.ended = true;
        let close_timeout = self.close_timeout;
        let outbox = std::mem::take(&mut self.outbox);
        let ws = &mut self.ws;
        let _ = timeout(close_timeout, async {
            for frame in outbox {
                ws.feed(frame).await?;
            }
            ws.flush().await
        })
        .await;
        let frame = CloseFrame {
            code: CloseCode::from(close_code::NORMAL),
            reason: "client closing".into(),
        };
        if matches!(
            timeout(close_timeout, ws.close(Some(frame))).await,
            Ok(Ok(()))
        ) {
            let _ = timeout(close_timeout, async {
                while let Some(Ok(msg)) = ws.next().await {
                    if let Message::Close(_) = msg {
                        break;
                    }
                }
            })
            .await;
        }
    }
}
