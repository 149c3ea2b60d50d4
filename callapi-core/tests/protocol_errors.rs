//! Each way an envelope can be wrong maps to its own typed `DecodeError` (or `EncodeError`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callapi_core::protocol::{
    decode, decode_str, encode, Body, CallId, DecodeError, DeviceId, EncodeError, Envelope,
    MessageId, UserId, MAX_ENVELOPE_BYTES, PROTOCOL_VERSION,
};
use serde_json::{json, Map, Value};

/// A valid `message` envelope as a JSON object, to be damaged by each test.
fn valid() -> Map<String, Value> {
    json!({
        "v": 1,
        "id": "6f1c9a2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b",
        "ts": 1_732_350_000_000_u64,
        "from": "alice",
        "from_device": "a1",
        "to": "bob",
        "to_device": "b1",
        "call_id": "3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d",
        "kind": "message",
        "lifetime_ms": 60000,
        "data": "hello"
    })
    .as_object()
    .unwrap()
    .clone()
}

fn with(changes: Value) -> Map<String, Value> {
    let mut obj = valid();
    obj.extend(changes.as_object().unwrap().clone());
    obj
}

fn without(field: &str) -> Map<String, Value> {
    let mut obj = valid();
    obj.remove(field);
    obj
}

fn decode_obj(obj: Map<String, Value>) -> Result<Envelope, DecodeError> {
    decode(&serde_json::to_vec(&Value::Object(obj)).unwrap())
}

fn envelope(body: Body) -> Envelope {
    Envelope {
        v: PROTOCOL_VERSION,
        id: MessageId::new_v4(),
        ts: 1,
        from: UserId::new("alice").unwrap(),
        from_device: DeviceId::new("a1").unwrap(),
        to: UserId::new("bob").unwrap(),
        to_device: None,
        call_id: CallId::new_v4(),
        lifetime_ms: 1000,
        body,
    }
}

fn assert_malformed(result: Result<Envelope, DecodeError>) {
    assert!(
        matches!(result, Err(DecodeError::Malformed(_))),
        "expected Malformed, got {result:?}"
    );
}

#[test]
fn the_valid_base_decodes() {
    let env = decode_obj(valid()).unwrap();
    assert_eq!(
        env.body,
        Body::Message {
            data: "hello".into()
        }
    );
}

#[test]
fn unknown_kind_is_unknown_kind() {
    assert_eq!(
        decode_obj(with(json!({"kind": "teleport"}))),
        Err(DecodeError::UnknownKind("teleport".into()))
    );
    // Kinds are case-sensitive.
    assert_eq!(
        decode_obj(with(json!({"kind": "Invite"}))),
        Err(DecodeError::UnknownKind("Invite".into()))
    );
}

#[test]
fn newer_version_is_unsupported_version() {
    assert_eq!(
        decode_obj(with(json!({"v": 2}))),
        Err(DecodeError::UnsupportedVersion { v: 2, supported: 1 })
    );
}

#[test]
fn newer_version_wins_over_changed_field_types() {
    // Version 2 might change a field's type: the version is reported, not the type error.
    assert_eq!(
        decode_obj(with(json!({"v": 2, "ts": "2024-11-23T08:20:00Z"}))),
        Err(DecodeError::UnsupportedVersion { v: 2, supported: 1 })
    );
    assert_eq!(
        decode_obj(with(json!({"v": 2, "from": {"user": "alice"}}))),
        Err(DecodeError::UnsupportedVersion { v: 2, supported: 1 })
    );
}

#[test]
fn newer_version_wins_over_missing_fields_and_unknown_kinds() {
    let mut obj = with(json!({"v": 7, "kind": "conference"}));
    obj.remove("id");
    assert_eq!(
        decode_obj(obj),
        Err(DecodeError::UnsupportedVersion { v: 7, supported: 1 })
    );
}

