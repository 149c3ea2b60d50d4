//! Mosquitto is killed (SIGKILL) and restarted in the middle of a connected call: both sides
//! reconnect on the core supervisor's schedule — one attempt each at the scheduled instant, no
//! tight loop — and the call goes on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::call::{CallState, StateReason};
use callapi_core::protocol::CallType;
use callapi_core::signal::LinkState;
use common::*;
use tokio::time::Instant;

/// The supervisor's reconnect offsets after a drop, for a device whose first connection went
/// through at once: draw 2 is the first reconnect's jitter, draw 3 the second's (+ 3 s).
fn reconnect_offsets(seed: u64) -> [Duration; 2] {
    let d = jitter_draws(seed, 4);
    [d[2], Duration::from_secs(3) + d[3]]
}

#[tokio::test]
async fn both_sides_reconnect_on_schedule_and_the_call_goes_on() {
    init_tracing();
    let mut broker = Mosquitto::start(&[("alice", "alice-token"), ("bob", "bob-token")]).await;
    // First connections at once; first reconnect 0.6–1.2 s (alice) and 1.2–1.8 s (bob) after
    // the drop, which leaves Mosquitto time to come back.
    let a_seed = seed_where(&[(2, 600, 1200)]);
    let b_seed = seed_where(&[(2, 1200, 1800)]);
    let mut alice = Device::start(broker.mqtt_config(), "alice", "a1", "alice-token", a_seed).await;
    let mut bob = Device::start(broker.mqtt_config(), "bob", "b1", "bob-token", b_seed).await;
    alice.wait_link(LinkState::Connected).await;
    bob.wait_link(LinkState::Connected).await;

    alice.api.call("bob", CallType::Video).await.unwrap();
    bob.wait_state(CallState::Calling).await;
    bob.api.accept().await.unwrap();
    alice.wait_state(CallState::Connected).await;
    bob.wait_state(CallState::Connected).await;

    let killed_at = Instant::now();
    broker.kill();
    for d in [&mut alice, &mut bob] {
        let s = d
            .wait_link_where(|s| matches!(s, LinkState::Reconnecting { .. }))
            .await;
        assert!(
            matches!(s, LinkState::Reconnecting { attempt: 1, .. }),
            "{s:?}"
        );
    }
    broker.restart().await;
    alice.wait_link(LinkState::Connected).await;
    bob.wait_link(LinkState::Connected).await;

    for (d, seed) in [(&alice, a_seed), (&bob, b_seed)] {
        let after: Vec<_> = d
            .attempts
            .all()
            .into_iter()
            .filter(|a| a.at > killed_at)
            .collect();
        // The first scheduled attempt normally finds Mosquitto back; a slow restart may cost
        // the second one (3 s later). Never more, never sooner than scheduled.
        assert!(
            (1..=2).contains(&after.len()),
            "{}: {} attempts after the kill: {after:?}",
            d.user,
            after.len()
        );
        assert!(after.last().unwrap().result.is_ok());
        for (k, a) in after.iter().enumerate() {
            let offset = a.at - killed_at;
            let planned = reconnect_offsets(seed)[k];
            assert!(
                offset >= planned && offset < planned + Duration::from_millis(500),
                "{}: attempt {k} at +{offset:?}, scheduled at +{planned:?}",
                d.user
            );
        }
    }
    broker.assert_count(&connected_line("alice", "a1"), 2).await;
    broker.assert_count(&connected_line("bob", "b1"), 2).await;

    // The call survived the outage: no state change, and messages flow both ways.
    assert_eq!(alice.api.state(), CallState::Connected);
    assert_eq!(bob.api.state(), CallState::Connected);
    alice.api.send_message("still there?").await.unwrap();
    assert_eq!(bob.wait_message().await, "still there?");
    bob.api.send_message("yes").await.unwrap();
    assert_eq!(alice.wait_message().await, "yes");
    bob.api.hangup(None).await.unwrap();
    let end = alice.wait_state(CallState::Prepared).await;
    assert_eq!(end.reason, StateReason::RemoteHangup);
    for d in [&mut alice, &mut bob] {
        d.drain();
        let states = d.states();
        assert_eq!(
            states
                .iter()
                .filter(|s| **s == CallState::Connected)
                .count(),
            1,
            "{}: {states:?}",
            d.user
        );
    }
}
