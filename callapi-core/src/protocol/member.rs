//! Group-call membership records: one [`Member`] per member user, exchanged in full rosters and
//! merged record by record (the merge itself lives in [`crate::call::Roster`]).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::ids::{DeviceId, UserId};

/// Where a member stands in a group call.
///
/// `Inviting` and `Ringing` are pending ([`MemberState::is_pending`]), `Accepted` is in the call
/// ([`MemberState::is_in_call`]) and the rest are terminal ([`MemberState::is_terminal`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum MemberState {
    /// The invitation was sent; no device of the member has it yet.
    Inviting,
    /// Some device of the member rings.
    Ringing,
    /// The member is in the call.
    Accepted,
    /// The member declined.
    Rejected,
    /// The member was in another call.
    Busy,
    /// Missed: the invitation's lifetime ran out without an answer.
    Timeout,
    /// The inviter withdrew the invitation.
    Cancelled,
    /// The member quit the call.
    Left,
}

impl MemberState {
    /// Every state, in declaration order (for tests and fuzzing that need to pick any state).
    pub const ALL: [MemberState; 8] = [
        MemberState::Inviting,
        MemberState::Ringing,
        MemberState::Accepted,
        MemberState::Rejected,
        MemberState::Busy,
        MemberState::Timeout,
        MemberState::Cancelled,
        MemberState::Left,
    ];

    /// Whether the invitation is still open (`Inviting` or `Ringing`).
    pub fn is_pending(self) -> bool {
        matches!(self, MemberState::Inviting | MemberState::Ringing)
    }

    /// Whether the member is in the call (`Accepted`).
    pub fn is_in_call(self) -> bool {
        matches!(self, MemberState::Accepted)
    }

    /// Whether the member is out of the call for good as far as this record goes (`Rejected`,
    /// `Busy`, `Timeout`, `Cancelled` or `Left`). A later record (a late join, a new invitation)
    /// may still bring the member back.
    pub fn is_terminal(self) -> bool {
        !self.is_pending() && !self.is_in_call()
    }

    /// The wire name (the same string serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            MemberState::Inviting => "inviting",
            MemberState::Ringing => "ringing",
            MemberState::Accepted => "accepted",
            MemberState::Rejected => "rejected",
            MemberState::Busy => "busy",
            MemberState::Timeout => "timeout",
            MemberState::Cancelled => "cancelled",
            MemberState::Left => "left",
        }
    }

    /// The tie-break rank between two records of the same member with the same `seq`, lowest
    /// first: `Inviting`, `Ringing`, `Timeout`, `Cancelled`, `Busy`, `Rejected`, `Accepted`,
    /// `Left`.
    ///
    /// Progress beats its past (`Ringing` over `Inviting`); `Timeout`, which any device may
    /// write for an expired invitation, loses to every real outcome; an answer beats a
    /// withdrawal that crossed it (`Accepted` over `Cancelled`); quitting beats everything.
    /// Every state has its own rank, so that the order of [`Member::supersedes`] is total.
    pub fn precedence(self) -> u8 {
        match self {
            MemberState::Inviting => 0,
            MemberState::Ringing => 1,
            MemberState::Timeout => 2,
            MemberState::Cancelled => 3,
            MemberState::Busy => 4,
            MemberState::Rejected => 5,
            MemberState::Accepted => 6,
            MemberState::Left => 7,
        }
    }
}

/// One member's record in a group-call roster.
///
/// Records of the same user are totally ordered by [`Member::supersedes`]; a roster keeps the
/// greatest record it has seen for each user.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The member user this record is about.
    pub user: UserId,
    /// Where the member stands.
    pub state: MemberState,
    /// The record's counter: every write of this user's record takes a greater `seq` than the
    /// record it replaces, so a later write supersedes an earlier one everywhere.
    pub seq: u64,
    /// The member's device in the call: the answering device for `Accepted`, the device that
    /// quit for `Left`; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<DeviceId>,
    /// Free-text reason given with `Rejected`, `Left` or `Cancelled`; `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// For `Inviting` and `Ringing`: the Unix time, in milliseconds, at which the invitation's
    /// lifetime ends (after it, any device may record a `Timeout`); `None` otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<u64>,
}

impl Member {
    /// A record with no device, reason or deadline.
    pub fn new(user: UserId, state: MemberState, seq: u64) -> Self {
        Self {
            user,
            state,
            seq,
            device: None,
            reason: None,
            until_ms: None,
        }
    }