#[test]
fn huge_versions_are_unsupported() {
    let text = serde_json::to_string(&Value::Object(valid()))
        .unwrap()
        .replacen("\"v\":1", "\"v\":123456789012345678901234567890", 1);
    assert!(matches!(
        decode_str(&text),
        Err(DecodeError::UnsupportedVersion { supported: 1, .. })
    ));
    assert_eq!(
        decode_obj(with(json!({"v": u64::MAX}))),
        Err(DecodeError::UnsupportedVersion {
            v: u64::MAX,
            supported: 1
        })
    );
}

#[test]
fn version_zero_or_not_a_number_is_malformed() {
    assert_malformed(decode_obj(with(json!({"v": 0}))));
    assert_malformed(decode_obj(with(json!({"v": -1}))));
    assert_malformed(decode_obj(with(json!({"v": "1"}))));
}

#[test]
fn missing_common_field_is_missing_field() {
    for field in [
        "v",
        "id",
        "ts",
        "from",
        "from_device",
        "to",
        "call_id",
        "kind",
        "lifetime_ms",
    ] {
        assert_eq!(
            decode_obj(without(field)),
            Err(DecodeError::MissingField {
                kind: "envelope",
                field
            }),
            "without {field}"
        );
    }
}

#[test]
fn missing_kind_field_is_missing_field_with_the_kind() {
    let cases = [
        (
            json!({"kind": "invite", "call_type": "video"}),
            "invite",
            "room_id",
        ),
        (
            json!({"kind": "invite", "room_id": "r"}),
            "invite",
            "call_type",
        ),
        (json!({"kind": "media"}), "media", "payload"),
        (json!({"kind": "dtmf"}), "dtmf", "digits"),
        (json!({"kind": "ack"}), "ack", "ack_id"),
    ];
    for (changes, kind, field) in cases {
        assert_eq!(
            decode_obj(with(changes.clone())),
            Err(DecodeError::MissingField { kind, field }),
            "{changes}"
        );
    }
    assert_eq!(
        decode_obj(without("data")),
        Err(DecodeError::MissingField {
            kind: "message",
            field: "data"
        })
    );
    // `null` for a required field counts as missing.
    assert_eq!(
        decode_obj(with(json!({"data": null}))),
        Err(DecodeError::MissingField {
            kind: "message",
            field: "data"
        })
    );
}

#[test]
fn to_device_is_optional() {
    let env = decode_obj(without("to_device")).unwrap();
    assert_eq!(env.to_device, None);
    let env = decode_obj(with(json!({"to_device": null}))).unwrap();
    assert_eq!(env.to_device, None);
}

#[test]
fn optional_kind_fields_take_their_defaults() {
    let env = decode_obj(with(json!({"kind": "reject"}))).unwrap();
    assert_eq!(
        env.body,
        Body::Reject {
            reason: None,
            busy: false,
            seq: None
        }
    );
    let env = decode_obj(with(json!({"kind": "cancel"}))).unwrap();
    assert_eq!(
        env.body,
        Body::Cancel {
            reason: None,
            timeout: false,
            elsewhere: None,
            seq: None
        }
    );
    let env = decode_obj(with(json!({"kind": "hangup"}))).unwrap();
    assert_eq!(env.body, Body::Hangup { reason: None });
    let env = decode_obj(with(
        json!({"kind": "invite", "room_id": "r", "call_type": "audio"}),
    ))
    .unwrap();
    assert!(matches!(env.body, Body::Invite { extension, .. } if extension.is_empty()));
}

#[test]
fn media_payload_null_is_a_payload() {
    let env = decode_obj(with(json!({"kind": "media", "payload": null}))).unwrap();
    assert_eq!(env.body, Body::media(Value::Null));
}

