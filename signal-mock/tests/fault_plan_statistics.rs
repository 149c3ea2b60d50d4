//! The fault plan's rates and delays hold statistically, with a seeded generator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use callapi_signal_mock::{FaultPlan, FaultPlanError, Partition, SimNetwork, REORDER_FLOOR};
use common::{dev, message, user};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

const N: u64 = 10_000;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn drop_rate_of_30_percent_drops_27_to_33_percent_of_sends() {
    let start = Instant::now();
    let mut net = SimNetwork::new(11, FaultPlan::default().with_drop_rate(0.3), start);
    net.add_device(user("bob"), dev("b1"));
    for i in 0..N {
        net.send(
            message("alice", "a1", "bob", i, net.unix_ms(start), 15_000),
            start,
        );
    }
    while net.poll_delivery(start).is_some() {}
    let stats = net.stats();
    assert_eq!(stats.sent, N);
    assert!(
        (2_700..=3_300).contains(&stats.dropped),
        "dropped {} of {N}",
        stats.dropped
    );
    assert_eq!(stats.delivered + stats.dropped, N);
}

#[test]
fn duplicate_rate_duplicates_that_share_of_deliveries() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let plan = FaultPlan::default().with_duplicate_rate(0.2);
    let copies: usize = (0..N).map(|_| plan.fate(&mut rng).len()).sum();
    let dups = copies - N as usize;
    assert!((1_800..=2_200).contains(&dups), "{dups} duplicates");
}

#[test]
fn delays_are_uniform_within_the_range() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let plan = FaultPlan::default().with_delay(ms(10), ms(110));
    let delays: Vec<Duration> = (0..N).flat_map(|_| plan.fate(&mut rng)).collect();
    assert_eq!(delays.len(), N as usize);
    assert!(delays.iter().all(|d| (ms(10)..=ms(110)).contains(d)));
    let mean = delays.iter().sum::<Duration>() / N as u32;
    assert!((ms(57)..=ms(63)).contains(&mean), "mean delay {mean:?}");
    let low = delays.iter().filter(|d| **d < ms(60)).count();
    assert!((4_700..=5_300).contains(&low), "{low} below the median");
}

#[test]
fn reordered_copies_are_held_back_beyond_the_normal_range() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let plan = FaultPlan::default()
        .with_delay(ms(0), ms(50))
        .with_reorder_rate(0.25);
    let delays: Vec<Duration> = (0..N).flat_map(|_| plan.fate(&mut rng)).collect();
    assert!(delays.iter().all(|d| *d <= ms(150)));
    // A held-back copy adds 1..=100 ms, so about 3/4 of them end beyond 50 ms.
    let beyond = delays.iter().filter(|d| **d > ms(50)).count();
    assert!(
        (1_600..=2_200).contains(&beyond),
        "{beyond} beyond max_delay"
    );

    // Without a delay range the hold-back is up to REORDER_FLOOR.
    let plan = FaultPlan::default().with_reorder_rate(1.0);
    for _ in 0..1_000 {
        let d = plan.fate(&mut rng)[0];
        assert!(d >= ms(1) && d <= REORDER_FLOOR, "{d:?}");
    }
}

#[test]
fn total_loss_and_total_duplication_are_exact() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let all_lost = FaultPlan::default().with_drop_rate(1.0);
    let all_twice = FaultPlan::default().with_duplicate_rate(1.0);
    for _ in 0..1_000 {
        assert!(all_lost.fate(&mut rng).is_empty());
        assert_eq!(all_twice.fate(&mut rng).len(), 2);
    }
}

#[test]
fn validate_names_the_faulty_field() {
    assert_eq!(FaultPlan::none().validate(), Ok(()));
    assert_eq!(
        FaultPlan::default().with_duplicate_rate(-0.1).validate(),
        Err(FaultPlanError::RateOutOfRange {
            field: "duplicate_rate",
            value: -0.1
        })
    );
    assert!(matches!(
        FaultPlan::default().with_reorder_rate(f64::NAN).validate(),
        Err(FaultPlanError::RateOutOfRange {
            field: "reorder_rate",
            ..
        })
    ));
    assert_eq!(
        FaultPlan::default().with_delay(ms(5), ms(1)).validate(),
        Err(FaultPlanError::DelayRangeInverted {
            min: ms(5),
            max: ms(1)
        })
    );
    let inverted = Partition::new(user("a"), user("b"), ms(10), ms(5));
    assert!(matches!(
        FaultPlan::default()
            .with_partition(Partition::new(user("a"), user("b"), ms(0), ms(5)))
            .with_partition(inverted)
            .validate(),
        Err(FaultPlanError::PartitionWindowInverted { index: 1, .. })
    ));
    let err = FaultPlan::default()
        .with_drop_rate(2.0)
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("drop_rate"));
}
