//! Glue between the call and its media engine: joining the media (early on ringing or at
//! accept), forwarding media signaling both ways, the media's events and timing milestones, the
//! check for `Connected` (accepted, confirmed and, when awaited, the first remote frame), and
//! ending the call when the media fails.

use std::time::Instant;

use crate::media::{JoinRequest, MediaEvent, MediaKind};
use crate::protocol::Body;

use super::io::MediaCommand;
use super::machine::CallMachine;
use super::members::Members;
use super::state::{
    codes, CallErrorEvent, CallEvent, CallState, ErrorCodeType, Notification, StateReason,
};
use super::timings::Milestone;

impl CallMachine {
    /// Joins the call's media once; media payloads that arrived before are handed over now.
    pub(super) fn join_media(&mut self) {
        let Some(call) = &mut self.call else { return };
        if call.media_joined {
            return;
        }
        call.media_joined = true;
        let request = JoinRequest {
            call_id: call.id,
            room_id: call.room_id.clone(),
            role: call.role(),
            call_type: call.call_type,
            local_user: self.cfg.user_id.clone(),
            remote_user: call.remote_user().clone(),
            plan: call.plan,
            group: false,
        };
        let id = call.id;
        let inbox = call
            .members
            .inviter_mut()
            .map(|i| std::mem::take(&mut i.media_inbox))
            .unwrap_or_default();
        self.media(MediaCommand::Join(request));
        self.event(CallEvent::JoinMediaStart, Some(id), None);
        for payload in inbox {
            self.media(MediaCommand::RemoteSignal {
                call_id: id,
                payload,
            });
        }
    }

    pub(super) fn mark(&mut self, milestone: Milestone, now: Instant) {
        if let Some(call) = &mut self.call {
            call.timings.mark(milestone, call.start, now);
        }
    }

    pub(super) fn on_media(&mut self, ev: MediaEvent, now: Instant) {
        let Some(call) = &mut self.call else { return };
        if ev.call_id() != call.id {
            return;
        }
        let id = call.id;
        match ev {
            MediaEvent::PeerSignal { .. }
            | MediaEvent::PeerJoined { .. }
            | MediaEvent::PeerFirstFrame { .. }
            | MediaEvent::PeerLeft { .. }
            | MediaEvent::PeerFailed { .. } => self.on_peer_media(ev, now),
            MediaEvent::Signal { payload, .. } => {
                let dev = match &mut call.members {
                    // 1:1: the one invitation. Until a device rang, nobody is known to send to.
                    Members::Invited(invitations) => {
                        let Some(inv) = invitations.first_mut() else {
                            return;
                        };
                        match &inv.media_peer {
                            Some(d) => d.clone(),
                            None => {
                                inv.media_outbox.push(payload);
                                return;
                            }
                        }
                    }
                    Members::InvitedBy(inviter) => inviter.device.clone(),
                };
                let user = call.remote_user().clone();
                let lifetime = self.message_lifetime();
                self.send(user, Some(dev), id, Body::media(payload), lifetime, now);
            }
            MediaEvent::LocalJoined { .. } => {
                self.mark(Milestone::LocalJoined, now);
                self.event(CallEvent::LocalJoined, Some(id), None);
            }
            MediaEvent::RemoteJoined { .. } => {
                self.mark(Milestone::RemoteJoined, now);
                self.event(CallEvent::RemoteJoined, Some(id), None);
            }
            MediaEvent::FirstLocalFramePublished { .. } => {
                self.mark(Milestone::FirstLocalFramePublished, now);
            }
            MediaEvent::FirstRemoteFrame { kind, .. } => {
                let wanted = if call.is_video() {
                    MediaKind::Video
                } else {
                    MediaKind::Audio
                };
                if kind != wanted || call.first_frame {
                    return;
                }
                call.first_frame = true;
                self.mark(Milestone::FirstRemoteFrame, now);
                self.event(CallEvent::RecvRemoteFirstFrame, Some(id), None);
                self.check_connected(now);
            }
            MediaEvent::RemoteLeft { .. } => {
                self.event(CallEvent::RemoteLeft, Some(id), None);
            }
            MediaEvent::CaptureFailed { message, .. } => {
                self.error(
                    Some(id),
                    CallErrorEvent::StartCaptureFail,
                    ErrorCodeType::Media,
                    codes::CAPTURE_FAILED,
                    message,
                );
            }
            MediaEvent::Failed { message, .. } => self.on_media_failure(false, message, now),
            MediaEvent::Stats { stats, .. } => {
                self.notify(Notification::MediaStats { call_id: id, stats });
            }
        }
    }

    /// Ends the call after a media failure, telling the peer in the way that fits the state.
    pub(super) fn on_media_failure(&mut self, at_join: bool, message: String, now: Instant) {
        let id = self.current_id();
        let (reason, event, code) = if at_join {
            (
                StateReason::JoinMediaFailed,
                CallEvent::JoinMediaFailed,
                codes::JOIN_FAILED,
            )
        } else {
            (
                StateReason::MediaFailed,
                CallEvent::MediaFailed,
                codes::MEDIA_FAILED,
            )
        };
        self.error(
            id,
            CallErrorEvent::MediaError,
            ErrorCodeType::Media,
            code,
            message,
        );
        self.event(event, id, None);
        self.end_locally("media_failed", reason, now);
    }

    /// Moves to `Connected` once the call is accepted, confirmed and (when awaited) the first
    /// remote frame arrived.
    pub(super) fn check_connected(&mut self, now: Instant) {
        if self.state != CallState::Connecting {
            return;
        }
        let Some(call) = &mut self.call else { return };
        if !(call.accepted && call.confirmed && (call.first_frame || !call.first_frame_wait)) {
            return;
        }
        call.connected_at = Some(now);
        // The call timeout covers Calling and Connecting only.
        call.deadline = None;
        call.timings.mark(Milestone::Connected, call.start, now);
        let reason = if call.first_frame_wait {
            StateReason::RecvRemoteFirstFrame
        } else if call.is_caller() {
            StateReason::RemoteAccepted
        } else {
            StateReason::LocalAccepted
        };
        // Remote audio plays from `Connected` on.
        call.plan.subscribe_audio = true;
        let plan = call.plan;
        let joined = call.media_joined;
        let timings = call.timings;
        let id = call.id;
        let ms = timings.as_millis();
        tracing::info!(
            call_id = %id,
            remote_user_recv_call_ms = ?ms[0].1,
            accept_ms = ?ms[1].1,
            local_joined_ms = ?ms[2].1,
            remote_joined_ms = ?ms[3].1,
            first_local_frame_published_ms = ?ms[4].1,
            first_remote_frame_ms = ?ms[5].1,
            connected_ms = ?ms[6].1,
            "call connected"
        );
        let is_caller = call.is_caller();
        if joined {
            self.media(MediaCommand::UpdatePlan { call_id: id, plan });
        }
        if is_caller {
            self.send_confirm(now);
        }
        let info = self.call_info();
        self.set_state(
            CallState::Connected,
            reason,
            None,
            info,
            Some(timings),
            None,
        );
    }
}
