//! Push notifications recorded by `SimNetwork::pushes` and `MockNetwork::pushes`: the router's
//! rule is one push per invite newly kept for a user with no device connected. A
//! retransmission of a kept invite, an invite a device takes at once, a non-invite, an invite
//! that is not kept (expired, refused, unknown recipient) and a copy kept on its way to a
//! device that went offline push nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_core::protocol::{Body, CallId, CallType, Envelope, Extension};
use callapi_core::signal::{LinkState, SignalClient, SignalEvent};
use callapi_signal_mock::{
    FaultPlan, MockNetwork, MockSignalClient, SimNetwork, OFFLINE_LINK_STATE,
};
use common::{dev, message, msg_id, user};
use tokio::time::timeout;

/// An invite from alice's `a1` to bob, sent at `ts`, with message id number `n`.
fn invite(n: u64, ts: u64) -> Envelope {
    Envelope {
        v: 1,
        id: msg_id(n),
        ts,
        from: user("alice"),
        from_device: dev("a1"),
        to: user("bob"),
        to_device: None,
        call_id: CallId::from_random_bytes([n as u8; 16]),
        lifetime_ms: 30_000,
        body: Body::Invite {
            room_id: "alice-room".into(),
            call_type: CallType::Audio,
            extension: Extension::new(),
            members: None,
        },
    }
}

// ---- SimNetwork ----

/// A network with alice's `a1` online and bob's `b1` registered and offline.
fn sim_bob_offline() -> (SimNetwork, Instant) {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("alice"), dev("a1"));
    net.set_online(user("bob"), dev("b1"), false, start);
    (net, start)
}

#[test]
fn sim_an_invite_to_an_offline_user_records_one_push() {
    let (mut net, start) = sim_bob_offline();
    let env = invite(1, net.unix_ms(start));
    net.send(env.clone(), start);
    let pushes = net.pushes();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].user, user("bob"));
    assert_eq!(pushes[0].message, env);
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
}

#[test]
fn sim_a_retransmitted_invite_records_no_second_push() {
    let (mut net, start) = sim_bob_offline();
    let env = invite(1, net.unix_ms(start));
    net.send(env.clone(), start);
    net.send(env.clone(), start + Duration::from_secs(3));
    assert_eq!(net.pushes().len(), 1);
    // Kept once: bob's device gets the invite once when it comes back.
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    let back = start + Duration::from_secs(4);
    net.set_online(user("bob"), dev("b1"), true, back);
    let got = net.poll_delivery(back).expect("the kept invite");
    assert_eq!(got.envelope, env);
    assert!(net.poll_delivery(back).is_none());
}

#[test]
fn sim_another_invite_while_offline_records_its_own_push() {
    let (mut net, start) = sim_bob_offline();
    net.send(invite(1, net.unix_ms(start)), start);
    net.send(invite(2, net.unix_ms(start)), start);
    let ids: Vec<_> = net.pushes().iter().map(|p| p.message.id).collect();
    assert_eq!(ids, vec![msg_id(1), msg_id(2)]);
}

#[test]
fn sim_an_invite_to_an_online_user_records_none() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("alice"), dev("a1"));
    net.add_device(user("bob"), dev("b1"));
    net.send(invite(1, net.unix_ms(start)), start);
    assert!(net.pushes().is_empty());
    assert!(net.poll_delivery(start).is_some());
}

#[test]
fn sim_an_invite_kept_for_one_device_while_another_is_online_records_none() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("alice"), dev("a1"));
    net.add_device(user("bob"), dev("b1"));
    net.set_online(user("bob"), dev("b2"), false, start);
    net.send(invite(1, net.unix_ms(start)), start);
    assert_eq!(net.stored(&user("bob"), &dev("b2")), 1);
    assert!(net.pushes().is_empty());
}

#[test]
fn sim_a_non_invite_to_an_offline_user_records_none() {
    let (mut net, start) = sim_bob_offline();
    net.send(
        message("alice", "a1", "bob", 1, net.unix_ms(start), 15_000),
        start,
    );
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    assert!(net.pushes().is_empty());
}

