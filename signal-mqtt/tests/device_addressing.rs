//! Every device of a user shares the user's inbox topic; an envelope with `to_device` reaches
//! only that device: the others drop it silently.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_core::connection::{LinkEvent, TransportLink};
use common::*;

#[tokio::test]
async fn an_envelope_for_one_device_is_dropped_by_the_users_other_devices() {
    init_tracing();
    let broker = Mosquitto::start(&[("alice", "alice-token"), ("bob", "bob-token")]).await;
    let mut b1 = connect_link(broker.mqtt_config(), "bob", "b1", "bob-token").await;
    let mut b2 = connect_link(broker.mqtt_config(), "bob", "b2", "bob-token").await;
    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;

    let for_b2 = envelope("alice", "a1", "bob", Some("b2"), message("b2 only"));
    let for_bob = envelope("alice", "a1", "bob", None, message("every device"));
    alice.send(for_b2.clone()).await.unwrap();
    alice.send(for_bob.clone()).await.unwrap();

    assert_eq!(next_link_event(&mut b2).await, LinkEvent::Message(for_b2));
    assert_eq!(
        next_link_event(&mut b2).await,
        LinkEvent::Message(for_bob.clone())
    );
    // b1's first event is the user-addressed one: the other was dropped without a report.
    assert_eq!(next_link_event(&mut b1).await, LinkEvent::Message(for_bob));
    for link in [&mut b1, &mut b2, &mut alice] {
        link.close().await;
    }
}

#[tokio::test]
async fn ids_that_cannot_be_topic_levels_are_refused() {
    use callapi_core::connection::{ConnectError, Transport};
    use callapi_core::signal::SignalError;
    use callapi_signal_mqtt::MqttTransport;

    init_tracing();
    let broker = Mosquitto::start(&[("alice", "alice-token")]).await;
    // Connecting as such a user is a permanent error that names the problem.
    let mut transport = MqttTransport::new(broker.mqtt_config());
    let err = transport
        .connect(&identity("sales/emea", "d1"), "t")
        .await
        .unwrap_err();
    let ConnectError::Unauthorized(text) = err else {
        panic!("expected a permanent error, got {err:?}")
    };
    assert!(text.contains("\"sales/emea\" contains '/'"), "{text}");
    // Sending to such a user is refused before anything is published.
    let mut alice = connect_link(broker.mqtt_config(), "alice", "a1", "alice-token").await;
    for bad in ["a+b", "#"] {
        let err = alice
            .send(envelope("alice", "a1", bad, None, message("x")))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, SignalError::Rejected(t) if t.contains("MQTT reserves")),
            "{err:?}"
        );
    }
    alice.close().await;
}
