//! The server's side of routing: the sockets' outboxes, metrics, limits and push
//! notifications around [`callapi_core::router::Router`], which decides who gets what (the
//! devices of a user, fan-out and `to_device`, the offline queue, access-link call scopes and
//! which invite needs a push).
//!
//! One mutex guards the router; it is never held across an `.await` (sockets are fed through
//! bounded channels with `try_send`), so a slow socket never blocks routing.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use callapi_core::protocol::{decode_str, Body, DeviceId, RoutingHeader, UserId};
use callapi_core::router::{DeviceMemory, Header, Kept, Now, OutOfScope, Router, RouterConfig};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::config::Limits;
use super::fleet::{Fleet, Forward, LocalNode};
use super::metrics::Metrics;
use super::outbox::{Outbox, Refused};
use super::push::{PushNotification, PushNotifier};

/// Identifies one connection (so an old connection of a device never unregisters its
/// replacement).
pub(crate) type ConnId = u64;

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RouteError {
    /// An access-link connection addressed a call outside its room.
    OutOfScope(String),
}

/// A register refused because the user holds the maximum number of connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyConnections;

/// Counts for `ServerHandle::stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct HubCounts {
    pub(crate) devices: usize,
    pub(crate) users: usize,
    pub(crate) queued: usize,
}

/// What the router keeps per connected device: the connection's id and its outbox.
#[derive(Debug)]
struct HubConn {
    id: ConnId,
    tx: Outbox,
}

