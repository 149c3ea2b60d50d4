//! JSON encoding and hardened decoding of envelopes.
//!
//! Decoding never panics: every malformed input maps to a [`DecodeError`].

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::envelope::{
    Body, CallType, Elsewhere, Envelope, Extension, MAX_ENVELOPE_BYTES, PROTOCOL_VERSION,
};
use super::ids::{CallId, DeviceId, MessageId, UserId};
use super::member::Member;

/// Why bytes could not be decoded into an [`Envelope`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The message is larger than 64 KiB; senders must split or shrink it.
    #[error("envelope is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Size of the refused input.
        size: usize,
        /// The limit, [`MAX_ENVELOPE_BYTES`].
        max: usize,
    },
    /// The bytes are not valid UTF-8 text.
    #[error("envelope is not valid UTF-8")]
    NotUtf8,
    /// The JSON nests arrays and objects 128 levels deep or more (the envelope object is level 1).
    #[error("envelope JSON is nested too deeply (128 levels or more)")]
    TooDeep,
    /// Not a JSON object, or a field has the wrong type.
    #[error("malformed envelope: {0}")]
    Malformed(String),
    /// The sender speaks a newer major protocol version than this library.
    #[error(
        "envelope protocol version {v} is newer than the supported {supported}; upgrade callapi"
    )]
    UnsupportedVersion {
        /// The envelope's `v`.
        v: u64,
        /// [`PROTOCOL_VERSION`].
        supported: u32,
    },
    /// The `kind` is not one this version knows.
    #[error("unknown envelope kind {0:?}")]
    UnknownKind(String),
    /// The envelope has a member named `type`. That name is reserved: on the WebSocket
    /// transport a frame with `type` is a control frame from the server, so an envelope that
    /// carried one could pass for a control frame at its receiver. Senders must not add it.
    #[error(
        "an envelope must not have a member named {member:?} (reserved for transport control \
         frames); remove it"
    )]
    ReservedMember {
        /// The reserved member's name (`"type"`).
        member: &'static str,
    },
    /// A field this kind requires is absent.
    #[error("envelope of kind {kind:?} lacks the required field {field:?}")]
    MissingField {
        /// The envelope's kind (or `"envelope"` for common fields).
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
}

/// Why an envelope could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The encoded envelope would exceed 64 KiB; shrink the payload, message or extension.
    #[error("encoded envelope is {size} bytes, more than the {max} allowed")]
    TooLarge {
        /// Encoded size.
        size: usize,
        /// The limit, [`MAX_ENVELOPE_BYTES`].
        max: usize,
    },
    /// A payload or extension nests so deeply that the envelope would reach 128 levels, which
    /// receivers refuse; flatten the data.
    #[error("encoded envelope nests 128 levels or more; receivers refuse it")]
    TooDeep,
    /// Serialization failed (should not happen for well-formed values).
    #[error("envelope could not be serialized: {0}")]
    Serialize(String),
}

/// The flat wire shape shared by encoding and decoding.
#[derive(Serialize, Deserialize, Default)]
struct Wire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    v: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ts: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from_device: Option<DeviceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_device: Option<DeviceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_id: Option<CallId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    lifetime_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    call_type: Option<CallType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    extension: Option<Extension>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    busy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    elsewhere: Option<Elsewhere>,
    // `deserialize_with` keeps an explicit `"payload": null` (a valid payload) apart from a missing one.
    #[serde(
        default,
        deserialize_with = "present_value",
        skip_serializing_if = "Option::is_none"
    )]
    payload: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digits: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ack_id: Option<MessageId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    members: Option<Vec<Member>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ended: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    group: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to_seq: Option<u64>,
    /// Whether the input has a `type` member (any value, `null` included): reserved, refused.
    #[serde(
        default,
        rename = "type",
        deserialize_with = "present_any",
        skip_serializing
    )]
    reserved_type: bool,
}

/// Reads only `v`, for classifying envelopes whose other fields do not parse.
#[derive(Deserialize)]
struct VersionProbe {
    v: Option<serde_json::Number>,
}

/// Nesting level (the envelope object is level 1) at which input is refused. serde_json's own
/// recursion limit refuses the same level, so both paths agree.
const DEPTH_LIMIT: usize = 128;

/// `true` for a member that is present, whatever its value.
pub(super) fn present_any<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

