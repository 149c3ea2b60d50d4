//! States, reasons, events and errors of a call (CallAPI's vocabulary).

use std::time::Duration;

use crate::media::MediaRole;
use crate::protocol::{CallId, CallType, DeviceId, Extension, UserId};
use crate::signal::LinkState;

use super::timings::CallTimings;

/// The state of the local device's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallState {
    /// Initialized, not prepared: not reachable for calls (incoming invites are refused as busy).
    Idle,
    /// Ready to place or receive a call.
    Prepared,
    /// Placing a call, or ringing for an incoming one.
    Calling,
    /// Accepted; waiting for the first remote frame (or the caller's confirmation).
    Connecting,
    /// The call is up.
    Connected,
    /// Unusable (for example the signaling session ended for good).
    Failed,
}

impl CallState {
    /// Whether a call is in progress (`Calling`, `Connecting` or `Connected`).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            CallState::Calling | CallState::Connecting | CallState::Connected
        )
    }
}

/// Why the state changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StateReason {
    /// No particular reason (initialize, prepare).
    None,
    /// The local user placed a video call.
    LocalVideoCall,
    /// The local user placed an audio call.
    LocalAudioCall,
    /// A video call is ringing here.
    RemoteVideoCall,
    /// An audio call is ringing here.
    RemoteAudioCall,
    /// The local user accepted.
    LocalAccepted,
    /// The remote user accepted.
    RemoteAccepted,
    /// The first remote frame arrived.
    RecvRemoteFirstFrame,
    /// The local user declined.
    LocalRejected,
    /// The remote user declined.
    RemoteRejected,
    /// The remote user was in another call.
    RemoteCallBusy,
    /// The local user cancelled the outgoing call.
    LocalCancelled,
    /// The caller cancelled.
    RemoteCancelled,
    /// The local call timeout ran out.
    CallingTimeout,
    /// The caller's call timeout ran out.
    RemoteCallingTimeout,
    /// The local user hung up.
    LocalHangup,
    /// The remote user hung up.
    RemoteHangup,
    /// Joining the call's media failed.
    JoinMediaFailed,
    /// A call-control message could not be delivered within its lifetime.
    MessageFailed,
    /// Another device of this user answered.
    AnsweredElsewhere,
    /// Another device of this user declined.
    RejectedElsewhere,
    /// Both users called each other at once and the other call won.
    Glare,
    /// The signaling link stayed down longer than the grace period.
    SignalLost,
    /// The media failed during the call.
    MediaFailed,
    /// A member ended the group call for everyone.
    CallEnded,
    /// Every other member of the group call left (or never answered) after someone had.
    EveryoneLeft,
}

/// Something that happened in a call, besides state changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallEvent {
    /// The local user placed a call.
    OnCalling,
    /// The callee's device has the invite and is ringing.
    RemoteUserRecvCall,
    /// The local user accepted.
    LocalAccepted,
    /// The remote user accepted.
    RemoteAccepted,
    /// The local user declined.
    LocalRejected,
    /// The remote user declined.
    RemoteRejected,
    /// The remote user was busy.
    RemoteCallBusy,
    /// The local user cancelled.
    LocalCancelled,
    /// The caller cancelled.
    RemoteCancelled,
    /// The local user hung up.
    LocalHangup,
    /// The remote user hung up.
    RemoteHangup,
    /// The local call timeout ran out.
    CallingTimeout,
    /// The caller's call timeout ran out.
    RemoteCallingTimeout,
    /// Media join started.
    JoinMediaStart,
    /// The local side joined the media.
    LocalJoined,
    /// The remote side joined the media.
    RemoteJoined,
    /// The remote side left the media.
    RemoteLeft,
    /// The first remote frame arrived.
    RecvRemoteFirstFrame,
    /// A message arrived that does not fit the current state (ignored).
    StateMismatch,
    /// A message could not be delivered within its lifetime.
    MessageFailed,
    /// Another device of this user answered.
    AnsweredElsewhere,
    /// Another device of this user declined.
    RejectedElsewhere,
    /// Glare: both users called each other; this device dropped its own call.
    Glare,
    /// An invite arrived after its lifetime and was dropped without ringing.
    InviteExpired,
    /// An invite arrived while busy and was declined automatically.
    BusyAutoRejected,
    /// Joining the media failed.
    JoinMediaFailed,
    /// The media failed.
    MediaFailed,
    /// The signaling link stayed down past the grace period.
    SignalLost,
}

/// Class of an error notification (CallAPI's `errorEvent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallErrorEvent {
    /// A signaling message could not be sent or delivered.
    SendMessageFail,
    /// The media engine failed.
    MediaError,
    /// Camera or microphone could not start.
    StartCaptureFail,
    /// Anything else (for example an undecodable envelope).
    NormalError,
}

/// Which subsystem an error code belongs to (CallAPI's `errorCodeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCodeType {
    /// Codes from the signaling side ([`codes`]).
    Signal,
    /// Codes from the media side.
    Media,
    /// Codes from callapi itself.
    Normal,
}

