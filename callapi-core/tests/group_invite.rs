//! A prepared user calls several users at once: every invitee rings, the roster on every
//! device shows who is inviting and ringing, and the first accept puts the caller in the call
//! while the other invitee keeps ringing (`docs/PROTOCOL.md` §10.3).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{Command, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use group::*;

#[test]
fn a_group_call_rings_every_invitee_and_the_first_accept_connects_the_caller() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    let id = w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", Inviting), ("carol", Inviting)])
    );
    // Each invitee gets one invite with the whole roster in it.
    let invites: Vec<_> = w
        .device(a)
        .sent
        .iter()
        .filter(|e| {
            matches!(
                e.body,
                Body::Invite {
                    members: Some(_),
                    ..
                }
            )
        })
        .map(|e| e.to.to_string())
        .collect();
    assert_eq!(invites, vec!["bob", "carol"]);

    w.run_for(Duration::from_secs(1));
    for x in [b, c] {
        assert_eq!(states(&w, x), vec![(Calling, R::RemoteVideoCall)]);
        assert_eq!(w.device(x).machine.call_info().unwrap().call_id, id);
    }
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRinging), ("carol", MRinging)])
    );
    assert_eq!(
        changes_of(&w, a, "bob"),
        vec![(None, Inviting), (Some(Inviting), MRinging)]
    );

    w.command(b, Command::Accept).unwrap();
    assert_eq!(states(&w, b).last(), Some(&(Connecting, R::LocalAccepted)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Connected, R::RemoteAccepted)));
    assert_eq!(states(&w, b).last(), Some(&(Connected, R::LocalAccepted)));
    // carol is still ringing: bob's answer is not hers.
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);
    let expected = expect(&[("alice", In), ("bob", In), ("carol", MRinging)]);
    assert_eq!(roster(&w, a), expected);
    assert_eq!(roster(&w, b), expected);
    assert_eq!(
        changes_of(&w, b, "bob"),
        vec![(None, Inviting), (Some(Inviting), In)]
    );

    // carol accepts too: everyone in the call holds the same roster.
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected);
    }
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0);
    }
}

#[test]
fn the_invitee_list_is_checked() {
    let (mut w, d) = world(&[("alice", "a1")]);
    let a = d[0];
    let err = |r: Result<_, callapi_core::call::CommandError>| r.unwrap_err().to_string();
    assert!(err(w.call_group(a, &[], CallType::Audio)).contains("at least one"));
    assert!(err(w.call_group(a, &["bob", "bob"], CallType::Audio)).contains("twice"));
    assert!(err(w.call_group(a, &["alice"], CallType::Audio)).contains("yourself"));
    let ten: Vec<String> = (0..10).map(|i| format!("u{i}")).collect();
    let ten: Vec<&str> = ten.iter().map(String::as_str).collect();
    assert!(err(w.call_group(a, &ten, CallType::Audio)).contains("cap of 9"));
    assert_eq!(w.device(a).machine.state(), Prepared);
    assert!(w.device(a).sent.is_empty());
}
