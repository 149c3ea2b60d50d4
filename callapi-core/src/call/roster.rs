//! The roster of a group call: one [`Member`] record per member user, replicated on every
//! member's device and converging by exchange of full rosters.
//!
//! No server holds a group call. Each device keeps a [`Roster`], sends the whole of it
//! ([`Roster::records`], [`Roster::ended`]) to the others, and [merges](Roster::merge) what it
//! receives record by record: for each user it keeps the record that
//! [supersedes](Member::supersedes) the other. That order is total over a record's content, so
//! the merge is a join (a maximum) and every replica that has seen the same records holds the
//! same roster, whatever the order, loss (with later re-delivery) and duplication of the
//! messages that carried them. [`Roster::lacks`] tells a receiver that its own roster knows
//! something the sender's does not, so that it can answer with its roster (anti-entropy).
//!
//! The call-wide [`ended`](Roster::ended) flag says that someone ended the call for everyone;
//! it only ever goes from `false` to `true` (merge is OR).
//!
//! # Rules for writers
//!
//! The roster guarantees convergence, not meaning: that only one party writes a given record at
//! a time is the call machine's business. The conventions for `seq` are:
//!
//! - The invitation of a member occupies three seqs, written by the inviter: `s` (`Inviting`),
//!   `s + 1` (`Ringing`), and `s + 2` for its outcome (`Accepted`, `Rejected`, `Busy`,
//!   `Timeout` or `Cancelled`).
//! - The member's own later writes (`Left`, or `Accepted` again on a late join) use
//!   `min_seq = s + 3` or more, so they always supersede the inviter's writes.
//! - Any device may write `Timeout` at `s + 2` (no device, reason or deadline) for an
//!   invitation whose `until_ms` has passed and whose record is still pending at a seq below
//!   `s + 2`. All such writes are identical, so they merge into one; and a real answer at
//!   `s + 2` wins over them by [precedence](crate::protocol::MemberState::precedence).
//!
//! Rosters are small (groups of about ten members at most): records live in a `Vec` sorted by
//! user, which is smaller than a map and iterates in a deterministic order. Bounding the size
//! of a received roster is the decoder's business.

use std::cmp::Ordering;

use crate::protocol::{DeviceId, Member, MemberState, UserId};

/// A member's record changed: what the app hears about a roster update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberChange {
    /// The member user.
    pub user: UserId,
    /// The member's state now.
    pub state: MemberState,
    /// The member's state before the change; `None` when the member was unknown. May equal
    /// `state` when only other fields of the record changed (say, a renewed invitation).
    pub previous: Option<MemberState>,
    /// The reason carried by the new record, if any.
    pub reason: Option<String>,
    /// The device carried by the new record, if any.
    pub device: Option<DeviceId>,
}

impl MemberChange {
    fn new(member: &Member, previous: Option<MemberState>) -> Self {
        Self {
            user: member.user.clone(),
            state: member.state,
            previous,
            reason: member.reason.clone(),
            device: member.device.clone(),
        }
    }
}

/// What a [`Roster::merge`] changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct MergeOutcome {
    /// One change per record that changed, in user order.
    pub changes: Vec<MemberChange>,
    /// Whether the call became ended by this merge.
    pub ended_now: bool,
}

impl MergeOutcome {
    /// Whether the merge changed nothing (the received roster held nothing new).
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && !self.ended_now
    }
}

/// The records of one group call, at most one per user, plus the call-wide `ended` flag.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roster {
    /// Sorted by `user`, no two with the same user.
    members: Vec<Member>,
    ended: bool,
}

impl Roster {
    /// An empty roster (no members, not ended).
    pub fn new() -> Self {
        Self::default()
    }

    fn find(&self, user: &UserId) -> Result<usize, usize> {
        self.members.binary_search_by(|m| m.user.cmp(user))
    }

    /// The record of `user`, if known.
    pub fn get(&self, user: &UserId) -> Option<&Member> {
        self.find(user).ok().map(|i| &self.members[i])
    }

