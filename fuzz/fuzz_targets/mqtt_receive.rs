//! signal-mqtt's receive rules on arbitrary PUBLISH packets, and its topic layout.
//!
//! The input is a topic line, then the payload (an input with no newline is all payload, on a
//! well-formed topic picked by its first byte). Checked:
//! * `parse_inbox_topic` never panics; what it parses is `callapi/v1/inbox/{to}/{from}` exactly,
//!   and `inbox_topic` rebuilds the same topic from ids that are valid levels;
//! * a delivered envelope came on this user's inbox, its `from` is the topic's sender, and it is
//!   for this device or for every device; retained messages and other topics are never
//!   delivered; a payload that does not decode is reported with the decoder's own error.
#![no_main]

use callapi_core::connection::{Identity, LinkEvent};
use callapi_core::protocol::{decode, UserId};
use callapi_signal_mqtt::fuzzing::classify;
use callapi_signal_mqtt::{check_level, inbox_topic, parse_inbox_topic, IdRole, INBOX_PREFIX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let me = Identity {
        user: callapi_fuzz::user(1),
        device: callapi_fuzz::device(0),
    };
    let (retain, data) = match data.split_first() {
        Some((b, rest)) => (b & 0x80 != 0, rest),
        None => (false, data),
    };
    let (topic, payload) = match data.iter().position(|b| *b == b'\n') {
        Some(nl) => (String::from_utf8_lossy(&data[..nl]).into_owned(), &data[nl + 1..]),
        None => {
            let from = callapi_fuzz::user(data.first().copied().unwrap_or(0));
            (format!("{INBOX_PREFIX}{}/{from}", me.user), data)
        }
    };

    if let Ok(t) = parse_inbox_topic(&topic) {
        assert_eq!(format!("{INBOX_PREFIX}{}/{}", t.to, t.from), topic);
        assert!(!t.to.is_empty() && !t.from.is_empty() && !t.from.contains('/'));
        if let (Ok(to), Ok(from)) = (UserId::new(t.to), UserId::new(t.from)) {
            if check_level(IdRole::User, t.to).is_ok() && check_level(IdRole::User, t.from).is_ok() {
                assert_eq!(inbox_topic(&to, &from).as_deref(), Ok(topic.as_str()));
            }
        }
    }

    let event = classify(&me, &topic, retain, payload);
    match event {
        Some(LinkEvent::Message(env)) => {
            assert!(!retain, "a retained message delivered");
            let t = parse_inbox_topic(&topic).expect("delivered from an inbox topic");
            assert_eq!(t.to, me.user.as_str(), "delivered from another user's inbox");
            assert_eq!(env.from.as_str(), t.from, "a forged sender delivered");
            assert!(env.to_device.as_ref().is_none_or(|d| *d == me.device));
            assert_eq!(decode(payload).as_ref(), Ok(&env));
        }
        Some(LinkEvent::Invalid(err)) => {
            assert!(!retain);
            let t = parse_inbox_topic(&topic).expect("reported from an inbox topic");
            assert_eq!(t.to, me.user.as_str());
            match decode(payload) {
                Err(e) => assert_eq!(e, err),
                Ok(env) => assert_ne!(env.from.as_str(), t.from, "a valid envelope refused"),
            }
        }
        Some(other) => panic!("a PUBLISH became {other:?}"),
        None => {
            let delivered_if_valid = !retain
                && parse_inbox_topic(&topic).is_ok_and(|t| t.to == me.user.as_str());
            if delivered_if_valid {
                // Dropped silently only when it is for a sibling device.
                let env = decode(payload).expect("an undecodable payload is reported");
                assert!(env.to_device.is_some_and(|d| d != me.device));
            }
        }
    }
});
