//! Caller side: the rules for a member this device invited. Placing the invite, the replies of
//! the member's devices (`ringing`, `accept`, `reject` with its busy grace, `hangup`, and their
//! late or duplicate copies), telling the other devices the call was answered or rejected
//! elsewhere, cancelling, the call timeout, and the `confirm` once connected.

use std::time::{Duration, Instant};

use crate::protocol::{Body, CallId, CallType, DeviceId, Elsewhere, Envelope, Extension, UserId};

use super::command::CommandError;
use super::config::{PrepareConfig, MAX_CALL_TIMEOUT};
use super::ended::LateReply;
use super::io::MediaCommand;
use super::machine::CallMachine;
use super::members::{DeviceStatus, Invitation};
use super::session::Call;
use super::state::{
    codes, CallErrorEvent, CallEvent, CallState, ErrorCodeType, Notification, StateReason,
};
use super::timings::Milestone;

impl CallMachine {
    /// How long the invite lives: the prepared call timeout, or the longest allowed.
    fn invite_lifetime(prep: &PrepareConfig) -> Duration {
        if prep.call_timeout.is_zero() {
            MAX_CALL_TIMEOUT
        } else {
            prep.call_timeout
        }
    }

    /// Places a call to `remote` (see [`CallMachine::call`]).
    pub(super) fn place_call(
        &mut self,
        remote: UserId,
        call_type: CallType,
        extension: Extension,
        now: Instant,
    ) -> Result<CallId, CommandError> {
        let Some(prep) = self.prepared.clone() else {
            return Err(CommandError::NotPrepared);
        };
        if self.call.is_some() {
            return Err(CommandError::Busy(self.state));
        }
        if self.state != CallState::Prepared {
            return Err(CommandError::InvalidState {
                action: "call",
                state: self.state,
            });
        }
        if remote == self.cfg.user_id {
            return Err(CommandError::InvalidArgument(
                "cannot call yourself".to_owned(),
            ));
        }
        let mut merged = prep.user_extension.clone();
        merged.extend(extension);
        let id = self.next_call_id();
        let lifetime = Self::invite_lifetime(&prep);
        let video = call_type == CallType::Video;
        let mut call = Call::outgoing(
            id,
            call_type,
            prep.room_id.clone(),
            &self.cfg.user_id,
            Invitation::new(remote.clone(), now),
            now,
        );
        call.extension = merged.clone();
        call.deadline = Some(now + lifetime);
        call.first_frame_wait = prep.first_frame_wait && self.reports_frames;
        self.call = Some(call);
        let reason = if video {
            StateReason::LocalVideoCall
        } else {
            StateReason::LocalAudioCall
        };
        tracing::info!(call_id = %id, remote = %remote, ?call_type, "placing call");
        self.event(CallEvent::OnCalling, Some(id), None);
        let info = self.call_info();
        self.set_state(CallState::Calling, reason, None, info, None, None);
        self.send(
            remote,
            None,
            id,
            Body::Invite {
                room_id: prep.room_id,
                call_type,
                extension: merged,
                members: None,
            },
            lifetime,
            now,
        );
        self.join_media();
        Ok(id)
    }

    /// The app withdraws the outgoing call.
    pub(super) fn cancel(
        &mut self,
        reason: Option<String>,
        now: Instant,
    ) -> Result<(), CommandError> {
        let state = self.state;
        match &self.call {
            Some(c)
                if c.is_caller() && matches!(state, CallState::Calling | CallState::Connecting) => {
            }
            _ => {
                return Err(CommandError::InvalidState {
                    action: "cancel",
                    state,
                })
            }
        }
        let id = self.current_id();
        self.event(CallEvent::LocalCancelled, id, reason.clone());
        self.caller_stop(reason.clone(), false, None, now);
        self.finish_call(
            StateReason::LocalCancelled,
            reason,
            LateReply::Cancel {
                timeout: false,
                elsewhere: None,
            },
            now,
        );
        Ok(())
    }

    /// Tells every device that may be alerting to stop.
    pub(super) fn caller_stop(
        &mut self,
        reason: Option<String>,
        timeout: bool,
        elsewhere: Option<Elsewhere>,
        now: Instant,
    ) {
        let Some(call) = &self.call else { return };
        let id = call.id;
        let stops: Vec<(UserId, Vec<DeviceId>)> = call
            .members
            .invitations()
            .iter()
            .map(|i| (i.user.clone(), i.alerting()))
            .collect();
        let lifetime = self.message_lifetime();
        let body = Body::Cancel {
            reason,
            timeout,
            elsewhere,
            seq: None,
        };
        for (user, targets) in stops {
            if targets.is_empty() {
                // Nobody rang yet: address the user, so any device that has the invite stops.
                self.send(user, None, id, body.clone(), lifetime, now);
            } else {
                for d in targets {
                    self.send(user.clone(), Some(d), id, body.clone(), lifetime, now);
                }
            }
        }
    }

