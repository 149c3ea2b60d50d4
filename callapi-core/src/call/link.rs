//! The signaling link as the call sees it: link changes (flushing retransmissions when it comes
//! back, a failed session ending the call), the grace before a lost link ends the call, and
//! what the end of a call means for the link (a pending pause, the end of an access-link
//! session).

use std::time::Instant;

use crate::signal::LinkState;

use super::command::Command;
use super::io::{LinkCommand, Output};
use super::machine::CallMachine;
use super::state::{
    codes, CallErrorEvent, CallEvent, CallState, ErrorCodeType, Notification, StateReason,
};

/// How the link closes once the call is over and its messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closing {
    /// A pause asked for during the call.
    Pause,
    /// The end of an access-link session: disconnect and clear saved data.
    EndSession,
}

impl CallMachine {
    /// What the call's state means for the link: an access-link session ends with its call
    /// (`Idle`, then disconnect and clear saved data), and a pause asked for during a call
    /// happens once it is over. Either closes the link only once the ended call's last
    /// messages are acknowledged (or expired), so the hangup is not cut off.
    pub(super) fn link_policy(&mut self, now: Instant) {
        if std::mem::take(&mut self.call_ended) && self.room_scope.is_some() {
            tracing::info!("access-link session ends with its call");
            let _ = self.on_command(Command::Deinitialize, now);
            self.closing = Some(Closing::EndSession);
        }
        if self.closing.is_none() || self.call.is_some() || self.pending_messages() > 0 {
            return;
        }
        match self.closing.take() {
            Some(Closing::Pause) => self.outputs.push_back(Output::Link(LinkCommand::Pause)),
            Some(Closing::EndSession) => {
                self.outputs
                    .push_back(Output::Link(LinkCommand::Disconnect {
                        clear_saved_data: true,
                    }));
                self.clear_saved_data();
            }
            None => {}
        }
    }

    pub(super) fn on_signal_lost(&mut self, now: Instant) {
        let id = self.current_id();
        self.error(
            id,
            CallErrorEvent::SendMessageFail,
            ErrorCodeType::Signal,
            codes::SIGNAL_LOST,
            format!(
                "signaling link down for longer than the {:?} grace period",
                self.cfg.signal_grace
            ),
        );
        self.event(CallEvent::SignalLost, id, None);
        self.end_locally("signal_lost", StateReason::SignalLost, now);
    }

    pub(super) fn on_link(&mut self, state: LinkState, now: Instant) {
        let was_up = self.link.is_connected();
        let up = state.is_connected();
        self.link = state.clone();
        if up && !was_up {
            self.link_down_since = None;
            for env in self.reliable.flush_all(now) {
                self.outputs.push_back(Output::Send(env));
            }
        } else if !up && was_up {
            self.link_down_since = Some(now);
        }
        let failed = matches!(state, LinkState::Failed { .. });
        self.notify(Notification::Link(state));
        if failed && self.state != CallState::Failed {
            // The signaling session is over for good: no call can go on or start.
            if self.call.is_some() {
                self.event(CallEvent::SignalLost, self.current_id(), None);
                self.end_locally("signal_lost", StateReason::SignalLost, now);
            }
            self.set_state(
                CallState::Failed,
                StateReason::SignalLost,
                None,
                None,
                None,
                None,
            );
        } else if up && self.state == CallState::Failed {
            let back = if self.prepared.is_some() {
                CallState::Prepared
            } else {
                CallState::Idle
            };
            self.set_state(back, StateReason::None, None, None, None, None);
        }
    }
}
