//! After an accept, a group call goes on while at least two members are in it; a device whose
//! member is the only one left in the call, with no invitation of its own pending, ends the call
//! for itself (`EveryoneLeft`, `docs/PROTOCOL.md` §10.5). A pending invitation of its own keeps
//! the call going for it until that invitation ends.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::CallType;
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

/// alice calls `invitees`; bob and carol accept (the others keep ringing).
fn call_with(invitees: &[&str]) -> (SimWorld, Vec<DeviceIndex>) {
    let mut devices = vec![("alice", "a1"), ("bob", "b1"), ("carol", "c1")];
    if invitees.contains(&"dave") {
        devices.push(("dave", "d1"));
    }
    let (mut w, d) = world(&devices);
    w.call_group(d[0], invitees, CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(d[1], Command::Accept).unwrap();
    w.command(d[2], Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in &d[..3] {
        assert_eq!(w.device(*x).machine.state(), Connected, "device {x}");
    }
    (w, d)
}

const IN_CALL: [(callapi_core::call::CallState, R); 3] = [
    (Calling, R::RemoteVideoCall),
    (Connecting, R::LocalAccepted),
    (Connected, R::LocalAccepted),
];

#[test]
fn the_last_member_in_the_call_ends_it_when_everyone_else_left() {
    let (mut w, d) = call_with(&["bob", "carol"]);
    let (a, b, c) = (d[0], d[1], d[2]);

    w.command(c, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    let two_left = expect(&[("alice", In), ("bob", In), ("carol", Left)]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), two_left, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, b), IN_CALL.to_vec());
    let mut carol = IN_CALL.to_vec();
    carol.push((Prepared, R::LocalHangup));
    assert_eq!(states(&w, c), carol);

    w.command(b, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connected, R::RemoteAccepted),
            (Prepared, R::EveryoneLeft)
        ]
    );
    assert!(!w.device(a).events().contains(&E::RemoteHangup));
    // alice wrote herself `left` on the way out.
    assert_eq!(changes_of(&w, a, "bob").last(), Some(&(Some(In), Left)));
    assert_eq!(changes_of(&w, a, "alice").last(), Some(&(Some(In), Left)));
    let mut bob = IN_CALL.to_vec();
    bob.push((Prepared, R::LocalHangup));
    assert_eq!(states(&w, b), bob);
    assert_eq!(states(&w, c), carol, "carol, gone already, hears nothing");
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.state(), Prepared, "device {x}");
        assert!(w.device(x).machine.call_info().is_none(), "device {x}");
    }
}

#[test]
fn the_creator_leaving_leaves_the_other_two_in_the_call() {
    let (mut w, d) = call_with(&["bob", "carol"]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.command(a, Command::Leave { reason: None }).unwrap();
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::LocalHangup)));
    w.run_for(Duration::from_secs(1));
    let expected = expect(&[("alice", Left), ("bob", In), ("carol", In)]);
    for x in [b, c] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(states(&w, x), IN_CALL.to_vec(), "device {x}");
    }
    // Then carol leaves: bob is the last one in.
    w.command(c, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    let mut bob = IN_CALL.to_vec();
    bob.push((Prepared, R::EveryoneLeft));
    assert_eq!(states(&w, b), bob);
}

#[test]
fn a_pending_invitation_of_its_own_keeps_the_call_going_until_it_times_out() {
    let (mut w, d) = call_with(&["bob", "carol", "dave"]);
    let (a, b, c, dv) = (d[0], d[1], d[2], d[3]);
    w.command(c, Command::Leave { reason: None }).unwrap();
    w.command(b, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    // alice is the only one in, but dave still rings for her invitation.
    assert_eq!(
        roster(&w, a),
        expect(&[
            ("alice", In),
            ("bob", Left),
            ("carol", Left),
            ("dave", MRinging)
        ])
    );
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteVideoCall)]);

    // The invitation runs out at alice's call timeout (15 s): dave is missed, and alice, alone,
    // ends the call.
    // alice placed the call when the world began.
    w.run_for(Duration::from_secs(14) - w.elapsed());
    assert_eq!(w.device(a).machine.state(), Connected);
    w.run_for(Duration::from_secs(2));
    assert_eq!(
        states(&w, a),
        vec![
            (Calling, R::LocalVideoCall),
            (Connected, R::RemoteAccepted),
            (Prepared, R::EveryoneLeft)
        ]
    );
    let (at, _) = w
        .device(a)
        .notifications
        .iter()
        .rev()
        .find(|(_, n)| matches!(n, callapi_core::call::Notification::StateChanged(_)))
        .unwrap();
    assert_eq!(
        *at,
        Duration::from_secs(15),
        "ends at the invite's lifetime"
    );
    assert_eq!(
        changes_of(&w, a, "dave").last(),
        Some(&(Some(MRinging), Missed))
    );
    assert!(w.device(a).events().contains(&E::CallingTimeout));
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    for x in [b, c] {
        let mut s = IN_CALL.to_vec();
        s.push((Prepared, R::LocalHangup));
        assert_eq!(states(&w, x), s, "device {x}");
    }
}

#[test]
fn a_pending_invitation_that_is_answered_keeps_the_call_going() {
    let (mut w, d) = call_with(&["bob", "carol", "dave"]);
    let (a, b, c, dv) = (d[0], d[1], d[2], d[3]);
    w.command(c, Command::Leave { reason: None }).unwrap();
    w.command(b, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(a).machine.state(), Connected);
    w.command(dv, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let expected = expect(&[("alice", In), ("bob", Left), ("carol", Left), ("dave", In)]);
    for x in [a, dv] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    // Past the invitation's lifetime, nothing changes.
    w.run_for(Duration::from_secs(30));
    for x in [a, dv] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    // dave leaves: alice is alone with nothing pending.
    w.command(dv, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::EveryoneLeft)));
    assert_eq!(states(&w, dv).last(), Some(&(Prepared, R::LocalHangup)));
}
