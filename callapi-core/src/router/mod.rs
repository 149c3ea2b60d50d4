//! [`Router`]: the routing rules of a signaling network, sans-IO.
//!
//! One component decides, for every envelope, which connections get it now, what is kept for
//! devices that are not connected, and which invite needs a push notification: the devices of
//! a user, `to_device` filtering, the offline queue bounded by lifetime and size (with the
//! eviction rule of `docs/PROTOCOL.md`, "Offline queue"), flushing that queue in order when a
//! device connects, access-link scopes, and one push per queued invite to a user with no
//! device connected. The WebSocket server, `SimNetwork` and `MockNetwork` all route with it,
//! so they cannot drift apart.
//!
//! The router does no I/O and reads no clock: every call that needs the time takes a
//! [`Now`], and the decisions come back as values ([`Routed`], [`Flushed`], [`Connected`],
//! [`Disconnected`]). What a "connection" is stays the caller's: the router stores a handle `C`
//! per connected device and hands it back in [`Routed::deliver`]; the message `M` (the frame's
//! bytes, an [`Envelope`], ...) is kept and handed back unchanged,
//! so a relay never re-encodes.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use callapi_core::protocol::{CallId, DeviceId, MessageId, UserId};
//! use callapi_core::router::{Header, Kept, Now, Router, RouterConfig};
//!
//! let (alice, a1) = (UserId::new("alice")?, DeviceId::new("a1")?);
//! let (bob, b1, b2) = (UserId::new("bob")?, DeviceId::new("b1")?, DeviceId::new("b2")?);
//! let t0 = Now { at: Instant::now(), unix_ms: 1_700_000_000_000 };
//! let mut router: Router<u64, &str> = Router::new(RouterConfig::default());
//! router.connect(&bob, &b1, 1, None);
//! router.connect(&bob, &b2, 2, None);
//!
//! let header = Header {
//!     id: MessageId::new_v4(),
//!     ts: t0.unix_ms,
//!     from: &alice,
//!     from_device: &a1,
//!     to: &bob,
//!     to_device: None,
//!     call_id: CallId::new_v4(),
//!     lifetime_ms: 15_000,
//!     invite: false,
//!     room_id: None,
//! };
//! // Fan-out: both connections of bob get the bytes as given.
//! let routed = router.route(None, &header, "{...}", t0)?;
//! assert_eq!(routed.deliver, vec![&1, &2]);
//! assert_eq!(routed.kept, Kept::NotNeeded);
//!
//! // Nobody connected: kept, and handed to the next device that connects.
//! router.disconnect(&bob, &1);
//! router.disconnect(&bob, &2);
//! let routed = router.route(None, &header, "{...}", t0)?;
//! assert!(matches!(routed.kept, Kept::Queued { .. }));
//! router.connect(&bob, &b1, 3, None);
//! let later = Now { at: t0.at + Duration::from_secs(1), unix_ms: t0.unix_ms + 1_000 };
//! let mut got = Vec::new();
//! router.flush(&bob, &b1, later, |m| { got.push(*m); true });
//! assert_eq!(got, vec!["{...}"]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! **For a fleet** of server nodes sharing routing (each node holds some users' devices):
//! [`Connected::first_local_device`] and [`Disconnected::last_local_device`] say when a user
//! gains its first connected device on this router or loses its last, which is when a node
//! subscribes to or unsubscribes from that user's subject on the bus.

mod eviction;
mod queue;
mod registry;
mod scope;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use crate::protocol::{Body, CallId, DeviceId, Envelope, MessageId, RoutingHeader, UserId};

use queue::{OfflineQueue, Owed, QueueLimits};
use registry::Registry;
use scope::CallScopes;

/// The time, twice: the monotonic instant (for expiry deadlines and [`Router::poll_timeout`])
/// and the wall clock in Unix milliseconds (what `ts` and `lifetime_ms` are measured on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// The monotonic time.
    pub at: Instant,
    /// The wall-clock time at `at`, in milliseconds since the Unix epoch.
    pub unix_ms: u64,
}

