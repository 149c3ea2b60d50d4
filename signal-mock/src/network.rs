//! [`MockNetwork`]: an async in-memory signaling network for tokio tests.
//!
//! Works under tokio's paused clock (`#[tokio::test(start_paused = true)]`): delayed copies
//! wait with `tokio::time::sleep_until` in spawned tasks, so the runtime's auto-advance or
//! `tokio::time::advance` moves them along.
//!
//! Routing (the devices of a user, `to_device`, the offline queue, pushes) is
//! [`callapi_core::router::Router`]'s, the component the WebSocket server routes with; this
//! module adds the clients, their links, the faults, partitions and the clock.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callapi_core::protocol::{self, DeviceId, Envelope, UserId};
use callapi_core::router::{Header, Kept, Now, Push, Routed, Router};
use callapi_core::signal::{LinkState, SignalError, SignalEvent};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::MockSignalClient;
use crate::fault::FaultPlan;
use crate::sim::{count_kept, mock_router_config};
use crate::stats::NetworkStats;

/// The link state a connected client sees when its device is taken offline with
/// [`MockNetwork::set_online`]: the link dropped and the first reconnect attempt (the reconnect schedule:
/// attempts at 0 s, 3 s, ...) is due at once. No further attempts are reported; the next event
/// is `Link(Connected)` when the device is brought back online.
pub const OFFLINE_LINK_STATE: LinkState = LinkState::Reconnecting {
    attempt: 1,
    next_in: Duration::ZERO,
};

/// Why a [`MockNetwork`] test hook could not act.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MockNetworkError {
    /// The device has no connected client, or its link is offline; call
    /// [`MockNetwork::connect`] (and [`MockNetwork::set_online`] with `true`) first.
    #[error(
        "device {device} of user {user} is not connected; connect it and bring it online first"
    )]
    NotConnected {
        /// The user.
        user: UserId,
        /// The device.
        device: DeviceId,
    },
}

/// The live connection of a device.
#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<SignalEvent>,
}

/// What the mock knows of a device beyond the router: its link and its client.
#[derive(Debug)]
struct Link {
    /// Whether the device's link is up (set by `set_online`; default up).
    up: bool,
    /// The attached client, if any.
    conn: Option<Conn>,
    /// The token last passed to `renew_token`.
    token: Option<String>,
}

impl Default for Link {
    fn default() -> Self {
        Self {
            up: true,
            conn: None,
            token: None,
        }
    }
}

impl Link {
    /// Whether the device counts as connected for the router: link up and a client attached.
    fn reachable(&self) -> bool {
        self.up && self.conn.is_some()
    }
}

#[derive(Debug)]
struct Inner {
    rng: ChaCha8Rng,
    plan: FaultPlan,
    created: Instant,
    /// Unix milliseconds at `anchor_at`.
    anchor_ms: u64,
    anchor_at: Instant,
    /// The devices, which of them are connected (see [`Link::reachable`]), the offline queue
    /// and the push rule.
    router: Router<DeviceId, Envelope>,
    /// The link of every device the router knows.
    links: HashMap<UserId, HashMap<DeviceId, Link>>,
    /// Runtime partitions, each pair stored in sorted order.
    partitions: HashSet<(UserId, UserId)>,
    stats: NetworkStats,
    pushes: Vec<Push<Envelope>>,
    next_conn: u64,
}

impl Inner {
    fn link(&self, user: &UserId, device: &DeviceId) -> Option<&Link> {
        self.links.get(user)?.get(device)
    }

    fn link_mut(&mut self, user: &UserId, device: &DeviceId) -> Option<&mut Link> {
        self.links.get_mut(user)?.get_mut(device)
    }

    /// Makes a device known (to the router, offline until [`sync`](Self::sync) connects it).
    fn register(&mut self, user: &UserId, device: &DeviceId) {
        self.router.register(user, device);
        self.links
            .entry(user.clone())
            .or_default()
            .entry(device.clone())
            .or_default();
    }

    /// Tells the router whether the device is connected (its link up and a client attached).
    /// Returns whether it just became connected (its kept envelopes are due then).
    fn sync(&mut self, user: &UserId, device: &DeviceId) -> bool {
        let reachable = self.link(user, device).is_some_and(Link::reachable);
        match (reachable, self.router.is_connected(user, device)) {
            (true, false) => {
                self.router.connect(user, device, device.clone(), None);
                true
            }
            (false, true) => {
                self.router.disconnect_device(user, device);
                false
            }
            _ => false,
        }
    }

