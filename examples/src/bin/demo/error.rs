//! Why the demo failed.

use callapi_core::CallApiError;

/// A failed demo: the message says what went wrong and where.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The backend or a device could not be set up.
    #[error("setup failed: {0}")]
    Setup(String),
    /// A `CallApi` call was refused.
    #[error("{who}: {what} failed: {source}")]
    Api {
        /// Which side.
        who: String,
        /// What it tried.
        what: &'static str,
        /// The error.
        source: CallApiError,
    },
    /// The call did not go as planned.
    #[error("call {call}: {message}")]
    Call {
        /// 1-based call number.
        call: u32,
        /// What happened instead.
        message: String,
    },
}

/// Attaches who and what to a `CallApi` error.
pub trait ApiContext<T> {
    /// Wraps the error with the side and the action.
    fn ctx(self, who: &str, what: &'static str) -> Result<T, DemoError>;
}

impl<T> ApiContext<T> for Result<T, CallApiError> {
    fn ctx(self, who: &str, what: &'static str) -> Result<T, DemoError> {
        self.map_err(|source| DemoError::Api {
            who: who.to_owned(),
            what,
            source,
        })
    }
}