/// What the router reads of an envelope: its routing members.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// `id`.
    pub id: MessageId,
    /// `ts`: the sender's Unix milliseconds at the first send.
    pub ts: u64,
    /// `from`.
    pub from: &'a UserId,
    /// `from_device`.
    pub from_device: &'a DeviceId,
    /// `to`.
    pub to: &'a UserId,
    /// `to_device`: one device of `to`, or (`None`) all of them.
    pub to_device: Option<&'a DeviceId>,
    /// `call_id`.
    pub call_id: CallId,
    /// `lifetime_ms`.
    pub lifetime_ms: u64,
    /// Whether the envelope is an `invite` (a push candidate).
    pub invite: bool,
    /// An invite's `room_id`.
    pub room_id: Option<&'a str>,
}

impl<'a> From<&'a RoutingHeader<'_>> for Header<'a> {
    fn from(h: &'a RoutingHeader<'_>) -> Self {
        Self {
            id: h.id,
            ts: h.ts,
            from: &h.from,
            from_device: &h.from_device,
            to: &h.to,
            to_device: h.to_device.as_ref(),
            call_id: h.call_id,
            lifetime_ms: h.lifetime_ms,
            invite: h.is_invite(),
            room_id: h.room_id.as_deref(),
        }
    }
}

impl<'a> From<&'a Envelope> for Header<'a> {
    fn from(e: &'a Envelope) -> Self {
        let room_id = match &e.body {
            Body::Invite { room_id, .. } => Some(room_id.as_str()),
            _ => None,
        };
        Self {
            id: e.id,
            ts: e.ts,
            from: &e.from,
            from_device: &e.from_device,
            to: &e.to,
            to_device: e.to_device.as_ref(),
            call_id: e.call_id,
            lifetime_ms: e.lifetime_ms,
            invite: room_id.is_some(),
            room_id,
        }
    }
}

/// Which devices the router knows: only connected ones, or registered ones too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeviceMemory {
    /// A device exists while it is connected (the WebSocket server, which learns devices from
    /// their tokens). An envelope none of whose addressed devices is connected is kept for the
    /// user: a user-addressed one for every device that connects within the lifetime (once
    /// each), a device-addressed one for that device. No envelope has an unknown recipient.
    #[default]
    WhileConnected,
    /// Devices are registered ([`Router::register`]) and stay known while disconnected (a
    /// network with per-device sessions, like the mocks, or MQTT's persistent sessions). An
    /// envelope is kept for each addressed registered device that is not connected; one whose
    /// addressed devices are all unknown is dropped ([`Kept::UnknownRecipient`]).
    Registered,
}

/// The router's settings; the defaults are the WebSocket server's (`docs/PROTOCOL.md`,
/// "Limits").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterConfig {
    /// Which devices the router knows.
    pub devices: DeviceMemory,
    /// Envelopes kept per user (64). When full, the sender holding the most of that user's
    /// envelopes (the new one counted) loses its oldest; on a tie the newcomer loses its own
    /// oldest, or, with none waiting, the new envelope is refused. 0 keeps nothing.
    pub queue_per_user: usize,
    /// Envelopes kept in all (100 000); past it new envelopes are refused.
    pub queue_total: usize,
    /// The longest an envelope is kept (10 minutes), whatever its lifetime.
    pub max_lifetime: Duration,
    /// Access-link calls tracked (100 000); past it the call unused for longest is forgotten.
    pub max_tracked_calls: usize,
    /// An access-link call unused for this long is forgotten by [`Router::sweep`] (6 hours).
    pub call_idle: Duration,
}

impl Default for RouterConfig {
    fn default() -> Self {
        Self {
            devices: DeviceMemory::default(),
            queue_per_user: 64,
            queue_total: 100_000,
            max_lifetime: Duration::from_secs(600),
            max_tracked_calls: 100_000,
            call_idle: Duration::from_secs(6 * 3600),
        }
    }
}

/// What the offline queue did with a routed (or [held](Router::hold)) envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kept {
    /// Nothing to keep: every addressed device is connected.
    NotNeeded,
    /// Kept for `copies` devices (1 for "every device that connects"). `evicted` device
    /// copies of another envelope were given up to make room.
    Queued {
        /// Device copies kept.
        copies: usize,
        /// Device copies of an older envelope dropped for it (0 or the victim's copies).
        evicted: usize,
    },
    /// A retransmission of an envelope already kept (same `from`, `from_device`, `id`): not
    /// kept again (and not pushed again); `added` more devices are now owed the kept one.
    Duplicate {
        /// Devices added to those the kept envelope is owed to.
        added: usize,
    },
    /// Its lifetime had ended (`ts + lifetime_ms` is in the past): not kept.
    Expired {
        /// Device copies lost.
        copies: usize,
    },
    /// The queue is full and the eviction rule keeps what waits: not kept.
    Refused {
        /// Device copies lost.
        copies: usize,
    },
    /// No addressed device is known ([`DeviceMemory::Registered`] only): dropped.
    UnknownRecipient,
}

