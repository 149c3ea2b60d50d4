//! Taking devices offline and back: link events, refused sends, stored and expired envelopes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use callapi_core::signal::{LinkState, SignalClient, SignalError, SignalEvent};
use callapi_signal_mock::{FaultPlan, MockNetwork, MockSignalClient, OFFLINE_LINK_STATE};
use common::{dev, message, number, user};
use tokio::time::timeout;

async fn next(client: &mut MockSignalClient) -> SignalEvent {
    timeout(Duration::from_secs(600), client.next_event())
        .await
        .expect("no event")
        .expect("client closed")
}

async fn next_number(client: &mut MockSignalClient) -> u64 {
    match next(client).await {
        SignalEvent::Message(env) => number(&env),
        other => panic!("expected a message, got {other:?}"),
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
async fn offline_then_online_reports_link_states_and_delivers_stored_envelopes() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;

    net.set_online(user("bob"), dev("b1"), false);
    assert_eq!(next(&mut bob).await, SignalEvent::Link(OFFLINE_LINK_STATE));
    assert!(!net.is_online(&user("bob"), &dev("b1")));
    assert_eq!(
        bob.send(message("bob", "b1", "alice", 9, net.unix_ms(), 15_000))
            .await,
        Err(SignalError::NotConnected)
    );
    assert_eq!(
        bob.renew_token("t".into()).await,
        Err(SignalError::NotConnected)
    );

    for n in 1..=3 {
        alice
            .send(message("alice", "a1", "bob", n, net.unix_ms(), 15_000))
            .await
            .unwrap();
    }
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 3);
    assert!(timeout(Duration::from_secs(5), bob.next_event())
        .await
        .is_err());

    net.set_online(user("bob"), dev("b1"), true);
    assert_eq!(
        next(&mut bob).await,
        SignalEvent::Link(LinkState::Connected)
    );
    for n in 1..=3 {
        assert_eq!(next_number(&mut bob).await, n);
    }
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 0);
    assert_eq!(net.stats().stored_offline, 3);
    // Setting the same state again reports nothing.
    net.set_online(user("bob"), dev("b1"), true);
    assert!(bob.try_next_event().is_none());
}

#[tokio::test(start_paused = true)]
async fn envelopes_whose_lifetime_ends_offline_are_discarded() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    net.set_online(user("bob"), dev("b1"), false);
    assert_eq!(next(&mut bob).await, SignalEvent::Link(OFFLINE_LINK_STATE));
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 5_000))
        .await
        .unwrap();
    alice
        .send(message("alice", "a1", "bob", 2, net.unix_ms(), 30_000))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    net.set_online(user("bob"), dev("b1"), true);
    assert_eq!(
        next(&mut bob).await,
        SignalEvent::Link(LinkState::Connected)
    );
    assert_eq!(next_number(&mut bob).await, 2);
    assert!(bob.try_next_event().is_none());
    assert_eq!(net.stats().expired_offline, 1);
}

#[tokio::test(start_paused = true)]
async fn a_registered_device_gets_its_queue_when_it_connects() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.register(user("bob"), dev("b1"));
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    let mut bob = connected(&net, "bob", "b1").await;
    assert_eq!(next_number(&mut bob).await, 1);
}

#[tokio::test(start_paused = true)]
async fn unknown_users_lose_their_envelopes() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    alice
        .send(message("alice", "a1", "nobody", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    let stats = net.stats();
    assert_eq!((stats.unknown_recipient, stats.dropped), (1, 1));
}

#[tokio::test(start_paused = true)]
async fn a_closed_device_stores_and_a_reconnect_delivers() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    bob.close().await;
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    let mut bob = connected(&net, "bob", "b1").await;
    assert_eq!(next_number(&mut bob).await, 1);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_client_counts_as_offline() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    drop(connected(&net, "bob", "b1").await);
    assert!(!net.is_online(&user("bob"), &dev("b1")));
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
}

#[tokio::test(start_paused = true)]
async fn a_device_set_offline_before_connecting_starts_reconnecting() {
    let net = MockNetwork::new(1, FaultPlan::default());
    net.set_online(user("bob"), dev("b1"), false);
    let mut bob = net.connect(user("bob"), dev("b1"));
    assert_eq!(next(&mut bob).await, SignalEvent::Link(OFFLINE_LINK_STATE));
    net.set_online(user("bob"), dev("b1"), true);
    assert_eq!(
        next(&mut bob).await,
        SignalEvent::Link(LinkState::Connected)
    );
}

#[tokio::test(start_paused = true)]
async fn a_delayed_copy_for_a_device_gone_offline_waits_in_the_store() {
    let plan = FaultPlan::default().with_delay(Duration::from_secs(1), Duration::from_secs(1));
    let net = MockNetwork::new(1, plan);
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    net.set_online(user("bob"), dev("b1"), false);
    assert_eq!(next(&mut bob).await, SignalEvent::Link(OFFLINE_LINK_STATE));
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    net.set_online(user("bob"), dev("b1"), true);
    assert_eq!(
        next(&mut bob).await,
        SignalEvent::Link(LinkState::Connected)
    );
    assert_eq!(next_number(&mut bob).await, 1);
}

#[tokio::test(start_paused = true)]
async fn without_store_offline_nothing_waits() {
    let net = MockNetwork::new(1, FaultPlan::default());
    net.set_store_offline(false);
    let mut alice = connected(&net, "alice", "a1").await;
    net.set_online(user("bob"), dev("b1"), false);
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 0);
    assert_eq!(net.stats().dropped, 1);
}
