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

/// The retry schedules and the bound of each attempt, as data. [`Default`] is the documented
/// schedule: token fetches at 0, 1 and 4 s; reconnects at 0, 3, 9, 27, 60 and 120 s, then every
/// 60 s; each plus a uniform jitter below 2 s (the very first connection attempt and its token
/// fetch included); every fetch and connection attempt bounded by 15 s.
///
/// ```
/// use std::time::Duration;
/// use callapi_core::connection::schedule::RetrySchedule;
///
/// // A kiosk that should come up at once and retry quickly.
/// let mut schedule = RetrySchedule::immediate_first_attempt();
/// schedule.reconnect_at = vec![Duration::ZERO, Duration::from_secs(1)];
/// schedule.reconnect_every = Duration::from_secs(5);
/// assert!(!schedule.first_attempt_jitter);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetrySchedule {
    /// Offsets of the token fetch attempts from the start of a fetch.
    pub token_fetch_at: Vec<Duration>,
    /// Offsets of the reconnect attempts from the start of a series (the drop, or the start of
    /// the session); then every [`reconnect_every`](Self::reconnect_every) after the last.
    pub reconnect_at: Vec<Duration>,
    /// Spacing of reconnect attempts after the listed ones.
    pub reconnect_every: Duration,
    /// Upper bound (exclusive) of the uniform jitter added to every attempt; zero for none.
    pub jitter: Duration,
    /// Whether the session's very first connection attempt is jittered too (it spreads the
    /// load when many clients start together). When `false`, that attempt starts at its
    /// offset exactly, and so does the first try of the token fetch that precedes it: with the
    /// default offsets, the first token fetch starts at once and the connection follows as soon
    /// as the token is there. The fetch's retries and every later attempt (reconnects after a
    /// failure or a drop, renewals) are still jittered.
    pub first_attempt_jitter: bool,
    /// Longest one token fetch or connection attempt may take before it counts as failed.
    pub attempt_timeout: Duration,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self {
            token_fetch_at: TOKEN_FETCH_AT.to_vec(),
            reconnect_at: RECONNECT_AT.to_vec(),
            reconnect_every: RECONNECT_EVERY,
            jitter: JITTER,
            first_attempt_jitter: true,
            attempt_timeout: ATTEMPT_TIMEOUT,
        }
    }
}

impl RetrySchedule {
    /// The [`Default`] schedule, except that the session's first connection attempt is not
    /// jittered ([`first_attempt_jitter`](Self::first_attempt_jitter) is `false`): the first
    /// token fetch and the first connection start at once. For a program started by hand (a
    /// demo, a command-line tool, a test): the start-up jitter exists to spread a fleet of
    /// clients that start together, and such a program has no fleet. Reconnects after a drop
    /// keep the default schedule, jitter included.
    ///
    /// ```
    /// use std::time::Duration;
    /// use callapi_core::connection::schedule::RetrySchedule;
    /// use callapi_core::connection::{Credentials, Identity, SupervisorConfig, TokenError};
    /// use callapi_core::protocol::{DeviceId, UserId};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let identity = Identity {
    ///     user: UserId::new("alice")?,
    ///     device: DeviceId::new("laptop")?,
    /// };
    /// let tokens = Credentials::token(|| async { Ok::<_, TokenError>("token".to_owned()) });
    /// let config = SupervisorConfig::new(identity, tokens)
    ///     .with_schedule(RetrySchedule::immediate_first_attempt());
    /// assert!(!config.schedule.first_attempt_jitter);
    /// // Everything else is the default schedule.
    /// assert_eq!(config.schedule.reconnect_at[1], Duration::from_secs(3));
    /// # Ok(())
    /// # }
    /// ```
    pub fn immediate_first_attempt() -> Self {
        Self {
            first_attempt_jitter: false,
            ..Self::default()
        }
    }

    fn jitter(&self, rng: &mut impl Rng) -> Duration {
        let max = u64::try_from(self.jitter.as_millis()).unwrap_or(u64::MAX);
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_millis(rng.gen_range(0..max))
    }

    /// When token fetch attempt `k` (0-based) starts, from the start of the fetch; `None` once
    /// the attempts are used up.
    pub fn token_attempt_at(&self, k: usize, rng: &mut impl Rng) -> Option<Duration> {
        let base = *self.token_fetch_at.get(k)?;
        Some(base + self.jitter(rng))
    }

    /// The offsets of every attempt of one token fetch, drawn at once. `first`: the fetch
    /// that precedes the session's very first connection attempt, whose first try is
    /// unjittered unless [`first_attempt_jitter`](Self::first_attempt_jitter) (its retries
    /// are jittered either way).
    pub fn token_offsets(&self, first: bool, rng: &mut impl Rng) -> Vec<Duration> {
        (0..)
            .map_while(|k| {
                if k == 0 && first && !self.first_attempt_jitter {
                    return self.token_fetch_at.first().copied();
                }
                self.token_attempt_at(k, rng)
            })
            .collect()
    }

    /// When reconnect attempt `k` (0-based) starts, from the start of the series. `first`: the
    /// session's very first attempt (unjittered unless
    /// [`first_attempt_jitter`](Self::first_attempt_jitter)). Attempts never stop.
    pub fn reconnect_attempt_at(&self, k: usize, first: bool, rng: &mut impl Rng) -> Duration {
        let base = match self.reconnect_at.get(k) {
            Some(at) => *at,
            None => {
                let last = self.reconnect_at.last().copied().unwrap_or_default();
                let extra = u32::try_from(k + 1 - self.reconnect_at.len()).unwrap_or(u32::MAX);
                last.saturating_add(self.reconnect_every.saturating_mul(extra))
            }
        };
        if first && !self.first_attempt_jitter {
            return base;
        }
        base + self.jitter(rng)
    }
}

/// When token fetch attempt `k` (0-based) of the default schedule starts, measured from the
/// start of the fetch; `None` once the three attempts are used up.
pub fn token_attempt_at(k: usize, rng: &mut impl Rng) -> Option<Duration> {
    RetrySchedule::default().token_attempt_at(k, rng)
}

/// When reconnect attempt `k` (0-based) of the default schedule starts, measured from the start
/// of the series: the drop, or `start`/`resume` for a first connection. Attempts never stop;
/// only a permanent error or `disconnect` ends them.
pub fn reconnect_attempt_at(k: usize, rng: &mut impl Rng) -> Duration {
    RetrySchedule::default().reconnect_attempt_at(k, false, rng)
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
    fn without_first_attempt_jitter_only_the_first_fetch_try_is_exact() {
        let schedule = RetrySchedule::immediate_first_attempt();
        assert_eq!(
            schedule,
            RetrySchedule {
                first_attempt_jitter: false,
                ..RetrySchedule::default()
            }
        );
        let mut a = ChaCha8Rng::seed_from_u64(3);
        let mut b = ChaCha8Rng::seed_from_u64(3);
        let first = schedule.token_offsets(true, &mut a);
        // No draw for the first try: the retries take the draws a jittered first try would
        // have started with.
        assert_eq!(first[0], Duration::ZERO);
        let retries: Vec<_> = [1, 2]
            .iter()
            .map(|k| schedule.token_attempt_at(*k, &mut b).unwrap_or_default())
            .collect();
        assert_eq!(first[1..], retries[..]);
        // Any other fetch is jittered, and the default schedule jitters the first one too.
        let mut c = ChaCha8Rng::seed_from_u64(3);
        let mut d = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(
            schedule.token_offsets(false, &mut c),
            RetrySchedule::default().token_offsets(true, &mut d)
        );
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
