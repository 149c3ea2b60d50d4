//! The demo's media engine, kept in this one module so it can be swapped.
//!
//! By default each device gets a `callapi-media-webrtc` [`WebRtcMedia`] on loopback, publishing
//! its looping VP8/Opus test clip: a real peer connection negotiated through the signaling
//! backend, whose frame and packet counters give the media section of the report. `--media
//! none` uses the core's `NoMedia` instead (signaling only: a call is `Connected` at accept).

use callapi_core::media::{
    JoinRequest, MediaEngine, MediaError, MediaEvent, MediaPeer, MediaPlan, NoMedia,
};
use callapi_core::protocol::CallId;
use callapi_media_webrtc::{WebRtcConfig, WebRtcHandle, WebRtcMedia};
use clap::ValueEnum;
use serde_json::Value;

use crate::error::DemoError;

/// Which media the calls carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MediaChoice {
    /// WebRTC peer connections with the VP8/Opus test clip.
    Webrtc,
    /// No media (signaling only).
    None,
}

/// The engine each device gets.
pub enum Engine {
    /// WebRTC.
    WebRtc(Box<WebRtcMedia>),
    /// Nothing.
    None(NoMedia),
}

impl MediaEngine for Engine {
    async fn join(&mut self, request: JoinRequest) -> Result<(), MediaError> {
        match self {
            Engine::WebRtc(m) => m.join(request).await,
            Engine::None(m) => m.join(request).await,
        }
    }

    async fn update_plan(&mut self, call_id: CallId, plan: MediaPlan) -> Result<(), MediaError> {
        match self {
            Engine::WebRtc(m) => m.update_plan(call_id, plan).await,
            Engine::None(m) => m.update_plan(call_id, plan).await,
        }
    }

    async fn remote_signal(&mut self, call_id: CallId, payload: Value) -> Result<(), MediaError> {
        match self {
            Engine::WebRtc(m) => m.remote_signal(call_id, payload).await,
            Engine::None(m) => m.remote_signal(call_id, payload).await,
        }
    }

    async fn leave(&mut self, call_id: CallId) {
        match self {
            Engine::WebRtc(m) => m.leave(call_id).await,
            Engine::None(m) => m.leave(call_id).await,
        }
    }

    async fn add_peer(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        offerer: bool,
    ) -> Result<(), MediaError> {
        match self {
            Engine::WebRtc(m) => m.add_peer(call_id, peer, offerer).await,
            Engine::None(m) => m.add_peer(call_id, peer, offerer).await,
        }
    }

    async fn remove_peer(&mut self, call_id: CallId, peer: MediaPeer) {
        match self {
            Engine::WebRtc(m) => m.remove_peer(call_id, peer).await,
            Engine::None(m) => m.remove_peer(call_id, peer).await,
        }
    }

    async fn peer_signal(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        payload: Value,
    ) -> Result<(), MediaError> {
        match self {
            Engine::WebRtc(m) => m.peer_signal(call_id, peer, payload).await,
            Engine::None(m) => m.peer_signal(call_id, peer, payload).await,
        }
    }

    async fn stats(&mut self, call_id: CallId) -> Result<(), MediaError> {
        match self {
            Engine::WebRtc(m) => m.stats(call_id).await,
            Engine::None(m) => m.stats(call_id).await,
        }
    }

    async fn next_event(&mut self) -> Option<MediaEvent> {
        match self {
            Engine::WebRtc(m) => m.next_event().await,
            Engine::None(m) => m.next_event().await,
        }
    }

    fn reports_frames(&self) -> bool {
        match self {
            Engine::WebRtc(m) => m.reports_frames(),
            Engine::None(m) => m.reports_frames(),
        }
    }
}

/// What one side's engine counted (totals since the engine started).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MediaCounts {
    /// Video frames sent.
    pub video_frames_sent: u64,
    /// Complete video frames received.
    pub video_frames_received: u64,
    /// Audio packets sent.
    pub audio_packets_sent: u64,
    /// Audio packets received.
    pub audio_packets_received: u64,
}

/// Reads one side's media counters.
#[derive(Debug, Clone)]
pub struct Counters(Option<WebRtcHandle>);

impl Counters {
    /// Group calls: the counts with each other member (by user), or `None` when the engine
    /// counts nothing.
    pub fn by_peer(&self) -> Option<std::collections::BTreeMap<String, MediaCounts>> {
        let by_peer = self.0.as_ref()?.counters_by_peer();
        let mut out = std::collections::BTreeMap::<String, MediaCounts>::new();
        for (peer, c) in by_peer {
            let e = out.entry(peer.user.to_string()).or_default();
            e.video_frames_sent += c.video.samples_sent;
            e.video_frames_received += c.video.frames_received;
            e.audio_packets_sent += c.audio.samples_sent;
            e.audio_packets_received += c.audio.frames_received;
        }
        Some(out)
    }

    /// The counts so far, or `None` when the engine counts nothing.
    pub fn snapshot(&self) -> Option<MediaCounts> {
        let c = self.0.as_ref()?.counters();
        Some(MediaCounts {
            video_frames_sent: c.video.samples_sent,
            video_frames_received: c.video.frames_received,
            audio_packets_sent: c.audio.samples_sent,
            audio_packets_received: c.audio.frames_received,
        })
    }
}

/// Makes engines.
#[derive(Debug, Clone)]
pub struct MediaFactory(MediaChoice);

impl MediaFactory {
    /// The media asked for.
    pub fn new(choice: MediaChoice) -> Self {
        Self(choice)
    }

    /// One line about the media, for the header.
    pub fn describe(&self) -> &'static str {
        match self.0 {
            MediaChoice::Webrtc => {
                "WebRTC (callapi-media-webrtc on loopback), looping VP8 320x240 + Opus test clip"
            }
            MediaChoice::None => "none (--media none): signaling only, calls connect at accept",
        }
    }

    /// Why there are no counts, when [`Counters::snapshot`] is `None`.
    pub fn no_counts_reason(&self) -> &'static str {
        "media: none — run without --media none to carry WebRTC media"
    }

    /// An engine for a device, and its counters.
    pub fn engine(&self) -> Result<(Engine, Counters), DemoError> {
        match self.0 {
            MediaChoice::Webrtc => {
                let media = WebRtcMedia::new(WebRtcConfig::loopback())
                    .map_err(|e| DemoError::Setup(format!("WebRTC media: {e}")))?;
                let handle = media.handle();
                Ok((Engine::WebRtc(Box::new(media)), Counters(Some(handle))))
            }
            MediaChoice::None => Ok((Engine::None(NoMedia), Counters(None))),
        }
    }
}
