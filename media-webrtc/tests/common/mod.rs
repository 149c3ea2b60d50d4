//! Shared helpers of the media-webrtc tests: `CallApi` peers with `WebRtcMedia` on loopback
//! (real UDP on 127.0.0.1, ephemeral ports), notification waits bounded by timeouts, and a
//! `SignalClient` wrapper that records (and optionally rewrites) the `media` envelopes.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callapi_core::call::{
    CallConfig, CallEvent, CallState, Notification, PeerMediaEvent, PrepareConfig, StateChange,
    StateReason,
};
use callapi_core::connection::schedule::RetrySchedule;
use callapi_core::connection::{Credentials, Identity, Supervisor, SupervisorConfig, TokenError};
use callapi_core::protocol::{Body, DeviceId, Envelope, UserId};
use callapi_core::signal::{SignalClient, SignalError, SignalEvent};
use callapi_core::{CallApi, NotificationStream};
use callapi_media_webrtc::{WebRtcConfig, WebRtcHandle, WebRtcMedia};
use callapi_signal_mock::next_matching;
use callapi_signal_ws::auth::{Claims, TokenAuthority};
use callapi_signal_ws::client::{WsSignalClient, WsTransport};
use serde_json::Value;

pub mod netns;

/// The signing secret of the test servers' tokens.
pub const SECRET: &[u8] = b"media-webrtc-test-secret-0123456";

/// `u`/`d` as a supervisor identity.
pub fn identity(u: &str, d: &str) -> Identity {
    Identity {
        user: user(u),
        device: device(d),
    }
}

/// Token credentials for `u`: an hour-long token signed by [`SECRET`] on every fetch.
pub fn credentials(u: &str) -> Credentials {
    let name = u.to_owned();
    Credentials::token(move || {
        let t = TokenAuthority::new(SECRET)
            .and_then(|a| a.mint(&Claims::new(name.clone(), Duration::from_secs(3600))));
        async move { t.map_err(|e| TokenError(e.to_string())) }
    })
}

/// A supervised WebSocket signaling client for `u`/`d` of the server at `url`, with a token
/// signed by [`SECRET`], that connects at once (no start-up jitter).
pub fn ws_signal(url: &str, u: &str, d: &str) -> Supervisor<WsTransport> {
    WsSignalClient::start(
        WsTransport::new(url).unwrap(),
        SupervisorConfig::new(identity(u, d), credentials(u))
            .with_schedule(RetrySchedule::immediate_first_attempt()),
    )
}

/// A signaling server on 127.0.0.1 (port 0) whose tokens are signed with [`SECRET`].
pub async fn ws_server() -> callapi_signal_ws::server::ServerHandle {
    callapi_signal_ws::server::SignalServer::start(callapi_signal_ws::server::ServerConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        SECRET.to_vec(),
    ))
    .await
    .unwrap()
}

/// Longest wait for anything expected.
pub const WAIT: Duration = Duration::from_secs(10);

pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

pub fn device(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

/// Logs from `RUST_LOG` (for debugging a failing run).
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// What a [`Recorder`] does to `media` payloads it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewrite {
    /// Forward unchanged.
    None,
    /// Block every ICE candidate: trickled candidates are dropped and `a=candidate` lines are
    /// stripped from descriptions, so ICE has nothing to check and cannot connect.
    BlockCandidates,
}

/// The `media` payloads a device sent, as the peer got them.
pub type MediaLog = Arc<Mutex<Vec<Value>>>;

/// A `SignalClient` that records outgoing `media` payloads and applies a [`Rewrite`].
pub struct Recorder<S> {
    inner: S,
    rewrite: Rewrite,
    log: MediaLog,
}

impl<S> Recorder<S> {
    pub fn new(inner: S, rewrite: Rewrite) -> (Self, MediaLog) {
        let log = MediaLog::default();
        (
            Self {
                inner,
                rewrite,
                log: log.clone(),
            },
            log,
        )
    }
}

impl<S: SignalClient> SignalClient for Recorder<S> {
    async fn send(&mut self, mut envelope: Envelope) -> Result<(), SignalError> {
        if let Body::Media { payload, .. } = &mut envelope.body {
            if self.rewrite == Rewrite::BlockCandidates {
                if payload.get("candidate").is_some() {
                    return Ok(()); // lost on the way
                }
                if let Some(sdp) = payload.get("sdp").and_then(Value::as_str) {
                    let kept: Vec<&str> = sdp
                        .split("\r\n")
                        .filter(|l| !l.starts_with("a=candidate"))
                        .collect();
                    payload["sdp"] = Value::String(kept.join("\r\n"));
                }
            }
            self.log.lock().unwrap().push(payload.clone());
        }
        self.inner.send(envelope).await
    }

    async fn next_event(&mut self) -> Option<SignalEvent> {
        self.inner.next_event().await
    }

