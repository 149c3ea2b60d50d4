//! Routing: who is online on which device, fan-out of envelopes to every device of `to`, the
//! offline queue, access-link call scopes and push notifications.
//!
//! One mutex guards the tables; it is never held across an `.await` (sockets are fed through
//! bounded channels with `try_send`), so a slow socket never blocks routing.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use callapi_core::protocol::{
    decode_str, Body, CallId, DeviceId, MessageId, RoutingHeader, UserId,
};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::config::Limits;
use super::eviction::{evict_for, Eviction};
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

#[derive(Debug)]
struct Slot {
    device: DeviceId,
    conn: ConnId,
    tx: Outbox,
    /// The room of an access-link connection.
    scope: Option<String>,
}

#[derive(Debug)]
struct Queued {
    text: Utf8Bytes,
    from: UserId,
    from_device: DeviceId,
    id: MessageId,
    to_device: Option<DeviceId>,
    call_id: CallId,
    /// The room of an invite.
    invite_room: Option<String>,
    expires_at: Instant,
    /// Devices that already got this user-addressed envelope.
    delivered_to: Vec<DeviceId>,
}

#[derive(Debug)]
struct TrackedCall {
    room: String,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct State {
    online: HashMap<UserId, Vec<Slot>>,
    devices: usize,
    offline: HashMap<UserId, VecDeque<Queued>>,
    queued_total: usize,
    /// Calls an access-link connection took part in: call id → room.
    calls: HashMap<CallId, TrackedCall>,
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

/// The routing tables.
pub(crate) struct Hub {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
    limits: Limits,
    push: Option<Arc<dyn PushNotifier>>,
    push_slots: Arc<Semaphore>,
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
    ) -> Self {
        let push_slots = Arc::new(Semaphore::new(limits.max_pending_pushes));
        Self {
            state: Mutex::new(State::default()),
            metrics,
            limits,
            push,
            push_slots,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn publish_gauges(&self, st: &State) {
        self.metrics
            .devices
            .set(i64::try_from(st.devices).unwrap_or(i64::MAX));
        self.metrics
            .users
            .set(i64::try_from(st.online.len()).unwrap_or(i64::MAX));
        self.metrics
            .offline_queued
            .set(i64::try_from(st.queued_total).unwrap_or(i64::MAX));
    }

    pub(crate) fn counts(&self) -> HubCounts {
        let st = self.lock();
        HubCounts {
            devices: st.devices,
            users: st.online.len(),
            queued: st.queued_total,
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
        let now = Instant::now();
        let mut guard = self.lock();
        let st = &mut *guard;
        // Most users have one device online: room for one, so an idle user costs one slot.
        let slots = st
            .online
            .entry(user.clone())
            .or_insert_with(|| Vec::with_capacity(1));
        if let Some(pos) = slots.iter().position(|s| &s.device == device) {
            tracing::debug!(%user, %device, "a new connection replaces the device's old one");
            slots.swap_remove(pos);
            st.devices -= 1;
        } else if slots.len() >= self.limits.max_connections_per_user {
            return Err(TooManyConnections);
        }
        st.next_conn += 1;
        let conn = st.next_conn;
        slots.push(Slot {
            device: device.clone(),
            conn,
            tx: tx.clone(),
            scope: scope.clone(),
        });
        st.devices += 1;
        // Deliver what waited for this device, as far as the socket's write budget allows:
        // what does not fit stays queued (for the next connection, and the sender retransmits
        // to the device now online).
        if let Some(queue) = st.offline.get_mut(user) {
            let mut kept = VecDeque::with_capacity(queue.len());
            let mut room_left = true;
            while let Some(mut q) = queue.pop_front() {
                if q.expires_at <= now {
                    st.queued_total -= 1;
                    self.metrics.dropped("expired");
                    continue;
                }
                let for_me = match &q.to_device {
                    Some(d) => d == device,
                    None => !q.delivered_to.contains(device),
                };
                let room = q
                    .invite_room
                    .clone()
                    .or_else(|| st.calls.get(&q.call_id).map(|c| c.room.clone()));
                let in_scope = match &scope {
                    None => true,
                    Some(s) => room.as_deref() == Some(s.as_str()),
                };
                if !for_me || !in_scope || !room_left {
                    kept.push_back(q);
                    continue;
                }
                if tx.try_send_within_budget(q.text.clone()).is_err() {
                    room_left = false;
                    kept.push_back(q);
                    continue;
                }
                self.metrics.relayed.inc();
                if let (Some(s), Some(r)) = (&scope, &q.invite_room) {
                    if s == r {
                        track(
                            &mut st.calls,
                            q.call_id,
                            r,
                            now,
                            self.limits.max_tracked_calls,
                        );
                    }
                }
                if q.to_device.is_some() {
                    st.queued_total -= 1;
                } else {
                    q.delivered_to.push(device.clone());
                    kept.push_back(q);
                }
            }
            if kept.is_empty() {
                st.offline.remove(user);
            } else {
                *queue = kept;
            }
        }
        self.publish_gauges(st);
        Ok(conn)
    }

    /// Removes a connection (if it is still the device's current one).
    pub(crate) fn unregister(&self, user: &UserId, conn: ConnId) {
        let mut guard = self.lock();
        let st = &mut *guard;
        if let Some(slots) = st.online.get_mut(user) {
            if let Some(pos) = slots.iter().position(|s| s.conn == conn) {
                slots.swap_remove(pos);
                st.devices -= 1;
            }
            if slots.is_empty() {
                st.online.remove(user);
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
        let now = Instant::now();
        let invite_room = env.room_id.as_deref();
        let max_calls = self.limits.max_tracked_calls;
        let mut push = None;
        {
            let mut guard = self.lock();
            let st = &mut *guard;
            if let Some(scope) = sender_scope {
                match invite_room {
                    Some(room) if room == scope => {
                        track(&mut st.calls, env.call_id, room, now, max_calls);
                    }
                    Some(room) => {
                        return Err(RouteError::OutOfScope(format!(
                        "this access link is for room {scope:?}; it cannot invite to room {room:?}"
                    )))
                    }
                    None => match st.calls.get_mut(&env.call_id) {
                        Some(call) if call.room == scope => call.last_used = now,
                        _ => {
                            return Err(RouteError::OutOfScope(format!(
                                "call {} is not a call in this access link's room {scope:?}",
                                env.call_id
                            )))
                        }
                    },
                }
            }
            let room: Option<String> = match invite_room {
                Some(r) => Some(r.to_owned()),
                None => st.calls.get(&env.call_id).map(|c| c.room.clone()),
            };
            let mut target_online = false;
            let mut track_room = false;
            if let Some(slots) = st.online.get(&env.to) {
                for slot in slots
                    .iter()
                    .filter(|s| env.to_device.as_ref().is_none_or(|d| *d == s.device))
                {
                    target_online = true;
                    if let Some(scope) = &slot.scope {
                        if room.as_deref() != Some(scope.as_str()) {
                            self.metrics.dropped("out_of_scope");
                            continue;
                        }
                        track_room = true;
                    }
                    // The sender is told nothing of a slow receiver: it cannot act on it, and
                    // its reliable layer retransmits what is not acknowledged.
                    match slot.tx.try_send(text.clone()) {
                        Ok(()) => {
                            self.metrics.relayed.inc();
                        }
                        Err(Refused::Full | Refused::Overflow | Refused::NoRoom) => {
                            self.metrics.dropped("slow_consumer")
                        }
                        Err(Refused::Closed) => {}
                    }
                }
            }
            if track_room {
                if let Some(r) = &room {
                    track(&mut st.calls, env.call_id, r, now, max_calls);
                }
            }
            if !target_online {
                let user_online = st.online.contains_key(&env.to);
                let invite = env.is_invite().then(|| text.clone());
                let queued = self.enqueue(st, env, text, invite_room, now);
                if queued && !user_online {
                    push = invite;
                }
            }
            self.publish_gauges(st);
        }
        if let Some(text) = push {
            self.push_invite(&text);
        }
        Ok(())
    }

    /// Keeps an envelope for its offline addressee. Returns whether it was newly queued.
    fn enqueue(
        &self,
        st: &mut State,
        env: &RoutingHeader<'_>,
        text: Utf8Bytes,
        invite_room: Option<&str>,
        now: Instant,
    ) -> bool {
        let remaining = env.remaining_ms(unix_ms());
        if remaining == 0 {
            self.metrics.dropped("expired");
            return false;
        }
        let keep = Duration::from_millis(remaining).min(self.limits.max_offline_lifetime);
        let queue = st.offline.entry(env.to.clone()).or_default();
        // A retransmission of an envelope already waiting.
        if queue
            .iter()
            .any(|q| q.id == env.id && q.from == env.from && q.from_device == env.from_device)
        {
            return false;
        }
        if queue.len() >= self.limits.offline_queue_per_user {
            let senders: Vec<&UserId> = queue.iter().map(|q| &q.from).collect();
            let eviction = evict_for(&senders, &env.from);
            self.metrics.dropped("queue_full");
            self.metrics.limit_hit("offline_queue");
            match eviction {
                Eviction::Evict(pos) => {
                    queue.remove(pos);
                    st.queued_total -= 1;
                }
                Eviction::RefuseNew => return false,
            }
        } else if st.queued_total >= self.limits.offline_queue_total {
            self.metrics.dropped("queue_full");
            self.metrics.limit_hit("offline_queue");
            if queue.is_empty() {
                st.offline.remove(&env.to);
            }
            return false;
        }
        queue.push_back(Queued {
            text,
            from: env.from.clone(),
            from_device: env.from_device.clone(),
            id: env.id,
            to_device: env.to_device.clone(),
            call_id: env.call_id,
            invite_room: invite_room.map(str::to_owned),
            expires_at: now + keep,
            delivered_to: Vec::new(),
        });
        st.queued_total += 1;
        self.metrics.queued.inc();
        true
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
        let now = Instant::now();
        let mut guard = self.lock();
        let st = &mut *guard;
        let mut expired = 0usize;
        st.offline.retain(|_, queue| {
            let before = queue.len();
            queue.retain(|q| q.expires_at > now);
            expired += before - queue.len();
            !queue.is_empty()
        });
        st.queued_total -= expired;
        for _ in 0..expired {
            self.metrics.dropped("expired");
        }
        st.calls
            .retain(|_, c| now.saturating_duration_since(c.last_used) < CALL_IDLE);
        self.publish_gauges(st);
    }
}

fn track(
    calls: &mut HashMap<CallId, TrackedCall>,
    call_id: CallId,
    room: &str,
    now: Instant,
    max: usize,
) {
    if let Some(call) = calls.get_mut(&call_id) {
        call.last_used = now;
        return;
    }
    if calls.len() >= max {
        // Full: forget the call unused for longest.
        if let Some(oldest) = calls
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(id, _)| *id)
        {
            calls.remove(&oldest);
        }
    }
    calls.insert(
        call_id,
        TrackedCall {
            room: room.to_owned(),
            last_used: now,
        },
    );
}
