//! One WebSocket connection after the upgrade: registration, relaying in both directions,
//! keepalive, token expiry and renewal, rate and size limits, and closing with the documented
//! codes.

use std::sync::Arc;
use std::time::Duration;

use callapi_core::protocol::{decode_header, DecodeError, DeviceId, UserId};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::hub::{Hub, RouteError};
use super::limits::{RateLimiter, RateVerdict};
use super::outbox::{outbox, Inbox, OverflowSignal};
use super::ws::{Incoming, ReadError, SocketError, WsSocket};
use super::Shared;
use crate::frames::{close_code, ClientFrame, ErrorCode, Probe, ServerFrame};

/// Who the connection is, from its token.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: UserId,
    pub(crate) device: DeviceId,
    pub(crate) room: Option<String>,
    pub(crate) exp: u64,
}

/// The instant of `exp` (Unix seconds) plus `leeway`, on tokio's clock.
fn instant_of(exp: u64, leeway: Duration) -> Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0);
    let at_ms = exp.saturating_mul(1000);
    Instant::now() + Duration::from_millis(at_ms.saturating_sub(now_ms)) + leeway
}

/// Counts an open connection in the `connections` gauge while it lives.
struct Counted(Arc<super::metrics::Metrics>);

impl Counted {
    fn new(metrics: Arc<super::metrics::Metrics>) -> Self {
        metrics.connections.inc();
        metrics.accepted.inc();
        Self(metrics)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

/// Unregisters the device when dropped.
struct Registered<'a> {
    hub: &'a Hub,
    user: &'a UserId,
    conn: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.hub.unregister(self.user, self.conn);
    }
}

/// How the loop goes on.
enum Flow {
    Continue,
    Stop,
    /// The socket went over its write budget: close it with 4010.
    SlowConsumer,
}

struct Conn<S> {
    /// Declared before `ws`: fields drop in order, so the gauge is down before the socket closes.
    _counted: Counted,
    ws: WsSocket<S>,
    shared: Arc<Shared>,
    session: Session,
    expires_at: Instant,
    warn_at: Instant,
    warned: bool,
    /// Set once routing found this socket over its write budget.
    overflow: OverflowSignal,
}

/// Serves one upgraded socket until it closes.
pub(crate) async fn run<S>(ws: WsSocket<S>, session: Session, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    let metrics = shared.metrics.clone();
    let leeway = shared.config.timers.token_leeway;
    let expires_at = instant_of(session.exp, leeway);
    let warn_at = expires_at
        .checked_sub(shared.config.timers.expiry_warning)
        .unwrap_or_else(Instant::now);
    let (tx, inbox) = outbox(
        shared.config.limits.outbound_queue,
        shared.config.buffers.max_write_buffer_bytes,
    );
    let mut conn = Conn {
        _counted: Counted::new(metrics.clone()),
        ws,
        shared: shared.clone(),
        session,
        expires_at,
        warn_at,
        warned: false,
        overflow: inbox.overflow_signal(),
    };
    let hub = shared.hub.clone();
    let registered = hub.register(
        &conn.session.user,
        &conn.session.device,
        conn.session.room.clone(),
        tx,
    );
    let conn_id = match registered {
        Ok(id) => id,
        Err(_) => {
            metrics.limit_hit("connections_per_user");
            tracing::info!(user = %conn.session.user, "too many connections for this user");
            conn.close(
                close_code::TOO_MANY_CONNECTIONS,
                "too many connections for this user",
            )
            .await;
            return;
        }
    };
    let user = conn.session.user.clone();
    let _registered = Registered {
        hub: &hub,
        user: &user,
        conn: conn_id,
    };
    tracing::debug!(user = %conn.session.user, device = %conn.session.device, "connected");
    let hello = ServerFrame::Hello {
        user: conn.session.user.to_string(),
        device: conn.session.device.to_string(),
        exp: conn.session.exp,
        room: conn.session.room.clone(),
    };
    if Box::pin(conn.send_frame(&hello)).await {
        conn.serve(inbox).await;
    }
    tracing::debug!(user = %conn.session.user, device = %conn.session.device, "disconnected");
}