#[test]
fn wrong_typed_field_is_malformed() {
    let cases = [
        json!({"ts": "soon"}),
        json!({"ts": -1}),
        json!({"ts": 1.5}),
        json!({"lifetime_ms": "15s"}),
        json!({"id": "not-a-uuid"}),
        json!({"id": 42}),
        json!({"call_id": ["3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d"]}),
        json!({"from": 7}),
        json!({"to_device": false}),
        json!({"kind": 3}),
        json!({"data": {"text": "hello"}}),
        json!({"kind": "invite", "room_id": "r", "call_type": "hologram"}),
        json!({"kind": "invite", "room_id": 1, "call_type": "video"}),
        json!({"kind": "invite", "room_id": "r", "call_type": "video", "extension": [1]}),
        json!({"kind": "reject", "busy": "yes"}),
        json!({"kind": "cancel", "elsewhere": "nowhere"}),
        json!({"kind": "cancel", "timeout": 1}),
        json!({"kind": "hangup", "reason": 404}),
        json!({"kind": "dtmf", "digits": 5}),
        json!({"kind": "ack", "ack_id": "x"}),
        // Known fields are type-checked even where the kind does not use them.
        json!({"busy": "yes"}),
    ];
    for changes in cases {
        let result = decode_obj(with(changes.clone()));
        assert!(
            matches!(result, Err(DecodeError::Malformed(_))),
            "{changes}: {result:?}"
        );
    }
}

#[test]
fn not_an_object_is_malformed() {
    for text in [
        "",
        "   ",
        "null",
        "1",
        "\"envelope\"",
        "[]",
        "{",
        "{\"v\":1,}",
        // A struct-shaped array: serde could read this positionally, the protocol does not.
        "[1,\"6f1c9a2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b\",1,\"a\",\"d\",\"b\",null,\"3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d\",\"ringing\",1000]",
    ] {
        assert_malformed(decode_str(text));
    }
}

#[test]
fn duplicate_field_is_malformed() {
    let text = serde_json::to_string(&Value::Object(valid())).unwrap();
    let text = format!("{},\"kind\":\"hangup\"}}", &text[..text.len() - 1]);
    assert_malformed(decode_str(&text));
}

#[test]
fn empty_user_id_is_malformed() {
    assert_malformed(decode_obj(with(json!({"from": ""}))));
    assert_malformed(decode_obj(with(json!({"to": ""}))));
    assert_malformed(decode_obj(with(json!({"from_device": ""}))));
    assert_malformed(decode_obj(with(json!({"to_device": ""}))));
}

#[test]
fn invalid_ids_are_malformed() {
    assert_malformed(decode_obj(with(json!({"from": "x".repeat(257)}))));
    assert_malformed(decode_obj(with(json!({"to": "a\nb"}))));
    assert_malformed(decode_obj(with(json!({"from_device": "a\u{0}"}))));
    assert_malformed(decode_obj(with(json!({"to_device": "\u{85}"}))));
    // Exactly at the limit is fine.
    assert!(decode_obj(with(json!({"from": "x".repeat(256)}))).is_ok());
}

#[test]
fn uuids_are_parsed_not_compared_as_text() {
    let env = decode_obj(with(json!({"call_id": "3F2B8C1E9A4D4C7B8E215D6F7A8B9C0D"}))).unwrap();
    assert_eq!(
        env.call_id.to_string(),
        "3f2b8c1e-9a4d-4c7b-8e21-5d6f7a8b9c0d"
    );
}

#[test]
fn unknown_extra_fields_are_ignored() {
    let base = decode_obj(valid()).unwrap();
    let extended = decode_obj(with(json!({
        "priority": "high",
        "trace": {"span": [1, 2, {"deep": null}]},
        "v1_1_feature": true,
        "room_id": "ignored for a message",
    })))
    .unwrap();
    assert_eq!(extended, base);
}

#[test]
fn oversized_input_is_too_large() {
    let mut obj = valid();
    obj.insert("data".into(), Value::String("x".repeat(MAX_ENVELOPE_BYTES)));
    let bytes = serde_json::to_vec(&Value::Object(obj)).unwrap();
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::TooLarge {
            size: bytes.len(),
            max: MAX_ENVELOPE_BYTES
        })
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(matches!(
        decode_str(&text),
        Err(DecodeError::TooLarge { .. })
    ));
    // Size is checked before anything else, even UTF-8.
    let junk = vec![0xff_u8; MAX_ENVELOPE_BYTES + 1];
    assert_eq!(
        decode(&junk),
        Err(DecodeError::TooLarge {
            size: MAX_ENVELOPE_BYTES + 1,
            max: MAX_ENVELOPE_BYTES
        })
    );
}

