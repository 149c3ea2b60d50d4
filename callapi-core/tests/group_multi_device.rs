//! A group invitee with several devices (`docs/PROTOCOL.md` §10.3): every device of the member
//! rings; the first accept wins, the member's other devices end `AnsweredElsewhere` and the
//! record is `accepted` with the answering device; a decline on one device ends the member's
//! other devices (`RejectedElsewhere`) and the record is `rejected`, while another member keeps
//! ringing: only an invitee's own devices end its ringing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{CallEvent as E, Command, StateReason as R};
use callapi_core::protocol::{Body, CallType, Elsewhere};
use callapi_signal_mock::world::SimWorld;
use group::*;

fn alice_bob2_carol() -> (SimWorld, usize, usize, usize, usize) {
    let (w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("bob", "b2"),
        ("carol", "c1"),
    ]);
    (w, d[0], d[1], d[2], d[3])
}

/// The cancels device `from` sent to `device`, as `elsewhere`.
fn cancels_to(w: &SimWorld, from: usize, device: &str) -> Vec<Option<Elsewhere>> {
    w.device(from)
        .sent
        .iter()
        .filter(|e| e.to_device.as_ref().is_some_and(|d| d.as_str() == device))
        .filter_map(|e| match &e.body {
            Body::Cancel { elsewhere, .. } => Some(*elsewhere),
            _ => None,
        })
        .collect()
}

#[test]
fn both_devices_ring_and_the_first_accept_wins() {
    let (mut w, a, b1, b2, c) = alice_bob2_carol();
    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in [b1, b2, c] {
        assert_eq!(states(&w, x), vec![(Calling, R::RemoteVideoCall)], "{x}");
    }
    // One ringing step for bob, however many of his devices ring.
    assert_eq!(
        changes_of(&w, a, "bob"),
        vec![(None, Inviting), (Some(Inviting), MRinging)]
    );
    assert_eq!(
        w.device(a)
            .events()
            .iter()
            .filter(|e| **e == E::RemoteUserRecvCall)
            .count(),
        2 // bob and carol
    );

    w.command(b2, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b1),
        vec![
            (Calling, R::RemoteVideoCall),
            (Prepared, R::AnsweredElsewhere)
        ]
    );
    assert!(w.device(b1).events().contains(&E::AnsweredElsewhere));
    assert_eq!(cancels_to(&w, a, "b1"), vec![Some(Elsewhere::Answered)]);
    assert!(cancels_to(&w, a, "b2").is_empty());
    assert_eq!(
        states(&w, b2),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    // carol keeps ringing.
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);

    // bob is in the call on b2, on both devices in the call.
    let expected = expect(&[("alice", In), ("bob", In), ("carol", MRinging)]);
    for x in [a, b2] {
        assert_eq!(roster(&w, x), expected, "{x}");
        let rec = record_of(&w, x, "bob").unwrap();
        assert_eq!(rec.device.as_ref().map(|d| d.as_str()), Some("b2"), "{x}");
        assert_eq!(rec.seq, 3);
    }
    assert!(roster(&w, b1).is_empty());
    assert_eq!(
        detailed_changes_of(&w, a, "bob"),
        vec![
            (None, Inviting, None, None),
            (Some(Inviting), MRinging, None, None),
            (Some(MRinging), In, None, Some("b2".into())),
        ]
    );
    assert_eq!(
        detailed_changes_of(&w, b2, "bob"),
        vec![
            (None, Inviting, None, None),
            (Some(Inviting), In, None, Some("b2".into())),
        ]
    );
    assert_eq!(changes_of(&w, b1, "bob"), vec![(None, Inviting)]);
    assert_eq!(changes_of(&w, b1, "alice"), vec![(None, In)]);
    assert_eq!(changes_of(&w, b1, "carol"), vec![(None, Inviting)]);
    assert_eq!(
        changes_of(&w, b2, "carol"),
        vec![(None, Inviting), (Some(Inviting), MRinging)]
    );
    assert_eq!(changes_of(&w, c, "bob"), vec![(None, Inviting)]);
    // b1 sent no answer of its own.
    assert!(!w
        .device(b1)
        .sent
        .iter()
        .any(|e| matches!(e.body, Body::Accept { .. } | Body::Reject { .. })));

    // carol accepts: the three in the call agree, b1 is not in it.
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    let records = w.device(a).machine.members().unwrap().records().to_vec();
    for x in [a, b2, c] {
        assert_eq!(roster(&w, x), all_in, "{x}");
        assert_eq!(
            w.device(x).machine.members().unwrap().records(),
            records.as_slice(),
            "{x}"
        );
    }
    assert_eq!(states(&w, b1).len(), 2);
    assert!(!w
        .device(a)
        .sent
        .iter()
        .chain(w.device(c).sent.iter())
        .chain(w.device(b2).sent.iter())
        .any(|e| matches!(e.body, Body::Members { .. })
            && e.to_device.as_ref().is_some_and(|d| d.as_str() == "b1")));

    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b1, b2, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