/// What woke an idle connection.
enum Wake {
    Shutdown,
    Incoming(Option<Result<Incoming, SocketError>>),
    Overflow,
    Outgoing(Option<Utf8Bytes>),
    Timer,
}

/// The connection's deadlines. One timer (a single entry in tokio's shared timer wheel) is set
/// to the earliest of them, rather than a timer for each.
struct Deadlines {
    next_ping: Instant,
    last_seen: Instant,
}

impl<S> Conn<S>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
{
    async fn serve(&mut self, mut inbox: Inbox) {
        let timers = self.shared.config.timers.clone();
        let limits = self.shared.config.limits.clone();
        let dead_after = timers.dead_after();
        let now = Instant::now();
        let mut at = Deadlines {
            next_ping: now + timers.ping_interval,
            last_seen: now,
        };
        let mut limiter = RateLimiter::new(
            limits.rate_per_sec,
            limits.rate_burst,
            limits.rate_close_after,
            limits.rate_window,
            std::time::Instant::now(),
        );
        let mut shutdown = self.shared.shutdown.subscribe();
        let timer = tokio::time::sleep_until(self.next_deadline(&at, dead_after));
        tokio::pin!(timer);
        loop {
            let wake = tokio::select! {
                () = super::wait_shutdown(&mut shutdown) => Wake::Shutdown,
                incoming = self.ws.next() => Wake::Incoming(incoming),
                () = self.overflow.wait() => Wake::Overflow,
                out = inbox.recv() => Wake::Outgoing(out),
                () = &mut timer => Wake::Timer,
            };
            // The handlers run boxed: an idle connection's future holds only the wait above.
            let flow = match wake {
                Wake::Shutdown => {
                    Box::pin(self.close(close_code::GOING_AWAY, "server shutting down")).await;
                    Flow::Stop
                }
                Wake::Incoming(incoming) => {
                    at.last_seen = Instant::now();
                    Box::pin(self.on_incoming(incoming, &mut limiter)).await
                }
                Wake::Overflow => Flow::SlowConsumer,
                Wake::Outgoing(Some(text)) => {
                    let len = text.len();
                    let flow = Box::pin(self.send_text(text)).await;
                    inbox.written(len);
                    flow
                }
                Wake::Outgoing(None) => {
                    Box::pin(self.close(
                        close_code::REPLACED,
                        "replaced by a newer connection of this device",
                    ))
                    .await;
                    Flow::Stop
                }
                Wake::Timer => Box::pin(self.on_timer(&mut at, dead_after)).await,
            };
            match flow {
                Flow::Continue => {}
                // A control frame's write can be what the overflow cut short.
                Flow::Stop if !self.overflow.is_set() => return,
                Flow::Stop | Flow::SlowConsumer => {
                    inbox.discard();
                    Box::pin(self.close_slow_consumer()).await;
                    return;
                }
            }
            // Re-arm only when a deadline came nearer or the timer fired: a message that moves
            // the dead-peer deadline later needs no timer update (the timer wakes early and is
            // set again then).
            let next = self.next_deadline(&at, dead_after);
            if next < timer.deadline() || timer.is_elapsed() {
                timer.as_mut().reset(next);
            }
        }
    }

    /// The earliest deadline: the next ping, the dead-peer limit, the expiry warning, expiry.
    fn next_deadline(&self, at: &Deadlines, dead_after: Duration) -> Instant {
        let mut next = at
            .next_ping
            .min(at.last_seen + dead_after)
            .min(self.expires_at);
        if !self.warned {
            next = next.min(self.warn_at);
        }
        next
    }

    /// Does what the deadlines that passed call for.
    async fn on_timer(&mut self, at: &mut Deadlines, dead_after: Duration) -> Flow {
        let now = Instant::now();
        if now >= self.expires_at {
            self.shared.metrics.expiry_closes.inc();
            self.close(close_code::TOKEN_EXPIRED, "token expired").await;
            return Flow::Stop;
        }
        if now >= at.last_seen + dead_after {
            self.shared.metrics.keepalive_drops.inc();
            tracing::info!(user = %self.session.user, device = %self.session.device,
                "no pong for {dead_after:?}; dropping the socket");
            return Flow::Stop;
        }
        if !self.warned && now >= self.warn_at {
            self.warned = true;
            let frame = ServerFrame::TokenWillExpire {
                exp: self.session.exp,
            };
            if !self.send_frame(&frame).await {
                return Flow::Stop;
            }
        }
        if now >= at.next_ping {
            at.next_ping = now + self.shared.config.timers.ping_interval;
            return self.send_ping().await;
        }
        Flow::Continue
    }

