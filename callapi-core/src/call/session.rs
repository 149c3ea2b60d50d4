//! The call in progress: what is call-wide (id, type, room, flags, media plan, timings, the
//! call's own deadline). Who the call is with lives in its member table ([`Members`]).

use std::time::Instant;

use crate::media::{MediaPlan, MediaRole};
use crate::protocol::{CallId, CallType, DeviceId, Extension, UserId};

use super::group::Group;
use super::members::{Invitation, Inviter, Members};
use super::state::CallInfo;
use super::timings::CallTimings;

/// The call in progress.
#[derive(Debug)]
pub(crate) struct Call {
    pub id: CallId,
    pub call_type: CallType,
    pub room_id: String,
    pub caller: UserId,
    pub callee: UserId,
    pub extension: Extension,
    /// Who the call is with: the members this device invited, or the one who invited it.
    pub members: Members,
    pub start: Instant,
    /// Call timeout (caller) or invite expiry / confirmation wait (callee).
    pub deadline: Option<Instant>,
    /// Accepted (callee: locally; caller: by a remote device).
    pub accepted: bool,
    /// Callee: the caller confirmed it is connected. Caller: same as `accepted`.
    pub confirmed: bool,
    pub first_frame: bool,
    pub first_frame_wait: bool,
    /// Whether media was joined (join command issued).
    pub media_joined: bool,
    pub plan: MediaPlan,
    pub connected_at: Option<Instant>,
    pub timings: CallTimings,
    /// A group call's roster and invitations; `None` for a 1:1 call.
    pub group: Option<Box<Group>>,
}

impl Call {
    /// A call this device places: `local` invites the member of `invitation`.
    pub(crate) fn outgoing(
        id: CallId,
        call_type: CallType,
        room_id: String,
        local: &UserId,
        invitation: Invitation,
        start: Instant,
    ) -> Self {
        let callee = invitation.user.clone();
        let members = Members::Invited(vec![invitation]);
        Self::new(
            id,
            call_type,
            room_id,
            local.clone(),
            callee,
            members,
            start,
        )
    }

    /// A group call (placed, invited to or joined): the caller is its creator or this device's
    /// inviter, the callee this device's user or its first invitee; the group part is set by
    /// the caller of this constructor.
    pub(crate) fn group(
        id: CallId,
        call_type: CallType,
        room_id: String,
        caller: UserId,
        callee: UserId,
        members: Members,
        start: Instant,
    ) -> Self {
        Self::new(id, call_type, room_id, caller, callee, members, start)
    }

    /// A call this device was invited to: `local` is the callee.
    pub(crate) fn incoming(
        id: CallId,
        call_type: CallType,
        room_id: String,
        local: &UserId,
        inviter: Inviter,
        start: Instant,
    ) -> Self {
        let caller = inviter.user.clone();
        let members = Members::InvitedBy(inviter);
        Self::new(
            id,
            call_type,
            room_id,
            caller,
            local.clone(),
            members,
            start,
        )
    }

    /// A call that has just started, with everything else at its initial value. The plan
    /// publishes audio (and video for video calls) and subscribes to remote video only (remote
    /// audio is released at `Connected`).
    fn new(
        id: CallId,
        call_type: CallType,
        room_id: String,
        caller: UserId,
        callee: UserId,
        members: Members,
        start: Instant,
    ) -> Self {
        let video = call_type == CallType::Video;
        Self {
            id,
            call_type,
            room_id,
            caller,
            callee,
            extension: Extension::new(),
            members,
            start,
            deadline: None,
            accepted: false,
            confirmed: false,
            first_frame: false,
            first_frame_wait: true,
            media_joined: false,
            plan: MediaPlan {
                publish_audio: true,
                publish_video: video,
                subscribe_audio: false,
                subscribe_video: video,
            },
            connected_at: None,
            timings: CallTimings::default(),
            group: None,
        }
    }

    pub(crate) fn info(&self) -> CallInfo {
        CallInfo {
            call_id: self.id,
            role: self.role(),
            caller: self.caller.clone(),
            callee: self.callee.clone(),
            remote_user: self.remote_user().clone(),
            remote_device: self.peer_device().cloned(),
            call_type: self.call_type,
            room_id: self.room_id.clone(),
            extension: self.extension.clone(),
        }
    }

    pub(crate) fn role(&self) -> MediaRole {
        self.members.role()
    }

    pub(crate) fn is_caller(&self) -> bool {
        self.role() == MediaRole::Caller
    }

    pub(crate) fn is_video(&self) -> bool {
        self.call_type == CallType::Video
    }

    /// The remote user of a 1:1 call.
    pub(crate) fn remote_user(&self) -> &UserId {
        if self.is_caller() {
            &self.callee
        } else {
            &self.caller
        }
    }

    /// The device a 1:1 call is with, once known (see [`Members::peer_device`]).
    pub(crate) fn peer_device(&self) -> Option<&DeviceId> {
        self.members.peer_device()
    }
}
