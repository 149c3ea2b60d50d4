//! An audio-only call negotiates no video: the offer and answer have no video section, no video
//! is sent or received, and the call connects on the first Opus packet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{CallState, StateReason};
use callapi_core::media::MediaKind;
use callapi_core::protocol::CallType;
use callapi_media_webrtc::WebRtcConfig;
use callapi_signal_mock::{FaultPlan, MockNetwork};
use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_only_call_negotiates_no_video_and_connects_on_audio() {
    init_tracing();
    let net = MockNetwork::new(21, FaultPlan::none());
    let (alice_signal, offers) =
        Recorder::new(net.connect(user("alice"), device("a1")), Rewrite::None);
    let (bob_signal, answers) =
        Recorder::new(net.connect(user("bob"), device("b1")), Rewrite::None);
    let mut alice = Peer::start("alice", "a1", alice_signal, WebRtcConfig::loopback());
    let mut bob = Peer::start("bob", "b1", bob_signal, WebRtcConfig::loopback());
    alice.prepare(true).await;
    bob.prepare(true).await;
    let mut alice_samples = alice.media.subscribe_samples();

    alice.api.call("bob", CallType::Audio).await.unwrap();
    bob.wait_change(CallState::Calling, StateReason::RemoteAudioCall)
        .await;
    bob.api.accept().await.unwrap();
    alice
        .wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
        .await;
    bob.wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
        .await;
    let s = read_until(&mut alice_samples, "audio", |_| true).await;
    assert_eq!(s.kind(), MediaKind::Audio);

    for (who, log) in [("offer", &offers), ("answer", &answers)] {
        let sdp = first_sdp(log);
        assert!(sdp.contains("m=audio"), "{who}: {sdp}");
        assert!(!sdp.contains("m=video"), "{who} negotiates video: {sdp}");
    }
    for p in [&alice, &bob] {
        let c = p.media.counters();
        assert_eq!(c.video, Default::default(), "{}: {c:?}", p.user);
        assert!(
            c.audio.samples_sent > 0 && c.audio.frames_received > 0,
            "{c:?}"
        );
    }
    alice.api.hangup(None).await.unwrap();
    bob.wait_state(CallState::Prepared).await;
    alice.assert_media_freed().await;
    bob.assert_media_freed().await;
}
