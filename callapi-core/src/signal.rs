//! The signaling side: what a backend gives the call machine.
//!
//! A [`SignalClient`] is a best-effort, user-addressed message pipe. The call machine's reliable
//! layer (acks, retransmission, de-duplication) makes delivery reliable over any implementation,
//! so a backend only has to move envelopes.

use std::future::Future;
use std::time::Duration;

use crate::connection::Credentials;
use crate::protocol::{DecodeError, Envelope};

/// State of the link between this device and the signaling service.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkState {
    /// Not connected and not trying to (before connect, or after `disconnect`).
    Disconnected,
    /// The first connection attempt is under way.
    Connecting,
    /// Connected: envelopes flow.
    Connected,
    /// The link dropped (or attempts failed); attempt number `attempt` starts in `next_in`.
    Reconnecting {
        /// 1-based number of the next attempt.
        attempt: u32,
        /// Delay until that attempt.
        next_in: Duration,
    },
    /// Gave up for good (for example the user is not authorized); `reason` says why.
    Failed {
        /// Human-readable cause.
        reason: String,
    },
}

impl LinkState {
    /// Whether envelopes can flow now.
    pub fn is_connected(&self) -> bool {
        matches!(self, LinkState::Connected)
    }
}

/// Something the signaling backend reports.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum SignalEvent {
    /// An envelope arrived for this device.
    Message(Envelope),
    /// Bytes arrived that are not a valid envelope (reported, never fatal).
    Invalid(DecodeError),
    /// The link changed state.
    Link(LinkState),
    /// The credentials expire soon; renew them with [`SignalClient::renew_token`].
    TokenWillExpire,
}

/// Why a backend could not take an envelope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalError {
    /// The client was closed; create a new one.
    #[error("signaling client is closed")]
    Closed,
    /// The link is down right now; the reliable layer retransmits after reconnecting.
    #[error("signaling link is not connected")]
    NotConnected,
    /// The envelope cannot be encoded within the protocol's limits.
    #[error("envelope rejected: {0}")]
    Rejected(String),
    /// Any other transport problem.
    #[error("transport error: {0}")]
    Transport(String),
}

/// A best-effort, user-addressed envelope pipe (a signaling backend).
///
/// `next_event` must be cancel-safe (like `tokio::sync::mpsc::Receiver::recv`): the driver polls
/// it inside `tokio::select!`.
pub trait SignalClient: Send + 'static {
    /// Hands an envelope to the backend for delivery to `to` (all of its devices, or
    /// `to_device` only). Returning `Ok` does not mean delivered.
    fn send(&mut self, envelope: Envelope) -> impl Future<Output = Result<(), SignalError>> + Send;

    /// The next event; `None` once the client is closed for good.
    fn next_event(&mut self) -> impl Future<Output = Option<SignalEvent>> + Send;

    /// Replaces the credentials on the live link (after [`SignalEvent::TokenWillExpire`]).
    fn renew_token(
        &mut self,
        token: String,
    ) -> impl Future<Output = Result<(), SignalError>> + Send;

    /// Closes the link; no more events follow after it.
    fn close(&mut self) -> impl Future<Output = ()> + Send;

    /// Closes the link for now (the app went to the background); [`resume`](Self::resume)
    /// reconnects. Default: nothing.
    fn pause(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Reconnects after [`pause`](Self::pause) or [`disconnect`](Self::disconnect).
    /// Default: nothing.
    fn resume(&mut self) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// Ends the session; with `clear_saved_data`, also forgets tokens. Default: nothing.
    fn disconnect(&mut self, clear_saved_data: bool) -> impl Future<Output = ()> + Send {
        let _ = clear_saved_data;
        async {}
    }

    /// Replaces the credentials. Switching between token and access-link credentials is refused
    /// while a session is live. Default: unsupported.
    fn set_credentials(
        &mut self,
        credentials: Credentials,
    ) -> impl Future<Output = Result<(), SignalError>> + Send {
        let _ = credentials;
        async {
            Err(SignalError::Rejected(
                "this client has fixed credentials".into(),
            ))
        }
    }

    /// The room an access-link session is limited to (`None`: any room).
    fn room_scope(&self) -> Option<String> {
        None
    }

    /// The link's state now, before any [`SignalEvent::Link`] is read. Default: `Connected`
    /// (a pipe the app brought is up from the start); a supervised link reports its own.
    fn link_state(&self) -> LinkState {
        LinkState::Connected
    }
}
