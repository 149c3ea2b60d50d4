//! Presence: a connected device is announced `online` (retained) on
//! `callapi/v1/presence/{user}/{device}`; when its connection is lost the broker publishes its
//! last will, `offline`; a clean close publishes `offline` itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::connection::TransportLink;
use common::*;
use rumqttc::Packet;

async fn next_presence(observer: &mut RawClient) -> (String, Vec<u8>, bool) {
    let Packet::Publish(p) = observer
        .next_where("a presence message", |p| matches!(p, Packet::Publish(_)))
        .await
    else {
        unreachable!()
    };
    (p.topic, p.payload.to_vec(), p.retain)
}

#[tokio::test]
async fn presence_is_online_while_connected_and_offline_after_a_drop_or_a_close() {
    init_tracing();
    let broker = Mosquitto::start(&[("alice", "alice-token"), ("bob", "bob-token")]).await;
    let topic = "callapi/v1/presence/bob/b1".to_owned();

    let bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    // A late observer gets the retained state.
    let mut alice = RawClient::connect(broker.port(), "alice", "alice-token").await;
    alice.subscribe("callapi/v1/presence/bob/+").await;
    assert_eq!(
        next_presence(&mut alice).await,
        (topic.clone(), b"online".to_vec(), true)
    );

    // The connection is cut without a DISCONNECT (the app died): the last will.
    drop(bob);
    assert_eq!(
        next_presence(&mut alice).await,
        (topic.clone(), b"offline".to_vec(), false)
    );

    let mut bob = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    assert_eq!(
        next_presence(&mut alice).await,
        (topic.clone(), b"online".to_vec(), false)
    );
    bob.close().await;
    assert_eq!(
        next_presence(&mut alice).await,
        (topic, b"offline".to_vec(), false)
    );
    // ... followed by a DISCONNECT, so no last will on top.
    broker
        .wait_log("bob's DISCONNECT", |log| {
            count(log, "Received DISCONNECT from callapi-bob-b1") == 1
        })
        .await;
}
