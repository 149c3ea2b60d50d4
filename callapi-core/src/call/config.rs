//! Configuration of a call machine and of a prepared session.

use std::time::Duration;

use crate::protocol::{DeviceId, Extension, UserId};

/// Longest call timeout accepted by `prepare` (the de-duplication window must outlast it).
pub const MAX_CALL_TIMEOUT: Duration = Duration::from_secs(300);

/// Fixed settings of one device's call machine (CallAPI's `initialize`).
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// The local user.
    pub user_id: UserId,
    /// The local device.
    pub device_id: DeviceId,
    /// Seed for message and call ids; `None` draws one from the OS. Tests pass a seed so runs
    /// replay exactly.
    pub seed: Option<u64>,
    /// Reliable delivery settings.
    pub reliability: Reliability,
    /// How long in-call messages (accept, hangup, media, message, dtmf, ...) are retransmitted.
    pub message_lifetime: Duration,
    /// How long a callee that accepted waits past the invite's lifetime for the caller's
    /// confirmation before giving up (30 s: the confirmation is retransmitted about ten times in
    /// that span, so only a dead caller or a long outage exhausts it).
    pub confirm_grace: Duration,
    /// How long a call survives a signaling outage (see `docs/ARCHITECTURE.md`, "Staying connected").
    pub signal_grace: Duration,
    /// The most users this device invites into one group call at a time (its pending
    /// invitations; 9 by default, [`DEFAULT_MAX_INVITEES`](super::DEFAULT_MAX_INVITEES)).
    pub max_invitees: usize,
}

impl CallConfig {
    /// Defaults for `user` on `device`.
    pub fn new(user: UserId, device: DeviceId) -> Self {
        Self {
            user_id: user,
            device_id: device,
            seed: None,
            reliability: Reliability::default(),
            message_lifetime: Duration::from_secs(60),
            confirm_grace: Duration::from_secs(30),
            signal_grace: Duration::from_secs(30),
            max_invitees: super::group::DEFAULT_MAX_INVITEES,
        }
    }

    /// Sets the id seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }
}

/// Retransmission and de-duplication (`docs/PROTOCOL.md` §7; SIP's T1/T2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reliability {
    /// First retransmission interval (500 ms).
    pub initial_rto: Duration,
    /// Largest retransmission interval (4 s).
    pub max_rto: Duration,
    /// How long a received message id is remembered to drop duplicates (10 min).
    pub dedupe_window: Duration,
    /// Lifetime given to acks (they are not retransmitted).
    pub ack_lifetime: Duration,
}

impl Default for Reliability {
    fn default() -> Self {
        Self {
            initial_rto: Duration::from_millis(500),
            max_rto: Duration::from_secs(4),
            dedupe_window: Duration::from_secs(600),
            ack_lifetime: Duration::from_secs(10),
        }
    }
}

/// Settings of a prepared session (CallAPI's `prepareForCall`).
#[derive(Debug, Clone, PartialEq)]
pub struct PrepareConfig {
    /// The local room: where this device's outgoing calls live.
    pub room_id: String,
    /// Ring time plus connect time before a call gives up (at most [`MAX_CALL_TIMEOUT`]).
    /// `Duration::ZERO` means no short timeout: the call may ring up to [`MAX_CALL_TIMEOUT`]
    /// (5 min), the lifetime the invitation needs anyway, so nothing rings forever.
    pub call_timeout: Duration,
    /// Wait for the first remote frame before `Connected`.
    pub first_frame_wait: bool,
    /// The callee joins the media while ringing (early media).
    pub join_media_on_ringing: bool,
    /// Extension data sent with every invite (merged under the per-call extension).
    pub user_extension: Extension,
}

impl PrepareConfig {
    /// Defaults (15 s timeout, first-frame wait and join-on-ringing on) for `room_id`.
    pub fn new(room_id: impl Into<String>) -> Self {
        Self {
            room_id: room_id.into(),
            call_timeout: Duration::from_secs(15),
            first_frame_wait: true,
            join_media_on_ringing: true,
            user_extension: Extension::new(),
        }
    }
}

/// An incoming invitation as a policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingInvite {
    /// The caller.
    pub from: UserId,
    /// The caller's device.
    pub from_device: DeviceId,
    /// The call.
    pub call_id: crate::protocol::CallId,
    /// Video or audio.
    pub call_type: crate::protocol::CallType,
    /// The caller's room.
    pub room_id: String,
    /// The invite's extension.
    pub extension: Extension,
}

/// App hooks where CallAPI asks its listener (for example `canJoinRtcOnCalling`).
pub trait CallPolicy: Send + 'static {
    /// Whether to join the media while this invite rings; `None` uses the prepare setting.
    fn join_media_on_ringing(&self, _invite: &IncomingInvite) -> Option<bool> {
        None
    }
}

/// The policy that always uses the prepare settings.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultPolicy;

impl CallPolicy for DefaultPolicy {}
