//! Persistent sessions: an invite published while the callee is offline waits at the broker and
//! rings when the callee connects within the invite's lifetime — and never after it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallEvent, CallState, PrepareConfig, StateReason};
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use common::*;

const USERS: [(&str, &str); 2] = [("alice", "alice-token"), ("bob", "bob-token")];

/// bob's device connects once (the broker opens its persistent session and subscription) and
/// goes away cleanly, as an app that is closed.
async fn bob_was_here(broker: &Mosquitto) {
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "bob-token", 2).await;
    bob.wait_link(LinkState::Connected).await;
    bob.api.shutdown().await.unwrap();
    broker
        .wait_log("bob's disconnection", |log| {
            count(log, "Client callapi-bob-b1 disconnected") == 1
        })
        .await;
}

/// alice (call timeout `timeout`) calls bob; returns once the broker holds the invite.
async fn alice_calls_offline_bob(
    broker: &Mosquitto,
    timeout: Duration,
) -> (Device, callapi_core::protocol::CallId) {
    let prepare = PrepareConfig {
        call_timeout: timeout,
        ..PrepareConfig::new("alice-room")
    };
    let mut alice = Device::start_with(
        broker.mqtt_config(),
        "alice",
        "a1",
        "alice-token",
        1,
        prepare,
    )
    .await;
    alice.wait_link(LinkState::Connected).await;
    let call_id = alice.api.call("bob", CallType::Video).await.unwrap();
    broker
        .wait_log("the invite at the broker", |log| {
            count(log, "Received PUBLISH from callapi-alice-a1") >= 1
        })
        .await;
    (alice, call_id)
}

#[tokio::test]
async fn an_invite_sent_while_the_callee_is_offline_rings_when_it_connects() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    bob_was_here(&broker).await;
    let (mut alice, call_id) = alice_calls_offline_bob(&broker, Duration::from_secs(8)).await;

    // bob's app starts again: same user, same device, so the same session.
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "bob-token", 3).await;
    let ring = bob.wait_state(CallState::Calling).await;
    assert_eq!(ring.call.unwrap().call_id, call_id);
    // It came out of the session's queue (the broker resumed the session and sent it before
    // anything new from alice), not from a retransmission after bob was back. (The log can lag
    // behind the ring: wait until it shows bob back and the invite after that.)
    broker
        .wait_log("bob back and the invite", |log| {
            let back = log
                .iter()
                .rposition(|l| l.contains(&connected_line("bob", "b1")));
            count(log, &connected_line("bob", "b1")) == 2
                && back.is_some_and(|back| {
                    log[back..]
                        .iter()
                        .any(|l| l.contains("'callapi/v1/inbox/bob/alice'"))
                })
        })
        .await;
    let log = broker.log();
    let back = log
        .iter()
        .rposition(|l| l.contains(&connected_line("bob", "b1")))
        .unwrap();
    let next = log[back..]
        .iter()
        .find(|l| l.contains("'callapi/v1/inbox/bob/alice'"))
        .unwrap();
    assert!(
        next.contains("Sending PUBLISH to callapi-bob-b1"),
        "{log:#?}"
    );
    assert!(
        log[back..]
            .iter()
            .any(|l| l.contains("Sending CONNACK to callapi-bob-b1 (1, 0)")),
        "no resumed session: {log:#?}"
    );
    alice.wait_event(CallEvent::RemoteUserRecvCall).await;
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;
    bob.api.hangup(None).await.unwrap();
    let end = alice.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::RemoteHangup);
}

#[tokio::test]
async fn an_invite_whose_lifetime_passed_while_the_callee_was_offline_never_rings() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    bob_was_here(&broker).await;
    let (mut alice, old_call) = alice_calls_offline_bob(&broker, Duration::from_secs(1)).await;
    // Nobody acknowledged the invite within its lifetime (= the call timeout).
    let gave_up = alice.wait_state(CallState::Prepared).await;
    assert!(
        matches!(
            gave_up.reason,
            StateReason::MessageFailed | StateReason::CallingTimeout
        ),
        "{gave_up:?}"
    );

    // bob connects after the invite's lifetime: it arrives, and is dropped without ringing.
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "bob-token", 3).await;
    bob.wait_event(CallEvent::InviteExpired).await;

    // A new call rings at once: the stale one, delivered before it, never did.
    alice
        .api
        .prepare(PrepareConfig::new("alice-room"))
        .await
        .unwrap();
    let new_call = alice.api.call("bob", CallType::Audio).await.unwrap();
    let ring = bob.wait_state(CallState::Calling).await;
    assert_eq!(ring.call.unwrap().call_id, new_call);
    assert_ne!(new_call, old_call);
    assert_eq!(bob.states(), vec![CallState::Prepared, CallState::Calling]);
}
