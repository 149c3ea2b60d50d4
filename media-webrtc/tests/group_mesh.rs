//! Group calls with real WebRTC: a full mesh, one peer connection per pair of members.
//!
//! alice calls bob and carol (video); once they accept, every member receives video and audio
//! from every other (a first complete VP8 keyframe and a first Opus packet per peer). bob then
//! invites dave mid-call: the late joiner gets media from all three and they from him — a
//! four-member mesh. carol leaves: her peer connections are closed on every side (each live
//! count back to what it was before she came). alice ends the call: everything is freed. Run
//! over the mock network and over a real callapi-signal-ws server on 127.0.0.1; the video
//! member cap is checked on the mock network.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{codes, CallState, Notification, PeerMediaEvent, StateReason};
use callapi_core::media::MediaKind;
use callapi_core::protocol::CallType;
use callapi_core::signal::SignalClient;
use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_mock::{FaultPlan, MockNetwork};
use common::*;

const FREED: Duration = Duration::from_secs(10);

/// Waits until `p` got video and audio from each of `from`.
async fn media_from(p: &mut Peer, from: &[&str]) {
    for u in from {
        p.wait_peer(u, PeerMediaEvent::FirstFrame(MediaKind::Video))
            .await;
        p.wait_peer(u, PeerMediaEvent::FirstFrame(MediaKind::Audio))
            .await;
    }
}

async fn live_is(p: &Peer, n: usize) {
    assert!(
        p.media.wait_live_peer_connections(n, FREED).await,
        "{}: {} live peer connections, expected {n}",
        p.user,
        p.media.live_peer_connections()
    );
    assert_eq!(p.media.live_peer_connections(), n, "{}", p.user);
}

/// The devices, prepared; over a real server each waits for its link first (the mock
/// network's links are up from the start).
async fn start<S: SignalClient>(
    names: &[(&str, &str)],
    wait_link: bool,
    signal: impl Fn(&str, &str) -> S,
    config: impl Fn() -> WebRtcConfig,
) -> Vec<Peer> {
    let mut peers = Vec::new();
    for (u, d) in names {
        let mut p = Peer::start(u, d, signal(u, d), config());
        if wait_link {
            p.wait_link_up().await;
        }
        p.prepare(true).await;
        peers.push(p);
    }
    peers
}

async fn mesh_scenario(peers: &mut [Peer]) {
    let [alice, bob, carol, dave] = peers else {
        panic!("four peers")
    };
    let call_id = alice
        .api
        .call_group(&["bob", "carol"], CallType::Video)
        .await
        .unwrap();
    for p in [&mut *bob, &mut *carol] {
        p.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
            .await;
        // Ringing invitees have no media in a group call.
        assert_eq!(p.media.live_peer_connections(), 0);
        p.api.accept().await.unwrap();
    }
    for p in [&mut *alice, &mut *bob, &mut *carol] {
        p.wait_state(CallState::Connected).await;
    }
    media_from(alice, &["bob", "carol"]).await;
    media_from(bob, &["alice", "carol"]).await;
    media_from(carol, &["alice", "bob"]).await;
    for p in [&*alice, &*bob, &*carol] {
        live_is(p, 2).await;
    }

    // A late joiner: bob invites dave mid-call.
    let mut dave_samples = dave.media.subscribe_samples();
    bob.api.invite(&["dave"]).await.unwrap();
    dave.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;
    dave.api.accept().await.unwrap();
    dave.wait_state(CallState::Connected).await;
    media_from(dave, &["alice", "bob", "carol"]).await;
    for p in [&mut *alice, &mut *bob, &mut *carol] {
        media_from(p, &["dave"]).await;
        live_is(p, 3).await;
    }
    live_is(dave, 3).await;
    // Samples and counters per member.
    let mut video_from = std::collections::BTreeSet::new();
    while video_from.len() < 3 {
        let sample = tokio::time::timeout(WAIT, dave_samples.recv())
            .await
            .expect("dave's samples keep coming")
            .expect("the engine is alive");
        if sample.kind() == MediaKind::Video {
            let from = sample.from.expect("a group sample names its sender");
            video_from.insert(from.user.to_string());
        }
    }
    drop(dave_samples);
    let names = ["alice", "bob", "carol", "dave"];
    for p in [&*alice, &*bob, &*carol, &*dave] {
        let by_peer = p.media.counters_by_peer();
        let others: Vec<&str> = names
            .iter()
            .copied()
            .filter(|u| *u != p.user.as_str())
            .collect();
        let listed: Vec<&str> = by_peer.keys().map(|k| k.user.as_str()).collect();
        assert_eq!(listed, others, "{}", p.user);
        for (peer, c) in &by_peer {
            assert!(
                c.video.frames_received >= 1 && c.audio.frames_received >= 1,
                "{} from {peer}: {c:?}",
                p.user
            );
            assert!(c.video.samples_sent >= 1, "{} to {peer}: {c:?}", p.user);
            assert_eq!(c.peer_connections_opened, 1, "{} with {peer}", p.user);
        }
        let c = p.media.counters();
        assert!(c.video.frames_received >= 3, "{}: {c:?}", p.user);
        assert!(c.audio.frames_received >= 3, "{}: {c:?}", p.user);
    }

    // carol leaves: her connections close on every side, the others stay connected.
    carol.api.leave(None).await.unwrap();
    carol.wait_state(CallState::Prepared).await;
    live_is(carol, 0).await;
    for p in [&mut *alice, &mut *bob, &mut *dave] {
        p.wait_peer("carol", PeerMediaEvent::Closed).await;
        live_is(p, 2).await;
        assert_eq!(p.api.state(), CallState::Connected, "{}", p.user);
    }

    alice.api.end(None).await.unwrap();
    for p in [&mut *bob, &mut *dave] {
        p.wait_change(CallState::Prepared, StateReason::CallEnded)
            .await;
    }
    for p in peers.iter() {
        p.assert_media_freed().await;
    }
    let _ = call_id;
}

