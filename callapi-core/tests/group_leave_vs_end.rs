//! Leaving a group call is not ending it (`docs/PROTOCOL.md` §10.5, §10.7): a member that
//! leaves writes its record `left`, cancels its own pending invitations and quits alone, while
//! the others stay in the call; a member that ends the call sets `ended`, cancels its pending
//! invitations, and every other device ends the call (`CallEnded`) and cancels its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, CommandError, StateReason as R};
use callapi_core::protocol::{CallType, UserId};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

/// alice calls bob, carol and dave; bob and carol accept, dave keeps ringing (alice's pending
/// invitation). eve is prepared.
fn three_in_call_dave_ringing() -> (SimWorld, [DeviceIndex; 5]) {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
        ("eve", "e1"),
    ]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol", "dave"], CallType::Audio)
        .unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let expected = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", In),
        ("dave", MRinging),
    ]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    (w, [d[0], d[1], d[2], d[3], d[4]])
}

fn record_reason(w: &SimWorld, x: DeviceIndex, user: &str) -> Option<String> {
    let r = w.device(x).machine.members().unwrap();
    r.get(&UserId::new(user).unwrap()).unwrap().reason.clone()
}

#[test]
fn a_member_that_leaves_quits_alone() {
    let (mut w, [a, b, c, dv, _]) = three_in_call_dave_ringing();
    let before_a = states(&w, a);
    let before_c = states(&w, c);
    w.command(
        b,
        Command::Leave {
            reason: Some("bye".into()),
        },
    )
    .unwrap();
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteAudioCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted),
            (Prepared, R::LocalHangup),
        ]
    );
    assert!(w.device(b).events().contains(&E::LocalHangup));
    assert_eq!(changes_of(&w, b, "bob").last(), Some(&(Some(In), Left)));
    w.run_for(Duration::from_secs(1));

    let expected = expect(&[
        ("alice", In),
        ("bob", Left),
        ("carol", In),
        ("dave", MRinging),
    ]);
    for x in [a, c] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(
            changes_of(&w, x, "bob").last(),
            Some(&(Some(In), Left)),
            "device {x}"
        );
        assert_eq!(
            record_reason(&w, x, "bob").as_deref(),
            Some("bye"),
            "device {x}"
        );
        assert!(
            !w.device(x).events().contains(&E::RemoteHangup),
            "device {x}"
        );
    }
    // Nobody else's call state changed; dave's invitation (alice's) is untouched.
    assert_eq!(states(&w, a), before_a);
    assert_eq!(states(&w, c), before_c);
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteAudioCall)]);
    assert!(roster(&w, b).is_empty(), "bob is in no call any more");
    // A leave is not an end: bob cannot end a call he left, and ending is not possible from
    // `Prepared`.
    let r = w.command(b, Command::End { reason: None });
    assert!(matches!(r, Err(CommandError::InvalidState { .. })), "{r:?}");
}

#[test]
fn a_member_that_leaves_cancels_its_own_pending_invitations() {
    let (mut w, [a, b, c, dv, e]) = three_in_call_dave_ringing();
    w.invite(b, &["eve"]).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, e), vec![(Calling, R::RemoteAudioCall)]);
    w.command(b, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, e),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    // alice's invitation of dave is not bob's to cancel.
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteAudioCall)]);
    let expected = expect(&[
        ("alice", In),
        ("bob", Left),
        ("carol", In),
        ("dave", MRinging),
        ("eve", MCancelled),
    ]);
    for x in [a, c] {
        assert_eq!(roster(&w, x), expected, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        assert_eq!(
            changes_of(&w, x, "eve"),
            vec![
                (None, Inviting),
                (Some(Inviting), MRinging),
                (Some(MRinging), MCancelled)
            ],
            "device {x}"
        );
    }
    assert_eq!(
        changes_of(&w, b, "eve").last(),
        Some(&(Some(MRinging), MCancelled))
    );
}

