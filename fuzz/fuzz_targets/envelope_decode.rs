//! The envelope decoder on arbitrary bytes: `decode` never panics and agrees with
//! `decode_str`; `decode_header` (the server's header-only decode) accepts whatever `decode_str`
//! accepts, with equal header fields, and refuses, with the same error, whatever `decode_str`
//! refuses at the envelope level; whatever decodes re-encodes and decodes to itself.
#![no_main]

use callapi_core::protocol::{
    decode, decode_header, decode_str, encode, DecodeError, EncodeError, MAX_ENVELOPE_BYTES,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let full = decode(data);
    let Ok(text) = std::str::from_utf8(data) else {
        let expected = if data.len() > MAX_ENVELOPE_BYTES {
            DecodeError::TooLarge {
                size: data.len(),
                max: MAX_ENVELOPE_BYTES,
            }
        } else {
            DecodeError::NotUtf8
        };
        assert_eq!(full, Err(expected));
        return;
    };
    let from_str = decode_str(text);
    assert_eq!(full, from_str, "decode and decode_str disagree");
    let header = decode_header(text);
    match (&from_str, &header) {
        (Ok(env), Ok(h)) => {
            assert_eq!(h.id, env.id);
            assert_eq!(h.ts, env.ts);
            assert_eq!(h.from, env.from);
            assert_eq!(h.from_device, env.from_device);
            assert_eq!(h.to, env.to);
            assert_eq!(h.to_device, env.to_device);
            assert_eq!(h.call_id, env.call_id);
            assert_eq!(h.kind, env.body.kind());
            assert_eq!(h.lifetime_ms, env.lifetime_ms);
            let room = match &env.body {
                callapi_core::protocol::Body::Invite { room_id, .. } => Some(room_id.as_str()),
                _ => None,
            };
            assert_eq!(h.room_id.as_deref(), room);
        }
        (Ok(_), Err(e)) => panic!("decode_header refuses ({e}) what decode_str accepts"),
        (Err(e), Ok(_)) => {
            // Only a body-level refusal may pass the header decode.
            assert!(
                !envelope_level(e),
                "decode_str refuses at the envelope level ({e:?}) but decode_header accepts"
            );
            assert!(
                serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok(),
                "decode_header accepts invalid JSON"
            );
        }
        (Err(e), Err(h)) => {
            if envelope_level(e) {
                assert_eq!(h, e, "decode_header and decode_str refuse differently");
            }
        }
    }
    if let Ok(env) = &from_str {
        match encode(env) {
            Ok(bytes) => assert_eq!(decode(&bytes).as_ref(), Ok(env), "round trip"),
            // Re-encoding can be longer than the input (a number spelled `1e5` comes back
            // as `100000.0`) or deeper (never: depth is kept), so only size may refuse.
            Err(EncodeError::TooLarge { .. }) => {}
            Err(e) => panic!("a decoded envelope does not encode: {e}"),
        }
    }
});

/// Refusals that concern the envelope as a whole or its common members: `decode_header` must
/// give the same error. (`Malformed` is left out: a type error in a body member is one too.)
fn envelope_level(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::TooLarge { .. }
            | DecodeError::TooDeep
            | DecodeError::UnsupportedVersion { .. }
            | DecodeError::UnknownKind(_)
            | DecodeError::ReservedMember { .. }
            | DecodeError::MissingField {
                kind: "envelope",
                ..
            }
    )
}