    async fn on_incoming(
        &mut self,
        incoming: Option<Result<Incoming, SocketError>>,
        limiter: &mut RateLimiter,
    ) -> Flow {
        let msg = match incoming {
            None => return Flow::Stop,
            Some(Ok(msg)) => msg,
            Some(Err(SocketError::Read(err @ ReadError::TooBig { .. }))) => {
                self.shared.metrics.limit_hit("frame_size");
                tracing::info!(user = %self.session.user, %err, "oversize message");
                self.close_oversize().await;
                return Flow::Stop;
            }
            Some(Err(SocketError::Read(err))) => {
                tracing::info!(user = %self.session.user, %err, "closing the socket");
                let code = match err {
                    ReadError::NotUtf8 => close_code::INVALID_PAYLOAD,
                    _ => close_code::PROTOCOL_ERROR,
                };
                let reason = match err {
                    ReadError::NotUtf8 => "a text message or close reason is not valid UTF-8",
                    _ => "WebSocket protocol violation",
                };
                let wait = self.shared.config.timers.close_timeout;
                let _ = timeout(wait, self.ws.send_close(code, reason)).await;
                return Flow::Stop;
            }
            Some(Err(SocketError::Io(err))) => {
                tracing::debug!(user = %self.session.user, %err, "socket error");
                return Flow::Stop;
            }
        };
        if matches!(msg, Incoming::Binary | Incoming::Ping(_)) {
            if let Some(flow) = self
                .limit(limiter.check(std::time::Instant::now()), None)
                .await
            {
                return flow;
            }
        }
        match msg {
            Incoming::Text(text) => self.on_text(text, limiter).await,
            Incoming::Binary => {
                self.shared.metrics.dropped("invalid");
                self.error(
                    ErrorCode::InvalidEnvelope,
                    "binary frames are not used: send each envelope as a JSON text frame".into(),
                    None,
                )
                .await
            }
            Incoming::Ping(payload) => {
                let write = self.shared.config.timers.write_timeout;
                match timeout(write, self.ws.send_pong(payload)).await {
                    Ok(Ok(())) => Flow::Continue,
                    _ => Flow::Stop,
                }
            }
            Incoming::Close(code) => {
                // Answer the peer's close with its own code (RFC 6455 §5.5.1) and stop.
                let code = match code.map(|(c, _)| c) {
                    None => close_code::NORMAL,
                    Some(c @ (1000..=1003 | 1007..=1011 | 3000..=4999)) => c,
                    Some(_) => close_code::PROTOCOL_ERROR,
                };
                let wait = self.shared.config.timers.close_timeout;
                let _ = timeout(wait, self.ws.send_close(code, "")).await;
                Flow::Stop
            }
            Incoming::Pong => Flow::Continue,
        }
    }

    /// Applies a rate verdict: `None` to go on, or how the message was answered.
    async fn limit(&mut self, verdict: RateVerdict, id: Option<String>) -> Option<Flow> {
        match verdict {
            RateVerdict::Pass => None,
            RateVerdict::Drop => {
                self.shared.metrics.dropped("rate_limited");
                self.shared.metrics.limit_hit("rate");
                let msg = "message rate exceeded; the message was dropped".to_owned();
                Some(self.error(ErrorCode::RateLimited, msg, id).await)
            }
            RateVerdict::Close => {
                self.shared.metrics.limit_hit("rate_close");
                self.close(close_code::RATE_LIMITED, "message rate exceeded repeatedly")
                    .await;
                Some(Flow::Stop)
            }
        }
    }