#[test]
fn ending_the_call_ends_it_for_everyone_and_cancels_the_enders_invitations() {
    let (mut w, [a, b, c, dv, _]) = three_in_call_dave_ringing();
    w.command(
        a,
        Command::End {
            reason: Some("done".into()),
        },
    )
    .unwrap();
    assert_eq!(
        states(&w, a).last(),
        Some(&(Prepared, R::LocalHangup)),
        "the ender ends at once"
    );
    assert!(w.device(a).events().contains(&E::LocalHangup));
    assert_eq!(
        changes_of(&w, a, "dave").last(),
        Some(&(Some(MRinging), MCancelled))
    );
    w.run_for(Duration::from_secs(1));
    for x in [b, c] {
        assert_eq!(
            states(&w, x),
            vec![
                (Calling, R::RemoteAudioCall),
                (Connecting, R::LocalAccepted),
                (Connected, R::LocalAccepted),
                (Prepared, R::CallEnded),
            ],
            "device {x}"
        );
        assert!(
            w.device(x).events().contains(&E::RemoteHangup),
            "device {x}"
        );
        // The ender's pending invitation reached them as `cancelled`.
        assert_eq!(
            changes_of(&w, x, "dave").last(),
            Some(&(Some(MRinging), MCancelled)),
            "device {x}"
        );
        // Nobody wrote `left`: the call ended, nobody quit it.
        assert!(
            !changes(&w, x).iter().any(|(_, _, s)| *s == Left),
            "device {x}"
        );
    }
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c, dv] {
        assert_eq!(w.device(x).machine.state(), Prepared, "device {x}");
        assert!(w.device(x).machine.call_info().is_none(), "device {x}");
    }
}

#[test]
fn ending_the_call_cancels_every_members_pending_invitations() {
    let (mut w, [a, b, c, dv, e]) = three_in_call_dave_ringing();
    // carol invites eve; then bob (who invited nobody) ends the call.
    w.invite(c, &["eve"]).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, e), vec![(Calling, R::RemoteAudioCall)]);
    w.command(b, Command::End { reason: None }).unwrap();
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::LocalHangup)));
    w.run_for(Duration::from_secs(1));
    for x in [a, c] {
        assert_eq!(
            states(&w, x).last(),
            Some(&(Prepared, R::CallEnded)),
            "device {x}"
        );
    }
    // alice cancels dave, carol cancels eve, each its own.
    for x in [dv, e] {
        assert_eq!(
            states(&w, x),
            vec![
                (Calling, R::RemoteAudioCall),
                (Prepared, R::RemoteCancelled)
            ],
            "device {x}"
        );
    }
    assert_eq!(
        changes_of(&w, a, "dave").last(),
        Some(&(Some(MRinging), MCancelled))
    );
    assert_eq!(
        changes_of(&w, c, "eve").last(),
        Some(&(Some(MRinging), MCancelled))
    );
}

#[test]
fn devices_that_ended_with_different_rosters_go_quiet() {
    let (mut w, [a, b, c, dv, e]) = three_in_call_dave_ringing();
    // alice's pending invitation (dave) and carol's (eve) are each cancelled by their own
    // inviter when bob ends the call: alice and carol end knowing different records.
    w.invite(c, &["eve"]).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::End { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in [a, c] {
        assert_eq!(
            states(&w, x).last(),
            Some(&(Prepared, R::CallEnded)),
            "device {x}"
        );
    }
    for x in [dv, e] {
        assert_eq!(
            states(&w, x).last(),
            Some(&(Prepared, R::RemoteCancelled)),
            "device {x}"
        );
    }
    // The late rosters settle: a few envelopes, then silence.
    let sent = |w: &SimWorld| [a, b, c].map(|x| w.device(x).sent.len());
    let before = sent(&w);
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    let after = sent(&w);
    for i in 0..3 {
        assert!(
            after[i] - before[i] < 20,
            "device {i} sent {} more",
            after[i] - before[i]
        );
    }
}

#[test]
fn a_member_that_left_is_not_ended_again_and_the_rest_go_on() {
    let (mut w, [a, b, c, dv, _]) = three_in_call_dave_ringing();
    w.command(b, Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(c, Command::End { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    // bob left before: his last state is still his own hangup.
    assert_eq!(states(&w, b).last(), Some(&(Prepared, R::LocalHangup)));
    assert_eq!(
        states(&w, b).iter().filter(|(s, _)| *s == Prepared).count(),
        1
    );
    assert_eq!(states(&w, c).last(), Some(&(Prepared, R::LocalHangup)));
    assert_eq!(states(&w, a).last(), Some(&(Prepared, R::CallEnded)));
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCancelled)
        ]
    );
}
