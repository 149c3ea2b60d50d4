//! One node's side of the fleet: the NATS connection, the per-user subscriptions, publishing
//! envelopes for users held elsewhere and keeping those nobody holds in JetStream.
//!
//! Every task here holds the [`Fleet`] weakly and ends when it is gone or [`Fleet::stop`] is
//! called; none holds a lock across an `.await`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use async_nats::{Client, ConnectOptions, HeaderMap, ServerAddr, StatusCode, Subscriber};
use bytes::Bytes;
use callapi_core::protocol::{decode_header, DeviceId, RoutingHeader, UserId};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use super::queue::{expires_ms, msg_id, Kept, OfflineQueue};
use super::subject::user_subject;
use super::{FleetConfig, FleetError};
use crate::server::config::Limits;
use crate::server::metrics::Metrics;

/// Header: the node that published a bus message (a node skips its own).
const NODE: &str = "Callapi-Node";
/// Header: `queued` on the note that tells the holders of a user to read its offline queue.
const KIND: &str = "Callapi-Kind";
const KIND_QUEUED: &str = "queued";
/// Envelopes waiting to be published; more are dropped (the sender retransmits).
const OUTBOUND_BACKLOG: usize = 8192;
/// How long a published envelope that no device here took waits for a node to say it
/// delivered it; past it, the envelope is kept (the nodes holding its user hold none of the
/// addressed devices, or are dying).
const PENDING_FOR: Duration = Duration::from_secs(2);

