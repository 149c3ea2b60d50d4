//! Unanswered group invitations (`docs/PROTOCOL.md` §10.1, §10.3, §10.5): at the inviter's call
//! timeout (`PrepareConfig::call_timeout`, 15 s by default) each unanswered invitee is recorded
//! `timeout` (a missed call, never `rejected`), its devices stop ringing with
//! `RemoteCallingTimeout`, and when nobody answered the call ends for the caller with
//! `CallingTimeout`; with one accept before the timeout only the other invitee is `timeout` and
//! the call goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, PrepareConfig, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use group::*;

const CALL_TIMEOUT: Duration = Duration::from_secs(15);

#[test]
fn the_default_call_timeout_is_15_s() {
    assert_eq!(PrepareConfig::new("room").call_timeout, CALL_TIMEOUT);
}

#[test]
fn nobody_answers_every_invitee_is_missed_and_the_call_ends_calling_timeout() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();

    // Just before the timeout everyone still rings.
    w.run_for(CALL_TIMEOUT - Duration::from_millis(50));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    for x in [b, c] {
        assert_eq!(states(&w, x), vec![(Calling, R::RemoteVideoCall)], "{x}");
    }
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRinging), ("carol", MRinging)])
    );

    // Past it, the call is over everywhere.
    w.run_for(Duration::from_millis(200));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Prepared, R::CallingTimeout)]
    );
    for x in [b, c] {
        assert_eq!(
            states(&w, x),
            vec![
                (Calling, R::RemoteVideoCall),
                (Prepared, R::RemoteCallingTimeout)
            ],
            "{x}"
        );
        assert!(w.device(x).events().contains(&E::RemoteCallingTimeout));
        // The invitee never declined.
        assert!(!w
            .device(x)
            .sent
            .iter()
            .any(|e| matches!(e.body, Body::Reject { .. })));
    }
    // Each invitation timed out on alice's side, and the cancels say so.
    assert_eq!(
        w.device(a)
            .events()
            .iter()
            .filter(|e| **e == E::CallingTimeout)
            .count(),
        2
    );
    for to in ["bob", "carol"] {
        assert!(
            w.device(a).sent.iter().any(
                |e| e.to.as_str() == to && matches!(e.body, Body::Cancel { timeout: true, .. })
            ),
            "{to}"
        );
    }
    let missed = vec![
        (None, Inviting, None, None),
        (Some(Inviting), MRinging, None, None),
        (Some(MRinging), Missed, None, None),
    ];
    assert_eq!(detailed_changes_of(&w, a, "bob"), missed);
    assert_eq!(detailed_changes_of(&w, a, "carol"), missed);
    assert_eq!(
        changes_of(&w, a, "alice"),
        vec![(None, In), (Some(In), Left)]
    );
    for x in [b, c] {
        assert_eq!(changes_of(&w, x, "alice"), vec![(None, In)], "{x}");
        assert_eq!(changes_of(&w, x, "bob"), vec![(None, Inviting)], "{x}");
        assert_eq!(changes_of(&w, x, "carol"), vec![(None, Inviting)], "{x}");
    }
    for x in [a, b, c] {
        assert!(
            !changes(&w, x).iter().any(|(_, _, s)| *s == MRejected),
            "{x}"
        );
    }

    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.state(), Prepared, "{x}");
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

#[test]
fn with_one_accept_only_the_other_invitee_is_missed_and_the_call_goes_on() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(5));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Connected, R::RemoteAccepted)));
    assert_eq!(states(&w, b).last(), Some(&(Connected, R::LocalAccepted)));

    // Just before the timeout carol still rings.
    w.run_for(CALL_TIMEOUT - Duration::from_secs(6) - Duration::from_millis(50));
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteAudioCall)]);
    let ringing = expect(&[("alice", In), ("bob", In), ("carol", MRinging)]);
    assert_eq!(roster(&w, a), ringing);
    assert_eq!(roster(&w, b), ringing);

    w.run_for(Duration::from_millis(200));
    assert_eq!(
        states(&w, c),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    // The call goes on for alice and bob, who both hold carol missed.
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalAudioCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteAudioCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    let missed = expect(&[("alice", In), ("bob", In), ("carol", Missed)]);
    assert_eq!(roster(&w, a), missed);
    assert_eq!(roster(&w, b), missed);
    assert_eq!(
        w.device(a).machine.members().unwrap().records(),
        w.device(b).machine.members().unwrap().records()
    );
    assert_eq!(record_of(&w, a, "carol").unwrap().seq, 3);

    assert_eq!(
        changes_of(&w, a, "carol"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), Missed)
        ]
    );
    assert_eq!(
        changes_of(&w, a, "bob"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), In)
        ]
    );
    assert_eq!(changes_of(&w, a, "alice"), vec![(None, In)]);
    // bob learnt carol ringing from his confirm, and missed from alice's roster.
    assert_eq!(
        changes_of(&w, b, "carol"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), Missed)
        ]
    );
    assert_eq!(
        changes_of(&w, b, "bob"),
        vec![(None, Inviting), (Some(Inviting), In)]
    );
    assert_eq!(changes_of(&w, b, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, c, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, c, "bob"), vec![(None, Inviting)]);
    assert_eq!(changes_of(&w, c, "carol"), vec![(None, Inviting)]);

    // Nothing changes later (bob's own expiry of carol's invitation writes the same record).
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    assert_eq!(roster(&w, a), missed);
    assert_eq!(roster(&w, b), missed);
    assert_eq!(changes_of(&w, b, "carol").len(), 3);
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

#[test]
fn an_accept_that_arrives_after_the_timeout_does_not_keep_the_invitee_connecting() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(2));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Connected, R::RemoteAccepted)));
    // carol answers 5 ms before alice's timer for her runs out: her accept arrives after it.
    let until = w.now() + (CALL_TIMEOUT - Duration::from_secs(3) - Duration::from_millis(5));
    w.run_until(until);
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteAudioCall)]);
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    // alice took no accept after the timeout: carol is missed, and her device does not wait.
    let missed = expect(&[("alice", In), ("bob", In), ("carol", Missed)]);
    assert_eq!(roster(&w, a), missed);
    assert_eq!(roster(&w, b), missed);
    // alice's cancel (timeout) stops carol's device, accepted or not.
    assert_eq!(
        states(&w, c),
        vec![
            (Calling, R::RemoteAudioCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    // carol was never in the call: her record stays `timeout`.
    assert_eq!(roster(&w, a), missed);
    assert_eq!(roster(&w, b), missed);
    assert_eq!(w.device(a).machine.state(), Connected);
    assert_eq!(w.device(b).machine.state(), Connected);
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}
