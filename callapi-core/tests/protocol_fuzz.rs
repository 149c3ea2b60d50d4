//! The decoder never panics: arbitrary bytes, arbitrary JSON and mutated valid envelopes all
//! yield `Ok` or a typed `DecodeError`, and whatever decodes re-encodes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callapi_core::protocol::{
    decode, decode_str, encode, DecodeError, Envelope, MAX_ENVELOPE_BYTES,
};
use proptest::prelude::*;
use serde_json::{Map, Value};

const FIELDS: [&str; 21] = [
    "v",
    "id",
    "ts",
    "from",
    "from_device",
    "to",
    "to_device",
    "call_id",
    "kind",
    "lifetime_ms",
    "room_id",
    "call_type",
    "extension",
    "reason",
    "busy",
    "timeout",
    "elsewhere",
    "payload",
    "data",
    "digits",
    "ack_id",
];

const KINDS: [&str; 11] = [
    "invite", "ringing", "accept", "confirm", "reject", "cancel", "hangup", "media", "message",
    "dtmf", "ack",
];

/// One valid example of every kind (all optional fields present).
fn valid_objects() -> Vec<Map<String, Value>> {
    let common = serde_json::json!({
        "v": 1,
        "id": "6f1c9a2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b",
        "ts": 1_732_350_000_000_u64,
        "from": "alice",
        "from_device": "a1",
        "to": "bob",
        "to_device": "b1",
        "call_id": "3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d",
        "lifetime_ms": 15000,
    });
    let extras = [
        serde_json::json!({"kind": "invite", "room_id": "r", "call_type": "video", "extension": {"k": [1, {"x": null}]}}),
        serde_json::json!({"kind": "ringing"}),
        serde_json::json!({"kind": "accept"}),
        serde_json::json!({"kind": "confirm"}),
        serde_json::json!({"kind": "reject", "reason": "no", "busy": true}),
        serde_json::json!({"kind": "cancel", "reason": "r", "timeout": true, "elsewhere": "rejected"}),
        serde_json::json!({"kind": "hangup", "reason": "bye"}),
        serde_json::json!({"kind": "media", "payload": {"type": "offer", "sdp": "v=0"}}),
        serde_json::json!({"kind": "message", "data": "hi"}),
        serde_json::json!({"kind": "dtmf", "digits": "1#"}),
        serde_json::json!({"kind": "ack", "ack_id": "0a6e4f1d-7c2b-4d8e-9f3a-1b2c3d4e5f60"}),
    ];
    extras
        .into_iter()
        .map(|extra| {
            let mut obj = common.as_object().unwrap().clone();
            obj.extend(extra.as_object().unwrap().clone());
            obj
        })
        .collect()
}

