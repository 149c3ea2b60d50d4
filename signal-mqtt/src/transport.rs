//! [`MqttTransport`]: one MQTT connection attempt per [`Transport::connect`].

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::connection::{ConnectError, Identity, Transport};
use callapi_core::protocol::MAX_ENVELOPE_BYTES;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    NetworkOptions, Packet, Publish, QoS, SubscribeReasonCode,
};

use crate::error::{IdRole, TopicError};
use crate::link::{Inbound, MqttLink};
use crate::topics::{self, TopicRules};

/// Smallest (and default) MQTT packet size limit, both directions: 128 KiB, room for a 64 KiB
/// envelope (an SDP offer with many candidates) plus topic and header. rumqttc's own default
/// (10 KiB) would drop SDP offers.
pub const DEFAULT_MAX_PACKET_SIZE: usize = 128 * 1024;

/// What a broker's refusal of the credentials (CONNACK "bad user name or password" or "not
/// authorized") means to the core's [`Supervisor`](callapi_core::connection::Supervisor).
///
/// MQTT 3.1.1 cannot tell an expired token from a wrong one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuthRejection {
    /// The first refusal counts as [`ConnectError::TokenExpired`]: the supervisor fetches a
    /// fresh token and tries again on its reconnect schedule. A second refusal with no accepted
    /// connection in between is [`ConnectError::Unauthorized`]: permanent, the link ends
    /// `Failed`. Right for brokers that check expiring tokens (JWT plugins, auth webhooks).
    #[default]
    RefreshTokenOnce,
    /// Every refusal is [`ConnectError::Unauthorized`] at once. Right for static passwords
    /// (a Mosquitto password file).
    Permanent,
}

type OptionsHook = Arc<dyn Fn(&mut MqttOptions) + Send + Sync>;

/// Settings of an [`MqttTransport`].
#[derive(Clone)]
#[non_exhaustive]
pub struct MqttConfig {
    /// Broker host name or address (the first broker tried).
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// More nodes of the same cluster (`host`, `port`), tried in turn after `host:port`
    /// ([`with_broker`](Self::with_broker)). Empty by default.
    pub more_brokers: Vec<(String, u16)>,
    /// The rules user and device ids must follow ([`TopicRules`]); checked before connecting.
    /// Default [`TopicRules::Mqtt`]; [`TopicRules::Nats`] for a NATS server.
    pub topic_rules: TopicRules,
    /// MQTT keep-alive: the client pings when idle this long, and the broker drops a silent
    /// client after 1.5 times it (its last will announces it offline). Default 30 s.
    pub keep_alive: Duration,
    /// Largest MQTT packet accepted and sent, both directions; at least (and by default)
    /// [`DEFAULT_MAX_PACKET_SIZE`].
    pub max_packet_size: usize,
    /// Bound of the TCP connect and of each flush (rumqttc's network timeout; whole seconds,
    /// at least 1). Default 10 s. The supervisor bounds a whole attempt by its own 15 s.
    pub network_timeout: Duration,
    /// Capacity of the queue between [`send`](callapi_core::connection::TransportLink::send)
    /// and the connection. A full queue refuses envelopes (the reliable layer retransmits).
    /// Default 256.
    pub queue_capacity: usize,
    /// How a refusal of the credentials is reported. Default
    /// [`AuthRejection::RefreshTokenOnce`].
    pub auth_rejection: AuthRejection,
    /// Publish retained presence (`online` on connect, `offline` on close and as the last will)
    /// on `callapi/v1/presence/{user}/{device}`. Default on.
    pub presence: bool,
    hook: Option<OptionsHook>,
}

