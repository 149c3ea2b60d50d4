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
    /// The service answered an in-band renewal that [`TransportLink::renew`] left
    /// [`Renewal::Pending`].
    Renewed(Result<(), ConnectError>),
    /// The link closed. `error` says why when the service said so (a permanent error stops
    /// reconnection); `None` means it just dropped.
    Closed {
        /// The service's reason, if any.
        error: Option<ConnectError>,
    },
}

/// What [`TransportLink::renew`] did with a token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Renewal {
    /// Finished: the live link carries the new token (or the backend has no in-band renewal
    /// and uses the token for its next connection), or the renewal failed.
    Done(Result<(), ConnectError>),
    /// Sent: the service answers later, and the link reports the answer as
    /// [`LinkEvent::Renewed`] (a link that gets no answer in time reports a failure).
    Pending,
}

/// One connection attempt of a backend. The core's
/// [`Supervisor`](super::Supervisor) adds tokens, reconnection and link state on top.
///
/// Everything runs in the `CallApi`'s one task: the supervisor polls the attempt beside the
/// call's timers and envelopes, so the attempt is a `'static` future that owns what it needs
/// (clone settings out of `self`, copy `identity` and `token`) and may be dropped unfinished
/// when its 15 s bound passes.
pub trait Transport: Send + 'static {
    /// The live connection.
    type Link: TransportLink;

    /// Connects once as `identity` with `token`.
    fn connect(
        &mut self,
        identity: &Identity,
        token: &str,
    ) -> impl Future<Output = Result<Self::Link, ConnectError>> + Send + 'static;
}

/// A live connection made by a [`Transport`].
///
/// It is driven from the `CallApi`'s task: no method may wait on the network for long.
/// `next_event` is where the link does its I/O (reads, queued writes, keepalive); it is polled
/// whenever the task is idle.
pub trait TransportLink: Send + 'static {
    /// Sends one envelope (best effort). It may wait for room in a bounded write queue, never
    /// for the peer.
    fn send(&mut self, envelope: Envelope) -> impl Future<Output = Result<(), SignalError>> + Send;

    /// The next event; `None` means the link dropped. Must be cancel-safe: the future may be
    /// dropped before it completes (when an envelope or a timer of the call comes first), and
    /// nothing it read may be lost. Keep timers and buffers in the link, not in the future.
    fn next_event(&mut self) -> impl Future<Output = Option<LinkEvent>> + Send;

    /// Hands a fresh token to the live link (in-band renewal) without waiting for the service's
    /// answer. Default: the backend has no in-band renewal, and the supervisor uses the token
    /// for the next connection.
    fn renew(&mut self, token: &str) -> impl Future<Output = Renewal> + Send {
        let _ = token;
        async { Renewal::Done(Ok(())) }
    }

    /// Closes the link (politely, within a bound of the backend's choosing). The supervisor
    /// runs it beside the call's other work, so it may take a moment.
    fn close(&mut self) -> impl Future<Output = ()> + Send;
}
