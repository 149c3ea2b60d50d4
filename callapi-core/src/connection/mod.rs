//! Staying connected (`docs/ARCHITECTURE.md`, "Staying connected"), written once for every backend: a backend implements
//! [`Transport`] (one connection attempt); [`Supervisor`] turns it into a
//! [`SignalClient`](crate::signal::SignalClient) with tokens, reconnection, renewal, pause and
//! resume.

mod credentials;
pub mod schedule;
mod supervisor;
mod transport;

pub use credentials::{Credentials, TokenError, TokenFuture, TokenProvider};
pub use supervisor::{Supervisor, SupervisorConfig};
pub use transport::{ConnectError, Identity, LinkEvent, Transport, TransportLink};
