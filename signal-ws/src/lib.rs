//! # callapi-signal-ws
//!
//! WebSocket signaling for callapi: a production signaling server and a client
//! [`Transport`](callapi_core::connection::Transport).
//!
//! * [`server`]: `GET /v1/signal` upgrades to WebSocket after checking a JWT
//!   ([`auth`]); the server checks every envelope's sender against the token, fans envelopes out
//!   to every device of `to`, keeps them for offline users (and calls a
//!   [`PushNotifier`](server::PushNotifier) for invites), pings, warns before token expiry and
//!   accepts renewed tokens in-band, enforces limits, serves `/healthz` and Prometheus
//!   `/metrics`, optionally over TLS, and shuts down gracefully. The binary
//!   `callapi-signal-server` runs it (`serve`) and mints development tokens (`token`).
//! * [`client`]: [`WsTransport`] for the core's `Supervisor`
//!   (tokens, reconnection, renewal), `ws://` or `wss://` (rustls);
//!   [`WsSignalClient::connect`](client::WsSignalClient::connect) does both in one call.
//! * [`frames`]: the control frames and close codes, as specified in `docs/PROTOCOL.md`
//!   ("WebSocket transport"), so a client in another language can be written from the spec.
//!
//! # Example
//!
//! A server on a free port, and two devices talking through it:
//!
//! ```
//! use std::time::Duration;
//! use callapi_core::connection::{Identity, LinkEvent, Transport, TransportLink};
//! use callapi_core::protocol::{Body, CallId, DeviceId, Envelope, MessageId, UserId};
//! use callapi_signal_ws::auth::Claims;
//! use callapi_signal_ws::client::WsTransport;
//! use callapi_signal_ws::server::{ServerConfig, SignalServer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = SignalServer::start(ServerConfig::new("127.0.0.1:0".parse()?, b"secret".to_vec())).await?;
//! let hour = Duration::from_secs(3600);
//! let mut transport = WsTransport::new(&server.url())?;
//!
//! let alice = Identity { user: UserId::new("alice")?, device: DeviceId::new("a1")? };
//! let bob = Identity { user: UserId::new("bob")?, device: DeviceId::new("b1")? };
//! let alice_token = server.authority().mint(&Claims::new("alice", hour))?;
//! let bob_token = server.authority().mint(&Claims::new("bob", hour))?;
//! let mut a = transport.connect(&alice, &alice_token).await?;
//! let mut b = transport.connect(&bob, &bob_token).await?;
//!
//! a.send(Envelope {
//!     v: 1,
//!     id: MessageId::new_v4(),
//!     ts: 1_732_350_000_000,
//!     from: alice.user.clone(),
//!     from_device: alice.device.clone(),
//!     to: bob.user.clone(),
//!     to_device: None,
//!     call_id: CallId::new_v4(),
//!     lifetime_ms: u64::MAX / 2,
//!     body: Body::Message { data: "hello".into() },
//! }).await?;
//! match b.next_event().await {
//!     Some(LinkEvent::Message(env)) => assert_eq!(env.body, Body::Message { data: "hello".into() }),
//!     other => panic!("unexpected {other:?}"),
//! }
//! a.close().await;
//! b.close().await;
//! server.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! With the core's `CallApi`, use a supervised client instead:
//! `CallApi::new(config, WsSignalClient::connect(url, identity, token_provider)?, media)`.
//!
//! # Running a fleet
//!
//! Several servers become one service by sharing routing through a NATS cluster with
//! JetStream on ([`ServerConfig::with_fleet`] and a [`FleetConfig`](server::FleetConfig);
//! `callapi-signal-server serve --nats nats://h1:4222,nats://h2:4222 --node n1`). Without a
//! fleet a server routes alone, exactly as above.
//!
//! * **Topology**: each node keeps its own WebSocket connections; clients connect to any node
//!   and are given every node ([`WsTransport::with_failover`]) or a load balancer. Nodes never
//!   talk to each other except through NATS; clients never talk to NATS.
//! * **Subjects**: a node subscribes to `callapi.fleet.user.<user>` only while it holds one of
//!   that user's devices (no broadcast to every node; ids are escaped into one subject token).
//!   The node an envelope comes in on checks its sender against the token before anything
//!   reaches NATS, delivers it to its own devices of `to`, and publishes it on `to`'s subject.
//!   Only the servers' NATS user may publish or subscribe under `callapi.fleet.>`.
//! * **Offline users**: an envelope no node could deliver is kept in the JetStream stream
//!   `CALLAPI_FLEET_QUEUE` (subject `callapi.fleet.queue.<user>`, replicated
//!   [`FleetConfig::replicas`](server::FleetConfig::replicas) times), bounded by its lifetime and
//!   the offline-queue limits; the node that a device of that user reaches delivers what is
//!   still alive, right after subscribing (a live envelope sent meanwhile can overtake it). The
//!   push for an invite fires once across the fleet (a retransmission is a JetStream duplicate).
//! * **A server node dies** (even `kill -9`): its clients fail over to another node within their
//!   reconnect schedule and their calls go on; what was sent to them meanwhile is in JetStream
//!   and reaches them there. Nothing acknowledged is lost.
//! * **A NATS node dies**: each server's NATS client reconnects to another URL within seconds,
//!   re-subscribes and reads its users' queues again; no device reconnects.
//! * **Limits** stay per connection; the per-user connection limit is counted per node (a
//!   fleet-wide count would put a round trip to shared state in front of every connect).

pub mod auth;
pub mod client;
pub mod frames;
pub mod server;
pub mod tls;

pub use client::{WsSignalClient, WsTransport};
pub use server::{ServerConfig, ServerHandle, SignalServer};
