//! The server's handling of an authenticated connection's frames, with no sockets.
//!
//! * The WebSocket frame reader fed arbitrary bytes in arbitrary chunks reads the same messages
//!   and stops at the same error as when fed the bytes at once, never holds more than the bytes
//!   it was given, and holds nothing once it has read every frame it was given.
//! * Every text message it reads, and well-formed envelopes built from fuzz data, are handled as
//!   the connection handles them (header decode, sender check, routing through the real hub with
//!   devices registering and leaving, each with an outbox): nothing panics, an envelope whose
//!   sender is not the connection's identity is never relayed, every frame a device's outbox
//!   receives is addressed to that user (and that device, or every device), and the tables'
//!   counts stay within their limits.
#![no_main]

use arbitrary::Arbitrary;
use callapi_core::protocol::{decode_header, encode_string};
use callapi_fuzz::{device, user, ArbEnvelope};
use callapi_signal_ws::server::fuzzing::{FrameReader, Handled, Message, Relay};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Op {
    /// A device registers (or replaces its connection), with an outbox of `budget` * 64 bytes.
    Register {
        user: u8,
        device: u8,
        room: Option<u8>,
        budget: u8,
    },
    /// A registered device leaves.
    Unregister(u8),
    /// A well-formed envelope, sent by this connection (or a spoofed sender).
    Envelope(ArbEnvelope),
    /// Arbitrary text.
    Text(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// The reader's message limit, from 1 byte up.
    max_message: u16,
    /// Raw bytes from the client and where to cut them.
    bytes: Vec<u8>,
    cuts: Vec<u8>,
    /// An access-link connection (room scope).
    room: Option<u8>,
    ops: Vec<Op>,
}

fuzz_target!(|input: Input| {
    let max = usize::from(input.max_message).max(1);
    // The bytes at once.
    let mut whole = FrameReader::new(max);
    let mut all = Vec::new();
    let whole_result = whole.feed(&input.bytes, &mut all);
    // The same bytes in chunks.
    let mut chunked = FrameReader::new(max);
    let mut parts = Vec::new();
    let mut rest: &[u8] = &input.bytes;
    let mut cuts = input.cuts.iter().cycle();
    let mut chunked_result = Ok(());
    let mut fed = 0usize;
    while !rest.is_empty() {
        let n = cuts.next().map_or(rest.len(), |c| usize::from(*c).max(1)).min(rest.len());
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        fed += n;
        chunked_result = chunked.feed(chunk, &mut parts);
        if chunked_result.is_err() {
            break;
        }
        assert!(chunked.held() <= fed * 2 + 64, "holds more than it was given");
    }
    assert_eq!(parts, all, "chunking changed the messages");
    assert_eq!(chunked_result, whole_result, "chunking changed the error");

    let me = user(0);
    let my_device = device(0);
    let scope = input.room.map(|r| format!("room{}", r % 3));
    let mut relay = Relay::new(me.clone(), my_device.clone(), scope);
    let texts = all.iter().filter_map(|m| match m {
        Message::Text(t) => Some(Op::Text(t.clone())),
        _ => None,
    });
    for op in input.ops.into_iter().chain(texts).take(64) {
        match op {
            Op::Register {
                user: u,
                device: d,
                room,
                budget,
            } => {
                let room = room.map(|r| format!("room{}", r % 3));
                relay.register(&user(u), &device(d), room, usize::from(budget) * 64);
            }
            Op::Unregister(i) => relay.unregister(usize::from(i)),
            Op::Envelope(e) => {
                let env = e.build(&[], &[]);
                let Ok(text) = encode_string(&env) else {
                    continue;
                };
                let handled = relay.on_text(&text);
                let mine = env.from == me && env.from_device == my_device;
                match handled {
                    Handled::Spoofed => assert!(!mine, "its own envelope refused as spoofed"),
                    Handled::Routed | Handled::OutOfScope => assert!(mine, "a spoofed envelope routed"),
                    other => panic!("a well-formed envelope handled as {other:?}"),
                }
            }
            Op::Text(text) => {
                let handled = relay.on_text(&text);
                if matches!(handled, Handled::Routed | Handled::OutOfScope) {
                    let h = decode_header(&text).expect("routed, so it decodes");
                    assert!(h.from == me && h.from_device == my_device);
                }
            }
        }
        for (u, d, text) in relay.drain() {
            let h = decode_header(&text).expect("only envelopes are relayed");
            assert_eq!(h.to, u, "relayed to another user");
            assert!(h.to_device.as_ref().is_none_or(|td| *td == d), "relayed to another device");
            assert!(h.from == me && h.from_device == my_device, "relayed a spoofed envelope");
        }
        let (devices, users, queued) = relay.counts();
        let limits = relay.limits();
        assert!(users <= devices);
        assert!(devices <= callapi_fuzz::USERS.len() * callapi_fuzz::DEVICES.len());
        assert!(queued <= limits.offline_queue_total, "queued {queued}");
    }
});
