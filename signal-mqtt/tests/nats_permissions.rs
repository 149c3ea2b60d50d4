//! The generated NATS permissions (`callapi_signal_mqtt::nats`) on a real 3-node nats-server
//! cluster: a user cannot subscribe to another user's inbox (nor to NATS's internal delivery
//! subjects), cannot publish as another user, and cannot connect over plain NATS at all.
//!
//! Needs `nats-server` (Debian's package; ./scripts/test installs it); without it each test
//! prints `SKIP: <reason>` and returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead, BufReader, Write};

use callapi_core::connection::{ConnectError, LinkEvent, Transport};
use callapi_signal_mqtt::MqttTransport;
use common::nats::*;
use common::*;
use rumqttc::{Packet, QoS, SubscribeReasonCode};

#[tokio::test]
async fn a_user_cannot_subscribe_to_another_users_inbox() {
    init_tracing();
    let Some(cluster) = cluster().await else {
        return;
    };
    let mut mallory = RawClient::connect(mqtt_port(&cluster, 2), "mallory", "mallory-token").await;
    for filter in [
        "callapi/v1/inbox/bob/+",
        "callapi/v1/inbox/bob/alice",
        "callapi/v1/inbox/+/+",
        "callapi/v1/inbox/#",
        "#",
        // NATS delivers QoS 1 messages on $MQTT.sub.<id>: not reachable from MQTT.
        "$MQTT/sub/#",
    ] {
        assert_eq!(
            mallory.subscribe(filter).await,
            [SubscribeReasonCode::Failure],
            "{filter}"
        );
    }
    // Her own inbox and everyone's presence: granted.
    assert_eq!(
        mallory.subscribe("callapi/v1/inbox/mallory/+").await,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)],
        "{}",
        cluster.logs()
    );
    assert_eq!(
        mallory.subscribe("callapi/v1/presence/#").await,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let node = cluster.node(2).unwrap();
    assert!(
        node.wait_count("Subscription Violation", 5, WAIT).await,
        "{}",
        cluster.logs()
    );

    // A device of mallory's cannot take bob's inbox either: its filter is its own.
    let mut as_mallory = MqttTransport::new(nats_config(&cluster, &[2]));
    let link = as_mallory
        .connect(&identity("mallory", "m1"), "mallory-token")
        .await;
    assert!(link.is_ok(), "{:?}", link.err());

    // Bob's mail reaches bob, on another node, and never mallory: the cluster delivers her
    // own mail after it, so it would have come first.
    let mut bob = connect_link(nats_config(&cluster, &[1]), "bob", "b1", "bob-token").await;
    let mut alice = connect_link(nats_config(&cluster, &[0]), "alice", "a1", "alice-token").await;
    let secret = envelope("alice", "a1", "bob", None, message("for bob only"));
    callapi_core::connection::TransportLink::send(&mut alice, secret.clone())
        .await
        .unwrap();
    assert_eq!(next_link_event(&mut bob).await, LinkEvent::Message(secret));
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
        assert!(
            !p.topic.starts_with("callapi/v1/inbox/"),
            "mallory read {}",
            p.topic
        );
    }
}

#[tokio::test]
async fn a_user_cannot_publish_as_another_user() {
    init_tracing();
    let Some(cluster) = cluster().await else {
        return;
    };
    let mut bob = RawClient::connect(mqtt_port(&cluster, 0), "bob", "bob-token").await;
    assert_eq!(
        bob.subscribe("callapi/v1/inbox/bob/+").await,
        [SubscribeReasonCode::Success(QoS::AtLeastOnce)]
    );
    let mut mallory = RawClient::connect(mqtt_port(&cluster, 2), "mallory", "mallory-token").await;

    // On alice's sender level and on alice's presence: the server drops both (MQTT 3.1.1
    // has no way to refuse a PUBLISH; NATS still acknowledges it) and logs a violation.
    let forged = envelope("alice", "a1", "bob", None, message("I am alice"));
    mallory
        .publish_envelope("callapi/v1/inbox/bob/alice", &forged)
        .await;
    mallory
        .publish("callapi/v1/presence/alice/a1", b"offline".to_vec())
        .await;
    let node = cluster.node(2).unwrap();
    assert!(
        node.wait_count("Publish Violation", 2, WAIT).await,
        "{}",
        cluster.logs()
    );
    // On her own level, with her own name: delivered, and first.
    let honest = envelope("mallory", "m1", "bob", None, message("I am mallory"));
    mallory
        .publish_envelope("callapi/v1/inbox/bob/mallory", &honest)
        .await;
    let Packet::Publish(p) = bob
        .next_where("a publish", |p| matches!(p, Packet::Publish(_)))
        .await
    else {
        unreachable!()
    };
    assert_eq!(p.topic, "callapi/v1/inbox/bob/mallory");
    assert_eq!(callapi_core::protocol::decode(&p.payload).unwrap(), honest);
    // Nothing was stored for bob's subscription but the honest envelope (acknowledged by bob's
    // client as it arrived; a stored forgery would stay pending for ever).
    assert_eq!(
        queued_for_subscribers_settled(&cluster, 0, 0).await,
        0,
        "{}",
        cluster.logs()
    );
}

#[tokio::test]
async fn generated_users_can_only_connect_over_mqtt() {
    init_tracing();
    let Some(cluster) = cluster().await else {
        return;
    };
    // Plain NATS with bob's password (it could subscribe to $MQTT.sub.> there): refused.
    let port = cluster.node(1).unwrap().client_port();
    let answer = tokio::task::spawn_blocking(move || {
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut info = String::new();
        reader.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO "), "{info}");
        (&stream)
            .write_all(
                b"CONNECT {\"user\":\"bob\",\"pass\":\"bob-token\",\"verbose\":false}\r\nPING\r\n",
            )
            .unwrap();
        let mut answer = String::new();
        reader.read_line(&mut answer).unwrap();
        answer
    })
    .await
    .unwrap();
    assert!(
        answer.starts_with("-ERR 'Authorization Violation'"),
        "{answer}"
    );

    // Over MQTT, a wrong password is refused as such.
    let mut transport = MqttTransport::new(nats_config(&cluster, &[1]));
    let err = transport
        .connect(&identity("bob", "b1"), "not-bob-token")
        .await
        .unwrap_err();
    assert!(matches!(err, ConnectError::Unauthorized(_)), "{err:?}");
}
