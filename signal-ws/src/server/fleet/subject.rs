//! The fleet's NATS subjects, and the escaping that makes any user id one subject token.
//!
//! A user id may hold any character but control characters; a NATS subject token may not hold
//! `.`, `*`, `>` or whitespace, and JetStream is stricter still about some others. Every byte
//! outside `A-Z a-z 0-9 - _` is written `~XX` (two upper-case hex digits of the UTF-8 byte), so
//! `alice` stays `alice`, `bob.smith` becomes `bob~2Esmith`, and two different ids never share
//! a subject.

use std::fmt::Write as _;

/// The prefix of every subject the fleet uses. Only the servers' NATS user may publish or
/// subscribe under it (see the permissions in `docs` and the fleet tests).
pub(crate) const PREFIX: &str = "callapi.fleet";

/// Escapes one id into a subject token (never empty, never holding `.`, `*`, `>` or spaces).
pub(crate) fn escape(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "~{b:02X}");
        }
    }
    out
}

/// The subject a node subscribes to while it holds one of `user`'s devices; envelopes for
/// `user` are published here.
pub(crate) fn user_subject(user: &str) -> String {
    format!("{PREFIX}.user.{}", escape(user))
}

/// The JetStream subject of `user`'s offline queue.
pub(crate) fn queue_subject(user: &str) -> String {
    format!("{PREFIX}.queue.{}", escape(user))
}

/// The subjects the offline-queue stream captures.
pub(crate) const QUEUE_WILDCARD: &str = "callapi.fleet.queue.>";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_ids_stay_readable() {
        assert_eq!(escape("alice"), "alice");
        assert_eq!(escape("a-1_B"), "a-1_B");
        assert_eq!(user_subject("alice"), "callapi.fleet.user.alice");
        assert_eq!(queue_subject("alice"), "callapi.fleet.queue.alice");
    }

    #[test]
    fn ids_nats_refuses_become_one_token() {
        for id in ["bob.smith", "a b", "x*", "y>", "~", "é", "a\tb", "$SYS"] {
            let token = escape(id);
            assert!(!token.is_empty());
            assert!(
                token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'~'),
                "{id:?} -> {token:?}"
            );
        }
        assert_eq!(escape("bob.smith"), "bob~2Esmith");
        assert_eq!(escape("é"), "~C3~A9");
    }

    #[test]
    fn escaping_is_injective() {
        // `~` itself is escaped, so an id cannot imitate another's escape.
        assert_ne!(escape("a.b"), escape("a~2Eb"));
        assert_eq!(escape("a~2Eb"), "a~7E2Eb");
    }
}