    async fn renew_token(&mut self, token: String) -> Result<(), SignalError> {
        self.inner.renew_token(token).await
    }

    fn link_state(&self) -> callapi_core::signal::LinkState {
        self.inner.link_state()
    }

    async fn close(&mut self) {
        self.inner.close().await
    }
}

/// One `CallApi` device with `WebRtcMedia`, its notifications logged.
pub struct Peer {
    pub api: CallApi,
    pub media: WebRtcHandle,
    pub user: UserId,
    stream: NotificationStream,
    pub log: Vec<Notification>,
}

impl Peer {
    /// A device of `u` over `signal`, with WebRTC media set up by `config`.
    pub fn start(u: &str, d: &str, signal: impl SignalClient, config: WebRtcConfig) -> Self {
        let media = WebRtcMedia::new(config).unwrap();
        Self::start_with(CallConfig::new(user(u), device(d)), signal, media)
    }

    /// A device with its own call settings and engine (a custom source, a short signal grace).
    pub fn start_with(config: CallConfig, signal: impl SignalClient, media: WebRtcMedia) -> Self {
        let u = config.user_id.clone();
        let handle = media.handle();
        let api = CallApi::new(config, signal, media);
        let stream = api.subscribe();
        Self {
            api,
            media: handle,
            user: u,
            stream,
            log: Vec::new(),
        }
    }

    /// Waits for the first link-up (one that happened before this call counts).
    pub async fn wait_link_up(&self) {
        let mut link = self.api.link_watch();
        tokio::time::timeout(WAIT, async {
            link.wait_for(|l| l.is_connected()).await.map(|_| ())
        })
        .await
        .unwrap_or_else(|_| panic!("{}: no link up within {WAIT:?}", self.user))
        .expect("the CallApi is alive");
    }

    pub async fn prepare(&mut self, join_media_on_ringing: bool) {
        let mut cfg = PrepareConfig::new(format!("{}-room", self.user));
        cfg.join_media_on_ringing = join_media_on_ringing;
        self.api.prepare(cfg).await.unwrap();
        self.wait_state(CallState::Prepared).await;
    }

    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl FnMut(&Notification) -> bool,
    ) -> Notification {
        let (stream, log) = (&mut self.stream, &mut self.log);
        match next_matching(stream, WAIT, |n| log.push(n.clone()), pred).await {
            Ok(n) => n,
            Err(err) => panic!("{}: no {what}: {err}; log: {:#?}", self.user, self.log),
        }
    }

    pub async fn wait_state(&mut self, state: CallState) -> StateChange {
        let what = format!("state {state:?}");
        match self
            .wait_for(
                &what,
                |n| matches!(n, Notification::StateChanged(c) if c.state == state),
            )
            .await
        {
            Notification::StateChanged(c) => c,
            _ => unreachable!(),
        }
    }

    pub async fn wait_change(&mut self, state: CallState, reason: StateReason) -> StateChange {
        let c = self.wait_state(state).await;
        assert_eq!(
            c.reason, reason,
            "{}: {c:#?}\nlog: {:#?}",
            self.user, self.log
        );
        c
    }

    pub async fn wait_event(&mut self, event: CallEvent) {
        let what = format!("event {event:?}");
        self.wait_for(
            &what,
            |n| matches!(n, Notification::Event(e) if e.event == event),
        )
        .await;
    }

    /// Waits for a group call's media event about `from`'s device (or finds it among those
    /// seen so far).
    pub async fn wait_peer(&mut self, from: &str, event: PeerMediaEvent) {
        let seen = |n: &Notification| {
            matches!(n, Notification::PeerMedia { peer, event: e, .. }
                if peer.user.as_str() == from && *e == event)
        };
        if self.log.iter().any(seen) {
            return;
        }
        let what = format!("{event:?} from {from}");
        self.wait_for(&what, seen).await;
    }

    /// Whether `event` was seen so far.
    pub fn saw_event(&self, event: CallEvent) -> bool {
        self.log
            .iter()
            .any(|n| matches!(n, Notification::Event(e) if e.event == event))
    }

    /// Waits until every peer connection of this device is freed (its event handler dropped:
    /// the connection, its sockets and its tasks are gone).
    pub async fn assert_media_freed(&self) {
        assert!(
            self.media
                .wait_live_peer_connections(0, Duration::from_secs(5))
                .await,
            "{}: {} peer connection(s) still alive after the call ended",
            self.user,
            self.media.live_peer_connections()
        );
        let c = self.media.counters();
        assert_eq!(
            c.peer_connections_opened, c.peer_connections_closed,
            "{c:?}"
        );
    }
}

/// The SDP of the first description in a media log.
pub fn first_sdp(log: &MediaLog) -> String {
    log.lock()
        .unwrap()
        .iter()
        .find_map(|p| p.get("sdp").and_then(Value::as_str).map(str::to_owned))
        .expect("a session description was sent")
}