    /// The router's clock now.
    fn now(&self) -> Now {
        Now {
            at: Instant::now().into_std(),
            unix_ms: self.unix_ms(),
        }
    }

    fn unix_ms(&self) -> u64 {
        let elapsed = Instant::now().saturating_duration_since(self.anchor_at);
        self.anchor_ms
            .saturating_add(u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX))
    }

    fn is_partitioned(&self, a: &UserId, b: &UserId) -> bool {
        let elapsed = Instant::now().saturating_duration_since(self.created);
        self.partitions.contains(&ordered(a, b)) || self.plan.is_partitioned(a, b, elapsed)
    }

    /// Hands a copy to the device's client now, or keeps it if the device is not connected.
    fn deliver_now(&mut self, user: &UserId, device: &DeviceId, envelope: Envelope) {
        let conn = match self.link(user, device) {
            Some(link) if self.router.is_connected(user, device) => link.conn.as_ref(),
            _ => None,
        };
        let Some(conn) = conn else {
            self.store(user, device, envelope);
            return;
        };
        match conn.tx.send(SignalEvent::Message(envelope)) {
            Ok(()) => self.stats.delivered += 1,
            Err(mpsc::error::SendError(event)) => {
                // The client is gone without closing: the device is offline.
                if let Some(link) = self.link_mut(user, device) {
                    link.conn = None;
                }
                self.sync(user, device);
                if let SignalEvent::Message(envelope) = event {
                    self.store(user, device, envelope);
                }
            }
        }
    }

    /// Keeps a copy that fell due for a device that is not connected (or drops it, for an
    /// unknown device), per the router's offline queue.
    fn store(&mut self, user: &UserId, device: &DeviceId, envelope: Envelope) {
        let now = self.now();
        let header = Header::from(&envelope);
        let held = self
            .router
            .hold(user, device, &header, envelope.clone(), now);
        if held.kept == Kept::UnknownRecipient {
            self.stats.dropped += 1;
            self.stats.expired_offline += held.expired as u64;
            return;
        }
        count_kept(&mut self.stats, held.kept, 1, held.expired);
    }

    /// Sends what the router kept for a device that just connected (in the order it was
    /// sent; expired envelopes are removed) through the fault plan.
    fn flush_stored(&mut self, shared: &Shared, user: &UserId, device: &DeviceId) {
        let now = self.now();
        let mut stored = Vec::new();
        let flushed = self.router.flush(user, device, now, |envelope| {
            stored.push(envelope.clone());
            true
        });
        self.stats.expired_offline += flushed.expired as u64;
        for envelope in stored {
            self.transmit(shared, user, device, envelope);
        }
    }

    /// Draws the copy's fate; delivers undelayed copies now and delayed ones from timer tasks.
    fn transmit(&mut self, shared: &Shared, user: &UserId, device: &DeviceId, envelope: Envelope) {
        let delays = self.plan.fate(&mut self.rng);
        match delays.len() {
            0 => {
                self.stats.dropped += 1;
                return;
            }
            1 => {}
            n => self.stats.duplicated += (n - 1) as u64,
        }
        let now = Instant::now();
        for delay in delays {
            let envelope = envelope.clone();
            let runtime = tokio::runtime::Handle::try_current();
            match runtime {
                Ok(handle) if !delay.is_zero() => {
                    let shared = Arc::clone(shared);
                    let (user, device) = (user.clone(), device.clone());
                    handle.spawn(async move {
                        tokio::time::sleep_until(now + delay).await;
                        lock(&shared).deliver_now(&user, &device, envelope);
                    });
                }
                // No delay, or no runtime to wait in: deliver at once.
                _ => self.deliver_now(user, device, envelope),
            }
        }
    }

    /// Routes an envelope from a connected client.
    fn route(&mut self, shared: &Shared, envelope: Envelope) {
        self.stats.sent += 1;
        if self.is_partitioned(&envelope.from, &envelope.to) {
            self.stats.partitioned += 1;
            self.stats.dropped += 1;
            return;
        }
        let now = self.now();
        let header = Header::from(&envelope);
        let addressed = self.router.addressed_devices(&header);
        // Without access links every connected addressed device is delivered to.
        let Ok(Routed {
            deliver,
            kept,
            expired,
            push,
            ..
        }) = self.router.route(None, &header, envelope.clone(), now)
        else {
            self.stats.dropped += 1;
            return;
        };
        let targets: Vec<DeviceId> = deliver.into_iter().cloned().collect();
        count_kept(
            &mut self.stats,
            kept,
            addressed.saturating_sub(targets.len()),
            expired,
        );
        if let Some(push) = push {
            self.pushes.push(push);
        }
        let user = envelope.to.clone();
        let mut envelope = Some(envelope);
        let last = targets.len().saturating_sub(1);
        for (i, device) in targets.iter().enumerate() {
            let copy = if i == last {
                envelope.take()
            } else {
                envelope.clone()
            };
            if let Some(copy) = copy {
                self.transmit(shared, &user, device, copy);
            }
        }
    }

    /// Checks that connection `conn` is the device's live, online connection.
    fn check_conn(&self, conn: u64, user: &UserId, device: &DeviceId) -> Result<(), SignalError> {
        match self.link(user, device) {
            Some(link) => match &link.conn {
                Some(c) if c.id == conn => {
                    if link.up {
                        Ok(())
                    } else {
                        Err(SignalError::NotConnected)
                    }
                }
                _ => Err(SignalError::Closed),
            },
            None => Err(SignalError::Closed),
        }
    }

    /// Sends an event to the device's client if it is connected and online.
    fn emit(
        &mut self,
        user: &UserId,
        device: &DeviceId,
        event: SignalEvent,
    ) -> Result<(), MockNetworkError> {
        let not_connected = || MockNetworkError::NotConnected {
            user: user.clone(),
            device: device.clone(),
        };
        let link = self.link(user, device).ok_or_else(not_connected)?;
        match &link.conn {
            Some(conn) if link.up => conn.tx.send(event).map_err(|_| not_connected()),
            _ => Err(not_connected()),
        }
    }
}

