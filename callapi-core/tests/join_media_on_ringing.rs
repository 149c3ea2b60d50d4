//! Early media: the caller joins its media at `call()`; the callee joins while ringing when
//! `join_media_on_ringing` is on (the default) or at accept when it is off, a `CallPolicy`
//! deciding per invite. Both publish and subscribe remote video only; remote audio is enabled by
//! a plan update at `Connected`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callapi_core::call::{
    CallEvent as E, CallPolicy, Command, IncomingInvite, MediaCommand, PrepareConfig,
    StateReason as R,
};
use callapi_core::media::{JoinRequest, MediaPlan, MediaRole};
use callapi_core::protocol::{CallType, Extension};
use callapi_signal_mock::world::SimWorld;
use common::*;

const EARLY_VIDEO: MediaPlan = MediaPlan {
    publish_audio: true,
    publish_video: true,
    subscribe_audio: false,
    subscribe_video: true,
};
const CONNECTED_VIDEO: MediaPlan = MediaPlan {
    publish_audio: true,
    publish_video: true,
    subscribe_audio: true,
    subscribe_video: true,
};

fn joins(w: &SimWorld, d: usize) -> Vec<JoinRequest> {
    w.device(d)
        .media_commands
        .iter()
        .filter_map(|c| match c {
            MediaCommand::Join(r) => Some(r.clone()),
            _ => None,
        })
        .collect()
}

fn kinds(w: &SimWorld, d: usize) -> Vec<&'static str> {
    w.device(d)
        .media_commands
        .iter()
        .map(|c| match c {
            MediaCommand::Join(_) => "join",
            MediaCommand::UpdatePlan { .. } => "update_plan",
            MediaCommand::RemoteSignal { .. } => "remote_signal",
            MediaCommand::Leave { .. } => "leave",
            MediaCommand::AddPeer { .. } => "add_peer",
            MediaCommand::RemovePeer { .. } => "remove_peer",
            MediaCommand::PeerSignal { .. } => "peer_signal",
        })
        .collect()
}

fn plan_updates(w: &SimWorld, d: usize) -> Vec<MediaPlan> {
    w.device(d)
        .media_commands
        .iter()
        .filter_map(|c| match c {
            MediaCommand::UpdatePlan { plan, .. } => Some(*plan),
            _ => None,
        })
        .collect()
}

fn without_early_media(w: &mut SimWorld, d: usize, room: &str) {
    let mut cfg = PrepareConfig::new(room);
    cfg.join_media_on_ringing = false;
    prepare_with(w, d, cfg);
}

#[test]
fn callee_joins_while_ringing_by_default_and_hears_audio_only_when_connected() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Video).unwrap();
    // The caller joins at once, before anything went over the network.
    let call_id = current_call_id(&w, a);
    let caller_join = joins(&w, a);
    assert_eq!(caller_join.len(), 1);
    assert_eq!(caller_join[0].call_id, call_id);
    assert_eq!(caller_join[0].role, MediaRole::Caller);
    assert_eq!(caller_join[0].room_id, "alice-room");
    assert_eq!(caller_join[0].call_type, CallType::Video);
    assert_eq!(caller_join[0].local_user.as_str(), "alice");
    assert_eq!(caller_join[0].remote_user.as_str(), "bob");
    assert_eq!(caller_join[0].plan, EARLY_VIDEO);
    assert!(joins(&w, b).is_empty());

    w.run_for(Duration::from_secs(1));
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    // The callee joined when it started ringing, into the caller's room.
    let callee_join = joins(&w, b);
    assert_eq!(callee_join.len(), 1);
    assert_eq!(callee_join[0].call_id, call_id);
    assert_eq!(callee_join[0].role, MediaRole::Callee);
    assert_eq!(callee_join[0].room_id, "alice-room");
    assert_eq!(callee_join[0].local_user.as_str(), "bob");
    assert_eq!(callee_join[0].remote_user.as_str(), "alice");
    assert_eq!(callee_join[0].plan, EARLY_VIDEO);
    assert_eq!(kinds(&w, b), vec!["join"]);
    assert_eq!(events(&w, b)[0], E::JoinMediaStart);
    assert!(plan_updates(&w, a).is_empty());

    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, a).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    assert_eq!(
        states(&w, b).last(),
        Some(&(Connected, R::RecvRemoteFirstFrame))
    );
    // Remote audio is switched on at Connected, once, on both sides.
    for d in [a, b] {
        assert_eq!(kinds(&w, d), vec!["join", "update_plan"]);
        assert_eq!(plan_updates(&w, d), vec![CONNECTED_VIDEO]);
    }

    w.command(a, Command::Hangup { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    for d in [a, b] {
        assert_eq!(kinds(&w, d), vec!["join", "update_plan", "leave"]);
    }
}

#[test]
fn audio_calls_neither_publish_nor_subscribe_video() {
    let (mut w, a, b) = two_party();
    w.call(a, "bob", CallType::Audio).unwrap();
    w.run_for(Duration::from_secs(1));
    let early = MediaPlan {
        publish_audio: true,
        publish_video: false,
        subscribe_audio: false,
        subscribe_video: false,
    };
    assert_eq!(joins(&w, a)[0].plan, early);
    assert_eq!(joins(&w, b)[0].plan, early);
    w.command(b, Command::Accept).unwrap();
    w.run_for(Duration::from_secs(1));
    let connected = MediaPlan {
        subscribe_audio: true,
        ..early
    };
    assert_eq!(plan_updates(&w, a), vec![connected]);
    assert_eq!(plan_updates(&w, b), vec![connected]);
}

#[test]
fn without_early_media_the_callee_joins_at_accept() {
    let (mut w, a, b) = two_party();
    without_early_media(&mut w, b, "bob-room");
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(2));
    assert_eq!(states(&w, b), vec![(Calling, R::RemoteVideoCall)]);
    assert!(w.device(b).media_commands.is_empty());
    assert!(!events(&w, b).contains(&E::JoinMediaStart));
    // The caller joined at call() regardless.
    assert_eq!(kinds(&w, a), vec!["join"]);

    w.command(b, Command::Accept).unwrap();
    // Joined right at accept.
    assert_eq!(kinds(&w, b), vec!["join"]);
    assert_eq!(joins(&w, b)[0].plan, EARLY_VIDEO);
    assert_eq!(joins(&w, b)[0].room_id, "alice-room");
    w.run_for(Duration::from_secs(1));
    assert_eq!(
        states(&w, b),
        vec![
            (Calling, R::RemoteVideoCall),
            (Connecting, R::LocalAccepted),
            (Connected, R::RecvRemoteFirstFrame)
        ]
    );
    assert_eq!(kinds(&w, b), vec!["join", "update_plan"]);
    assert_eq!(plan_updates(&w, b), vec![CONNECTED_VIDEO]);
}

