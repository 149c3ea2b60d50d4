//! Any valid envelope survives `encode` → `decode` unchanged; encoding fails only with `TooLarge`
//! (for envelopes over 64 KiB) or `TooDeep` (payloads nested past the receivers' limit).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callapi_core::protocol::{
    decode, decode_str, encode, encode_string, Body, CallId, CallType, DeviceId, Elsewhere,
    EncodeError, Envelope, Extension, Member, MemberState, MessageId, UserId, MAX_ENVELOPE_BYTES,
    MAX_ID_LEN, PROTOCOL_VERSION,
};
use proptest::prelude::*;
use serde_json::{Map, Value};
use uuid::Uuid;

// ------------------------------------------------------------------ strategies

/// A valid user/device id: 1..=64 non-control characters (at most 256 bytes), or one exactly
/// at the length limit.
fn id_string() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[^\\p{Cc}]{1,64}",
        1 => "[a-z0-9]{1,8}",
        1 => Just("x".repeat(MAX_ID_LEN)),
        1 => Just("é".repeat(MAX_ID_LEN / 2)),
    ]
}

fn user_id() -> impl Strategy<Value = UserId> {
    id_string().prop_map(|s| UserId::new(s).unwrap())
}

fn device_id() -> impl Strategy<Value = DeviceId> {
    id_string().prop_map(|s| DeviceId::new(s).unwrap())
}

fn uuid() -> impl Strategy<Value = Uuid> {
    prop_oneof![
        8 => any::<[u8; 16]>().prop_map(Uuid::from_bytes),
        1 => Just(Uuid::nil()),
        1 => Just(Uuid::max()),
    ]
}

/// Any finite float: the workspace enables serde_json's `float_roundtrip`, so every finite
/// `f64` reads back exactly.
fn exact_float() -> impl Strategy<Value = f64> {
    prop::num::f64::NORMAL | prop::num::f64::SUBNORMAL | prop::num::f64::ZERO
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        exact_float().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ]
}

/// Any JSON value, nested at most a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn extension() -> impl Strategy<Value = Extension> {
    prop::collection::btree_map(any::<String>(), json_value(), 0..5)
        .prop_map(|m| m.into_iter().collect())
}

fn call_type() -> impl Strategy<Value = CallType> {
    prop_oneof![Just(CallType::Video), Just(CallType::Audio)]
}

fn elsewhere() -> impl Strategy<Value = Option<Elsewhere>> {
    prop_oneof![
        Just(None),
        Just(Some(Elsewhere::Answered)),
        Just(Some(Elsewhere::Rejected)),
    ]
}

fn dtmf_digits() -> impl Strategy<Value = String> {
    prop_oneof!["[0-9*#A-D]{1,16}", any::<String>()]
}

fn member_state() -> impl Strategy<Value = MemberState> {
    prop_oneof![
        Just(MemberState::Inviting),
        Just(MemberState::Ringing),
        Just(MemberState::Accepted),
        Just(MemberState::Rejected),
        Just(MemberState::Busy),
        Just(MemberState::Timeout),
        Just(MemberState::Cancelled),
        Just(MemberState::Left),
    ]
}

/// A roster: records of distinct users (the decoder refuses two records for one user).
fn roster() -> impl Strategy<Value = Vec<Member>> {
    prop::collection::btree_map(
        "[a-z]{1,6}",
        (
            member_state(),
            any::<u64>(),
            prop::option::of(device_id()),
            any::<Option<String>>(),
            any::<Option<u64>>(),
        ),
        0..6,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(user, (state, seq, device, reason, until_ms))| Member {
                user: UserId::new(user).unwrap(),
                state,
                seq,
                device,
                reason,
                until_ms,
            })
            .collect()
    })
}

