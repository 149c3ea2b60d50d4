//! Errors returned by API calls.

use crate::call::CommandError;
use crate::media::MediaError;
use crate::signal::SignalError;

/// Why an API call was refused or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallApiError {
    /// The call machine refused the command; the inner error says why and what to do.
    #[error(transparent)]
    Command(#[from] CommandError),
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