impl PartialEq for HubConn {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

#[derive(Debug)]
struct State {
    router: Router<HubConn, Utf8Bytes>,
    next_conn: ConnId,
}

/// Calls unused for this long are forgotten by the scope table.
const CALL_IDLE: Duration = Duration::from_secs(6 * 3600);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The router's clock: tokio's instant (paused in tests) and the system's wall clock.
fn now() -> Now {
    Now {
        at: Instant::now().into_std(),
        unix_ms: unix_ms(),
    }
}

/// The routing tables.
pub(crate) struct Hub {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    limits: Limits,
    push: Option<Arc<dyn PushNotifier>>,
    push_slots: Arc<Semaphore>,
    /// The fleet this node belongs to (`None`: it routes alone).
    fleet: Option<Arc<Fleet>>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Hub {
    pub(crate) fn new(
        limits: Limits,
        metrics: Arc<Metrics>,
        push: Option<Arc<dyn PushNotifier>>,
        fleet: Option<Arc<Fleet>>,
    ) -> Self {
        let push_slots = Arc::new(Semaphore::new(limits.max_pending_pushes));
        let config = RouterConfig {
            devices: DeviceMemory::WhileConnected,
            queue_per_user: limits.offline_queue_per_user,
            queue_total: limits.offline_queue_total,
            max_lifetime: limits.max_offline_lifetime,
            max_tracked_calls: limits.max_tracked_calls,
            call_idle: CALL_IDLE,
        };
        let mut router = Router::new(config);
        if fleet.is_some() {
            // The fleet keeps what no node delivered in JetStream: nothing is kept here.
            router.set_queue_per_user(0);
        }
        Self {
            state: Mutex::new(State {
                router,
                next_conn: 0,
            }),
            metrics,
            limits,
            push,
            push_slots,
            fleet,
        }
    }

    /// Stops this node's fleet tasks (the server stopped).
    pub(crate) fn stop_fleet(&self) {
        if let Some(f) = &self.fleet {
            f.stop();
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_gauges(&self, st: &State) {
        let c = st.router.counts();
        self.metrics
            .devices
            .set(i64::try_from(c.devices).unwrap_or(i64::MAX));
        self.metrics
            .users
            .set(i64::try_from(c.users).unwrap_or(i64::MAX));
        self.metrics
            .offline_queued
            .set(i64::try_from(c.queued).unwrap_or(i64::MAX));
    }

    pub(crate) fn counts(&self) -> HubCounts {
        let c = self.lock().router.counts();
        HubCounts {
            devices: c.devices,
            users: c.users,
            queued: c.queued,
        }
    }

    fn count_expired(&self, n: usize) {
        for _ in 0..n {
            self.metrics.dropped("expired");
        }
    }

    /// Registers a device's socket and hands it the envelopes queued for it. A connection of
    /// the same device replaces the old one (whose outbox closes).
    pub(crate) fn register(
        &self,
        user: &UserId,
        device: &DeviceId,
        scope: Option<String>,
        tx: Outbox,
    ) -> Result<ConnId, TooManyConnections> {
        let now = now();
        let mut guard = self.lock();
        let st = &mut *guard;
        if !st.router.is_connected(user, device)
            && st.router.connected_devices(user) >= self.limits.max_connections_per_user
        {
            return Err(TooManyConnections);
        }
        st.next_conn += 1;
        let conn = st.next_conn;
        let handle = HubConn {
            id: conn,
            tx: tx.clone(),
        };
        // The replaced connection's outbox is dropped here, which closes it.
        let connected = st.router.connect(user, device, handle, scope);
        if connected.replaced.is_some() {
            tracing::debug!(%user, %device, "a new connection replaces the device's old one");
        }
        // Under the lock, so that a user's subscribe and unsubscribe keep their order.
        if let Some(f) = &self.fleet {
            f.device_up(user, device, connected.first_local_device);
        }
        // Deliver what waited for this device, as far as the socket's write budget allows:
        // what does not fit stays queued (for the next connection, and the sender retransmits
        // to the device now online).
        let flushed = st.router.flush(user, device, now, |text| {
            tx.try_send_within_budget(text.clone()).is_ok()
        });
        for _ in 0..flushed.delivered {
            self.metrics.relayed.inc();
        }
        self.count_expired(flushed.expired);
        self.publish_gauges(st);
        Ok(conn)
    }

    /// Removes a connection (if it is still the device's current one).
    pub(crate) fn unregister(&self, user: &UserId, conn: ConnId) {
        let mut guard = self.lock();
        let st = &mut *guard;
        let gone = st.router.disconnect_if(user, |c| c.id == conn);
        if gone.last_local_device {
            if let Some(f) = &self.fleet {
                f.user_gone(user);
            }
        }
        self.publish_gauges(st);
    }

    /// Routes a verified envelope (its `from`/`from_device` are the sender's) sent by a
    /// connection with access-link scope `sender_scope`.
    pub(crate) fn route(
        &self,
        sender_scope: Option<&str>,
        env: &RoutingHeader<'_>,
        text: Utf8Bytes,
    ) -> Result<(), RouteError> {
        let now = now();
        let push = {
            let mut guard = self.lock();
            let st = &mut *guard;
            let routed = st
                .router
                .route(sender_scope, &Header::from(env), text, now)
                .map_err(|OutOfScope(msg)| RouteError::OutOfScope(msg))?;
            for _ in 0..routed.out_of_scope {
                self.metrics.dropped("out_of_scope");
            }
            for conn in &routed.deliver {
                // The sender is told nothing of a slow receiver: it cannot act on it, and
                // its reliable layer retransmits what is not acknowledged.
                match conn.tx.try_send(routed.message.clone()) {
                    Ok(()) => {
                        self.metrics.relayed.inc();
                    }
                    Err(Refused::Full | Refused::Overflow | Refused::NoRoom) => {
                        self.metrics.dropped("slow_consumer");
                    }
                    Err(Refused::Closed) => {}
                }
            }
            self.count_expired(routed.expired);
            if let Some(f) = &self.fleet {
                // Local routing done; the rest is the other nodes' (or JetStream's), unless
                // the one addressed device was here.
                let taken_here = !routed.deliver.is_empty();
                let text = routed.message;
                let user_here = st.router.connected_devices(&env.to) > 0;
                let device_here = env
                    .to_device
                    .as_ref()
                    .is_some_and(|d| st.router.is_connected(&env.to, d));
                if !device_here {
                    let max = f.max_lifetime();
                    f.forward(Forward::new(env, text, taken_here, user_here, max));
                }
                self.publish_gauges(st);
                return Ok(());
            }
            match routed.kept {
                Kept::Queued { evicted, .. } => {
                    if evicted > 0 {
                        self.metrics.dropped("queue_full");
                        self.metrics.limit_hit("offline_queue");
                    }
                    self.metrics.queued.inc();
                }
                Kept::Refused { .. } => {
                    self.metrics.dropped("queue_full");
                    self.metrics.limit_hit("offline_queue");
                }
                Kept::Expired { .. } => self.metrics.dropped("expired"),
                _ => {}
            }
            let push = routed.push.map(|p| p.message);
            self.publish_gauges(st);
            push
        };
        if let Some(text) = push {
            self.push_invite(&text);
        }
        Ok(())
    }

    /// Sends the push notification for an invite to a user with no device online. The invite
    /// is decoded in full here, the only place the server reads an envelope's body; one that
    /// does not decode (the receiver would refuse it too) gets no push.
    fn push_invite(&self, text: &str) {
        let env = match decode_str(text) {
            Ok(env) => env,
            Err(err) => {
                tracing::debug!(%err, "queued invite does not decode; no push");
                return;
            }
        };
        if let Body::Invite {
            room_id,
            call_type,
            extension,
            ..
        } = env.body
        {
            self.send_push(PushNotification {
                kind: "invite",
                to: env.to.to_string(),
                from: env.from.to_string(),
                from_device: env.from_device.to_string(),
                call_id: env.call_id.to_string(),
                envelope_id: env.id.to_string(),
                room_id,
                call_type,
                extension,
                expires_at_ms: env.ts.saturating_add(env.lifetime_ms),
            });
        }
    }

    fn send_push(&self, push: PushNotification) {
        let Some(notifier) = self.push.clone() else {
            return;
        };
        let Ok(permit) = self.push_slots.clone().try_acquire_owned() else {
            self.metrics.limit_hit("push_backlog");
            tracing::warn!(to = %push.to, "push backlog full; skipping a push notification");
            return;
        };
        let metrics = self.metrics.clone();
        tokio::spawn(async move {
            let to = push.to.clone();
            match notifier.notify(push).await {
                Ok(()) => metrics.push("ok"),
                Err(err) => {
                    metrics.push("error");
                    tracing::warn!(%to, %err, "push notification failed");
                }
            }
            drop(permit);
        });
    }

    /// Forgets expired offline envelopes and idle call scopes.
    pub(crate) fn sweep(&self) {
        let now = Instant::now().into_std();
        let mut guard = self.lock();
        let st = &mut *guard;
        let expired = st.router.sweep(now);
        self.count_expired(expired);
        self.publish_gauges(st);
    }
}

impl Hub {
    /// Hands `text` to this node's connected devices `conns`, counting what was relayed.
    fn send_to(&self, conns: &[&HubConn], text: &Utf8Bytes) -> usize {
        let mut sent = 0;
        for conn in conns {
            match conn.tx.try_send(text.clone()) {
                Ok(()) => {
                    self.metrics.relayed.inc();
                    sent += 1;
                }
                Err(Refused::Full | Refused::Overflow | Refused::NoRoom) => {
                    self.metrics.dropped("slow_consumer");
                }
                Err(Refused::Closed) => {}
            }
        }
        sent
    }
}

impl LocalNode for Hub {
    fn deliver(&self, env: &RoutingHeader<'_>, text: Utf8Bytes) -> Option<usize> {
        let now = now();
        let mut guard = self.lock();
        let st = &mut *guard;
        if st.router.connected_devices(&env.to) == 0 {
            return None;
        }
        // The router's queue keeps nothing in fleet mode: this only delivers (and applies
        // the access-link scopes of the devices here). The ingress node checked the sender.
        let sent = match st.router.route(None, &Header::from(env), text, now) {
            Ok(routed) => {
                for _ in 0..routed.out_of_scope {
                    self.metrics.dropped("out_of_scope");
                }
                let conns = routed.deliver;
                let text = routed.message;
                self.send_to(&conns, &text)
            }
            Err(_) => 0,
        };
        self.publish_gauges(st);
        Some(sent)
    }

    fn deliver_kept(&self, device: &DeviceId, env: &RoutingHeader<'_>, text: Utf8Bytes) -> bool {
        let st = self.lock();
        let Some(conn) = st.router.connection(&env.to, device) else {
            return false;
        };
        let took = conn.tx.try_send_within_budget(text).is_ok();
        if took {
            self.metrics.relayed.inc();
        }
        took
    }

    fn local_devices(&self, user: &UserId) -> Vec<DeviceId> {
        let st = self.lock();
        st.router
            .devices(user)
            .filter(|d| st.router.is_connected(user, d))
            .cloned()
            .collect()
    }

    fn push_invite(&self, text: &str) {
        Hub::push_invite(self, text);
    }
}
