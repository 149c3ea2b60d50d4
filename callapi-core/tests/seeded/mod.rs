//! Running many seeded scenarios side by side, shared by the chaos tests: the scenario count
//! from an environment variable, one worker thread per core, a panic counted as a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use callapi_core::call::{Command, PrepareConfig};
use callapi_core::protocol::UserId;
use callapi_signal_mock::world::{SimMedia, SimWorld};
use callapi_signal_mock::{FaultPlan, Partition};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The scenario count: `var` if set to a number, else `default`.
pub fn count_from_env(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Each seed with its scenario's result.
pub type SeedResults<O> = Vec<(u64, Result<O, String>)>;

/// Runs `scenario` for seeds `0..count` on every core; each result with its seed (a panic is
/// `Err("panicked")`), and the wall time.
pub fn run_seeds<O: Send>(
    count: u64,
    scenario: fn(u64, bool) -> Result<O, String>,
) -> (SeedResults<O>, Duration) {
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) as u64;
    let started = Instant::now();
    let results = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (0..count)
                        .filter(|s| s % threads == t)
                        .map(|seed| {
                            let r = std::panic::catch_unwind(|| scenario(seed, false))
                                .unwrap_or_else(|_| Err("panicked".into()));
                            (seed, r)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread"))
            .collect()
    });
    (results, started.elapsed())
}

/// A random fault plan among `users`: drops up to 30 %, duplicates up to 10 %, reordering,
/// delays up to 2 s, maybe a partition.
pub fn plan(rng: &mut ChaCha8Rng, users: &[UserId]) -> FaultPlan {
    let min = Duration::from_millis(rng.gen_range(0..50));
    let max = min + Duration::from_millis(rng.gen_range(0..2000));
    let mut plan = FaultPlan::default()
        .with_drop_rate(rng.gen_range(0.0..0.3))
        .with_duplicate_rate(rng.gen_range(0.0..0.1))
        .with_reorder_rate(rng.gen_range(0.0..0.2))
        .with_delay(min, max);
    if rng.gen_bool(0.3) {
        let a = users[0].clone();
        let b = users[1].clone();
        let from = Duration::from_millis(rng.gen_range(0..25_000));
        let until = from + Duration::from_millis(rng.gen_range(500..5_000));
        plan = plan.with_partition(Partition::new(a, b, from, until));
    }
    plan
}

/// The world of a scenario: `names` with 1–2 prepared devices each, media or none, on a random
/// fault plan (`rng` is consumed in a fixed order, so a seed replays).
pub fn world(seed: u64, rng: &mut ChaCha8Rng, names: &[&str]) -> SimWorld {
    let users: Vec<UserId> = names.iter().map(|n| UserId::new(*n).unwrap()).collect();
    let plan = plan(rng, &users);
    let media = if rng.gen_bool(0.5) {
        Some(SimMedia::default())
    } else {
        None
    };
    let mut w = SimWorld::new(seed, plan);
    for name in names {
        let devices = rng.gen_range(1..=2);
        for d in 0..devices {
            let i = w.add_device(name, &format!("{name}{d}"), media);
            let mut prep = PrepareConfig::new(format!("{name}-room"));
            prep.join_media_on_ringing = rng.gen_bool(0.5);
            w.command(i, Command::Prepare(prep)).unwrap();
        }
    }
    w
}