/// Reads samples until `pred` holds for one (bounded by [`WAIT`]); returns how many were read
/// before it, by kind.
pub async fn read_until(
    samples: &mut callapi_media_webrtc::SampleReceiver,
    what: &str,
    mut pred: impl FnMut(&callapi_media_webrtc::RemoteSample) -> bool,
) -> callapi_media_webrtc::RemoteSample {
    tokio::time::timeout(WAIT, async {
        loop {
            let s = samples.recv().await.expect("sample stream open");
            if pred(&s) {
                return s;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

/// The full video call of the issue, on any signaling: early media (the caller's first remote
/// keyframe before accept, remote audio held back), `Connected` on both sides because a
/// complete keyframe arrived, samples of both kinds in both sinks, stats, and a hang-up that
/// frees both peer connections.
pub async fn video_call_scenario(alice: &mut Peer, bob: &mut Peer) {
    use callapi_core::media::MediaKind;
    use callapi_core::protocol::CallType;
    use callapi_media_webrtc::Codec;

    let mut alice_samples = alice.media.subscribe_samples();
    let mut bob_samples = bob.media.subscribe_samples();
    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
        .await;

    // Early media: bob joined while ringing and publishes; alice sees his video before accept.
    alice.wait_event(CallEvent::RecvRemoteFirstFrame).await;
    assert_eq!(alice.api.state(), CallState::Calling);
    let first = read_until(&mut alice_samples, "a video frame before accept", |s| {
        s.kind() == MediaKind::Video
    })
    .await;
    assert_eq!(first.call_id, call_id);
    assert_eq!(first.codec, Codec::Vp8);
    assert!(first.keyframe, "the first frame released is a keyframe");
    // Ten more frames of video (a third of a second): bob's audio arrives meanwhile (50
    // packets a second) but stays held back until Connected.
    for _ in 0..10 {
        let s = read_until(&mut alice_samples, "video before accept", |_| true).await;
        assert_eq!(
            s.kind(),
            MediaKind::Video,
            "remote audio released before Connected"
        );
    }
    let c = alice.media.counters();
    assert!(c.audio.frames_received > 0, "{c:?}");
    assert_eq!(c.audio.frames_delivered, 0, "{c:?}");
    assert_eq!(alice.api.state(), CallState::Calling);

    bob.api.accept().await.unwrap();
    let connected = alice
        .wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
        .await;
    let t = connected.timings.expect("timings on Connected");
    for (name, v) in [
        ("local_joined", t.local_joined),
        ("remote_joined", t.remote_joined),
        ("first_local_frame_published", t.first_local_frame_published),
        ("first_remote_frame", t.first_remote_frame),
        ("accept", t.accept),
        ("connected", t.connected),
    ] {
        assert!(v.is_some(), "caller timing {name} missing: {t:?}");
    }
    assert!(t.first_remote_frame < t.accept, "early media: {t:?}");
    let connected = bob
        .wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
        .await;
    let t = connected.timings.expect("timings on Connected");
    assert!(
        t.first_remote_frame.is_some() && t.remote_joined.is_some(),
        "{t:?}"
    );

    // Both sinks: video (bob's from alice's first keyframe on) and, after Connected, audio.
    let v = read_until(&mut bob_samples, "video at bob", |s| {
        s.kind() == MediaKind::Video
    })
    .await;
    assert!(v.keyframe, "bob's first released frame is a keyframe");
    let a = read_until(&mut alice_samples, "audio at alice after Connected", |s| {
        s.kind() == MediaKind::Audio
    })
    .await;
    assert_eq!(a.codec, Codec::Opus);
    assert!(!a.data.is_empty());
    read_until(&mut bob_samples, "audio at bob after Connected", |s| {
        s.kind() == MediaKind::Audio
    })
    .await;
    for p in [&*alice, &*bob] {
        let c = p.media.counters();
        assert!(
            c.video.samples_sent > 0 && c.audio.samples_sent > 0,
            "{c:?}"
        );
        assert!(
            c.video.frames_received > 0 && c.audio.frames_delivered > 0,
            "{c:?}"
        );
    }

    // Stats on request.
    alice.api.media_stats().await.unwrap();
    let stats = alice
        .wait_for("media stats", |n| {
            matches!(n, Notification::MediaStats { .. })
        })
        .await;
    match stats {
        Notification::MediaStats { stats, .. } => {
            assert!(
                stats.recv_bitrate_bps > 0 && stats.send_bitrate_bps > 0,
                "{stats:?}"
            );
        }
        _ => unreachable!(),
    }

    alice.api.hangup(None).await.unwrap();
    bob.wait_change(CallState::Prepared, StateReason::RemoteHangup)
        .await;
    alice
        .wait_change(CallState::Prepared, StateReason::LocalHangup)
        .await;
    alice.assert_media_freed().await;
    bob.assert_media_freed().await;
}
