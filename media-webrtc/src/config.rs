//! Settings of the WebRTC engine: ICE servers, bind addresses, codecs, timeouts.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// A STUN or TURN server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IceServer {
    /// URLs such as `stun:stun.example.org:3478` or `turn:turn.example.org:3478?transport=udp`.
    pub urls: Vec<String>,
    /// TURN user name (empty for STUN).
    pub username: String,
    /// TURN password (empty for STUN).
    pub credential: String,
}

impl IceServer {
    /// A STUN server at `url`.
    pub fn stun(url: impl Into<String>) -> Self {
        Self {
            urls: vec![url.into()],
            ..Self::default()
        }
    }

    /// A TURN server at `url` with long-term credentials.
    pub fn turn(
        url: impl Into<String>,
        username: impl Into<String>,
        credential: impl Into<String>,
    ) -> Self {
        Self {
            urls: vec![url.into()],
            username: username.into(),
            credential: credential.into(),
        }
    }
}

/// Video codec sent and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VideoCodec {
    /// VP8 (RFC 7741): every browser decodes it; the embedded test clip is VP8.
    Vp8,
}

impl VideoCodec {
    /// The codec's MIME type in SDP.
    pub fn mime_type(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "video/VP8",
        }
    }
}

/// Audio codec sent and accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AudioCodec {
    /// Opus at 48 kHz (RFC 7587): every browser decodes it; the embedded test clip is Opus.
    Opus,
}

impl AudioCodec {
    /// The codec's MIME type in SDP.
    pub fn mime_type(self) -> &'static str {
        match self {
            AudioCodec::Opus => "audio/opus",
        }
    }
}

/// How a [`WebRtcMedia`](crate::WebRtcMedia) sets up its peer connections.
#[derive(Debug, Clone, PartialEq)]
pub struct WebRtcConfig {
    /// STUN/TURN servers (none by default: host candidates only).
    pub ice_servers: Vec<IceServer>,
    /// Local addresses the peer connection's UDP sockets bind to; port 0 picks a free port.
    /// Default `0.0.0.0:0` (every interface).
    pub bind_addrs: Vec<SocketAddr>,
    /// Gather loopback candidates when binding a wildcard address (off by default, as in
    /// browsers; binding `127.0.0.1` explicitly always yields a loopback candidate).
    pub include_loopback_candidates: bool,
    /// Video codec (VP8).
    pub video_codec: VideoCodec,
    /// RTP payload type offered for video (96).
    pub video_payload_type: u8,
    /// Audio codec (Opus).
    pub audio_codec: AudioCodec,
    /// RTP payload type offered for audio (111, as browsers use).
    pub audio_payload_type: u8,
    /// The media timeout: how long ICE and DTLS may take to connect once both descriptions are
    /// set, before the call's media is reported failed (the call then ends with `MediaFailed`).
    /// Keep it below the call timeout so a media failure is reported as such. Default 10 s.
    pub connect_timeout: Duration,
    /// ICE: pacing of connectivity checks while connecting (10 ms; RFC 8445 allows Ta down to
    /// 5 ms). It also bounds two stalls of the `webrtc` crate's connection driver, which sleeps
    /// until its next ICE tick: a trickled remote candidate added with `add_ice_candidate` is
    /// only checked at that tick, and the DTLS client's first flight, queued when ICE selects a
    /// pair, only leaves at that tick. At the old 50 ms (the crate's default is 200 ms) they cost
    /// a loopback call 50–100 ms before DTLS even starts; at 10 ms, 10–20 ms. Once connected,
    /// ICE ticks at its keepalive pace, so the cost of a short interval is the extra checks
    /// while connecting (each tick checks every waiting pair).
    pub ice_check_interval: Duration,
    /// ICE: binding requests per candidate pair before it fails (100: a second at 10 ms; keep
    /// `ice_check_interval × ice_max_binding_requests` near a second so a pair with a slow
    /// path still gets its answer).
    pub ice_max_binding_requests: u16,
    /// ICE: how long a working pair with a peer-reflexive candidate waits before it may be
    /// selected (0; the `webrtc` crate waits 1 s). Such a pair is common: the peer's check
    /// often arrives before its trickled candidate, and that candidate is then the same
    /// address, so waiting only delays the connection.
    pub ice_prflx_acceptance_min_wait: Duration,
    /// ICE: silence before a connected pair counts as disconnected (5 s).
    pub ice_disconnected_timeout: Duration,
    /// ICE: time disconnected before the connection fails (10 s).
    pub ice_failed_timeout: Duration,
    /// Send a keyframe request (RTCP PLI) as soon as the remote video track opens, so the first
    /// frame need not wait for the sender's next periodic keyframe (on by default).
    pub request_keyframe_on_open: bool,
    /// Capacity of each sample subscriber's queue; a subscriber that falls this far behind loses
    /// samples (counted in [`MediaCounters::samples_dropped`](crate::MediaCounters)).
    pub sample_queue: usize,
    /// Group calls: the most members (this device included) a video call's mesh connects;
    /// beyond it `add_peer` fails with `MediaError::VideoMemberCap` (4: one encoder's output
    /// sent to every peer, each connection a full stream, holds up to about four members).
    /// Audio-only group calls have no cap.
    pub max_video_members: usize,
}

impl Default for WebRtcConfig {
    fn default() -> Self {
        Self {
            ice_servers: Vec::new(),
            bind_addrs: vec![SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))],
            include_loopback_candidates: false,
            video_codec: VideoCodec::Vp8,
            video_payload_type: 96,
            audio_codec: AudioCodec::Opus,
            audio_payload_type: 111,
            connect_timeout: Duration::from_secs(10),
            ice_check_interval: Duration::from_millis(10),
            ice_max_binding_requests: 100,
            ice_prflx_acceptance_min_wait: Duration::ZERO,
            ice_disconnected_timeout: Duration::from_secs(5),
            ice_failed_timeout: Duration::from_secs(10),
            request_keyframe_on_open: true,
            sample_queue: 256,
            max_video_members: 4,
        }
    }
}

impl WebRtcConfig {
    /// Settings for two peers on one machine: sockets bound to `127.0.0.1` on ephemeral ports,
    /// no ICE servers (what the tests and the local demo use).
    pub fn loopback() -> Self {
        Self {
            bind_addrs: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))],
            include_loopback_candidates: true,
            ..Self::default()
        }
    }

    /// Sets the video member cap of group calls ([`WebRtcConfig::max_video_members`]).
    pub fn with_max_video_members(mut self, members: usize) -> Self {
        self.max_video_members = members;
        self
    }

    /// Sets the media timeout ([`WebRtcConfig::connect_timeout`]).
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Adds a STUN or TURN server.
    pub fn with_ice_server(mut self, server: IceServer) -> Self {
        self.ice_servers.push(server);
        self
    }
}
