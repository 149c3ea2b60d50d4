//! An inviter may withdraw some of its invitations and keep the others (`docs/PROTOCOL.md`
//! §10.1, §10.3): `CancelInvites` stops only the named invitees' devices (`RemoteCancelled`) and
//! records them `cancelled`; a user with no pending invitation from this device cannot be
//! cancelled. The creator cancelling (or leaving) the whole call before anyone answered cancels
//! every pending invitation (§10.5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, CommandError, StateReason as R};
use callapi_core::protocol::{Body, CallType, UserId};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

fn users(names: &[&str]) -> Vec<UserId> {
    names.iter().map(|u| UserId::new(*u).unwrap()).collect()
}

fn cancel_invites(w: &mut SimWorld, x: DeviceIndex, names: &[&str]) -> Result<(), CommandError> {
    w.command(
        x,
        Command::CancelInvites {
            users: users(names),
        },
    )
}

/// alice calls bob, carol and dave; all three ring.
fn all_ringing() -> (SimWorld, [DeviceIndex; 4]) {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    w.call_group(d[0], &["bob", "carol", "dave"], CallType::Video)
        .unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        roster(&w, d[0]),
        expect(&[
            ("alice", In),
            ("bob", MRinging),
            ("carol", MRinging),
            ("dave", MRinging)
        ])
    );
    (w, [d[0], d[1], d[2], d[3]])
}

fn invalid_argument(r: Result<(), CommandError>) -> String {
    match r {
        Err(CommandError::InvalidArgument(text)) => text,
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
}

#[test]
fn cancelling_one_invitee_stops_only_that_invitee() {
    let (mut w, [a, b, c, dv]) = all_ringing();
    cancel_invites(&mut w, a, &["carol"]).unwrap();
    // The cancel goes to carol's ringing device only.
    let cancels: Vec<_> = w
        .device(a)
        .sent
        .iter()
        .filter(|e| matches!(e.body, Body::Cancel { .. }))
        .map(|e| {
            (
                e.to.to_string(),
                e.to_device.as_ref().map(|d| d.to_string()),
            )
        })
        .collect();
    assert_eq!(cancels, vec![("carol".to_string(), Some("c1".to_string()))]);
    let after = expect(&[
        ("alice", In),
        ("bob", MRinging),
        ("carol", MCancelled),
        ("dave", MRinging),
    ]);
    assert_eq!(roster(&w, a), after);
    assert_eq!(
        changes_of(&w, a, "carol"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), MCancelled)
        ]
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, c),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert!(w.device(c).events().contains(&E::RemoteCancelled));
    for x in [b, dv] {
        assert_eq!(
            states(&w, x),
            vec![(Calling, R::RemoteVideoCall)],
            "device {x}"
        );
    }
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(roster(&w, a), after);

    // bob answers: the call goes on with carol recorded `cancelled` everywhere.
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let expected = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", MCancelled),
        ("dave", MRinging),
    ]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteVideoCall)]);

    // With someone in the call, alice withdraws dave too; bob hears of it.
    cancel_invites(&mut w, a, &["dave"]).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    let expected = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", MCancelled),
        ("dave", MCancelled),
    ]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    assert_eq!(
        changes_of(&w, b, "dave").last(),
        Some(&(Some(MRinging), MCancelled))
    );
    // The cancelled invitees' devices are quiet and not in any call.
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [c, dv] {
        assert!(w.device(x).machine.call_info().is_none(), "device {x}");
        assert_eq!(w.device(x).machine.state(), Prepared, "device {x}");
    }
}