/// A push notification to send: an invite was kept for a user with no device connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push<M> {
    /// The user to wake.
    pub user: UserId,
    /// The invite, as routed.
    pub message: M,
}

/// The router's decisions for one envelope.
#[derive(Debug)]
pub struct Routed<'a, C, M> {
    /// The connections to hand [`message`](Self::message) to now, in device registration
    /// order.
    pub deliver: Vec<&'a C>,
    /// The message, as given to [`Router::route`].
    pub message: M,
    /// Copies not delivered to connected access-link devices outside the call's room.
    pub out_of_scope: usize,
    /// What the offline queue did.
    pub kept: Kept,
    /// Device copies of expired envelopes removed to make room in the queue.
    pub expired: usize,
    /// The push notification to send, if any (never more than one per kept invite).
    pub push: Option<Push<M>>,
}

/// What [`Router::hold`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// What the offline queue did.
    pub kept: Kept,
    /// Device copies of expired envelopes removed to make room in the queue.
    pub expired: usize,
}

/// What [`Router::flush`] handed out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flushed {
    /// Envelopes the offer accepted.
    pub delivered: usize,
    /// Device copies of expired envelopes removed (never offered).
    pub expired: usize,
}

/// What [`Router::connect`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connected<C> {
    /// The device's previous connection, now replaced (the caller closes it).
    pub replaced: Option<C>,
    /// The user had no connected device before (a fleet node subscribes to the user now).
    pub first_local_device: bool,
}

/// What [`Router::disconnect`] changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Disconnected {
    /// The connection was a device's current one and is gone.
    pub removed: bool,
    /// The user has no connected device left (a fleet node unsubscribes from the user now).
    pub last_local_device: bool,
}

/// Counts for gauges.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouterCounts {
    /// Connected devices.
    pub devices: usize,
    /// Users with a connected device.
    pub users: usize,
    /// Envelopes in the offline queue.
    pub queued: usize,
}

/// An access-link connection addressed a call outside its room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OutOfScope(pub String);

/// The routing rules; see the [module documentation](self).
#[derive(Debug)]
pub struct Router<C, M> {
    config: RouterConfig,
    registry: Registry<C>,
    queue: OfflineQueue<M>,
    calls: CallScopes,
}

