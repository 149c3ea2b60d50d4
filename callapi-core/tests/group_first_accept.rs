//! The first accept of a group call (`docs/PROTOCOL.md` §10.3, §10.4): it puts the caller in the
//! call (`Connected`, `RemoteAccepted`); the accepting device is `Connecting` until the
//! inviter's `confirm` arrives; another member's answer never ends my ringing, so the other
//! invitee keeps ringing and may accept later; then every device in the call holds the same
//! roster, and each was told exactly the member changes it saw.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{Command, StateReason as R};
use callapi_core::protocol::{Body, CallType};
use group::*;

/// The `members` envelopes a device sent to `to`.
fn members_sent_to(w: &callapi_signal_mock::world::SimWorld, from: usize, to: &str) -> usize {
    w.device(from)
        .sent
        .iter()
        .filter(|e| e.to.as_str() == to && matches!(e.body, Body::Members { .. }))
        .count()
}

#[test]
fn first_accept_connects_the_caller_and_the_other_invitee_keeps_ringing_then_joins() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in [b, c] {
        assert_eq!(states(&w, x), vec![(Calling, R::RemoteVideoCall)], "{x}");
    }
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRinging), ("carol", MRinging)])
    );

    // bob accepts: he is Connecting until alice's confirm, alice is in the call at his accept.
    w.command(b, Command::Accept).unwrap();
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted)
        ]
    );
    w.run_for(Duration::from_millis(15)); // the accept arrived (10 ms), the confirm not yet
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, b).last(), Some(&(Connecting, R::LocalAccepted)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    // carol keeps ringing: bob's answer is not hers.
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);
    assert_eq!(w.device(c).machine.state(), Calling);
    let bob_in = expect(&[("alice", In), ("bob", In), ("carol", MRinging)]);
    assert_eq!(roster(&w, a), bob_in);
    assert_eq!(roster(&w, b), bob_in);
    // carol still holds the roster of her invite: ringing invitees get no `members`.
    assert_eq!(
        roster(&w, c),
        expect(&[("alice", In), ("bob", Inviting), ("carol", Inviting)])
    );
    assert_eq!(members_sent_to(&w, a, "carol"), 0);
    assert_eq!(members_sent_to(&w, b, "carol"), 0);
    let bob_rec = record_of(&w, a, "bob").unwrap();
    assert_eq!(bob_rec.seq, 3);
    assert_eq!(bob_rec.device.as_ref().map(|x| x.as_str()), Some("b1"));
    assert_eq!(record_of(&w, b, "bob").unwrap(), bob_rec);

    // carol accepts later: she is in the call too.
    w.command(c, Command::Accept).unwrap();
    assert_eq!(states(&w, c).last(), Some(&(Connecting, R::LocalAccepted)));
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, c),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    // Nobody else's state moved.
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, b).len(), 3);

    // Every device in the call converges to the same roster, record for record.
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    let records = w.device(a).machine.members().unwrap().records().to_vec();
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(
            w.device(x).machine.members().unwrap().records(),
            records.as_slice(),
            "device {x}"
        );
        assert!(!w.device(x).machine.members().unwrap().ended());
    }
    let carol_rec = record_of(&w, a, "carol").unwrap();
    assert_eq!(carol_rec.seq, 3);
    assert_eq!(carol_rec.device.as_ref().map(|x| x.as_str()), Some("c1"));

    // The exact member changes, on every device.
    let invited_rang_in = vec![
        (None, Inviting),
        (Some(Inviting), MRinging),
        (Some(MRinging), In),
    ];
    let invited_in = vec![(None, Inviting), (Some(Inviting), In)];
    // alice wrote every step of both invitations.
    assert_eq!(changes_of(&w, a, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, a, "bob"), invited_rang_in);
    assert_eq!(changes_of(&w, a, "carol"), invited_rang_in);
    // bob: his invite, then alice's confirm (carol ringing), then carol's accept.
    assert_eq!(changes_of(&w, b, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, b, "bob"), invited_in);
    assert_eq!(changes_of(&w, b, "carol"), invited_rang_in);
    // carol: her invite, then alice's confirm with bob and her in the call.
    assert_eq!(changes_of(&w, c, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, c, "bob"), invited_in);
    assert_eq!(changes_of(&w, c, "carol"), invited_in);

    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        assert_eq!(w.device(x).machine.pending_messages(), 0, "device {x}");
    }
}