impl MqttConfig {
    /// Defaults for the broker at `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            more_brokers: Vec::new(),
            topic_rules: TopicRules::default(),
            keep_alive: Duration::from_secs(30),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            network_timeout: Duration::from_secs(10),
            queue_capacity: 256,
            auth_rejection: AuthRejection::default(),
            presence: true,
            hook: None,
        }
    }

    /// Adds another node of the same broker cluster. Each connection attempt tries the nodes
    /// in turn, starting with the one that accepted the last connection (at first `host:port`),
    /// and moves on to the next node when one cannot be reached or fails before the
    /// subscription is acknowledged; a refusal of the credentials or of the subscription ends
    /// the attempt at once (every node shares the user database). The attempt as a whole is
    /// still bounded by the supervisor (15 s by default), and the network timeout bounds each
    /// node's TCP connect: a node that does not answer at all costs up to that much.
    ///
    /// Every node must serve the same persistent sessions (a clustered broker: EMQX, VerneMQ,
    /// HiveMQ, NATS with JetStream), or a device that moves loses what was queued for it.
    pub fn with_broker(mut self, host: impl Into<String>, port: u16) -> Self {
        self.more_brokers.push((host.into(), port));
        self
    }

    /// Sets the id rules (see [`TopicRules`]); [`TopicRules::Nats`] for a NATS server.
    pub fn with_topic_rules(mut self, rules: TopicRules) -> Self {
        self.topic_rules = rules;
        self
    }

    /// Every broker address in the order they are tried at first: `host:port`, then
    /// [`more_brokers`](Self::more_brokers).
    pub fn brokers(&self) -> impl Iterator<Item = (&str, u16)> {
        std::iter::once((self.host.as_str(), self.port))
            .chain(self.more_brokers.iter().map(|(h, p)| (h.as_str(), *p)))
    }

    /// Checks that `identity`'s user and device ids can be topic levels under
    /// [`topic_rules`](Self::topic_rules). [`MqttTransport`] runs this before every connection
    /// attempt and fails permanently ([`ConnectError::Unauthorized`], with this error's text)
    /// when it fails; call it yourself to refuse such ids earlier, with a typed error.
    ///
    /// ```
    /// use callapi_core::connection::Identity;
    /// use callapi_core::protocol::{DeviceId, UserId};
    /// use callapi_signal_mqtt::{MqttConfig, TopicError, TopicRules};
    ///
    /// let nats = MqttConfig::new("127.0.0.1", 1883).with_topic_rules(TopicRules::Nats);
    /// let who = Identity { user: UserId::new("alice.smith")?, device: DeviceId::new("phone")? };
    /// assert!(matches!(nats.check_identity(&who), Err(TopicError::NotNatsSafe { found: '.', .. })));
    /// assert!(MqttConfig::new("127.0.0.1", 1883).check_identity(&who).is_ok());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn check_identity(&self, identity: &Identity) -> Result<(), TopicError> {
        topics::check_level_for(self.topic_rules, IdRole::User, identity.user.as_str())?;
        topics::check_level_for(self.topic_rules, IdRole::Device, identity.device.as_str())
    }

    /// Sets the keep-alive.
    pub fn with_keep_alive(mut self, keep_alive: Duration) -> Self {
        self.keep_alive = keep_alive;
        self
    }

    /// Sets the packet size limit (raised to [`DEFAULT_MAX_PACKET_SIZE`] if smaller).
    pub fn with_max_packet_size(mut self, bytes: usize) -> Self {
        self.max_packet_size = bytes;
        self
    }

    /// Sets how credential refusals are reported.
    pub fn with_auth_rejection(mut self, policy: AuthRejection) -> Self {
        self.auth_rejection = policy;
        self
    }

    /// Turns presence messages on or off.
    pub fn with_presence(mut self, presence: bool) -> Self {
        self.presence = presence;
        self
    }

    /// Adjusts the rumqttc options of every connection after this crate has set them — for
    /// example TLS: enable rumqttc's `use-rustls` feature in your own `Cargo.toml` and call
    /// `options.set_transport(rumqttc::Transport::tls_with_config(..))`. Do not change the
    /// client id, the credentials or `clean_session`: the persistent session depends on them.
    pub fn with_options(mut self, hook: impl Fn(&mut MqttOptions) + Send + Sync + 'static) -> Self {
        self.hook = Some(Arc::new(hook));
        self
    }
}

