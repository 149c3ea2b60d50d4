//! A full call through `CallApi` on both sides over a real Mosquitto (shipped configuration and
//! ACL, password-file credentials): rings, connects, carries a 60 KB message and the media
//! negotiation, and hangs up.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;

#[tokio::test]
async fn a_call_over_mosquitto_connects_and_hangs_up() {
    init_tracing();
    let broker = Mosquitto::start(&[("alice", "alice-token"), ("bob", "bob-token")]).await;
    let mut alice = Device::start(broker.mqtt_config(), "alice", "a1", "alice-token", 1).await;
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "bob-token", 2).await;

    full_call(&mut alice, &mut bob).await;

    // One connection each, authenticated as the user, with the stable client id.
    assert_eq!(alice.attempts.len(), 1);
    assert_eq!(bob.attempts.len(), 1);
    assert_eq!(broker.count(&connected_line("alice", "a1")), 1);
    assert_eq!(broker.count(&connected_line("bob", "b1")), 1);
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
}