#[test]
fn a_callee_that_never_joined_has_nothing_to_leave() {
    let (mut w, a, b) = two_party();
    without_early_media(&mut w, b, "bob-room");
    w.call(a, "bob", CallType::Video).unwrap();
    w.run_for(Duration::from_secs(1));
    w.command(b, Command::Reject { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
    assert!(w.device(b).media_commands.is_empty());
    assert_eq!(kinds(&w, a), vec!["join", "leave"]);
}

#[test]
fn the_caller_joins_at_call_even_without_early_media() {
    let (mut w, a, b) = two_party();
    without_early_media(&mut w, a, "alice-room");
    w.call(a, "bob", CallType::Video).unwrap();
    assert_eq!(kinds(&w, a), vec!["join"]);
    assert_eq!(joins(&w, a)[0].plan, EARLY_VIDEO);
    w.run_for(Duration::from_secs(1));
    // Bob's own setting (on) applies to bob.
    assert_eq!(kinds(&w, b), vec!["join"]);
}

/// Joins early only when the invite's extension says `"early": true`; otherwise (no key) leaves
/// it to the prepare setting. Records what it was shown.
struct ByExtension(Arc<Mutex<Vec<IncomingInvite>>>);

impl CallPolicy for ByExtension {
    fn join_media_on_ringing(&self, invite: &IncomingInvite) -> Option<bool> {
        self.0.lock().unwrap().push(invite.clone());
        invite
            .extension
            .get("early")
            .and_then(serde_json::Value::as_bool)
    }
}

fn call_with(w: &mut SimWorld, a: usize, early: Option<bool>) {
    let mut extension = Extension::new();
    if let Some(early) = early {
        extension.insert("early".into(), early.into());
    }
    w.call_with_extension(a, "bob", CallType::Video, extension)
        .unwrap();
    w.run_for(Duration::from_secs(1));
}

fn end(w: &mut SimWorld, a: usize) {
    w.command(a, Command::Cancel { reason: None }).unwrap();
    w.run_for(Duration::from_secs(1));
}

#[test]
fn a_policy_decides_per_invite() {
    let (mut w, a, b) = two_party();
    let seen = Arc::new(Mutex::new(Vec::new()));
    w.devices[b]
        .machine
        .set_policy(Box::new(ByExtension(seen.clone())));

    // Policy says no: no early media although prepare says yes.
    call_with(&mut w, a, Some(false));
    assert_eq!(w.device(b).machine.state(), Calling);
    assert!(w.device(b).media_commands.is_empty());
    let invite = seen.lock().unwrap()[0].clone();
    assert_eq!(invite.from.as_str(), "alice");
    assert_eq!(invite.from_device.as_str(), "a1");
    assert_eq!(invite.call_id, current_call_id(&w, b));
    assert_eq!(invite.call_type, CallType::Video);
    assert_eq!(invite.room_id, "alice-room");
    end(&mut w, a);

    // Policy has no opinion: the prepare setting (on) applies.
    call_with(&mut w, a, None);
    assert_eq!(kinds(&w, b), vec!["join"]);
    end(&mut w, a);

    // Prepare says no, the policy says yes: early media.
    without_early_media(&mut w, b, "bob-room");
    call_with(&mut w, a, Some(true));
    assert_eq!(kinds(&w, b), vec!["join", "leave", "join"]);
    end(&mut w, a);

    // Prepare says no and the policy has no opinion: no early media.
    call_with(&mut w, a, None);
    assert_eq!(kinds(&w, b), vec!["join", "leave", "join", "leave"]);
    assert_eq!(seen.lock().unwrap().len(), 4);
    end(&mut w, a);
    assert_eq!(
        states(&w, b),
        [
            (Calling, R::RemoteVideoCall),
            (Prepared, R::RemoteCancelled)
        ]
        .repeat(4)
    );
}
