//! The media side: what a media stack gives the call machine.

use std::future::Future;

use serde_json::Value;

use crate::protocol::{CallId, CallType, DeviceId, UserId};

/// Which side of the call the local device is on (the caller offers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaRole {
    /// The device that placed the call.
    Caller,
    /// The device that answers.
    Callee,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MediaKind {
    /// Audio.
    Audio,
    /// Video.
    Video,
}

/// What to publish and what to play. The machine changes it as the call progresses: for example
/// remote audio stays silent until `Connected`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MediaPlan {
    /// Send local audio.
    pub publish_audio: bool,
    /// Send local video.
    pub publish_video: bool,
    /// Play remote audio.
    pub subscribe_audio: bool,
    /// Render remote video.
    pub subscribe_video: bool,
}

/// One other member's device in a group call's media (a full mesh: one connection per pair of
/// devices in the call).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaPeer {
    /// The member.
    pub user: UserId,
    /// Its device in the call.
    pub device: DeviceId,
}

impl MediaPeer {
    /// The peer `device` of `user`.
    pub fn new(user: UserId, device: DeviceId) -> Self {
        Self { user, device }
    }

    /// Whether `local` offers to `remote` in a mesh: the lower (user, device), compared by
    /// their bytes, offers, so two members never offer to each other at once.
    pub fn offers_to(local: &MediaPeer, remote: &MediaPeer) -> bool {
        local < remote
    }
}

impl std::fmt::Display for MediaPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.user, self.device)
    }
}

/// Everything a media engine needs to join a call's media.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinRequest {
    /// The call.
    pub call_id: CallId,
    /// The caller's room id.
    pub room_id: String,
    /// Caller or callee (the caller offers).
    pub role: MediaRole,
    /// Video or audio-only.
    pub call_type: CallType,
    /// The local user.
    pub local_user: UserId,
    /// The remote user.
    pub remote_user: UserId,
    /// What to publish and subscribe at first.
    pub plan: MediaPlan,
    /// A group call: the engine connects to each other member's device as
    /// [`MediaEngine::add_peer`] asks, not to `remote_user` (which names the member whose
    /// invitation brought this device in, or for the call's creator its first invitee), and
    /// reports per peer (`Peer*` events).
    pub group: bool,
}

/// Network and quality figures of a call's media.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaStats {
    /// Round-trip time in milliseconds, when known.
    pub rtt_ms: Option<f64>,
    /// Packets lost in the receive direction.
    pub packets_lost: u64,
    /// Bits per second received.
    pub recv_bitrate_bps: u64,
    /// Bits per second sent.
    pub send_bitrate_bps: u64,
}

/// Something a media engine reports about a call.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    /// Negotiation data to forward to the peer in a `media` envelope.
    Signal {
        /// The call.
        call_id: CallId,
        /// Opaque payload (SDP, ICE candidate, ...).
        payload: Value,
    },
    /// The local side joined the call's media.
    LocalJoined {
        /// The call.
        call_id: CallId,
    },
    /// The remote side's media is present.
    RemoteJoined {
        /// The call.
        call_id: CallId,
    },
    /// The first local frame went out.
    FirstLocalFramePublished {
        /// The call.
        call_id: CallId,
    },
    /// A complete remote frame of `kind` arrived (for video, a keyframe).
    FirstRemoteFrame {
        /// The call.
        call_id: CallId,
        /// Audio or video.
        kind: MediaKind,
    },
    /// The remote side left the media.
    RemoteLeft {
        /// The call.
        call_id: CallId,
    },
    /// Camera or microphone could not start; the call goes on without it.
    CaptureFailed {
        /// The call.
        call_id: CallId,
        /// What failed.
        message: String,
    },
    /// The media failed (ICE, DTLS, a crashed pipeline); the call ends.
    Failed {
        /// The call.
        call_id: CallId,
        /// What failed.
        message: String,
    },
    /// Group calls: negotiation data to forward to one peer in a `media` envelope.
    PeerSignal {
        /// The call.
        call_id: CallId,
        /// The peer it is for.
        peer: MediaPeer,
        /// Opaque payload (SDP, ICE candidate, ...).
        payload: Value,
    },
    /// Group calls: a peer's media is present (its connection is up).
    PeerJoined {
        /// The call.
        call_id: CallId,
        /// The peer.
        peer: MediaPeer,
    },
    /// Group calls: the first complete frame of `kind` from a peer (for video, a keyframe).
    PeerFirstFrame {
        /// The call.
        call_id: CallId,
        /// The peer.
        peer: MediaPeer,
        /// Audio or video.
        kind: MediaKind,
    },
    /// Group calls: a peer's media went away by itself (it closed its connection).
    PeerLeft {
        /// The call.
        call_id: CallId,
        /// The peer.
        peer: MediaPeer,
    },
    /// Group calls: the media with one peer failed or could not start; the call goes on with
    /// the others.
    PeerFailed {
        /// The call.
        call_id: CallId,
        /// The peer.
        peer: MediaPeer,
        /// What failed.
        message: String,
    },
    /// Figures asked for with [`MediaEngine::stats`].
    Stats {
        /// The call.
        call_id: CallId,
        /// The figures.
        stats: MediaStats,
    },
}

