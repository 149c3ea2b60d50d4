//! Declines in a group call (`docs/PROTOCOL.md` §10.3, §10.5): a decline ends only the declining
//! member's ringing and is recorded `rejected` with the reason given; one decline alone ends the
//! call for nobody else (the other invitee keeps ringing, the caller stays `Calling`); when every
//! invitee declined, the call ends for the caller with `RemoteRejected`. A member that declined
//! does not ring again for a copy of the same invite.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallType, Envelope};
use callapi_signal_mock::world::SimWorld;
use group::*;

fn reject(reason: &str) -> Command {
    Command::Reject {
        reason: Some(reason.into()),
    }
}

/// The group invite `from` sent to `to`.
fn invite_to(w: &SimWorld, from: usize, to: &str) -> Envelope {
    w.device(from)
        .sent
        .iter()
        .find(|e| e.to.as_str() == to && matches!(e.body, Body::Invite { .. }))
        .cloned()
        .expect("an invite")
}

#[test]
fn one_decline_ends_only_that_members_ringing_and_both_end_the_call() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in [b, c] {
        assert_eq!(states(&w, x), vec![(Calling, R::RemoteAudioCall)], "{x}");
    }

    // bob declines: only bob's ringing ends.
    w.command(b, reject("no thanks")).unwrap();
    assert_eq!(
        states(&w, b),
        vec![(Calling, R::RemoteAudioCall), (Prepared, R::LocalRejected)]
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a), vec![(Calling, R::LocalAudioCall)]);
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteAudioCall)]);
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRejected), ("carol", MRinging)])
    );
    let bob_rec = record_of(&w, a, "bob").unwrap();
    assert_eq!(bob_rec.state, MRejected);
    assert_eq!(bob_rec.seq, 3);
    assert_eq!(bob_rec.reason.as_deref(), Some("no thanks"));
    assert_eq!(bob_rec.device, None);
    assert!(w.device(a).events().contains(&E::RemoteRejected));
    // Nobody is in the call with carol, and she is not told about bob.
    assert_eq!(
        roster(&w, c),
        expect(&[("alice", In), ("bob", Inviting), ("carol", Inviting)])
    );

    // carol declines too: the call ends for alice, rejected.
    w.command(c, reject("driving")).unwrap();
    assert_eq!(
        states(&w, c),
        vec![(Calling, R::RemoteAudioCall), (Prepared, R::LocalRejected)]
    );
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalAudioCall), (Prepared, R::RemoteRejected)]
    );
    assert_eq!(w.device(a).machine.state(), Prepared);
    assert!(roster(&w, a).is_empty());

    // The exact member changes, on every device.
    assert_eq!(
        detailed_changes_of(&w, a, "bob"),
        vec![
            (None, Inviting, None, None),
            (Some(Inviting), MRinging, None, None),
            (Some(MRinging), MRejected, Some("no thanks".into()), None),
        ]
    );
    assert_eq!(
        detailed_changes_of(&w, a, "carol"),
        vec![
            (None, Inviting, None, None),
            (Some(Inviting), MRinging, None, None),
            (Some(MRinging), MRejected, Some("driving".into()), None),
        ]
    );
    assert_eq!(
        changes_of(&w, a, "alice"),
        vec![(None, In), (Some(In), Left)]
    );
    for x in [b, c] {
        assert_eq!(changes_of(&w, x, "alice"), vec![(None, In)], "{x}");
    }
    // Each decliner records its own decline (the same record alice writes), and learns nothing
    // of the other invitee's answer.
    assert_eq!(
        changes_of(&w, b, "bob"),
        vec![(None, Inviting), (Some(Inviting), MRejected)]
    );
    assert_eq!(changes_of(&w, b, "carol"), vec![(None, Inviting)]);
    assert_eq!(changes_of(&w, c, "bob"), vec![(None, Inviting)]);
    assert_eq!(
        changes_of(&w, c, "carol"),
        vec![(None, Inviting), (Some(Inviting), MRejected)]
    );
    // Never a timeout, cancel or busy for a decline.
    for x in [a, b, c] {
        assert!(
            !changes(&w, x)
                .iter()
                .any(|(_, _, s)| matches!(s, Missed | MBusy | MCancelled)),
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
fn a_declined_member_does_not_ring_again_for_a_copy_of_the_invite() {
    let (mut w, d) = world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    let (a, b, c) = (d[0], d[1], d[2]);
    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, reject("no thanks")).unwrap();
    w.run_for(Duration::from_secs(1));
    let bob_sent = w.device(b).sent.len();

    // The same invite arrives again (a duplicate), and a copy of it under a new id (as a
    // retransmission that lost its id would): both within its lifetime.
    let copy = invite_to(&w, a, "bob");
    let now = w.now();
    w.net.send(copy.clone(), now);
    w.run_for(Duration::from_secs(1));
    let mut renamed = copy;
    renamed.id = callapi_core::protocol::MessageId::from_random_bytes([7; 16]);
    let now = w.now();
    w.net.send(renamed, now);
    w.run_for(Duration::from_secs(1));

    assert_eq!(
        states(&w, b),
        vec![(Calling, R::RemoteVideoCall), (Prepared, R::LocalRejected)]
    );
    assert!(roster(&w, b).is_empty());
    // bob answered the copies with no call message (acks at most).
    assert!(
        !w.device(b).sent[bob_sent..].iter().any(|e| matches!(
            e.body,
            Body::Ringing { .. } | Body::Accept { .. } | Body::Reject { .. }
        )),
        "{:?}",
        &w.device(b).sent[bob_sent..]
    );
    // alice still holds bob rejected, carol still rings.
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRejected), ("carol", MRinging)])
    );
    assert_eq!(
        changes_of(&w, a, "bob"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), MRejected)
        ]
    );
    assert_eq!(states(&w, a), vec![(Calling, R::LocalVideoCall)]);
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);

    // carol's accept still connects the call.
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, a).last(), Some(&(Connected, R::RemoteAccepted)));
    assert_eq!(states(&w, c).last(), Some(&(Connected, R::LocalAccepted)));
    let expected = expect(&[("alice", In), ("bob", MRejected), ("carol", In)]);
    assert_eq!(roster(&w, a), expected);
    assert_eq!(roster(&w, c), expected);
    assert_eq!(
        record_of(&w, c, "bob").unwrap().reason.as_deref(),
        Some("no thanks")
    );
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}