impl fmt::Debug for MqttConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MqttConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("more_brokers", &self.more_brokers)
            .field("topic_rules", &self.topic_rules)
            .field("keep_alive", &self.keep_alive)
            .field("max_packet_size", &self.max_packet_size)
            .field("network_timeout", &self.network_timeout)
            .field("queue_capacity", &self.queue_capacity)
            .field("auth_rejection", &self.auth_rejection)
            .field("presence", &self.presence)
            .field("options_hook", &self.hook.is_some())
            .finish()
    }
}

/// A [`Transport`] over MQTT 3.1.1 (rumqttc). Give it to
/// [`Supervisor::start`](callapi_core::connection::Supervisor::start), which owns tokens,
/// reconnection and backoff.
///
/// Each [`connect`](Transport::connect) is one attempt: a fresh client and event loop, CONNECT
/// with user name = user id, password = token, `clean_session = false` and the device's stable
/// [client id](crate::client_id); then SUBSCRIBE to the inbox at QoS 1, waiting for the SUBACK,
/// so a link is only returned once envelopes can arrive. When the connection later fails the
/// link reports it closed and stops polling: rumqttc never reconnects on its own here, the
/// supervisor's schedule does.
#[derive(Debug)]
pub struct MqttTransport {
    config: MqttConfig,
    /// The previous attempt's credentials were refused and no connection succeeded since
    /// (shared with the attempt under way, which owns a copy).
    refused_before: Arc<AtomicBool>,
    /// Index (in [`MqttConfig::brokers`]) of the node the next attempt tries first: the last
    /// one that accepted a connection.
    preferred: Arc<AtomicUsize>,
}

