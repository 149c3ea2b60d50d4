//! The "WebSocket transport" section of `docs/PROTOCOL.md` agrees with the implementation: every
//! `json ws-frame` example parses as a control frame of `callapi_signal_ws::frames`, and the
//! close codes it lists are the ones the crate uses.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callapi_signal_ws::frames::{close_code, ClientFrame, ServerFrame};

fn section() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let md = std::fs::read_to_string(path).unwrap();
    let start = md
        .find("\n## WebSocket transport")
        .expect("PROTOCOL.md has a WebSocket transport section");
    md[start..].to_owned()
}

fn frame_examples(md: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        match &mut current {
            None if line.trim() == "```json ws-frame" => current = Some(String::new()),
            None => {}
            Some(body) if line.trim() == "```" => {
                out.push(std::mem::take(body));
                current = None;
            }
            Some(body) => body.push_str(line),
        }
    }
    out
}

#[test]
fn every_frame_example_parses() {
    let examples = frame_examples(&section());
    assert!(examples.len() >= 6, "{} examples", examples.len());
    let (mut server, mut client) = (0, 0);
    for text in &examples {
        if serde_json::from_str::<ServerFrame>(text).is_ok() {
            server += 1;
        } else if serde_json::from_str::<ClientFrame>(text).is_ok() {
            client += 1;
        } else {
            panic!("not a control frame: {text}");
        }
    }
    assert!(
        server >= 4 && client >= 2,
        "{server} server, {client} client frames"
    );
}

#[test]
fn the_close_code_table_lists_every_code() {
    let md = section();
    for code in [
        close_code::NORMAL,
        close_code::GOING_AWAY,
        close_code::MESSAGE_TOO_BIG,
        close_code::TOKEN_EXPIRED,
        close_code::UNAUTHORIZED,
        close_code::RATE_LIMITED,
        close_code::REPLACED,
        close_code::TOO_MANY_CONNECTIONS,
    ] {
        assert!(
            md.contains(&format!("\n| {code} |")),
            "close code {code} undocumented"
        );
    }
    for code in [
        "spoofed_from",
        "invalid_envelope",
        "too_large",
        "rate_limited",
        "out_of_scope",
        "bad_token",
    ] {
        assert!(
            md.contains(&format!("| `{code}` |")),
            "error code {code} undocumented"
        );
    }
}
