//! An invitation whose inviter vanished does not stay pending (`docs/PROTOCOL.md` §10.1):
//! the invitee's devices stop ringing at the invite's lifetime, never later, and every other
//! member's device records the invitee `timeout` once the record's `until_ms` has passed by its
//! clock (`EXPIRY_SLACK`, 2 s, after it). Those writes are identical wherever they are made, so
//! the inviter's own, when it comes back, changes nothing; its own record stays as it was.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::time::Duration;

use callapi_core::call::{Command, Notification, StateReason as R};
use callapi_core::protocol::{CallType, UserId};
use callapi_signal_mock::world::{DeviceIndex, SimWorld};
use group::*;

/// The invite lifetime (the default call timeout) and the expiry slack of other devices.
const LIFETIME: Duration = Duration::from_secs(15);
const SLACK: Duration = Duration::from_secs(2);

/// alice, bob and carol in the call; bob invites dave, dave rings; then bob goes offline.
/// Answers the world, the devices and when bob invited dave.
fn bob_invites_dave_and_vanishes() -> (SimWorld, [DeviceIndex; 4], Duration) {
    let (mut w, d) = world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let (a, b, c, dv) = (d[0], d[1], d[2], d[3]);
    w.call_group(a, &["bob", "carol"], CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Accept).unwrap();
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let invited_at = w.elapsed();
    w.invite(b, &["dave"]).unwrap();
    w.run_for(Duration::from_secs(1));
    let ringing = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", In),
        ("dave", MRinging),
    ]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), ringing, "device {x}");
    }
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteAudioCall)]);
    w.set_online(b, false);
    (w, [a, b, c, dv], invited_at)
}

fn last_state_at(w: &SimWorld, x: DeviceIndex) -> Duration {
    w.device(x)
        .notifications
        .iter()
        .rev()
        .find(|(_, n)| matches!(n, Notification::StateChanged(_)))
        .map(|(at, _)| *at)
        .unwrap()
}

/// Runs until `at` (time since the world began).
fn run_to(w: &mut SimWorld, at: Duration) {
    let d = at.saturating_sub(w.elapsed());
    w.run_for(d);
}

fn dave_timeline_at_others(w: &SimWorld, x: DeviceIndex) {
    assert_eq!(
        changes_of(w, x, "dave"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), Missed)
        ],
        "device {x}"
    );
}

#[test]
fn the_invitee_stops_ringing_at_the_invites_lifetime_and_others_record_it_missed() {
    let (mut w, [a, _, c, dv], t0) = bob_invites_dave_and_vanishes();
    let expires = t0 + LIFETIME;

    // dave rings right up to the invite's lifetime, and not a moment past it.
    run_to(&mut w, expires - Duration::from_millis(1));
    assert_eq!(states(&w, dv), vec![(Calling, R::RemoteAudioCall)]);
    run_to(&mut w, expires);
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert!(last_state_at(&w, dv) <= expires);
    assert!(w.device(dv).machine.call_info().is_none());

    // The others hold dave `ringing` until the slack after `until_ms` has passed...
    run_to(&mut w, expires + SLACK - Duration::from_millis(1));
    let ringing = expect(&[
        ("alice", In),
        ("bob", In),
        ("carol", In),
        ("dave", MRinging),
    ]);
    for x in [a, c] {
        assert_eq!(roster(&w, x), ringing, "device {x}");
    }
    // ...and then record him missed, each by its own clock.
    run_to(&mut w, expires + SLACK + Duration::from_millis(50));
    let missed = expect(&[("alice", In), ("bob", In), ("carol", In), ("dave", Missed)]);
    for x in [a, c] {
        assert_eq!(roster(&w, x), missed, "device {x}");
        dave_timeline_at_others(&w, x);
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        let m = w.device(x).machine.members().unwrap();
        let rec = m.get(&UserId::new("dave").unwrap()).unwrap();
        assert_eq!(
            (
                rec.seq,
                rec.device.clone(),
                rec.reason.clone(),
                rec.until_ms
            ),
            (3, None, None, None)
        );
    }

    // bob is gone for good: once a roster to him goes unacknowledged for its whole lifetime
    // (60 s), the others record him left as "unreachable"; the call goes on for them.
    run_to(&mut w, t0 + Duration::from_secs(90));
    let gone = expect(&[
        ("alice", In),
        ("bob", Left),
        ("carol", In),
        ("dave", Missed),
    ]);
    for x in [a, c] {
        assert_eq!(roster(&w, x), gone, "device {x}");
        let m = w.device(x).machine.members().unwrap();
        let rec = m.get(&UserId::new("bob").unwrap()).unwrap();
        assert_eq!(rec.reason.as_deref(), Some("unreachable"), "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
    }
    // dave's device is done: nothing more happened on it.
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
}

#[test]
fn the_inviter_coming_back_agrees_and_changes_nothing() {
    let (mut w, [a, b, c, dv], t0) = bob_invites_dave_and_vanishes();
    // bob is back after the invitation expired, within his signal grace.
    run_to(&mut w, t0 + LIFETIME + SLACK + Duration::from_secs(3));
    let missed = expect(&[("alice", In), ("bob", In), ("carol", In), ("dave", Missed)]);
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), missed, "device {x}");
    }
    // bob's own timer wrote the same record, offline.
    assert_eq!(
        changes_of(&w, b, "dave"),
        vec![
            (None, Inviting),
            (Some(Inviting), MRinging),
            (Some(MRinging), Missed)
        ]
    );
    w.set_online(b, true);
    w.run_for(Duration::from_secs(5));
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), missed, "device {x}");
        assert_eq!(w.device(x).machine.state(), Connected, "device {x}");
        assert_eq!(
            states(&w, x).iter().filter(|(s, _)| *s == Prepared).count(),
            0,
            "device {x}"
        );
    }
    // Identical writes merged into one: nobody heard about dave a second time.
    for x in [a, c] {
        dave_timeline_at_others(&w, x);
    }
    assert_eq!(changes_of(&w, b, "dave").len(), 3);
    assert_eq!(
        states(&w, dv),
        vec![
            (Calling, R::RemoteAudioCall),
            (Prepared, R::RemoteCallingTimeout)
        ]
    );
    assert!(w.run_until_quiet(Duration::from_secs(120)));
    for x in [a, b, c] {
        assert_eq!(roster(&w, x), missed, "device {x}");
        assert_eq!(w.device(x).machine.pending_messages(), 0, "device {x}");
    }
}