fn body() -> impl Strategy<Value = Body> {
    prop_oneof![
        (
            any::<String>(),
            call_type(),
            extension(),
            prop::option::of(roster())
        )
            .prop_map(|(room_id, call_type, extension, members)| Body::Invite {
                room_id,
                call_type,
                extension,
                members,
            }),
        (any::<bool>(), prop::option::of(0u64..1 << 53))
            .prop_map(|(group, seq)| Body::Ringing { group, seq }),
        (any::<bool>(), prop::option::of(0u64..1 << 53))
            .prop_map(|(group, seq)| Body::Accept { group, seq }),
        prop::option::of(roster()).prop_map(|members| Body::Confirm { members }),
        (roster(), any::<bool>()).prop_map(|(members, ended)| Body::Members { members, ended }),
        (
            any::<Option<String>>(),
            any::<bool>(),
            prop::option::of(0u64..1 << 53)
        )
            .prop_map(|(reason, busy, seq)| Body::Reject { reason, busy, seq }),
        (
            any::<Option<String>>(),
            any::<bool>(),
            elsewhere(),
            prop::option::of(0u64..1 << 53)
        )
            .prop_map(|(reason, timeout, elsewhere, seq)| Body::Cancel {
                reason,
                timeout,
                elsewhere,
                seq,
            }),
        any::<Option<String>>().prop_map(|reason| Body::Hangup { reason }),
        (
            json_value(),
            prop::option::of(0u64..1 << 53),
            prop::option::of(0u64..1 << 53)
        )
            .prop_map(|(payload, seq, to_seq)| Body::Media {
                payload,
                seq,
                to_seq
            }),
        any::<String>().prop_map(|data| Body::Message { data }),
        dtmf_digits().prop_map(|digits| Body::Dtmf { digits }),
        uuid().prop_map(|u| Body::Ack {
            ack_id: MessageId(u)
        }),
    ]
}

fn envelope_with(body: impl Strategy<Value = Body>) -> impl Strategy<Value = Envelope> {
    (
        (uuid(), any::<u64>(), user_id(), device_id()),
        (
            user_id(),
            prop::option::of(device_id()),
            uuid(),
            any::<u64>(),
        ),
        body,
    )
        .prop_map(
            |((id, ts, from, from_device), (to, to_device, call_id, lifetime_ms), body)| Envelope {
                v: PROTOCOL_VERSION,
                id: MessageId(id),
                ts,
                from,
                from_device,
                to,
                to_device,
                call_id: CallId(call_id),
                lifetime_ms,
                body,
            },
        )
}

fn envelope() -> impl Strategy<Value = Envelope> {
    envelope_with(body())
}

/// A string of `len` characters drawn from a mix that needs JSON escaping and multi-byte UTF-8.
fn filler(len: usize, seed: u8) -> String {
    const ALPHABET: [char; 8] = ['a', 'Z', '"', '\\', '\n', '\u{1}', 'é', '🦀'];
    (0..len)
        .map(|i| ALPHABET[(i.wrapping_mul(7) + usize::from(seed)) % ALPHABET.len()])
        .collect()
}

// ------------------------------------------------------------------ properties