#[test]
fn input_of_exactly_the_limit_is_accepted() {
    let base = serde_json::to_vec(&Value::Object(with(json!({"data": ""})))).unwrap();
    let obj = with(json!({"data": "x".repeat(MAX_ENVELOPE_BYTES - base.len())}));
    let bytes = serde_json::to_vec(&Value::Object(obj)).unwrap();
    assert_eq!(bytes.len(), MAX_ENVELOPE_BYTES);
    assert!(decode(&bytes).is_ok());
}

#[test]
fn oversized_envelope_is_too_large_on_encode() {
    let env = envelope(Body::Message {
        data: "x".repeat(MAX_ENVELOPE_BYTES),
    });
    assert!(matches!(
        encode(&env),
        Err(EncodeError::TooLarge { size, max: MAX_ENVELOPE_BYTES }) if size > MAX_ENVELOPE_BYTES
    ));
    let env = envelope(Body::media(Value::Array(vec![
        Value::String(
            "y".repeat(1000)
        );
        70
    ])));
    assert!(matches!(encode(&env), Err(EncodeError::TooLarge { .. })));
}

#[test]
fn non_utf8_is_not_utf8() {
    let mut bytes = serde_json::to_vec(&Value::Object(valid())).unwrap();
    let at = bytes.len() - 3;
    bytes[at] = 0xff;
    assert_eq!(decode(&bytes), Err(DecodeError::NotUtf8));
    assert_eq!(decode(&[0xc3, 0x28]), Err(DecodeError::NotUtf8));
}

#[test]
fn ten_thousand_nested_arrays_are_too_deep() {
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let text = serde_json::to_string(&Value::Object(with(json!({"kind": "media", "payload": 0}))))
        .unwrap()
        .replacen("\"payload\":0", &format!("\"payload\":{deep}"), 1);
    assert_eq!(decode_str(&text), Err(DecodeError::TooDeep));
    assert_eq!(decode(text.as_bytes()), Err(DecodeError::TooDeep));
}

#[test]
fn nesting_limit_is_128_levels() {
    // The envelope object is level 1; `n` nested arrays in the payload reach level 1 + n.
    let at_depth = |n: usize| {
        let text =
            serde_json::to_string(&Value::Object(with(json!({"kind": "media", "payload": 0}))))
                .unwrap();
        let nested = format!("{}0{}", "[".repeat(n), "]".repeat(n));
        decode_str(&text.replacen("\"payload\":0", &format!("\"payload\":{nested}"), 1))
    };
    assert!(at_depth(126).is_ok());
    assert_eq!(at_depth(127), Err(DecodeError::TooDeep));
}

#[test]
fn deep_unknown_fields_are_too_deep_as_well() {
    // The limit holds everywhere, also inside members the decoder would otherwise skip.
    let text = serde_json::to_string(&Value::Object(valid())).unwrap();
    let nested = format!("{}1{}", "{\"a\":".repeat(200), "}".repeat(200));
    let text = format!("{},\"future\":{nested}}}", &text[..text.len() - 1]);
    assert!(serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok());
    assert_eq!(decode_str(&text), Err(DecodeError::TooDeep));
}

#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    let env = decode_obj(with(
        json!({"data": "[".repeat(1000) + &"{\"\\".repeat(500)}),
    ))
    .unwrap();
    assert!(matches!(env.body, Body::Message { data } if data.len() == 2500));
}

