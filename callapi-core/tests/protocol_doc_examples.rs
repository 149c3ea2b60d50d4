//! Every JSON example in `docs/PROTOCOL.md` is a valid envelope, the examples cover every kind,
//! and each survives an encode/decode round trip.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use callapi_core::protocol::{decode, decode_str, encode, Envelope};

const ALL_KINDS: [&str; 11] = [
    "invite", "ringing", "accept", "confirm", "reject", "cancel", "hangup", "media", "message",
    "dtmf", "ack",
];

fn protocol_md() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// The bodies of all fenced blocks opened with exactly "```json", with the line they start on.
fn json_blocks(md: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in md.lines().enumerate() {
        let trimmed = line.trim();
        match &mut current {
            None => {
                if trimmed == "```json" {
                    current = Some((i + 1, String::new()));
                }
            }
            Some((_, body)) => {
                if trimmed == "```" {
                    blocks.push(current.take().unwrap());
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            }
        }
    }
    assert!(
        current.is_none(),
        "unterminated ```json block in PROTOCOL.md"
    );
    blocks
}

fn decoded_examples() -> Vec<(usize, Envelope)> {
    json_blocks(&protocol_md())
        .into_iter()
        .map(|(line, text)| match decode_str(&text) {
            Ok(env) => (line, env),
            Err(e) => panic!("PROTOCOL.md example at line {line} does not decode: {e}\n{text}"),
        })
        .collect()
}

#[test]
fn every_json_example_decodes() {
    let examples = decoded_examples();
    assert!(
        examples.len() >= ALL_KINDS.len(),
        "expected at least one example per kind, found {} examples",
        examples.len()
    );
}

#[test]
fn examples_cover_every_kind() {
    let seen: BTreeSet<&str> = decoded_examples()
        .iter()
        .map(|(_, env)| env.body.kind())
        .collect();
    for kind in ALL_KINDS {
        assert!(
            seen.contains(kind),
            "PROTOCOL.md has no example of kind {kind:?}"
        );
    }
}

#[test]
fn examples_survive_a_round_trip() {
    for (line, env) in decoded_examples() {
        let bytes = encode(&env).unwrap_or_else(|e| panic!("example at line {line}: {e}"));
        let again = decode(&bytes).unwrap_or_else(|e| panic!("example at line {line}: {e}"));
        assert_eq!(again, env, "example at line {line} changed in a round trip");
    }
}

#[test]
fn examples_are_protocol_version_1() {
    for (line, env) in decoded_examples() {
        assert_eq!(env.v, 1, "example at line {line}");
    }
}

#[test]
fn transports_section_is_present() {
    assert!(
        protocol_md().lines().any(|l| l.trim() == "## Transports"),
        "PROTOCOL.md lacks the \"## Transports\" section"
    );
}
