//! Running many seeded scenarios side by side, shared by the chaos tests: the scenario count
//! from an environment variable, one worker thread per core, a panic counted as a failure.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

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
