//! What the app asks the [`CallMachine`](super::CallMachine) for, why it can refuse, and how the
//! machine runs the commands that belong to no one side of a call (prepare, hang up, in-call
//! messages and DTMF, deinitialize, pause/resume, disconnect, reset). Placing a call and
//! cancelling it are caller-side rules (`invited.rs`); accepting and rejecting are callee-side
//! rules (`inviter.rs`).

use std::time::Instant;

use crate::protocol::{Body, CallId, UserId, MAX_ENVELOPE_BYTES};

use super::config::{PrepareConfig, MAX_CALL_TIMEOUT};
use super::ended::LateReply;
use super::io::{LinkCommand, Output};
use super::link::Closing;
use super::machine::CallMachine;
use super::state::{CallEvent, CallState, StateReason};

/// Largest in-call message payload, leaving room for the envelope around it.
pub const MAX_MESSAGE_BYTES: usize = MAX_ENVELOPE_BYTES - 2048;
/// Most DTMF digits in one message.
pub const MAX_DTMF_DIGITS: usize = 64;

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
    /// Invite more users into the group call this device is in (a member in the call).
    Invite {
        /// The users to invite.
        users: Vec<UserId>,
    },
    /// Withdraw this device's pending invitations of these users (group calls).
    CancelInvites {
        /// The invited users.
        users: Vec<UserId>,
    },
    /// Leave the call without ending it for the others (group calls; in a 1:1 call, as
    /// `Hangup`). While ringing, this declines; the creator leaving before anyone answered
    /// cancels the call.
    Leave {
        /// Reason recorded in this member's record.
        reason: Option<String>,
    },
    /// End the call for everyone (group calls; in a 1:1 call, as `Hangup`).
    End {
        /// Reason given.
        reason: Option<String>,
    },
    /// Join a group call again by its id, after declining, missing or leaving it.
    Join {
        /// The call.
        call_id: CallId,
    },
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

impl CallMachine {
    pub(super) fn on_command(&mut self, cmd: Command, now: Instant) -> Result<(), CommandError> {
        match cmd {
            Command::Prepare(cfg) => self.prepare(cfg),
            Command::Invite { users } => self.group_invite(users, now),
            Command::CancelInvites { users } => self.group_cancel_invites(users, now),
            Command::Join { call_id } => self.group_join(call_id, now),
            Command::Accept if self.is_group_call() => self.group_accept(now),
            Command::Accept => self.accept(now),
            Command::Reject { reason } if self.is_group_call() => {
                self.group_reject(reason, None, now)
            }
            Command::Reject { reason } => self.reject(reason, now),
            Command::Cancel { reason } if self.is_group_call() => {
                if self.state == CallState::Calling && self.group().is_some_and(|g| g.creator) {
                    self.group_leave(reason, None, now)
                } else {
                    Err(CommandError::InvalidState {
                        action: "cancel",
                        state: self.state,
                    })
                }
            }
            Command::Cancel { reason } => self.cancel(reason, now),
            Command::End { reason } if self.is_group_call() => self.group_end(reason, now),
            Command::Hangup { reason } | Command::Leave { reason } | Command::End { reason } => {
                self.hangup(reason, now)
            }
            Command::SendMessage { data } => self.send_message(data, now),
            Command::SendDtmf { digits } => self.send_dtmf(&digits, now),
            Command::Deinitialize => {
                // Unprepared first, so that ending the call lands in `Idle` directly.
                let prepared = self.prepared.take();
                if self.call.is_some() {
                    if let Err(err) = self.hangup(Some("deinitialize".into()), now) {
                        self.prepared = prepared;
                        return Err(err);
                    }
                }
                if self.state != CallState::Idle {
                    self.set_state(CallState::Idle, StateReason::None, None, None, None, None);
                }
                Ok(())
            }
            Command::Pause => {
                if self.call.is_some() || self.pending_messages() > 0 {
                    // Once the call is over and its last messages are acknowledged or expired
                    // (see `link_policy`): a hangup or a leave just sent must not be cut off.
                    self.closing.get_or_insert(Closing::Pause);
                } else {
                    self.outputs.push_back(Output::Link(LinkCommand::Pause));
                }
                Ok(())
            }
            Command::Resume => {
                if self.closing == Some(Closing::Pause) {
                    self.closing = None;
                }
                self.outputs.push_back(Output::Link(LinkCommand::Resume));
                Ok(())
            }
            Command::Disconnect { clear_saved_data } => {
                self.end_for("disconnect", now);
                self.closing = None;
                self.outputs
                    .push_back(Output::Link(LinkCommand::Disconnect { clear_saved_data }));
                if clear_saved_data {
                    self.clear_saved_data();
                }
                Ok(())
            }
            Command::Reset => {
                self.end_for("reset", now);
                let _ = self.on_command(Command::Deinitialize, now);
                self.link_policy(now);
                self.closing = None;
                self.outputs
                    .push_back(Output::Link(LinkCommand::Disconnect {
                        clear_saved_data: true,
                    }));
                self.clear_saved_data();
                Ok(())
            }
        }
    }

