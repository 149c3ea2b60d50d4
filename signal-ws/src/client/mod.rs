//! The client: [`WsTransport`] (a core `Transport`: one connection attempt) and its
//! [`WsLink`]; [`WsSignalClient`] puts it under the core's `Supervisor`.

mod link;
mod transport;

pub use link::WsLink;
pub use transport::{ClientError, ClientOptions, WsSignalClient, WsTransport};
