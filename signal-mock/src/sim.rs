//! [`SimNetwork`]: a sans-IO, hand-stepped network for deterministic simulations.
//!
//! No tokio, no clock: the caller passes `now` into every method and asks for the next
//! delivery time, exactly like driving a sans-IO `CallMachine`. The same seed, fault plan and
//! call sequence always yield the same deliveries in the same order.
//!
//! Routing (the devices of a user, `to_device`, the offline queue, pushes) is
//! [`callapi_core::router::Router`]'s, the component the WebSocket server routes with; this
//! module adds the faults, the clock and the copies in flight.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use callapi_core::protocol::{DeviceId, Envelope, UserId};
use callapi_core::router::{DeviceMemory, Header, Kept, Now, Push, Router, RouterConfig};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::fault::FaultPlan;
use crate::stats::NetworkStats;

/// The default wall-clock anchor: Unix milliseconds at the network's `start`
/// (2023-11-14T22:13:20Z).
pub const DEFAULT_ANCHOR_MS: u64 = 1_700_000_000_000;

/// One envelope copy arriving at one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The receiving user.
    pub user: UserId,
    /// The receiving device.
    pub device: DeviceId,
    /// What arrived.
    pub envelope: Envelope,
    /// When it was due (at or before the `now` passed to [`SimNetwork::poll_delivery`]).
    pub at: Instant,
}

/// A copy on its way, ordered by `(at, seq)`.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    user: UserId,
    device: DeviceId,
    envelope: Envelope,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for InFlight {}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// The router's settings for a mock network: the server's defaults (`docs/PROTOCOL.md`,
/// "Limits"), with devices that stay known while offline.
pub(crate) fn mock_router_config() -> RouterConfig {
    RouterConfig {
        devices: DeviceMemory::Registered,
        ..RouterConfig::default()
    }
}

/// Adds what the offline queue did with `copies` device copies to `stats`.
pub(crate) fn count_kept(stats: &mut NetworkStats, kept: Kept, copies: usize, expired: usize) {
    let n = |c: usize| c as u64;
    stats.expired_offline += n(expired);
    match kept {
        Kept::NotNeeded => {}
        Kept::Queued { copies, evicted } => {
            stats.stored_offline += n(copies);
            stats.dropped += n(evicted);
        }
        // The copies already waiting (a retransmission or a duplicate) are merged into the
        // kept one: the devices newly owed it count as stored, the rest as lost.
        Kept::Duplicate { added } => {
            stats.stored_offline += n(added);
            stats.dropped += n(copies.saturating_sub(added));
        }
        Kept::Expired { copies } => stats.expired_offline += n(copies),
        Kept::Refused { copies } => stats.dropped += n(copies),
        Kept::UnknownRecipient => {
            stats.unknown_recipient += 1;
            stats.dropped += 1;
        }
        // A future outcome: the copies did not reach a device.
        _ => stats.dropped += n(copies),
    }
}

/// A sans-IO, in-memory network of users and devices with seeded fault injection.
///
/// * Devices are registered with [`add_device`](Self::add_device) (online) and switched with
///   [`set_online`](Self::set_online).
/// * [`send`](Self::send) routes an envelope to every registered device of `to` (or only
///   `to_device`); each copy gets its own fate from the [`FaultPlan`] (drop, duplicate, delay,
///   reorder). Partitions apply to the time elapsed since `start` when the envelope is sent.
///   An envelope whose recipient is unknown is dropped; one sent from a registered device that
///   is offline is dropped too (its link is down).
/// * Copies for an offline device (at send time, or when a delayed copy falls due) are kept
///   while [`store_offline`](Self::store_offline) is on (the default) until their lifetime
///   ends, and re-sent through the fault plan when the device comes online. The offline queue
///   is the server's ([`Router`] with its default limits): a retransmission or duplicate of an
///   envelope already kept is kept once, and a user's queue holds 64 envelopes (a full queue
///   gives up the oldest envelope of the sender holding the most). Expiry uses
///   [`unix_ms`](Self::unix_ms). Envelopes in flight to an online device are delivered even if
///   expired: checking lifetimes is the receiver's job.
/// * An invite kept for a user with no device online is recorded as a push notification
///   ([`pushes`](Self::pushes)), once per invite, as the server would send it.
/// * [`poll_delivery`](Self::poll_delivery) hands out due copies in time order, ties broken by
///   the order they were scheduled in.
///
/// ```
/// use std::time::{Duration, Instant};
/// use callapi_core::protocol::{Body, CallId, DeviceId, Envelope, MessageId, UserId};
/// use callapi_signal_mock::{FaultPlan, SimNetwork};
///
/// let start = Instant::now();
/// let plan = FaultPlan::default().with_delay(Duration::from_millis(10), Duration::from_millis(50));
/// let mut net = SimNetwork::new(7, plan, start);
/// let bob = UserId::new("bob").unwrap();
/// net.add_device(bob.clone(), DeviceId::new("b1").unwrap());
///
/// let env = Envelope {
///     v: 1,
///     id: MessageId::new_v4(),
///     ts: net.unix_ms(start),
///     from: UserId::new("alice").unwrap(),
///     from_device: DeviceId::new("a1").unwrap(),
///     to: bob,
///     to_device: None,
///     call_id: CallId::new_v4(),
///     lifetime_ms: 15_000,
///     body: Body::Ringing { group: false, seq: None },
/// };
/// net.send(env.clone(), start);
/// let due = net.next_delivery_at().unwrap();
/// assert!(due >= start + Duration::from_millis(10));
/// let delivery = net.poll_delivery(due).unwrap();
/// assert_eq!(delivery.envelope, env);
/// assert!(net.poll_delivery(due).is_none());
/// ```
#[derive(Debug)]
pub struct SimNetwork {
    rng: ChaCha8Rng,
    plan: FaultPlan,
    start: Instant,
    anchor_ms: u64,
    store_offline: bool,
    /// Devices, who is online (connected), the offline queue and pushes.
    router: Router<DeviceId, Envelope>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    stats: NetworkStats,
    pushes: Vec<Push<Envelope>>,
}

