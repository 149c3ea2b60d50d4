//! What a signaling backend implements: one connection attempt, and the link it yields.

use std::future::Future;

use crate::protocol::{DecodeError, DeviceId, Envelope, UserId};
use crate::signal::SignalError;

/// Why a connection attempt (or an in-band renewal) failed. Drives the supervisor's reaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The service refused these credentials for good (unknown user, revoked, wrong secret).
    /// Permanent: the supervisor stops with `LinkState::Failed`.
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    /// The token has expired. With token credentials the supervisor fetches a new one; an
    /// expired access link is permanent.
    #[error("token expired")]
    TokenExpired,
    /// Anything worth retrying (network down, server restarting, timeout).
    #[error("transient failure: {0}")]
    Transient(String),
}

impl ConnectError {
    /// Whether retrying cannot help.
    pub fn is_permanent(&self) -> bool {
        matches!(self, ConnectError::Unauthorized(_))
    }
}

/// Who is connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
}

/// Something a live link reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum LinkEvent {
    /// An envelope for this device.
    Message(Envelope),
    /// Bytes that are not a valid envelope.
    Invalid(DecodeError),
    /// The service warns that the token expires soon.
    TokenWillExpire,
    /// The link closed. `error` says why when the service said so (a permanent error stops
    /// reconnection); `None` means it just dropped.
    Closed {
        /// The service's reason, if any.
        error: Option<ConnectError>,
    },
}

/// One connection attempt of a backend. The core's
/// [`Supervisor`](super::Supervisor) adds tokens, reconnection and link state on top.
pub trait Transport: Send + 'static {
    /// The live connection.
    type Link: TransportLink;

    /// Connects once as `identity` with `token`.
    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl Future<Output = Result<Self::Link, ConnectError>> + Send;
}

/// A live connection made by a [`Transport`].
pub trait TransportLink: Send + 'static {
    /// Sends one envelope (best effort).
    fn send(&mut self, envelope: Envelope) -> impl Future<Output = Result<(), SignalError>> + Send;

    /// The next event; `None` means the link dropped. Must be cancel-safe.
    fn next_event(&mut self) -> impl Future<Output = Option<LinkEvent>> + Send;

    /// Replaces the token on the live link (in-band renewal).
    fn renew(&mut self, token: &str) -> impl Future<Output = Result<(), ConnectError>> + Send;

    /// Closes the link.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
