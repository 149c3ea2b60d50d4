//! A member that declined, missed or left a group call may join it later by its id while it is
//! not ended (`docs/PROTOCOL.md` §10.7): it writes its record `accepted`, sends its roster to the
//! members in the call, and is in the call (`Connected`) once a member's roster comes back
//! without `ended`. A call ended for everyone, or one the device never knew, cannot be joined;
//! a join that nobody answers within the call timeout fails, and one answered with `ended` too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, CallState, Command, CommandError, StateReason as R};
use callapi_core::protocol::{CallId, CallType, MemberState, UserId};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

fn join(w: &mut SimWorld, x: DeviceIndex, call_id: CallId) -> Result<(), CommandError> {
    w.command(x, Command::Join { call_id })
}

fn invalid_argument(r: Result<(), CommandError>) -> String {
    match r {
        Err(CommandError::InvalidArgument(text)) => text,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

/// When a device last changed state, since the world began.
fn last_state_at(w: &SimWorld, x: DeviceIndex) -> Duration {
    w.device(x)
        .notifications
        .iter()
        .rev()
        .find(|(_, n)| matches!(n, callapi_core::call::Notification::StateChanged(_)))
        .map(|(at, _)| *at)
        .unwrap()
}

/// alice calls bob and carol; bob accepts; carol ends her part by `carol_out`.
fn carol_out(
    carol_out: impl FnOnce(&mut SimWorld, DeviceIndex),
) -> (SimWorld, [DeviceIndex; 3], CallId) {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    let id = w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    carol_out(&mut w, c);
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(c).machine.state(), Prepared);
    for x in [a, b] {
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    (w, [a, b, c], id)
}

/// carol joins and every device converges with her in the call.
fn joins_and_converges(
    mut w: SimWorld,
    [a, b, c]: [DeviceIndex; 3],
    id: CallId,
    (own_before, others_before): (MemberState, MemberState),
) {
    let before = states(&w, c);
    let a_before = states(&w, a);
    let b_before = states(&w, b);
    join(&mut w, c, id).unwrap();
    assert_eq!(states(&w, c).last(), Some(&(Connecting, R::LocalAccepted)));
    assert_eq!(w.device(c).machine.call_info().unwrap().call_id, id);
    assert!(w.device(c).events().contains(&E::LocalJoined));
    assert_eq!(
        changes_of(&w, c, "carol").last(),
        Some(&(Some(own_before), In))
    );
    w.run_for(Duration::from_secs(1));
    let mut expected_states = before;
    expected_states.push((Connecting, R::LocalAccepted));
    expected_states.push((Connected, R::LocalAccepted));
    assert_eq!(states(&w, c), expected_states);
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        let m = w.device(x).machine.members().unwrap();
        let rec = m.get(&UserId::new("carol").unwrap()).unwrap();
        assert_eq!(
            rec.device.as_ref().map(|d| d.as_str()),
            Some("c1"),
            "device {x}"
        );
    }
    for x in [a, b] {
        assert_eq!(
            changes_of(&w, x, "carol").last(),
            Some(&(Some(others_before), In)),
            "device {x}"
        );
    }
    assert_eq!(states(&w, a), a_before, "alice's call went on");
    assert_eq!(states(&w, b), b_before, "bob's call went on");
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        assert_eq!(w.device(x).machine.pending_messages(), 0, "device {x}");
    }
}

#[test]
fn a_member_that_declined_joins_later() {
    let (w, d, id) = carol_out(|w, c| w.command(c, Command::Reject { reason: None }).unwrap());
    assert_eq!(
        states(&w, d[2]),
        vec![(Calling, R::RemoteVideoCall), (Prepared, R::LocalRejected)]
    );
    for x in [d[0], d[1]] {
        assert_eq!(
            roster(&w, x),
            expect(&[("alice", In), ("bob", In), ("carol", MRejected)]),
            "device {x}"
        );
    }
    // The decliner recorded its own decline, so its join starts from `rejected`.
    joins_and_converges(w, d, id, (MRejected, MRejected));
}

#[test]
fn a_member_that_missed_the_call_joins_later() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    let id = w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(20));
    assert_eq!(
        states(&w, c),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    for x in [a, b] {
        assert_eq!(
            roster(&w, x),
            expect(&[("alice", In), ("bob", In), ("carol", Missed)]),
            "device {x}"
        );
    }
    joins_and_converges(w, [a, b, c], id, (Inviting, Missed));
}

#[test]
fn a_member_that_left_joins_again() {
    let (w, d, id) = carol_out(|w, c| {
        w.command(c, Command::Accept).unwrap();
        w.run_for(Duration::from_secs(1));
        assert_eq!(w.device(c).machine.state(), Connected);
        w.command(c, Command::Leave { reason: None }).unwrap();
    });
    for x in [d[0], d[1]] {
        assert_eq!(
            roster(&w, x),
            expect(&[("alice", In), ("bob", In), ("carol", Left)]),
            "device {x}"
        );
    }
    joins_and_converges(w, d, id, (Left, Left));
}