#[test]
fn sim_an_invite_that_is_not_kept_records_none() {
    let (mut net, start) = sim_bob_offline();
    // Expired before it was sent.
    let now = start + Duration::from_secs(60);
    net.send(invite(1, net.unix_ms(start)), now);
    // To nobody the network knows.
    let mut nobody = invite(2, net.unix_ms(now));
    nobody.to = user("nobody");
    net.send(nobody, now);
    // Refused: offline envelopes are not kept.
    net.set_store_offline(false);
    net.send(invite(3, net.unix_ms(now)), now);
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 0);
    assert!(net.pushes().is_empty());
    let stats = net.stats();
    assert_eq!(
        (
            stats.expired_offline,
            stats.unknown_recipient,
            stats.dropped
        ),
        (1, 1, 2)
    );
}

#[test]
fn sim_a_delayed_invite_kept_for_a_device_gone_offline_records_none() {
    let start = Instant::now();
    let plan = FaultPlan::default().with_delay(Duration::from_secs(1), Duration::from_secs(1));
    let mut net = SimNetwork::new(1, plan, start);
    net.add_device(user("alice"), dev("a1"));
    net.add_device(user("bob"), dev("b1"));
    net.send(invite(1, net.unix_ms(start)), start);
    net.set_online(user("bob"), dev("b1"), false, start);
    assert!(net.poll_delivery(start + Duration::from_secs(2)).is_none());
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    assert!(net.pushes().is_empty());
}

// ---- MockNetwork ----

const PATIENCE: Duration = Duration::from_secs(600);

async fn next(client: &mut MockSignalClient) -> SignalEvent {
    timeout(PATIENCE, client.next_event())
        .await
        .expect("no event")
        .expect("client closed")
}

async fn connected(net: &MockNetwork, u: &str, d: &str) -> MockSignalClient {
    let mut client = net.connect(user(u), dev(d));
    assert_eq!(
        next(&mut client).await,
        SignalEvent::Link(LinkState::Connected)
    );
    client
}

/// The invite as bob receives it: the network stamps alice's identity (as `invite` has it).
fn sent(net: &MockNetwork, n: u64) -> Envelope {
    invite(n, net.unix_ms())
}

#[tokio::test(start_paused = true)]
async fn mock_an_invite_to_an_offline_user_records_one_push() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.register(user("bob"), dev("b1"));
    let env = sent(&net, 1);
    alice.send(env.clone()).await.unwrap();
    let pushes = net.pushes();
    assert_eq!(pushes.len(), 1);
    assert_eq!(pushes[0].user, user("bob"));
    assert_eq!(pushes[0].message, env);
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
}

#[tokio::test(start_paused = true)]
async fn mock_a_retransmitted_invite_records_no_second_push() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.register(user("bob"), dev("b1"));
    let env = sent(&net, 1);
    alice.send(env.clone()).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    alice.send(env.clone()).await.unwrap();
    assert_eq!(net.pushes().len(), 1);
    // Kept once: bob's device gets the invite once when it connects.
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    let mut bob = connected(&net, "bob", "b1").await;
    assert_eq!(next(&mut bob).await, SignalEvent::Message(env));
    assert!(bob.try_next_event().is_none());
}

#[tokio::test(start_paused = true)]
async fn mock_another_invite_while_offline_records_its_own_push() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.register(user("bob"), dev("b1"));
    alice.send(sent(&net, 1)).await.unwrap();
    alice.send(sent(&net, 2)).await.unwrap();
    let ids: Vec<_> = net.pushes().iter().map(|p| p.message.id).collect();
    assert_eq!(ids, vec![msg_id(1), msg_id(2)]);
}

