//! In-memory signaling for deterministic callapi tests.
//!
//! * [`SimNetwork`]: a sans-IO network stepped by hand around `CallMachine`s. Seeded, no tokio,
//!   no clock: the same seed and inputs replay the same run, and thousands of scenarios run in
//!   seconds.
//! * [`MockNetwork`] and [`MockSignalClient`]: the same idea for async code; each device gets a
//!   [`SignalClient`](callapi_core::signal::SignalClient). Works under tokio's paused clock.
//! * [`FaultPlan`]: seeded drops, duplicates, delays, reordering and [`Partition`]s, shared by
//!   both networks.
//! * [`MockMedia`] and [`MockMediaControl`]: a scriptable fake
//!   [`MediaEngine`](callapi_core::media::MediaEngine).
//! * [`world::SimWorld`]: bare `CallMachine`s wired to a [`SimNetwork`] on a virtual clock.
//! * `netns` (feature `netns`): hosts in Linux network namespaces behind a router whose
//!   nftables rules drop packets at random or cut a path, for tests on real sockets.
//! * `nats_cluster` (feature `nats`): a real nats-server cluster (JetStream, MQTT) of child
//!   processes on loopback ports, with `kill -9` and restart of one node.
//!
//! # Example
//!
//! A lossy, slow network between two users, stepped by hand:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use callapi_core::protocol::{Body, CallId, DeviceId, Envelope, MessageId, UserId};
//! use callapi_signal_mock::{FaultPlan, SimNetwork};
//!
//! let alice = UserId::new("alice").unwrap();
//! let bob = UserId::new("bob").unwrap();
//! let plan = FaultPlan::default()
//!     .with_drop_rate(0.2)
//!     .with_duplicate_rate(0.1)
//!     .with_delay(Duration::from_millis(20), Duration::from_millis(200));
//! plan.validate().unwrap();
//!
//! let start = Instant::now();
//! let mut net = SimNetwork::new(42, plan, start);
//! net.add_device(alice.clone(), DeviceId::new("a1").unwrap());
//! net.add_device(bob.clone(), DeviceId::new("b1").unwrap());
//! net.add_device(bob.clone(), DeviceId::new("b2").unwrap());
//!
//! // Alice sends 100 messages to Bob (both of his devices), one every 10 ms.
//! let call_id = CallId::new_v4();
//! for i in 0..100u64 {
//!     let now = start + Duration::from_millis(10 * i);
//!     net.send(
//!         Envelope {
//!             v: 1,
//!             id: MessageId::new_v4(),
//!             ts: net.unix_ms(now),
//!             from: alice.clone(),
//!             from_device: DeviceId::new("a1").unwrap(),
//!             to: bob.clone(),
//!             to_device: None,
//!             call_id,
//!             lifetime_ms: 15_000,
//!             body: Body::Message { data: i.to_string() },
//!         },
//!         now,
//!     );
//! }
//!
//! // Step time from one delivery to the next, as a simulation loop would.
//! let mut received = 0;
//! while let Some(at) = net.next_delivery_at() {
//!     while let Some(delivery) = net.poll_delivery(at) {
//!         assert_eq!(delivery.user, bob);
//!         received += 1;
//!     }
//! }
//! let stats = net.stats();
//! assert_eq!(stats.sent, 100);
//! assert_eq!(received, stats.delivered);
//! assert_eq!(200 + stats.duplicated, stats.delivered + stats.dropped);
//! ```

pub mod client;
pub mod fault;
pub mod group_flow;
pub mod media;
#[cfg(feature = "nats")]
pub mod nats_cluster;
#[cfg(feature = "netns")]
pub mod netns;
pub mod network;
pub mod sim;
pub mod stats;
pub mod transport;
pub mod wait;
pub mod world;

pub use client::MockSignalClient;
pub use fault::{FaultPlan, FaultPlanError, Partition, REORDER_FLOOR};
pub use group_flow::group_call_through;
pub use media::{MediaCommandRecord, MockMedia, MockMediaBehavior, MockMediaControl};
pub use network::{MockNetwork, MockNetworkError, OFFLINE_LINK_STATE};
pub use sim::{Delivery, SimNetwork, DEFAULT_ANCHOR_MS};
pub use stats::NetworkStats;
pub use transport::{Attempt, MockLink, MockTransport, MockTransportControl, ScriptedConnect};
pub use wait::{alive_tasks, call_through, next_matching, wait_linked, CallFlowError, WaitError};
