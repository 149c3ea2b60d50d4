//! Identifiers carried in envelopes: users, devices, calls and messages.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Longest accepted user or device id, in bytes.
pub const MAX_ID_LEN: usize = 256;

/// Why a user or device id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is the empty string; give every user and device a non-empty id.
    #[error("id is empty: users and devices need a non-empty id")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes; use a shorter id.
    #[error("id is {len} bytes long, more than the {max} allowed")]
    TooLong {
        /// Length of the refused id in bytes.
        len: usize,
        /// The limit, [`MAX_ID_LEN`].
        max: usize,
    },
    /// The id contains a control character (such as NUL or a newline).
    #[error("id contains a control character")]
    ControlChar,
}

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            len: s.len(),
            max: MAX_ID_LEN,
        });
    }
    if s.chars().any(char::is_control) {
        return Err(IdError::ControlChar);
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an id: non-empty, at most [`MAX_ID_LEN`] bytes, no control characters.
            pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
                let id = id.into();
                check_id(&id)?;
                Ok(Self(id))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// A user: the address a call is placed to. One user may be online on several devices.
    UserId
);
string_id!(
    /// One device (app instance) of a user.
    DeviceId
);

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh random (v4) id.
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            /// An id made from 16 random bytes (for seeded, reproducible ids).
            pub fn from_random_bytes(bytes: [u8; 16]) -> Self {
                Self(uuid::Builder::from_random_bytes(bytes).into_uuid())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }
    };
}

uuid_id!(
    /// Identifies one call (one invitation and everything that follows it). Ordered, so that glare
    /// can be resolved by the smaller id.
    CallId
);
uuid_id!(
    /// Identifies one envelope; acknowledgements and de-duplication refer to it.
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_validated() {
        assert_eq!(UserId::new(""), Err(IdError::Empty));
        assert!(matches!(
            UserId::new("x".repeat(300)),
            Err(IdError::TooLong { len: 300, .. })
        ));
        assert_eq!(DeviceId::new("a\0b"), Err(IdError::ControlChar));
        assert_eq!(
            UserId::new("alice").map(|u| u.to_string()),
            Ok("alice".into())
        );
    }
}