    /// Whether this record replaces `other` in a merge: true when `self` is strictly greater
    /// in the order of `(seq, state.precedence(), device, reason, until_ms)`, compared
    /// lexicographically (`None` lowest, then devices and reasons by their bytes and deadlines
    /// by value). Only meaningful between records of the same user; `user` is not compared.
    ///
    /// # Why a total order makes rosters converge
    ///
    /// The order covers the whole content of a record: two records of one user that compare
    /// equal are the same record, because every state has its own precedence. So for any two
    /// records exactly one of "a supersedes b", "b supersedes a", "a == b" holds, and keeping
    /// the greater of the two is a *join* (a maximum). A maximum is commutative
    /// (`max(a, b) = max(b, a)`), associative (`max(max(a, b), c) = max(a, max(b, c))`) and
    /// idempotent (`max(a, a) = a`). Hence a replica's record is always the maximum of every
    /// record it has received, whatever the order they arrived in (commutativity and
    /// associativity), however often each arrived (idempotence), and a message lost and
    /// delivered later, or superseded by a later snapshot that contains its records, adds
    /// nothing the maximum does not already account for. Once every replica has (directly or
    /// through others) received every record, all replicas hold the same maximum: they
    /// converge. With a partial order (say, `seq` alone) two different records at the same
    /// `seq` would each be kept by whichever replica saw it first, and the replicas would
    /// disagree forever.
    pub fn supersedes(&self, other: &Member) -> bool {
        self.cmp_content(other) == Ordering::Greater
    }

    /// The merge order over the whole record (see [`Member::supersedes`]), `user` aside.
    pub(crate) fn cmp_content(&self, other: &Member) -> Ordering {
        (
            self.seq,
            self.state.precedence(),
            &self.device,
            &self.reason,
            self.until_ms,
        )
            .cmp(&(
                other.seq,
                other.state.precedence(),
                &other.device,
                &other.reason,
                other.until_ms,
            ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn all_lists_every_state_once() {
        // Exhaustive: a new state does not compile until it has a place here and in `ALL`.
        let index = |s: MemberState| match s {
            MemberState::Inviting => 0,
            MemberState::Ringing => 1,
            MemberState::Accepted => 2,
            MemberState::Rejected => 3,
            MemberState::Busy => 4,
            MemberState::Timeout => 5,
            MemberState::Cancelled => 6,
            MemberState::Left => 7,
        };
        for (i, s) in MemberState::ALL.into_iter().enumerate() {
            assert_eq!(index(s), i, "{s:?}");
        }
    }

    #[test]
    fn wire_names_match_serde() {
        for s in MemberState::ALL {
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
            let back: MemberState = serde_json::from_str(&format!("\"{}\"", s.as_str())).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn classes_partition_the_states() {
        for s in MemberState::ALL {
            let n = [s.is_pending(), s.is_in_call(), s.is_terminal()]
                .iter()
                .filter(|b| **b)
                .count();
            assert_eq!(n, 1, "{s:?}");
        }
        assert!(MemberState::Ringing.is_pending());
        assert!(MemberState::Accepted.is_in_call());
        assert!(MemberState::Left.is_terminal());
        assert!(MemberState::Timeout.is_terminal());
    }

    #[test]
    fn precedence_is_the_documented_order_and_injective() {
        let order = [
            MemberState::Inviting,
            MemberState::Ringing,
            MemberState::Timeout,
            MemberState::Cancelled,
            MemberState::Busy,
            MemberState::Rejected,
            MemberState::Accepted,
            MemberState::Left,
        ];
        for w in order.windows(2) {
            assert!(w[0].precedence() < w[1].precedence(), "{w:?}");
        }
        let mut ranks: Vec<u8> = MemberState::ALL.iter().map(|s| s.precedence()).collect();
        ranks.sort_unstable();
        ranks.dedup();
        assert_eq!(ranks.len(), MemberState::ALL.len());
    }

    #[test]
    fn supersedes_compares_seq_then_precedence_then_the_rest() {
        let u = UserId::new("u").unwrap();
        let m = |state, seq| Member::new(u.clone(), state, seq);
        assert!(m(MemberState::Inviting, 2).supersedes(&m(MemberState::Left, 1)));
        assert!(m(MemberState::Accepted, 2).supersedes(&m(MemberState::Timeout, 2)));
        assert!(!m(MemberState::Timeout, 2).supersedes(&m(MemberState::Accepted, 2)));
        let a = m(MemberState::Left, 3);
        assert!(!a.supersedes(&a.clone()));

        let mut with_dev = m(MemberState::Accepted, 3);
        with_dev.device = Some(DeviceId::new("d1").unwrap());
        let mut with_dev2 = with_dev.clone();
        with_dev2.device = Some(DeviceId::new("d2").unwrap());
        assert!(with_dev.supersedes(&m(MemberState::Accepted, 3)));
        assert!(with_dev2.supersedes(&with_dev));

        let mut r = m(MemberState::Rejected, 3);
        r.reason = Some("b".into());
        let mut r2 = r.clone();
        r2.reason = Some("a".into());
        assert!(r.supersedes(&r2));
        // Device is compared before reason.
        let mut rd = r2.clone();
        rd.device = Some(DeviceId::new("d").unwrap());
        assert!(rd.supersedes(&r));

        let mut t = m(MemberState::Ringing, 1);
        t.until_ms = Some(5);
        assert!(t.supersedes(&m(MemberState::Ringing, 1)));
    }

    #[test]
    fn serde_skips_absent_options() {
        let m = Member::new(UserId::new("u").unwrap(), MemberState::Ringing, 4);
        let s = serde_json::to_string(&m).unwrap();
        assert_eq!(s, r#"{"user":"u","state":"ringing","seq":4}"#);
        let back: Member = serde_json::from_str(&s).unwrap();
        assert_eq!(back, m);
    }
}
