//! # callapi-signal-mqtt
//!
//! callapi signaling over MQTT: a [`Transport`](callapi_core::connection::Transport) over
//! rumqttc that works with any MQTT 3.1.1 broker (Mosquitto, EMQX, VerneMQ, HiveMQ, ...), and
//! an [`EmbeddedBroker`] (rumqttd, in-process) for demos.
//!
//! * **Topics** ([`inbox_topic`], [`inbox_filter`]): a device of `me` subscribes to
//!   `callapi/v1/inbox/{me}/+` and sends to `peer` on `callapi/v1/inbox/{peer}/{me}`. The last
//!   level is the sender, so a broker ACL stops anyone from reading another user's inbox or
//!   writing as someone else, and the receiver drops (and reports) an envelope whose `from`
//!   differs from that level. Envelopes for another device of the same user (`to_device`) are
//!   dropped silently. User and device ids must be valid topic levels ([`check_level`]).
//! * **Delivery**: QoS 1, one envelope per PUBLISH, `retain = false`; persistent sessions
//!   (`clean_session = false`, a stable [`client_id`] per device) so an invite published while
//!   the callee is offline is delivered when it reconnects — the core drops it if its lifetime
//!   has passed by then.
//! * **Credentials**: user name = user id, password = the token from the app's
//!   [`TokenProvider`](callapi_core::connection::TokenProvider); a refusal maps to
//!   `TokenExpired` / `Unauthorized` ([`AuthRejection`]).
//! * **Reconnects** are the core [`Supervisor`](callapi_core::connection::Supervisor)'s: each
//!   attempt is a fresh rumqttc client, and a link whose connection fails reports it and stops
//!   polling (rumqttc would otherwise retry instantly, in a tight loop).
//! * **Presence**: retained `online`/`offline` on `callapi/v1/presence/{user}/{device}`, with
//!   `offline` as the last will.
//!
//! * **NATS**: a nats-server cluster (2.9+, JetStream on) serves the same topics; use
//!   [`TopicRules::Nats`], one [`MqttConfig::with_broker`] per node, and the per-user
//!   permissions of [`nats::nats_authorization`] (the crate's README has the recipe).
//!
//! The wire format is normative in `docs/PROTOCOL.md` ("MQTT transport"); a Mosquitto
//! configuration with the matching ACL ships in `signal-mqtt/mosquitto/`.
//!
//! Topic names are checked before anything goes on the wire:
//!
//! ```
//! use callapi_core::protocol::UserId;
//! use callapi_signal_mqtt::{inbox_filter, inbox_topic, TopicError};
//!
//! let (alice, bob) = (UserId::new("alice")?, UserId::new("bob")?);
//! assert_eq!(inbox_topic(&bob, &alice)?, "callapi/v1/inbox/bob/alice");
//! assert_eq!(inbox_filter(&bob)?, "callapi/v1/inbox/bob/+");
//!
//! // A valid callapi id, but not a valid MQTT topic level:
//! let odd = UserId::new("sales/emea")?;
//! let err = inbox_filter(&odd).unwrap_err();
//! assert!(matches!(err, TopicError::Reserved { found: '/', .. }));
//! println!("{err}"); // user id "sales/emea" contains '/', which MQTT reserves ...
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A device on a broker, supervised by the core:
//!
//! ```no_run
//! use callapi_core::call::{CallConfig, PrepareConfig};
//! use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
//! use callapi_core::media::NoMedia;
//! use callapi_core::protocol::{CallType, DeviceId, UserId};
//! use callapi_core::CallApi;
//! use callapi_signal_mqtt::{MqttConfig, MqttTransport};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let (me, phone) = (UserId::new("alice")?, DeviceId::new("phone")?);
//! let transport = MqttTransport::new(MqttConfig::new("broker.example", 1883));
//! let tokens = || async { Ok::<_, TokenError>("token-from-my-backend".to_owned()) };
//! let identity = Identity { user: me.clone(), device: phone.clone() };
//! let signal = Supervisor::start(transport, SupervisorConfig::new(identity, Credentials::token(tokens)));
//! let api = CallApi::new(CallConfig::new(me, phone), signal, NoMedia);
//! api.prepare(PrepareConfig::new("alice-room")).await?;
//! api.call("bob", CallType::Audio).await?;
//! # Ok(()) }
//! ```

#[cfg(feature = "embedded-broker")]
mod broker;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod link;
pub mod nats;
mod topics;
mod transport;

#[cfg(feature = "embedded-broker")]
pub use broker::EmbeddedBroker;
#[cfg(feature = "embedded-broker")]
pub use error::BrokerError;
pub use error::{IdRole, NatsConfigError, TopicError};
pub use link::MqttLink;
pub use topics::{
    check_level, check_level_for, client_id, inbox_filter, inbox_topic, parse_inbox_topic,
    presence_topic, InboxTopic, TopicRules, INBOX_PREFIX, PRESENCE_OFFLINE, PRESENCE_ONLINE,
    PRESENCE_PREFIX, TOPIC_ROOT,
};
pub use transport::{AuthRejection, MqttConfig, MqttTransport, DEFAULT_MAX_PACKET_SIZE};

/// The MQTT client library this crate uses, for [`MqttConfig::with_options`].
pub use rumqttc;
