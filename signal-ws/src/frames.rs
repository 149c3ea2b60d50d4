//! The frames of the WebSocket transport besides envelopes, and its close codes
//! (normative text: `docs/PROTOCOL.md`, section "WebSocket transport").
//!
//! Every WebSocket message is one JSON **text** frame. An envelope is sent as-is; a control frame
//! is a JSON object with a `"type"` member, which envelopes never have.

use serde::{Deserialize, Serialize};

/// Close codes the server sends (and the client understands).
pub mod close_code {
    /// Normal closure (the client or server simply closes).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down: reconnect at once (to another instance).
    pub const GOING_AWAY: u16 = 1001;
    /// The client's bytes broke RFC 6455 (an unmasked or fragmented control frame, reserved
    /// bits or opcodes, a continuation with no message): fix the WebSocket client.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A text message (or close reason) was not valid UTF-8: send envelopes as UTF-8 text.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message was larger than the server's frame limit (64 KiB by default).
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The token expired and no renewed token arrived in time: reconnect with a fresh token.
    pub const TOKEN_EXPIRED: u16 = 4001;
    /// Unauthorized: a renewal token named another identity (user, device or room).
    /// Permanent: do not reconnect with the same credentials.
    pub const UNAUTHORIZED: u16 = 4003;
    /// The connection kept exceeding its message rate after `rate_limited` errors.
    pub const RATE_LIMITED: u16 = 4008;
    /// Another connection of the same user and device replaced this one.
    pub const REPLACED: u16 = 4009;
    /// The client did not read fast enough: more than the server's per-socket write buffer
    /// (`--max-write-buffer-bytes`, 1 MiB by default) waited to be written to it. What was
    /// waiting is dropped; the senders' reliable layers retransmit it after the reconnect.
    pub const SLOW_CONSUMER: u16 = 4010;
    /// The user already has the maximum number of connections.
    pub const TOO_MANY_CONNECTIONS: u16 = 4029;
}

/// The `code` of an `error` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The envelope's `from` / `from_device` are not the identity of the connection's token.
    SpoofedFrom,
    /// The frame is not a valid envelope (bad JSON, missing or mistyped member, binary frame,
    /// unknown control frame).
    InvalidEnvelope,
    /// The envelope exceeds the protocol's 64 KiB limit.
    TooLarge,
    /// The envelope's `v` is a newer major protocol version than this server speaks. Servers
    /// must be upgraded before clients start sending a new major version.
    UnsupportedVersion,
    /// The connection exceeded its message rate; the envelope was dropped.
    RateLimited,
    /// An access-link connection addressed a call outside its room; the envelope was dropped.
    OutOfScope,
    /// A renewal token was refused (bad signature, expired, malformed); the connection keeps
    /// its current token until that one expires.
    BadToken,
    /// A code this version does not know (sent by a newer server).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The wire name (`"spoofed_from"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::SpoofedFrom => "spoofed_from",
            ErrorCode::InvalidEnvelope => "invalid_envelope",
            ErrorCode::TooLarge => "too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::OutOfScope => "out_of_scope",
            ErrorCode::BadToken => "bad_token",
            ErrorCode::Unknown => "unknown",
        }
    }
}

/// A control frame from the server to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ServerFrame {
    /// First frame after the upgrade: the identity the server took from the token. Queued
    /// envelopes follow it.
    Hello {
        /// The user (`sub` of the token).
        user: String,
        /// The device (`dev` of the token, or the `device` query parameter).
        device: String,
        /// The token's expiry, in seconds since the Unix epoch.
        exp: u64,
        /// The room of an access-link token.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        room: Option<String>,
    },
    /// The token expires at `exp`: send a `renew` frame before then.
    TokenWillExpire {
        /// The current token's expiry, in seconds since the Unix epoch.
        exp: u64,
    },
    /// A `renew` was accepted; the connection now expires at `exp`.
    Renewed {
        /// The new expiry, in seconds since the Unix epoch.
        exp: u64,
    },
    /// The answer to a client's `ping` control frame.
    Pong {
        /// The `nonce` of the ping, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
    /// Something the client sent was refused. The connection stays open.
    Error {
        /// What went wrong.
        code: ErrorCode,
        /// A human-readable explanation.
        message: String,
        /// The `id` of the refused envelope, when it could be read.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
    },
}

/// A control frame from a client to the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ClientFrame {
    /// Replaces the connection's token (in-band renewal). Answered with `renewed` or with an
    /// `error` of code `bad_token`; a token for another identity closes with 4003.
    Renew {
        /// The new token (a JWT).
        token: String,
    },
    /// An application-level ping, answered with `pong`, for clients that cannot send WebSocket
    /// pings (browsers) and want to detect a dead link.
    Ping {
        /// Echoed in the `pong` (at most 64 characters are kept).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nonce: Option<String>,
    },
}

/// Reads the `type` and `id` members of a JSON object, ignoring everything else.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Probe {
    #[serde(rename = "type")]
    pub(crate) kind: Option<String>,
    pub(crate) id: Option<serde_json::Value>,
}

impl Probe {
    /// Probes `text`; `None` when it is not a JSON object.
    pub(crate) fn of(text: &str) -> Option<Probe> {
        serde_json::from_str(text).ok()
    }

    /// The `id` member of `text` if it is a string, whatever the other members hold.
    pub(crate) fn id_of(text: &str) -> Option<String> {
        #[derive(Deserialize)]
        struct IdOnly {
            id: Option<serde_json::Value>,
        }
        let probe: IdOnly = serde_json::from_str(text).ok()?;
        Probe {
            kind: None,
            id: probe.id,
        }
        .id_string()
    }

    /// The `id` member if it is a string.
    pub(crate) fn id_string(&self) -> Option<String> {
        match &self.id {
            Some(serde_json::Value::String(s)) => Some(s.chars().take(64).collect()),
            _ => None,
        }
    }
}

/// The HTTP `WWW-Authenticate` value the server sends with a 401 for an expired token.
/// Clients map it to `ConnectError::TokenExpired` (fetch a new token, retry).
pub const WWW_AUTHENTICATE_EXPIRED: &str =
    "Bearer realm=\"callapi\", error=\"invalid_token\", error_description=\"token expired\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_frames_have_the_documented_json() {
        let hello = ServerFrame::Hello {
            user: "alice".into(),
            device: "a1".into(),
            exp: 1_732_353_600,
            room: None,
        };
        assert_eq!(
            serde_json::to_string(&hello).ok().as_deref(),
            Some(r#"{"type":"hello","user":"alice","device":"a1","exp":1732353600}"#)
        );
        let err = ServerFrame::Error {
            code: ErrorCode::SpoofedFrom,
            message: "m".into(),
            id: Some("x".into()),
        };
        assert_eq!(
            serde_json::to_string(&err).ok().as_deref(),
            Some(r#"{"type":"error","code":"spoofed_from","message":"m","id":"x"}"#)
        );
        let unknown: Result<ServerFrame, _> =
            serde_json::from_str(r#"{"type":"error","code":"brand_new","message":"m"}"#);
        assert!(matches!(
            unknown,
            Ok(ServerFrame::Error {
                code: ErrorCode::Unknown,
                ..
            })
        ));
    }

    #[test]
    fn renew_frame_round_trips() {
        let f: Result<ClientFrame, _> = serde_json::from_str(r#"{"type":"renew","token":"t"}"#);
        assert!(matches!(f, Ok(ClientFrame::Renew { token }) if token == "t"));
    }
}
