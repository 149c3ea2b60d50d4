//! A reply to an earlier invitation is not a reply to the current one (`docs/PROTOCOL.md`
//! §10.2, `seq` on `ringing`, `accept` and `reject`): carol declines while her link is down,
//! alice withdraws that invitation and invites her again; when carol's link comes back her old
//! `reject` arrives after the new invite went out. alice ignores it (its `seq` is that of the
//! first invitation), carol rings for the new invitation, accepts, and is in the call.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{Command, StateReason as R};
use callapi_core::protocol::{Body, CallType, UserId};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

/// alice calls bob and carol on `plan`; bob accepts; carol rings.
fn carol_rings(plan: callapi_signal_mock::FaultPlan) -> (SimWorld, [DeviceIndex; 3]) {
    let mut w = SimWorld::new(7, plan);
    let [a, b, c] = [("alice", "a1"), ("bob", "b1"), ("carol", "c1")].map(|(u, d)| {
        let i = w.add_device(u, d, None);
        w.prepare_default(i).unwrap();
        i
    });
    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_millis(1500));
    assert_eq!(w.device(c).machine.state(), Calling);
    (w, [a, b, c])
}

/// carol declines; a second later alice withdraws that invitation, and a second after that
/// invites carol again.
fn decline_withdraw_invite_again(w: &mut SimWorld, a: DeviceIndex, c: DeviceIndex) {
    w.command(
        c,
        Command::Reject {
            reason: Some("busy now".into()),
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(
        a,
        Command::CancelInvites {
            users: vec![UserId::new("carol").unwrap()],
        },
    )
    .unwrap();
    w.run_for(Duration::from_secs(1));
    w.invite(a, &["carol"]).unwrap();
}

#[test]
fn a_late_reject_of_an_earlier_invitation_leaves_the_new_one_alone() {
    let (mut w, [a, b, c]) = carol_rings(clean_plan());
    // carol's link drops; she declines (her reject waits for the link); alice withdraws that
    // invitation and invites her again (both wait for carol at the server).
    w.set_online(c, false);
    decline_withdraw_invite_again(&mut w, a, c);
    let carol = UserId::new("carol").unwrap();
    w.run_for(Duration::from_secs(1));
    let current = w
        .device(a)
        .machine
        .members()
        .unwrap()
        .get(&carol)
        .unwrap()
        .seq;

    // carol is back: her old reject reaches alice after the new invite went out.
    w.set_online(c, true);
    w.run_for(Duration::from_secs(3));
    let rejects: Vec<_> = w
        .device(c)
        .sent
        .iter()
        .filter(|e| matches!(e.body, Body::Reject { .. }))
        .collect();
    assert!(!rejects.is_empty());
    assert!(
        rejects.iter().all(|e| e.id == rejects[0].id),
        "carol declined once (what is sent again is that reject)"
    );
    let Body::Reject {
        seq: Some(old_seq), ..
    } = rejects[0].body
    else {
        panic!(
            "a group reject carries the seq of its invite: {:?}",
            rejects[0].body
        );
    };
    assert!(old_seq < current, "the new invitation is above the old one");
    assert_eq!(
        w.device(c).machine.state(),
        Calling,
        "carol rings again: {:?}",
        states(&w, c)
    );
    assert_eq!(
        roster(&w, a),
        expect(&[("alice", In), ("bob", In), ("carol", MRinging)]),
        "the old reject did not end the new invitation"
    );
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    assert_eq!(
        states(&w, c).last().copied(),
        Some((Connected, R::LocalAccepted))
    );
}

/// The same from the other side (`seq` on `cancel`): cut off from carol, alice withdraws her
/// invitation and invites her again; when the link comes back both the old `cancel` and the new
/// invite reach carol, the new invite first. The old cancel does not stop the new ring.
#[test]
fn a_late_cancel_of_an_earlier_invitation_does_not_stop_the_new_ring() {
    let plan = callapi_signal_mock::FaultPlan {
        partitions: vec![callapi_signal_mock::Partition {
            a: UserId::new("alice").unwrap(),
            b: UserId::new("carol").unwrap(),
            from: Duration::from_secs(2),
            until: Duration::from_secs(8),
        }],
        ..clean_plan()
    };
    let (mut w, [a, b, c]) = carol_rings(plan);
    // Cut off: carol declines, alice withdraws the invitation and invites again.
    decline_withdraw_invite_again(&mut w, a, c);
    let carol = UserId::new("carol").unwrap();

    // The link comes back at 8 s.
    w.run_for(Duration::from_secs(7));
    let got_cancel_after_invite = {
        let sent = &w.device(a).sent;
        let cancel = sent
            .iter()
            .find(|e| e.to == carol && matches!(e.body, Body::Cancel { .. }));
        let Some(Body::Cancel { seq: Some(s), .. }) = cancel.map(|e| &e.body) else {
            panic!("a group cancel carries the seq of its invitation: {cancel:?}");
        };
        *s < w
            .device(a)
            .machine
            .members()
            .unwrap()
            .get(&carol)
            .unwrap()
            .seq
    };
    assert!(
        got_cancel_after_invite,
        "the cancel is of the earlier invitation"
    );
    assert_eq!(
        w.device(c).machine.state(),
        Calling,
        "carol rings for the new invitation: {:?}",
        states(&w, c)
    );
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));
    let all_in = expect(&[("alice", In), ("bob", In), ("carol", In)]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), all_in, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
}

/// "An invite that arrives after its cancel never rings", for a re-invitation too: carol
/// declined and the call ended on her device; alice invites her again and withdraws that at
/// once, and the cancel reaches carol before the invite. The invite must not ring.
#[test]
fn a_cancel_that_overtakes_a_re_invitation_keeps_it_from_ringing() {
    let (mut w, [a, _b, c]) = carol_rings(clean_plan());
    w.command(c, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    let rang_before = states(&w, c).len();
    w.invite(a, &["carol"]).unwrap();
    w.command(
        a,
        Command::CancelInvites {
            users: vec![UserId::new("carol").unwrap()],
        },
    )
    .unwrap();
    let cancel = w
        .device(a)
        .sent
        .iter()
        .rev()
        .find(|e| e.to.as_str() == "carol" && matches!(e.body, Body::Cancel { .. }))
        .cloned()
        .expect("alice withdrew the invitation");
    assert!(matches!(cancel.body, Body::Cancel { seq: Some(_), .. }));
    // The cancel overtakes the invite (both are still on the network).
    let now = w.now();
    w.devices[c]
        .machine
        .handle_input(callapi_core::call::Input::Envelope(cancel), now);
    w.run_for(Duration::from_secs(2));
    assert_eq!(
        states(&w, c).len(),
        rang_before,
        "carol rang for a withdrawn invitation: {:?}",
        states(&w, c)
    );
    assert_eq!(w.device(c).machine.state(), Prepared);
}
