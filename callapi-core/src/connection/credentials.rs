//! Credentials: app-provided tokens, or a room-scoped access link.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// Why a token could not be fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("token fetch failed: {0}")]
pub struct TokenError(pub String);

/// A boxed token future.
pub type TokenFuture = Pin<Box<dyn Future<Output = Result<String, TokenError>> + Send>>;

/// Where tokens come from: the app's backend. A closure returning a future works:
///
/// ```
/// use callapi_core::connection::{TokenError, TokenProvider};
/// let provider = || async { Ok::<_, TokenError>("token-from-my-backend".to_owned()) };
/// fn takes(_p: impl TokenProvider) {}
/// takes(provider);
/// ```
pub trait TokenProvider: Send + Sync + 'static {
    /// Fetches a fresh token.
    fn fetch(&self) -> TokenFuture;
}

impl<F, Fut> TokenProvider for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<String, TokenError>> + Send + 'static,
{
    fn fetch(&self) -> TokenFuture {
        Box::pin(self())
    }
}

/// How a device authenticates to the signaling service.
#[derive(Clone)]
#[non_exhaustive]
pub enum Credentials {
    /// Tokens from the app's provider, fetched (and refreshed) as needed.
    Token(Arc<dyn TokenProvider>),
    /// A room-scoped access link: only calls in `room`; the session ends with the call.
    AccessLink {
        /// The link's token.
        token: String,
        /// The only room this session may call in.
        room: String,
    },
}

impl Credentials {
    /// Token credentials from a provider (a closure works).
    pub fn token(provider: impl TokenProvider) -> Self {
        Credentials::Token(Arc::new(provider))
    }

    /// Access-link credentials.
    pub fn access_link(token: impl Into<String>, room: impl Into<String>) -> Self {
        Credentials::AccessLink {
            token: token.into(),
            room: room.into(),
        }
    }

    /// The room an access link is limited to.
    pub fn room_scope(&self) -> Option<&str> {
        match self {
            Credentials::AccessLink { room, .. } => Some(room),
            Credentials::Token(_) => None,
        }
    }

    /// Whether two credentials are of the same kind (token vs access link).
    pub fn same_kind(&self, other: &Credentials) -> bool {
        matches!(
            (self, other),
            (Credentials::Token(_), Credentials::Token(_))
                | (
                    Credentials::AccessLink { .. },
                    Credentials::AccessLink { .. }
                )
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Token(_) => f.write_str("Credentials::Token(..)"),
            Credentials::AccessLink { room, .. } => f
                .debug_struct("Credentials::AccessLink")
                .field("room", room)
                .finish_non_exhaustive(),
        }
    }
}
