//! Staying connected (`docs/ARCHITECTURE.md`, "Staying connected"), written once for every backend: a backend implements
//! [`Transport`] (one connection attempt); [`Supervisor`], a thin shell around the sans-IO
//! [`ConnectionMachine`], turns it into a
//! [`SignalClient`](crate::signal::SignalClient) with tokens, reconnection, renewal, pause and
//! resume.

mod credentials;
mod machine;
pub mod schedule;
mod supervisor;
mod transport;

pub use credentials::{Credentials, TokenError, TokenFuture, TokenProvider};
pub use machine::{ConnCommand, ConnConfig, ConnInput, ConnOutput, ConnectionMachine};
pub use supervisor::{Supervisor, SupervisorConfig};
pub use transport::{ConnectError, Identity, LinkEvent, Renewal, Transport, TransportLink};
