//! Errors of this crate.

use std::fmt;

/// Which identifier a [`TopicError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdRole {
    /// A user id (a level of the inbox topics, and the MQTT user name).
    User,
    /// A device id (a level of the presence topic, and part of the client id).
    Device,
}

impl fmt::Display for IdRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdRole::User => "user",
            IdRole::Device => "device",
        })
    }
}

/// Why an id cannot be an MQTT topic level, or a topic is not one of callapi's.
///
/// Over MQTT, user ids (and device ids) are topic levels: `callapi/v1/inbox/{to}/{from}`. MQTT
/// reserves `/` (the level separator) and the wildcards `+` and `#`, forbids NUL, and an empty
/// level would make the ACL patterns match the wrong topics. Choose ids without them (for
/// example UUIDs or `[A-Za-z0-9._-]` names).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopicError {
    /// The id is empty.
    #[error("{role} id is empty; over MQTT every {role} id must be a non-empty topic level")]
    Empty {
        /// User or device.
        role: IdRole,
    },
    /// The id contains `/`, `+` or `#`, which MQTT reserves.
    #[error(
        "{role} id {id:?} contains {found:?}, which MQTT reserves (level separator or wildcard); \
         use {role} ids without '/', '+' and '#'"
    )]
    Reserved {
        /// User or device.
        role: IdRole,
        /// The refused id.
        id: String,
        /// The reserved character found.
        found: char,
    },
    /// The id contains a NUL character, which MQTT topics cannot carry.
    #[error("{role} id contains a NUL character, which MQTT topics cannot carry")]
    Nul {
        /// User or device.
        role: IdRole,
    },
    /// The id is a valid MQTT topic level, but NATS's MQTT support cannot map it to a NATS
    /// subject token ([`TopicRules::Nats`](crate::TopicRules::Nats)): it contains `.` or
    /// whitespace (NATS refuses the topic), `*` or `>` (NATS wildcards: the generated
    /// permissions would match other users' subjects), or a control character.
    #[error(
        "{role} id {id:?} contains {found:?}, which a NATS server's MQTT support cannot map to a \
         subject token ('.', whitespace and control characters are refused, '*' and '>' are \
         NATS wildcards); on NATS use {role} ids of letters, digits, '-' and '_' (a UUID, say)"
    )]
    NotNatsSafe {
        /// User or device.
        role: IdRole,
        /// The refused id.
        id: String,
        /// The character found.
        found: char,
    },
    /// A topic is not a callapi inbox topic (`callapi/v1/inbox/{to}/{from}`).
    #[error("topic {0:?} is not a callapi inbox topic (callapi/v1/inbox/{{to}}/{{from}})")]
    NotInbox(String),
}

/// Why [`nats_authorization`](crate::nats::nats_authorization) cannot write a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NatsConfigError {
    /// A user id cannot be a NATS subject token (or an MQTT topic level).
    #[error(transparent)]
    Id(#[from] TopicError),
    /// No users: nats-server would then accept anyone.
    #[error("no users given: list every callapi user (with its password) that may connect")]
    NoUsers,
    /// The same user twice: nats-server refuses duplicate users.
    #[error("user {user:?} is listed twice: give each user once, with one password")]
    DuplicateUser {
        /// The repeated user id.
        user: String,
    },
    /// An empty password.
    #[error("user {user:?} has an empty password: give it the token its app's TokenProvider returns (or its bcrypt hash)")]
    EmptyPassword {
        /// The user id.
        user: String,
    },
}

/// Why the embedded broker could not start.
#[cfg(feature = "embedded-broker")]
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No free loopback port could be reserved.
    #[error("no free loopback port for the embedded broker: {0}")]
    NoPort(#[source] std::io::Error),
    /// The broker's thread could not be started.
    #[error("the embedded broker's thread could not start: {0}")]
    Thread(#[source] std::io::Error),
    /// The broker did not accept connections in time (its thread logs why, through `tracing`;
    /// most likely another process took the port between its reservation and the bind: retry).
    #[error("the embedded broker did not listen on {addr} within {waited_ms} ms")]
    NotListening {
        /// The address it should listen on.
        addr: std::net::SocketAddr,
        /// How long `start` waited.
        waited_ms: u64,
    },
}
