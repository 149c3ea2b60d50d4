//! 1:1 WebRTC video calls over a real `callapi-signal-ws` server on a real (lossy, cut) network:
//! the server, alice and bob each in a network namespace of their own behind a router namespace
//! (`callapi_signal_mock::netns::Lab`), real TCP and UDP sockets between them, and the faults
//! made by nftables rules in the router: 10 % random loss each way on every path (signaling and
//! media) with a burst of total media loss, or a cut of the signaling path (everything to and
//! from the server's port dropped). The setup is `common::netns::LabCall`.
//!
//! Needs root, iproute2 and nftables; elsewhere each test prints `SKIP: <reason>` and returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_core::call::{CallEvent, CallState, Notification, StateReason};
use callapi_media_webrtc::MediaCounters;
use common::netns::*;
use common::*;

/// The fault duration of the survivable cut (real time).
const CUT: Duration = Duration::from_secs(10);

/// How long the call runs under the random loss alone before the burst.
const UNDER_LOSS: Duration = Duration::from_secs(3);

/// The burst of total media loss: longer than NACK can repair. A receiver gives up a missing
/// packet once 128 newer ones arrived (its reordering window); the test clip's video is about
/// 30 RTP packets a second, so 6 s of silence leaves a gap of about 180 packets, given up at
/// the first frame after it. The engines here wait [`ICE_SILENCE`] before ICE counts the
/// connection as disconnected (which ends a 1:1 call's media), so the burst does not.
const BURST: Duration = Duration::from_secs(6);

/// ICE silence before disconnected in the loss case (5 s by default, shorter than [`BURST`]).
const ICE_SILENCE: Duration = Duration::from_secs(10);

