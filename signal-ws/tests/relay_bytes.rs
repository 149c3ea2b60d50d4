//! The server relays the sender's bytes: it reads the routing header only, and a receiver gets
//! exactly the text the sender wrote (member order, spacing, escapes, members it does not know),
//! whose `from`/`from_device` are the identity of the sender's token. Whatever would let a
//! receiver read another sender than the server checked — a forged `from`, a second `from` or
//! `from_device` before or after the real one, one spelled with an escape — is refused with an
//! error frame and never relayed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::protocol::{decode_str, encode_string};
use common::*;

/// The text of an honest message from alice/a1 to bob, with `data` and some spelling a
/// re-encoder would not keep.
fn hand_written(data: &str) -> String {
    let env = message(("alice", "a1"), "bob", data);
    format!(
        "{{ \"kind\" : \"message\", \"data\":\"{data}\\u0021\", \"v\":1,\n  \"id\":\"{}\",\"ts\":{},\
         \"to\":\"bob\",\"from_device\":\"a1\",\"from\":\"alice\",\"call_id\":\"{}\",\
         \"lifetime_ms\":60000, \"x_newer_minor\":{{\"nested\":[1,2.50,null]}} }}",
        env.id, env.ts, env.call_id
    )
}

#[tokio::test]
async fn the_receiver_gets_exactly_the_senders_bytes_with_the_tokens_identity() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let mut bob = raw_user(&server, "bob", "b1").await;

    let sent = hand_written("hi");
    alice.send_text(sent.clone()).await;
    let got = bob.text().await;
    assert_eq!(got, sent, "byte for byte");
    let env = decode_str(&got).unwrap();
    assert_eq!(
        (env.from.as_str(), env.from_device.as_str()),
        ("alice", "a1")
    );

    // An envelope the library encodes is relayed unchanged too.
    let encoded = encode_string(&message(("alice", "a1"), "bob", "encoded")).unwrap();
    alice.send_text(encoded.clone()).await;
    assert_eq!(bob.text().await, encoded);
}

#[tokio::test]
async fn a_forged_sender_in_the_bytes_is_refused_and_never_relayed() {
    let server = start(config()).await;
    let mut alice = raw_user(&server, "alice", "a1").await;
    let mut bob = raw_user(&server, "bob", "b1").await;

    let honest = hand_written("x");
    let forgeries = [
        // Another user, and her own other device.
        (
            honest.replace("\"from\":\"alice\"", "\"from\":\"carol\""),
            "spoofed_from",
        ),
        (
            honest.replace("\"from_device\":\"a1\"", "\"from_device\":\"a2\""),
            "spoofed_from",
        ),
        // A second `from` after the real one (a last-wins reader would see carol) ...
        (
            honest.replacen(" }", ",\"from\":\"carol\" }", 1),
            "invalid_envelope",
        ),
        // ... and before it (a first-wins reader would see carol).
        (
            honest.replacen("{ ", "{\"from\":\"carol\", ", 1),
            "invalid_envelope",
        ),
        // The same, spelled with an escape.
        (
            honest.replacen("{ ", "{\"fr\\u006fm\":\"carol\", ", 1),
            "invalid_envelope",
        ),
        (
            honest.replacen(" }", ",\"from_device\":\"c1\" }", 1),
            "invalid_envelope",
        ),
        // A `type` member could pose as a server control frame.
        (
            honest.replacen("{ ", "{\"type\":\"hello\", ", 1),
            "invalid_envelope",
        ),
    ];
    for (forged, code) in &forgeries {
        alice.send_text(forged.clone()).await;
        let err = alice.expect_error(code).await;
        assert!(err["message"].is_string(), "{err}");
    }
    // Nothing of the forgeries reached bob: the next frame he gets is the honest marker.
    let marker = hand_written("marker");
    alice.send_text(marker.clone()).await;
    assert_eq!(bob.text().await, marker);
    assert_eq!(
        server_metric(
            &server,
            "callapi_signal_envelopes_dropped_total{reason=\"spoofed\"}"
        ),
        2.0
    );
}
