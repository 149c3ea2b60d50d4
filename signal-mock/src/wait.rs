//! [`next_matching`]: waiting, with a bound, for a `CallApi` notification, as tests and tools
//! do.

use std::time::Duration;

use callapi_core::call::Notification;
use callapi_core::NotificationStream;

/// Why [`next_matching`] found nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing matched within the bound.
    #[error("nothing matched within {0:?}")]
    TimedOut(Duration),
    /// The stream ended (the `CallApi` shut down) before anything matched.
    #[error("the notification stream ended")]
    Ended,
}

/// Reads `stream` until a notification satisfies `pred`, for at most `within` (tokio time, so
/// a paused clock applies). Every notification read, the matching one included, is shown to
/// `seen` first, so callers can keep a log to print when the wait fails.
pub async fn next_matching(
    stream: &mut NotificationStream,
    within: Duration,
    mut seen: impl FnMut(&Notification),
    mut pred: impl FnMut(&Notification) -> bool,
) -> Result<Notification, WaitError> {
    let found = tokio::time::timeout(within, async {
        while let Some(n) = stream.recv().await {
            seen(&n);
            if pred(&n) {
                return Ok(n);
            }
        }
        Err(WaitError::Ended)
    })
    .await;
    found.unwrap_or(Err(WaitError::TimedOut(within)))
}
