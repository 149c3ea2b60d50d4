//! The engine on its own, wired by hand (what `CallApi` does): negotiation payloads forwarded
//! between two `WebRtcMedia`s, first frames of both kinds, stats on request, and `RemoteLeft`
//! when the peer leaves the media.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::media::{JoinRequest, MediaEngine, MediaEvent, MediaKind, MediaPlan, MediaRole};
use callapi_core::protocol::{CallId, CallType};
use callapi_media_webrtc::{WebRtcConfig, WebRtcMedia};
use common::*;

fn request(call_id: CallId, role: MediaRole) -> JoinRequest {
    let (local, remote) = match role {
        MediaRole::Caller => ("alice", "bob"),
        _ => ("bob", "alice"),
    };
    JoinRequest {
        call_id,
        room_id: "alice-room".into(),
        role,
        call_type: CallType::Video,
        local_user: user(local),
        remote_user: user(remote),
        plan: MediaPlan {
            publish_audio: true,
            publish_video: true,
            subscribe_audio: false,
            subscribe_video: true,
        },
        group: false,
    }
}

/// Runs both engines, forwarding `Signal`s, until `done` holds for an event of engine `a`
/// (`true`) or `b` (`false`); returns every event seen.
async fn pump(
    a: &mut WebRtcMedia,
    b: &mut WebRtcMedia,
    mut done: impl FnMut(bool, &MediaEvent) -> bool,
) -> Vec<(bool, MediaEvent)> {
    let mut seen = Vec::new();
    tokio::time::timeout(WAIT, async {
        loop {
            let (from_a, ev) = tokio::select! {
                ev = a.next_event() => (true, ev.expect("engine a open")),
                ev = b.next_event() => (false, ev.expect("engine b open")),
            };
            if let MediaEvent::Signal { call_id, payload } = &ev {
                let to = if from_a { &mut *b } else { &mut *a };
                to.remote_signal(*call_id, payload.clone()).await.unwrap();
            }
            seen.push((from_a, ev.clone()));
            if done(from_a, &ev) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not done within {WAIT:?}; events: {seen:#?}"));
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_peer_leaving_the_media_is_reported_as_remote_left() {
    init_tracing();
    let mut config = WebRtcConfig::loopback();
    config.ice_disconnected_timeout = Duration::from_millis(800);
    config.ice_failed_timeout = Duration::from_secs(5);
    let mut a = WebRtcMedia::new(config.clone()).unwrap();
    let mut b = WebRtcMedia::new(config).unwrap();
    let (ha, hb) = (a.handle(), b.handle());
    let call_id = CallId::new_v4();
    a.join(request(call_id, MediaRole::Caller)).await.unwrap();
    b.join(request(call_id, MediaRole::Callee)).await.unwrap();

    // Both sides' first remote video frame and first published frame, in whatever order they
    // come (a frame can reach the peer before its sender's own event is reported).
    let (mut frames, mut published) = (0, 0);
    let seen = pump(&mut a, &mut b, |_, ev| {
        match ev {
            MediaEvent::FirstRemoteFrame {
                kind: MediaKind::Video,
                ..
            } => frames += 1,
            MediaEvent::FirstLocalFramePublished { .. } => published += 1,
            _ => {}
        }
        frames == 2 && published == 2
    })
    .await;
    for side in [true, false] {
        let has = |f: &dyn Fn(&MediaEvent) -> bool| seen.iter().any(|(s, e)| *s == side && f(e));
        assert!(has(&|e| matches!(e, MediaEvent::LocalJoined { .. })));
        assert!(has(&|e| matches!(e, MediaEvent::RemoteJoined { .. })));
        assert!(has(&|e| matches!(
            e,
            MediaEvent::FirstLocalFramePublished { .. }
        )));
    }

    a.stats(call_id).await.unwrap();
    let seen = pump(&mut a, &mut b, |from_a, ev| {
        from_a && matches!(ev, MediaEvent::Stats { .. })
    })
    .await;
    match &seen.last().unwrap().1 {
        MediaEvent::Stats { stats, .. } => {
            assert!(stats.send_bitrate_bps > 0, "{stats:?}");
            assert!(stats.recv_bitrate_bps > 0, "{stats:?}");
        }
        other => panic!("{other:?}"),
    }

    a.leave(call_id).await;
    assert!(
        ha.wait_live_peer_connections(0, Duration::from_secs(5))
            .await
    );
    pump(&mut a, &mut b, |from_a, ev| {
        assert!(from_a || !matches!(ev, MediaEvent::Failed { .. }), "{ev:?}");
        !from_a && matches!(ev, MediaEvent::RemoteLeft { .. })
    })
    .await;
    // An engine dropped mid-call (no `leave`) frees its connection too.
    drop(b);
    assert!(
        hb.wait_live_peer_connections(0, Duration::from_secs(5))
            .await
    );
    assert!(a
        .remote_signal(call_id, serde_json::json!({}))
        .await
        .is_err());
}
