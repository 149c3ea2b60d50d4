//! A fleet: several server nodes sharing routing through NATS (`serve --nats URL,...`).
//!
//! Each node holds some users' devices. While a node holds at least one device of a user it
//! subscribes to that user's subject, `callapi.fleet.user.<user>` (ids escaped, see below), and
//! to nothing else of other users: there is no broadcast to every node. An envelope a client
//! sends is checked by the node it came in on (the sender must be the token's user and device,
//! as without a fleet) and delivered to that node's devices of `to`; it is also published on
//! `to`'s subject (with the node's name in `Callapi-Node`, so the node skips its own copy),
//! unless the one addressed device (`to_device`) was here. Every node holding a device of `to`
//! delivers it to its own devices, as it would a local envelope.
//!
//! When no device of `to` took the envelope here, it is published with a reply subject: a node
//! that delivers it to a device answers; when no node subscribes, NATS answers "no responders"
//! at once; when no node answers within 2 s (its user's nodes hold none of the addressed
//! devices) the envelope is kept too, without a push. On "no responders" the ingress node keeps the envelope in JetStream (stream `CALLAPI_FLEET_QUEUE`, subject
//! `callapi.fleet.queue.<user>`; see [`queue`](self) for its bounds) and, for an invite to a user
//! no node holds, fires the push notification — once: a retransmission is a JetStream duplicate
//! and fires nothing. A node that gains a user's first device subscribes, then reads the user's
//! queue and hands each unexpired envelope to the device it is for, deleting it once delivered
//! (a user-addressed envelope goes to the devices of the first node that reads it).
//!
//! Ids are escaped into one subject token: bytes other than `A-Z a-z 0-9 - _` become `~XX`.
//!
//! The per-user connection limit is applied per node (counting a user's connections across the
//! fleet would put a round trip to shared state in front of every connect, and a node that dies
//! would leave its count behind until a lease expired).

mod node;
mod queue;
mod subject;

use std::time::Duration;

pub(crate) use node::{Fleet, Forward, LocalNode};

/// Joins a server to a fleet of nodes sharing routing through NATS.
///
/// ```
/// use callapi_signal_ws::server::FleetConfig;
///
/// let mut fleet = FleetConfig::new(vec!["nats://127.0.0.1:4222".into(), "nats://127.0.0.1:4223".into()]);
/// fleet.user = Some("callapi-server".into());
/// fleet.password = Some("a long secret".into());
/// fleet.node = "node-1".into();
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FleetConfig {
    /// NATS server URLs (`nats://host:port`); the client connects to one and fails over to the
    /// others.
    pub urls: Vec<String>,
    /// The servers' NATS user: the only one the NATS configuration should allow to publish and
    /// subscribe on `callapi.fleet.>` (`None`: no authentication).
    pub user: Option<String>,
    /// That user's password.
    pub password: Option<String>,
    /// This node's name, unique in the fleet (it marks the envelopes this node publishes).
    /// Default: a random one.
    pub node: String,
    /// Replicas of the offline-queue stream (3 on a 3-node cluster, so the queue survives a NATS
    /// node's death). Default 1.
    pub replicas: usize,
    /// The offline-queue stream's name. Default `CALLAPI_FLEET_QUEUE`.
    pub stream: String,
    /// How long a node waits for NATS at start before giving up. Default 10 s.
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for FleetConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FleetConfig")
            .field("urls", &self.urls)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("node", &self.node)
            .field("replicas", &self.replicas)
            .field("stream", &self.stream)
            .field("connect_timeout", &self.connect_timeout)
            .finish()
    }
}

impl FleetConfig {
    /// A fleet over the NATS servers `urls`, with the defaults above.
    pub fn new(urls: Vec<String>) -> Self {
        Self {
            urls,
            user: None,
            password: None,
            node: default_node_name(),
            replicas: 1,
            stream: "CALLAPI_FLEET_QUEUE".to_owned(),
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The entry of the servers' NATS user for nats-server's `authorization { users = [ ... ] }`
    /// block: it may publish on `callapi.fleet.>`, `$JS.API.>` (the offline queue) and
    /// `_INBOX.>`, and subscribe to `callapi.fleet.>` and `_INBOX.>`; nothing else. Give every
    /// other NATS user a `deny` on `callapi.fleet.>` and `$JS.API.>`. `user` and `password` are
    /// written as quoted strings (`"` and `\` escaped).
    ///
    /// ```
    /// use callapi_signal_ws::server::FleetConfig;
    ///
    /// let entry = FleetConfig::nats_server_user("callapi-server", "a long secret");
    /// let config = format!("authorization {{ users = [ {entry} ] }}");
    /// assert!(config.contains(r#"publish: { allow: ["callapi.fleet.>", "$JS.API.>", "_INBOX.>"] }"#));
    /// ```
    pub fn nats_server_user(user: &str, password: &str) -> String {
        let quote = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
        format!(
            r#"{{
  user: {}, password: {},
  permissions: {{
    publish: {{ allow: ["callapi.fleet.>", "$JS.API.>", "_INBOX.>"] }},
    subscribe: {{ allow: ["callapi.fleet.>", "_INBOX.>"] }}
  }}
}}"#,
            quote(user),
            quote(password)
        )
    }

    pub(crate) fn check(&self) -> Result<(), String> {
        if self.urls.is_empty() {
            return Err("--nats needs at least one NATS URL".to_owned());
        }
        if self.node.is_empty() || self.node.contains(['.', ' ', '*', '>']) {
            return Err(
                "the fleet node name must be non-empty, without '.', ' ', '*' or '>'".to_owned(),
            );
        }
        if self.stream.is_empty() || self.stream.contains(['.', ' ', '*', '>']) {
            return Err(
                "the fleet stream name must be non-empty, without '.', ' ', '*' or '>'".to_owned(),
            );
        }
        if self.user.is_some() != self.password.is_some() {
            return Err("give the fleet's NATS user and password together".to_owned());
        }
        Ok(())
    }
}

/// `node-<pid>-<nanoseconds>`: unique enough for nodes started on different hosts or at
/// different times.
fn default_node_name() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("node-{}-{nanos}", std::process::id())
}

/// Why a node could not join its fleet.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// NATS could not be reached or refused the credentials.
    #[error("cannot connect to NATS ({urls}): {reason}; check --nats and the servers' NATS user and password")]
    Connect {
        /// The URLs tried.
        urls: String,
        /// What NATS or the network said.
        reason: String,
    },
    /// JetStream (the offline queue) is unavailable: enable `jetstream` on the NATS servers and
    /// give the servers' user the `$JS.API.>` permissions.
    #[error("the fleet's offline queue is unavailable: {0}; enable JetStream on the NATS servers and allow the servers' user $JS.API.>")]
    Queue(String),
    /// A subscription or publish was refused.
    #[error("NATS refused the fleet's subscription or publish: {0}; allow the servers' user callapi.fleet.> and _INBOX.>")]
    Bus(String),
}
