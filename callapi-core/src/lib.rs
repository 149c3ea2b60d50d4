//! # callapi-core
//!
//! Call signaling for 1:1 audio/video calls: the wire protocol ([`protocol`]), the sans-IO call
//! state machine ([`call::CallMachine`]) with its reliable-delivery layer, the [`signal`] and
//! [`media`] traits that backends and media stacks implement, and [`CallApi`], the thin async
//! shell an app uses.
//!
//! The machine reads no clock and does no I/O: feed it inputs with the time, take its outputs.
//! Two machines wired by hand place a call:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use callapi_core::call::{CallConfig, CallMachine, CallState, Command, Input, Output, PrepareConfig};
//! use callapi_core::protocol::{CallType, DeviceId, UserId};
//!
//! let t0 = Instant::now();
//! let mut alice = CallMachine::new(
//!     CallConfig::new(UserId::new("alice")?, DeviceId::new("a1")?).with_seed(1), t0, 0);
//! let mut bob = CallMachine::new(
//!     CallConfig::new(UserId::new("bob")?, DeviceId::new("b1")?).with_seed(2), t0, 0);
//! // Without a media engine, a call connects at accept.
//! alice.set_reports_frames(false);
//! bob.set_reports_frames(false);
//! for m in [&mut alice, &mut bob] {
//!     m.handle_command(Command::Prepare(PrepareConfig::new("room")), t0)?;
//! }
//!
//! // Deliver every envelope one machine wants to send to the other, until both are quiet.
//! fn relay(from: &mut CallMachine, to: &mut CallMachine, now: Instant) -> bool {
//!     let mut moved = false;
//!     while let Some(out) = from.poll_output() {
//!         if let Output::Send(env) = out {
//!             to.handle_input(Input::Envelope(env), now);
//!             moved = true;
//!         }
//!     }
//!     moved
//! }
//! fn pump(a: &mut CallMachine, b: &mut CallMachine, now: Instant) {
//!     while relay(a, b, now) | relay(b, a, now) {}
//! }
//!
//! let bob_id = UserId::new("bob")?;
//! let call_id = alice.call(bob_id, CallType::Audio, Default::default(), t0)?;
//! pump(&mut alice, &mut bob, t0);
//! assert_eq!(bob.state(), CallState::Calling); // ringing
//! assert_eq!(bob.call_info().map(|c| c.call_id), Some(call_id));
//!
//! let t1 = t0 + Duration::from_secs(2);
//! bob.handle_command(Command::Accept, t1)?;
//! pump(&mut alice, &mut bob, t1);
//! assert_eq!(alice.state(), CallState::Connected);
//! assert_eq!(bob.state(), CallState::Connected);
//! assert_eq!(alice.call_timings().unwrap().accept, Some(Duration::from_secs(2)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! For an async app, [`CallApi`] owns a machine, a [`signal::SignalClient`] and a
//! [`media::MediaEngine`] in one tokio task and exposes `async fn`s, notification streams and a
//! state `watch`.

pub mod api;
pub mod call;
pub mod connection;
mod deadline;
pub mod error;
pub mod media;
pub mod protocol;
pub mod router;
pub mod signal;

pub use api::{CallApi, NotificationStream};
pub use error::CallApiError;