    /// The invite `acked` reached a device of its member.
    pub(super) fn on_invite_acked(&mut self, acked: &Envelope) {
        let Some(call) = &mut self.call else { return };
        if call.id != acked.call_id {
            return;
        }
        if let Some(invitation) = call.members.invitation_mut(&acked.to) {
            invitation.acked = true;
        }
    }

    /// A message from a device of a member this device invited.
    pub(super) fn on_invited_member(&mut self, env: Envelope, now: Instant) {
        let dev = env.from_device.clone();
        let state = self.state;
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        let Some(inv) = call.members.invitation_mut(&env.from) else {
            return;
        };
        let user = inv.user.clone();
        let answered = inv.answered.clone();
        match env.body {
            Body::Ringing { .. } => {
                if answered.as_ref().is_some_and(|a| a != &dev) {
                    self.send_cancel_elsewhere(&user, dev, Elsewhere::Answered, now);
                    return;
                }
                let first = inv.ring(&dev);
                if inv.media_peer.is_none() {
                    inv.media_peer = Some(dev.clone());
                    let outbox = std::mem::take(&mut inv.media_outbox);
                    let lifetime = self.message_lifetime();
                    for payload in outbox {
                        self.send(
                            user.clone(),
                            Some(dev.clone()),
                            id,
                            Body::media(payload),
                            lifetime,
                            now,
                        );
                    }
                }
                if first {
                    self.mark(Milestone::RemoteUserRecvCall, now);
                    self.event(CallEvent::RemoteUserRecvCall, Some(id), None);
                }
            }
            Body::Accept { .. } => {
                if let Some(a) = answered {
                    if a != dev {
                        self.send_cancel_elsewhere(&user, dev, Elsewhere::Answered, now);
                    }
                    return;
                }
                if state != CallState::Calling {
                    self.event(CallEvent::StateMismatch, Some(id), None);
                    return;
                }
                self.caller_accepted(&user, dev, now);
            }
            Body::Reject { reason, busy, .. } => {
                if answered.is_some() || state != CallState::Calling {
                    return;
                }
                if busy {
                    inv.busy(&dev, reason, now);
                } else {
                    let others = inv.reject(&dev);
                    self.event(CallEvent::RemoteRejected, Some(id), reason.clone());
                    for d in others {
                        self.send_cancel_elsewhere(&user, d, Elsewhere::Rejected, now);
                    }
                    self.finish_call(
                        StateReason::RemoteRejected,
                        reason,
                        LateReply::Cancel {
                            timeout: false,
                            elsewhere: Some(Elsewhere::Rejected),
                        },
                        now,
                    );
                }
            }
            Body::Hangup { reason } => {
                if answered.as_ref() != Some(&dev) {
                    return;
                }
                self.event(CallEvent::RemoteHangup, Some(id), reason.clone());
                self.finish_call(StateReason::RemoteHangup, reason, LateReply::Hangup, now);
            }
            Body::Media { payload, .. } => {
                if inv.media_peer.as_ref() == Some(&dev) {
                    self.media(MediaCommand::RemoteSignal {
                        call_id: id,
                        payload,
                    });
                }
            }
            Body::Message { data } => {
                if answered.as_ref() == Some(&dev) {
                    self.notify(Notification::MessageReceived {
                        call_id: id,
                        from: env.from,
                        data,
                    });
                } else {
                    self.event(CallEvent::StateMismatch, Some(id), None);
                }
            }
            Body::Dtmf { digits } => {
                if answered.as_ref() == Some(&dev) {
                    self.notify(Notification::DtmfReceived {
                        call_id: id,
                        from: env.from,
                        digits,
                    });
                } else {
                    self.event(CallEvent::StateMismatch, Some(id), None);
                }
            }
            _ => self.event(CallEvent::StateMismatch, Some(id), None),
        }
    }