#[test]
fn only_this_devices_pending_invitations_can_be_cancelled() {
    let (mut w, [a, b, c, dv]) = all_ringing();
    let sent = |w: &SimWorld| [a, b, c, dv].map(|x| w.device(x).sent.len());
    let before = sent(&w);

    // Never invited.
    let text = invalid_argument(cancel_invites(&mut w, a, &["erin"]));
    assert!(
        text.contains("erin") && text.contains("no pending invitation"),
        "{text}"
    );
    // One bad name refuses the whole command: carol keeps ringing.
    invalid_argument(cancel_invites(&mut w, a, &["carol", "erin"]));
    // Not this device's invitation: bob, ringing, never invited dave.
    invalid_argument(cancel_invites(&mut w, b, &["dave"]));
    assert_eq!(sent(&w), before, "a refused cancel sends nothing");

    // An invitation that already ended (carol cancelled once) cannot be cancelled again.
    cancel_invites(&mut w, a, &["carol"]).unwrap();
    w.run_for(Duration::from_secs(1));
    let text = invalid_argument(cancel_invites(&mut w, a, &["carol"]));
    assert!(text.contains("carol"), "{text}");

    // bob is in the call now, but dave is alice's invitation, not his.
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(b).machine.state(), Connected);
    let text = invalid_argument(cancel_invites(&mut w, b, &["dave"]));
    assert!(text.contains("dave"), "{text}");
    // Nor is an accepted member anyone's pending invitation.
    invalid_argument(cancel_invites(&mut w, a, &["bob"]));
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteVideoCall)]);
    let expected = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", MCancelled),
        ("dave", MRinging),
    ]);
    for x in [a, b] {
        assert_eq!(roster(&w, x), expected, "device {x}");
    }

    // Outside a group call there is nothing to cancel.
    let r = cancel_invites(&mut w, c, &["dave"]);
    assert!(matches!(r, Err(CommandError::InvalidState { .. })), "{r:?}");
}

/// The creator gave up before anyone answered: every invitee stopped (`RemoteCancelled`) and
/// alice recorded each of them `cancelled` and herself `left`.
fn assert_everyone_cancelled(w: &SimWorld, [a, b, c, dv]: [DeviceIndex; 4], rang: bool) {
    for x in [b, c, dv] {
        assert_eq!(
            states(w, x),
            vec![
                (Calling, R::RemoteVideoCall),
                (Prepared, R::RemoteCancelled)
            ],
            "device {x}"
        );
        assert!(
            w.device(x).events().contains(&E::RemoteCancelled),
            "device {x}"
        );
        assert!(w.device(x).machine.call_info().is_none(), "device {x}");
    }
    assert_eq!(
        states(w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::LocalCancelled)]
    );
    assert!(w.device(a).events().contains(&E::LocalCancelled));
    let pending = if rang { MRinging } else { Inviting };
    for u in ["bob", "carol", "dave"] {
        assert_eq!(
            changes_of(w, a, u).last(),
            Some(&(Some(pending), MCancelled)),
            "{u}"
        );
    }
    assert_eq!(changes_of(w, a, "alice").last(), Some(&(Some(In), Left)));
    assert!(roster(w, a).is_empty(), "alice is in no call any more");
}

#[test]
fn the_creator_cancelling_before_anyone_answered_cancels_every_invitee() {
    let (mut w, d) = all_ringing();
    w.command(d[0], Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_everyone_cancelled(&w, d, true);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
}

#[test]
fn the_creator_leaving_before_anyone_answered_cancels_every_invitee() {
    let (mut w, d) = all_ringing();
    w.command(d[0], Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_everyone_cancelled(&w, d, true);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
}

#[test]
fn the_creator_cancelling_before_anyone_rang_cancels_every_invitee() {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    w.call_group(d[0], &["bob", "carol", "dave"], CallType::Video)
        .unwrap();
    w.run_for(Duration::from_millis(5));
    w.command(d[0], Command::Cancel { reason: None }).unwrap();
    // Nobody rang yet: the cancels go to each invitee user (every device holding the invite).
    let cancels: Vec<_> = w
        .device(d[0])
        .sent
        .iter()
        .filter(|e| matches!(e.body, Body::Cancel { .. }))
        .map(|e| (e.to.to_string(), e.to_device.is_none()))
        .collect();
    assert_eq!(
        cancels,
        vec![
            ("bob".to_string(), true),
            ("carol".to_string(), true),
            ("dave".to_string(), true)
        ]
    );
    w.run_for(Duration::from_secs(1));
    assert_everyone_cancelled(&w, [d[0], d[1], d[2], d[3]], false);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
}

#[test]
fn an_accepted_member_cannot_cancel_the_call() {
    let (mut w, [a, b, _, dv]) = all_ringing();
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    // `Cancel` is the creator's, before an answer; bob (and alice, now connected) must leave.
    for x in [a, b] {
        let r = w.command(x, Command::Cancel { reason: None });
        assert!(
            matches!(r, Err(CommandError::InvalidState { .. })),
            "device {x}: {r:?}"
        );
    }
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteVideoCall)]);
    for x in [a, b] {
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
}
