//! A seeded `SimNetwork` replays exactly; different seeds give different runs; it is fast.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_signal_mock::{FaultPlan, SimNetwork};
use common::{dev, message, number, user};

fn lossy_plan() -> FaultPlan {
    FaultPlan::default()
        .with_drop_rate(0.1)
        .with_duplicate_rate(0.1)
        .with_delay(Duration::from_millis(5), Duration::from_millis(120))
        .with_reorder_rate(0.1)
}

/// Runs a two-way exchange and returns every delivery as (device, number, time since start).
fn run(seed: u64, start: Instant, messages: u64) -> Vec<(String, u64, Duration)> {
    let mut net = SimNetwork::new(seed, lossy_plan(), start);
    net.add_device(user("alice"), dev("a1"));
    net.add_device(user("bob"), dev("b1"));
    net.add_device(user("bob"), dev("b2"));
    let mut out = Vec::new();
    let mut now = start;
    for i in 0..messages {
        now += Duration::from_millis(7);
        let (from, fd, to) = if i % 3 == 0 {
            ("bob", "b1", "alice")
        } else {
            ("alice", "a1", "bob")
        };
        net.send(message(from, fd, to, i, net.unix_ms(now), 15_000), now);
        while let Some(d) = net.poll_delivery(now) {
            assert!(d.at <= now);
            out.push((d.device.to_string(), number(&d.envelope), d.at - start));
        }
    }
    while let Some(at) = net.next_delivery_at() {
        while let Some(d) = net.poll_delivery(at) {
            out.push((d.device.to_string(), number(&d.envelope), d.at - start));
        }
    }
    out
}

#[test]
fn same_seed_gives_the_identical_delivery_sequence() {
    let start = Instant::now();
    let a = run(1234, start, 300);
    // A different start instant does not matter: only offsets from it do.
    let b = run(1234, start + Duration::from_secs(100), 300);
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
fn different_seeds_give_different_sequences() {
    let start = Instant::now();
    assert_ne!(run(1, start, 300), run(2, start, 300));
}

#[test]
fn deliveries_come_out_in_time_order() {
    let start = Instant::now();
    let deliveries = run(99, start, 300);
    assert!(deliveries.windows(2).all(|w| w[0].2 <= w[1].2));
}

#[test]
fn ties_are_broken_by_scheduling_order() {
    let start = Instant::now();
    let mut net = SimNetwork::new(0, FaultPlan::default(), start);
    net.add_device(user("bob"), dev("b1"));
    for i in 0..50 {
        net.send(message("alice", "a1", "bob", i, 0, 15_000), start);
    }
    let got: Vec<u64> = std::iter::from_fn(|| net.poll_delivery(start))
        .map(|d| number(&d.envelope))
        .collect();
    assert_eq!(got, (0..50).collect::<Vec<_>>());
}

#[test]
fn ten_thousand_scenarios_of_hundreds_of_messages_run_quickly() {
    let start = Instant::now();
    let wall = Instant::now();
    let mut delivered = 0u64;
    for seed in 0..10_000u64 {
        let mut net = SimNetwork::new(seed, lossy_plan(), start);
        net.add_device(user("alice"), dev("a1"));
        net.add_device(user("bob"), dev("b1"));
        let mut now = start;
        for i in 0..200u64 {
            now += Duration::from_millis(3);
            net.send(message("alice", "a1", "bob", i, 0, 15_000), now);
            while net.poll_delivery(now).is_some() {}
        }
        while let Some(at) = net.next_delivery_at() {
            while net.poll_delivery(at).is_some() {}
        }
        delivered += net.stats().delivered;
    }
    assert!(delivered > 10_000 * 150);
    let took = wall.elapsed();
    // Generous bound for slow CI machines; typically well under a few seconds.
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