    async fn on_text(&mut self, text: Utf8Bytes, limiter: &mut RateLimiter) -> Flow {
        let decoded = decode_header(&text);
        // Only a frame that is not an envelope is probed for a control `type` and an `id`.
        let probe = match &decoded {
            Ok(_) => Probe::default(),
            Err(_) => Probe::of(&text).unwrap_or_default(),
        };
        let now = std::time::Instant::now();
        let (verdict, id) = match &decoded {
            Ok(env) if env.is_ack() => (limiter.check_ack(now), Some(env.id.to_string())),
            Ok(env) => (limiter.check(now), Some(env.id.to_string())),
            Err(_) => (limiter.check(now), probe.id_string()),
        };
        if let Some(flow) = self.limit(verdict, id).await {
            return flow;
        }
        let err = match decoded {
            Ok(env) => {
                if env.from != self.session.user || env.from_device != self.session.device {
                    self.shared.metrics.dropped("spoofed");
                    let msg = format!(
                        "from/from_device must be {:?}/{:?}, the identity of this connection's token",
                        self.session.user.as_str(),
                        self.session.device.as_str()
                    );
                    return self
                        .error(ErrorCode::SpoofedFrom, msg, Some(env.id.to_string()))
                        .await;
                }
                self.shared.metrics.received.inc();
                let routed =
                    self.shared
                        .hub
                        .route(self.session.room.as_deref(), &env, text.clone());
                return match routed {
                    Ok(()) => Flow::Continue,
                    Err(RouteError::OutOfScope(msg)) => {
                        self.shared.metrics.dropped("out_of_scope");
                        self.error(ErrorCode::OutOfScope, msg, Some(env.id.to_string()))
                            .await
                    }
                };
            }
            Err(err) => err,
        };
        if let DecodeError::ReservedMember { .. } = err {
            // An envelope that also carries `type`: relayed, it could pass for one of this
            // server's control frames at the receiver.
            self.shared.metrics.dropped("invalid");
            return self
                .error(
                    ErrorCode::InvalidEnvelope,
                    err.to_string(),
                    Probe::id_of(&text),
                )
                .await;
        }
        match probe.kind.as_deref() {
            Some(kind @ ("renew" | "ping")) => match serde_json::from_str::<ClientFrame>(&text) {
                Ok(ClientFrame::Renew { token }) => self.renew(&token).await,
                Ok(ClientFrame::Ping { nonce }) => {
                    let nonce = nonce.map(|n| n.chars().take(64).collect());
                    self.send_frame(&ServerFrame::Pong { nonce }).await.into()
                }
                Err(e) => {
                    self.error(
                        ErrorCode::InvalidEnvelope,
                        format!("invalid {kind} frame: {e}"),
                        None,
                    )
                    .await
                }
            },
            Some(other) => {
                let msg = format!("unknown control frame type {other:?}");
                self.error(ErrorCode::InvalidEnvelope, msg, None).await
            }
            None => {
                self.shared.metrics.dropped("invalid");
                let code = match err {
                    DecodeError::TooLarge { .. } => ErrorCode::TooLarge,
                    DecodeError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
                    _ => ErrorCode::InvalidEnvelope,
                };
                self.error(code, err.to_string(), probe.id_string()).await
            }
        }
    }

    async fn renew(&mut self, token: &str) -> Flow {
        match self.shared.authority.verify(token) {
            Ok(v) => {
                let same = v.user == self.session.user
                    && v.device.as_ref().is_none_or(|d| *d == self.session.device)
                    && v.room == self.session.room;
                if !same {
                    self.shared.metrics.renewal("identity_mismatch");
                    self.close(
                        close_code::UNAUTHORIZED,
                        "renewal token is for another user, device or room",
                    )
                    .await;
                    return Flow::Stop;
                }
                self.shared.metrics.renewal("ok");
                self.session.exp = v.exp;
                self.expires_at = instant_of(v.exp, self.shared.config.timers.token_leeway);
                self.warn_at = self
                    .expires_at
                    .checked_sub(self.shared.config.timers.expiry_warning)
                    .unwrap_or_else(Instant::now);
                self.warned = false;
                self.send_frame(&ServerFrame::Renewed { exp: v.exp })
                    .await
                    .into()
            }
            Err(err) => {
                self.shared.metrics.renewal("refused");
                self.error(ErrorCode::BadToken, format!("renewal refused: {err}"), None)
                    .await
            }
        }
    }

    async fn error(&mut self, code: ErrorCode, message: String, id: Option<String>) -> Flow {
        self.send_frame(&ServerFrame::Error { code, message, id })
            .await
            .into()
    }

