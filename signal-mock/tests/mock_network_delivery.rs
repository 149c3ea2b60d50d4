//! `MockNetwork` delivers envelopes to connected clients under tokio's paused clock.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::protocol::{Body, Envelope};
use callapi_core::signal::{LinkState, SignalClient, SignalError, SignalEvent};
use callapi_signal_mock::{FaultPlan, MockNetwork, MockSignalClient};
use common::{dev, message, number, user};
use tokio::time::{timeout, Instant};

const PATIENCE: Duration = Duration::from_secs(600);

/// The next event, failing the test if none comes within (paused) ten minutes.
async fn next(client: &mut MockSignalClient) -> SignalEvent {
    timeout(PATIENCE, client.next_event())
        .await
        .expect("no event")
        .expect("client closed")
}

async fn next_message(client: &mut MockSignalClient) -> Envelope {
    match next(client).await {
        SignalEvent::Message(env) => env,
        other => panic!("expected a message, got {other:?}"),
    }
}

/// Asserts that nothing arrives within `wait` of paused time.
async fn assert_silent(client: &mut MockSignalClient, wait: Duration) {
    if let Ok(event) = timeout(wait, client.next_event()).await {
        panic!("unexpected event {event:?}");
    }
}

async fn connected(net: &MockNetwork, u: &str, d: &str) -> MockSignalClient {
    let mut client = net.connect(user(u), dev(d));
    assert_eq!(
        next(&mut client).await,
        SignalEvent::Link(LinkState::Connected)
    );
    client
}

#[tokio::test(start_paused = true)]
async fn a_client_first_sees_connected_then_messages() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    let env = message("alice", "a1", "bob", 7, net.unix_ms(), 15_000);
    alice.send(env.clone()).await.unwrap();
    assert_eq!(next_message(&mut bob).await, env);
    assert_eq!(net.stats().delivered, 1);
    assert_eq!(alice.user(), &user("alice"));
    assert_eq!(bob.device(), &dev("b1"));
}

#[tokio::test(start_paused = true)]
async fn delayed_copies_arrive_when_paused_time_reaches_them() {
    let plan =
        FaultPlan::default().with_delay(Duration::from_millis(250), Duration::from_millis(250));
    let net = MockNetwork::new(1, plan);
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    let sent_at = Instant::now();
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert!(bob.try_next_event().is_none());
    assert_eq!(number(&next_message(&mut bob).await), 1);
    assert_eq!(sent_at.elapsed(), Duration::from_millis(250));
}

