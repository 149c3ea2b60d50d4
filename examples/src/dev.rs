//! Development helpers: tokens minted locally, secrets.

use std::time::Duration;

use callapi_core::connection::{TokenError, TokenProvider};
use callapi_signal_ws::auth::{AuthError, Claims, TokenAuthority};
use rand::Rng;

/// Why development tokens cannot be minted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DevTokenError {
    /// The secret is unusable (empty): pass the server's token secret.
    #[error("cannot mint development tokens: {0}")]
    Secret(#[from] AuthError),
}

/// A [`TokenProvider`] that mints a fresh token for `user`, valid for `ttl`, on every fetch,
/// signed with `secret` exactly as `callapi-signal-server` checks it (HS256, claim `sub`).
///
/// For development only: a real app fetches tokens from its backend, which holds the secret.
///
/// ```
/// use std::time::Duration;
/// use callapi_core::connection::TokenProvider;
/// use callapi_examples::dev_tokens;
/// use callapi_signal_ws::auth::TokenAuthority;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tokens = dev_tokens(b"dev-secret".to_vec(), "alice", Duration::from_secs(3600))?;
/// let token = tokens.fetch().await?;
/// let verified = TokenAuthority::new(b"dev-secret".to_vec())?.verify(&token)?;
/// assert_eq!(verified.user.as_str(), "alice");
/// # Ok(())
/// # }
/// ```
pub fn dev_tokens(
    secret: Vec<u8>,
    user: &str,
    ttl: Duration,
) -> Result<impl TokenProvider, DevTokenError> {
    let authority = TokenAuthority::new(secret)?;
    let user = user.to_owned();
    Ok(move || {
        let token = authority
            .mint(&Claims::new(user.clone(), ttl))
            .map_err(|e| TokenError(e.to_string()));
        async move { token }
    })
}

/// A random 32-byte token secret, hex-encoded (for a server started in-process).
pub fn random_secret() -> Vec<u8> {
    let bytes: [u8; 32] = rand::thread_rng().gen();
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_secrets_differ_and_are_hex() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.iter().all(u8::is_ascii_hexdigit));
    }
}
