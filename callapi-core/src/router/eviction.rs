//! Which envelope a full offline queue gives up for a new one, so that no sender can push out
//! another sender's envelopes by sending many of its own.
//!
//! The rule (documented in `docs/PROTOCOL.md`, "Offline queue"): count, per sending user, the
//! envelopes waiting for the recipient, the new one included. The sender holding the most loses
//! its oldest envelope; on a tie the newcomer loses its own oldest, and when it has none waiting
//! the new envelope itself is refused. So a sender can only evict its own envelopes or those of
//! a sender that holds strictly more than it does: a caller's queued invite survives any amount
//! of chatter from another user.

use std::collections::HashMap;
use std::hash::Hash;

/// What a full queue does with a new envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Eviction {
    /// Remove the waiting envelope at this position (0 = oldest), then queue the new one.
    Evict(usize),
    /// Keep the queue as it is and refuse the new envelope.
    RefuseNew,
}

/// The eviction for a new envelope from `newcomer` into a full queue whose waiting envelopes
/// were sent by `senders` (oldest first).
pub(crate) fn evict_for<U: Eq + Hash>(senders: &[&U], newcomer: &U) -> Eviction {
    let mut counts: HashMap<&U, usize> = HashMap::with_capacity(senders.len());
    for s in senders {
        *counts.entry(*s).or_default() += 1;
    }
    let mine = counts.get(newcomer).copied().unwrap_or(0) + 1;
    let most_other = counts
        .iter()
        .filter(|(s, _)| **s != newcomer)
        .map(|(_, c)| *c)
        .max()
        .unwrap_or(0);
    let oldest_of = |pred: &dyn Fn(&U) -> bool| senders.iter().position(|s| pred(s));
    let victim = if most_other > mine {
        oldest_of(&|s| s != newcomer && counts.get(s) == Some(&most_other))
    } else {
        oldest_of(&|s| s == newcomer)
    };
    victim.map_or(Eviction::RefuseNew, Eviction::Evict)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(queue: &str, newcomer: char) -> Eviction {
        let senders: Vec<char> = queue.chars().collect();
        let refs: Vec<&char> = senders.iter().collect();
        evict_for(&refs, &newcomer)
    }

    #[test]
    fn a_single_sender_loses_its_own_oldest() {
        assert_eq!(run("aaa", 'a'), Eviction::Evict(0));
    }

    #[test]
    fn a_flooding_sender_never_evicts_anothers_invite() {
        // `i` queued one invite, then `m` filled the queue.
        assert_eq!(run("immm", 'm'), Eviction::Evict(1));
        assert_eq!(run("mmim", 'm'), Eviction::Evict(0));
    }

    #[test]
    fn the_sender_with_strictly_more_waiting_loses_its_oldest() {
        // `b` holds 3, the newcomer `a` 1 (+1 new = 2): b's oldest goes.
        assert_eq!(run("babb", 'a'), Eviction::Evict(0));
        // Two senders with 3 each, the newcomer has 0 (+1): the older of their oldest goes.
        assert_eq!(run("bccbcb", 'a'), Eviction::Evict(0));
        assert_eq!(run("cbbcbc", 'a'), Eviction::Evict(0));
    }

    #[test]
    fn on_a_tie_the_newcomer_loses_its_own() {
        // a: 2 (+1 = 3), b: 3.
        assert_eq!(run("bbbaa", 'a'), Eviction::Evict(3));
        // a: 0 (+1 = 1), b: 1, c: 1 and d: 2: d holds strictly more.
        assert_eq!(run("bcdd", 'a'), Eviction::Evict(2));
    }

    #[test]
    fn a_newcomer_with_nothing_waiting_is_refused_when_everyone_holds_one() {
        assert_eq!(run("bcde", 'a'), Eviction::RefuseNew);
    }
}
