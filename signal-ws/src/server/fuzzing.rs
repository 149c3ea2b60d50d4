//! Entry points for the fuzz targets in the repository's `fuzz/` directory: the server's
//! sans-IO frame handling, which is private otherwise. Hidden from the docs and not a stable
//! API; nothing here opens a socket.
//!
//! * [`FrameReader`]: the WebSocket frame layer, bytes in, whole messages out.
//! * [`Relay`]: the routing tables (the real hub) with a few registered devices, fed the text
//!   messages of an authenticated connection the way the connection handles them (header
//!   decode, the sender check, routing), with what each device's outbox received.

use std::sync::Arc;

use callapi_core::protocol::{decode_header, DecodeError, DeviceId, UserId};
use futures::FutureExt;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::config::Limits;
use super::hub::{ConnId, Hub, RouteError};
use super::metrics::Metrics;
use super::outbox::{outbox, Inbox};
use super::ws;
use crate::frames::{ClientFrame, Probe};

/// A message or control frame read by [`FrameReader`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A whole text message.
    Text(String),
    /// A binary message (its bytes are not kept).
    Binary,
    /// A ping and its payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame with its code and reason, if any.
    Close(Option<(u16, String)>),
}

/// The server's WebSocket frame reader.
#[derive(Debug)]
pub struct FrameReader(ws::FrameReader);

impl FrameReader {
    /// A reader refusing messages over `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Self(ws::FrameReader::new(max_message))
    }

    /// Feeds the next bytes; appends the messages they complete to `out`. `Err` (the reason)
    /// ends the connection.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Message>) -> Result<(), String> {
        let mut got = std::collections::VecDeque::new();
        let result = self.0.feed(input, &mut got);
        out.extend(got.into_iter().map(|m| match m {
            ws::Incoming::Text(t) => Message::Text(t.as_str().to_owned()),
            ws::Incoming::Binary => Message::Binary,
            ws::Incoming::Ping(p) => Message::Ping(p.to_vec()),
            ws::Incoming::Pong => Message::Pong,
            ws::Incoming::Close(c) => Message::Close(c),
        }));
        result.map_err(|e| e.to_string())
    }

    /// Bytes held for an incomplete frame or message.
    pub fn held(&self) -> usize {
        self.0.held()
    }
}

/// What the connection does with one text message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// An envelope from this connection's identity, routed.
    Routed,
    /// An envelope refused by the scope of an access-link connection.
    OutOfScope,
    /// An envelope whose `from`/`from_device` is not the connection's identity.
    Spoofed,
    /// A control frame (`renew`, `ping`), well formed or not.
    Control,
    /// Not an envelope: answered with an error frame.
    Invalid(DecodeError),
}

/// A registered device and its outbox.
#[derive(Debug)]
struct Device {
    user: UserId,
    device: DeviceId,
    conn: ConnId,
    inbox: Inbox,
}

/// The routing tables with registered devices, fed one authenticated connection's messages.
#[derive(Debug)]
pub struct Relay {
    hub: Hub,
    limits: Limits,
    user: UserId,
    device: DeviceId,
    scope: Option<String>,
    devices: Vec<Device>,
}

impl Relay {
    /// Tables with no device online; the connection is `user`/`device`, an access link for
    /// room `scope` if set. Small queue limits, so that they are reached.
    pub fn new(user: UserId, device: DeviceId, scope: Option<String>) -> Self {
        let limits = Limits {
            offline_queue_per_user: 4,
            offline_queue_total: 12,
            outbound_queue: 8,
            max_connections_per_user: 3,
            max_tracked_calls: 4,
            ..Limits::default()
        };
        Self {
            hub: Hub::new(limits.clone(), Arc::new(Metrics::new()), None, None),
            limits,
            user,
            device,
            scope,
            devices: Vec::new(),
        }
    }

    /// Registers (or replaces) a device with an outbox of `max_bytes`; `false` when the user
    /// holds the most connections already.
    pub fn register(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        scope: Option<String>,
        max_bytes: usize,
    ) -> bool {
        let (tx, inbox) = outbox(self.limits.outbound_queue, max_bytes);
        match self.hub.register(user, device, scope, tx) {
            Ok(conn) => {
                self.devices
                    .retain(|d| !(d.user == *user && d.device == *device));
                self.devices.push(Device {
                    user: user.clone(),
                    device: device.clone(),
                    conn,
                    inbox,
                });
                true
            }
            Err(_) => false,
        }
    }

    /// Unregisters the `index`-th registered device (modulo their count), if any.
    pub fn unregister(&mut self, index: usize) {
        if self.devices.is_empty() {
            return;
        }
        let d = self.devices.remove(index % self.devices.len());
        self.hub.unregister(&d.user, d.conn);
    }

    /// Handles a text message as the connection does.
    pub fn on_text(&mut self, text: &str) -> Handled {
        match decode_header(text) {
            Ok(env) => {
                if env.from != self.user || env.from_device != self.device {
                    return Handled::Spoofed;
                }
                let text = Utf8Bytes::from(text.to_owned());
                match self.hub.route(self.scope.as_deref(), &env, text) {
                    Ok(()) => Handled::Routed,
                    Err(RouteError::OutOfScope(_)) => Handled::OutOfScope,
                }
            }
            Err(err) => {
                let probe = Probe::of(text).unwrap_or_default();
                let _ = probe.id_string();
                let _ = Probe::id_of(text);
                match probe.kind.as_deref() {
                    Some("renew" | "ping")
                        if !matches!(err, DecodeError::ReservedMember { .. }) =>
                    {
                        let _ = serde_json::from_str::<ClientFrame>(text);
                        Handled::Control
                    }
                    _ => Handled::Invalid(err),
                }
            }
        }
    }

    /// Drains every device's outbox: (user, device, text) of each frame it received.
    pub fn drain(&mut self) -> Vec<(UserId, DeviceId, String)> {
        let mut out = Vec::new();
        for d in &mut self.devices {
            while let Some(Some(text)) = d.inbox.recv().now_or_never() {
                d.inbox.written(text.len());
                out.push((d.user.clone(), d.device.clone(), text.as_str().to_owned()));
            }
        }
        out
    }

    /// Devices online, users online and envelopes queued, as the tables count them.
    pub fn counts(&self) -> (usize, usize, usize) {
        let c = self.hub.counts();
        (c.devices, c.users, c.queued)
    }

    /// The limits the tables apply.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}
