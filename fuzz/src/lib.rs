//! Builders shared by the fuzz targets: well-formed envelopes made from fuzz data, with ids
//! drawn from small sets so that calls, devices and acknowledgements match.

use arbitrary::Arbitrary;
use callapi_core::protocol::{
    Body, CallId, CallType, DeviceId, Elsewhere, Envelope, Extension, Member, MemberState,
    MessageId, UserId, PROTOCOL_VERSION,
};

/// The users of the small world the targets use.
pub const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
/// Their devices (every user has these two).
pub const DEVICES: [&str; 2] = ["d1", "d2"];

/// User `i` of [`USERS`] (modulo their count).
pub fn user(i: u8) -> UserId {
    UserId::new(USERS[usize::from(i) % USERS.len()]).expect("valid user id")
}

/// Device `i` of [`DEVICES`] (modulo their count).
pub fn device(i: u8) -> DeviceId {
    DeviceId::new(DEVICES[usize::from(i) % DEVICES.len()]).expect("valid device id")
}

/// Id `i` of a small set of ids of each kind.
pub fn call_id(i: u8) -> CallId {
    CallId::from_random_bytes([i % 4 + 1; 16])
}

/// Message id `i` of a small set.
pub fn message_id(i: u8) -> MessageId {
    MessageId::from_random_bytes([i % 16 + 0x40; 16])
}

/// A member record from fuzz data.
#[derive(Debug, Arbitrary)]
pub struct ArbMember {
    user: u8,
    state: u8,
    seq: u8,
    device: Option<u8>,
    until_ms: Option<u16>,
}

impl ArbMember {
    fn build(&self) -> Member {
        let state = MemberState::ALL[usize::from(self.state) % MemberState::ALL.len()];
        let mut m = Member::new(user(self.user), state, u64::from(self.seq % 8));
        m.device = self.device.map(device);
        m.until_ms = self
            .until_ms
            .map(|ms| callapi_core_sim_unix_ms().saturating_add(u64::from(ms) * 10));
        m
    }
}

/// The wall-clock anchor the call-machine target starts its machines at (Unix ms).
pub const SIM_UNIX_MS: u64 = 1_700_000_000_000;

fn callapi_core_sim_unix_ms() -> u64 {
    SIM_UNIX_MS
}

/// A roster: at most one record per user (the decoder refuses two).
fn roster(members: &[ArbMember]) -> Vec<Member> {
    let mut out: Vec<Member> = Vec::new();
    for m in members.iter().take(5) {
        let m = m.build();
        if !out.iter().any(|o| o.user == m.user) {
            out.push(m);
        }
    }
    out
}

/// The body of an envelope from fuzz data.
#[derive(Debug, Arbitrary)]
pub enum ArbBody {
    /// `invite`.
    Invite {
        room: u8,
        video: bool,
        members: Option<Vec<ArbMember>>,
    },
    /// `ringing`.
    Ringing { group: bool, seq: Option<u8> },
    /// `accept`.
    Accept { group: bool, seq: Option<u8> },
    /// `confirm`.
    Confirm { members: Option<Vec<ArbMember>> },
    /// `reject`.
    Reject { busy: bool, seq: Option<u8> },
    /// `cancel`.
    Cancel {
        timeout: bool,
        elsewhere: Option<bool>,
        seq: Option<u8>,
    },
    /// `hangup`.
    Hangup,
    /// `media`.
    Media {
        sdp: bool,
        seq: Option<u8>,
        to_seq: Option<u8>,
    },
    /// `message`.
    Message(String),
    /// `dtmf`.
    Dtmf(String),
    /// `ack` of a message id (see [`ArbEnvelope::build`]).
    Ack(u8),
    /// `members`.
    Members { members: Vec<ArbMember>, ended: bool },
}

