//! Any member in the call may invite more users mid-call, not only the creator
//! (`docs/PROTOCOL.md` §10.3): the new invitee rings with the inviter's roster in its invite,
//! every member's roster shows it `inviting` then `ringing`, and once it accepts everyone in the
//! call (the new member too) holds the same roster. A user already in the call or still ringing
//! cannot be invited again, and only a device in a group call can invite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, CommandError, StateReason as R};
use callapi_core::protocol::{Body, CallId, CallType, MemberState, UserId};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

fn users(names: &[&str]) -> Vec<UserId> {
    names.iter().map(|u| UserId::new(*u).unwrap()).collect()
}

/// alice calls bob and carol, both accept: three members in the call; dave is prepared.
fn three_in_call() -> (SimWorld, [DeviceIndex; 4], CallId) {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let (a, b, c) = (d[0], d[1], d[2]);
    let id = w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    (w, [d[0], d[1], d[2], d[3]], id)
}

/// The rosters of the group invites a device sent to `user`.
fn invites_to(w: &SimWorld, from: DeviceIndex, user: &str) -> Vec<Vec<(String, MemberState)>> {
    w.device(from)
        .sent
        .iter()
        .filter(|e| e.to.as_str() == user)
        .filter_map(|e| match &e.body {
            Body::Invite {
                members: Some(m), ..
            } => {
                let mut v: Vec<_> = m.iter().map(|r| (r.user.to_string(), r.state)).collect();
                v.sort_by(|x, y| x.0.cmp(&y.0));
                Some(v)
            }
            _ => None,
        })
        .collect()
}

#[test]
fn an_accepted_member_invites_a_user_mid_call_and_everyone_converges() {
    let (mut w, [a, b, c, dv], id) = three_in_call();
    let before: Vec<_> = [a, b, c].iter().map(|x| states(&w, *x)).collect();

    // bob, who did not create the call, invites dave.
    w.invite(b, &["dave"]).unwrap();
    let inviting = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", In),
        ("dave", Inviting),
    ]);
    assert_eq!(roster(&w, b), inviting);
    // dave's invite carries bob's roster, with dave's `inviting` record in it.
    assert_eq!(invites_to(&w, b, "dave"), vec![inviting.clone()]);
    // The others learn of the invitation before dave's ringing comes back.
    w.run_for(Duration::from_millis(15));
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), inviting, "device {x}");
    }
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(w.device(dv).machine.call_info().unwrap().call_id, id);
    assert_eq!(roster(&w, dv), inviting, "dave rings with bob's roster");
    assert_eq!(
        changes(&w, dv),
        vec![
            ("alice".into(), None, In),
            ("bob".into(), None, In),
            ("carol".into(), None, In),
            ("dave".into(), None, Inviting),
        ]
    );

    w.run_for(Duration::from_secs(1));
    let ringing = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", In),
        ("dave", MRinging),
    ]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), ringing, "device {x}");
        assert_eq!(
            changes_of(&w, x, "dave"),
            vec![(None, Inviting), (Some(Inviting), MRinging)],
            "device {x}"
        );
    }
    // Only dave's inviter hears that dave's device rings.
    assert!(w.device(b).events().contains(&E::RemoteUserRecvCall));
    // Inviting changed nobody's call state.
    for (i, x) in [a, b, c].iter().enumerate() {
        assert_eq!(states(&w, *x), before[i], "device {x}");
    }

    w.command(dv, Command::Accept).unwrap();
    assert_eq!(states(&w, dv).last(), Some(&(Connecting, R::LocalAccepted)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted),
        ]
    );
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In), ("dave", In)]);
    for x in [a, b, c, dv] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    for (i, x) in [a, b, c].into_iter().enumerate() {
        assert_eq!(
            changes_of(&w, x, "dave"),
            vec![
                (None, Inviting),
                (Some(Inviting), MRinging),
                (Some(MRinging), In)
            ],
            "device {x}"
        );
        assert_eq!(states(&w, x), before[i], "device {x}");
    }
    assert_eq!(
        changes_of(&w, dv, "dave").last(),
        Some(&(Some(Inviting), In))
    );
    // The accepted record names dave's device everywhere.
    for x in [a, b, c, dv] {
        let m = w.device(x).machine.members().unwrap();
        let rec = m.get(&UserId::new("dave").unwrap()).unwrap();
        assert_eq!(rec.device.as_ref().map(|d| d.as_str()), Some("d1"));
    }
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c, dv] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
}

