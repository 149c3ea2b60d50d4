//! The network-namespace tests' shared setup: a [`Lab`] with a `callapi-signal-ws` server,
//! alice and bob each in a namespace of their own, every socket (signaling and media) real and
//! crossing the lab's router, and a 1:1 video call between them ([`LabCall::start`]).
//!
//! The senders' video source is an encoder that makes a keyframe only when asked (as browsers'
//! WebRTC encoders do after the first): the test clip's periodic keyframes are left out, so
//! every keyframe a receiver gets after the first answers one of its keyframe requests (PLI).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use callapi_core::call::{CallConfig, CallState, StateReason};
use callapi_core::connection::{Supervisor, SupervisorConfig};
use callapi_core::media::MediaKind;
use callapi_core::protocol::CallType;
use callapi_media_webrtc::{
    EncodedSample, MediaSource, SampleReceiver, SampleStream, TestClip, WebRtcConfig, WebRtcMedia,
};
use callapi_signal_mock::netns::{fast_reconnects, Host, Lab};
use callapi_signal_ws::client::{ClientOptions, WsSignalClient, WsTransport};
use callapi_signal_ws::server::{ServerConfig, ServerHandle, SignalServer};

use super::{credentials, device, identity, user, Peer, SECRET};

/// The signaling keepalive on both ends: a ping a second, dead after two silent ones, so a
/// cut is noticed within about 2 s.
pub const PING: Duration = Duration::from_secs(1);

/// A video source whose keyframes come only on request (and the very first), counting the
/// requests it got.
#[derive(Clone)]
pub struct KeyframesOnRequest {
    clip: TestClip,
    requests: Arc<AtomicU64>,
}

impl KeyframesOnRequest {
    pub fn new() -> Self {
        Self {
            clip: TestClip::new().unwrap(),
            requests: Arc::default(),
        }
    }

    /// Keyframe requests (PLI/FIR from the receiver) this source was asked so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

impl MediaSource for KeyframesOnRequest {
    fn open(&self, kind: MediaKind) -> Option<Box<dyn SampleStream>> {
        let inner = self.clip.open(kind)?;
        if kind != MediaKind::Video {
            return Some(inner);
        }
        Some(Box::new(OnRequestStream {
            inner,
            wanted: true,
            requests: self.requests.clone(),
        }))
    }
}

struct OnRequestStream {
    inner: Box<dyn SampleStream>,
    wanted: bool,
    requests: Arc<AtomicU64>,
}

impl SampleStream for OnRequestStream {
    fn next_sample(&mut self) -> Option<EncodedSample> {
        for _ in 0..1000 {
            let s = self.inner.next_sample()?;
            if s.keyframe && !self.wanted {
                continue; // a periodic keyframe nobody asked for
            }
            if s.keyframe {
                self.wanted = false;
            }
            return Some(s);
        }
        None
    }

    fn request_keyframe(&mut self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.wanted = true;
        self.inner.request_keyframe();
    }
}

/// The lab: server, alice and bob, each with its host thread.
pub struct Net {
    pub lab: Lab,
    pub server_host: Host,
    pub alice_host: Host,
    pub bob_host: Host,
}

impl Net {
    /// The lab, or `None` after printing `SKIP: <reason>` where namespaces are refused.
    pub fn new() -> Option<Self> {
        let lab = Lab::new_or_skip(&["server", "alice", "bob"]).unwrap()?;
        Some(Self {
            server_host: lab.host("server").unwrap(),
            alice_host: lab.host("alice").unwrap(),
            bob_host: lab.host("bob").unwrap(),
            lab,
        })
    }

    /// The signaling server on the server host (its address, port 0), keepalive [`PING`].
    pub async fn server(&self) -> ServerHandle {
        let addr = SocketAddr::from((self.lab.addr("server").unwrap(), 0));
        self.server_host
            .spawn(async move {
                let mut config = ServerConfig::new(addr, SECRET.to_vec());
                config.timers.ping_interval = PING;
                config.timers.missed_pongs = 2;
                SignalServer::start(config).await.unwrap()
            })
            .await
    }

