//! What the app asks the [`CallMachine`](super::CallMachine) for, and why it can refuse.

use super::config::PrepareConfig;
use super::state::CallState;

/// An app command that answers nothing but success or a [`CommandError`]. Placing a call
/// answers its id, so it has its own method, [`CallMachine::call`](super::CallMachine::call).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Command {
    /// Become reachable (or change the room): `Idle`/`Prepared` → `Prepared`.
    Prepare(PrepareConfig),
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

/// Why the machine refused a command. A refused command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// `prepare` was not called yet; call it before placing or receiving calls.
    #[error("not prepared: call prepare() first")]
    NotPrepared,
    /// A call is in progress; end it before doing this.
    #[error("busy: a call is in progress (state {0:?}); end it first")]
    Busy(CallState),
    /// The action does not fit the current state (for example `accept` without a ringing call).
    #[error("cannot {action} in state {state:?}")]
    InvalidState {
        /// The refused action.
        action: &'static str,
        /// The state at the time.
        state: CallState,
    },
    /// An argument is not valid; the text says which and why.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}
