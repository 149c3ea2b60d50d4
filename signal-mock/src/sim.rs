//! [`SimNetwork`]: a sans-IO, hand-stepped network for deterministic simulations.
//!
//! No tokio, no clock: the caller passes `now` into every method and asks for the next
//! delivery time, exactly like driving a sans-IO `CallMachine`. The same seed, fault plan and
//! call sequence always yield the same deliveries in the same order.

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::time::{Duration, Instant};

use callapi_core::protocol::{DeviceId, Envelope, UserId};
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

#[derive(Debug)]
struct SimDevice {
    id: DeviceId,
    online: bool,
    stored: Vec<Envelope>,
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
///   ends, and re-sent through the fault plan when the device comes online. Expiry uses
///   [`unix_ms`](Self::unix_ms). Envelopes in flight to an online device are delivered even if
///   expired: checking lifetimes is the receiver's job.
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
    users: HashMap<UserId, Vec<SimDevice>>,
    queue: BinaryHeap<Reverse<InFlight>>,
    seq: u64,
    stats: NetworkStats,
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
            users: HashMap::new(),
            queue: BinaryHeap::new(),
            seq: 0,
            stats: NetworkStats::default(),
        }
    }

    /// Registers a device of `user`, online. Registering an existing device does nothing.
    pub fn add_device(&mut self, user: UserId, device: DeviceId) {
        let devices = self.users.entry(user).or_default();
        if !devices.iter().any(|d| d.id == device) {
            devices.push(SimDevice {
                id: device,
                online: true,
                stored: Vec::new(),
            });
        }
    }

    /// Takes a device offline or brings it back. An unknown device is registered first.
    ///
    /// Coming online re-sends the envelopes stored for it (those whose lifetime has not ended
    /// at `now`) through the fault plan, as if sent at `now`.
    pub fn set_online(&mut self, user: UserId, device: DeviceId, online: bool, now: Instant) {
        self.add_device(user.clone(), device.clone());
        let Some(dev) = self.device_mut(&user, &device) else {
            return;
        };
        let was_online = dev.online;
        dev.online = online;
        if online && !was_online {
            let stored = std::mem::take(&mut dev.stored);
            let now_ms = self.unix_ms(now);
            for envelope in stored {
                if envelope.is_expired(now_ms) {
                    self.stats.expired_offline += 1;
                } else {
                    self.schedule(user.clone(), device.clone(), envelope, now);
                }
            }
        }
    }

    /// Whether the device is registered and online.
    pub fn is_online(&self, user: &UserId, device: &DeviceId) -> bool {
        self.device(user, device).is_some_and(|d| d.online)
    }

    /// The registered devices of `user`, in registration order.
    pub fn devices(&self, user: &UserId) -> Vec<DeviceId> {
        self.users
            .get(user)
            .map(|ds| ds.iter().map(|d| d.id.clone()).collect())
            .unwrap_or_default()
    }

    /// Whether envelopes for offline devices are kept (default `true`).
    pub fn store_offline(&self) -> bool {
        self.store_offline
    }

    /// Keeps (`true`) or drops (`false`) envelopes for offline devices from now on.
    pub fn set_store_offline(&mut self, store: bool) {
        self.store_offline = store;
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
        self.device(user, device).map_or(0, |d| d.stored.len())
    }

    /// Hands an envelope to the network at `now`; see the type's documentation for routing.
    pub fn send(&mut self, envelope: Envelope, now: Instant) {
        self.stats.sent += 1;
        if self
            .device(&envelope.from, &envelope.from_device)
            .is_some_and(|d| !d.online)
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
        let targets: Vec<(DeviceId, bool)> = match self.users.get(&envelope.to) {
            Some(devices) => devices
                .iter()
                .filter(|d| envelope.to_device.as_ref().is_none_or(|only| &d.id == only))
                .map(|d| (d.id.clone(), d.online))
                .collect(),
            None => Vec::new(),
        };
        if targets.is_empty() {
            self.stats.unknown_recipient += 1;
            self.stats.dropped += 1;
            return;
        }
        let user = envelope.to.clone();
        for (device, online) in targets {
            if online {
                self.schedule(user.clone(), device, envelope.clone(), now);
            } else {
                self.store(&user, &device, envelope.clone(), now);
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
            match self.device(&flight.user, &flight.device) {
                Some(d) if d.online => {
                    self.stats.delivered += 1;
                    return Some(Delivery {
                        user: flight.user,
                        device: flight.device,
                        envelope: flight.envelope,
                        at: flight.at,
                    });
                }
                Some(_) => self.store(&flight.user, &flight.device, flight.envelope, now),
                None => self.stats.dropped += 1,
            }
        }
    }

    fn device(&self, user: &UserId, device: &DeviceId) -> Option<&SimDevice> {
        self.users.get(user)?.iter().find(|d| &d.id == device)
    }

    fn device_mut(&mut self, user: &UserId, device: &DeviceId) -> Option<&mut SimDevice> {
        self.users
            .get_mut(user)?
            .iter_mut()
            .find(|d| &d.id == device)
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

    /// Keeps a copy for an offline device, or drops it.
    fn store(&mut self, user: &UserId, device: &DeviceId, envelope: Envelope, now: Instant) {
        if !self.store_offline {
            self.stats.dropped += 1;
            return;
        }
        if envelope.is_expired(self.unix_ms(now)) {
            self.stats.expired_offline += 1;
            return;
        }
        match self.device_mut(user, device) {
            Some(d) => {
                d.stored.push(envelope);
                self.stats.stored_offline += 1;
            }
            None => self.stats.dropped += 1,
        }
    }
}
