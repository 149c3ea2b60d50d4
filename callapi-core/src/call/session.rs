//! Per-call data: the call in progress, its remote participants, and recently ended calls.

use std::time::Instant;

use serde_json::Value;

use crate::media::{MediaPlan, MediaRole};
use crate::protocol::{CallId, CallType, DeviceId, Elsewhere, Extension, UserId};

use super::state::CallInfo;
use super::timings::CallTimings;

/// What a remote device has told us about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceStatus {
    /// Sent `ringing`.
    Ringing,
    /// Declined because it is in another call.
    Busy,
    /// Declined.
    Rejected,
    /// Answered (the winning device).
    Accepted,
    /// Told to stop (answered or rejected elsewhere).
    Cancelled,
}

/// One remote user of a call and the devices of theirs that took part. A 1:1 call has one; group
/// calls (a later step) hold several.
#[derive(Debug, Clone)]
pub(crate) struct Participant {
    pub user: UserId,
    pub devices: Vec<(DeviceId, DeviceStatus)>,
    /// The device the call is with: callee side, the caller's device; caller side, the answering
    /// device once one accepted.
    pub peer_device: Option<DeviceId>,
}

impl Participant {
    pub(crate) fn new(user: UserId, peer_device: Option<DeviceId>) -> Self {
        Self {
            user,
            devices: Vec::new(),
            peer_device,
        }
    }

    pub(crate) fn status(&self, device: &DeviceId) -> Option<DeviceStatus> {
        self.devices
            .iter()
            .find(|(d, _)| d == device)
            .map(|(_, s)| *s)
    }

    pub(crate) fn set_status(&mut self, device: &DeviceId, status: DeviceStatus) {
        match self.devices.iter_mut().find(|(d, _)| d == device) {
            Some(entry) => entry.1 = status,
            None => self.devices.push((device.clone(), status)),
        }
    }

    /// Devices that are ringing, except `but`.
    pub(crate) fn ringing_except(&self, but: Option<&DeviceId>) -> Vec<DeviceId> {
        self.devices
            .iter()
            .filter(|(d, s)| *s == DeviceStatus::Ringing && Some(d) != but)
            .map(|(d, _)| d.clone())
            .collect()
    }
}

/// The call in progress.
#[derive(Debug)]
pub(crate) struct Call {
    pub id: CallId,
    pub role: MediaRole,
    pub call_type: CallType,
    pub room_id: String,
    pub caller: UserId,
    pub callee: UserId,
    pub extension: Extension,
    pub remote: Participant,
    pub start: Instant,
    /// Call timeout (caller) or invite expiry / confirmation wait (callee).
    pub deadline: Option<Instant>,
    /// Callee: when the invite's lifetime ends.
    pub invite_expiry: Option<Instant>,
    /// Caller: an `ack` for the invite arrived.
    pub invite_acked: bool,
    /// Caller: some device rang.
    pub ringing_seen: bool,
    /// Caller: a device answered busy; unless another rings by then, the call ends busy.
    pub busy_until: Option<Instant>,
    /// Caller: the busy device's reason.
    pub busy_reason: Option<String>,
    /// Accepted (callee: locally; caller: by a remote device).
    pub accepted: bool,
    /// Callee: the caller confirmed it is connected. Caller: same as `accepted`.
    pub confirmed: bool,
    pub first_frame: bool,
    pub first_frame_wait: bool,
    /// Whether media was joined (join command issued).
    pub media_joined: bool,
    /// Caller: the device media payloads go to (first ringing device, then the answering one).
    pub media_peer: Option<DeviceId>,
    /// Caller: media payloads produced before a media peer was known.
    pub media_outbox: Vec<Value>,
    /// Callee: media payloads received before joining.
    pub media_inbox: Vec<Value>,
    pub plan: MediaPlan,
    pub connected_at: Option<Instant>,
    pub timings: CallTimings,
}

impl Call {
    /// A call that has just started, with everything else at its initial value. `local` is this
    /// device's user; the plan publishes audio (and video for video calls) and subscribes to
    /// remote video only (remote audio is released at `Connected`).
    pub(crate) fn new(
        id: CallId,
        role: MediaRole,
        call_type: CallType,
        room_id: String,
        local: &UserId,
        remote: Participant,
        start: Instant,
    ) -> Self {
        let (caller, callee) = match role {
            MediaRole::Caller => (local.clone(), remote.user.clone()),
            _ => (remote.user.clone(), local.clone()),
        };
        let video = call_type == CallType::Video;
        Self {
            id,
            role,
            call_type,
            room_id,
            caller,
            callee,
            extension: Extension::new(),
            remote,
            start,
            deadline: None,
            invite_expiry: None,
            invite_acked: false,
            ringing_seen: false,
            busy_until: None,
            busy_reason: None,
            accepted: false,
            confirmed: false,
            first_frame: false,
            first_frame_wait: true,
            media_joined: false,
            media_peer: None,
            media_outbox: Vec::new(),
            media_inbox: Vec::new(),
            plan: MediaPlan {
                publish_audio: true,
                publish_video: video,
                subscribe_audio: false,
                subscribe_video: video,
            },
            connected_at: None,
            timings: CallTimings::default(),
        }
    }

    pub(crate) fn info(&self) -> CallInfo {
        CallInfo {
            call_id: self.id,
            role: self.role,
            caller: self.caller.clone(),
            callee: self.callee.clone(),
            remote_user: self.remote.user.clone(),
            remote_device: self.remote.peer_device.clone(),
            call_type: self.call_type,
            room_id: self.room_id.clone(),
            extension: self.extension.clone(),
        }
    }

    pub(crate) fn is_caller(&self) -> bool {
        self.role == MediaRole::Caller
    }

    pub(crate) fn is_video(&self) -> bool {
        self.call_type == CallType::Video
    }
}

/// How to answer a late message about a call that has ended, so its sender never gets stuck.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LateReply {
    /// Caller side: answer `ringing`/`accept` with a cancel of this kind.
    Cancel {
        timeout: bool,
        elsewhere: Option<Elsewhere>,
    },
    /// Answer with a hangup (the peer thinks the call is up).
    Hangup,
}

/// A call that ended recently.
#[derive(Debug, Clone)]
pub(crate) struct Ended {
    pub id: CallId,
    pub role: MediaRole,
    pub remote_user: UserId,
    /// Caller side: the device that answered, if any.
    pub answered: Option<DeviceId>,
    pub reply: LateReply,
    pub at: Instant,
}