impl<C: PartialEq, M: Clone> Router<C, M> {
    /// A router with `config`.
    pub fn new(config: RouterConfig) -> Self {
        let limits = QueueLimits {
            per_user: config.queue_per_user,
            total: config.queue_total,
            max_lifetime: config.max_lifetime,
        };
        Self {
            registry: Registry::new(config.devices),
            queue: OfflineQueue::new(limits),
            calls: CallScopes::new(config.max_tracked_calls, config.call_idle),
            config,
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &RouterConfig {
        &self.config
    }

    /// Changes how many envelopes are kept per user from now on (0 keeps nothing new; what
    /// is kept stays).
    pub fn set_queue_per_user(&mut self, per_user: usize) {
        self.config.queue_per_user = per_user;
        self.queue.limits.per_user = per_user;
    }

    /// Registers a device without a connection ([`DeviceMemory::Registered`]: envelopes for
    /// it are kept until it connects). Returns whether it was new. With
    /// [`DeviceMemory::WhileConnected`] the device is forgotten again at its next disconnect.
    pub fn register(&mut self, user: &UserId, device: &DeviceId) -> bool {
        self.registry.register(user, device)
    }

    /// Gives a device its connection `conn` (limited to access-link room `scope`, if any),
    /// replacing the one it had. Call [`flush`](Self::flush) next to hand it what was kept.
    pub fn connect(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        conn: C,
        scope: Option<String>,
    ) -> Connected<C> {
        let attached = self.registry.connect(user, device, conn, scope);
        Connected {
            replaced: attached.replaced,
            first_local_device: attached.first,
        }
    }

    /// Removes connection `conn` of `user` if it is still its device's current one (an old
    /// connection never removes its replacement).
    pub fn disconnect(&mut self, user: &UserId, conn: &C) -> Disconnected {
        self.take_link(user, |d| d.link.as_ref().is_some_and(|l| &l.handle == conn))
            .0
    }

    /// Removes the connection of `user` for which `is_it` holds (for handles compared by an
    /// id the caller keeps), if it is a device's current one.
    pub fn disconnect_if(&mut self, user: &UserId, is_it: impl Fn(&C) -> bool) -> Disconnected {
        self.take_link(user, |d| d.link.as_ref().is_some_and(|l| is_it(&l.handle)))
            .0
    }

    /// Removes the connection of `device` of `user`, whichever it is; returns it too.
    pub fn disconnect_device(
        &mut self,
        user: &UserId,
        device: &DeviceId,
    ) -> (Disconnected, Option<C>) {
        self.take_link(user, |d| &d.id == device)
    }

    fn take_link(
        &mut self,
        user: &UserId,
        which: impl Fn(&registry::Device<C>) -> bool,
    ) -> (Disconnected, Option<C>) {
        match self.registry.disconnect(user, which) {
            Some((handle, last)) => (
                Disconnected {
                    removed: true,
                    last_local_device: last,
                },
                Some(handle),
            ),
            None => (
                Disconnected {
                    removed: false,
                    last_local_device: false,
                },
                None,
            ),
        }
    }

    /// Whether `device` of `user` is known (connected, or registered).
    pub fn is_known(&self, user: &UserId, device: &DeviceId) -> bool {
        self.registry.device(user, device).is_some()
    }

    /// Whether `device` of `user` has a connection.
    pub fn is_connected(&self, user: &UserId, device: &DeviceId) -> bool {
        self.registry
            .device(user, device)
            .is_some_and(|d| d.link.is_some())
    }

    /// The connection of `device` of `user`, if it has one.
    pub fn connection(&self, user: &UserId, device: &DeviceId) -> Option<&C> {
        self.registry
            .device(user, device)?
            .link
            .as_ref()
            .map(|l| &l.handle)
    }

    /// How many devices of `user` are connected.
    pub fn connected_devices(&self, user: &UserId) -> usize {
        self.registry.connected_devices(user)
    }

    /// The known devices of `user`, in registration order.
    pub fn devices(&self, user: &UserId) -> impl Iterator<Item = &DeviceId> + '_ {
        self.registry.devices(user).iter().map(|d| &d.id)
    }

    /// How many known devices `header` addresses: every device of `to`, or only `to_device`.
    pub fn addressed_devices(&self, header: &Header<'_>) -> usize {
        self.devices(header.to)
            .filter(|d| header.to_device.is_none_or(|only| *d == only))
            .count()
    }

    /// Envelopes kept that `device` of `user` would be offered if it connected now.
    pub fn queued_for(&self, user: &UserId, device: &DeviceId) -> usize {
        self.queue.queued_for(user, device)
    }

    /// Connected devices, users with one, and kept envelopes.
    pub fn counts(&self) -> RouterCounts {
        RouterCounts {
            devices: self.registry.connected(),
            users: self.registry.connected_users(),
            queued: self.queue.len(),
        }
    }

    /// Routes an envelope whose `from`/`from_device` the caller has verified, sent by a
    /// connection limited to access-link room `sender_scope` (if any).
    ///
    /// Every connected device of `to` (or only `to_device`) gets it, except access-link
    /// devices outside the call's room. What no connected device took is kept per
    /// [`DeviceMemory`]; an invite newly kept for a user with no device connected comes back
    /// with a [`Push`].
    ///
    /// # Errors
    /// [`OutOfScope`] when an access-link sender invites to another room or sends for a call
    /// not in its room; nothing is routed then.
    pub fn route(
        &mut self,
        sender_scope: Option<&str>,
        header: &Header<'_>,
        msg: M,
        now: Now,
    ) -> Result<Routed<'_, C, M>, OutOfScope> {
        if let Some(scope) = sender_scope {
            self.check_sender_scope(scope, header, now.at)?;
        }
        let room: Option<String> = match header.room_id {
            Some(r) => Some(r.to_owned()),
            None => self.calls.room(&header.call_id).map(str::to_owned),
        };
        let mut matched_connected = false;
        let mut live: Vec<usize> = Vec::with_capacity(1);
        let mut offline: Vec<DeviceId> = Vec::new();
        let mut out_of_scope = 0;
        let mut track_room = false;
        for (i, device) in self.registry.devices(header.to).iter().enumerate() {
            if header.to_device.is_some_and(|d| *d != device.id) {
                continue;
            }
            let Some(link) = &device.link else {
                offline.push(device.id.clone());
                continue;
            };
            matched_connected = true;
            if let Some(scope) = &link.scope {
                if room.as_deref() != Some(scope.as_str()) {
                    out_of_scope += 1;
                    continue;
                }
                track_room = true;
            }
            live.push(i);
        }
        if track_room {
            if let Some(r) = &room {
                self.calls.track(header.call_id, r, now.at);
            }
        }
        let owed = if !offline.is_empty() {
            Some(Owed::Devices(offline))
        } else if matched_connected {
            None
        } else {
            match self.config.devices {
                DeviceMemory::WhileConnected => Some(match header.to_device {
                    Some(d) => Owed::Devices(vec![d.clone()]),
                    None => Owed::AnyExcept(Vec::new()),
                }),
                _ => None,
            }
        };
        let (kept, expired, push) = match owed {
            Some(owed) => {
                let pushable = header.invite && self.registry.connected_devices(header.to) == 0;
                let push_msg = pushable.then(|| msg.clone());
                let (kept, expired) = self.queue.keep(header, msg.clone(), owed, now);
                let push = match (kept, push_msg) {
                    (Kept::Queued { .. }, Some(message)) => Some(Push {
                        user: header.to.clone(),
                        message,
                    }),
                    _ => None,
                };
                (kept, expired, push)
            }
            None if matched_connected => (Kept::NotNeeded, 0, None),
            None => (Kept::UnknownRecipient, 0, None),
        };
        let devices = self.registry.devices(header.to);
        let deliver = live
            .into_iter()
            .filter_map(|i| devices.get(i)?.link.as_ref().map(|l| &l.handle))
            .collect();
        Ok(Routed {
            deliver,
            message: msg,
            out_of_scope,
            kept,
            expired,
            push,
        })
    }