#[tokio::test(start_paused = true)]
async fn manual_advance_releases_delayed_copies() {
    let plan = FaultPlan::default().with_delay(Duration::from_secs(1), Duration::from_secs(1));
    let net = MockNetwork::new(1, plan);
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_millis(999)).await;
    tokio::task::yield_now().await;
    assert!(bob.try_next_event().is_none());
    tokio::time::advance(Duration::from_millis(1)).await;
    tokio::task::yield_now().await;
    assert!(matches!(
        bob.try_next_event(),
        Some(SignalEvent::Message(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn every_device_of_the_recipient_gets_a_copy() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut b1 = connected(&net, "bob", "b1").await;
    let mut b2 = connected(&net, "bob", "b2").await;
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(number(&next_message(&mut b1).await), 1);
    assert_eq!(number(&next_message(&mut b2).await), 1);

    let mut only_b2 = message("alice", "a1", "bob", 2, net.unix_ms(), 15_000);
    only_b2.to_device = Some(dev("b2"));
    alice.send(only_b2).await.unwrap();
    assert_eq!(number(&next_message(&mut b2).await), 2);
    assert_silent(&mut b1, Duration::from_secs(1)).await;
    assert_eq!(net.devices(&user("bob")), vec![dev("b1"), dev("b2")]);
}

#[tokio::test(start_paused = true)]
async fn the_network_stamps_the_sender_identity() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    alice
        .send(message("mallory", "m1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    let got = next_message(&mut bob).await;
    assert_eq!((got.from, got.from_device), (user("alice"), dev("a1")));
}

#[tokio::test(start_paused = true)]
async fn runtime_partitions_cut_until_healed() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    net.partition(&user("bob"), &user("alice"));
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    bob.send(message("bob", "b1", "alice", 2, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_silent(&mut bob, Duration::from_secs(1)).await;
    assert_silent(&mut alice, Duration::from_secs(1)).await;
    net.heal(&user("alice"), &user("bob"));
    alice
        .send(message("alice", "a1", "bob", 3, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(number(&next_message(&mut bob).await), 3);
    assert_eq!(net.stats().partitioned, 2);
}

#[tokio::test(start_paused = true)]
async fn fault_plan_partition_windows_use_time_since_creation() {
    let plan = FaultPlan::default().with_partition(callapi_signal_mock::Partition::new(
        user("alice"),
        user("bob"),
        Duration::from_secs(10),
        Duration::from_secs(20),
    ));
    let net = MockNetwork::new(1, plan);
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    tokio::time::advance(Duration::from_secs(15)).await;
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    alice
        .send(message("alice", "a1", "bob", 2, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(number(&next_message(&mut bob).await), 2);
}

#[tokio::test(start_paused = true)]
async fn set_fault_plan_applies_to_later_sends_and_duplicates_arrive_twice() {
    let net = MockNetwork::new(1, FaultPlan::default().with_drop_rate(1.0));
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_silent(&mut bob, Duration::from_secs(1)).await;

    let dup = FaultPlan::default()
        .with_duplicate_rate(1.0)
        .with_delay(Duration::from_millis(1), Duration::from_millis(40));
    net.set_fault_plan(dup.clone());
    assert_eq!(net.fault_plan(), dup);
    alice
        .send(message("alice", "a1", "bob", 2, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(number(&next_message(&mut bob).await), 2);
    assert_eq!(number(&next_message(&mut bob).await), 2);
    let stats = net.stats();
    assert_eq!(
        (stats.sent, stats.dropped, stats.duplicated, stats.delivered),
        (2, 1, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn a_closed_client_refuses_sends_and_ends_its_events() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    alice.close().await;
    assert_eq!(
        alice
            .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
            .await,
        Err(SignalError::Closed)
    );
    assert_eq!(
        alice.renew_token("t".into()).await,
        Err(SignalError::Closed)
    );
    assert_eq!(alice.next_event().await, None);
    assert!(!net.is_online(&user("alice"), &dev("a1")));
}

#[tokio::test(start_paused = true)]
async fn connecting_a_device_again_replaces_the_old_client() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut old = connected(&net, "bob", "b1").await;
    let mut new = connected(&net, "bob", "b1").await;
    assert_eq!(old.next_event().await, None);
    assert_eq!(
        old.send(message("bob", "b1", "bob", 1, net.unix_ms(), 15_000))
            .await,
        Err(SignalError::Closed)
    );
    new.send(message("bob", "b1", "bob", 2, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(number(&next_message(&mut new).await), 2);
    // Dropping the replaced client does not disconnect the new one.
    drop(old);
    assert!(net.is_online(&user("bob"), &dev("b1")));
}

#[tokio::test(start_paused = true)]
async fn oversized_envelopes_are_rejected() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut env = message("alice", "a1", "bob", 1, net.unix_ms(), 15_000);
    env.body = Body::Message {
        data: "x".repeat(70 * 1024),
    };
    assert!(matches!(
        alice.send(env).await,
        Err(SignalError::Rejected(_))
    ));
    assert_eq!(net.stats().sent, 0);
}

#[tokio::test(start_paused = true)]
async fn tokens_are_renewed_in_band() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.emit_token_will_expire(&user("alice"), &dev("a1"))
        .unwrap();
    assert_eq!(next(&mut alice).await, SignalEvent::TokenWillExpire);
    alice.renew_token("fresh".into()).await.unwrap();
    assert_eq!(
        net.last_token(&user("alice"), &dev("a1")).as_deref(),
        Some("fresh")
    );
}

#[tokio::test(start_paused = true)]
async fn unix_time_follows_paused_time() {
    let net = MockNetwork::new(1, FaultPlan::default());
    net.set_unix_ms(1_000);
    tokio::time::advance(Duration::from_millis(1_500)).await;
    assert_eq!(net.unix_ms(), 2_500);
}

/// Sends 100 messages over a lossy, jittery network and records (number, arrival time).
async fn lossy_run(seed: u64) -> Vec<(u64, Duration)> {
    let plan = FaultPlan::default()
        .with_drop_rate(0.2)
        .with_duplicate_rate(0.1)
        .with_delay(Duration::from_millis(1), Duration::from_millis(300));
    let net = MockNetwork::new(seed, plan);
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    let t0 = Instant::now();
    for i in 0..100 {
        alice
            .send(message("alice", "a1", "bob", i, net.unix_ms(), 15_000))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(5)).await;
    }
    let mut out = Vec::new();
    while let Ok(Some(SignalEvent::Message(env))) =
        timeout(Duration::from_secs(1), bob.next_event()).await
    {
        out.push((number(&env), t0.elapsed()));
    }
    let stats = net.stats();
    assert_eq!(out.len() as u64, stats.delivered);
    out
}

#[tokio::test(start_paused = true)]
async fn same_seed_replays_the_same_arrivals_under_paused_time() {
    let a = lossy_run(77).await;
    assert!(a.len() > 60);
    assert_eq!(a, lossy_run(77).await);
    assert_ne!(a, lossy_run(78).await);
}
