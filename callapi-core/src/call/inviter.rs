//! Callee side: the rules for the member who invited this device. Receiving an invite (expired,
//! a copy of an ended call's, busy or out of the session's room, glare with our own call),
//! ringing, accepting and rejecting, the wait for the caller's `confirm`, and the caller's
//! later messages.

use std::time::{Duration, Instant};

use crate::protocol::{Body, CallId, CallType, Elsewhere, Envelope, UserId};

use super::command::CommandError;
use super::config::IncomingInvite;
use super::ended::LateReply;
use super::io::MediaCommand;
use super::machine::CallMachine;
use super::members::{Inviter, Members};
use super::session::Call;
use super::state::{CallEvent, CallState, Notification, StateReason};
use super::timings::Milestone;

impl CallMachine {
    /// An invite arrived (a copy may arrive more than once: it is ignored then).
    pub(super) fn on_invite(&mut self, env: Envelope, now: Instant) {
        let wall = self.unix_ms(now);
        let remaining = Duration::from_millis(env.remaining_ms(wall));
        let Body::Invite {
            room_id,
            call_type,
            extension,
            members,
        } = env.body
        else {
            return;
        };
        if env.ts.saturating_add(env.lifetime_ms) < wall {
            tracing::info!(call_id = %env.call_id, "expired invite dropped");
            self.event(CallEvent::InviteExpired, Some(env.call_id), None);
            return;
        }
        if let Some(members) = members {
            let sender = (env.from, env.from_device, env.call_id);
            return self.on_group_invite(
                sender, room_id, call_type, extension, members, remaining, now,
            );
        }
        if self.current_id() == Some(env.call_id)
            || self.ended_from(env.call_id, &env.from)
            || env.from == self.cfg.user_id
        {
            return;
        }
        if self.glare_we_win(env.call_id, &env.from, now) {
            return;
        }
        let out_of_scope = self.room_scope.as_ref().is_some_and(|r| r != &room_id);
        if self.state != CallState::Prepared || self.call.is_some() || out_of_scope {
            tracing::info!(call_id = %env.call_id, from = %env.from, "busy: declining invite");
            self.event(CallEvent::BusyAutoRejected, Some(env.call_id), None);
            let lifetime = self.message_lifetime();
            self.send(
                env.from,
                Some(env.from_device),
                env.call_id,
                Body::Reject {
                    reason: Some("busy".into()),
                    busy: true,
                    seq: None,
                },
                lifetime,
                now,
            );
            return;
        }
        let Some(prep) = self.prepared.clone() else {
            return;
        };
        let invite = IncomingInvite {
            from: env.from.clone(),
            from_device: env.from_device.clone(),
            call_id: env.call_id,
            call_type,
            room_id: room_id.clone(),
            extension: extension.clone(),
        };
        let join_early = self
            .policy
            .join_media_on_ringing(&invite)
            .unwrap_or(prep.join_media_on_ringing);
        let video = call_type == CallType::Video;
        let mut call = Call::incoming(
            env.call_id,
            call_type,
            room_id,
            &self.cfg.user_id,
            Inviter::new(env.from.clone(), env.from_device.clone(), now + remaining),
            now,
        );
        call.extension = extension;
        call.deadline = Some(now + remaining);
        call.first_frame_wait = prep.first_frame_wait && self.reports_frames;
        self.call = Some(call);
        let reason = if video {
            StateReason::RemoteVideoCall
        } else {
            StateReason::RemoteAudioCall
        };
        tracing::info!(call_id = %env.call_id, from = %env.from, "ringing");
        let info = self.call_info();
        self.set_state(CallState::Calling, reason, None, info, None, None);
        let lifetime = remaining.max(Duration::from_millis(1));
        self.send_to_peer(
            Body::Ringing {
                group: false,
                seq: None,
            },
            lifetime,
            now,
        );
        if join_early {
            self.join_media();
        }
    }

    /// Glare: this device is calling (nobody answered yet) `from`, who invites it to another
    /// call. The smaller call id wins (docs/PROTOCOL.md §8.6, §10.6): answers `true` when our
    /// call wins (the invite is ignored beyond its ack); otherwise our call ends and the
    /// invite is handled as usual.
    pub(super) fn glare_we_win(&mut self, call_id: CallId, from: &UserId, now: Instant) -> bool {
        let Some(own) = self.current_id() else {
            return false;
        };
        if own == call_id || !self.calling_invitee(from) {
            return false;
        }
        if call_id > own {
            tracing::info!(own = %own, loser = %call_id, "glare: our call wins");
            return true;
        }
        tracing::info!(own = %own, winner = %call_id, "glare: the other call wins");
        self.event(CallEvent::Glare, Some(own), None);
        if self.is_group_call() {
            self.cancel_own_invitations(Some("glare".into()), now);
            self.finish_group(StateReason::Glare, None, now);
        } else {
            // Other devices of the winner may be ringing for our call: stop them.
            self.caller_stop(Some("glare".into()), false, None, now);
            self.finish_call(
                StateReason::Glare,
                None,
                LateReply::Cancel {
                    timeout: false,
                    elsewhere: None,
                },
                now,
            );
        }
        false
    }