/// What a node's routing gives the fleet and takes from it (the hub implements it).
pub(crate) trait LocalNode: Send + Sync {
    /// Delivers an envelope that came over the bus to this node's devices of `env.to`
    /// (`to_device` honoured; nothing is kept). Returns how many devices took it, or `None`
    /// when this node holds no device of `env.to`.
    fn deliver(&self, env: &RoutingHeader<'_>, text: Utf8Bytes) -> Option<usize>;
    /// Hands a kept envelope to one of this node's devices of `env.to`. Returns whether its
    /// socket took it.
    fn deliver_kept(&self, device: &DeviceId, env: &RoutingHeader<'_>, text: Utf8Bytes) -> bool;
    /// The devices of `user` connected to this node.
    fn local_devices(&self, user: &UserId) -> Vec<DeviceId>;
    /// Sends the push notification of an invite kept for a user no node holds.
    fn push_invite(&self, text: &str);
}

/// An envelope the hub hands the fleet after routing it locally.
#[derive(Debug, Clone)]
pub(crate) struct Forward {
    text: Utf8Bytes,
    to: UserId,
    msg_id: String,
    expires_ms: u64,
    is_invite: bool,
    /// A device here took it: nobody needs to answer, and it is never kept.
    taken_here: bool,
    /// A device of `to` is connected here (so an invite kept for another device is not pushed).
    user_here: bool,
}

impl Forward {
    /// What to publish for `env` (verified and stamped by this node), after local routing.
    pub(crate) fn new(
        env: &RoutingHeader<'_>,
        text: Utf8Bytes,
        taken_here: bool,
        user_here: bool,
        max_lifetime: Duration,
    ) -> Self {
        let now = unix_ms();
        Self {
            to: env.to.clone(),
            msg_id: msg_id(
                env.from.as_str(),
                env.from_device.as_str(),
                &env.id.to_string(),
            ),
            expires_ms: expires_ms(now, env.remaining_ms(now), max_lifetime),
            is_invite: env.is_invite(),
            taken_here,
            user_here,
            text,
        }
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Default)]
struct Pending {
    next: u64,
    waiting: BTreeMap<u64, (Instant, Forward)>,
}

#[derive(Debug)]
struct Held {
    follow: AbortHandle,
    /// The subscription is in place (a device joining now needs its own replay).
    ready: Arc<AtomicBool>,
}

/// This node's membership in the fleet.
pub(crate) struct Fleet {
    client: Client,
    queue: OfflineQueue,
    node: String,
    reply_prefix: String,
    max_lifetime: Duration,
    metrics: Arc<Metrics>,
    local: OnceLock<Weak<dyn LocalNode>>,
    out: mpsc::Sender<Forward>,
    pending: Mutex<Pending>,
    held: Mutex<HashMap<UserId, Held>>,
    tasks: Mutex<Vec<AbortHandle>>,
}

impl std::fmt::Debug for Fleet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fleet")
            .field("node", &self.node)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Fleet {
    /// Connects to NATS, opens the offline-queue stream and starts the node's tasks.
    pub(crate) async fn start(
        config: &FleetConfig,
        limits: &Limits,
        metrics: Arc<Metrics>,
    ) -> Result<Arc<Self>, FleetError> {
        let urls = config.urls.join(",");
        let connect_err = |reason: String| FleetError::Connect {
            urls: urls.clone(),
            reason,
        };
        let addrs = config
            .urls
            .iter()
            .map(|u| u.parse::<ServerAddr>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| connect_err(format!("bad URL: {e}")))?;
        // Every (re)connection to a NATS server is announced here: after a reconnect the node
        // reads the queues of the users it holds (what was kept while its subscriptions were
        // gone from the cluster).
        let (connected_tx, connected_rx) = mpsc::channel::<()>(4);
        let mut options = ConnectOptions::new()
            .name(format!("callapi-signal-server {}", config.node))
            .connection_timeout(config.connect_timeout)
            .max_reconnects(None)
            .event_callback(move |event| {
                let tx = connected_tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            let _ = tx.try_send(());
                        }
                        async_nats::Event::Disconnected => {
                            tracing::warn!("lost the NATS connection; reconnecting");
                        }
                        other => tracing::debug!(%other, "NATS event"),
                    }
                }
            });
        if let (Some(user), Some(pass)) = (&config.user, &config.password) {
            options = options.user_and_password(user.clone(), pass.clone());
        }
        let client = tokio::time::timeout(config.connect_timeout, options.connect(addrs))
            .await
            .map_err(|_| connect_err("timed out".to_owned()))?
            .map_err(|e| connect_err(e.to_string()))?;
        let queue =
            OfflineQueue::open(client.clone(), &config.stream, config.replicas, limits).await?;
        let reply_prefix = format!("_INBOX.callapi.{}", config.node);
        let replies = client
            .subscribe(format!("{reply_prefix}.*"))
            .await
            .map_err(|e| FleetError::Bus(e.to_string()))?;
        let (out, out_rx) = mpsc::channel(OUTBOUND_BACKLOG);
        let fleet = Arc::new(Self {
            client,
            queue,
            node: config.node.clone(),
            reply_prefix,
            max_lifetime: limits.max_offline_lifetime,
            metrics,
            local: OnceLock::new(),
            out,
            pending: Mutex::new(Pending::default()),
            held: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        });
        let weak = Arc::downgrade(&fleet);
        let a = tokio::spawn(outbound(weak.clone(), out_rx)).abort_handle();
        let b = tokio::spawn(answers(weak.clone(), replies)).abort_handle();
        let c = tokio::spawn(reconnects(weak, connected_rx)).abort_handle();
        lock(&fleet.tasks).extend([a, b, c]);
        tracing::info!(node = %config.node, %urls, "joined the fleet");
        Ok(fleet)
    }

    /// Connects the node's routing (once; later calls are ignored).
    pub(crate) fn attach(&self, local: Weak<dyn LocalNode>) {
        let _ = self.local.set(local);
    }

    fn local(&self) -> Option<Arc<dyn LocalNode>> {
        self.local.get().and_then(Weak::upgrade)
    }

    /// The longest an envelope is kept.
    pub(crate) fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// Publishes an envelope routed here to the other nodes (never blocks; over the backlog
    /// the envelope is dropped and its sender retransmits).
    pub(crate) fn forward(&self, f: Forward) {
        if self.out.try_send(f).is_err() {
            self.metrics.dropped("fleet_backlog");
        }
    }

    /// A device of `user` registered here; `first` when it is the user's only one here. The
    /// first subscribes to the user's subject, then reads the user's offline queue; a later one
    /// reads the queue for itself.
    pub(crate) fn device_up(self: &Arc<Self>, user: &UserId, device: &DeviceId, first: bool) {
        let mut held = lock(&self.held);
        if let Some(h) = held.get(user) {
            if h.ready.load(Ordering::Acquire) {
                let (fleet, user, device) = (Arc::downgrade(self), user.clone(), device.clone());
                tokio::spawn(async move {
                    if let Some(f) = fleet.upgrade() {
                        f.replay(&user, Some(&device)).await;
                    }
                });
            }
            // Not ready yet: the subscription's own replay, after it is in place, covers it.
            return;
        }
        if !first {
            tracing::debug!(%user, "device_up(first = false) for a user not held; subscribing");
        }
        let ready = Arc::new(AtomicBool::new(false));
        let follow = tokio::spawn(follow(Arc::downgrade(self), user.clone(), ready.clone()));
        held.insert(
            user.clone(),
            Held {
                follow: follow.abort_handle(),
                ready,
            },
        );
    }

    /// The last device of `user` here left: unsubscribe from the user's subject.
    pub(crate) fn user_gone(&self, user: &UserId) {
        if let Some(h) = lock(&self.held).remove(user) {
            // Dropping the subscriber (with its task) unsubscribes.
            h.follow.abort();
        }
    }

    /// Stops every task of this node (the NATS connection closes with the last handle).
    pub(crate) fn stop(&self) {
        for t in lock(&self.tasks).drain(..) {
            t.abort();
        }
        for (_, h) in lock(&self.held).drain() {
            h.follow.abort();
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(NODE, self.node.as_str());
        h
    }

    async fn publish(&self, f: Forward) {
        let subject = user_subject(f.to.as_str());
        let payload = Bytes::from(f.text.clone());
        let sent = if f.taken_here {
            self.client
                .publish_with_headers(subject, self.headers(), payload)
                .await
        } else {
            let seq = {
                let mut p = lock(&self.pending);
                let now = Instant::now();
                p.next += 1;
                let seq = p.next;
                p.waiting.insert(seq, (now, f));
                seq
            };
            let reply = format!("{}.{seq}", self.reply_prefix);
            self.client
                .publish_with_reply_and_headers(subject, reply, self.headers(), payload)
                .await
        };
        if let Err(e) = sent {
            self.metrics.dropped("fleet_bus");
            tracing::warn!(%e, "could not publish an envelope to the fleet");
        }
    }

    /// Keeps what no node said it delivered within [`PENDING_FOR`].
    async fn sweep_pending(&self) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut p = lock(&self.pending);
            while let Some(entry) = p.waiting.first_entry() {
                if now.saturating_duration_since(entry.get().0) < PENDING_FOR {
                    break;
                }
                due.push(entry.remove().1);
            }
        }
        for f in due {
            self.keep(f, false).await;
        }
    }

    /// An answer on this node's reply subject: a node delivered the envelope, or "no
    /// responders": no node holds its user.
    async fn on_answer(&self, msg: async_nats::Message) {
        let Some(seq) = msg
            .subject
            .rsplit('.')
            .next()
            .and_then(|s| s.parse::<u64>().ok())
        else {
            return;
        };
        let Some((_, f)) = lock(&self.pending).waiting.remove(&seq) else {
            return;
        };
        if msg.status == Some(StatusCode::NO_RESPONDERS) {
            self.keep(f, true).await;
        }
    }

    /// Keeps `f` in JetStream; `may_push`: this node is the ingress of an envelope no node took.
    async fn keep(&self, f: Forward, may_push: bool) {
        if f.expires_ms <= unix_ms() {
            self.metrics.dropped("expired");
            return;
        }
        let payload = Bytes::from(f.text.clone());
        match self
            .queue
            .keep(f.to.as_str(), &f.msg_id, f.expires_ms, payload)
            .await
        {
            Ok(Kept::New) => {
                self.metrics.queued.inc();
                if may_push && f.is_invite && !f.user_here {
                    if let Some(local) = self.local() {
                        local.push_invite(&f.text);
                    }
                }
                // A node that subscribed while this was on its way reads the queue again.
                let mut h = self.headers();
                h.insert(KIND, KIND_QUEUED);
                let _ = self
                    .client
                    .publish_with_headers(user_subject(f.to.as_str()), h, Bytes::new())
                    .await;
            }
            Ok(Kept::Duplicate) => {}
            Err(e) => {
                self.metrics.dropped("fleet_queue");
                tracing::warn!(%e, to = %f.to, "could not keep an envelope for an offline user");
            }
        }
    }

    /// A message on the subject of `user`, held here.
    async fn on_bus(&self, user: &UserId, msg: async_nats::Message) {
        let header = |name: &str| {
            msg.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        if header(NODE).as_deref() == Some(self.node.as_str()) {
            return;
        }
        if header(KIND).as_deref() == Some(KIND_QUEUED) {
            self.replay(user, None).await;
            return;
        }
        let Ok(text) = Utf8Bytes::try_from(msg.payload.clone()) else {
            self.metrics.dropped("invalid");
            return;
        };
        let answer = match decode_header(&text) {
            Ok(env) => match self.local() {
                Some(local) => match local.deliver(&env, text.clone()) {
                    Some(n) => n > 0,
                    None => {
                        // The user's last device here left while this was on its way: keep it
                        // (and say so, so that the sender's node does not keep it too).
                        let f = Forward::new(&env, text.clone(), false, false, self.max_lifetime);
                        self.keep(f, false).await;
                        true
                    }
                },
                None => false,
            },
            Err(_) => {
                self.metrics.dropped("invalid");
                false
            }
        };
        if let (true, Some(reply)) = (answer, msg.reply) {
            let _ = self.client.publish(reply, Bytes::new()).await;
        }
    }

    /// Connected to a NATS server (again): while this node was away, its users' subscriptions
    /// were gone from the cluster, so what was sent to them was kept (or will be, by nodes
    /// still waiting for answers). Reads every held user's queue once the subscriptions are
    /// back in place.
    async fn on_connected(&self) {
        let users: Vec<UserId> = lock(&self.held)
            .iter()
            .filter(|(_, h)| h.ready.load(Ordering::Acquire))
            .map(|(u, _)| u.clone())
            .collect();
        if users.is_empty() {
            return;
        }
        // The client sends its subscriptions again before this flush completes.
        let _ = self.client.flush().await;
        tracing::info!(
            users = users.len(),
            "connected to NATS again; reading the held users' offline queues"
        );
        for user in users {
            self.replay(&user, None).await;
        }
    }

    /// Hands the unexpired envelopes kept for `user` to its devices here (or to `only`), and
    /// deletes what was delivered or expired.
    async fn replay(&self, user: &UserId, only: Option<&DeviceId>) {
        let Some(local) = self.local() else { return };
        let mut devices = local.local_devices(user);
        if let Some(d) = only {
            devices.retain(|x| x == d);
        }
        if devices.is_empty() {
            return;
        }
        let entries = match self.queue.entries(user.as_str()).await {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%e, %user, "could not read the offline queue");
                return;
            }
        };
        let now = unix_ms();
        for entry in entries {
            if entry.expires_ms <= now {
                self.metrics.dropped("expired");
                self.queue.remove(entry.seq).await;
                continue;
            }
            let Ok(text) = Utf8Bytes::try_from(entry.payload) else {
                self.queue.remove(entry.seq).await;
                continue;
            };
            let Ok(env) = decode_header(&text) else {
                self.queue.remove(entry.seq).await;
                continue;
            };
            let mut delivered = false;
            for d in devices
                .iter()
                .filter(|d| env.to_device.as_ref().is_none_or(|t| t == *d))
            {
                delivered |= local.deliver_kept(d, &env, text.clone());
            }
            if delivered {
                self.queue.remove(entry.seq).await;
            }
        }
    }
}