/// An envelope from fuzz data: users, devices, calls and message ids from small sets.
#[derive(Debug, Arbitrary)]
pub struct ArbEnvelope {
    /// Message id index.
    pub id: u8,
    /// Sender timestamp, as an offset around [`SIM_UNIX_MS`] in tens of ms.
    pub ts: i16,
    /// Sender.
    pub from: u8,
    /// Sender device.
    pub from_device: u8,
    /// Addressee.
    pub to: u8,
    /// Addressed device.
    pub to_device: Option<u8>,
    /// Call index.
    pub call: u8,
    /// Lifetime in hundreds of ms.
    pub lifetime: u16,
    /// The body.
    pub body: ArbBody,
}

impl ArbEnvelope {
    /// The envelope. `call_ids` and `message_ids` are the ids the target knows of (calls and
    /// envelopes of the device under test); `call`/`id`/`ack` pick among them first, then among
    /// the fixed small sets.
    pub fn build(&self, call_ids: &[CallId], message_ids: &[MessageId]) -> Envelope {
        let pick_call = |i: u8| {
            let i = usize::from(i);
            call_ids
                .get(i % 8)
                .copied()
                .unwrap_or_else(|| call_id(i as u8))
        };
        let pick_msg = |i: u8| {
            let i = usize::from(i);
            message_ids
                .iter()
                .rev()
                .nth(i % 8)
                .copied()
                .unwrap_or_else(|| message_id(i as u8))
        };
        let body = match &self.body {
            ArbBody::Invite {
                room,
                video,
                members,
            } => Body::Invite {
                room_id: format!("room{}", room % 3),
                call_type: if *video {
                    CallType::Video
                } else {
                    CallType::Audio
                },
                extension: Extension::new(),
                members: members.as_deref().map(roster),
            },
            ArbBody::Ringing { group, seq } => Body::Ringing {
                group: *group,
                seq: seq.map(u64::from),
            },
            ArbBody::Accept { group, seq } => Body::Accept {
                group: *group,
                seq: seq.map(u64::from),
            },
            ArbBody::Confirm { members } => Body::Confirm {
                members: members.as_deref().map(roster),
            },
            ArbBody::Reject { busy, seq } => Body::Reject {
                reason: None,
                busy: *busy,
                seq: seq.map(u64::from),
            },
            ArbBody::Cancel {
                timeout,
                elsewhere,
                seq,
            } => Body::Cancel {
                reason: None,
                timeout: *timeout,
                elsewhere: elsewhere.map(|a| {
                    if a {
                        Elsewhere::Answered
                    } else {
                        Elsewhere::Rejected
                    }
                }),
                seq: seq.map(u64::from),
            },
            ArbBody::Hangup => Body::Hangup { reason: None },
            ArbBody::Media { sdp, seq, to_seq } => Body::Media {
                payload: if *sdp {
                    serde_json::json!({"type": "offer", "sdp": "v=0"})
                } else {
                    serde_json::Value::Null
                },
                seq: seq.map(u64::from),
                to_seq: to_seq.map(u64::from),
            },
            ArbBody::Message(data) => Body::Message {
                data: data.chars().take(64).collect(),
            },
            ArbBody::Dtmf(digits) => Body::Dtmf {
                digits: digits.chars().take(8).collect(),
            },
            ArbBody::Ack(i) => Body::Ack {
                ack_id: pick_msg(*i),
            },
            ArbBody::Members { members, ended } => Body::Members {
                members: roster(members),
                ended: *ended,
            },
        };
        Envelope {
            v: PROTOCOL_VERSION,
            id: message_id(self.id.wrapping_add(100)),
            ts: SIM_UNIX_MS.saturating_add_signed(i64::from(self.ts) * 10),
            from: user(self.from),
            from_device: device(self.from_device),
            to: user(self.to),
            to_device: self.to_device.map(device),
            call_id: pick_call(self.call),
            lifetime_ms: u64::from(self.lifetime) * 100,
            body,
        }
    }
}