fn present_value<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// Whether JSON text reaches [`DEPTH_LIMIT`] levels of arrays/objects anywhere, including in
/// fields the decoder would otherwise skip. Only brackets outside strings count; invalid JSON is
/// left for the parser to refuse.
pub(super) fn too_deep(bytes: &[u8]) -> bool {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth >= DEPTH_LIMIT {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// A `v` larger than this library's, read from any JSON number (also ones too large for `u64`).
fn newer_version(v: &serde_json::Number) -> Option<u64> {
    let v = match v.as_u64() {
        Some(v) => v,
        None => {
            let f = v.as_f64()?;
            if !(f.is_finite() && f.fract() == 0.0 && f > 0.0) {
                return None;
            }
            // Saturates at u64::MAX for integers beyond its range.
            f as u64
        }
    };
    (v > u64::from(PROTOCOL_VERSION)).then_some(v)
}

fn to_wire(env: &Envelope) -> Wire {
    let mut w = Wire {
        v: Some(u64::from(env.v)),
        id: Some(env.id),
        ts: Some(env.ts),
        from: Some(env.from.clone()),
        from_device: Some(env.from_device.clone()),
        to: Some(env.to.clone()),
        to_device: env.to_device.clone(),
        call_id: Some(env.call_id),
        kind: Some(env.body.kind().to_owned()),
        lifetime_ms: Some(env.lifetime_ms),
        ..Wire::default()
    };
    match &env.body {
        Body::Invite {
            room_id,
            call_type,
            extension,
            members,
        } => {
            w.room_id = Some(room_id.clone());
            w.call_type = Some(*call_type);
            if !extension.is_empty() {
                w.extension = Some(extension.clone());
            }
            w.members = members.clone();
        }
        // `group` only when set, so a 1:1 call's envelopes are byte for byte what they were.
        Body::Ringing { group, seq } | Body::Accept { group, seq } => {
            w.group = group.then_some(true);
            w.seq = *seq;
        }
        Body::Confirm { members } => w.members = members.clone(),
        Body::Members { members, ended } => {
            w.members = Some(members.clone());
            w.ended = ended.then_some(true);
        }
        Body::Reject { reason, busy, seq } => {
            w.reason = reason.clone();
            w.busy = Some(*busy);
            w.seq = *seq;
        }
        Body::Cancel {
            reason,
            timeout,
            elsewhere,
            seq,
        } => {
            w.reason = reason.clone();
            w.timeout = Some(*timeout);
            w.elsewhere = *elsewhere;
            w.seq = *seq;
        }
        Body::Hangup { reason } => w.reason = reason.clone(),
        Body::Media {
            payload,
            seq,
            to_seq,
        } => {
            w.payload = Some(payload.clone());
            w.seq = *seq;
            w.to_seq = *to_seq;
        }
        Body::Message { data } => w.data = Some(data.clone()),
        Body::Dtmf { digits } => w.digits = Some(digits.clone()),
        Body::Ack { ack_id } => w.ack_id = Some(*ack_id),
    }
    w
}

/// Encodes an envelope as one JSON object.
pub fn encode(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let bytes =
        serde_json::to_vec(&to_wire(env)).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EncodeError::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    if too_deep(&bytes) {
        return Err(EncodeError::TooDeep);
    }
    Ok(bytes)
}

/// Encodes an envelope as a JSON string.
pub fn encode_string(env: &Envelope) -> Result<String, EncodeError> {
    // serde_json only produces UTF-8.
    encode(env).map(|b| String::from_utf8_lossy(&b).into_owned())
}

pub(super) fn classify(err: &serde_json::Error, text: &str) -> DecodeError {
    let msg = err.to_string();
    if msg.contains("recursion limit") {
        return DecodeError::TooDeep;
    }
    // A newer major version may change field types: report the version, not the type error.
    if let Ok(VersionProbe { v: Some(v) }) = serde_json::from_str::<VersionProbe>(text) {
        if let Some(v) = newer_version(&v) {
            return DecodeError::UnsupportedVersion {
                v,
                supported: PROTOCOL_VERSION,
            };
        }
    }
    DecodeError::Malformed(msg)
}

/// Decodes one envelope, validating its size, encoding, version, kind and fields.
pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| DecodeError::NotUtf8)?;
    decode_str(text)
}