    /// Hangs up the call in progress, if any (`why` is sent as the reason), and applies what
    /// the end of a call means for the link.
    fn end_for(&mut self, why: &str, now: Instant) {
        if self.call.is_some() {
            let _ = self.hangup(Some(why.to_owned()), now);
        }
        self.link_policy(now);
    }

    fn prepare(&mut self, cfg: PrepareConfig) -> Result<(), CommandError> {
        if self.call.is_some() {
            return Err(CommandError::Busy(self.state));
        }
        if cfg.call_timeout > MAX_CALL_TIMEOUT {
            return Err(CommandError::InvalidArgument(format!(
                "call_timeout {:?} exceeds the maximum {:?}",
                cfg.call_timeout, MAX_CALL_TIMEOUT
            )));
        }
        if cfg.room_id.is_empty() {
            return Err(CommandError::InvalidArgument("room_id is empty".into()));
        }
        if let Some(scope) = &self.room_scope {
            if &cfg.room_id != scope {
                return Err(CommandError::InvalidArgument(format!(
                    "this access-link session may only use room {scope:?}, not {:?}",
                    cfg.room_id
                )));
            }
        }
        self.prepared = Some(cfg);
        // While the session has failed, the new settings apply once the link is back.
        if self.state != CallState::Prepared && self.state != CallState::Failed {
            self.set_state(
                CallState::Prepared,
                StateReason::None,
                None,
                None,
                None,
                None,
            );
        }
        Ok(())
    }

    fn hangup(&mut self, reason: Option<String>, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        let Some(call) = &self.call else {
            return Err(CommandError::InvalidState {
                action: "hangup",
                state,
            });
        };
        if call.group.is_some() {
            return self.group_leave(reason, None, now);
        }
        match (call.is_caller(), state) {
            (true, CallState::Calling) => return self.cancel(reason, now),
            (false, CallState::Calling) => return self.reject(reason, now),
            _ => {}
        }
        let id = call.id;
        self.event(CallEvent::LocalHangup, Some(id), reason.clone());
        let lifetime = self.message_lifetime();
        self.send_to_peer(
            Body::Hangup {
                reason: reason.clone(),
            },
            lifetime,
            now,
        );
        self.finish_call(StateReason::LocalHangup, reason, LateReply::Hangup, now);
        Ok(())
    }

    fn in_call_peer_ready(&self, action: &'static str) -> Result<(), CommandError> {
        match &self.call {
            Some(c)
                if c.accepted
                    && matches!(self.state, CallState::Connecting | CallState::Connected) =>
            {
                Ok(())
            }
            _ => Err(CommandError::InvalidState {
                action,
                state: self.state,
            }),
        }
    }

    fn send_message(&mut self, data: String, now: Instant) -> Result<(), CommandError> {
        self.in_call_peer_ready("send a message")?;
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(CommandError::InvalidArgument(format!(
                "message is {} bytes; at most {MAX_MESSAGE_BYTES} fit in an envelope",
                data.len()
            )));
        }
        if self.is_group_call() {
            return self.group_send_to_all(Body::Message { data }, now);
        }
        let lifetime = self.message_lifetime();
        self.send_to_peer(Body::Message { data }, lifetime, now);
        Ok(())
    }

    fn send_dtmf(&mut self, digits: &str, now: Instant) -> Result<(), CommandError> {
        self.in_call_peer_ready("send DTMF")?;
        let digits = validate_dtmf(digits)?;
        if self.is_group_call() {
            return self.group_send_to_all(Body::Dtmf { digits }, now);
        }
        let lifetime = self.message_lifetime();
        self.send_to_peer(Body::Dtmf { digits }, lifetime, now);
        Ok(())
    }
}

/// Checks and normalizes DTMF digits: `0-9`, `*`, `#`, `A-D` (lower case accepted).
pub fn validate_dtmf(digits: &str) -> Result<String, CommandError> {
    if digits.is_empty() {
        return Err(CommandError::InvalidArgument("no DTMF digits given".into()));
    }
    if digits.chars().count() > MAX_DTMF_DIGITS {
        return Err(CommandError::InvalidArgument(format!(
            "at most {MAX_DTMF_DIGITS} DTMF digits per message"
        )));
    }
    digits
        .chars()
        .map(|c| match c {
            '0'..='9' | '*' | '#' | 'A'..='D' => Ok(c),
            'a'..='d' => Ok(c.to_ascii_uppercase()),
            other => Err(CommandError::InvalidArgument(format!(
                "{other:?} is not a DTMF digit (0-9 * # A-D)"
            ))),
        })
        .collect()
}