    /// Tells `device` of `user` to stop: the call was answered or rejected on another device.
    fn send_cancel_elsewhere(
        &mut self,
        user: &UserId,
        device: DeviceId,
        why: Elsewhere,
        now: Instant,
    ) {
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        let Some(inv) = call.members.invitation_mut(user) else {
            return;
        };
        inv.devices.set_status(&device, DeviceStatus::Cancelled);
        let user = inv.user.clone();
        let lifetime = self.message_lifetime();
        self.send(
            user,
            Some(device),
            id,
            Body::Cancel {
                reason: None,
                timeout: false,
                elsewhere: Some(why),
                seq: None,
            },
            lifetime,
            now,
        );
    }

    /// Device `dev` of `user` answered first.
    fn caller_accepted(&mut self, user: &UserId, dev: DeviceId, now: Instant) {
        let Some(call) = &mut self.call else { return };
        let id = call.id;
        let Some(inv) = call.members.invitation_mut(user) else {
            return;
        };
        call.accepted = true;
        call.confirmed = true;
        let others = inv.answer(&dev);
        let user = inv.user.clone();
        // Early media went to another device: start the media again with the answering one.
        let restart = inv.media_peer.as_ref().is_some_and(|p| p != &dev);
        let outbox = if inv.media_peer.is_none() {
            std::mem::take(&mut inv.media_outbox)
        } else {
            Vec::new()
        };
        inv.media_peer = Some(dev.clone());
        if restart {
            call.first_frame = false;
            call.media_joined = false;
            self.media(MediaCommand::Leave { call_id: id });
        }
        let lifetime = self.message_lifetime();
        for payload in outbox {
            self.send(
                user.clone(),
                Some(dev.clone()),
                id,
                Body::media(payload),
                lifetime,
                now,
            );
        }
        for d in others {
            self.send_cancel_elsewhere(&user, d, Elsewhere::Answered, now);
        }
        if restart {
            self.join_media();
        }
        self.mark(Milestone::Accept, now);
        self.event(CallEvent::RemoteAccepted, Some(id), None);
        let info = self.call_info();
        self.set_state(
            CallState::Connecting,
            StateReason::RemoteAccepted,
            None,
            info,
            None,
            None,
        );
        self.check_connected(now);
    }

    /// The call is connected: the caller is committed now, so the answering device may
    /// connect too.
    pub(super) fn send_confirm(&mut self, now: Instant) {
        let lifetime = self.message_lifetime();
        self.send_to_peer(Body::Confirm { members: None }, lifetime, now);
    }

    /// The call timeout passed before the call connected.
    pub(super) fn on_calling_timeout(&mut self, now: Instant) {
        let Some(call) = &self.call else { return };
        let id = call.id;
        let reached = call
            .members
            .invitations()
            .iter()
            .any(|i| i.acked || i.ringing_seen);
        if !reached && !call.accepted {
            // Nothing ever reached a callee device.
            self.error(
                Some(id),
                CallErrorEvent::SendMessageFail,
                ErrorCodeType::Signal,
                codes::MESSAGE_UNDELIVERED,
                "the invitation was not delivered within its lifetime".into(),
            );
            self.event(CallEvent::MessageFailed, Some(id), None);
            self.caller_stop(None, true, None, now);
            self.finish_call(
                StateReason::MessageFailed,
                None,
                LateReply::Cancel {
                    timeout: true,
                    elsewhere: None,
                },
                now,
            );
            return;
        }
        self.event(CallEvent::CallingTimeout, Some(id), None);
        self.caller_stop(None, true, None, now);
        self.finish_call(
            StateReason::CallingTimeout,
            None,
            LateReply::Cancel {
                timeout: true,
                elsewhere: None,
            },
            now,
        );
    }

    /// A device answered busy a while ago: unless another device rings by now, the user is busy.
    pub(super) fn on_busy_grace_over(&mut self, now: Instant) {
        let state = self.state;
        let Some(call) = &mut self.call else { return };
        let Some(inv) = call
            .members
            .invitations_mut()
            .iter_mut()
            .find(|i| i.next_timeout().is_some_and(|t| now >= t))
        else {
            return;
        };
        let reason = inv.end_busy_grace();
        if call.accepted
            || state != CallState::Calling
            || !inv.devices.ringing_except(None).is_empty()
        {
            return; // another device rings (or answered): the call goes on
        }
        let id = call.id;
        self.event(CallEvent::RemoteCallBusy, Some(id), reason.clone());
        self.finish_call(
            StateReason::RemoteCallBusy,
            reason,
            LateReply::Cancel {
                timeout: false,
                elsewhere: None,
            },
            now,
        );
    }
}