impl MediaEvent {
    /// The call the event is about.
    pub fn call_id(&self) -> CallId {
        match self {
            MediaEvent::Signal { call_id, .. }
            | MediaEvent::LocalJoined { call_id }
            | MediaEvent::RemoteJoined { call_id }
            | MediaEvent::FirstLocalFramePublished { call_id }
            | MediaEvent::FirstRemoteFrame { call_id, .. }
            | MediaEvent::RemoteLeft { call_id }
            | MediaEvent::CaptureFailed { call_id, .. }
            | MediaEvent::Failed { call_id, .. }
            | MediaEvent::PeerSignal { call_id, .. }
            | MediaEvent::PeerJoined { call_id, .. }
            | MediaEvent::PeerFirstFrame { call_id, .. }
            | MediaEvent::PeerLeft { call_id, .. }
            | MediaEvent::PeerFailed { call_id, .. }
            | MediaEvent::Stats { call_id, .. } => *call_id,
        }
    }
}

/// Why a media operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// Joining the call's media failed.
    #[error("joining media failed: {0}")]
    Join(String),
    /// No media session exists for that call.
    #[error("no media session for call {0}")]
    UnknownCall(CallId),
    /// The engine does not do group calls (its `add_peer` is not implemented): use one that
    /// does (`callapi-media-webrtc`), or `NoMedia` when the media lives elsewhere.
    #[error("this media engine does not do group calls; use one that implements add_peer")]
    GroupUnsupported,
    /// A video group call would have more members than the engine's cap: the peer is not
    /// connected. Make the call audio-only (no cap) or raise the engine's cap.
    #[error(
        "a video group call takes at most {cap} members with this media engine; \
         make the call audio-only or raise the cap"
    )]
    VideoMemberCap {
        /// The cap (members, this device included).
        cap: usize,
    },
    /// Any other failure.
    #[error("media error: {0}")]
    Other(String),
}

/// A media stack (WebRTC, an SFU SDK, ...), driven by the call machine.
///
/// A `CallApi` never waits for its engine: it queues each command and goes on handling
/// envelopes, acks and timers, while the engine runs the commands one after another, in order,
/// beside the loop (in the same task). So a method may take as long as its work does (a WebRTC
/// join can take seconds); its error comes back to the machine as a failure
/// (`JoinMediaFailed`, `MediaFailed`). Progress is reported through
/// [`MediaEngine::next_event`], which must be cancel-safe.
pub trait MediaEngine: Send + 'static {
    /// Joins a call's media.
    fn join(&mut self, request: JoinRequest)
        -> impl Future<Output = Result<(), MediaError>> + Send;

    /// Changes what is published and played.
    fn update_plan(
        &mut self,
        call_id: CallId,
        plan: MediaPlan,
    ) -> impl Future<Output = Result<(), MediaError>> + Send;

    /// Hands over a negotiation payload the peer sent.
    fn remote_signal(
        &mut self,
        call_id: CallId,
        payload: Value,
    ) -> impl Future<Output = Result<(), MediaError>> + Send;

    /// Leaves the call's media and frees its resources.
    fn leave(&mut self, call_id: CallId) -> impl Future<Output = ()> + Send;

    /// Group calls: connect to one more peer (a member's device in the call). `offerer` says
    /// whether this device offers (see [`MediaPeer::offers_to`]); otherwise it waits for the
    /// peer's offer through [`MediaEngine::peer_signal`]. The default refuses
    /// ([`MediaError::GroupUnsupported`]).
    fn add_peer(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        offerer: bool,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        let _ = (call_id, peer, offerer);
        async { Err(MediaError::GroupUnsupported) }
    }

    /// Group calls: close the connection with a peer (it left, or rejoined and gets a new one)
    /// and free what it held.
    fn remove_peer(&mut self, call_id: CallId, peer: MediaPeer) -> impl Future<Output = ()> + Send {
        let _ = (call_id, peer);
        async {}
    }

    /// Group calls: hands over a negotiation payload a peer sent.
    fn peer_signal(
        &mut self,
        call_id: CallId,
        peer: MediaPeer,
        payload: Value,
    ) -> impl Future<Output = Result<(), MediaError>> + Send {
        let _ = (peer, payload);
        async move { Err(MediaError::UnknownCall(call_id)) }
    }

    /// Asks for a [`MediaEvent::Stats`] of the call.
    fn stats(&mut self, call_id: CallId) -> impl Future<Output = Result<(), MediaError>> + Send {
        async move { Err(MediaError::UnknownCall(call_id)) }
    }

    /// The next event; `None` if the engine will never report again.
    fn next_event(&mut self) -> impl Future<Output = Option<MediaEvent>> + Send;

    /// Whether this engine reports remote frames. If not (for example [`NoMedia`]), a call is
    /// `Connected` as soon as it is accepted.
    fn reports_frames(&self) -> bool {
        true
    }
}

/// A media engine that does nothing: for apps whose media lives elsewhere (an SFU, a native
/// SDK). With it, `Connected` follows accept directly.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMedia;

impl MediaEngine for NoMedia {
    async fn join(&mut self, _request: JoinRequest) -> Result<(), MediaError> {
        Ok(())
    }
    async fn update_plan(&mut self, _call_id: CallId, _plan: MediaPlan) -> Result<(), MediaError> {
        Ok(())
    }
    async fn remote_signal(&mut self, _call_id: CallId, _payload: Value) -> Result<(), MediaError> {
        Ok(())
    }
    async fn leave(&mut self, _call_id: CallId) {}
    async fn add_peer(
        &mut self,
        _call_id: CallId,
        _peer: MediaPeer,
        _offerer: bool,
    ) -> Result<(), MediaError> {
        Ok(())
    }
    async fn peer_signal(
        &mut self,
        _call_id: CallId,
        _peer: MediaPeer,
        _payload: Value,
    ) -> Result<(), MediaError> {
        Ok(())
    }
    async fn next_event(&mut self) -> Option<MediaEvent> {
        std::future::pending().await
    }
    fn reports_frames(&self) -> bool {
        false
    }
}
