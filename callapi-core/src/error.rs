//! Errors returned by API calls.

use crate::call::CallState;
use crate::media::MediaError;
use crate::signal::SignalError;

/// Why an API call was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallApiError {
    /// `prepare` was not called yet; call it before placing or receiving calls.
    #[error("not prepared: call prepare() first")]
    NotPrepared,
    /// A call is in progress; end it before doing this.
    #[error("busy: a call is in progress (state {0:?}); end it first")]
    Busy(CallState),
    /// The action does not fit the current state (for example `accept` without a ringing call).
    #[error("cannot {action} in state {state:?}")]
    InvalidState {
        /// The refused action.
        action: &'static str,
        /// The state at the time.
        state: CallState,
    },
    /// An argument is not valid; the text says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The signaling backend failed.
    #[error(transparent)]
    Signal(#[from] SignalError),
    /// The media engine failed.
    #[error(transparent)]
    Media(#[from] MediaError),
    /// The `CallApi` instance was shut down (`deinitialize`) or its task ended.
    #[error("callapi instance is shut down")]
    Shutdown,
}