    /// Whether this device is still calling `user` in a call nobody has answered yet.
    fn calling_invitee(&self, user: &UserId) -> bool {
        let Some(call) = &self.call else { return false };
        if !call.is_caller() || self.state != CallState::Calling || call.accepted {
            return false;
        }
        match call.group.as_deref() {
            Some(g) => {
                g.creator
                    && !g.answered
                    && g.invitations
                        .iter()
                        .any(|i| &i.inv.user == user && i.is_pending())
            }
            None => call.members.invitations().iter().any(|i| &i.user == user),
        }
    }

    /// The app answers the ringing call.
    pub(super) fn accept(&mut self, now: Instant) -> Result<(), CommandError> {
        let state = self.state;
        let Some(call) = &mut self.call else {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        };
        let Members::InvitedBy(inviter) = &call.members else {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        };
        if state != CallState::Calling {
            return Err(CommandError::InvalidState {
                action: "accept",
                state,
            });
        }
        // Wait for the caller's confirm at most this long.
        let deadline = inviter.confirm_deadline(now, self.cfg.confirm_grace);
        call.accepted = true;
        call.deadline = Some(deadline);
        let lifetime = deadline.saturating_duration_since(now);
        let id = call.id;
        self.mark(Milestone::Accept, now);
        self.event(CallEvent::LocalAccepted, Some(id), None);
        let info = self.call_info();
        self.set_state(
            CallState::Connecting,
            StateReason::LocalAccepted,
            None,
            info,
            None,
            None,
        );
        self.send_to_peer(
            Body::Accept {
                group: false,
                seq: None,
            },
            lifetime,
            now,
        );
        self.join_media();
        self.check_connected(now);
        Ok(())
    }

    /// The app declines the ringing call.
    pub(super) fn reject(
        &mut self,
        reason: Option<String>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        match &self.call {
            Some(c) if !c.is_caller() && state == CallState::Calling => {}
            _ => {
                return Err(CommandError::InvalidState {
                    action: "reject",
                    state,
                })
            }
        }
        let id = self.current_id();
        self.event(CallEvent::LocalRejected, id, reason.clone());
        let lifetime = self.message_lifetime();
        self.send_to_peer(
            Body::Reject {
                reason: reason.clone(),
                busy: false,
                seq: None,
            },
            lifetime,
            now,
        );
        self.finish_call(StateReason::LocalRejected, reason, LateReply::Hangup, now);
        Ok(())
    }
    /// The invite expired before the app answered, or the caller's confirm never came.
    pub(super) fn on_invite_timeout(&mut self, now: Instant) {
        let Some(call) = &self.call else { return };
        let id = call.id;
        let accepted = call.accepted;
        self.event(CallEvent::RemoteCallingTimeout, Some(id), None);
        if accepted {
            // The caller never confirmed (or never connected): make sure it stops too.
            let lifetime = self.message_lifetime();
            self.send_to_peer(
                Body::Hangup {
                    reason: Some("timeout".into()),
                },
                lifetime,
                now,
            );
        }
        self.finish_call(
            StateReason::RemoteCallingTimeout,
            None,
            LateReply::Hangup,
            now,
        );
    }

    /// A message from the device that invited this one.
    pub(super) fn on_inviter(&mut self, env: Envelope, now: Instant) {
        let state = self.state;
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        match env.body {
            Body::Cancel {
                reason,
                timeout,
                elsewhere,
                ..
            } => {
                let (st, ev) = match (elsewhere, timeout) {
                    (Some(Elsewhere::Answered), _) => {
                        (StateReason::AnsweredElsewhere, CallEvent::AnsweredElsewhere)
                    }
                    (Some(Elsewhere::Rejected), _) => {
                        (StateReason::RejectedElsewhere, CallEvent::RejectedElsewhere)
                    }
                    (_, true) => (
                        StateReason::RemoteCallingTimeout,
                        CallEvent::RemoteCallingTimeout,
                    ),
                    _ => (StateReason::RemoteCancelled, CallEvent::RemoteCancelled),
                };
                self.event(ev, Some(id), reason.clone());
                self.finish_call(st, reason, LateReply::Hangup, now);
            }
            Body::Confirm { .. } => {
                if call.accepted && !call.confirmed {
                    call.confirmed = true;
                    self.check_connected(now);
                }
            }
            Body::Hangup { reason } => {
                self.event(CallEvent::RemoteHangup, Some(id), reason.clone());
                self.finish_call(StateReason::RemoteHangup, reason, LateReply::Hangup, now);
            }
            Body::Media { payload, .. } => {
                if call.media_joined {
                    self.media(MediaCommand::RemoteSignal {
                        call_id: id,
                        payload,
                    });
                } else if let Some(inviter) = call.members.inviter_mut() {
                    inviter.media_inbox.push(payload);
                }
            }
            Body::Message { data } if call.accepted => {
                self.notify(Notification::MessageReceived {
                    call_id: id,
                    from: env.from,
                    data,
                });
            }
            Body::Dtmf { digits } if call.accepted => {
                self.notify(Notification::DtmfReceived {
                    call_id: id,
                    from: env.from,
                    digits,
                });
            }
            _ => {
                tracing::debug!(
                    ?state,
                    kind = env.body.kind(),
                    "message does not fit the state"
                );
                self.event(CallEvent::StateMismatch, Some(id), None);
            }
        }
    }
}