/// Publishes what [`Fleet::forward`] queued, in order.
async fn outbound(fleet: Weak<Fleet>, mut rx: mpsc::Receiver<Forward>) {
    while let Some(f) = rx.recv().await {
        let Some(fleet) = fleet.upgrade() else { break };
        fleet.publish(f).await;
    }
}

/// Reads this node's reply subject, and keeps what waited too long for an answer.
async fn answers(fleet: Weak<Fleet>, mut replies: Subscriber) {
    let mut tick = tokio::time::interval(PENDING_FOR / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = replies.next() => {
                let Some(msg) = msg else { break };
                let Some(fleet) = fleet.upgrade() else { break };
                fleet.on_answer(msg).await;
            }
            _ = tick.tick() => {
                let Some(fleet) = fleet.upgrade() else { break };
                fleet.sweep_pending().await;
            }
        }
    }
}

/// After each (re)connection to NATS, reads the queues of the users held here.
async fn reconnects(fleet: Weak<Fleet>, mut connected: mpsc::Receiver<()>) {
    while connected.recv().await.is_some() {
        let Some(fleet) = fleet.upgrade() else { break };
        fleet.on_connected().await;
    }
}

/// Subscribes to `user`'s subject, reads the user's queue once the subscription is in place,
/// then delivers what arrives until aborted ([`Fleet::user_gone`]).
async fn follow(fleet: Weak<Fleet>, user: UserId, ready: Arc<AtomicBool>) {
    let Some(client) = fleet.upgrade().map(|f| f.client.clone()) else {
        return;
    };
    let mut sub = match client.subscribe(user_subject(user.as_str())).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(%e, %user, "could not subscribe to the user's fleet subject");
            return;
        }
    };
    // The server has the subscription before the queue is read: what is kept after this
    // point is announced on the subject.
    let _ = client.flush().await;
    ready.store(true, Ordering::Release);
    drop(client);
    if let Some(f) = fleet.upgrade() {
        f.replay(&user, None).await;
    }
    while let Some(msg) = sub.next().await {
        let Some(f) = fleet.upgrade() else { break };
        f.on_bus(&user, msg).await;
    }
}
