//! Group-call rosters converge: replicas that write locally and exchange full-roster snapshots
//! over a network that reorders, duplicates, drops and later re-delivers them end up identical
//! once every replica has sent its roster to every other.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use callapi_core::call::Roster;
use callapi_core::protocol::{DeviceId, Member, MemberState, UserId};
use proptest::prelude::*;

const STATES: [MemberState; 8] = MemberState::ALL;
const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const DEVICES: [&str; 3] = ["d1", "d2", "d3"];
const REASONS: [&str; 2] = ["bye", "no"];

#[derive(Debug, Clone)]
enum Op {
    /// A local write on a replica; `min_seq` is relative to the replica's current seq so that
    /// concurrent writes often collide on the same seq.
    Write {
        replica: usize,
        user: usize,
        state: usize,
        device: Option<usize>,
        reason: Option<usize>,
        until_ms: Option<u64>,
        seq_bump: u64,
    },
    /// Someone ends the call for everyone.
    End { replica: usize },
    /// A replica sends a snapshot of its roster to another.
    Send { from: usize, to: usize },
    /// An in-flight message arrives; `keep` leaves a copy in flight (a duplicate).
    Deliver { pick: usize, keep: bool },
    /// An in-flight message is lost for now.
    Drop { pick: usize },
    /// A lost message finally arrives (stale by now).
    Redeliver { pick: usize },
}

fn op(replicas: usize) -> impl Strategy<Value = Op> {
    let r = 0..replicas;
    prop_oneof![
        6 => (
            r.clone(),
            0..USERS.len(),
            0..STATES.len(),
            proptest::option::of(0..DEVICES.len()),
            proptest::option::of(0..REASONS.len()),
            proptest::option::of(0u64..3),
            0u64..4,
        )
            .prop_map(|(replica, user, state, device, reason, until_ms, seq_bump)| Op::Write {
                replica,
                user,
                state,
                device,
                reason,
                until_ms,
                seq_bump,
            }),
        1 => r.clone().prop_map(|replica| Op::End { replica }),
        6 => (r.clone(), r).prop_map(|(from, to)| Op::Send { from, to }),
        6 => (any::<usize>(), any::<bool>()).prop_map(|(pick, keep)| Op::Deliver { pick, keep }),
        2 => any::<usize>().prop_map(|pick| Op::Drop { pick }),
        2 => any::<usize>().prop_map(|pick| Op::Redeliver { pick }),
    ]
}

fn scenario() -> impl Strategy<Value = (usize, Vec<Op>, Vec<usize>)> {
    (3usize..=6).prop_flat_map(|n| {
        (
            Just(n),
            proptest::collection::vec(op(n), 0..80),
            // The order in which the final round's messages arrive.
            Just((0..n * (n - 1)).collect::<Vec<_>>()).prop_shuffle(),
        )
    })
}

/// A message in flight: the destination and the snapshot taken at send time.
struct Message {
    to: usize,
    records: Vec<Member>,
    ended: bool,
}

/// Delivers a message and checks that the merge reports exactly what changed, and that `lacks`
/// predicted it.
fn deliver(replicas: &mut [Roster], m: &Message) {
    let before = replicas[m.to].clone();
    let mut sender = Roster::new();
    sender.merge(&m.records, m.ended);
    let predicted = sender.lacks(before.records(), before.ended());
    let out = replicas[m.to].merge(&m.records, m.ended);
    let after = &replicas[m.to];

    assert_eq!(predicted, !out.is_empty());
    assert_eq!(out.ended_now, after.ended() && !before.ended());
    let changed: Vec<&UserId> = after
        .iter()
        .filter(|m| before.get(&m.user) != Some(*m))
        .map(|m| &m.user)
        .collect();
    let reported: Vec<&UserId> = out.changes.iter().map(|c| &c.user).collect();
    assert_eq!(changed, reported);
    for c in &out.changes {
        let now = after.get(&c.user).unwrap();
        assert_eq!(c.previous, before.get(&c.user).map(|m| m.state));
        assert_eq!(
            (c.state, &c.device, &c.reason),
            (now.state, &now.device, &now.reason)
        );
    }
    // Nothing was forgotten: every record before is equal to or superseded by the one after.
    for old in before.iter() {
        let new = after.get(&old.user).unwrap();
        assert!(new == old || new.supersedes(old));
    }
    assert!(after.records().windows(2).all(|w| w[0].user < w[1].user));
}

