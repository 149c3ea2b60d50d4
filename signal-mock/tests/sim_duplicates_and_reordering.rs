//! Duplicated copies arrive twice; random delays and hold-backs reorder messages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use callapi_signal_mock::{FaultPlan, SimNetwork};
use common::{dev, message, number, user};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn deliver_all(net: &mut SimNetwork) -> Vec<u64> {
    let mut out = Vec::new();
    while let Some(at) = net.next_delivery_at() {
        while let Some(d) = net.poll_delivery(at) {
            out.push(number(&d.envelope));
        }
    }
    out
}

#[test]
fn duplicated_envelopes_arrive_twice_and_are_counted() {
    let start = Instant::now();
    let plan = FaultPlan::default()
        .with_duplicate_rate(0.5)
        .with_delay(ms(0), ms(30));
    let mut net = SimNetwork::new(8, plan, start);
    net.add_device(user("bob"), dev("b1"));
    for i in 0..1_000 {
        net.send(message("alice", "a1", "bob", i, 0, 15_000), start);
    }
    let got = deliver_all(&mut net);
    let mut counts: HashMap<u64, usize> = HashMap::new();
    for n in &got {
        *counts.entry(*n).or_default() += 1;
    }
    assert_eq!(counts.len(), 1_000);
    assert!(counts.values().all(|c| *c == 1 || *c == 2));
    let twice = counts.values().filter(|c| **c == 2).count() as u64;
    let stats = net.stats();
    assert_eq!(stats.duplicated, twice);
    assert_eq!(stats.delivered, 1_000 + twice);
    assert!((400..=600).contains(&twice), "{twice} duplicated");
}

#[test]
fn random_delays_reorder_messages() {
    let start = Instant::now();
    let plan = FaultPlan::default().with_delay(ms(10), ms(200));
    let mut net = SimNetwork::new(4, plan, start);
    net.add_device(user("bob"), dev("b1"));
    for i in 0..100 {
        net.send(
            message("alice", "a1", "bob", i, 0, 15_000),
            start + ms(5 * i),
        );
    }
    let got = deliver_all(&mut net);
    assert_eq!(got.len(), 100);
    let inversions = got.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 10, "only {inversions} inversions");
    let mut sorted = got.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..100).collect::<Vec<_>>());
}

#[test]
fn reorder_rate_alone_lets_later_messages_overtake() {
    let start = Instant::now();
    let plan = FaultPlan::default().with_reorder_rate(0.3);
    let mut net = SimNetwork::new(4, plan, start);
    net.add_device(user("bob"), dev("b1"));
    for i in 0..100 {
        net.send(
            message("alice", "a1", "bob", i, 0, 15_000),
            start + ms(2 * i),
        );
    }
    let got = deliver_all(&mut net);
    assert_eq!(got.len(), 100);
    assert!(got.windows(2).any(|w| w[0] > w[1]));
}

#[test]
fn a_perfect_network_keeps_order() {
    let start = Instant::now();
    let mut net = SimNetwork::new(4, FaultPlan::none(), start);
    net.add_device(user("bob"), dev("b1"));
    for i in 0..100 {
        net.send(message("alice", "a1", "bob", i, 0, 15_000), start + ms(i));
    }
    assert_eq!(deliver_all(&mut net), (0..100).collect::<Vec<_>>());
}
