//! The routing header of an envelope: the members a relay reads to route it, decoded without
//! the body ([`decode_header`]).

use std::borrow::Cow;

use serde::Deserialize;

use super::codec::{classify, need, present_any, too_deep, DecodeError};
use super::envelope::{MAX_ENVELOPE_BYTES, PROTOCOL_VERSION};
use super::ids::{CallId, DeviceId, MessageId, UserId};

/// Every envelope kind of this protocol version, as `kind` spells it.
const KINDS: &[&str] = &[
    "invite", "ringing", "accept", "confirm", "reject", "cancel", "hangup", "media", "message",
    "dtmf", "ack", "members",
];

/// The members of an envelope a relay routes by, as [`decode_header`] reads them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutingHeader<'a> {
    /// The envelope's id.
    pub id: MessageId,
    /// Sender timestamp, milliseconds since the Unix epoch.
    pub ts: u64,
    /// The sending user.
    pub from: UserId,
    /// The sending device.
    pub from_device: DeviceId,
    /// The addressee.
    pub to: UserId,
    /// One device of the addressee, or all of them.
    pub to_device: Option<DeviceId>,
    /// The call it belongs to.
    pub call_id: CallId,
    /// The kind, as `kind` spells it (one of this version's kinds).
    pub kind: &'static str,
    /// Lifetime after `ts`, in milliseconds.
    pub lifetime_ms: u64,
    /// An invite's `room_id` (borrowed from the text unless it has escapes); `None` for the
    /// other kinds.
    pub room_id: Option<Cow<'a, str>>,
}

impl RoutingHeader<'_> {
    /// Whether this is an acknowledgement.
    pub fn is_ack(&self) -> bool {
        self.kind == "ack"
    }

    /// Whether this is an invite.
    pub fn is_invite(&self) -> bool {
        self.kind == "invite"
    }

    /// Milliseconds of lifetime left at `now_ms` (0 once expired).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.ts
            .saturating_add(self.lifetime_ms)
            .saturating_sub(now_ms)
    }
}

/// A string borrowed from the text when it has no escapes (serde does not borrow a `Cow`
/// inside an `Option` by itself).
#[derive(Deserialize)]
#[serde(transparent)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

/// The header members as they arrive; every other member is skipped.
#[derive(Deserialize)]
struct HeaderWire<'a> {
    #[serde(default)]
    v: Option<u64>,
    #[serde(default)]
    id: Option<MessageId>,
    #[serde(default)]
    ts: Option<u64>,
    #[serde(default)]
    from: Option<UserId>,
    #[serde(default)]
    from_device: Option<DeviceId>,
    #[serde(default)]
    to: Option<UserId>,
    #[serde(default)]
    to_device: Option<DeviceId>,
    #[serde(default)]
    call_id: Option<CallId>,
    #[serde(default, borrow)]
    kind: Option<Text<'a>>,
    #[serde(default)]
    lifetime_ms: Option<u64>,
    #[serde(default, borrow)]
    room_id: Option<Text<'a>>,
    #[serde(default, rename = "type", deserialize_with = "present_any")]
    reserved_type: bool,
}