    /// Sends a control frame; `false` if the socket is gone.
    async fn send_frame(&mut self, frame: &ServerFrame) -> bool {
        match serde_json::to_string(frame) {
            Ok(json) => matches!(self.send_text(Utf8Bytes::from(json)).await, Flow::Continue),
            Err(_) => true,
        }
    }

    /// Writes a text message (see [`write`](Self::write)).
    async fn send_text(&mut self, text: Utf8Bytes) -> Flow {
        let write = self.ws.send_text(text);
        Self::write(&self.shared, &self.session, &self.overflow, write).await
    }

    /// Sends a keepalive ping (see [`write`](Self::write)).
    async fn send_ping(&mut self) -> Flow {
        let write = self.ws.send_ping();
        Self::write(&self.shared, &self.session, &self.overflow, write).await
    }

    /// Runs a write; gives up (with [`Flow::SlowConsumer`]) as soon as routing finds the socket
    /// over its write budget, rather than waiting out the write timeout.
    async fn write(
        shared: &Shared,
        session: &Session,
        overflow: &OverflowSignal,
        write: impl std::future::Future<Output = std::io::Result<()>>,
    ) -> Flow {
        let write = timeout(shared.config.timers.write_timeout, write);
        let written = tokio::select! {
            biased;
            written = write => written,
            () = overflow.wait() => return Flow::SlowConsumer,
        };
        match written {
            Ok(Ok(())) => Flow::Continue,
            Ok(Err(err)) => {
                tracing::debug!(user = %session.user, %err, "write failed");
                Flow::Stop
            }
            Err(_) => {
                tracing::info!(user = %session.user, "write timed out; dropping the socket");
                Flow::Stop
            }
        }
    }

    /// Sends a close frame and waits (briefly) for the peer's.
    async fn close(&mut self, code: u16, reason: &'static str) {
        let wait = self.shared.config.timers.close_timeout;
        self.close_with(code, reason, wait).await;
    }

    /// Sends a close frame (allowing `write_wait` to write it) and waits (briefly) for the
    /// peer's.
    async fn close_with(&mut self, code: u16, reason: &'static str, write_wait: Duration) {
        let wait = self.shared.config.timers.close_timeout;
        if !matches!(
            timeout(write_wait, self.ws.send_close(code, reason)).await,
            Ok(Ok(()))
        ) {
            return;
        }
        let _ = timeout(wait, async {
            while let Some(Ok(msg)) = self.ws.next().await {
                if let Incoming::Close(_) = msg {
                    break;
                }
            }
        })
        .await;
    }

    /// Closes with 4010 a socket that went over its write budget. What was queued for it is
    /// dropped; the close frame follows what the socket already took, so a peer that is merely
    /// slow still reads it (within the write timeout).
    async fn close_slow_consumer(&mut self) {
        let limit = self.shared.config.buffers.max_write_buffer_bytes;
        self.shared.metrics.limit_hit("write_buffer");
        tracing::info!(user = %self.session.user, device = %self.session.device,
            "more than {limit} bytes waited to be written to the socket; closing it (4010)");
        let write = self.shared.config.timers.write_timeout;
        self.close_with(
            close_code::SLOW_CONSUMER,
            "not reading fast enough: the server's write buffer for this socket is full",
            write,
        )
        .await;
    }

    /// Closes with 1009 after an oversize message. The rest of that message is still arriving
    /// and cannot be parsed: discard raw bytes until the peer closes, so that the close frame
    /// is not lost to a TCP reset.
    async fn close_oversize(&mut self) {
        let wait = self.shared.config.timers.close_timeout;
        let reason = format!(
            "message larger than {} bytes",
            self.shared.config.limits.max_frame_bytes
        );
        let _ = timeout(
            wait,
            self.ws.send_close(close_code::MESSAGE_TOO_BIG, &reason),
        )
        .await;
        let io = self.ws.get_mut();
        let _ = timeout(wait, async {
            let _ = io.shutdown().await;
            let mut buf = [0u8; 4096];
            while let Ok(n) = io.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    }
}

impl From<bool> for Flow {
    fn from(ok: bool) -> Self {
        if ok {
            Flow::Continue
        } else {
            Flow::Stop
        }
    }
}
