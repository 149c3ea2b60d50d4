//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use callapi_core::media::{JoinRequest, MediaPlan, MediaRole};
use callapi_core::protocol::{Body, CallId, CallType, DeviceId, Envelope, MessageId, UserId};

/// A user id.
pub fn user(name: &str) -> UserId {
    UserId::new(name).unwrap()
}

/// A device id.
pub fn dev(name: &str) -> DeviceId {
    DeviceId::new(name).unwrap()
}

/// A reproducible message id.
pub fn msg_id(n: u64) -> MessageId {
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&n.to_be_bytes());
    MessageId::from_random_bytes(bytes)
}

/// A `message` envelope number `n` from `from`/`from_device` to `to`, sent at `ts`.
pub fn message(
    from: &str,
    from_device: &str,
    to: &str,
    n: u64,
    ts: u64,
    lifetime_ms: u64,
) -> Envelope {
    Envelope {
        v: 1,
        id: msg_id(n),
        ts,
        from: user(from),
        from_device: dev(from_device),
        to: user(to),
        to_device: None,
        call_id: CallId::from_random_bytes([7; 16]),
        lifetime_ms,
        body: Body::Message {
            data: n.to_string(),
        },
    }
}

/// The number carried by an envelope made with [`message`].
pub fn number(env: &Envelope) -> u64 {
    match &env.body {
        Body::Message { data } => data.parse().unwrap(),
        other => panic!("not a numbered message: {other:?}"),
    }
}

/// A join request from alice to bob.
pub fn join_request(call_id: CallId, role: MediaRole, call_type: CallType) -> JoinRequest {
    JoinRequest {
        call_id,
        room_id: "room".into(),
        role,
        call_type,
        local_user: user("alice"),
        remote_user: user("bob"),
        plan: MediaPlan {
            publish_audio: true,
            publish_video: true,
            subscribe_audio: false,
            subscribe_video: true,
        },
        group: false,
    }
}
