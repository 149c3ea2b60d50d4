//! Percentiles of latency samples (sorted-vector, nearest rank).

use std::time::Duration;

/// Latency samples of one measurement.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    sorted: Vec<Duration>,
}

impl Samples {
    /// Sorts `samples` for percentile queries.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    /// The `p`-th percentile (0–100), nearest rank; zero without samples.
    pub fn percentile(&self, p: f64) -> Duration {
        if self.sorted.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.sorted.len() as f64).ceil() as usize;
        self.sorted[rank.clamp(1, self.sorted.len()) - 1]
    }

    /// p50.
    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    /// p99.
    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }
}

/// Microseconds as a float.
pub fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Milliseconds as a float.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Rounds to 3 decimals (for the JSON and the table).
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
