//! Partitions cut both directions between two users only during their window.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_signal_mock::{FaultPlan, Partition, SimNetwork};
use common::{dev, message, number, user};

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn messages_sent_inside_the_window_are_dropped_in_both_directions() {
    let start = Instant::now();
    let plan = FaultPlan::default().with_partition(Partition::new(
        user("alice"),
        user("bob"),
        secs(2),
        secs(5),
    ));
    let mut net = SimNetwork::new(1, plan, start);
    for (u, d) in [("alice", "a1"), ("bob", "b1"), ("carol", "c1")] {
        net.add_device(user(u), dev(d));
    }
    let mut delivered = Vec::new();
    for second in 0..7u64 {
        let now = start + secs(second);
        net.send(message("alice", "a1", "bob", second * 10, 0, 60_000), now);
        net.send(
            message("bob", "b1", "alice", second * 10 + 1, 0, 60_000),
            now,
        );
        net.send(
            message("alice", "a1", "carol", second * 10 + 2, 0, 60_000),
            now,
        );
        while let Some(d) = net.poll_delivery(now) {
            delivered.push(number(&d.envelope));
        }
    }
    // Seconds 2, 3 and 4 are cut between alice and bob; from 5 (exclusive end) they flow again.
    let expected: Vec<u64> = (0..7u64)
        .flat_map(|s| {
            let cut = (2..5).contains(&s);
            let mut v = Vec::new();
            if !cut {
                v.extend([s * 10, s * 10 + 1]);
            }
            v.push(s * 10 + 2);
            v
        })
        .collect();
    assert_eq!(delivered, expected);
    let stats = net.stats();
    assert_eq!(stats.partitioned, 6);
    assert_eq!(stats.dropped, 6);
    assert_eq!(stats.delivered, 15);
}

#[test]
fn a_message_sent_before_the_window_still_arrives_during_it() {
    let start = Instant::now();
    let plan = FaultPlan::default()
        .with_delay(secs(3), secs(3))
        .with_partition(Partition::new(
            user("alice"),
            user("bob"),
            secs(1),
            secs(10),
        ));
    let mut net = SimNetwork::new(1, plan, start);
    net.add_device(user("bob"), dev("b1"));
    net.send(message("alice", "a1", "bob", 1, 0, 60_000), start);
    let d = net.poll_delivery(start + secs(3)).unwrap();
    assert_eq!(d.at, start + secs(3));
}

#[test]
fn partition_checks_are_symmetric_and_half_open() {
    let p = Partition::new(user("a"), user("b"), secs(1), secs(2));
    assert!(!p.cuts(&user("a"), &user("b"), Duration::from_millis(999)));
    assert!(p.cuts(&user("a"), &user("b"), secs(1)));
    assert!(p.cuts(&user("b"), &user("a"), Duration::from_millis(1_999)));
    assert!(!p.cuts(&user("b"), &user("a"), secs(2)));
    assert!(!p.cuts(&user("a"), &user("c"), Duration::from_millis(1_500)));
}
