//! Glare in group calls (`docs/PROTOCOL.md` §10.6). Two members inviting the same user into the
//! same call at once: the user's device rings once, tells both inviters it rings, answers only
//! the first, and ends up in the call once, with every roster agreeing. Two calls: a creator
//! still calling (nobody answered) that receives an invite for another call from one of its own
//! invitees resolves it as 1:1 glare (§8.6): the smaller call id wins on both sides.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallId, CallType};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

/// The devices a device sent envelopes of `kind` to, in order.
fn sent_to(w: &SimWorld, x: DeviceIndex, kind: &str) -> Vec<String> {
    w.device(x)
        .sent
        .iter()
        .filter(|e| e.body.kind() == kind)
        .map(|e| e.to_device.as_ref().map_or("-".into(), |d| d.to_string()))
        .collect()
}

#[test]
fn two_members_invite_the_same_user_and_it_rings_once() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("dave", "d1")]);
    let (a, b, dv) = (d[0], d[1], d[2]);
    let id = w.call_group(a, &["bob"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let invited_at = w.elapsed();
    // Both invite dave at the same moment.
    w.invite(a, &["dave"]).unwrap();
    w.invite(b, &["dave"]).unwrap();
    w.run_for(Duration::from_secs(1));

    assert_eq!(
        states(&w, dv),
        vec![(Calling, R::RemoteVideoCall)],
        "rings once"
    );
    assert_eq!(w.device(dv).machine.call_info().unwrap().call_id, id);
    let mut ringing = sent_to(&w, dv, "ringing");
    ringing.sort();
    assert_eq!(ringing, vec!["a1", "b1"], "both inviters hear it ring");
    let expected = expect(&[("alice", In), ("bob", In), ("dave", MRinging)]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(
            changes_of(&w, x, "dave"),
            vec![(None, Inviting), (Some(Inviting), MRinging)],
            "device {x}"
        );
        assert!(
            w.device(x).events().contains(&E::RemoteUserRecvCall),
            "device {x}"
        );
    }

    w.command(dv, Command::Accept).unwrap();
    // The answer goes to one inviter only: the one whose invite rang first.
    let accepts = sent_to(&w, dv, "accept");
    assert_eq!(accepts.len(), 1, "{accepts:?}");
    assert_eq!(accepts[0], ringing_first(&w, dv));
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    let all_in = expect(&[("alice", In), ("bob", In), ("dave", In)]);
    for x in [a, b, dv] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    for x in [a, b] {
        assert_eq!(
            changes_of(&w, x, "dave"),
            vec![
                (None, Inviting),
                (Some(Inviting), MRinging),
                (Some(MRinging), In)
            ],
            "device {x}"
        );
    }

    assert!(w.elapsed() < invited_at + Duration::from_secs(5));
}

#[test]
fn the_second_inviters_invitation_ends_with_the_accept_through_the_first() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("dave", "d1")]);
    let (a, b, dv) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let invited_at = w.elapsed();
    w.invite(a, &["dave"]).unwrap();
    w.invite(b, &["dave"]).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(dv, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let all_in = expect(&[("alice", In), ("bob", In), ("dave", In)]);
    for x in [a, b, dv] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
    }
    // The other inviter's invitation ended with dave's accept through the first (§10.3, last
    // point): its timer must not turn dave into a missed call when the invite's lifetime runs
    // out, nor tell dave's device the call timed out.
    w.run_for(invited_at + Duration::from_secs(30) - w.elapsed());
    for x in [a, b, dv] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        assert!(
            !changes_of(&w, x, "dave").iter().any(|(_, s)| *s == Missed),
            "device {x}: {:?}",
            changes_of(&w, x, "dave")
        );
    }
    let timeout_cancels = [a, b]
        .iter()
        .flat_map(|x| w.device(*x).sent.iter())
        .filter(|e| matches!(e.body, Body::Cancel { timeout: true, .. }))
        .count();
    assert_eq!(timeout_cancels, 0, "nobody timed dave's invitation out");
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, dv] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
}

/// The inviter device of dave's first `ringing`.
fn ringing_first(w: &SimWorld, x: DeviceIndex) -> String {
    sent_to(w, x, "ringing").remove(0)
}

#[test]
fn two_members_invite_the_same_user_and_it_declines_once() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("dave", "d1")]);
    let (a, b, dv) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    w.invite(a, &["dave"]).unwrap();
    w.invite(b, &["dave"]).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(dv, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, dv),
        vec![(Calling, R::RemoteVideoCall), (Prepared, R::LocalRejected)]
    );
    let expected = expect(&[("alice", In), ("bob", In), ("dave", MRejected)]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    w.run_for(Duration::from_secs(30));
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
}

// ------------------------------------------------------------------ two calls

/// alice (devices a1) calls bob and carol as a group; at the same moment bob calls alice
/// (`group`: as a group call, else 1:1). Answers the world, the devices and both call ids.
fn crossing_calls(seed: u64, group: bool) -> (SimWorld, [DeviceIndex; 3], CallId, CallId) {
    let mut w = SimWorld::new(seed, clean_plan());
    let a = w.add_device("alice", "a1", None);
    let b = w.add_device("bob", "b1", None);
    let c = w.add_device("carol", "c1", None);
    for x in [a, b, c] {
        w.prepare_default(x).unwrap();
    }
    let ida = w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    let idb = if group {
        w.call_group(b, &["alice"], CallType::Video).unwrap()
    } else {
        w.call(b, "alice", CallType::Video).unwrap()
    };
    (w, [a, b, c], ida, idb)
}