#[tokio::test(start_paused = true)]
async fn mock_an_invite_to_an_online_user_records_none() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    let env = sent(&net, 1);
    alice.send(env.clone()).await.unwrap();
    assert_eq!(next(&mut bob).await, SignalEvent::Message(env));
    assert!(net.pushes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn mock_an_invite_kept_for_one_device_while_another_is_online_records_none() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    let mut b1 = connected(&net, "bob", "b1").await;
    net.register(user("bob"), dev("b2"));
    alice.send(sent(&net, 1)).await.unwrap();
    assert!(matches!(next(&mut b1).await, SignalEvent::Message(_)));
    assert_eq!(net.stored(&user("bob"), &dev("b2")), 1);
    assert!(net.pushes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn mock_a_non_invite_to_an_offline_user_records_none() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.register(user("bob"), dev("b1"));
    alice
        .send(message("alice", "a1", "bob", 1, net.unix_ms(), 15_000))
        .await
        .unwrap();
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    assert!(net.pushes().is_empty());
}

#[tokio::test(start_paused = true)]
async fn mock_a_device_with_its_link_down_or_its_client_gone_counts_as_offline() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    // Link down, client still attached: offline.
    let mut bob = connected(&net, "bob", "b1").await;
    net.set_online(user("bob"), dev("b1"), false);
    assert_eq!(next(&mut bob).await, SignalEvent::Link(OFFLINE_LINK_STATE));
    let first = sent(&net, 1);
    alice.send(first.clone()).await.unwrap();
    assert_eq!(net.pushes().len(), 1);
    // Link up again: online, the kept invite arrives, a new invite is delivered, no push.
    net.set_online(user("bob"), dev("b1"), true);
    assert_eq!(
        next(&mut bob).await,
        SignalEvent::Link(LinkState::Connected)
    );
    assert_eq!(next(&mut bob).await, SignalEvent::Message(first));
    let second = sent(&net, 2);
    alice.send(second.clone()).await.unwrap();
    assert_eq!(next(&mut bob).await, SignalEvent::Message(second));
    assert_eq!(net.pushes().len(), 1);
    // Client closed, link up: offline.
    bob.close().await;
    alice.send(sent(&net, 3)).await.unwrap();
    let ids: Vec<_> = net.pushes().iter().map(|p| p.message.id).collect();
    assert_eq!(ids, vec![msg_id(1), msg_id(3)]);
}

#[tokio::test(start_paused = true)]
async fn mock_an_invite_that_is_not_kept_records_none() {
    let net = MockNetwork::new(1, FaultPlan::default());
    let mut alice = connected(&net, "alice", "a1").await;
    net.register(user("bob"), dev("b1"));
    // Expired before it was sent.
    let old = sent(&net, 1);
    tokio::time::advance(Duration::from_secs(60)).await;
    alice.send(old).await.unwrap();
    // To nobody the network knows.
    let mut nobody = sent(&net, 2);
    nobody.to = user("nobody");
    alice.send(nobody).await.unwrap();
    // Refused: offline envelopes are not kept.
    net.set_store_offline(false);
    alice.send(sent(&net, 3)).await.unwrap();
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 0);
    assert!(net.pushes().is_empty());
    let stats = net.stats();
    assert_eq!(
        (
            stats.expired_offline,
            stats.unknown_recipient,
            stats.dropped
        ),
        (1, 1, 2)
    );
}

#[tokio::test(start_paused = true)]
async fn mock_a_delayed_invite_kept_for_a_device_gone_offline_records_none() {
    let plan = FaultPlan::default().with_delay(Duration::from_secs(1), Duration::from_secs(1));
    let net = MockNetwork::new(1, plan);
    let mut alice = connected(&net, "alice", "a1").await;
    let mut bob = connected(&net, "bob", "b1").await;
    alice.send(sent(&net, 1)).await.unwrap();
    net.set_online(user("bob"), dev("b1"), false);
    assert!(matches!(next(&mut bob).await, SignalEvent::Link(_)));
    tokio::time::advance(Duration::from_secs(2)).await;
    tokio::task::yield_now().await;
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);
    assert!(net.pushes().is_empty());
}