/// Decodes one envelope from text; see [`decode`].
pub fn decode_str(text: &str) -> Result<Envelope, DecodeError> {
    if text.len() > MAX_ENVELOPE_BYTES {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    if too_deep(text.as_bytes()) {
        return Err(DecodeError::TooDeep);
    }
    // serde would also read a struct from a JSON array; the envelope must be an object.
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(DecodeError::Malformed(
            "an envelope must be a JSON object".into(),
        ));
    }
    let w: Wire = serde_json::from_str(text).map_err(|e| classify(&e, text))?;
    from_wire(w)
}

/// A roster as received: at most one record per user.
fn roster(members: Vec<Member>) -> Result<Vec<Member>, DecodeError> {
    let mut users: Vec<&UserId> = members.iter().map(|m| &m.user).collect();
    users.sort_unstable_by(|a, b| a.as_str().cmp(b.as_str()));
    if let Some(pair) = users.windows(2).find(|p| p[0] == p[1]) {
        return Err(DecodeError::Malformed(format!(
            "roster has two records for user {:?}",
            pair[0].as_str()
        )));
    }
    Ok(members)
}

pub(super) fn need<T>(
    v: Option<T>,
    kind: &'static str,
    field: &'static str,
) -> Result<T, DecodeError> {
    v.ok_or(DecodeError::MissingField { kind, field })
}

fn from_wire(w: Wire) -> Result<Envelope, DecodeError> {
    const E: &str = "envelope";
    let v = need(w.v, E, "v")?;
    if v > u64::from(PROTOCOL_VERSION) {
        return Err(DecodeError::UnsupportedVersion {
            v,
            supported: PROTOCOL_VERSION,
        });
    }
    if v == 0 {
        return Err(DecodeError::Malformed(
            "protocol version 0 does not exist".into(),
        ));
    }
    let kind = need(w.kind, E, "kind")?;
    let body = match kind.as_str() {
        "invite" => Body::Invite {
            room_id: need(w.room_id, "invite", "room_id")?,
            call_type: need(w.call_type, "invite", "call_type")?,
            extension: w.extension.unwrap_or_default(),
            members: w.members.map(roster).transpose()?,
        },
        "ringing" => Body::Ringing {
            group: w.group.unwrap_or(false),
            seq: w.seq,
        },
        "accept" => Body::Accept {
            group: w.group.unwrap_or(false),
            seq: w.seq,
        },
        "confirm" => Body::Confirm {
            members: w.members.map(roster).transpose()?,
        },
        "reject" => Body::Reject {
            reason: w.reason,
            busy: w.busy.unwrap_or(false),
            seq: w.seq,
        },
        "cancel" => Body::Cancel {
            reason: w.reason,
            timeout: w.timeout.unwrap_or(false),
            elsewhere: w.elsewhere,
            seq: w.seq,
        },
        "hangup" => Body::Hangup { reason: w.reason },
        "media" => Body::Media {
            payload: need(w.payload, "media", "payload")?,
            seq: w.seq,
            to_seq: w.to_seq,
        },
        "message" => Body::Message {
            data: need(w.data, "message", "data")?,
        },
        "dtmf" => Body::Dtmf {
            digits: need(w.digits, "dtmf", "digits")?,
        },
        "ack" => Body::Ack {
            ack_id: need(w.ack_id, "ack", "ack_id")?,
        },
        "members" => Body::Members {
            members: roster(need(w.members, "members", "members")?)?,
            ended: w.ended.unwrap_or(false),
        },
        _ => return Err(DecodeError::UnknownKind(kind)),
    };
    let envelope = Envelope {
        // `v` is at most PROTOCOL_VERSION here, so it fits.
        v: u32::try_from(v).unwrap_or(PROTOCOL_VERSION),
        id: need(w.id, E, "id")?,
        ts: need(w.ts, E, "ts")?,
        from: need(w.from, E, "from")?,
        from_device: need(w.from_device, E, "from_device")?,
        to: need(w.to, E, "to")?,
        to_device: w.to_device,
        call_id: need(w.call_id, E, "call_id")?,
        lifetime_ms: need(w.lifetime_ms, E, "lifetime_ms")?,
        body,
    };
    // Checked last, so that only input that is otherwise a whole envelope is reported as one
    // carrying the reserved member (a transport's control frames fail earlier checks).
    if w.reserved_type {
        return Err(DecodeError::ReservedMember { member: "type" });
    }
    Ok(envelope)
}