    fn check_sender_scope(
        &mut self,
        scope: &str,
        header: &Header<'_>,
        now: Instant,
    ) -> Result<(), OutOfScope> {
        match header.room_id {
            Some(room) if room == scope => {
                self.calls.track(header.call_id, room, now);
                Ok(())
            }
            Some(room) => Err(OutOfScope(format!(
                "this access link is for room {scope:?}; it cannot invite to room {room:?}"
            ))),
            None => match self.calls.touch(&header.call_id, now) {
                Some(room) if room == scope => Ok(()),
                _ => Err(OutOfScope(format!(
                    "call {} is not a call in this access link's room {scope:?}",
                    header.call_id
                ))),
            },
        }
    }

    /// Keeps a copy for one known device that is not connected (a copy that was on its way
    /// when the device went away). Nothing is delivered or pushed.
    pub fn hold(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        header: &Header<'_>,
        msg: M,
        now: Now,
    ) -> Held {
        if !self.is_known(user, device) {
            return Held {
                kept: Kept::UnknownRecipient,
                expired: 0,
            };
        }
        let mut header = *header;
        header.to = user;
        let (kept, expired) =
            self.queue
                .keep(&header, msg, Owed::Devices(vec![device.clone()]), now);
        Held { kept, expired }
    }

    /// Offers `device` of `user` (just connected) what was kept for it, in the order it was
    /// sent; expired envelopes are removed, never offered. `offer` hands one message to the
    /// connection and says whether it took it; once it refuses one (a full write buffer), the
    /// rest stays kept for the device's next connection.
    pub fn flush(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        now: Now,
        offer: impl FnMut(&M) -> bool,
    ) -> Flushed {
        let scope = self
            .registry
            .device(user, device)
            .and_then(|d| d.link.as_ref())
            .and_then(|l| l.scope.clone());
        self.queue.flush(
            user,
            device,
            scope.as_deref(),
            &mut self.calls,
            now.at,
            offer,
        )
    }

    /// Removes expired envelopes and forgets idle access-link calls; returns the device
    /// copies of envelopes removed.
    pub fn sweep(&mut self, now: Instant) -> usize {
        self.calls.sweep(now);
        self.queue.sweep(now)
    }

    /// When the next kept envelope expires ([`sweep`](Self::sweep) then removes it); `None`
    /// with an empty queue. Scans the queue.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.queue.next_expiry()
    }
}