/// The decoder's verdict must be `Ok` or one of the documented error variants; whatever decodes
/// must encode again and decode to the same envelope.
fn check(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let result = decode(bytes);
    match &result {
        Ok(env) => {
            let again = encode(env).expect("a decoded envelope must re-encode");
            assert_eq!(decode(&again).as_ref(), Ok(env));
        }
        Err(e) => {
            assert!(
                matches!(
                    e,
                    DecodeError::TooLarge { .. }
                        | DecodeError::NotUtf8
                        | DecodeError::TooDeep
                        | DecodeError::Malformed(_)
                        | DecodeError::UnsupportedVersion { .. }
                        | DecodeError::UnknownKind(_)
                        | DecodeError::MissingField { .. }
                ),
                "unexpected error {e:?}"
            );
            // Every error renders a message.
            assert!(!e.to_string().is_empty());
        }
    }
    if let Ok(text) = std::str::from_utf8(bytes) {
        assert_eq!(decode_str(text), result, "decode and decode_str disagree");
    }
    result
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop::sample::select(KINDS.to_vec()).prop_map(Value::from),
        Just(Value::from("6f1c9a2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b")),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(6, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    prop::sample::select(FIELDS.to_vec()).prop_map(String::from),
                    any::<String>()
                ],
                inner,
                0..8
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A way to damage a valid envelope.
#[derive(Debug, Clone)]
enum Mutation {
    Delete(&'static str),
    Set(&'static str, Value),
    Kind(String),
    Version(Value),
    Extra(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let field = prop::sample::select(FIELDS.to_vec());
    prop_oneof![
        field.clone().prop_map(Mutation::Delete),
        (field, json_value()).prop_map(|(f, v)| Mutation::Set(f, v)),
        prop_oneof![
            prop::sample::select(KINDS.to_vec()).prop_map(String::from),
            any::<String>(),
            Just("INVITE".to_owned()),
        ]
        .prop_map(Mutation::Kind),
        prop_oneof![
            any::<u64>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            Just(serde_json::json!(2)),
            Just(serde_json::json!(0)),
            Just(serde_json::json!("1")),
        ]
        .prop_map(Mutation::Version),
        (any::<String>(), json_value()).prop_map(|(k, v)| Mutation::Extra(k, v)),
    ]
}

fn apply(obj: &mut Map<String, Value>, m: Mutation) {
    match m {
        Mutation::Delete(f) => {
            obj.remove(f);
        }
        Mutation::Set(f, v) => {
            obj.insert(f.to_owned(), v);
        }
        Mutation::Kind(k) => {
            obj.insert("kind".into(), Value::String(k));
        }
        Mutation::Version(v) => {
            obj.insert("v".into(), v);
        }
        Mutation::Extra(k, v) => {
            obj.insert(k, v);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes).ok();
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,256}") {
        check(text.as_bytes()).ok();
    }

    #[test]
    fn json_like_text_never_panics(
        parts in prop::collection::vec(
            prop::sample::select(vec![
                "{", "}", "[", "]", ",", ":", "\"", "\\", "\"v\":1", "\"kind\":\"ack\"", "null",
                "1e999", "-0", "\\ud800", "\"a\"", " ", "\u{0}",
            ]),
            0..200,
        )
    ) {
        check(parts.concat().as_bytes()).ok();
    }

    #[test]
    fn arbitrary_json_values_never_panic(value in json_value()) {
        check(&serde_json::to_vec(&value).unwrap()).ok();
    }

    #[test]
    fn mutated_envelopes_never_panic(
        which in 0usize..KINDS.len(),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let mut obj = valid_objects().swap_remove(which);
        for m in mutations {
            apply(&mut obj, m);
        }
        check(&serde_json::to_vec(&Value::Object(obj)).unwrap()).ok();
    }

    #[test]
    fn truncated_and_flipped_envelopes_never_panic(
        which in 0usize..KINDS.len(),
        cut in any::<prop::sample::Index>(),
        flip in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let bytes = serde_json::to_vec(&Value::Object(valid_objects().swap_remove(which))).unwrap();
        let cut_at = cut.index(bytes.len() + 1);
        check(&bytes[..cut_at]).ok();
        let mut flipped = bytes.clone();
        flipped[flip.index(bytes.len())] = byte;
        check(&flipped).ok();
    }

    #[test]
    fn big_versions_are_unsupported_not_panics(
        which in 0usize..KINDS.len(),
        v in 2u64..=u64::MAX,
        damage in prop::option::of(mutation()),
    ) {
        let mut obj = valid_objects().swap_remove(which);
        if let Some(m) = damage {
            // Whatever else a newer version changes, the version is what gets reported.
            if !matches!(m, Mutation::Version(_) | Mutation::Delete("v") | Mutation::Set("v", _)) {
                apply(&mut obj, m);
            }
        }
        obj.insert("v".into(), Value::from(v));
        let result = check(&serde_json::to_vec(&Value::Object(obj)).unwrap());
        prop_assert!(
            matches!(result, Err(DecodeError::UnsupportedVersion { v: got, supported: 1 }) if got == v)
                || matches!(result, Err(DecodeError::TooDeep)),
            "v = {}: {:?}", v, result
        );
    }

    #[test]
    fn deep_nesting_never_panics(depth in 0usize..20_000, open in "[\\[{]", close in any::<bool>()) {
        let body = if open == "[" {
            let mut s = "[".repeat(depth);
            if close { s.push_str(&"]".repeat(depth)); }
            s
        } else {
            let mut s = "{\"a\":".repeat(depth);
            s.push('1');
            if close { s.push_str(&"}".repeat(depth)); }
            s
        };
        let text = format!(
            "{{\"v\":1,\"id\":\"6f1c9a2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b\",\"ts\":1,\"from\":\"a\",\"from_device\":\"d\",\"to\":\"b\",\"call_id\":\"3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d\",\"kind\":\"media\",\"lifetime_ms\":1,\"payload\":{body}}}"
        );
        let result = check(text.as_bytes());
        if text.len() <= MAX_ENVELOPE_BYTES && depth >= 127 {
            prop_assert_eq!(result, Err(DecodeError::TooDeep));
        }
    }
}

#[test]
fn every_valid_object_decodes() {
    for obj in valid_objects() {
        check(&serde_json::to_vec(&Value::Object(obj)).unwrap()).unwrap();
    }
}