impl MqttTransport {
    /// A transport with `config`.
    pub fn new(config: MqttConfig) -> Self {
        Self {
            config,
            refused_before: Arc::new(AtomicBool::new(false)),
            preferred: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    /// Index (in [`MqttConfig::brokers`]) of the node the next attempt tries first: the one
    /// that accepted the last connection, `0` until one did.
    pub fn preferred_broker(&self) -> usize {
        self.preferred.load(Ordering::Relaxed)
    }

    fn options(
        &self,
        identity: &Identity,
        token: &str,
        presence: Option<&str>,
        (host, port): (&str, u16),
    ) -> MqttOptions {
        let c = &self.config;
        let mut options = MqttOptions::new(
            topics::client_id(&identity.user, &identity.device),
            host,
            port,
        );
        let max = c.max_packet_size.max(DEFAULT_MAX_PACKET_SIZE);
        options
            .set_keep_alive(c.keep_alive.max(Duration::from_secs(1)))
            .set_clean_session(false)
            .set_credentials(identity.user.as_str(), token)
            .set_max_packet_size(max, max);
        if let Some(topic) = presence {
            options.set_last_will(LastWill::new(
                topic,
                topics::PRESENCE_OFFLINE,
                QoS::AtLeastOnce,
                true,
            ));
        }
        if let Some(hook) = &c.hook {
            hook(&mut options);
        }
        options
    }

    fn refused(
        code: ConnectReturnCode,
        identity: &Identity,
        refused_before: &AtomicBool,
        auth_rejection: AuthRejection,
    ) -> ConnectError {
        match code {
            ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized => {
                let again = refused_before.swap(true, Ordering::Relaxed);
                let reason = format!(
                    "the broker refused the credentials of user {:?} ({code:?}): check the \
                     token and the broker's user database",
                    identity.user.as_str()
                );
                match auth_rejection {
                    AuthRejection::RefreshTokenOnce if !again => {
                        tracing::info!(%reason, "credentials refused; fetching a fresh token");
                        ConnectError::TokenExpired
                    }
                    _ => ConnectError::Unauthorized(reason),
                }
            }
            ConnectReturnCode::BadClientId => ConnectError::Unauthorized(format!(
                "the broker refused the client id {:?}: shorten the user and device ids or \
                 raise the broker's client id limit",
                topics::client_id(&identity.user, &identity.device)
            )),
            ConnectReturnCode::RefusedProtocolVersion => ConnectError::Unauthorized(
                "the broker does not accept MQTT 3.1.1 connections".into(),
            ),
            other => {
                ConnectError::Transient(format!("the broker refused the connection: {other:?}"))
            }
        }
    }
}

/// Maps an event-loop failure during an attempt to a retryable error.
fn transient(stage: &str, err: &ConnectionError) -> ConnectError {
    ConnectError::Transient(format!("MQTT {stage} failed: {err}"))
}

impl Transport for MqttTransport {
    type Link = MqttLink;

    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl std::future::Future<Output = Result<MqttLink, ConnectError>> + Send + 'static {
        let prepared = self.prepare(identity, token);
        let refused_before = Arc::clone(&self.refused_before);
        let preferred = Arc::clone(&self.preferred);
        let auth_rejection = self.config.auth_rejection;
        let queue = self.config.queue_capacity.max(1);
        let timeout = self.config.network_timeout.as_secs().max(1);
        let identity = identity.clone();
        async move {
            let Prepared {
                filter,
                presence,
                nodes,
            } = prepared?;
            let mut failures = Vec::new();
            for (index, options) in nodes {
                let node = format!(
                    "{}:{}",
                    options.broker_address().0,
                    options.broker_address().1
                );
                let (client, mut eventloop) = AsyncClient::new(options, queue);
                let mut network = NetworkOptions::new();
                network.set_connection_timeout(timeout);
                // Signaling is small request/response messages: without TCP_NODELAY, Nagle's
                // algorithm and the peer's delayed ACK add ~40 ms to an exchange (measured by
                // the bench harness).
                network.set_tcp_nodelay(true);
                eventloop.set_network_options(network);
                let attempt = Attempt {
                    client,
                    eventloop,
                    filter: &filter,
                    presence: &presence,
                    identity: &identity,
                    refused_before: &refused_before,
                    auth_rejection,
                };
                match attempt.run().await {
                    Ok(link) => {
                        preferred.store(index, Ordering::Relaxed);
                        return Ok(link);
                    }
                    // This node is down or failed half-way: try the next one.
                    Err(ConnectError::Transient(reason)) => {
                        tracing::debug!(%node, %reason, "MQTT node failed; trying the next");
                        failures.push(format!("{node}: {reason}"));
                    }
                    // Credentials, ids and ACLs are the same on every node.
                    Err(other) => return Err(other),
                }
            }
            Err(ConnectError::Transient(failures.join("; ")))
        }
    }
}

/// One node's part of a connection attempt.
struct Attempt<'a> {
    client: AsyncClient,
    eventloop: EventLoop,
    filter: &'a str,
    presence: &'a Option<String>,
    identity: &'a Identity,
    refused_before: &'a AtomicBool,
    auth_rejection: AuthRejection,
}

