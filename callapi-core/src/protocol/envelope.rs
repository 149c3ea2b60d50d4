//! The envelope: one signaling message, the same on every backend (see `docs/PROTOCOL.md`).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{CallId, DeviceId, MessageId, UserId};
use super::member::Member;

/// The protocol's major version. A receiver refuses envelopes with a larger `v`.
pub const PROTOCOL_VERSION: u32 = 1;

/// Largest encoded envelope, in bytes (64 KiB).
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;

/// Free-form key/value data the app attaches to an invitation (CallAPI's "user extension").
pub type Extension = Map<String, Value>;

/// Audio-and-video or audio-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum CallType {
    /// A video call (video and audio).
    Video,
    /// An audio-only call: no video is negotiated.
    Audio,
}

/// Which kind of "elsewhere" ended a ringing device (multi-device calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Elsewhere {
    /// Another device of the callee accepted the call.
    Answered,
    /// Another device of the callee declined the call.
    Rejected,
}

/// One signaling message. Field meanings are normative in `docs/PROTOCOL.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Protocol major version ([`PROTOCOL_VERSION`]).
    pub v: u32,
    /// Unique id of this envelope; a retransmission keeps it.
    pub id: MessageId,
    /// When the sender first sent it, in milliseconds since the Unix epoch.
    pub ts: u64,
    /// Sending user.
    pub from: UserId,
    /// Sending device.
    pub from_device: DeviceId,
    /// Receiving user: every device of this user gets it unless `to_device` is set.
    pub to: UserId,
    /// Only this device of `to` gets it.
    pub to_device: Option<DeviceId>,
    /// The call this message belongs to.
    pub call_id: CallId,
    /// How long after `ts` the message is still worth delivering, in milliseconds.
    pub lifetime_ms: u64,
    /// What the message says.
    pub body: Body,
}

/// The `kind` of an envelope and its kind-specific fields.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Body {
    /// `invite`: the caller asks the callee to join a call in `room_id`.
    Invite {
        /// The caller's room (where the media of the call lives).
        room_id: String,
        /// Video or audio-only.
        call_type: CallType,
        /// App data merged from `prepare` and `call`.
        extension: Extension,
        /// A group invite's roster (the inviter's, with the invitee `inviting`); `None` for a
        /// 1:1 invite.
        members: Option<Vec<Member>>,
    },
    /// `ringing`: a callee device is alerting its user.
    Ringing {
        /// The device answers a group invite and speaks group calls.
        group: bool,
        /// In a group call: the `seq` of the answering member's record in the invite it answers,
        /// so that the inviter tells a reply to an earlier invitation of the same member from one
        /// to its current invitation; `None` in 1:1 (and from a peer that does not send it).
        seq: Option<u64>,
    },
    /// `accept`: a callee device answered.
    Accept {
        /// The device answers a group invite and speaks group calls.
        group: bool,
        /// In a group call: the `seq` of the answering member's record in the invite it answers,
        /// so that the inviter tells a reply to an earlier invitation of the same member from one
        /// to its current invitation; `None` in 1:1 (and from a peer that does not send it).
        seq: Option<u64>,
    },
    /// `confirm`: the caller took this device's `accept`; the call is up for both.
    Confirm {
        /// In a group call, the inviter's roster with the member accepted; `None` in 1:1.
        members: Option<Vec<Member>>,
    },
    /// `reject`: a callee device declined, or was busy.
    Reject {
        /// App-given reason.
        reason: Option<String>,
        /// The device declined because it was in another call.
        busy: bool,
        /// In a group call: the `seq` of the answering member's record in the invite it answers,
        /// so that the inviter tells a reply to an earlier invitation of the same member from one
        /// to its current invitation; `None` in 1:1 (and from a peer that does not send it).
        seq: Option<u64>,
    },
    /// `cancel`: the caller withdraws the invitation.
    Cancel {
        /// App-given reason.
        reason: Option<String>,
        /// The caller's call timeout ran out.
        timeout: bool,
        /// Another device of the callee answered or declined.
        elsewhere: Option<Elsewhere>,
        /// In a group call: the `seq` of the member's `inviting` record of the invitation this
        /// withdraws, so that a device ringing for a later invitation of the same call ignores
        /// it; `None` in 1:1 (and from a peer that does not send it).
        seq: Option<u64>,
    },
    /// `hangup`: a party leaves an accepted call.
    Hangup {
        /// App-given reason.
        reason: Option<String>,
    },
    /// `media`: negotiation data for the media engine (opaque to the core).
    Media {
        /// SDP offer/answer, ICE candidate, or anything the media engines agree on.
        payload: Value,
        /// In a group call: the `seq` of the sender's own `accepted` record, which names the
        /// sender's membership this payload belongs to; `None` in 1:1.
        seq: Option<u64>,
        /// In a group call: the `seq` of the receiver's `accepted` record as the sender knows
        /// it (the membership of the receiver it negotiates with); `None` in 1:1.
        to_seq: Option<u64>,
    },
    /// `message`: app data inside a call.
    Message {
        /// The data.
        data: String,
    },
    /// `dtmf`: DTMF digits (`0-9 * # A-D`) inside a call.
    Dtmf {
        /// The digits.
        digits: String,
    },
    /// `ack`: the receiving device got envelope `ack_id`.
    Ack {
        /// Id of the acknowledged envelope.
        ack_id: MessageId,
    },
    /// `members`: a group call's roster, between devices in the call.
    Members {
        /// The sender's roster.
        members: Vec<Member>,
        /// Someone ended the call for everyone.
        ended: bool,
    },
}

impl Body {
    /// A 1:1 `media` body (no group `seq`s).
    pub fn media(payload: Value) -> Self {
        Body::Media {
            payload,
            seq: None,
            to_seq: None,
        }
    }

    /// The wire name of this kind (`"invite"`, `"ack"`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Body::Invite { .. } => "invite",
            Body::Ringing { .. } => "ringing",
            Body::Accept { .. } => "accept",
            Body::Confirm { .. } => "confirm",
            Body::Reject { .. } => "reject",
            Body::Cancel { .. } => "cancel",
            Body::Hangup { .. } => "hangup",
            Body::Media { .. } => "media",
            Body::Message { .. } => "message",
            Body::Dtmf { .. } => "dtmf",
            Body::Ack { .. } => "ack",
            Body::Members { .. } => "members",
        }
    }
}

impl Envelope {
    /// Whether the message's lifetime has passed at `now_ms` (Unix milliseconds).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        now_ms > self.ts.saturating_add(self.lifetime_ms)
    }

    /// Milliseconds of lifetime left at `now_ms` (0 when expired).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        self.ts
            .saturating_add(self.lifetime_ms)
            .saturating_sub(now_ms)
    }
}