/// Error codes carried by [`CallError`].
pub mod codes {
    /// A message was not acknowledged within its lifetime.
    pub const MESSAGE_UNDELIVERED: i32 = 1001;
    /// The backend refused to send a message.
    pub const SEND_REFUSED: i32 = 1002;
    /// An envelope could not be decoded.
    pub const INVALID_ENVELOPE: i32 = 1003;
    /// Joining media failed.
    pub const JOIN_FAILED: i32 = 2001;
    /// Media failed during the call.
    pub const MEDIA_FAILED: i32 = 2002;
    /// Capture (camera/microphone) failed.
    pub const CAPTURE_FAILED: i32 = 2003;
    /// The signaling link was lost for longer than the grace period.
    pub const SIGNAL_LOST: i32 = 1004;
    /// Group calls: the media with one member's device failed or could not start.
    pub const PEER_MEDIA_FAILED: i32 = 2004;
}

/// What happened to the media with one member's device in a group call.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PeerMediaEvent {
    /// The machine asked the engine to connect (the member is in the call).
    Connecting,
    /// The connection is up: the peer's media is present.
    Joined,
    /// The first complete frame of this kind arrived from the peer.
    FirstFrame(crate::media::MediaKind),
    /// The connection was closed (the member left, or joined again and gets a new one).
    Closed,
    /// The peer closed its side.
    Left,
    /// The media with this peer failed or could not start (the message says why, for
    /// example the engine's video member cap); the call goes on with the others.
    Failed(String),
}

/// An error notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallError {
    /// The call concerned, if any.
    pub call_id: Option<CallId>,
    /// Error class.
    pub event: CallErrorEvent,
    /// Subsystem of `code`.
    pub code_type: ErrorCodeType,
    /// Error code ([`codes`]).
    pub code: i32,
    /// Human-readable detail.
    pub message: String,
}

/// Who placed a call and where it lives.
#[derive(Debug, Clone, PartialEq)]
pub struct CallInfo {
    /// The call.
    pub call_id: CallId,
    /// Caller or callee.
    pub role: MediaRole,
    /// The user who placed the call.
    pub caller: UserId,
    /// The user who was called.
    pub callee: UserId,
    /// The other party.
    pub remote_user: UserId,
    /// The other party's device, once known (callee: the caller's device; caller: the answering device).
    pub remote_device: Option<DeviceId>,
    /// Video or audio.
    pub call_type: CallType,
    /// The caller's room.
    pub room_id: String,
    /// The invite's extension data.
    pub extension: Extension,
}

/// A state change notification.
#[derive(Debug, Clone, PartialEq)]
pub struct StateChange {
    /// The new state.
    pub state: CallState,
    /// The previous state.
    pub previous: CallState,
    /// Why.
    pub reason: StateReason,
    /// App-given text (a reject or hangup reason), if any.
    pub event_reason: Option<String>,
    /// The call, if the change concerns one.
    pub call: Option<CallInfo>,
    /// On `Connected`: the call's timing diagnostics.
    pub timings: Option<CallTimings>,
    /// When a connected call ends: how long it was connected.
    pub duration: Option<Duration>,
}

/// An event notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventInfo {
    /// The event.
    pub event: CallEvent,
    /// The call, if any.
    pub call_id: Option<CallId>,
    /// App-given text, if any.
    pub reason: Option<String>,
}

/// What the machine tells the app.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
#[allow(clippy::large_enum_variant)] // state changes are the common case; boxing them buys nothing
pub enum Notification {
    /// The call state changed.
    StateChanged(StateChange),
    /// An event.
    Event(EventInfo),
    /// An error.
    Error(CallError),
    /// An in-call message arrived.
    MessageReceived {
        /// The call.
        call_id: CallId,
        /// The sender.
        from: UserId,
        /// The data.
        data: String,
    },
    /// DTMF digits arrived.
    DtmfReceived {
        /// The call.
        call_id: CallId,
        /// The sender.
        from: UserId,
        /// The digits.
        digits: String,
    },
    /// A member of the group call changed state (one notification per change of its record;
    /// `docs/PROTOCOL.md` §10). Never sent for a 1:1 call.
    MemberChanged {
        /// The call.
        call_id: CallId,
        /// Who changed, from what, to what.
        change: super::roster::MemberChange,
    },
    /// Group calls: the media with one other member's device changed (the mesh,
    /// `docs/PROTOCOL.md` §10.9). Never sent for a 1:1 call.
    PeerMedia {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: crate::media::MediaPeer,
        /// What happened.
        event: PeerMediaEvent,
    },
    /// The signaling link changed state.
    Link(LinkState),
    /// Media figures asked for with `CallApi::media_stats`.
    MediaStats {
        /// The call.
        call_id: CallId,
        /// The figures.
        stats: crate::media::MediaStats,
    },
}