proptest! {
    #[test]
    fn any_envelope_round_trips(env in envelope()) {
        match encode(&env) {
            Ok(bytes) => {
                prop_assert!(bytes.len() <= MAX_ENVELOPE_BYTES);
                let back = decode(&bytes);
                prop_assert_eq!(back, Ok(env.clone()));
                let text = encode_string(&env).unwrap();
                prop_assert_eq!(text.as_bytes(), &bytes[..]);
                prop_assert_eq!(decode_str(&text), Ok(env));
            }
            Err(EncodeError::TooLarge { size, max }) => {
                // Only huge inputs may fail: the generated strings are short, so only a
                // large extension or payload can push an envelope past 64 KiB.
                prop_assert_eq!(max, MAX_ENVELOPE_BYTES);
                prop_assert!(size > MAX_ENVELOPE_BYTES);
            }
            Err(other) => prop_assert!(false, "unexpected encode error {:?}", other),
        }
    }

    #[test]
    fn encoding_is_a_json_object_with_the_kind(env in envelope()) {
        let bytes = encode(&env).unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        let obj = value.as_object().unwrap();
        prop_assert_eq!(obj.get("kind").and_then(Value::as_str), Some(env.body.kind()));
        prop_assert_eq!(obj.get("v").and_then(Value::as_u64), Some(u64::from(PROTOCOL_VERSION)));
        prop_assert_eq!(obj.get("ts").and_then(Value::as_u64), Some(env.ts));
        prop_assert_eq!(obj.get("lifetime_ms").and_then(Value::as_u64), Some(env.lifetime_ms));
        prop_assert_eq!(obj.contains_key("to_device"), env.to_device.is_some());
        let id = env.id.to_string();
        prop_assert_eq!(obj.get("id").and_then(Value::as_str), Some(id.as_str()));
    }

    #[test]
    fn canonical_encoding_is_stable(env in envelope()) {
        let once = encode(&env).unwrap();
        let twice = encode(&decode(&once).unwrap()).unwrap();
        prop_assert_eq!(once, twice);
    }

    #[test]
    fn uuids_are_written_lowercase_hyphenated(env in envelope()) {
        let text = encode_string(&env).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        for field in ["id", "call_id"] {
            let s = value[field].as_str().unwrap();
            prop_assert_eq!(s.len(), 36);
            prop_assert_eq!(s, s.to_lowercase());
        }
    }

    #[test]
    fn size_limit_is_exact(
        len in prop_oneof![0usize..70_000, 9_000usize..12_000, 60_000usize..66_000],
        seed in any::<u8>(),
        env in envelope_with(Just(Body::Message { data: String::new() })),
    ) {
        let base = encode(&env).unwrap().len();
        let data = filler(len, seed);
        // Encoded length of the data string without its quotes.
        let escaped = serde_json::to_string(&data).unwrap().len() - 2;
        let expected = base + escaped;
        let env = Envelope { body: Body::Message { data }, ..env };
        match encode(&env) {
            Ok(bytes) => {
                prop_assert!(expected <= MAX_ENVELOPE_BYTES);
                prop_assert_eq!(bytes.len(), expected);
                prop_assert_eq!(decode(&bytes), Ok(env));
            }
            Err(e) => {
                prop_assert!(expected > MAX_ENVELOPE_BYTES, "refused {} bytes: {:?}", expected, e);
                prop_assert_eq!(e, EncodeError::TooLarge { size: expected, max: MAX_ENVELOPE_BYTES });
            }
        }
    }

    #[test]
    fn nesting_limit_is_enforced_on_encode(depth in 0usize..200, env in envelope_with(Just(Body::Ringing { group: false, seq: None }))) {
        let mut payload = Value::Null;
        for _ in 0..depth {
            payload = Value::Array(vec![payload]);
        }
        let env = Envelope { body: Body::media(payload), ..env };
        // The envelope object is level 1, so `depth` arrays reach level 1 + depth; 128 is refused.
        match encode(&env) {
            Ok(bytes) => {
                prop_assert!(depth < 127, "encoded depth {}", depth);
                prop_assert_eq!(decode(&bytes), Ok(env));
            }
            Err(e) => {
                prop_assert!(depth >= 127, "refused depth {}: {:?}", depth, e);
                prop_assert_eq!(e, EncodeError::TooDeep);
            }
        }
    }
}

#[test]
fn media_null_payload_round_trips() {
    let env = Envelope {
        v: PROTOCOL_VERSION,
        id: MessageId(Uuid::nil()),
        ts: 0,
        from: UserId::new("a").unwrap(),
        from_device: DeviceId::new("a1").unwrap(),
        to: UserId::new("b").unwrap(),
        to_device: None,
        call_id: CallId(Uuid::max()),
        lifetime_ms: 0,
        body: Body::media(Value::Null),
    };
    assert_eq!(decode(&encode(&env).unwrap()), Ok(env));
}

#[test]
fn extreme_integers_round_trip() {
    let env = Envelope {
        v: PROTOCOL_VERSION,
        id: MessageId::new_v4(),
        ts: u64::MAX,
        from: UserId::new("a").unwrap(),
        from_device: DeviceId::new("a1").unwrap(),
        to: UserId::new("b").unwrap(),
        to_device: Some(DeviceId::new("b1").unwrap()),
        call_id: CallId::new_v4(),
        lifetime_ms: u64::MAX,
        body: Body::media(serde_json::json!([u64::MAX, i64::MIN, -0.5, 1e300])),
    };
    assert_eq!(decode(&encode(&env).unwrap()), Ok(env));
}
