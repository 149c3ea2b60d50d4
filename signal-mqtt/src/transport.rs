//! [`MqttTransport`]: one MQTT connection attempt per [`Transport::connect`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::connection::{ConnectError, Identity, Transport};
use callapi_core::protocol::MAX_ENVELOPE_BYTES;
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions,
    NetworkOptions, Packet, Publish, QoS, SubscribeReasonCode,
};

use crate::link::{Inbound, MqttLink};
use crate::topics;

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
    /// Broker host name or address.
    pub host: String,
    /// Broker port.
    pub port: u16,
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
            keep_alive: Duration::from_secs(30),
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            network_timeout: Duration::from_secs(10),
            queue_capacity: 256,
            auth_rejection: AuthRejection::default(),
            presence: true,
            hook: None,
        }
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
}

impl MqttTransport {
    /// A transport with `config`.
    pub fn new(config: MqttConfig) -> Self {
        Self {
            config,
            refused_before: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &MqttConfig {
        &self.config
    }

    fn options(&self, identity: &Identity, token: &str, presence: Option<&str>) -> MqttOptions {
        let c = &self.config;
        let mut options = MqttOptions::new(
            topics::client_id(&identity.user, &identity.device),
            c.host.clone(),
            c.port,
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
        let auth_rejection = self.config.auth_rejection;
        let identity = identity.clone();
        async move {
            let Prepared {
                filter,
                presence,
                mut eventloop,
                client,
            } = prepared?;
            // CONNECT → CONNACK.
            let session_present = match eventloop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => ack.session_present,
                Ok(other) => {
                    return Err(ConnectError::Transient(format!(
                        "expected CONNACK, got {other:?}"
                    )))
                }
                Err(ConnectionError::ConnectionRefused(code)) => {
                    return Err(Self::refused(
                        code,
                        &identity,
                        &refused_before,
                        auth_rejection,
                    ))
                }
                Err(err) => return Err(transient("connect", &err)),
            };

            // SUBSCRIBE → SUBACK. Envelopes queued for the persistent session may arrive first.
            let early = subscribe(&client, &mut eventloop, &filter).await?;
            refused_before.store(false, Ordering::Relaxed);

            if let Some(topic) = &presence {
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
                client, eventloop, inbound, early, &identity, presence,
            ))
        }
    }
}

/// What an attempt needs before it talks to the broker.
struct Prepared {
    filter: String,
    presence: Option<String>,
    eventloop: EventLoop,
    client: AsyncClient,
}

impl MqttTransport {
    /// Checks the ids and builds the client for one attempt (nothing is sent yet).
    fn prepare(&self, identity: &Identity, token: &str) -> Result<Prepared, ConnectError> {
        // Ids that cannot be topic levels can never work: permanent.
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
        let options = self.options(identity, token, presence.as_deref());
        let (client, mut eventloop) = AsyncClient::new(options, self.config.queue_capacity.max(1));
        let mut network = NetworkOptions::new();
        network.set_connection_timeout(self.config.network_timeout.as_secs().max(1));
        // Signaling is small request/response messages: without TCP_NODELAY, Nagle's algorithm
        // and the peer's delayed ACK add ~40 ms to an exchange (measured by the bench harness).
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        Ok(Prepared {
            filter,
            presence,
            eventloop,
            client,
        })
    }
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
