//! # callapi-examples
//!
//! Runnable programs that show callapi end to end, and the few helpers they share.
//!
//! * `demo` (the README's main command, `cargo run --release -p callapi-examples --bin demo`):
//!   two users call each other through a signaling backend started in-process (WebSocket by
//!   default, `--backend mqtt` or `--backend mock`), printing every transition, the timing
//!   diagnostics and what media flowed.
//! * `softphone`: an interactive command-line phone for a running `callapi-signal-server`
//!   (`call bob`, `accept`, `dtmf 123`, `hangup`, ...); two of them in two terminals call each
//!   other.
//! * `examples/`: `mock_call` (deterministic, on the in-memory network), `custom_transport`
//!   (a backend of your own in under 100 lines), `mqtt_call` (over an embedded MQTT broker).
//!
//! The helpers: [`describe`] renders a notification as one stable, greppable line (what the
//! softphone prints), and [`dev_tokens`] mints development tokens the way
//! `callapi-signal-server` checks them. The programs connect at once rather than after the
//! start-up jitter (which spreads a fleet of clients, and a program started by hand has none):
//! their supervisors use
//! [`RetrySchedule::immediate_first_attempt`](callapi_core::connection::schedule::RetrySchedule::immediate_first_attempt).
//!
//! # Example
//!
//! A call on the in-memory network, printed the way the softphone prints it:
//!
//! ```
//! use callapi_core::call::{CallConfig, CallState, PrepareConfig};
//! use callapi_core::media::NoMedia;
//! use callapi_core::protocol::{CallType, DeviceId, UserId};
//! use callapi_core::CallApi;
//! use callapi_examples::describe;
//! use callapi_signal_mock::{FaultPlan, MockNetwork};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MockNetwork::new(7, FaultPlan::default());
//! let device = |user: &str, dev: &str| -> Result<CallApi, Box<dyn std::error::Error>> {
//!     let (user, dev) = (UserId::new(user)?, DeviceId::new(dev)?);
//!     let signal = net.connect(user.clone(), dev.clone());
//!     Ok(CallApi::new(CallConfig::new(user, dev), signal, NoMedia))
//! };
//! let (alice, bob) = (device("alice", "laptop")?, device("bob", "phone")?);
//! let mut bob_events = bob.subscribe();
//! alice.prepare(PrepareConfig::new("alice-room")).await?;
//! bob.prepare(PrepareConfig::new("bob-room")).await?;
//!
//! alice.call("bob", CallType::Audio).await?;
//! let ringing = loop {
//!     let n = bob_events.recv().await.ok_or("bob stopped")?;
//!     match describe(&n) {
//!         Some(line) if line.starts_with("state Calling") => break line,
//!         _ => continue,
//!     }
//! };
//! assert!(ringing.starts_with("state Calling reason=RemoteAudioCall prev=Prepared"), "{ringing}");
//! assert!(ringing.contains(" remote=alice type=audio"), "{ringing}");
//! bob.accept().await?;
//! let mut alice_state = alice.state_watch();
//! alice_state.wait_for(|s| *s == CallState::Connected).await?;
//! alice.shutdown().await?;
//! bob.shutdown().await?;
//! # Ok(())
//! # }
//! ```

pub mod child;
mod describe;
mod dev;
pub mod procfs;

pub use describe::{call_type_name, describe, link_name};
pub use dev::{dev_tokens, random_secret, DevTokenError};

/// The README's code sample, compiled as a doc test so that it stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