#[test]
fn a_decline_on_one_device_ends_the_others_and_carol_keeps_ringing() {
    let (mut w, a, b1, b2, c) = alice_bob2_carol();
    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    for x in [b1, b2, c] {
        assert_eq!(states(&w, x), vec![(Calling, R::RemoteAudioCall)], "{x}");
    }

    w.command(
        b1,
        Command::Reject {
            reason: Some("in a meeting".into()),
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b1),
        vec![(Calling, R::RemoteAudioCall), (Prepared, R::LocalRejected)]
    );
    assert_eq!(
        states(&w, b2),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RejectedElsewhere)
        ]
    );
    assert!(w.device(b2).events().contains(&E::RejectedElsewhere));
    assert_eq!(cancels_to(&w, a, "b2"), vec![Some(Elsewhere::Rejected)]);
    assert!(cancels_to(&w, a, "b1").is_empty());
    // The call goes on: alice calls, carol rings.
    assert_eq!(states(&w, a), vec![(Calling, R::LocalAudioCall)]);
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteAudioCall)]);
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", MRejected), ("carol", MRinging)])
    );
    assert_eq!(
        detailed_changes_of(&w, a, "bob"),
        vec![
            (None, Inviting, None, None),
            (Some(Inviting), MRinging, None, None),
            (Some(MRinging), MRejected, Some("in a meeting".into()), None),
        ]
    );
    for x in [b1, b2, c] {
        assert_eq!(changes_of(&w, x, "alice"), vec![(None, In)], "{x}");
        assert_eq!(changes_of(&w, x, "carol"), vec![(None, Inviting)], "{x}");
    }
    // The declining device records its member's decline (the record alice writes); bob's other
    // device stops as rejected elsewhere without a record of its own.
    assert_eq!(
        changes_of(&w, b1, "bob"),
        vec![(None, Inviting), (Some(Inviting), MRejected)]
    );
    assert_eq!(changes_of(&w, b2, "bob"), vec![(None, Inviting)]);
    assert_eq!(changes_of(&w, c, "bob"), vec![(None, Inviting)]);

    // carol accepts: she and alice are in the call, bob is rejected on both their rosters.
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalAudioCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, c).last(), Some(&(Connected, R::LocalAccepted)));
    let expected = expect(&[("alice", In), ("bob", MRejected), ("carol", In)]);
    for x in [a, c] {
        assert_eq!(roster(&w, x), expected, "{x}");
        assert_eq!(
            record_of(&w, x, "bob").unwrap().reason.as_deref(),
            Some("in a meeting")
        );
    }
    assert_eq!(
        changes_of(&w, c, "bob"),
        vec![(None, Inviting), (Some(Inviting), MRejected)]
    );
    // bob's devices stay out.
    assert_eq!(states(&w, b1).len(), 2);
    assert_eq!(states(&w, b2).len(), 2);

    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b1, b2, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