impl Attempt<'_> {
    /// CONNECT, SUBSCRIBE, presence; the link once the subscription is acknowledged.
    async fn run(self) -> Result<MqttLink, ConnectError> {
        let Attempt {
            client,
            mut eventloop,
            filter,
            presence,
            identity,
            refused_before,
            auth_rejection,
        } = self;
        // CONNECT → CONNACK.
        let session_present = match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => ack.session_present,
            Ok(other) => {
                return Err(ConnectError::Transient(format!(
                    "expected CONNACK, got {other:?}"
                )))
            }
            Err(ConnectionError::ConnectionRefused(code)) => {
                return Err(MqttTransport::refused(
                    code,
                    identity,
                    refused_before,
                    auth_rejection,
                ))
            }
            Err(err) => return Err(transient("connect", &err)),
        };

        // SUBSCRIBE → SUBACK. Envelopes queued for the persistent session may arrive first.
        let early = subscribe(&client, &mut eventloop, filter).await?;
        refused_before.store(false, Ordering::Relaxed);

        if let Some(topic) = presence {
            if let Err(err) = client.try_publish(
                topic.clone(),
                QoS::AtLeastOnce,
                true,
                topics::PRESENCE_ONLINE,
            ) {
                tracing::debug!(%err, "presence not published");
            }
        }
        tracing::debug!(
            user = %identity.user,
            device = %identity.device,
            session_present,
            queued = early.len(),
            "MQTT link up"
        );
        let inbound = Inbound::new(identity.clone());
        Ok(MqttLink::start(
            client,
            eventloop,
            inbound,
            early,
            identity,
            presence.clone(),
        ))
    }
}

/// What an attempt needs before it talks to the broker.
struct Prepared {
    filter: String,
    presence: Option<String>,
    /// The options for each node, in the order to try them, with the node's index.
    nodes: Vec<(usize, MqttOptions)>,
}

impl MqttTransport {
    /// Checks the ids and builds the options for one attempt (nothing is sent yet).
    fn prepare(&self, identity: &Identity, token: &str) -> Result<Prepared, ConnectError> {
        // Ids that cannot be topic levels can never work: permanent.
        self.config
            .check_identity(identity)
            .map_err(|e| ConnectError::Unauthorized(e.to_string()))?;
        let filter = topics::inbox_filter(&identity.user)
            .map_err(|e| ConnectError::Unauthorized(e.to_string()))?;
        let presence = if self.config.presence {
            Some(
                topics::presence_topic(&identity.user, &identity.device)
                    .map_err(|e| ConnectError::Unauthorized(e.to_string()))?,
            )
        } else {
            None
        };
        let brokers: Vec<(&str, u16)> = self.config.brokers().collect();
        let nodes = node_order(brokers.len(), self.preferred_broker())
            .map(|i| {
                let options = self.options(identity, token, presence.as_deref(), brokers[i]);
                (i, options)
            })
            .collect();
        Ok(Prepared {
            filter,
            presence,
            nodes,
        })
    }
}

/// The order an attempt tries `n` nodes in: `preferred` first, then the ones after it, wrapping.
fn node_order(n: usize, preferred: usize) -> impl Iterator<Item = usize> {
    let start = if n == 0 { 0 } else { preferred % n };
    (0..n).map(move |k| (start + k) % n)
}

/// Subscribes to `filter` and polls until its SUBACK; returns the publishes that arrived first.
async fn subscribe(
    client: &AsyncClient,
    eventloop: &mut EventLoop,
    filter: &str,
) -> Result<Vec<Publish>, ConnectError> {
    client
        .try_subscribe(filter, QoS::AtLeastOnce)
        .map_err(|e| ConnectError::Transient(format!("MQTT subscribe not queued: {e}")))?;
    let mut early = Vec::new();
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    return Err(ConnectError::Unauthorized(format!(
                        "the broker refused the subscription to {filter:?}: its ACL must let \
                         user %u read callapi/v1/inbox/%u/#"
                    )));
                }
                return Ok(early);
            }
            Ok(Event::Incoming(Packet::Publish(p))) => early.push(p),
            Ok(_) => {}
            Err(err) => return Err(transient("subscribe", &err)),
        }
    }
}