    /// Every record, in user order.
    pub fn iter(&self) -> std::slice::Iter<'_, Member> {
        self.members.iter()
    }

    /// How many members the roster knows.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the roster knows no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The members in the call (`Accepted`), in user order.
    pub fn members_in_call(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.iter().filter(|m| m.state.is_in_call())
    }

    /// The members whose invitation is open (`Inviting` or `Ringing`), in user order.
    pub fn pending(&self) -> impl Iterator<Item = &Member> + '_ {
        self.members.iter().filter(|m| m.state.is_pending())
    }

    /// Whether someone ended the call for everyone.
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The records to put on the wire, in user order.
    pub fn records(&self) -> &[Member] {
        &self.members
    }

    /// A local write of `user`'s record.
    ///
    /// The new record's `seq` is `max(current.seq + 1, min_seq)`, or `max(min_seq, 1)` for an
    /// unknown user, so it supersedes the current record. Writing what is already there (same
    /// state, device, reason and deadline, with a `seq` of at least `min_seq`) changes nothing
    /// and answers `None`; so does a write that cannot supersede the current record because its
    /// `seq` is already `u64::MAX`. Otherwise answers the change.
    pub fn write(
        &mut self,
        user: UserId,
        state: MemberState,
        device: Option<DeviceId>,
        reason: Option<String>,
        until_ms: Option<u64>,
        min_seq: u64,
    ) -> Option<MemberChange> {
        match self.find(&user) {
            Ok(i) => {
                let current = &self.members[i];
                if current.seq >= min_seq
                    && current.state == state
                    && current.device == device
                    && current.reason == reason
                    && current.until_ms == until_ms
                {
                    return None;
                }
                let record = Member {
                    seq: current.seq.saturating_add(1).max(min_seq),
                    user,
                    state,
                    device,
                    reason,
                    until_ms,
                };
                if !record.supersedes(current) {
                    return None;
                }
                let change = MemberChange::new(&record, Some(current.state));
                self.members[i] = record;
                Some(change)
            }
            Err(i) => {
                let record = Member {
                    seq: min_seq.max(1),
                    user,
                    state,
                    device,
                    reason,
                    until_ms,
                };
                let change = MemberChange::new(&record, None);
                self.members.insert(i, record);
                Some(change)
            }
        }
    }

    /// Ends the call for everyone; true if it was not ended already.
    pub fn set_ended(&mut self) -> bool {
        let changed = !self.ended;
        self.ended = true;
        changed
    }

    /// Merges a received roster: for each record, keeps it when it supersedes the local record
    /// of its user or the user is unknown; `ended` is OR-ed in.
    ///
    /// Answers one change per record that changed, in user order, with the state before the
    /// merge as `previous`; records equal to or superseded by the local ones change nothing. The
    /// received records may come in any order; if one user appears several times, the greatest
    /// record wins.
    pub fn merge(&mut self, records: &[Member], ended: bool) -> MergeOutcome {
        // Users whose record changed, with their state before the merge (kept sorted by user).
        let mut changed: Vec<(UserId, Option<MemberState>)> = Vec::new();
        for record in records {
            let previous = match self.find(&record.user) {
                Ok(i) => {
                    let current = &mut self.members[i];
                    if !record.supersedes(current) {
                        continue;
                    }
                    let previous = current.state;
                    *current = record.clone();
                    Some(previous)
                }
                Err(i) => {
                    self.members.insert(i, record.clone());
                    None
                }
            };
            if let Err(j) = changed.binary_search_by(|(u, _)| u.cmp(&record.user)) {
                changed.insert(j, (record.user.clone(), previous));
            }
        }
        let changes = changed
            .into_iter()
            .filter_map(|(user, previous)| {
                self.get(&user)
                    .map(|member| MemberChange::new(member, previous))
            })
            .collect();
        let ended_now = ended && self.set_ended();
        MergeOutcome { changes, ended_now }
    }

    /// Whether this roster knows something the given one does not: some local record
    /// supersedes the given record of its user or is absent from it, or this roster is ended and
    /// the given one is not. When true, merging this roster into the given one would change it,
    /// so a receiver answers a roster it lacks with its own.
    pub fn lacks(&self, records: &[Member], ended: bool) -> bool {
        if self.ended && !ended {
            return true;
        }
        self.members.iter().any(|mine| {
            records
                .iter()
                .filter(|theirs| theirs.user == mine.user)
                .max_by(|a, b| a.cmp_content(b))
                .is_none_or(|theirs| mine.cmp_content(theirs) == Ordering::Greater)
        })
    }
}