#[test]
fn a_user_in_the_call_or_ringing_cannot_be_invited_again() {
    let (mut w, [a, b, c, dv], _) = three_in_call();
    let sent = |w: &SimWorld| [a, b, c, dv].map(|x| w.device(x).sent.len());
    let invalid = |r: Result<(), CommandError>| match r {
        Err(CommandError::InvalidArgument(text)) => text,
        other => panic!("expected InvalidArgument, got {other:?}"),
    };

    // Already in the call.
    let before = sent(&w);
    let text = invalid(w.invite(b, &["carol"]));
    assert!(
        text.contains("carol") && text.contains("accepted"),
        "{text}"
    );
    assert!(invalid(w.invite(a, &["bob"])).contains("bob"));
    assert_eq!(sent(&w), before, "a refused invite sends nothing");

    // Ringing (invited by bob): neither bob nor another member may invite dave again.
    w.invite(b, &["dave"]).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(roster(&w, a).last(), Some(&("dave".to_string(), MRinging)));
    let before = sent(&w);
    let text = invalid(w.invite(b, &["dave"]));
    assert!(text.contains("dave") && text.contains("ringing"), "{text}");
    let text = invalid(w.invite(a, &["dave"]));
    assert!(text.contains("dave") && text.contains("ringing"), "{text}");
    // One bad name refuses the whole command.
    invalid(w.command(
        c,
        Command::Invite {
            users: users(&["erin", "dave"]),
        },
    ));
    assert_eq!(sent(&w), before, "a refused invite sends nothing");
    assert_eq!(
        states(&w, dv),
        vec![(Calling, R::RemoteVideoCall)],
        "dave rings once"
    );
    for x in [a, b, c] {
        assert_eq!(
            changes_of(&w, x, "dave"),
            vec![(None, Inviting), (Some(Inviting), MRinging)],
            "device {x}"
        );
    }
}

#[test]
fn only_a_device_in_a_group_call_can_invite() {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let (a, b, c, dv) = (d[0], d[1], d[2], d[3]);
    let invalid_state = |r: Result<(), CommandError>| {
        assert!(
            matches!(r, Err(CommandError::InvalidState { .. })),
            "expected InvalidState, got {r:?}"
        )
    };

    // In no call at all.
    invalid_state(w.invite(dv, &["alice"]));
    assert!(w.device(dv).sent.is_empty());

    // In a 1:1 call (calling, then connected).
    w.call(c, "dave", CallType::Audio).unwrap();
    invalid_state(w.invite(c, &["alice"]));
    w.run_for(Duration::from_secs(1));
    w.command(dv, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(c).machine.state(), Connected);
    invalid_state(w.invite(c, &["alice"]));
    invalid_state(w.invite(dv, &["alice"]));

    // Ringing for a group call (invited, not in it yet).
    w.call_group(a, &["bob"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteAudioCall)]);
    let sent = w.device(b).sent.len();
    invalid_state(w.invite(b, &["erin"]));
    assert_eq!(w.device(b).sent.len(), sent);
    assert_eq!(
        roster(&w, b),
        expect(&[("alice", In), ("bob", Inviting)]),
        "a refused invite writes nothing"
    );
    // Once bob is in, he can.
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(w.device(b).machine.state(), Connected);
    w.invite(b, &["erin"]).unwrap();
    assert_eq!(
        roster(&w, b),
        expect(&[("alice", In), ("bob", In), ("erin", Inviting)])
    );
}
