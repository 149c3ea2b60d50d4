//! A group call's media is a full mesh (`docs/PROTOCOL.md` §10.9): once a device is in the
//! call it joins the media and connects to every other member's device in the call — the
//! lower (user, device) of each pair offers — its `media` envelopes go to one device each,
//! tagged with both memberships; a member who leaves is disconnected everywhere, one who joins
//! again gets new connections. Stepped by hand in a `SimWorld` whose simulated engine does a
//! real offer/answer per pair.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod group;

use std::collections::BTreeSet;
use std::time::Duration;

use callapi_core::call::{Command, MediaCommand, Notification, PeerMediaEvent};
use callapi_core::media::{MediaKind, MediaPeer};
use callapi_core::protocol::{Body, CallId, CallType};
use callapi_signal_mock::world::{DeviceIndex, SimMedia, SimWorld};
use group::*;

fn media_world(devices: &[(&str, &str)]) -> (SimWorld, Vec<DeviceIndex>) {
    let mut w = SimWorld::new(33, clean_plan());
    let ids = devices
        .iter()
        .map(|(u, d)| {
            let i = w.add_device(u, d, Some(SimMedia::default()));
            w.prepare_default(i).unwrap();
            i
        })
        .collect();
    (w, ids)
}

fn peer_events(w: &SimWorld, d: DeviceIndex) -> Vec<(String, PeerMediaEvent)> {
    w.device(d)
        .notifications
        .iter()
        .filter_map(|(_, n)| match n {
            Notification::PeerMedia { peer, event, .. } => {
                Some((peer.user.to_string(), event.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The users this device got a first video frame from.
fn video_from(w: &SimWorld, d: DeviceIndex) -> BTreeSet<String> {
    peer_events(w, d)
        .into_iter()
        .filter(|(_, e)| *e == PeerMediaEvent::FirstFrame(MediaKind::Video))
        .map(|(u, _)| u)
        .collect()
}

fn set(users: &[&str]) -> BTreeSet<String> {
    users.iter().map(|u| u.to_string()).collect()
}

/// The peers a device's engine is connected to now (added and not removed since).
fn connected_peers(w: &SimWorld, d: DeviceIndex) -> BTreeSet<String> {
    let mut peers = BTreeSet::new();
    for c in &w.device(d).media_commands {
        match c {
            MediaCommand::AddPeer { peer, .. } => {
                peers.insert(peer.user.to_string());
            }
            MediaCommand::RemovePeer { peer, .. } => {
                peers.remove(peer.user.as_str());
            }
            MediaCommand::Leave { .. } => peers.clear(),
            _ => {}
        }
    }
    peers
}

/// For each media join a device made, whether it was a group call's.
fn group_joins(w: &SimWorld, d: DeviceIndex) -> Vec<bool> {
    w.device(d)
        .media_commands
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Join(r) => Some(r.group),
            _ => None,
        })
        .collect()
}

fn adds(w: &SimWorld, d: DeviceIndex) -> Vec<(MediaPeer, bool)> {
    w.device(d)
        .media_commands
        .iter()
        .filter_map(|c| match c {
            MediaCommand::AddPeer { peer, offerer, .. } => Some((peer.clone(), *offerer)),
            _ => None,
        })
        .collect()
}

fn three_in_call() -> (SimWorld, Vec<DeviceIndex>, CallId) {
    let (mut w, d) = media_world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let id = w
        .call_group(d[0], &["bob", "carol"], CallType::Video)
        .unwrap();
    w.run_for(Duration::from_millis(500));
    w.command(d[1], Command::Accept).unwrap();
    w.command(d[2], Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));
    (w, d, id)
}

#[test]
fn every_member_in_the_call_gets_video_from_every_other() {
    let (w, d, _) = three_in_call();
    let users = ["alice", "bob", "carol"];
    for (i, me) in users.iter().enumerate() {
        let others: Vec<&str> = users.iter().copied().filter(|u| u != me).collect();
        assert_eq!(video_from(&w, d[i]), set(&others), "{me}");
        assert_eq!(connected_peers(&w, d[i]), set(&others), "{me}");
        let joins = group_joins(&w, d[i]);
        assert_eq!(joins, vec![true], "{me}: one group join");
    }
    // dave was never invited: no media.
    assert!(w.device(d[3]).media_commands.is_empty());
}

#[test]
fn the_lower_user_and_device_of_each_pair_offers_and_only_it() {
    let (w, d, _) = three_in_call();
    for (i, me) in ["alice", "bob", "carol"].iter().enumerate() {
        for (peer, offerer) in adds(&w, d[i]) {
            assert_eq!(offerer, *me < peer.user.as_str(), "{me} → {peer}");
        }
    }
}

#[test]
fn group_media_goes_to_one_device_tagged_with_both_memberships() {
    let (w, d, _) = three_in_call();
    let mut seen = 0;
    for &x in &d[..3] {
        for env in &w.device(x).sent {
            if let Body::Media { seq, to_seq, .. } = &env.body {
                seen += 1;
                assert!(env.to_device.is_some(), "{env:?}");
                let sender = record_of(&w, x, env.from.as_str()).unwrap();
                let receiver = record_of(&w, x, env.to.as_str()).unwrap();
                assert_eq!(*seq, Some(sender.seq), "{env:?}");
                assert_eq!(*to_seq, Some(receiver.seq), "{env:?}");
            }
        }
    }
    // One offer and one answer per pair.
    assert_eq!(seen, 6);
}

#[test]
fn a_late_invitee_gets_media_from_everyone_and_everyone_from_it() {
    let (mut w, d, _) = three_in_call();
    w.invite(d[1], &["dave"]).unwrap();
    w.run_for(Duration::from_millis(500));
    w.command(d[3], Command::Accept).unwrap();
    w.run_for(Duration::from_secs(2));
    assert_eq!(video_from(&w, d[3]), set(&["alice", "bob", "carol"]));
    for &x in &d[..3] {
        assert!(video_from(&w, x).contains("dave"), "device {x}");
        assert_eq!(connected_peers(&w, x).len(), 3, "device {x}");
    }
}

#[test]
fn a_member_who_leaves_is_disconnected_everywhere_and_one_who_rejoins_reconnects() {
    let (mut w, d, id) = three_in_call();
    w.command(d[2], Command::Leave { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert!(w
        .device(d[2])
        .media_commands
        .iter()
        .any(|c| matches!(c, MediaCommand::Leave { .. })));
    for &x in &d[..2] {
        assert!(!connected_peers(&w, x).contains("carol"), "device {x}");
        assert!(
            peer_events(&w, x).contains(&("carol".into(), PeerMediaEvent::Closed)),
            "device {x}"
        );
    }
    // alice and bob stay connected to each other.
    assert_eq!(connected_peers(&w, d[0]), set(&["bob"]));

    let frames_before = peer_events(&w, d[0])
        .iter()
        .filter(|(u, e)| u == "carol" && matches!(e, PeerMediaEvent::FirstFrame(_)))
        .count();
    w.command(d[2], Command::Join { call_id: id }).unwrap();
    w.run_for(Duration::from_secs(2));
    for &x in &d[..2] {
        assert!(connected_peers(&w, x).contains("carol"), "device {x}");
    }
    assert_eq!(connected_peers(&w, d[2]), set(&["alice", "bob"]));
    let frames_after = peer_events(&w, d[0])
        .iter()
        .filter(|(u, e)| u == "carol" && matches!(e, PeerMediaEvent::FirstFrame(_)))
        .count();
    assert_eq!(
        frames_after,
        frames_before + 1,
        "a new connection, a new first frame"
    );
    assert!(video_from(&w, d[2]).is_superset(&set(&["alice", "bob"])));
}

#[test]
fn ringing_invitees_and_one_to_one_calls_have_no_mesh() {
    let (mut w, d) = media_world(&[("alice", "a1"), ("bob", "b1"), ("carol", "c1")]);
    w.call_group(d[0], &["bob", "carol"], CallType::Video)
        .unwrap();
    w.run_for(Duration::from_millis(500));
    // Nobody answered: nobody has media in a group call yet.
    for &x in &d {
        assert!(adds(&w, x).is_empty(), "device {x}");
        assert!(w.device(x).media_commands.is_empty(), "device {x}");
    }
    w.command(d[0], Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));

    w.call(d[0], "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_millis(500));
    w.command(d[1], Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    for &x in &d[..2] {
        assert!(adds(&w, x).is_empty(), "device {x}");
        let joins = group_joins(&w, x);
        assert_eq!(joins, vec![false], "device {x}");
        for env in &w.device(x).sent {
            if let Body::Media { seq, to_seq, .. } = &env.body {
                assert_eq!((*seq, *to_seq), (None, None));
            }
        }
    }
}

/// A member's offer can overtake the roster that tells this device the sender is in the call
/// (here: alice joined after dave was invited, and her offer reaches dave before bob's
/// `confirm`, whose roster names her). It is held, not dropped, and handed to the engine once
/// the roster catches up.
#[test]
fn an_offer_ahead_of_the_roster_naming_its_sender_waits_for_it() {
    use callapi_core::protocol::{DeviceId, Envelope, MessageId, UserId, PROTOCOL_VERSION};
    let (mut w, d) = media_world(&[
        ("alice", "a1"),
        ("bob", "b1"),
        ("carol", "c1"),
        ("dave", "d1"),
    ]);
    let (a, b, c, dv) = (d[0], d[1], d[2], d[3]);
    let id = w
        .call_group(b, &["carol", "dave"], CallType::Video)
        .unwrap();
    w.run_for(Duration::from_millis(500));
    w.command(c, Command::Accept).unwrap();
    w.run_for(Duration::from_millis(500));
    w.invite(b, &["alice"]).unwrap();
    w.run_for(Duration::from_millis(500));
    w.command(a, Command::Accept).unwrap();
    w.run_for(Duration::from_millis(500));
    assert!(
        record_of(&w, dv, "alice").is_none(),
        "dave does not know alice yet"
    );
    w.command(dv, Command::Accept).unwrap();
    // alice's offer to dave, as her device sends it (her record and dave's are `accepted` at
    // seq 3), sent before bob's confirm reaches dave.
    let now = w.now();
    let early = serde_json::json!({ "sdp": "offer", "early": true });
    w.net.send(
        Envelope {
            v: PROTOCOL_VERSION,
            id: MessageId::new_v4(),
            ts: w.net.unix_ms(now),
            from: UserId::new("alice").unwrap(),
            from_device: DeviceId::new("a1").unwrap(),
            to: UserId::new("dave").unwrap(),
            to_device: Some(DeviceId::new("d1").unwrap()),
            call_id: id,
            lifetime_ms: 60_000,
            body: Body::Media {
                payload: early.clone(),
                seq: Some(3),
                to_seq: Some(3),
            },
        },
        now,
    );
    w.run_for(Duration::from_secs(2));
    assert_eq!(record_of(&w, dv, "alice").map(|m| m.seq), Some(3));
    let handed = w.device(dv).media_commands.iter().any(|cmd| {
        matches!(cmd, MediaCommand::PeerSignal { peer, payload, .. }
            if peer.user.as_str() == "alice" && *payload == early)
    });
    assert!(handed, "{:#?}", w.device(dv).media_commands);
    assert_eq!(connected_peers(&w, dv), set(&["alice", "bob", "carol"]));
}
