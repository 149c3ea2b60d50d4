//! Prometheus metrics (`/metrics`, OpenMetrics text via `prometheus-client`).
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `callapi_signal_connections` | gauge | open WebSocket connections |
//! | `callapi_signal_devices` | gauge | devices online |
//! | `callapi_signal_users` | gauge | users with at least one device online |
//! | `callapi_signal_pending_handshakes` | gauge | TCP connections before their first request |
//! | `callapi_signal_offline_queued` | gauge | envelopes held for offline users now |
//! | `callapi_signal_connections_accepted_total` | counter | WebSocket connections opened |
//! | `callapi_signal_envelopes_received_total` | counter | valid envelopes received from clients |
//! | `callapi_signal_envelopes_relayed_total` | counter | envelope copies handed to a device's socket |
//! | `callapi_signal_envelopes_queued_total` | counter | envelopes put in an offline queue |
//! | `callapi_signal_envelopes_dropped_total` | counter | `reason`: `expired`, `queue_full`, `slow_consumer`, `rate_limited`, `invalid`, `spoofed`, `out_of_scope`; on a fleet node also `fleet_backlog` (more than 8,192 envelopes waiting to be published on NATS), `fleet_bus` (a NATS publish failed), `fleet_queue` (JetStream refused to keep an envelope); the sender retransmits each |
//! | `callapi_signal_auth_failures_total` | counter | `reason`: `missing`, `malformed`, `bad_signature`, `expired`, `invalid_claims`, `device_mismatch` |
//! | `callapi_signal_limit_hits_total` | counter | `limit`: `frame_size`, `rate`, `rate_close`, `connections_per_user`, `pending_handshakes`, `offline_queue`, `push_backlog` |
//! | `callapi_signal_keepalive_drops_total` | counter | sockets dropped for silence |
//! | `callapi_signal_token_renewals_total` | counter | `result`: `ok`, `refused`, `identity_mismatch` |
//! | `callapi_signal_token_expiry_closes_total` | counter | sockets closed with 4001 |
//! | `callapi_signal_push_notifications_total` | counter | `result`: `ok`, `error` |

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = [(&'static str, &'static str); 1];

/// The server's counters and gauges.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    pub(crate) connections: Gauge<i64, AtomicI64>,
    pub(crate) devices: Gauge<i64, AtomicI64>,
    pub(crate) users: Gauge<i64, AtomicI64>,
    pub(crate) pending_handshakes: Gauge<i64, AtomicI64>,
    pub(crate) offline_queued: Gauge<i64, AtomicI64>,
    pub(crate) accepted: Counter,
    pub(crate) received: Counter,
    pub(crate) relayed: Counter,
    pub(crate) queued: Counter,
    dropped: Family<Labels, Counter>,
    auth_failures: Family<Labels, Counter>,
    limit_hits: Family<Labels, Counter>,
    pub(crate) keepalive_drops: Counter,
    renewals: Family<Labels, Counter>,
    pub(crate) expiry_closes: Counter,
    pushes: Family<Labels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh set, registered under the `callapi_signal_` prefix.
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("callapi_signal");
        let m = Self {
            connections: Gauge::default(),
            devices: Gauge::default(),
            users: Gauge::default(),
            pending_handshakes: Gauge::default(),
            offline_queued: Gauge::default(),
            accepted: Counter::default(),
            received: Counter::default(),
            relayed: Counter::default(),
            queued: Counter::default(),
            dropped: Family::default(),
            auth_failures: Family::default(),
            limit_hits: Family::default(),
            keepalive_drops: Counter::default(),
            renewals: Family::default(),
            expiry_closes: Counter::default(),
            pushes: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "connections",
            "Open WebSocket connections",
            m.connections.clone(),
        );
        r.register("devices", "Devices online", m.devices.clone());
        r.register(
            "users",
            "Users with at least one device online",
            m.users.clone(),
        );
        r.register(
            "pending_handshakes",
            "TCP connections that have not sent their first request yet",
            m.pending_handshakes.clone(),
        );
        r.register(
            "offline_queued",
            "Envelopes held for offline users",
            m.offline_queued.clone(),
        );
        r.register(
            "connections_accepted",
            "WebSocket connections opened",
            m.accepted.clone(),
        );
        r.register(
            "envelopes_received",
            "Valid envelopes received from clients",
            m.received.clone(),
        );
        r.register(
            "envelopes_relayed",
            "Envelope copies handed to a device's socket",
            m.relayed.clone(),
        );
        r.register(
            "envelopes_queued",
            "Envelopes put in an offline queue",
            m.queued.clone(),
        );
        r.register(
            "envelopes_dropped",
            "Envelopes dropped, by reason",
            m.dropped.clone(),
        );
        r.register(
            "auth_failures",
            "Refused tokens, by reason",
            m.auth_failures.clone(),
        );
        r.register(
            "limit_hits",
            "Times a limit was hit, by limit",
            m.limit_hits.clone(),
        );
        r.register(
            "keepalive_drops",
            "Sockets dropped after missing pongs",
            m.keepalive_drops.clone(),
        );
        r.register(
            "token_renewals",
            "In-band token renewals, by result",
            m.renewals.clone(),
        );
        r.register(
            "token_expiry_closes",
            "Sockets closed because their token expired (4001)",
            m.expiry_closes.clone(),
        );
        r.register(
            "push_notifications",
            "Push notifications for invites to offline users, by result",
            m.pushes.clone(),
        );
        Self { registry: r, ..m }
    }

    pub(crate) fn dropped(&self, reason: &'static str) {
        self.dropped.get_or_create(&[("reason", reason)]).inc();
    }

    pub(crate) fn auth_failure(&self, reason: &'static str) {
        self.auth_failures
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    pub(crate) fn limit_hit(&self, limit: &'static str) {
        self.limit_hits.get_or_create(&[("limit", limit)]).inc();
    }

    pub(crate) fn renewal(&self, result: &'static str) {
        self.renewals.get_or_create(&[("result", result)]).inc();
    }

    pub(crate) fn push(&self, result: &'static str) {
        self.pushes.get_or_create(&[("result", result)]).inc();
    }

    /// The metrics in the OpenMetrics text format (what `/metrics` serves).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
