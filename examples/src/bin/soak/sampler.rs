//! The server's resident memory (`VmRSS` in /proc/PID/status) and open descriptors (entries of
//! /proc/PID/fd), sampled at a fixed interval.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use callapi_examples::procfs::{fd_count, rss_bytes};
use tokio::time::Instant;

use crate::Res;

/// One sample.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Seconds since the soak started.
    pub at_s: f64,
    /// Resident set size, bytes.
    pub rss: u64,
    /// Open file descriptors.
    pub fds: u64,
    /// Calls completed so far.
    pub completed: u64,
}

/// Samples `pid` every `every` from `start` (a sample at 0 included) up to `start + duration`
/// (the last sample at `duration` when `every` divides it); `completed` gives the calls
/// completed so far.
pub async fn run(
    pid: u32,
    start: Instant,
    every: Duration,
    duration: Duration,
    samples: Arc<Mutex<Vec<Sample>>>,
    completed: impl Fn() -> u64,
) -> Res<()> {
    for k in 0u32.. {
        let offset = every * k;
        if offset > duration {
            break;
        }
        tokio::time::sleep_until(start + offset).await;
        let sample = Sample {
            at_s: start.elapsed().as_secs_f64(),
            rss: rss_bytes(pid)?,
            fds: fd_count(pid)?,
            completed: completed(),
        };
        eprintln!(
            "[{:6.1} s] server RSS {:.2} MiB, {} fds; {} calls completed",
            sample.at_s,
            sample.rss as f64 / (1024.0 * 1024.0),
            sample.fds,
            sample.completed
        );
        if let Ok(mut s) = samples.lock() {
            s.push(sample);
        }
    }
    Ok(())
}
