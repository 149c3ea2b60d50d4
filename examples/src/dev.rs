//! Development helpers: tokens minted locally, fast-starting supervisor seeds, secrets.

use std::time::Duration;

use callapi_core::connection::schedule::{reconnect_attempt_at, token_attempt_at};
use callapi_core::connection::{TokenError, TokenProvider};
use callapi_signal_ws::auth::{AuthError, Claims, TokenAuthority};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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

/// When the first connection attempt of a `Supervisor` seeded with `seed` starts: its reconnect
/// jitter plus its first token fetch's jitter (the order in which the supervisor draws them).
fn first_attempt_delay(seed: u64) -> Duration {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let first = reconnect_attempt_at(0, &mut rng);
    let fetch = token_attempt_at(0, &mut rng).unwrap_or_default();
    first + fetch
}

/// A random supervisor seed whose first connection attempt starts within `within` of the start
/// (the core jitters every attempt by 0–2 s, the first one too, plus 0–2 s for the token fetch).
///
/// The jitter spreads a fleet of clients that start together; a demo or a command-line tool
/// run by hand has no fleet, so it picks a seed that connects at once. Apps leave the seed
/// unset. `within` is raised to at least 50 ms so that a seed always exists.
///
/// ```
/// use std::time::Duration;
/// use callapi_examples::quick_start_seed;
/// let a = quick_start_seed(Duration::from_millis(200));
/// let b = quick_start_seed(Duration::from_millis(200));
/// assert_ne!(a, b); // random, so two devices still differ
/// ```
pub fn quick_start_seed(within: Duration) -> u64 {
    let within = within.max(Duration::from_millis(50));
    let mut rng = rand::thread_rng();
    loop {
        let seed: u64 = rng.gen();
        if first_attempt_delay(seed) < within {
            return seed;
        }
    }
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
    fn quick_seeds_start_within_the_bound() {
        for _ in 0..20 {
            let seed = quick_start_seed(Duration::from_millis(150));
            assert!(
                first_attempt_delay(seed) < Duration::from_millis(150),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn random_secrets_differ_and_are_hex() {
        let (a, b) = (random_secret(), random_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert!(a.iter().all(u8::is_ascii_hexdigit));
    }
}
