//! Busy invitees of a group call (`docs/PROTOCOL.md` §10.3, §10.5, §10.6): a device already in
//! another call declines a group invite by itself with a busy `reject`, and its own call is
//! untouched; the inviter records the member `busy` only after the busy grace (250 ms – 2 s,
//! in case another device of the member rings), while the other invitee keeps ringing; when
//! every invitee is busy the call ends for the caller with `RemoteCallBusy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use callapi_signal_mock::world::SimWorld;
use group::*;

/// `caller` calls `callee` (user `callee_user`) 1:1 and the callee accepts.
fn in_a_call(w: &mut SimWorld, caller: usize, callee: usize, callee_user: &str) {
    w.call(caller, callee_user, CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(callee, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_ne!(w.device(callee).machine.state(), Prepared);
}

/// The busy rejects device `from` sent.
fn busy_rejects(w: &SimWorld, from: usize) -> Vec<String> {
    w.device(from)
        .sent
        .iter()
        .filter(|e| matches!(e.body, Body::Reject { busy: true, .. }))
        .map(|e| e.to.to_string())
        .collect()
}

#[test]
fn a_busy_invitee_is_busy_after_the_grace_and_the_other_keeps_ringing() {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let (a, b, c, dv) = (d[0], d[1], d[2], d[3]);
    in_a_call(&mut w, dv, b, "bob");
    let bob_states = w.device(b).states();
    let bob_call = w.device(b).machine.call_info().unwrap().call_id;
    let bob_state = w.device(b).machine.state();
    let dave_states = w.device(dv).states();

    let start = w.elapsed();
    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    // The busy reply arrives at 20 ms; the grace lasts at least 250 ms from then.
    w.run_for(Duration::from_millis(265));
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", Inviting), ("carol", MRinging)])
    );
    // At most 2 s of grace.
    w.run_for(Duration::from_millis(20 + 2_000 + 50 - 265));
    assert!(w.elapsed() - start > Duration::from_millis(2_020));
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MBusy), ("carol", MRinging)])
    );
    assert_eq!(
        detailed_changes_of(&w, a, "bob"),
        vec![
            (None, Inviting, None, None),
            (Some(Inviting), MBusy, Some("busy".into()), None),
        ]
    );
    assert_eq!(record_of(&w, a, "bob").unwrap().seq, 3);

    // bob declined by himself, once, and his own call did not move.
    assert_eq!(busy_rejects(&w, b), vec!["alice"]);
    assert!(w.device(b).events().contains(&E::BusyAutoRejected));
    assert_eq!(w.device(b).states(), bob_states);
    assert_eq!(w.device(b).machine.state(), bob_state);
    assert_eq!(w.device(b).machine.call_info().unwrap().call_id, bob_call);
    assert!(roster(&w, b).is_empty());
    assert!(w.member_changes(b).is_empty());
    assert_eq!(w.device(dv).states(), dave_states);
    assert!(w.member_changes(dv).is_empty());

    // carol keeps ringing and alice keeps calling.
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(
        changes_of(&w, a, "carol"),
        vec![(None, Inviting), (Some(Inviting), MRinging)]
    );
    assert_eq!(changes_of(&w, a, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, c, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, c, "bob"), vec![(None, Inviting)]);
    assert_eq!(changes_of(&w, c, "carol"), vec![(None, Inviting)]);

    // carol answers: the call goes on with her; bob stays busy.
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, c).last(), Some(&(Connected, R::LocalAccepted)));
    let expected = expect(&[("alice", In), ("bob", MBusy), ("carol", In)]);
    assert_eq!(roster(&w, a), expected);
    assert_eq!(roster(&w, c), expected);
    assert_eq!(
        changes_of(&w, c, "bob"),
        vec![(None, Inviting), (Some(Inviting), MBusy)]
    );
    assert_eq!(w.device(b).states(), bob_states);

    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c, dv] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

#[test]
fn every_invitee_busy_ends_the_call_remote_call_busy() {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
        ("erin", "e1"),
    ]);
    let (a, b, c, dv, e) = (d[0], d[1], d[2], d[3], d[4]);
    in_a_call(&mut w, dv, b, "bob");
    in_a_call(&mut w, e, c, "carol");
    let others: Vec<_> = [b, c, dv, e]
        .iter()
        .map(|x| (*x, w.device(*x).states()))
        .collect();

    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_millis(265));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalAudioCall)]);
    w.run_for(Duration::from_secs(3));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalAudioCall), (Prepared, R::RemoteCallBusy)]
    );
    assert!(roster(&w, a).is_empty());
    let busy = vec![
        (None, Inviting, None, None),
        (Some(Inviting), MBusy, Some("busy".into()), None),
    ];
    assert_eq!(detailed_changes_of(&w, a, "bob"), busy);
    assert_eq!(detailed_changes_of(&w, a, "carol"), busy);
    assert_eq!(
        changes_of(&w, a, "alice"),
        vec![(None, In), (Some(In), Left)]
    );
    // Nobody else moved.
    assert_eq!(busy_rejects(&w, b), vec!["alice"]);
    assert_eq!(busy_rejects(&w, c), vec!["alice"]);
    for (x, st) in others {
        assert_eq!(w.device(x).states(), st, "{x}");
        assert!(w.member_changes(x).is_empty(), "{x}");
    }

    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c, dv, e] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

#[test]
fn a_member_with_another_device_ringing_within_the_grace_is_not_busy() {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("bob", "b2"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let (a, b1, b2, c, dv) = (d[0], d[1], d[2], d[3], d[4]);
    in_a_call(&mut w, dv, b1, "bob");
    // b2 rang for dave too, and stopped when b1 answered: it is free.
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        w.device(b2).states().last(),
        Some(&(Prepared, R::AnsweredElsewhere))
    );
    let b1_states = w.device(b1).states();
    w.set_online(b2, false);
    let b2_before = w.device(b2).states().len();

    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    // b1's busy reply is in (20 ms); b2 comes back within the grace and rings.
    w.run_for(Duration::from_millis(100));
    assert_eq!(w.device(b2).states().len(), b2_before);
    w.set_online(b2, true);
    w.run_for(Duration::from_secs(3));
    assert_eq!(busy_rejects(&w, b1), vec!["alice"]);
    assert_eq!(w.device(b1).states(), b1_states);
    assert_eq!(
        w.device(b2).states()[b2_before..],
        [(Calling, R::RemoteVideoCall)]
    );
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRinging), ("carol", MRinging)])
    );
    assert_eq!(
        changes_of(&w, a, "bob"),
        vec![(None, Inviting), (Some(Inviting), MRinging)]
    );

    // b2 answers: bob is in the call on b2.
    w.command(b2, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(w.device(b2).machine.state(), Connected);
    let expected = expect(&[("alice", In), ("bob", In), ("carol", MRinging)]);
    for x in [a, b2] {
        assert_eq!(roster(&w, x), expected, "{x}");
        assert_eq!(
            record_of(&w, x, "bob")
                .unwrap()
                .device
                .map(|d| d.to_string()),
            Some("b2".into())
        );
    }
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(w.device(b1).states(), b1_states);
}