impl SimNetwork {
    /// A network seeded with `seed`, mistreating messages per `plan`, whose clock starts at
    /// `start` (partition windows and the wall-clock anchor are measured from it).
    ///
    /// The plan is used as given; see [`FaultPlan::validate`] to catch mistakes first.
    pub fn new(seed: u64, plan: FaultPlan, start: Instant) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            plan,
            start,
            anchor_ms: DEFAULT_ANCHOR_MS,
            store_offline: true,
            router: Router::new(mock_router_config()),
            queue: BinaryHeap::new(),
            seq: 0,
            stats: NetworkStats::default(),
            pushes: Vec::new(),
        }
    }

    /// The router's clock at `now`.
    fn now(&self, now: Instant) -> Now {
        Now {
            at: now,
            unix_ms: self.unix_ms(now),
        }
    }

    /// Registers a device of `user`, online. Registering an existing device does nothing.
    pub fn add_device(&mut self, user: UserId, device: DeviceId) {
        if self.router.register(&user, &device) {
            self.router.connect(&user, &device, device.clone(), None);
        }
    }

    /// Takes a device offline or brings it back. An unknown device is registered first.
    ///
    /// Coming online re-sends the envelopes stored for it (those whose lifetime has not ended
    /// at `now`) through the fault plan, as if sent at `now`.
    pub fn set_online(&mut self, user: UserId, device: DeviceId, online: bool, now: Instant) {
        self.add_device(user.clone(), device.clone());
        let was_online = self.router.is_connected(&user, &device);
        if !online {
            if was_online {
                self.router.disconnect_device(&user, &device);
            }
            return;
        }
        if was_online {
            return;
        }
        self.router.connect(&user, &device, device.clone(), None);
        let mut stored = Vec::new();
        let flushed = self.router.flush(&user, &device, self.now(now), |env| {
            stored.push(env.clone());
            true
        });
        self.stats.expired_offline += flushed.expired as u64;
        for envelope in stored {
            self.schedule(user.clone(), device.clone(), envelope, now);
        }
    }

    /// Whether the device is registered and online.
    pub fn is_online(&self, user: &UserId, device: &DeviceId) -> bool {
        self.router.is_connected(user, device)
    }

    /// The registered devices of `user`, in registration order.
    pub fn devices(&self, user: &UserId) -> Vec<DeviceId> {
        self.router.devices(user).cloned().collect()
    }

    /// Whether envelopes for offline devices are kept (default `true`).
    pub fn store_offline(&self) -> bool {
        self.store_offline
    }

    /// Keeps (`true`) or drops (`false`) envelopes for offline devices from now on (what is
    /// stored already stays).
    pub fn set_store_offline(&mut self, store: bool) {
        self.store_offline = store;
        let per_user = if store {
            mock_router_config().queue_per_user
        } else {
            0
        };
        self.router.set_queue_per_user(per_user);
    }

    /// Unix milliseconds at `start` (default [`DEFAULT_ANCHOR_MS`]).
    pub fn anchor_ms(&self) -> u64 {
        self.anchor_ms
    }

    /// Sets the Unix milliseconds at `start`.
    pub fn set_anchor_ms(&mut self, anchor_ms: u64) {
        self.anchor_ms = anchor_ms;
    }

    /// The instant the network started.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// The wall-clock time at `now` in Unix milliseconds: `anchor_ms + (now - start)`.
    /// Use it for envelope timestamps so that expiry checks agree with the network.
    pub fn unix_ms(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start).as_millis();
        self.anchor_ms
            .saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// Time elapsed since the network started, at `now` (zero before the start).
    pub fn elapsed(&self, now: Instant) -> Duration {
        now.saturating_duration_since(self.start)
    }

    /// The fault plan in use.
    pub fn plan(&self) -> &FaultPlan {
        &self.plan
    }

    /// Replaces the fault plan for envelopes sent (or re-sent from the store) from now on.
    pub fn set_plan(&mut self, plan: FaultPlan) {
        self.plan = plan;
    }

    /// The counters so far.
    pub fn stats(&self) -> NetworkStats {
        self.stats
    }

    /// Number of copies on their way.
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Number of envelopes stored for an offline device.
    pub fn stored(&self, user: &UserId, device: &DeviceId) -> usize {
        self.router.queued_for(user, device)
    }

    /// The push notifications so far: one per invite kept for a user with no device online,
    /// in the order they fell due.
    pub fn pushes(&self) -> &[Push<Envelope>] {
        &self.pushes
    }

    /// Hands an envelope to the network at `now`; see the type's documentation for routing.
    pub fn send(&mut self, envelope: Envelope, now: Instant) {
        self.stats.sent += 1;
        if self.router.is_known(&envelope.from, &envelope.from_device)
            && !self
                .router
                .is_connected(&envelope.from, &envelope.from_device)
        {
            self.stats.sender_offline += 1;
            self.stats.dropped += 1;
            return;
        }
        let elapsed = self.elapsed(now);
        if self
            .plan
            .is_partitioned(&envelope.from, &envelope.to, elapsed)
        {
            self.stats.partitioned += 1;
            self.stats.dropped += 1;
            return;
        }
        let clock = self.now(now);
        let header = Header::from(&envelope);
        let addressed = self.router.addressed_devices(&header);
        // Without access links every connected addressed device is delivered to.
        let Ok(routed) = self.router.route(None, &header, envelope.clone(), clock) else {
            self.stats.dropped += 1;
            return;
        };
        let targets: Vec<DeviceId> = routed.deliver.iter().map(|d| (*d).clone()).collect();
        let offline = addressed.saturating_sub(targets.len());
        count_kept(&mut self.stats, routed.kept, offline, routed.expired);
        if let Some(push) = routed.push {
            self.pushes.push(push);
        }
        let user = envelope.to.clone();
        let mut envelope = Some(envelope);
        let last = targets.len().saturating_sub(1);
        for (i, device) in targets.into_iter().enumerate() {
            let env = if i == last {
                envelope.take()
            } else {
                envelope.clone()
            };
            if let Some(env) = env {
                self.schedule(user.clone(), device, env, now);
            }
        }
    }

    /// When the next copy falls due, if any is on its way.
    pub fn next_delivery_at(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse(f)| f.at)
    }

    /// The next copy due at or before `now`, in time order (ties in scheduling order).
    ///
    /// A copy whose device went offline meanwhile is stored (or dropped) instead, and the next
    /// due copy is returned.
    pub fn poll_delivery(&mut self, now: Instant) -> Option<Delivery> {
        loop {
            if self.queue.peek().is_none_or(|Reverse(f)| f.at > now) {
                return None;
            }
            let Reverse(flight) = self.queue.pop()?;
            if self.router.is_connected(&flight.user, &flight.device) {
                self.stats.delivered += 1;
                return Some(Delivery {
                    user: flight.user,
                    device: flight.device,
                    envelope: flight.envelope,
                    at: flight.at,
                });
            }
            self.store(&flight.user, &flight.device, flight.envelope, now);
        }
    }

    /// Draws the copy's fate and queues the surviving copies.
    fn schedule(&mut self, user: UserId, device: DeviceId, envelope: Envelope, now: Instant) {
        let delays = self.plan.fate(&mut self.rng);
        match delays.len() {
            0 => {
                self.stats.dropped += 1;
                return;
            }
            1 => {}
            n => self.stats.duplicated += (n - 1) as u64,
        }
        let last = delays.len() - 1;
        let mut envelope = Some(envelope);
        for (i, delay) in delays.into_iter().enumerate() {
            let env = if i == last {
                envelope.take()
            } else {
                envelope.clone()
            };
            let Some(env) = env else { break };
            self.seq += 1;
            self.queue.push(Reverse(InFlight {
                at: now + delay,
                seq: self.seq,
                user: user.clone(),
                device: device.clone(),
                envelope: env,
            }));
        }
    }

    /// Keeps a copy that fell due for a device gone offline (or drops it, for an unknown
    /// device).
    fn store(&mut self, user: &UserId, device: &DeviceId, envelope: Envelope, now: Instant) {
        let clock = self.now(now);
        let header = Header::from(&envelope);
        let held = self
            .router
            .hold(user, device, &header, envelope.clone(), clock);
        if held.kept == Kept::UnknownRecipient {
            self.stats.dropped += 1;
            self.stats.expired_offline += held.expired as u64;
            return;
        }
        count_kept(&mut self.stats, held.kept, 1, held.expired);
    }
}
