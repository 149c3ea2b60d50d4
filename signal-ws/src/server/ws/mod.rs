//! The server's side of WebSocket (RFC 6455) after the upgrade, shaped for many idle
//! connections: [`FrameReader`] turns bytes into messages with no I/O and keeps nothing between
//! frames, and [`WsSocket`] reads on readiness into a buffer shared by its worker thread. An
//! idle connection holds no read or write buffer.

mod reader;
mod socket;

pub(crate) use reader::{FrameReader, Incoming, ReadError};
pub(crate) use socket::{SocketError, WsSocket};