#[test]
fn two_accepts_at_once_one_wins_the_other_ends_answered_elsewhere() {
    let (mut w, a, b1, b2, c) = alice_bob2_carol();
    w.call_group(a, &["bob", "carol"], CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b1, Command::Accept).unwrap();
    w.command(b2, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));
    let winner = record_of(&w, a, "bob")
        .unwrap()
        .device
        .map(|d| d.to_string())
        .unwrap();
    let (win, lose, lose_name) = if winner == "b1" {
        (b1, b2, "b2")
    } else {
        (b2, b1, "b1")
    };
    // Told to stop, answered elsewhere (once for ringing, once more for its accept).
    let cancels = cancels_to(&w, a, lose_name);
    assert!(!cancels.is_empty());
    assert!(cancels.iter().all(|e| *e == Some(Elsewhere::Answered)));
    assert_eq!(
        states(&w, win),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::LocalAccepted)
        ]
    );
    // The late accept is answered like any other device of bob's: it stops, answered elsewhere.
    assert_eq!(
        states(&w, lose),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Prepared, R::AnsweredElsewhere)
        ]
    );
    assert_eq!(
        states(&w, a),
        vec![(Calling, R::LocalVideoCall), (Connected, R::RemoteAccepted)]
    );
    assert_eq!(states(&w, c), vec![(Calling, R::RemoteVideoCall)]);

    // Nothing the losing device does later takes bob out of the call.
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    let expected = expect(&[("alice", In), ("bob", In), ("carol", Missed)]);
    for x in [a, win] {
        assert_eq!(roster(&w, x), expected, "{x}");
        assert_eq!(
            record_of(&w, x, "bob")
                .unwrap()
                .device
                .map(|d| d.to_string()),
            Some(winner.clone())
        );
        assert_eq!(w.device(x).machine.state(), Connected, "{x}");
    }
    assert_eq!(
        changes_of(&w, a, "bob"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), In)
        ]
    );
    for x in [a, b1, b2, c] {
        assert_eq!(w.device(x).machine.pending_messages(), 0, "{x}");
    }
}

/// bob's phone b1 accepts but never gets its confirm (its link is down); bob's b2 joins the call
/// by its id meanwhile, so bob is in the call on b2. When b1 gives up and tells alice (its
/// `reject`, "timeout"), that is b1's exit, not bob's: alice leaves bob's record alone and bob
/// stays in the call on b2.
#[test]
fn a_device_that_gives_up_on_its_confirm_does_not_take_out_its_member_s_other_device() {
    use callapi_core::call::CallConfig;
    use callapi_core::protocol::{DeviceId, UserId};
    let mut w = SimWorld::new(5, clean_plan());
    let a = w.add_device("alice", "a1", None);
    let mut cfg = CallConfig::new(UserId::new("bob").unwrap(), DeviceId::new("b1").unwrap());
    // b1 keeps its call through a long outage, so that it gives up on the confirm itself.
    cfg.signal_grace = Duration::from_secs(300);
    let b1 = w.add_device_with(cfg, None);
    let b2 = w.add_device("bob", "b2", None);
    let c = w.add_device("carol", "c1", None);
    for x in [a, b1, b2, c] {
        w.prepare_default(x).unwrap();
    }
    let id = w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    // b1 accepts and its link drops at once: alice takes the accept, the confirm never arrives.
    w.command(b1, Command::Accept).unwrap();
    w.set_online(b1, false);
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        w.device(b2).machine.state(),
        Prepared,
        "b2 ended: answered elsewhere"
    );
    w.command(b2, Command::Join { call_id: id }).unwrap();
    w.run_for(Duration::from_secs(2));
    assert_eq!(w.device(b2).machine.state(), Connected);
    assert_eq!(
        record_of(&w, a, "bob")
            .and_then(|m| m.device)
            .map(|d| d.to_string()),
        Some("b2".into())
    );
    // b1 gives up while offline, comes back, and its reject reaches alice.
    w.run_for(Duration::from_secs(60));
    w.set_online(b1, true);
    w.run_for(Duration::from_secs(30));
    assert!(
        w.device(b1).sent.iter().any(|e| matches!(&e.body, Body::Reject { reason, .. } if reason.as_deref() == Some("timeout"))),
        "b1 gave up and said so"
    );
    for x in [a, b2, c] {
        let bob = record_of(&w, x, "bob").unwrap();
        assert_eq!(
            (bob.state, bob.device.map(|d| d.to_string())),
            (In, Some("b2".into())),
            "device {x}"
        );
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
}