#[test]
fn a_call_ended_for_everyone_or_unknown_cannot_be_joined() {
    let (mut w, [a, b, c], id) =
        carol_out(|w, c| w.command(c, Command::Reject { reason: None }).unwrap());
    w.command(a, Command::End { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::CallEnded)));
    // bob learnt `ended`; alice ended it herself.
    for x in [a, b] {
        let sent = w.device(x).sent.len();
        let text = invalid_argument(join(&mut w, x, id));
        assert!(text.contains("ended for everyone"), "device {x}: {text}");
        assert_eq!(w.device(x).machine.state(), Prepared, "device {x}");
        assert_eq!(w.device(x).sent.len(), sent, "device {x}");
    }
    // A call id nobody knows.
    let text = invalid_argument(join(&mut w, c, CallId::new_v4()));
    assert!(
        text.contains("not a group call this device knows"),
        "{text}"
    );
    // A 1:1 call is not a group call.
    let one = w.call(a, "carol", CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(c, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in [a, c] {
        let text = invalid_argument(join(&mut w, x, one));
        assert!(text.contains("not a group call"), "device {x}: {text}");
    }
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.state(), Prepared, "device {x}");
        assert!(w.device(x).machine.call_info().is_none(), "device {x}");
    }
}

#[test]
fn joining_while_in_another_call_is_refused() {
    let (mut w, [_, _, c], id) =
        carol_out(|w, c| w.command(c, Command::Reject { reason: None }).unwrap());
    // erin calls carol 1:1: carol rings for that call.
    let e = w.add_device("erin", "e1", None);
    w.prepare_default(e).unwrap();
    w.call(e, "carol", CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(c).machine.state(), Calling);
    let r = join(&mut w, c, id);
    assert!(matches!(r, Err(CommandError::Busy(_))), "{r:?}");
    assert_eq!(w.device(c).machine.state(), Calling);
}

#[test]
fn a_join_answered_with_ended_fails() {
    let (mut w, [a, b, c], id) = carol_out(|w, c| {
        w.command(c, Command::Accept).unwrap();
        w.run_for(Duration::from_secs(1));
        w.command(c, Command::Leave { reason: None }).unwrap();
    });
    // carol left before alice ended the call: carol does not know it ended.
    w.command(a, Command::End { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::CallEnded)));
    let before = states(&w, c);
    join(&mut w, c, id).unwrap();
    w.run_for(Duration::from_secs(1));
    let mut expected = before;
    expected.push((Connecting, R::LocalAccepted));
    expected.push((Prepared, R::CallEnded));
    assert_eq!(states(&w, c), expected);
    assert!(w.device(c).machine.call_info().is_none());
    // Now carol knows: a second join is refused at once.
    let text = invalid_argument(join(&mut w, c, id));
    assert!(text.contains("ended for everyone"), "{text}");
    for x in [a, b] {
        assert_eq!(states(&w, x).last().unwrap().0, Prepared, "device {x}");
    }
    assert!(w.run_until_quiet(Duration::from_secs(120)));
}

#[test]
fn a_join_nobody_answers_fails_at_the_call_timeout() {
    let (mut w, [a, b, c], id) =
        carol_out(|w, c| w.command(c, Command::Reject { reason: None }).unwrap());
    w.set_online(a, false);
    w.set_online(b, false);
    let before = states(&w, c);
    let joined_at = w.elapsed();
    join(&mut w, c, id).unwrap();
    w.run_for(Duration::from_secs(15) - Duration::from_millis(1));
    assert_eq!(w.device(c).machine.state(), Connecting, "still waiting");
    w.run_for(Duration::from_millis(2));
    let mut expected = before;
    expected.push((Connecting, R::LocalAccepted));
    expected.push((Prepared, R::CallingTimeout));
    assert_eq!(states(&w, c), expected);
    assert_eq!(last_state_at(&w, c), joined_at + Duration::from_secs(15));
    assert!(w.device(c).machine.call_info().is_none());
    // carol withdrew her record on the way out.
    assert_eq!(changes_of(&w, c, "carol").last(), Some(&(Some(In), Left)));

    // alice and bob come back (within their signal grace): they learn carol came and went,
    // and their call goes on.
    w.set_online(a, true);
    w.set_online(b, true);
    w.run_for(Duration::from_secs(5));
    let expected = expect(&[("alice", In), ("bob", In), ("carol", Left)]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        assert_eq!(
            states(&w, x)
                .iter()
                .filter(|(s, _)| *s == CallState::Prepared)
                .count(),
            0,
            "device {x}"
        );
    }
}