#[test]
fn too_deep_payload_is_refused_on_encode() {
    let mut payload = Value::Null;
    for _ in 0..200 {
        payload = Value::Array(vec![payload]);
    }
    assert_eq!(
        encode(&envelope(Body::media(payload))),
        Err(EncodeError::TooDeep)
    );
}

#[test]
fn errors_explain_themselves() {
    let e = decode_obj(with(json!({"v": 2}))).unwrap_err();
    assert!(e.to_string().contains("upgrade"), "{e}");
    let e = decode_obj(without("ts")).unwrap_err();
    assert!(e.to_string().contains("ts"), "{e}");
}

#[test]
fn an_envelope_with_a_type_member_is_refused_whatever_its_value() {
    for value in [
        json!("token_will_expire"),
        json!("hello"),
        json!(null),
        json!(7),
        json!({"nested": true}),
    ] {
        assert_eq!(
            decode_obj(with(json!({ "type": value.clone() }))),
            Err(DecodeError::ReservedMember { member: "type" }),
            "type = {value}"
        );
    }
    // Other unknown members are still ignored (§5), and `type` inside a value is no member of
    // the envelope (a media payload is {"type":"offer",...}).
    assert!(decode_obj(with(json!({"typ": "x", "kind2": 1}))).is_ok());
    let mut media = with(json!({"kind": "media", "payload": {"type": "offer", "sdp": "v=0"}}));
    media.remove("data");
    assert!(decode_obj(media).is_ok());
}

#[test]
fn a_control_frame_is_no_envelope_and_is_not_reported_as_one_with_a_type() {
    // What a transport's control frames look like: they fail as envelopes on their missing
    // members, so a transport can tell them from an envelope that carries `type`.
    let result = decode_str(r#"{"type":"token_will_expire","exp":1732353600}"#);
    assert!(
        matches!(result, Err(DecodeError::MissingField { .. })),
        "{result:?}"
    );
}

#[test]
fn a_members_envelope_needs_its_roster() {
    assert_eq!(
        decode_obj(with(json!({"kind": "members"}))),
        Err(DecodeError::MissingField {
            kind: "members",
            field: "members"
        })
    );
    let env = decode_obj(with(json!({"kind": "members", "members": []}))).unwrap();
    assert_eq!(
        env.body,
        Body::Members {
            members: vec![],
            ended: false
        }
    );
}

#[test]
fn a_roster_with_two_records_for_one_user_is_malformed() {
    let twice = json!([
        {"user": "bob", "state": "inviting", "seq": 1},
        {"user": "bob", "state": "accepted", "seq": 3, "device": "b1"}
    ]);
    assert_malformed(decode_obj(with(
        json!({"kind": "members", "members": twice}),
    )));
    let invite = json!({
        "kind": "invite", "room_id": "r", "call_type": "audio", "members": twice
    });
    assert_malformed(decode_obj(with(invite)));
}

#[test]
fn a_roster_record_needs_user_state_and_seq_of_the_right_types() {
    for bad in [
        json!([{"state": "accepted", "seq": 1}]),
        json!([{"user": "bob", "seq": 1}]),
        json!([{"user": "bob", "state": "accepted"}]),
        json!([{"user": "bob", "state": "dancing", "seq": 1}]),
        json!([{"user": "bob", "state": "accepted", "seq": -1}]),
        json!([{"user": "", "state": "accepted", "seq": 1}]),
        json!({"user": "bob", "state": "accepted", "seq": 1}),
    ] {
        assert_malformed(decode_obj(with(json!({"kind": "members", "members": bad}))));
    }
}

#[test]
fn one_to_one_answers_carry_no_group_member() {
    // `group: false` is the default and is not written, so 1:1 envelopes stay as they were.
    for body in [
        Body::Ringing {
            group: false,
            seq: None,
        },
        Body::Accept {
            group: false,
            seq: None,
        },
        Body::Confirm { members: None },
    ] {
        let text = String::from_utf8(encode(&envelope(body)).unwrap()).unwrap();
        assert!(
            !text.contains("group") && !text.contains("members"),
            "{text}"
        );
    }
}
