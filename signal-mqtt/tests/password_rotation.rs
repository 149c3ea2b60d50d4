//! Rotating a password with the recipe of `signal-mqtt/mosquitto/README.md`
//! (`mosquitto_passwd`, then `kill -HUP`): Mosquitto 2.0 re-checks every client against the
//! reloaded password file, so the user's live connections made with the old password are
//! closed. Its sessions and queued envelopes stay, the new password connects, the old one no
//! longer does, and the other users' connections are not touched.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::connection::{LinkEvent, TransportLink};
use common::*;
use rumqttc::ConnectReturnCode;

/// Waits until the broker holds the `n`-th envelope from alice to bob.
async fn at_the_broker(broker: &Mosquitto, n: usize) {
    broker
        .wait_log("the envelope at the broker", |log| {
            log.iter()
                .filter(|l| {
                    l.contains("Received PUBLISH from callapi-alice-a1")
                        && l.contains("'callapi/v1/inbox/bob/alice'")
                })
                .count()
                == n
        })
        .await;
}

#[tokio::test]
async fn a_reload_after_a_password_change_closes_that_users_connections_only() {
    init_tracing();
    let broker = Mosquitto::start(&[("alice", "alice-token"), ("bob", "bob-token")]).await;
    // bob's b2 has a session but is offline; b1 is connected; so is alice.
    let mut b2 = connect_link(broker.mqtt_config(), "bob", "b2", "bob-token").await;
    b2.close().await;
    broker
        .wait_log("b2's disconnection", |log| {
            count(log, "Client callapi-bob-b2 disconnected") == 1
        })
        .await;
    let mut b1 = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;
    let before = envelope("alice", "a1", "bob", None, message("before the rotation"));
    alice.send(before.clone()).await.unwrap();
    assert_eq!(
        next_link_event(&mut b1).await,
        LinkEvent::Message(before.clone())
    );

    broker.set_password("bob", "bob-new-token");
    broker.reload().await;

    // b1 logged in with the old password: the broker closes its connection.
    assert_eq!(
        next_link_event(&mut b1).await,
        LinkEvent::Closed { error: None }
    );
    // alice's connection is untouched (this envelope goes out on it), and bob's sessions stay:
    // the envelope waits in both.
    let after = envelope("alice", "a1", "bob", None, message("after the rotation"));
    alice.send(after.clone()).await.unwrap();
    at_the_broker(&broker, 2).await;

    // The old password no longer connects; the new one does, to the same sessions.
    let old =
        RawClient::try_connect_as(broker.port(), "callapi-bob-raw", "bob", "bob-token", true).await;
    assert!(matches!(old, Err(ConnectReturnCode::NotAuthorized)));
    let mut b1 = connect_link(broker.mqtt_config(), "bob", "b1", "bob-new-token").await;
    assert_eq!(
        next_link_event(&mut b1).await,
        LinkEvent::Message(after.clone())
    );
    let mut b2 = connect_link(broker.mqtt_config(), "bob", "b2", "bob-new-token").await;
    assert_eq!(next_link_event(&mut b2).await, LinkEvent::Message(before));
    assert_eq!(next_link_event(&mut b2).await, LinkEvent::Message(after));
    for d in ["b1", "b2"] {
        let resumed = format!("Sending CONNACK to callapi-bob-{d} (1, 0)");
        broker.assert_count(&resumed, 1).await;
    }
    for link in [&mut b1, &mut b2, &mut alice] {
        link.close().await;
    }
}