// Compile-time check that the packet limit leaves room for the largest envelope.
const _: () = assert!(DEFAULT_MAX_PACKET_SIZE > MAX_ENVELOPE_BYTES + 4096);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use callapi_core::protocol::{DeviceId, UserId};

    fn identity(user: &str, device: &str) -> Identity {
        Identity {
            user: UserId::new(user).unwrap(),
            device: DeviceId::new(device).unwrap(),
        }
    }

    #[test]
    fn nodes_are_tried_from_the_preferred_one_round() {
        assert_eq!(node_order(3, 0).collect::<Vec<_>>(), [0, 1, 2]);
        assert_eq!(node_order(3, 1).collect::<Vec<_>>(), [1, 2, 0]);
        assert_eq!(node_order(3, 5).collect::<Vec<_>>(), [2, 0, 1]);
        assert_eq!(node_order(1, 0).collect::<Vec<_>>(), [0]);
        let config = MqttConfig::new("a", 1)
            .with_broker("b", 2)
            .with_broker("c", 3);
        assert_eq!(
            config.brokers().collect::<Vec<_>>(),
            [("a", 1), ("b", 2), ("c", 3)]
        );
    }

    #[tokio::test]
    async fn ids_the_rules_refuse_fail_permanently_before_any_connection() {
        // Port 9 on loopback: nothing may be contacted, and nothing is.
        let mut nats =
            MqttTransport::new(MqttConfig::new("127.0.0.1", 9).with_topic_rules(TopicRules::Nats));
        for (user, device) in [("alice.smith", "a1"), ("alice", "tab 2"), ("*", "a1")] {
            let who = identity(user, device);
            assert!(matches!(
                nats.config().check_identity(&who),
                Err(TopicError::NotNatsSafe { .. })
            ));
            let err = nats.connect(&who, "token").await.unwrap_err();
            let ConnectError::Unauthorized(text) = err else {
                panic!("{user}/{device}: expected a permanent refusal, got {err:?}");
            };
            assert!(text.contains("NATS"), "{text}");
        }
        // The same ids are fine for MQTT itself.
        let mqtt = MqttConfig::new("127.0.0.1", 9);
        assert!(mqtt
            .check_identity(&identity("alice.smith", "tab 2"))
            .is_ok());
    }

    #[test]
    fn only_presence_is_retained_and_the_last_will_is_on_presence() {
        let transport = MqttTransport::new(MqttConfig::new("h", 1));
        let who = identity("bob", "b1");
        let presence = topics::presence_topic(&who.user, &who.device).unwrap();
        let options = transport.options(&who, "t", Some(&presence), ("h", 1));
        let will = options.last_will().expect("a last will");
        assert_eq!(will.topic, "callapi/v1/presence/bob/b1");
        assert!(!will.topic.starts_with(topics::INBOX_PREFIX));
        // Presence off: no will at all.
        let options = transport.options(&who, "t", None, ("h", 1));
        assert!(options.last_will().is_none());
    }

    #[cfg(feature = "embedded-broker")]
    #[tokio::test]
    async fn an_attempt_moves_on_to_the_next_node_when_one_is_down() {
        let broker = crate::EmbeddedBroker::start().unwrap();
        // A loopback port with nobody listening: refused at once.
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = MqttConfig::new("127.0.0.1", dead).with_broker("127.0.0.1", broker.port());
        let mut transport = MqttTransport::new(config);
        assert_eq!(transport.preferred_broker(), 0);
        let who = identity("alice", "a1");
        let link = tokio::time::timeout(Duration::from_secs(10), transport.connect(&who, "t"))
            .await
            .expect("an attempt bounded in time")
            .expect("the second node accepts");
        assert_eq!(transport.preferred_broker(), 1);
        drop(link);
        // The next attempt starts with the node that worked.
        let prepared = transport.prepare(&who, "t").unwrap();
        let order: Vec<usize> = prepared.nodes.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [1, 0]);

        // Every node down: one transient error naming each node.
        let mut none =
            MqttTransport::new(MqttConfig::new("127.0.0.1", dead).with_broker("127.0.0.1", dead));
        let err = none.connect(&who, "t").await.unwrap_err();
        let ConnectError::Transient(text) = err else {
            panic!("expected a transient error, got {err:?}");
        };
        assert_eq!(
            text.matches(&format!("127.0.0.1:{dead}")).count(),
            2,
            "{text}"
        );
    }
}