impl<'a> IntoIterator for &'a Roster {
    type Item = &'a Member;
    type IntoIter = std::slice::Iter<'a, Member>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn user(s: &str) -> UserId {
        UserId::new(s).unwrap()
    }

    fn dev(s: &str) -> DeviceId {
        DeviceId::new(s).unwrap()
    }

    fn rec(u: &str, state: MemberState, seq: u64) -> Member {
        Member::new(user(u), state, seq)
    }

    #[test]
    fn write_seq_rules() {
        let mut r = Roster::new();
        // Unknown user: min_seq, at least 1.
        let c = r
            .write(user("bob"), MemberState::Inviting, None, None, Some(9), 0)
            .unwrap();
        assert_eq!(c.previous, None);
        assert_eq!(c.state, MemberState::Inviting);
        assert_eq!(r.get(&user("bob")).unwrap().seq, 1);
        r.write(user("carol"), MemberState::Inviting, None, None, None, 7);
        assert_eq!(r.get(&user("carol")).unwrap().seq, 7);

        // Known user: current + 1 ...
        let c = r
            .write(user("bob"), MemberState::Ringing, None, None, Some(9), 0)
            .unwrap();
        assert_eq!(c.previous, Some(MemberState::Inviting));
        assert_eq!(r.get(&user("bob")).unwrap().seq, 2);
        // ... or min_seq when greater.
        let c = r
            .write(
                user("bob"),
                MemberState::Left,
                Some(dev("b1")),
                None,
                None,
                10,
            )
            .unwrap();
        assert_eq!(c.device, Some(dev("b1")));
        assert_eq!(r.get(&user("bob")).unwrap().seq, 10);

        // Writing what is there (seq already >= min_seq) changes nothing.
        let before = r.clone();
        assert_eq!(
            r.write(
                user("bob"),
                MemberState::Left,
                Some(dev("b1")),
                None,
                None,
                10
            ),
            None
        );
        assert_eq!(
            r.write(
                user("bob"),
                MemberState::Left,
                Some(dev("b1")),
                None,
                None,
                3
            ),
            None
        );
        assert_eq!(r, before);
        // Same content with a higher min_seq is a new record.
        assert!(r
            .write(
                user("bob"),
                MemberState::Left,
                Some(dev("b1")),
                None,
                None,
                11
            )
            .is_some());
        assert_eq!(r.get(&user("bob")).unwrap().seq, 11);

        // Records stay sorted by user.
        r.write(user("alice"), MemberState::Accepted, None, None, None, 1);
        let users: Vec<&str> = r.iter().map(|m| m.user.as_str()).collect();
        assert_eq!(users, ["alice", "bob", "carol"]);
    }

    #[test]
    fn write_at_the_end_of_the_counter_is_refused() {
        let mut r = Roster::new();
        r.merge(&[rec("bob", MemberState::Left, u64::MAX)], false);
        assert_eq!(
            r.write(user("bob"), MemberState::Accepted, None, None, None, 0),
            None
        );
        assert_eq!(r.get(&user("bob")).unwrap().state, MemberState::Left);
    }

    #[test]
    fn timeout_writes_by_several_devices_are_identical() {
        let mut a = Roster::new();
        a.merge(&[rec("bob", MemberState::Ringing, 2)], false);
        let mut b = a.clone();
        a.write(user("bob"), MemberState::Timeout, None, None, None, 3);
        b.write(user("bob"), MemberState::Timeout, None, None, None, 3);
        assert_eq!(a, b);
        // A second identical write is a no-op, not a new seq.
        assert_eq!(
            a.write(user("bob"), MemberState::Timeout, None, None, None, 3),
            None
        );
        assert_eq!(a.get(&user("bob")).unwrap().seq, 3);
    }

    #[test]
    fn merge_keeps_superseding_records_and_reports_changes() {
        let mut r = Roster::new();
        r.merge(
            &[
                rec("bob", MemberState::Ringing, 2),
                rec("carol", MemberState::Accepted, 3),
            ],
            false,
        );
        let mut left = rec("carol", MemberState::Left, 6);
        left.reason = Some("bye".into());
        left.device = Some(dev("c1"));
        let out = r.merge(
            &[
                // Unsorted on purpose; carol's record is newer, bob's older, dave is new.
                left.clone(),
                rec("bob", MemberState::Inviting, 1),
                rec("dave", MemberState::Inviting, 1),
            ],
            false,
        );
        assert!(!out.ended_now);
        assert_eq!(
            out.changes,
            vec![
                MemberChange {
                    user: user("carol"),
                    state: MemberState::Left,
                    previous: Some(MemberState::Accepted),
                    reason: Some("bye".into()),
                    device: Some(dev("c1")),
                },
                MemberChange {
                    user: user("dave"),
                    state: MemberState::Inviting,
                    previous: None,
                    reason: None,
                    device: None,
                },
            ]
        );
        assert_eq!(r.get(&user("bob")).unwrap().state, MemberState::Ringing);
        assert_eq!(r.get(&user("carol")), Some(&left));
        assert_eq!(r.len(), 3);
    }

    #[test]
    fn merge_reports_the_state_before_the_merge_when_a_user_repeats() {
        let mut r = Roster::new();
        r.merge(&[rec("bob", MemberState::Inviting, 1)], false);
        let out = r.merge(
            &[
                rec("bob", MemberState::Ringing, 2),
                rec("bob", MemberState::Accepted, 3),
                rec("bob", MemberState::Ringing, 2),
            ],
            false,
        );
        assert_eq!(out.changes.len(), 1);
        assert_eq!(out.changes[0].previous, Some(MemberState::Inviting));
        assert_eq!(out.changes[0].state, MemberState::Accepted);
        assert_eq!(r.get(&user("bob")).unwrap().seq, 3);
    }

    #[test]
    fn duplicates_are_no_ops() {
        let mut r = Roster::new();
        let records = [
            rec("bob", MemberState::Accepted, 3),
            rec("carol", MemberState::Ringing, 2),
        ];
        assert_eq!(r.merge(&records, true).changes.len(), 2);
        let before = r.clone();
        let out = r.merge(&records, true);
        assert!(out.is_empty());
        assert_eq!(r, before);
        assert!(r.merge(r.clone().records(), r.ended()).is_empty());
    }

    #[test]
    fn precedence_breaks_ties() {
        // A real answer at s+2 beats a Timeout at s+2, in either order.
        let timeout = rec("bob", MemberState::Timeout, 3);
        let accepted = rec("bob", MemberState::Accepted, 3);
        let mut a = Roster::new();
        a.merge(std::slice::from_ref(&timeout), false);
        let out = a.merge(std::slice::from_ref(&accepted), false);
        assert_eq!(out.changes[0].previous, Some(MemberState::Timeout));
        let mut b = Roster::new();
        b.merge(std::slice::from_ref(&accepted), false);
        assert!(b.merge(std::slice::from_ref(&timeout), false).is_empty());
        assert_eq!(a, b);
        assert_eq!(a.get(&user("bob")).unwrap().state, MemberState::Accepted);

        // The member's Left at s+3 beats the inviter's Accepted at s+2.
        let left = rec("bob", MemberState::Left, 4);
        let out = a.merge(std::slice::from_ref(&left), false);
        assert_eq!(out.changes[0].state, MemberState::Left);
        assert!(b.merge(std::slice::from_ref(&accepted), false).is_empty());
        b.merge(std::slice::from_ref(&left), false);
        assert_eq!(a, b);
        assert!(a.merge(std::slice::from_ref(&accepted), false).is_empty());
        assert_eq!(a.get(&user("bob")).unwrap().state, MemberState::Left);
    }

    #[test]
    fn ended_is_or() {
        let mut r = Roster::new();
        assert!(!r.ended());
        assert!(!r.merge(&[], false).ended_now);
        assert!(r.merge(&[], true).ended_now);
        assert!(r.ended());
        assert!(!r.merge(&[], true).ended_now);
        assert!(!r.merge(&[], false).ended_now);
        assert!(r.ended());
        assert!(!r.set_ended());
        let mut s = Roster::new();
        assert!(s.set_ended());
    }

    #[test]
    fn lacks_both_ways() {
        let mut a = Roster::new();
        a.merge(
            &[
                rec("bob", MemberState::Accepted, 3),
                rec("carol", MemberState::Ringing, 2),
            ],
            false,
        );
        let mut b = a.clone();
        assert!(!a.lacks(b.records(), b.ended()));
        assert!(!b.lacks(a.records(), a.ended()));

        // b learns something newer: b knows what a does not, not the reverse.
        b.merge(&[rec("carol", MemberState::Rejected, 3)], false);
        assert!(b.lacks(a.records(), a.ended()));
        assert!(!a.lacks(b.records(), b.ended()));

        // a knows a user b does not: both know something.
        a.merge(&[rec("dave", MemberState::Inviting, 1)], false);
        assert!(a.lacks(b.records(), b.ended()));
        assert!(b.lacks(a.records(), a.ended()));

        // Ended counts too.
        let mut c = b.clone();
        c.set_ended();
        assert!(c.lacks(b.records(), b.ended()));
        assert!(!b.lacks(c.records(), c.ended()));

        // An empty roster lacks nothing against anyone; anyone non-empty lacks against it.
        let empty = Roster::new();
        assert!(!empty.lacks(a.records(), a.ended()));
        assert!(a.lacks(empty.records(), empty.ended()));
        // Duplicated users in the given records: the greatest counts.
        assert!(!b.lacks(
            &[
                rec("bob", MemberState::Accepted, 3),
                rec("carol", MemberState::Ringing, 2),
                rec("carol", MemberState::Rejected, 3),
            ],
            false
        ));
    }

    #[test]
    fn views() {
        let mut r = Roster::new();
        assert!(r.is_empty());
        r.merge(
            &[
                rec("a", MemberState::Accepted, 3),
                rec("b", MemberState::Ringing, 2),
                rec("c", MemberState::Inviting, 1),
                rec("d", MemberState::Left, 4),
                rec("e", MemberState::Accepted, 3),
            ],
            false,
        );
        assert_eq!(r.len(), 5);
        let in_call: Vec<&str> = r.members_in_call().map(|m| m.user.as_str()).collect();
        assert_eq!(in_call, ["a", "e"]);
        let pending: Vec<&str> = r.pending().map(|m| m.user.as_str()).collect();
        assert_eq!(pending, ["b", "c"]);
        assert_eq!((&r).into_iter().count(), 5);
        assert_eq!(r.records().len(), 5);
        assert!(r.get(&user("z")).is_none());
    }
}