    /// A device of user `host` on that host (its sockets, signaling and media, in that
    /// namespace), media bound to the host's address, signaling that notices a dead link
    /// within ~2 s and retries every second ([`fast_reconnects`]); `tweak` adjusts its media
    /// settings.
    pub async fn peer(
        &self,
        host: &str,
        url: &str,
        d: &str,
        grace: Duration,
        source: &KeyframesOnRequest,
        tweak: fn(&mut WebRtcConfig),
    ) -> Peer {
        let addr = self.lab.addr(host).unwrap();
        let (u, d, url, source) = (
            host.to_owned(),
            d.to_owned(),
            url.to_owned(),
            source.clone(),
        );
        let on = if host == "alice" {
            &self.alice_host
        } else {
            &self.bob_host
        };
        on.spawn(async move {
            let mut media = WebRtcConfig {
                bind_addrs: vec![SocketAddr::from((addr, 0))],
                connect_timeout: Duration::from_secs(20),
                ..WebRtcConfig::default()
            };
            tweak(&mut media);
            let mut config = CallConfig::new(user(&u), device(&d));
            config.signal_grace = grace;
            let signal = fast_ws_signal(&url, &u, &d);
            Peer::start_with(
                config,
                signal,
                WebRtcMedia::with_source(media, Arc::new(source)),
            )
        })
        .await
    }
}

/// A supervised WebSocket client with keepalive [`PING`] (dead after two silent pings) and
/// [`fast_reconnects`], each hello bounded by 2 s.
fn fast_ws_signal(url: &str, u: &str, d: &str) -> Supervisor<WsTransport> {
    let mut options = ClientOptions::default();
    options.ping_interval = PING;
    options.missed_pongs = 2;
    options.hello_timeout = Duration::from_secs(2);
    WsSignalClient::start(
        WsTransport::new(url).unwrap().with_options(options),
        SupervisorConfig::new(identity(u, d), credentials(u)).with_schedule(fast_reconnects()),
    )
}

/// A connected 1:1 video call in a lab: alice (device `a1`) called bob (`b1`), who accepted.
pub struct LabCall {
    pub net: Net,
    pub server: ServerHandle,
    pub alice: Peer,
    pub bob: Peer,
    /// Alice's video source: it answers bob's keyframe requests.
    pub alice_src: KeyframesOnRequest,
    /// Bob's video source: it answers alice's keyframe requests.
    pub bob_src: KeyframesOnRequest,
}

impl LabCall {
    /// Builds the lab, sets `loss_percent` % random loss each way on every path (before
    /// anything connects, so signaling and ICE, DTLS and SRTP all meet it), starts the
    /// server and both devices (each with a signal grace of `grace`), and connects a video
    /// call (early media; `Connected` on a first frame on both sides). `None` after printing
    /// `SKIP: <reason>` where namespaces are refused. `tweak` adjusts both engines'
    /// settings (their media bound to the host's address, a 20 s connect timeout).
    pub async fn start(
        grace: Duration,
        loss_percent: u8,
        tweak: fn(&mut WebRtcConfig),
    ) -> Option<Self> {
        let net = Net::new()?;
        if loss_percent > 0 {
            net.lab.set_loss(loss_percent).unwrap();
        }
        let server = net.server().await;
        let url = server.url();
        let (alice_src, bob_src) = (KeyframesOnRequest::new(), KeyframesOnRequest::new());
        let mut alice = net
            .peer("alice", &url, "a1", grace, &alice_src, tweak)
            .await;
        let mut bob = net.peer("bob", &url, "b1", grace, &bob_src, tweak).await;
        for p in [&mut alice, &mut bob] {
            p.wait_link_up().await;
            p.prepare(true).await;
        }
        alice.api.call("bob", CallType::Video).await.unwrap();
        bob.wait_change(CallState::Calling, StateReason::RemoteVideoCall)
            .await;
        bob.api.accept().await.unwrap();
        alice
            .wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
            .await;
        bob.wait_change(CallState::Connected, StateReason::RecvRemoteFirstFrame)
            .await;
        Some(Self {
            net,
            server,
            alice,
            bob,
            alice_src,
            bob_src,
        })
    }

    /// The signaling server's port (what [`Lab::cut`] cuts).
    pub fn signal_port(&self) -> u16 {
        self.server.local_addr().port()
    }

    /// Shuts both devices and the server down.
    pub async fn shutdown(self) {
        self.alice.api.shutdown().await.unwrap();
        self.bob.api.shutdown().await.unwrap();
        let server = self.server;
        self.net
            .server_host
            .spawn(async move { server.shutdown().await })
            .await;
    }
}

/// Waits until `p`'s link state satisfies `pred` (`true`: connected), within `within`.
pub async fn wait_link(p: &Peer, what: &str, within: Duration, pred: impl Fn(bool) -> bool) {
    let mut link = p.api.link_watch();
    let r = tokio::time::timeout(within, link.wait_for(|l| pred(l.is_connected()))).await;
    assert!(
        matches!(r, Ok(Ok(_))),
        "{}: link not {what} within {within:?}",
        p.user
    );
}

/// Complete remote video frames `p` assembled so far.
pub fn video_frames(p: &Peer) -> u64 {
    p.media.counters().video.frames_received
}

/// Remote audio packets `p` received so far.
pub fn audio_frames(p: &Peer) -> u64 {
    p.media.counters().audio.frames_received
}

/// What [`keyframe_then_frames`] read.
#[derive(Debug, Clone, Copy)]
pub struct Recovery {
    /// Video frames read before the first keyframe (the broken picture).
    pub frames_before: u32,
    /// How long after the call the first keyframe came.
    pub keyframe_after: Duration,
}

/// Reads video until a keyframe arrived and `after` more frames followed it (the picture
/// recovered and plays on), within `within`.
pub async fn keyframe_then_frames(
    samples: &mut SampleReceiver,
    who: &str,
    after: u32,
    within: Duration,
) -> Recovery {
    let started = tokio::time::Instant::now();
    let (mut frames, mut since_key) = (0u32, None::<u32>);
    let mut recovery = None;
    let r = tokio::time::timeout(within, async {
        loop {
            let s = samples.recv().await.expect("sample stream open");
            if s.kind() != MediaKind::Video {
                continue;
            }
            if s.keyframe && since_key.is_none() {
                since_key = Some(0);
                recovery = Some(Recovery {
                    frames_before: frames,
                    keyframe_after: started.elapsed(),
                });
            } else if let Some(n) = &mut since_key {
                *n += 1;
                if *n >= after {
                    return;
                }
            }
            frames += 1;
        }
    })
    .await;
    assert!(
        r.is_ok(),
        "{who}: no keyframe followed by {after} frames within {within:?} \
         ({frames} frames read, keyframe: {recovery:?})"
    );
    recovery.expect("a keyframe was read")
}