/// The receivers' reordering window, in packets (`MAX_LATE_PACKETS` in media-webrtc).
const WINDOW: u64 = 128;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn video_call_with_ten_percent_loss_each_way_connects_and_plis_recover_the_picture() {
    init_tracing();
    let started = Instant::now();
    // The loss is on before anything connects: signaling (TCP) and media (ICE, DTLS, SRTP)
    // alike, 10 % of the packets of each direction.
    let Some(call) = LabCall::start(Duration::from_secs(30), 10, |c| {
        c.ice_disconnected_timeout = ICE_SILENCE;
    })
    .await
    else {
        return;
    };
    eprintln!("connected under 10 % loss in {:?}", started.elapsed());
    let (net, alice, bob) = (&call.net, &call.alice, &call.bob);
    let (alice_src, bob_src) = (&call.alice_src, &call.bob_src);

    // Media flows both ways under the loss (NACK retransmissions repair most of it).
    let (a0, b0) = (alice.media.counters(), bob.media.counters());
    let loss_at = Instant::now();
    tokio::time::sleep(UNDER_LOSS).await;
    let (a1, b1) = (alice.media.counters(), bob.media.counters());
    let secs = loss_at.elapsed().as_secs_f64();
    for (who, before, now) in [("alice", &a0, &a1), ("bob", &b0, &b1)] {
        assert!(
            now.video.frames_received > before.video.frames_received
                && now.audio.frames_received > before.audio.frames_received,
            "{who}: media stalled under 10 % loss: {now:?}"
        );
    }
    let rate = |before: &MediaCounters, now: &MediaCounters| {
        (now.video.packets_received - before.video.packets_received) as f64 / secs
    };
    let (a_rate, b_rate) = (rate(&a0, &a1), rate(&b0, &b1));
    eprintln!(
        "under loss: video {a_rate:.1} packets/s at alice, {b_rate:.1} at bob; keyframe \
         requests so far: alice sent {}, bob sent {}",
        a1.video.keyframe_requests_sent, b1.video.keyframe_requests_sent
    );
    // The burst must leave a gap wider than the receivers' window, or NACK could still
    // repair it (what arrives, retransmissions included, is about what was sent).
    for (who, r) in [("alice", a_rate), ("bob", b_rate)] {
        let gap = r * BURST.as_secs_f64();
        assert!(
            gap > WINDOW as f64,
            "{who}: a {BURST:?} burst at {r:.1} packets/s leaves ~{gap:.0} packets missing, \
             within the {WINDOW}-packet window NACK may repair: lengthen BURST"
        );
    }

    // The burst: every UDP packet to and from alice dropped, both ways (signaling is TCP and
    // flows on). Both pictures break; nothing arrives meanwhile.
    net.lab.cut_udp("alice").unwrap();
    tokio::time::sleep(BURST).await;
    let (a2, b2) = (alice.media.counters(), bob.media.counters());
    let mut a_samples = alice.media.subscribe_samples();
    let mut b_samples = bob.media.subscribe_samples();
    net.lab.heal().unwrap();

    // Each receiver finds the gap, requests a keyframe (again every 500 ms until one comes,
    // since a request can be lost too), the other side's source answers it, and the picture
    // plays on from that keyframe: 15 frames after it.
    let within = Duration::from_secs(10);
    let (a_rec, b_rec) = tokio::join!(
        keyframe_then_frames(&mut a_samples, "alice", 15, within),
        keyframe_then_frames(&mut b_samples, "bob", 15, within),
    );
    let (a3, b3) = (alice.media.counters(), bob.media.counters());
    eprintln!(
        "after the {BURST:?} burst: alice's keyframe {:?} after the heal ({} frames before \
         it), bob's {:?} ({}); keyframe requests sent since the heal: alice {}, bob {}; \
         received: alice {}, bob {}; keyframes sent: alice {}, bob {}; sources asked: \
         alice's {}, bob's {}",
        a_rec.keyframe_after,
        a_rec.frames_before,
        b_rec.keyframe_after,
        b_rec.frames_before,
        a3.video.keyframe_requests_sent - a2.video.keyframe_requests_sent,
        b3.video.keyframe_requests_sent - b2.video.keyframe_requests_sent,
        a3.video.keyframe_requests_received - a2.video.keyframe_requests_received,
        b3.video.keyframe_requests_received - b2.video.keyframe_requests_received,
        a3.video.keyframes_sent - a2.video.keyframes_sent,
        b3.video.keyframes_sent - b2.video.keyframes_sent,
        alice_src.requests(),
        bob_src.requests(),
    );
    eprintln!("counters: alice {a3:?}\nbob {b3:?}");
    for (who, peer, at_heal, now, sender_at_heal, sender_now) in [
        ("alice", "bob", &a2, &a3, &b2, &b3),
        ("bob", "alice", &b2, &b3, &a2, &a3),
    ] {
        assert!(
            now.video.keyframe_requests_sent > at_heal.video.keyframe_requests_sent,
            "{who} sent no PLI after the burst: {now:?}"
        );
        assert!(
            sender_now.video.keyframe_requests_received
                > sender_at_heal.video.keyframe_requests_received,
            "{peer} got no PLI from {who} after the burst: {sender_now:?}\n{}",
            net.lab.ruleset().unwrap()
        );
        assert!(
            sender_now.video.keyframes_sent > sender_at_heal.video.keyframes_sent,
            "{peer} sent no keyframe after the burst: {sender_now:?}"
        );
        assert!(
            now.video.keyframes_received > at_heal.video.keyframes_received,
            "{who} assembled no keyframe after the burst: {now:?}"
        );
        assert!(
            now.audio.frames_received > at_heal.audio.frames_received,
            "{who}: audio did not resume after the burst"
        );
    }
    // With no periodic keyframes, the keyframes after the burst answer requests: each source
    // was asked (by the other side's PLIs).
    assert!(alice_src.requests() > 0 && bob_src.requests() > 0);

    let mut call = call;
    call.alice.api.hangup(None).await.unwrap();
    call.bob
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    call.alice
        .wait_change(CallState::Prepared, StateReason::LocalHangup)
        .await;
    call.shutdown().await;
    eprintln!("the whole case took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_cut_for_ten_seconds_mid_call_the_call_survives_media_flows_messages_arrive() {
    init_tracing();
    let Some(mut call) = LabCall::start(Duration::from_secs(30), 0, |_| {}).await else {
        return;
    };
    let port = call.signal_port();
    let LabCall {
        net, alice, bob, ..
    } = &mut call;
    net.lab.cut("server", port).unwrap();
    let cut_at = tokio::time::Instant::now();
    let (a_video, b_video) = (video_frames(alice), video_frames(bob));
    alice.api.send_message("sent during the cut").await.unwrap();
    // Both ends notice the dead link (keepalive), and reconnect attempts fail while it lasts.
    wait_link(alice, "down", Duration::from_secs(6), |up| !up).await;
    wait_link(bob, "down", Duration::from_secs(6), |up| !up).await;
    // Media keeps flowing meanwhile (its path is not cut).
    tokio::time::sleep_until(cut_at + CUT / 2).await;
    let (a_mid, b_mid) = (video_frames(alice), video_frames(bob));
    assert!(
        a_mid > a_video && b_mid > b_video,
        "media stalled in the cut"
    );
    tokio::time::sleep_until(cut_at + CUT).await;
    assert!(
        video_frames(alice) > a_mid && video_frames(bob) > b_mid,
        "media stalled in the cut"
    );
    assert!(
        !bob.log
            .iter()
            .any(|n| matches!(n, Notification::MessageReceived { .. })),
        "a message crossed the cut"
    );
    assert_eq!(alice.api.state(), CallState::Connected);
    assert_eq!(bob.api.state(), CallState::Connected);
    assert!(!alice.api.link_state().is_connected() && !bob.api.link_state().is_connected());
    net.lab.heal().unwrap();
    let healed = Instant::now();

    // The links come back, the pending message arrives, and the call went on throughout.
    wait_link(alice, "up", WAIT, |up| up).await;
    wait_link(bob, "up", WAIT, |up| up).await;
    let got = bob
        .wait_for("the message sent during the cut", |n| {
            matches!(n, Notification::MessageReceived { .. })
        })
        .await;
    eprintln!(
        "reconnected and delivered {:?} after the heal",
        healed.elapsed()
    );
    match got {
        Notification::MessageReceived { from, data, .. } => {
            assert_eq!(from.as_str(), "alice");
            assert_eq!(data, "sent during the cut");
        }
        _ => unreachable!(),
    }
    for p in [&*alice, &*bob] {
        assert_eq!(p.api.state(), CallState::Connected, "{}", p.user);
        assert!(
            !p.saw_event(CallEvent::SignalLost),
            "{}: {:#?}",
            p.user,
            p.log
        );
        assert!(
            !p.log.iter().any(
                |n| matches!(n, Notification::StateChanged(c) if c.state != CallState::Connected
                    && c.reason == StateReason::SignalLost)
            ),
            "{}: {:#?}",
            p.user,
            p.log
        );
    }
    // Signaling works both ways again: a hang-up reaches the other side.
    bob.api.hangup(None).await.unwrap();
    alice
        .wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    call.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_cut_longer_than_the_grace_ends_the_call_with_signal_lost_on_both_sides() {
    init_tracing();
    // A 3 s grace (30 s by default) keeps this case short: the cut lasts until both sides
    // gave up, about 2 s to notice the dead link plus the grace.
    let grace = Duration::from_secs(3);
    let Some(mut call) = LabCall::start(grace, 0, |_| {}).await else {
        return;
    };
    let port = call.signal_port();
    let LabCall {
        net, alice, bob, ..
    } = &mut call;
    net.lab.cut("server", port).unwrap();
    let cut_at = Instant::now();
    alice
        .wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    bob.wait_change(CallState::Prepared, StateReason::SignalLost)
        .await;
    let lost_after = cut_at.elapsed();
    eprintln!("both sides SignalLost {lost_after:?} into the cut (grace {grace:?})");
    assert!(lost_after >= grace, "{lost_after:?}");
    assert!(alice.saw_event(CallEvent::SignalLost) && bob.saw_event(CallEvent::SignalLost));
    net.lab.heal().unwrap();
    // After the heal both devices are back online, ready for the next call.
    wait_link(alice, "up", WAIT, |up| up).await;
    wait_link(bob, "up", WAIT, |up| up).await;
    alice.assert_media_freed().await;
    bob.assert_media_freed().await;
    call.shutdown().await;
}