fn cross_call_glare(group: bool) {
    let mut outcomes = std::collections::HashSet::new();
    for seed in 0..8 {
        let (mut w, [a, b, c], ida, idb) = crossing_calls(seed, group);
        w.run_for(Duration::from_secs(1));
        let glare = vec![
            (Calling, R::LocalVideoCall),
            (Prepared, R::Glare),
            (Calling, R::RemoteVideoCall),
        ];
        if ida < idb {
            outcomes.insert("alice wins");
            // alice keeps calling; bob drops his call and rings for alice's.
            assert_eq!(
                states(&w, a),
                vec![(Calling, R::LocalVideoCall)],
                "seed {seed}"
            );
            assert_eq!(states(&w, b), glare, "seed {seed}");
            assert!(w.device(b).events().contains(&E::Glare), "seed {seed}");
            assert!(!w.device(a).events().contains(&E::Glare), "seed {seed}");
            assert_eq!(w.device(b).machine.call_info().unwrap().call_id, ida);
            assert_eq!(
                states(&w, c),
                vec![(Calling, R::RemoteVideoCall)],
                "seed {seed}"
            );
            assert_eq!(
                roster(&w, a),
                expect(&[("alice", In), ("bob", MRinging), ("carol", MRinging)]),
                "seed {seed}"
            );
            for x in [a, b] {
                assert!(
                    !w.device(x).events().contains(&E::BusyAutoRejected),
                    "seed {seed}"
                );
                assert!(
                    !w.device(x).events().contains(&E::RemoteCallBusy),
                    "seed {seed}"
                );
            }
            // The winning call is answered normally.
            w.command(b, Command::Accept).unwrap();
            w.run_for(Duration::from_secs(1));
            for x in [a, b] {
                assert_eq!(w.device(x).machine.state(), Connected, "seed {seed}");
                assert_eq!(w.device(x).machine.call_info().unwrap().call_id, ida);
            }
        } else {
            outcomes.insert("bob wins");
            // alice drops her call (cancelling carol too) and rings for bob's.
            assert_eq!(states(&w, a), glare, "seed {seed}");
            assert!(w.device(a).events().contains(&E::Glare), "seed {seed}");
            assert!(!w.device(b).events().contains(&E::Glare), "seed {seed}");
            assert_eq!(w.device(a).machine.call_info().unwrap().call_id, idb);
            assert_eq!(
                states(&w, b),
                vec![(Calling, R::LocalVideoCall)],
                "seed {seed}"
            );
            assert_eq!(
                states(&w, c),
                vec![
                    (Calling, R::RemoteVideoCall),
                    (Prepared, R::RemoteCancelled)
                ],
                "seed {seed}"
            );
            for x in [a, b] {
                assert!(
                    !w.device(x).events().contains(&E::BusyAutoRejected),
                    "seed {seed}"
                );
                assert!(
                    !w.device(x).events().contains(&E::RemoteCallBusy),
                    "seed {seed}"
                );
            }
            w.command(a, Command::Accept).unwrap();
            w.run_for(Duration::from_secs(1));
            for x in [a, b] {
                assert_eq!(w.device(x).machine.state(), Connected, "seed {seed}");
                assert_eq!(w.device(x).machine.call_info().unwrap().call_id, idb);
            }
            if group {
                let expected = expect(&[("alice", In), ("bob", In)]);
                assert_eq!(roster(&w, a), expected, "seed {seed}");
                assert_eq!(roster(&w, b), expected, "seed {seed}");
            }
        }
        // carol is never part of bob's call.
        assert!(
            !w.device(c)
                .sent
                .iter()
                .any(|e| e.call_id == idb && matches!(e.body, Body::Ringing { .. })),
            "seed {seed}"
        );
    }
    assert_eq!(outcomes.len(), 2, "both sides won in some seed");
}

#[test]
fn a_group_invite_from_an_invitee_of_a_calling_creator_is_glare() {
    cross_call_glare(true);
}

#[test]
fn a_one_to_one_invite_from_an_invitee_of_a_calling_creator_is_glare() {
    cross_call_glare(false);
}

#[test]
fn a_creator_with_someone_in_the_call_answers_another_invite_busy() {
    // Glare is only for a creator still calling: once someone answered, an invite for another
    // call from a member is declined as busy (§10.6, first point).
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    let ida = w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);
    // bob, still ringing for alice's call, cannot place a call; a fresh device of his can.
    let b2 = w.add_device("bob", "b2", None);
    w.prepare_default(b2).unwrap();
    let idb = w.call(b2, "alice", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b2),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::RemoteCallBusy)]
    );
    assert!(w.device(a).events().contains(&E::BusyAutoRejected));
    assert_eq!(w.device(a).machine.call_info().unwrap().call_id, ida);
    assert_ne!(ida, idb);
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
}