/// Decodes the routing header of an envelope without the body.
///
/// A relay (the signaling server) needs the sender, the addressee, the call, the kind, the
/// lifetime and an invite's room; it forwards the sender's bytes unchanged, so it has no use
/// for the body's values (a media payload's SDP, an extension map, a roster). This applies
/// every envelope-level rule of [`decode_str`](super::decode_str) — size, nesting depth, a
/// JSON object, the version, a known kind, the common members present and well formed, no
/// member given twice among those it reads, no reserved `type` member — and skips the body's
/// members without building values for them (their JSON syntax is still checked). It refuses
/// exactly what `decode_str` refuses at the envelope level, with the same [`DecodeError`]; the
/// receiver's decoder checks the body.
pub fn decode_header(text: &str) -> Result<RoutingHeader<'_>, DecodeError> {
    if text.len() > MAX_ENVELOPE_BYTES {
        return Err(DecodeError::TooLarge {
            size: text.len(),
            max: MAX_ENVELOPE_BYTES,
        });
    }
    if too_deep(text.as_bytes()) {
        return Err(DecodeError::TooDeep);
    }
    if !text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{')
    {
        return Err(DecodeError::Malformed(
            "an envelope must be a JSON object".into(),
        ));
    }
    let w: HeaderWire<'_> = serde_json::from_str(text).map_err(|e| classify(&e, text))?;
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
    let Text(spelled) = need(w.kind, E, "kind")?;
    let kind = KINDS
        .iter()
        .copied()
        .find(|k| *k == spelled)
        .ok_or_else(|| DecodeError::UnknownKind(spelled.into_owned()))?;
    let room_id = if kind == "invite" {
        Some(need(w.room_id, "invite", "room_id")?.0)
    } else {
        None
    };
    let header = RoutingHeader {
        id: need(w.id, E, "id")?,
        ts: need(w.ts, E, "ts")?,
        from: need(w.from, E, "from")?,
        from_device: need(w.from_device, E, "from_device")?,
        to: need(w.to, E, "to")?,
        to_device: w.to_device,
        call_id: need(w.call_id, E, "call_id")?,
        kind,
        lifetime_ms: need(w.lifetime_ms, E, "lifetime_ms")?,
        room_id,
    };
    if w.reserved_type {
        return Err(DecodeError::ReservedMember { member: "type" });
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::protocol::{decode_str, encode_string, Body, CallType, Envelope, Extension};

    fn invite() -> Envelope {
        Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::from_random_bytes([7; 16]),
            ts: 1_000,
            from: UserId::new("alice").unwrap(),
            from_device: DeviceId::new("a1").unwrap(),
            to: UserId::new("bob").unwrap(),
            to_device: None,
            call_id: CallId::from_random_bytes([9; 16]),
            lifetime_ms: 30_000,
            body: Body::Invite {
                room_id: "alice-room".into(),
                call_type: CallType::Video,
                extension: Extension::new(),
                members: None,
            },
        }
    }

    #[test]
    fn the_header_is_the_envelopes_routing_members() {
        let env = invite();
        let text = encode_string(&env).unwrap();
        let h = decode_header(&text).unwrap();
        assert_eq!(
            (&h.id, h.ts, &h.from, &h.from_device, &h.to, &h.to_device),
            (
                &env.id,
                env.ts,
                &env.from,
                &env.from_device,
                &env.to,
                &env.to_device
            )
        );
        assert_eq!(
            (h.call_id, h.kind, h.lifetime_ms),
            (env.call_id, "invite", 30_000)
        );
        assert_eq!(h.room_id.as_deref(), Some("alice-room"));
        assert!(matches!(h.room_id, Some(Cow::Borrowed(_))), "no copy");
        assert!(h.is_invite() && !h.is_ack());
        assert_eq!(h.remaining_ms(1_000 + 29_000), 1_000);
        assert_eq!(h.remaining_ms(1_000 + 31_000), 0);
    }

    #[test]
    fn the_body_is_not_read_but_its_syntax_is() {
        let env = invite();
        let mut v: serde_json::Value = serde_json::from_str(&encode_string(&env).unwrap()).unwrap();
        v["kind"] = "media".into();
        v["payload"] = serde_json::json!({"sdp": "v=0", "deep": [[[1]]]});
        let text = v.to_string();
        assert_eq!(decode_header(&text).unwrap().kind, "media");
        assert!(matches!(
            decode_header(&text[..text.len() - 1]),
            Err(DecodeError::Malformed(_))
        ));
    }

    /// Every envelope-level refusal of the full decoder is the header's too, with the same error.
    #[test]
    fn it_refuses_what_the_full_decoder_refuses_at_the_envelope_level() {
        let good = encode_string(&invite()).unwrap();
        let id = invite().id.to_string();
        let cases = [
            "[1,2]".to_owned(),
            "{not json".to_owned(),
            good.replacen("\"v\":1", "\"v\":2", 1),
            good.replacen("\"v\":1", "\"v\":0", 1),
            good.replacen("\"kind\":\"invite\"", "\"kind\":\"teleport\"", 1),
            good.replacen("\"from\":\"alice\"", "\"from\":\"\"", 1),
            good.replacen(",\"from_device\":\"a1\"", "", 1),
            good.replacen(",\"room_id\":\"alice-room\"", "", 1),
            good.replacen(&format!("\"id\":\"{id}\""), "\"id\":\"nope\"", 1),
            good.replacen('{', "{\"type\":null,", 1),
            good.replacen('{', "{\"from\":\"mallory\",", 1),
            good.replacen('}', ",\"from\":\"mallory\"}", 1),
            good.replacen('{', "{\"fr\\u006fm\":\"mallory\",", 1),
            good.replacen('{', "{\"to\":\"carol\",", 1),
            good.replacen('{', "{\"kind\":\"hangup\",", 1),
            format!("{}{}", "[".repeat(130), "]".repeat(130)),
            format!("{{\"x\":\"{}\"}}", "y".repeat(MAX_ENVELOPE_BYTES)),
        ];
        for text in &cases {
            let full = decode_str(text).unwrap_err();
            let header = decode_header(text).unwrap_err();
            assert_eq!(header, full, "{text:.120}");
        }
    }

    #[test]
    fn a_room_with_escapes_is_unescaped() {
        let text = encode_string(&invite())
            .unwrap()
            .replacen("alice-room", "alice\\u002droom", 1);
        let h = decode_header(&text).unwrap();
        assert_eq!(h.room_id.as_deref(), Some("alice-room"));
    }
}
