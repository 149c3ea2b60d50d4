//! Tokens: HS256 JWTs (via `jsonwebtoken`) that name a user, optionally a device, and, for
//! access links, a room.
//!
//! The app's backend mints them with the server's secret (the `callapi-signal-server token`
//! command does the same for development):
//!
//! ```
//! use std::time::Duration;
//! use callapi_signal_ws::auth::{Claims, TokenAuthority};
//!
//! let authority = TokenAuthority::new(b"a-long-random-secret".to_vec())?;
//! let token = authority.mint(&Claims::new("alice", Duration::from_secs(3600)).with_device("a1"))?;
//! let verified = authority.verify(&token)?;
//! assert_eq!(verified.user.as_str(), "alice");
//! assert_eq!(verified.device.as_ref().map(|d| d.as_str()), Some("a1"));
//! # Ok::<(), callapi_signal_ws::auth::AuthError>(())
//! ```

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use callapi_core::protocol::{DeviceId, UserId};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The claims of a callapi token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user (a callapi user id).
    pub sub: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
    /// Issue time, in seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// The only device this token may connect as. Without it, the client names its device in
    /// the `device` query parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    /// Access links: the only room whose calls this token may take part in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Claims {
    /// Claims for `user`, issued now, valid for `ttl` (rounded up to whole seconds).
    pub fn new(user: impl Into<String>, ttl: Duration) -> Self {
        let now = unix_now();
        let ttl_secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
        Self {
            sub: user.into(),
            exp: now.saturating_add(ttl_secs),
            iat: Some(now),
            dev: None,
            room: None,
        }
    }

    /// Restricts the token to one device.
    pub fn with_device(mut self, device: impl Into<String>) -> Self {
        self.dev = Some(device.into());
        self
    }

    /// Makes the token an access link for `room`.
    pub fn with_room(mut self, room: impl Into<String>) -> Self {
        self.room = Some(room.into());
        self
    }

    /// Sets the expiry (seconds since the Unix epoch).
    pub fn expiring_at(mut self, exp: u64) -> Self {
        self.exp = exp;
        self
    }
}

/// Reads a secret from a file, ignoring trailing whitespace (a final newline). An empty secret is
/// refused.
pub fn read_secret_file(path: &std::path::Path) -> Result<Vec<u8>, AuthError> {
    let mut bytes = std::fs::read(path)
        .map_err(|e| AuthError::BadSecret(format!("cannot read {}: {e}", path.display())))?;
    while bytes.last().is_some_and(u8::is_ascii_whitespace) {
        bytes.pop();
    }
    if bytes.is_empty() {
        return Err(AuthError::BadSecret(format!(
            "{} holds no secret",
            path.display()
        )));
    }
    Ok(bytes)
}

/// A token that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The user it names.
    pub user: UserId,
    /// The device it is limited to, if any.
    pub device: Option<DeviceId>,
    /// The room of an access link.
    pub room: Option<String>,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: u64,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No token in the `Authorization: Bearer` header nor in the `token` query parameter.
    #[error("no token: send `Authorization: Bearer <token>` or the `token` query parameter")]
    Missing,
    /// Not a JWT, or its claims are not JSON of the expected shape.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// Not signed with HS256 by this server's secret (wrong secret, tampered, other algorithm).
    #[error("bad token signature: the token was not signed with this server's secret (HS256)")]
    BadSignature,
    /// `exp` has passed: fetch a new token.
    #[error("token expired")]
    Expired,
    /// A claim is missing or invalid (for example `sub` is not a valid user id).
    #[error("invalid token claims: {0}")]
    InvalidClaims(String),
    /// The secret cannot be used (empty).
    #[error("unusable secret: {0}")]
    BadSecret(String),
}

impl AuthError {
    /// A short label for metrics (`missing`, `malformed`, `bad_signature`, `expired`,
    /// `invalid_claims`, `bad_secret`).
    pub fn label(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Malformed(_) => "malformed",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::InvalidClaims(_) => "invalid_claims",
            AuthError::BadSecret(_) => "bad_secret",
        }
    }
}

/// Mints and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct TokenAuthority {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl fmt::Debug for TokenAuthority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenAuthority")
            .field("leeway_secs", &self.validation.leeway)
            .finish_non_exhaustive()
    }
}

impl TokenAuthority {
    /// An authority over `secret` (no leeway on `exp`).
    pub fn new(secret: impl AsRef<[u8]>) -> Result<Self, AuthError> {
        let secret = secret.as_ref();
        if secret.is_empty() {
            return Err(AuthError::BadSecret("the secret is empty".into()));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        })
    }

    /// Accepts tokens up to `leeway` after their `exp` (clock skew between token issuer and
    /// server). Default: none.
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.validation.leeway = leeway.as_secs();
        self
    }

    /// Signs `claims` (HS256).
    pub fn mint(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| AuthError::Malformed(e.to_string()))
    }

    /// Checks the signature, the expiry and the claims.
    pub fn verify(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|e| match e.kind() {
                ErrorKind::InvalidSignature
                | ErrorKind::InvalidAlgorithm
                | ErrorKind::MissingAlgorithm => AuthError::BadSignature,
                ErrorKind::ExpiredSignature => AuthError::Expired,
                ErrorKind::MissingRequiredClaim(c) => {
                    AuthError::InvalidClaims(format!("missing claim `{c}`"))
                }
                ErrorKind::ImmatureSignature => {
                    AuthError::InvalidClaims("token not valid yet (nbf)".into())
                }
                _ => AuthError::Malformed(e.to_string()),
            })?;
        let claims = data.claims;
        let user =
            UserId::new(claims.sub).map_err(|e| AuthError::InvalidClaims(format!("sub: {e}")))?;
        let device = claims
            .dev
            .map(DeviceId::new)
            .transpose()
            .map_err(|e| AuthError::InvalidClaims(format!("dev: {e}")))?;
        if let Some(room) = &claims.room {
            if room.is_empty() {
                return Err(AuthError::InvalidClaims("room is empty".into()));
            }
        }
        Ok(VerifiedToken {
            user,
            device,
            room: claims.room,
            exp: claims.exp,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn refusals_are_classified() {
        let a = TokenAuthority::new(b"secret-a").unwrap();
        let b = TokenAuthority::new(b"secret-b").unwrap();
        let t = a
            .mint(&Claims::new("alice", Duration::from_secs(60)))
            .unwrap();
        assert_eq!(b.verify(&t), Err(AuthError::BadSignature));
        assert!(matches!(a.verify("nonsense"), Err(AuthError::Malformed(_))));
        let old = a
            .mint(&Claims::new("alice", Duration::ZERO).expiring_at(unix_now() - 10))
            .unwrap();
        assert_eq!(a.verify(&old), Err(AuthError::Expired));
        let bad_user = a.mint(&Claims::new("", Duration::from_secs(60))).unwrap();
        assert!(matches!(
            a.verify(&bad_user),
            Err(AuthError::InvalidClaims(_))
        ));
        assert!(TokenAuthority::new(b"").is_err());
    }

    #[test]
    fn access_link_claims_survive() {
        let a = TokenAuthority::new(b"s").unwrap();
        let t = a
            .mint(&Claims::new("guest", Duration::from_secs(60)).with_room("r1"))
            .unwrap();
        let v = a.verify(&t).unwrap();
        assert_eq!(v.room.as_deref(), Some("r1"));
        assert_eq!(v.device, None);
    }
}