type Shared = Arc<Mutex<Inner>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Inner> {
    // A panic while holding the lock cannot leave `Inner` in a state worse than a lost message.
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn ordered(a: &UserId, b: &UserId) -> (UserId, UserId) {
    if a <= b {
        (a.clone(), b.clone())
    } else {
        (b.clone(), a.clone())
    }
}

fn system_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// An in-memory signaling network of users and devices for async tests, with seeded faults.
///
/// A cheap [`Clone`] handle; every clone drives the same network.
///
/// * [`connect`](Self::connect) gives a device a [`MockSignalClient`] (a
///   [`SignalClient`](callapi_core::signal::SignalClient)); it first yields
///   `Link(Connected)`.
/// * A sent envelope has its `from` / `from_device` stamped with the sending client's identity
///   (like the production server, a client cannot speak as someone else), passes through the
///   wire codec (so oversized envelopes are refused with `SignalError::Rejected`), and goes to
///   every registered device of `to` (or `to_device` only). Each copy gets its own fate from
///   the [`FaultPlan`]; delayed copies are delivered by timer tasks. Partitions (the plan's
///   windows, measured from the network's creation, and [`partition`](Self::partition)) apply
///   when an envelope is sent.
/// * A device that is offline ([`set_online`](Self::set_online) `false`, closed, or
///   [`register`](Self::register)ed but never connected) has its envelopes stored until their
///   lifetime ends (while [`set_store_offline`](Self::set_store_offline) is on, the default);
///   they go through the fault plan again when it is back. Envelopes for unknown users are
///   dropped. The offline queue is the server's ([`Router`] with its default limits): a
///   retransmission or duplicate of an envelope already kept is kept once, an envelope is kept
///   for at most 10 minutes whatever its lifetime, and a user's queue holds 64 envelopes (a
///   full queue gives up the oldest envelope of the sender holding the most).
/// * An invite kept for a user with no device online is recorded as a push notification
///   ([`pushes`](Self::pushes)), once per invite, as the server would send it.
/// * Expiry uses [`unix_ms`](Self::unix_ms): the system time at creation plus the tokio time
///   elapsed since, so paused-clock tests age envelopes by advancing time.
///
/// ```
/// use callapi_core::protocol::{DeviceId, UserId};
/// use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
/// use callapi_signal_mock::{FaultPlan, MockNetwork};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let net = MockNetwork::new(1, FaultPlan::default());
/// let mut bob = net.connect(UserId::new("bob").unwrap(), DeviceId::new("b1").unwrap());
/// assert_eq!(bob.next_event().await, Some(SignalEvent::Link(LinkState::Connected)));
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct MockNetwork {
    shared: Shared,
}

impl MockNetwork {
    /// A network seeded with `seed`, mistreating messages per `plan` (used as given; see
    /// [`FaultPlan::validate`]).
    pub fn new(seed: u64, plan: FaultPlan) -> Self {
        let now = Instant::now();
        Self {
            shared: Arc::new(Mutex::new(Inner {
                rng: ChaCha8Rng::seed_from_u64(seed),
                plan,
                created: now,
                anchor_ms: system_unix_ms(),
                anchor_at: now,
                router: Router::new(mock_router_config()),
                links: HashMap::new(),
                partitions: HashSet::new(),
                stats: NetworkStats::default(),
                pushes: Vec::new(),
                next_conn: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared)
    }

    /// Connects a device and returns its client. The device is registered if it was not.
    ///
    /// The client's first event is `Link(Connected)` (or [`OFFLINE_LINK_STATE`] if the device
    /// was set offline before connecting); envelopes stored for the device follow. Connecting
    /// a device that already has a client replaces that client: its event stream ends and its
    /// sends fail with `SignalError::Closed`.
    ///
    /// Call it inside a tokio runtime when the fault plan has delays (without one, delayed
    /// copies are delivered at once).
    pub fn connect(&self, user: UserId, device: DeviceId) -> MockSignalClient {
        let (tx, rx) = mpsc::unbounded_channel();
        let mut inner = self.lock();
        inner.register(&user, &device);
        inner.next_conn += 1;
        let id = inner.next_conn;
        if let Some(link) = inner.link_mut(&user, &device) {
            let first = if link.up {
                LinkState::Connected
            } else {
                OFFLINE_LINK_STATE
            };
            // The receiver is alive: it is returned below.
            let _ = tx.send(SignalEvent::Link(first));
            link.conn = Some(Conn { id, tx });
        }
        if inner.sync(&user, &device) {
            inner.flush_stored(&self.shared, &user, &device);
        }
        drop(inner);
        MockSignalClient::new(self.clone(), user, device, id, rx)
    }

    /// Registers a device without connecting it, so that envelopes for it are stored until it
    /// connects. Registering an existing device does nothing.
    pub fn register(&self, user: UserId, device: DeviceId) {
        self.lock().register(&user, &device);
    }

    /// Takes a device's link down (`false`) or brings it back (`true`); an unknown device is
    /// registered first.
    ///
    /// Down: its client gets `Link(`[`OFFLINE_LINK_STATE`]`)`, receives nothing more, and its
    /// sends fail with `SignalError::NotConnected`; envelopes for it are stored. Back up: its
    /// client gets `Link(Connected)`, then the stored envelopes that have not expired (through
    /// the fault plan).
    pub fn set_online(&self, user: UserId, device: DeviceId, online: bool) {
        let mut inner = self.lock();
        inner.register(&user, &device);
        let Some(link) = inner.link_mut(&user, &device) else {
            return;
        };
        if link.up == online {
            return;
        }
        link.up = online;
        if let Some(conn) = &link.conn {
            let state = if online {
                LinkState::Connected
            } else {
                OFFLINE_LINK_STATE
            };
            if conn.tx.send(SignalEvent::Link(state)).is_err() {
                link.conn = None;
            }
        }
        if inner.sync(&user, &device) {
            inner.flush_stored(&self.shared, &user, &device);
        }
    }

    /// Whether the device has a connected client and its link is up.
    pub fn is_online(&self, user: &UserId, device: &DeviceId) -> bool {
        self.lock().router.is_connected(user, device)
    }

    /// The registered devices of `user`, in registration order.
    pub fn devices(&self, user: &UserId) -> Vec<DeviceId> {
        self.lock().router.devices(user).cloned().collect()
    }

    /// Number of envelopes stored for an offline device.
    pub fn stored(&self, user: &UserId, device: &DeviceId) -> usize {
        self.lock().router.queued_for(user, device)
    }

    /// The push notifications so far: one per invite kept for a user with no device online,
    /// in the order they were sent.
    pub fn pushes(&self) -> Vec<Push<Envelope>> {
        self.lock().pushes.clone()
    }

    /// Cuts `a` and `b` off from each other (both directions) until [`heal`](Self::heal).
    pub fn partition(&self, a: &UserId, b: &UserId) {
        self.lock().partitions.insert(ordered(a, b));
    }

    /// Ends a partition made with [`partition`](Self::partition).
    pub fn heal(&self, a: &UserId, b: &UserId) {
        self.lock().partitions.remove(&ordered(a, b));
    }

    /// The fault plan in use.
    pub fn fault_plan(&self) -> FaultPlan {
        self.lock().plan.clone()
    }

    /// Replaces the fault plan for envelopes sent from now on.
    pub fn set_fault_plan(&self, plan: FaultPlan) {
        self.lock().plan = plan;
    }

    /// Keeps (`true`, the default) or drops (`false`) envelopes for offline devices from now
    /// on (what is stored already stays).
    pub fn set_store_offline(&self, store: bool) {
        let per_user = if store {
            mock_router_config().queue_per_user
        } else {
            0
        };
        self.lock().router.set_queue_per_user(per_user);
    }

    /// The counters so far.
    pub fn stats(&self) -> NetworkStats {
        self.lock().stats
    }

    /// The network's wall clock in Unix milliseconds (used for expiry checks).
    pub fn unix_ms(&self) -> u64 {
        self.lock().unix_ms()
    }

    /// Sets the network's wall clock: [`unix_ms`](Self::unix_ms) reads `unix_ms` now and
    /// advances with tokio time from here. Envelopes stored already keep the expiry they got
    /// when they were stored (measured in tokio time).
    pub fn set_unix_ms(&self, unix_ms: u64) {
        let mut inner = self.lock();
        inner.anchor_ms = unix_ms;
        inner.anchor_at = Instant::now();
    }

    /// Delivers raw bytes to a device as if they came off the wire, bypassing faults: the
    /// client gets `SignalEvent::Message` if they decode, else `SignalEvent::Invalid`.
    pub fn inject_raw(
        &self,
        user: &UserId,
        device: &DeviceId,
        bytes: &[u8],
    ) -> Result<(), MockNetworkError> {
        let event = match protocol::decode(bytes) {
            Ok(envelope) => SignalEvent::Message(envelope),
            Err(err) => SignalEvent::Invalid(err),
        };
        self.lock().emit(user, device, event)
    }

    /// Tells a device's client that its credentials expire soon (`SignalEvent::TokenWillExpire`).
    pub fn emit_token_will_expire(
        &self,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<(), MockNetworkError> {
        self.lock().emit(user, device, SignalEvent::TokenWillExpire)
    }

    /// The token last passed to `renew_token` by the device's client.
    pub fn last_token(&self, user: &UserId, device: &DeviceId) -> Option<String> {
        self.lock()
            .link(user, device)
            .and_then(|link| link.token.clone())
    }

    pub(crate) fn client_send(
        &self,
        conn: u64,
        user: &UserId,
        device: &DeviceId,
        mut envelope: Envelope,
    ) -> Result<(), SignalError> {
        let mut inner = self.lock();
        inner.check_conn(conn, user, device)?;
        envelope.from = user.clone();
        envelope.from_device = device.clone();
        let bytes =
            protocol::encode(&envelope).map_err(|e| SignalError::Rejected(e.to_string()))?;
        let envelope = protocol::decode(&bytes).map_err(|e| {
            SignalError::Rejected(format!("envelope does not survive the wire codec: {e}"))
        })?;
        inner.route(&self.shared, envelope);
        Ok(())
    }

    pub(crate) fn client_renew(
        &self,
        conn: u64,
        user: &UserId,
        device: &DeviceId,
        token: String,
    ) -> Result<(), SignalError> {
        let mut inner = self.lock();
        inner.check_conn(conn, user, device)?;
        if let Some(link) = inner.link_mut(user, device) {
            link.token = Some(token);
        }
        Ok(())
    }

    /// Detaches connection `conn` from its device (if it is still the live one).
    pub(crate) fn client_detach(&self, conn: u64, user: &UserId, device: &DeviceId) {
        let mut inner = self.lock();
        if let Some(link) = inner.link_mut(user, device) {
            if link.conn.as_ref().is_some_and(|c| c.id == conn) {
                link.conn = None;
            }
        }
        inner.sync(user, device);
    }
}
