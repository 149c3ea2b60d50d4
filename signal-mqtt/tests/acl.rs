//! The shipped ACL on a real Mosquitto: a client cannot read another user's inbox nor write as
//! another user (the broker denies it), and an envelope whose `from` is forged inside a topic
//! the sender may write is dropped and reported by the receiver.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::call::{codes, CallState, Notification};
use callapi_core::connection::{LinkEvent, TransportLink};
use callapi_core::protocol::{Body, CallType};
use callapi_core::signal::LinkState;
use common::*;
use rumqttc::Packet;

const USERS: [(&str, &str); 3] = [
    ("alice", "alice-token"),
    ("bob", "bob-token"),
    ("mallory", "mallory-token"),
];

#[tokio::test]
async fn a_client_cannot_read_another_users_inbox() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    let mut mallory = RawClient::connect(broker.port(), "mallory", "mallory-token").await;

    // Mosquitto 2.0 acknowledges any subscription and applies the read ACL to every message it
    // would deliver (other brokers refuse the SUBACK): what counts is that nothing arrives.
    for filter in ["callapi/v1/inbox/bob/+", "callapi/v1/inbox/#", "#"] {
        let codes = mallory.subscribe(filter).await;
        assert_eq!(codes.len(), 1);
    }

    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;
    let secret = envelope("alice", "a1", "bob", None, message("for bob only"));
    alice.send(secret.clone()).await.unwrap();
    assert_eq!(next_link_event(&mut bob).await, LinkEvent::Message(secret));

    // Mallory's own mail reaches her; bob's never did (the broker delivers in order, so it
    // would have come first).
    let own = envelope("mallory", "m1", "mallory", None, message("marker"));
    mallory
        .publish_envelope("callapi/v1/inbox/mallory/mallory", &own)
        .await;
    loop {
        let Packet::Publish(p) = mallory
            .next_where("a publish", |p| matches!(p, Packet::Publish(_)))
            .await
        else {
            unreachable!()
        };
        if p.topic == "callapi/v1/inbox/mallory/mallory" {
            break;
        }
        // Presence is public; inboxes are not.
        assert!(
            !p.topic.starts_with("callapi/v1/inbox/"),
            "mallory read {}",
            p.topic
        );
    }
    bob.close().await;
    alice.close().await;
}

#[tokio::test]
async fn a_client_cannot_publish_as_another_user() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    let mut mallory = RawClient::connect(broker.port(), "mallory", "mallory-token").await;

    // On alice's sender level: the broker drops it (MQTT 3.1.1 still acknowledges it).
    let forged = envelope("alice", "a1", "bob", None, message("I am alice"));
    mallory
        .publish_envelope("callapi/v1/inbox/bob/alice", &forged)
        .await;
    // On her own level, with her own name: delivered.
    let honest = envelope("mallory", "m1", "bob", None, message("I am mallory"));
    mallory
        .publish_envelope("callapi/v1/inbox/bob/mallory", &honest)
        .await;

    assert_eq!(next_link_event(&mut bob).await, LinkEvent::Message(honest));
    bob.close().await;
}

#[tokio::test]
async fn a_forged_from_inside_an_allowed_topic_is_dropped_and_reported() {
    init_tracing();
    let broker = Mosquitto::start(&USERS).await;
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "bob-token", 1).await;
    bob.wait_link(LinkState::Connected).await;
    let mut mallory = RawClient::connect(broker.port(), "mallory", "mallory-token").await;

    let invite = |from: &str| {
        envelope(
            from,
            "m1",
            "bob",
            None,
            Body::Invite {
                room_id: "room".into(),
                call_type: CallType::Audio,
                extension: Default::default(),
                members: None,
            },
        )
    };
    // Mallory may write on her own sender level, but claims to be alice inside.
    mallory
        .publish_envelope("callapi/v1/inbox/bob/mallory", &invite("alice"))
        .await;
    let report = bob
        .wait_for("an error report", |n| matches!(n, Notification::Error(_)))
        .await;
    let Notification::Error(report) = report else {
        unreachable!()
    };
    assert_eq!(report.code, codes::INVALID_ENVELOPE);
    assert!(
        report.message.contains("forged sender"),
        "{}",
        report.message
    );

    // An honest invite from mallory rings: the forged one did not.
    mallory
        .publish_envelope("callapi/v1/inbox/bob/mallory", &invite("mallory"))
        .await;
    let ring = bob.wait_state(CallState::Calling).await;
    assert_eq!(ring.call.unwrap().remote_user.as_str(), "mallory");
    assert_eq!(bob.states(), vec![CallState::Prepared, CallState::Calling]);
}