fn run(n: usize, ops: &[Op], final_order: &[usize]) {
    let users: Vec<UserId> = USERS.iter().map(|u| UserId::new(*u).unwrap()).collect();
    let devices: Vec<DeviceId> = DEVICES.iter().map(|d| DeviceId::new(*d).unwrap()).collect();
    let mut replicas = vec![Roster::new(); n];
    let mut in_flight: Vec<Message> = Vec::new();
    let mut lost: Vec<Message> = Vec::new();

    for op in ops {
        match *op {
            Op::Write {
                replica,
                user,
                state,
                device,
                reason,
                until_ms,
                seq_bump,
            } => {
                let r = &mut replicas[replica];
                let user = users[user].clone();
                let current = r.get(&user).map_or(0, |m| m.seq);
                let before = r.clone();
                let change = r.write(
                    user.clone(),
                    STATES[state],
                    device.map(|d| devices[d].clone()),
                    reason.map(|i| REASONS[i].to_owned()),
                    until_ms,
                    current + seq_bump,
                );
                assert_eq!(change.is_some(), *r != before);
                if let Some(c) = change {
                    assert_eq!(c.previous, before.get(&user).map(|m| m.state));
                    let now = r.get(&user).unwrap();
                    assert!(before.get(&user).is_none_or(|old| now.supersedes(old)));
                }
            }
            Op::End { replica } => {
                let was = replicas[replica].ended();
                assert_eq!(replicas[replica].set_ended(), !was);
            }
            Op::Send { from, to } => {
                if from != to {
                    in_flight.push(Message {
                        to,
                        records: replicas[from].records().to_vec(),
                        ended: replicas[from].ended(),
                    });
                }
            }
            Op::Deliver { pick, keep } => {
                if !in_flight.is_empty() {
                    let i = pick % in_flight.len();
                    if keep {
                        deliver(&mut replicas, &in_flight[i]);
                    } else {
                        let m = in_flight.swap_remove(i);
                        deliver(&mut replicas, &m);
                    }
                }
            }
            Op::Drop { pick } => {
                if !in_flight.is_empty() {
                    let i = pick % in_flight.len();
                    lost.push(in_flight.swap_remove(i));
                }
            }
            Op::Redeliver { pick } => {
                if !lost.is_empty() {
                    let i = pick % lost.len();
                    let m = lost.swap_remove(i);
                    deliver(&mut replicas, &m);
                }
            }
        }
    }

    // Final round: every replica snapshots its roster for every other, delivered in a random
    // order; then the stragglers (still in flight or lost) arrive, and change nothing.
    let mut round = Vec::with_capacity(n * (n - 1));
    for (from, sender) in replicas.iter().enumerate() {
        for to in (0..n).filter(|&to| to != from) {
            round.push(Message {
                to,
                records: sender.records().to_vec(),
                ended: sender.ended(),
            });
        }
    }
    for &i in final_order {
        deliver(&mut replicas, &round[i]);
    }
    for r in &replicas[1..] {
        assert_eq!(r, &replicas[0]);
    }
    for m in in_flight.iter().chain(&lost) {
        let before = replicas[m.to].clone();
        deliver(&mut replicas, m);
        assert_eq!(replicas[m.to], before);
    }
    for a in &replicas {
        for b in &replicas {
            assert!(!a.lacks(b.records(), b.ended()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn replicas_converge((n, ops, final_order) in scenario()) {
        run(n, &ops, &final_order);
    }

    /// The merge is a join: the result does not depend on the order of the inputs.
    #[test]
    fn merge_commutes(
        a in proptest::collection::vec((0..USERS.len(), 0..STATES.len(), 0u64..4), 0..8),
        b in proptest::collection::vec((0..USERS.len(), 0..STATES.len(), 0u64..4), 0..8),
        ea in any::<bool>(),
        eb in any::<bool>(),
    ) {
        let to_records = |v: &[(usize, usize, u64)]| -> Vec<Member> {
            v.iter()
                .map(|&(u, s, seq)| Member::new(UserId::new(USERS[u]).unwrap(), STATES[s], seq))
                .collect()
        };
        let (a, b) = (to_records(&a), to_records(&b));
        let mut ab = Roster::new();
        ab.merge(&a, ea);
        ab.merge(&b, eb);
        let mut ba = Roster::new();
        ba.merge(&b, eb);
        ba.merge(&a, ea);
        prop_assert_eq!(&ab, &ba);
        let again = ab.clone();
        prop_assert!(ab.merge(&a, ea).is_empty());
        prop_assert!(ab.merge(again.records(), again.ended()).is_empty());
    }
}
