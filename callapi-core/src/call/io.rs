//! Inputs and outputs of the sans-IO [`CallMachine`](super::CallMachine).

use serde_json::Value;

use crate::media::{JoinRequest, MediaEvent, MediaPlan};
use crate::protocol::{CallId, CallType, DecodeError, Envelope, Extension, UserId};
use crate::signal::LinkState;

use super::config::PrepareConfig;
use super::state::Notification;

/// An API command (what the app asks for).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Become reachable (or change the room): `Idle`/`Prepared` → `Prepared`.
    Prepare(PrepareConfig),
    /// Place a call to `remote`.
    Call {
        /// The callee.
        remote: UserId,
        /// Video or audio.
        call_type: CallType,
        /// Extension data for this call, merged over the prepare extension.
        extension: Extension,
    },
    /// Answer the ringing call.
    Accept,
    /// Decline the ringing call.
    Reject {
        /// Reason sent to the caller.
        reason: Option<String>,
    },
    /// Withdraw the outgoing call.
    Cancel {
        /// Reason sent to the callee.
        reason: Option<String>,
    },
    /// Leave the call (in `Calling` this cancels or rejects).
    Hangup {
        /// Reason sent to the peer.
        reason: Option<String>,
    },
    /// Send app data to the peer of the current call.
    SendMessage {
        /// The data.
        data: String,
    },
    /// Send DTMF digits (`0-9 * # A-D`) to the peer of the current call.
    SendDtmf {
        /// The digits.
        digits: String,
    },
    /// End any call and go back to `Idle` (unreachable).
    Deinitialize,
    /// Close the signaling link for now (the app goes to the background). With a call up, the
    /// link closes once the call is over and its last messages are acknowledged.
    Pause,
    /// Connect the signaling link again (cancels a pause still waiting for a call to end).
    Resume,
    /// Hang up any call and end the signaling session; `clear_saved_data` also forgets the
    /// token and everything saved across calls.
    Disconnect {
        /// Forget saved data too.
        clear_saved_data: bool,
    },
    /// Hang up any call, go back to `Idle`, end the signaling session and forget saved data.
    Reset,
}

/// Everything the machine reacts to besides the time.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Input {
    /// An API command.
    Command(Command),
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

impl From<Command> for Input {
    fn from(c: Command) -> Self {
        Input::Command(c)
    }
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