const FOUR: [(&str, &str); 4] = [
    ("alice", "a1"),
    ("bob", "b1"),
    ("carol", "c1"),
    ("dave", "d1"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_mesh_of_three_then_four_over_the_mock_network() {
    init_tracing();
    let net = MockNetwork::new(7, FaultPlan::default());
    let mut peers = start(
        &FOUR,
        false,
        |u, d| net.connect(user(u), device(d)),
        WebRtcConfig::loopback,
    )
    .await;
    mesh_scenario(&mut peers).await;
    for p in &peers {
        p.api.shutdown().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_video_mesh_of_three_then_four_over_a_real_signaling_server() {
    init_tracing();
    let server = ws_server().await;
    let url = server.url();
    let mut peers = start(
        &FOUR,
        true,
        |u, d| ws_signal(&url, u, d),
        WebRtcConfig::loopback,
    )
    .await;
    mesh_scenario(&mut peers).await;
    for p in &peers {
        p.api.shutdown().await.unwrap();
    }
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_video_member_cap_refuses_a_peer_with_a_clear_error_and_audio_goes_further() {
    init_tracing();
    let net = MockNetwork::new(8, FaultPlan::default());
    let capped = || WebRtcConfig::loopback().with_max_video_members(3);
    let mut peers = start(&FOUR, false, |u, d| net.connect(user(u), device(d)), capped).await;
    {
        let [alice, rest @ ..] = &mut peers[..] else {
            unreachable!()
        };
        alice
            .api
            .call_group(&["bob", "carol", "dave"], CallType::Video)
            .await
            .unwrap();
        for p in rest.iter_mut() {
            p.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
                .await;
            p.api.accept().await.unwrap();
            p.wait_state(CallState::Connected).await;
        }
        // Each device takes two peers (three members) and refuses the third with the cap.
        for p in std::iter::once(&mut *alice).chain(rest.iter_mut()) {
            let n = p
                .wait_for(
                    "the cap error",
                    |n| matches!(n, Notification::Error(e) if e.code == codes::PEER_MEDIA_FAILED),
                )
                .await;
            let Notification::Error(e) = n else {
                unreachable!()
            };
            assert!(
                e.message.contains("at most 3 members") && e.message.contains("audio-only"),
                "{}: {}",
                p.user,
                e.message
            );
            live_is(p, 2).await;
            assert_eq!(p.api.state(), CallState::Connected, "the call goes on");
        }
        alice.api.end(None).await.unwrap();
        for p in rest.iter_mut() {
            p.wait_change(CallState::Prepared, StateReason::CallEnded)
                .await;
        }
    }
    for p in &peers {
        p.assert_media_freed().await;
    }

    // The same four in an audio-only call: no cap, every pair connects.
    let [alice, rest @ ..] = &mut peers[..] else {
        unreachable!()
    };
    alice
        .api
        .call_group(&["bob", "carol", "dave"], CallType::Audio)
        .await
        .unwrap();
    for p in rest.iter_mut() {
        p.wait_change(CallState::Calling, StateReason::RemoteAudioCall)
            .await;
        p.api.accept().await.unwrap();
    }
    let names = ["alice", "bob", "carol", "dave"];
    for (i, p) in std::iter::once(&mut *alice)
        .chain(rest.iter_mut())
        .enumerate()
    {
        for (j, u) in names.iter().enumerate() {
            if i != j {
                p.wait_peer(u, PeerMediaEvent::FirstFrame(MediaKind::Audio))
                    .await;
            }
        }
        live_is(p, 3).await;
    }
    for p in &peers {
        p.api.shutdown().await.unwrap();
    }
}
