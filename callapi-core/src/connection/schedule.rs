//! The retry schedules (token fetches and reconnects) as pure functions of the attempt number and an injected RNG,
//! so tests can assert exact instants with a seeded RNG.

use std::time::Duration;

use rand::Rng;

/// Upper bound (exclusive) of the uniform jitter added to every scheduled attempt.
pub const JITTER: Duration = Duration::from_secs(2);
/// Longest a single token fetch (or connection attempt) may take before it counts as failed.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// Token fetch attempts start at these offsets (plus jitter) from the start of a fetch.
pub const TOKEN_FETCH_AT: [Duration; 3] = [
    Duration::from_secs(0),
    Duration::from_secs(1),
    Duration::from_secs(4),
];
/// Reconnect attempts start at these offsets (plus jitter) from the drop; then every
/// [`RECONNECT_EVERY`] after the last.
pub const RECONNECT_AT: [Duration; 6] = [
    Duration::from_secs(0),
    Duration::from_secs(3),
    Duration::from_secs(9),
    Duration::from_secs(27),
    Duration::from_secs(60),
    Duration::from_secs(120),
];
/// Spacing of reconnect attempts after the listed ones.
pub const RECONNECT_EVERY: Duration = Duration::from_secs(60);

fn jitter(rng: &mut impl Rng) -> Duration {
    Duration::from_millis(rng.gen_range(0..JITTER.as_millis() as u64))
}

/// When token fetch attempt `k` (0-based) starts, measured from the start of the fetch; `None`
/// once the three attempts are used up.
pub fn token_attempt_at(k: usize, rng: &mut impl Rng) -> Option<Duration> {
    TOKEN_FETCH_AT.get(k).map(|base| *base + jitter(rng))
}

/// When reconnect attempt `k` (0-based) starts, measured from the start of the series: the
/// drop, or `start`/`resume` for a first connection. Attempts never stop; only a permanent error or `disconnect` ends them.
pub fn reconnect_attempt_at(k: usize, rng: &mut impl Rng) -> Duration {
    let base = match RECONNECT_AT.get(k) {
        Some(at) => *at,
        None => {
            let extra = u32::try_from(k + 1 - RECONNECT_AT.len()).unwrap_or(u32::MAX);
            RECONNECT_AT[RECONNECT_AT.len() - 1]
                .saturating_add(RECONNECT_EVERY.saturating_mul(extra))
        }
    };
    base + jitter(rng)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn reconnect_offsets_follow_the_design_with_bounded_jitter() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let bases = [0u64, 3, 9, 27, 60, 120, 180, 240, 300];
        for (k, base) in bases.iter().enumerate() {
            let at = reconnect_attempt_at(k, &mut rng);
            assert!(at >= Duration::from_secs(*base), "attempt {k}: {at:?}");
            assert!(
                at < Duration::from_secs(*base) + JITTER,
                "attempt {k}: {at:?}"
            );
        }
    }

    #[test]
    fn three_token_attempts_then_none() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for (k, base) in [0u64, 1, 4].iter().enumerate() {
            let at = token_attempt_at(k, &mut rng).unwrap_or_default();
            assert!(at >= Duration::from_secs(*base) && at < Duration::from_secs(*base) + JITTER);
        }
        assert_eq!(token_attempt_at(3, &mut rng), None);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let mut a = ChaCha8Rng::seed_from_u64(5);
        let mut b = ChaCha8Rng::seed_from_u64(5);
        let xa: Vec<_> = (0..10).map(|k| reconnect_attempt_at(k, &mut a)).collect();
        let xb: Vec<_> = (0..10).map(|k| reconnect_attempt_at(k, &mut b)).collect();
        assert_eq!(xa, xb);
    }
}
