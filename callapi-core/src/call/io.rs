//! Inputs and outputs of the sans-IO [`CallMachine`](super::CallMachine).

use serde_json::Value;

use crate::media::{JoinRequest, MediaEvent, MediaPeer, MediaPlan};
use crate::protocol::{CallId, DecodeError, Envelope};
use crate::signal::LinkState;

use super::state::Notification;

/// Everything the machine reacts to besides the time and the app's commands (those go to
/// [`CallMachine::handle_command`](super::CallMachine::handle_command) and
/// [`CallMachine::call`](super::CallMachine::call), which can refuse them).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// An envelope from the signaling backend.
    Envelope(Envelope),
    /// Undecodable bytes from the backend.
    InvalidEnvelope(DecodeError),
    /// An event from the media engine.
    Media(MediaEvent),
    /// The media engine could not join the call.
    MediaJoinFailed {
        /// The call.
        call_id: CallId,
        /// What went wrong.
        message: String,
    },
    /// The signaling link changed state.
    Link(LinkState),
}

/// A command for the media engine. Exhaustive, like [`Output`].
#[derive(Debug, Clone, PartialEq)]
pub enum MediaCommand {
    /// Join the call's media.
    Join(JoinRequest),
    /// Change what is published or played.
    UpdatePlan {
        /// The call.
        call_id: CallId,
        /// The new plan.
        plan: MediaPlan,
    },
    /// A negotiation payload from the peer.
    RemoteSignal {
        /// The call.
        call_id: CallId,
        /// The payload.
        payload: Value,
    },
    /// Leave the call's media.
    Leave {
        /// The call.
        call_id: CallId,
    },
    /// Group calls: connect to a member's device (`MediaEngine::add_peer`).
    AddPeer {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: MediaPeer,
        /// This device offers (the lower (user, device) of the pair does).
        offerer: bool,
    },
    /// Group calls: close the connection with a member's device.
    RemovePeer {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: MediaPeer,
    },
    /// Group calls: a negotiation payload from a member's device.
    PeerSignal {
        /// The call.
        call_id: CallId,
        /// The member's device.
        peer: MediaPeer,
        /// The payload.
        payload: Value,
    },
}

/// What the machine decides about the signaling link; the shell performs it on its backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkCommand {
    /// Close the link for now (`SignalClient::pause`).
    Pause,
    /// Connect again (`SignalClient::resume`).
    Resume,
    /// End the session (`SignalClient::disconnect`): on request, or because an access-link
    /// session ended with its call (then `clear_saved_data` is set).
    Disconnect {
        /// Forget the token too.
        clear_saved_data: bool,
    },
}

/// What the machine asks its shell to do. Exhaustive on purpose: a shell that forgets a new
/// output does not compile.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Send this envelope through the signaling backend.
    Send(Envelope),
    /// Drive the media engine.
    Media(MediaCommand),
    /// Tell the app.
    Notify(Notification),
    /// Act on the signaling link.
    Link(LinkCommand),
}
