//! The same full call as `call_over_mosquitto`, against the embedded rumqttd broker (the demo's
//! MQTT mode): no external process, any credentials accepted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use callapi_signal_mqtt::EmbeddedBroker;
use common::*;

#[tokio::test]
async fn a_call_over_the_embedded_broker_connects_and_hangs_up() {
    init_tracing();
    let broker = EmbeddedBroker::start().unwrap();
    assert!(broker.addr().ip().is_loopback());
    let mut alice = Device::start(broker.mqtt_config(), "alice", "a1", "any", 1).await;
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "any", 2).await;

    full_call(&mut alice, &mut bob).await;

    assert_eq!(alice.attempts.len(), 1);
    assert_eq!(bob.attempts.len(), 1);
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
}
