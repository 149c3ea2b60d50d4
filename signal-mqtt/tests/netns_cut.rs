//! The signaling cut of `media-webrtc/tests/netns_lossy.rs`, over MQTT: a real Mosquitto (the
//! shipped configuration, `common::Mosquitto`) in a network namespace of its own, alice's and
//! bob's `CallApi` devices (MQTT transport, mock media) each in another, all behind the router
//! namespace of `callapi_signal_mock::netns::Lab`, real TCP between them. Mid-call, the router
//! drops everything to and from the broker's port for 10 s: both devices notice (MQTT
//! keep-alive), the call survives on its grace, and the message alice sent during the cut
//! arrives once the links are back.
//!
//! Needs root, iproute2 and nftables; elsewhere the test prints `SKIP: <reason>` and returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_core::call::StateReason;
use callapi_core::call::{CallConfig, CallEvent, CallState, Notification, PrepareConfig};
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use callapi_signal_mock::netns::{fast_reconnects, Host, Lab};
use common::*;

/// The cut's duration (real time).
const CUT: Duration = Duration::from_secs(10);

/// MQTT keep-alive on both clients: a ping after a second of silence, so a dead link shows
/// within about 2 s (and the broker drops a silent client after 1.5 s).
const KEEP_ALIVE: Duration = Duration::from_secs(1);

/// A device of user `u` on `host`: its MQTT socket in that namespace, keep-alive
/// [`KEEP_ALIVE`], reconnects every second ([`fast_reconnects`]), a 30 s signal grace.
async fn device_on(host: &Host, broker: &Mosquitto, u: &str, d: &str, seed: u64) -> Device {
    let mut config = broker.mqtt_config().with_keep_alive(KEEP_ALIVE);
    // Below the schedule's 2 s attempt timeout: an attempt into the cut ends with rumqttc's
    // own error (and is counted), not by the supervisor dropping it (which nothing records).
    config.network_timeout = Duration::from_secs(1);
    let mut call = CallConfig::new(user(u), device(d)).with_seed(seed ^ 0x5eed);
    call.signal_grace = Duration::from_secs(30);
    let (u, token) = (u.to_owned(), format!("{u}-token"));
    host.spawn(async move {
        let prepare = PrepareConfig::new(format!("{u}-room"));
        Device::start_custom(config, call, &token, seed, fast_reconnects(), prepare).await
    })
    .await
}

fn got_message(d: &Device) -> bool {
    d.log
        .iter()
        .any(|n| matches!(n, Notification::MessageReceived { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_signaling_cut_for_ten_seconds_mid_call_the_call_survives_the_message_arrives() {
    init_tracing();
    let Some(lab) = Lab::new_or_skip(&["broker", "alice", "bob"]).unwrap() else {
        return;
    };
    let (broker_host, alice_host, bob_host) = (
        lab.host("broker").unwrap(),
        lab.host("alice").unwrap(),
        lab.host("bob").unwrap(),
    );
    let addr = lab.addr("broker").unwrap();
    // Started from the broker host's thread, the Mosquitto child runs in its namespace.
    let broker = broker_host
        .spawn(async move {
            Mosquitto::start_on(addr, &[("alice", "alice-token"), ("bob", "bob-token")]).await
        })
        .await;
    let mut alice = device_on(&alice_host, &broker, "alice", "a1", 1).await;
    let mut bob = device_on(&bob_host, &broker, "bob", "b1", 2).await;
    alice.wait_link(LinkState::Connected).await;
    bob.wait_link(LinkState::Connected).await;
    alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_state(CallState::Calling).await;
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;

    lab.cut("broker", broker.port()).unwrap();
    let cut_at = tokio::time::Instant::now();
    alice.api.send_message("sent during the cut").await.unwrap();
    // Both ends notice the dead link (keep-alive); reconnect attempts fail while it lasts.
    alice.wait_link_where(|s| *s != LinkState::Connected).await;
    bob.wait_link_where(|s| *s != LinkState::Connected).await;
    eprintln!("both links down {:?} into the cut", cut_at.elapsed());
    tokio::time::sleep_until(cut_at + CUT).await;
    bob.drain();
    alice.drain();
    assert!(!got_message(&bob), "a message crossed the cut");
    assert_eq!(alice.api.state(), CallState::Connected);
    assert_eq!(bob.api.state(), CallState::Connected);
    assert!(!alice.api.link_state().is_connected() && !bob.api.link_state().is_connected());
    let attempts_in_cut = (alice.attempts.len(), bob.attempts.len());
    lab.heal().unwrap();
    let healed = Instant::now();

    // The links come back, the pending message arrives, and the call went on throughout.
    alice.wait_link(LinkState::Connected).await;
    bob.wait_link(LinkState::Connected).await;
    assert_eq!(bob.wait_message().await, "sent during the cut");
    eprintln!(
        "reconnected and delivered {:?} after the heal; connection attempts by then: alice {}, \
         bob {} ({attempts_in_cut:?} at the heal)",
        healed.elapsed(),
        alice.attempts.len(),
        bob.attempts.len()
    );
    assert!(
        attempts_in_cut.0 > 1 && attempts_in_cut.1 > 1,
        "no reconnect attempt in the cut: {attempts_in_cut:?}"
    );
    for d in [&alice, &bob] {
        assert_eq!(d.api.state(), CallState::Connected, "{}", d.user);
        assert!(
            !d.events().contains(&CallEvent::SignalLost),
            "{}: {:#?}",
            d.user,
            d.log
        );
    }
    // Signaling works both ways again: a hang-up reaches the other side.
    bob.api.hangup(None).await.unwrap();
    let end = alice.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::RemoteHangup);
    alice.api.shutdown().await.unwrap();
    bob.api.shutdown().await.unwrap();
    drop(broker);
}
