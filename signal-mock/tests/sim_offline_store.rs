//! Envelopes for offline devices are stored until their lifetime ends and delivered when the
//! device comes back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_core::protocol::Body;
use callapi_signal_mock::{FaultPlan, SimNetwork, DEFAULT_ANCHOR_MS};
use common::{dev, message, number, user};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn drain(net: &mut SimNetwork, now: Instant) -> Vec<(String, u64)> {
    std::iter::from_fn(|| net.poll_delivery(now))
        .map(|d| (d.device.to_string(), number(&d.envelope)))
        .collect()
}

#[test]
fn stored_envelopes_arrive_when_the_device_comes_online() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("bob"), dev("b1"));
    net.add_device(user("bob"), dev("b2"));
    net.set_online(user("bob"), dev("b2"), false, start);
    assert!(!net.is_online(&user("bob"), &dev("b2")));

    net.send(
        message("alice", "a1", "bob", 1, net.unix_ms(start), 15_000),
        start,
    );
    assert_eq!(drain(&mut net, start), vec![("b1".into(), 1)]);
    assert_eq!(net.stored(&user("bob"), &dev("b2")), 1);

    let later = start + secs(10);
    net.set_online(user("bob"), dev("b2"), true, later);
    assert_eq!(net.stored(&user("bob"), &dev("b2")), 0);
    assert_eq!(drain(&mut net, later), vec![("b2".into(), 1)]);
    let stats = net.stats();
    assert_eq!(
        (stats.stored_offline, stats.delivered, stats.expired_offline),
        (1, 2, 0)
    );
}

#[test]
fn stored_envelopes_expire_with_their_lifetime() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.set_online(user("bob"), dev("b1"), false, start);
    let ts = net.unix_ms(start);
    assert_eq!(ts, DEFAULT_ANCHOR_MS);
    net.send(message("alice", "a1", "bob", 1, ts, 5_000), start);
    net.send(message("alice", "a1", "bob", 2, ts, 30_000), start);

    // 5 s is still within the lifetime (expired means strictly after ts + lifetime).
    let back = start + secs(6);
    net.set_online(user("bob"), dev("b1"), true, back);
    assert_eq!(drain(&mut net, back), vec![("b1".into(), 2)]);
    assert_eq!(net.stats().expired_offline, 1);
}

#[test]
fn an_already_expired_envelope_is_not_stored() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.set_anchor_ms(1_000_000);
    net.set_online(user("bob"), dev("b1"), false, start);
    net.send(message("alice", "a1", "bob", 1, 1, 1_000), start);
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 0);
    assert_eq!(net.stats().expired_offline, 1);
}

#[test]
fn online_devices_get_expired_envelopes_the_receiver_decides() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("bob"), dev("b1"));
    net.send(message("alice", "a1", "bob", 1, 0, 1), start);
    assert_eq!(drain(&mut net, start), vec![("b1".into(), 1)]);
}

#[test]
fn without_store_offline_envelopes_for_offline_devices_are_lost() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.set_store_offline(false);
    net.set_online(user("bob"), dev("b1"), false, start);
    net.send(
        message("alice", "a1", "bob", 1, net.unix_ms(start), 15_000),
        start,
    );
    net.set_online(user("bob"), dev("b1"), true, start);
    assert!(drain(&mut net, start).is_empty());
    assert_eq!(net.stats().dropped, 1);
}

#[test]
fn a_delayed_copy_for_a_device_that_went_offline_is_stored() {
    let start = Instant::now();
    let plan = FaultPlan::default().with_delay(secs(1), secs(1));
    let mut net = SimNetwork::new(1, plan, start);
    net.add_device(user("bob"), dev("b1"));
    net.send(
        message("alice", "a1", "bob", 1, net.unix_ms(start), 15_000),
        start,
    );
    net.set_online(
        user("bob"),
        dev("b1"),
        false,
        start + Duration::from_millis(500),
    );
    assert!(drain(&mut net, start + secs(2)).is_empty());
    assert_eq!(net.stored(&user("bob"), &dev("b1")), 1);

    // Re-sent through the fault plan when back: one more second of delay.
    let back = start + secs(3);
    net.set_online(user("bob"), dev("b1"), true, back);
    assert_eq!(net.next_delivery_at(), Some(back + secs(1)));
    assert_eq!(drain(&mut net, back + secs(1)), vec![("b1".into(), 1)]);
}

#[test]
fn unknown_recipients_and_offline_senders_lose_the_envelope() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("alice"), dev("a1"));
    net.add_device(user("bob"), dev("b1"));
    net.send(message("alice", "a1", "nobody", 1, 0, 15_000), start);
    let mut to_missing_device = message("alice", "a1", "bob", 2, 0, 15_000);
    to_missing_device.to_device = Some(dev("b9"));
    net.send(to_missing_device, start);
    net.set_online(user("alice"), dev("a1"), false, start);
    net.send(message("alice", "a1", "bob", 3, 0, 15_000), start);
    assert!(drain(&mut net, start).is_empty());
    let stats = net.stats();
    assert_eq!(stats.sent, 3);
    assert_eq!(stats.unknown_recipient, 2);
    assert_eq!(stats.sender_offline, 1);
    assert_eq!(stats.dropped, 3);
}

#[test]
fn to_device_reaches_only_that_device() {
    let start = Instant::now();
    let mut net = SimNetwork::new(1, FaultPlan::default(), start);
    net.add_device(user("bob"), dev("b1"));
    net.add_device(user("bob"), dev("b2"));
    let mut ack = message("alice", "a1", "bob", 1, 0, 15_000);
    ack.to_device = Some(dev("b2"));
    assert!(matches!(ack.body, Body::Message { .. }));
    net.send(ack, start);
    assert_eq!(drain(&mut net, start), vec![("b2".into(), 1)]);
    assert_eq!(net.devices(&user("bob")), vec![dev("b1"), dev("b2")]);
}
