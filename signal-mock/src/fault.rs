//! Seeded fault injection: what happens to each message on its way.
//!
//! A [`FaultPlan`] says how often messages are dropped or duplicated, how long each copy takes,
//! how often a copy is held back long enough to overtake (reorder) later messages, and which
//! pairs of users cannot reach each other during which time window ([`Partition`]).
//!
//! [`FaultPlan::fate`] is a pure function of the plan and a random number generator, so a seeded
//! generator makes every run reproducible.

use std::time::Duration;

use callapi_core::protocol::UserId;
use rand::Rng;

/// Longest extra hold-back of a reordered copy when the plan has no delay (`max_delay` zero).
///
/// With delays configured, a reordered copy is held back up to `2 * max_delay` extra instead.
pub const REORDER_FLOOR: Duration = Duration::from_millis(20);

/// Why a [`FaultPlan`] is not usable.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum FaultPlanError {
    /// A probability is outside `0.0..=1.0` (or is NaN); use a value between 0 and 1.
    #[error("{field} is {value}, but it is a probability: use a value in 0.0..=1.0")]
    RateOutOfRange {
        /// The offending field (`"drop_rate"`, `"duplicate_rate"`, `"reorder_rate"`).
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// `min_delay` is larger than `max_delay`; swap them or raise `max_delay`.
    #[error("min_delay {min:?} is larger than max_delay {max:?}; make min_delay <= max_delay")]
    DelayRangeInverted {
        /// The plan's `min_delay`.
        min: Duration,
        /// The plan's `max_delay`.
        max: Duration,
    },
    /// A partition's window ends before it starts; make `from <= until`.
    #[error("partition #{index} ends ({until:?}) before it starts ({from:?}); make from <= until")]
    PartitionWindowInverted {
        /// Position of the partition in [`FaultPlan::partitions`].
        index: usize,
        /// Its start.
        from: Duration,
        /// Its end.
        until: Duration,
    },
}

/// Users `a` and `b` cannot reach each other (in either direction) for messages sent while
/// the time elapsed since the network started is in `from..until`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partition {
    /// One side.
    pub a: UserId,
    /// The other side.
    pub b: UserId,
    /// Start of the window (inclusive), measured from the network's start.
    pub from: Duration,
    /// End of the window (exclusive), measured from the network's start.
    pub until: Duration,
}

impl Partition {
    /// A partition between `a` and `b` for messages sent in `from..until` after the start.
    pub fn new(a: UserId, b: UserId, from: Duration, until: Duration) -> Self {
        Self { a, b, from, until }
    }

    /// Whether a message from `x` to `y` (either direction) sent `elapsed` after the start is
    /// cut by this partition.
    pub fn cuts(&self, x: &UserId, y: &UserId, elapsed: Duration) -> bool {
        let pair = (x == &self.a && y == &self.b) || (x == &self.b && y == &self.a);
        pair && elapsed >= self.from && elapsed < self.until
    }
}

/// How the network mistreats messages. The [`Default`] is a perfect network: no loss, no
/// duplicates, no delay, no partitions.
///
/// Rates are probabilities in `0.0..=1.0`; [`FaultPlan::validate`] checks them. A plan that was
/// not validated never panics: [`FaultPlan::fate`] treats rates below 0 (and NaN) as 0 and rates
/// above 1 as 1, and an inverted delay range as `min_delay`.
///
/// ```
/// use std::time::Duration;
/// use callapi_signal_mock::FaultPlan;
///
/// let plan = FaultPlan::default()
///     .with_drop_rate(0.1)
///     .with_duplicate_rate(0.05)
///     .with_delay(Duration::from_millis(5), Duration::from_millis(80))
///     .with_reorder_rate(0.1);
/// assert!(plan.validate().is_ok());
/// assert!(FaultPlan::default().with_drop_rate(1.5).validate().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultPlan {
    /// Probability that a message copy is lost.
    pub drop_rate: f64,
    /// Probability that a delivered message arrives twice.
    pub duplicate_rate: f64,
    /// Shortest delay of a delivered copy.
    pub min_delay: Duration,
    /// Longest delay of a delivered copy (each copy draws uniformly in `min_delay..=max_delay`,
    /// so different delays already reorder messages).
    pub max_delay: Duration,
    /// Probability that a copy is additionally held back (up to `2 * max_delay`, or
    /// [`REORDER_FLOOR`] when `max_delay` is zero), so that later messages overtake it.
    pub reorder_rate: f64,
    /// Pairs of users cut off from each other during time windows.
    pub partitions: Vec<Partition>,
}

impl FaultPlan {
    /// A perfect network (same as [`Default`]).
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets [`FaultPlan::drop_rate`].
    #[must_use]
    pub fn with_drop_rate(mut self, rate: f64) -> Self {
        self.drop_rate = rate;
        self
    }

    /// Sets [`FaultPlan::duplicate_rate`].
    #[must_use]
    pub fn with_duplicate_rate(mut self, rate: f64) -> Self {
        self.duplicate_rate = rate;
        self
    }

    /// Sets [`FaultPlan::min_delay`] and [`FaultPlan::max_delay`].
    #[must_use]
    pub fn with_delay(mut self, min: Duration, max: Duration) -> Self {
        self.min_delay = min;
        self.max_delay = max;
        self
    }

    /// Sets [`FaultPlan::reorder_rate`].
    #[must_use]
    pub fn with_reorder_rate(mut self, rate: f64) -> Self {
        self.reorder_rate = rate;
        self
    }

    /// Adds a [`Partition`].
    #[must_use]
    pub fn with_partition(mut self, partition: Partition) -> Self {
        self.partitions.push(partition);
        self
    }

    /// Checks that rates are probabilities, the delay range is ordered and partition windows
    /// do not end before they start.
    pub fn validate(&self) -> Result<(), FaultPlanError> {
        for (field, value) in [
            ("drop_rate", self.drop_rate),
            ("duplicate_rate", self.duplicate_rate),
            ("reorder_rate", self.reorder_rate),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(FaultPlanError::RateOutOfRange { field, value });
            }
        }
        if self.min_delay > self.max_delay {
            return Err(FaultPlanError::DelayRangeInverted {
                min: self.min_delay,
                max: self.max_delay,
            });
        }
        for (index, p) in self.partitions.iter().enumerate() {
            if p.from > p.until {
                return Err(FaultPlanError::PartitionWindowInverted {
                    index,
                    from: p.from,
                    until: p.until,
                });
            }
        }
        Ok(())
    }

    /// Whether a message from `from` to `to` sent `elapsed` after the network's start falls in
    /// one of the plan's partitions.
    pub fn is_partitioned(&self, from: &UserId, to: &UserId, elapsed: Duration) -> bool {
        self.partitions.iter().any(|p| p.cuts(from, to, elapsed))
    }

    /// Decides what happens to one message copy: the delays of the copies to deliver.
    ///
    /// Empty means dropped, one element is a normal delivery, two mean a duplicate. Each copy
    /// draws its own delay (so copies and consecutive messages may be reordered), possibly
    /// lengthened by a reorder hold-back. Partitions are not considered here (they depend on
    /// users and time; see [`FaultPlan::is_partitioned`]).
    pub fn fate(&self, rng: &mut impl Rng) -> Vec<Duration> {
        if chance(rng, self.drop_rate) {
            return Vec::new();
        }
        let copies = if chance(rng, self.duplicate_rate) {
            2
        } else {
            1
        };
        (0..copies).map(|_| self.copy_delay(rng)).collect()
    }

    fn copy_delay(&self, rng: &mut impl Rng) -> Duration {
        let mut delay = uniform(rng, self.min_delay, self.max_delay);
        if chance(rng, self.reorder_rate) {
            let extra_max = if self.max_delay.is_zero() {
                REORDER_FLOOR
            } else {
                self.max_delay.saturating_mul(2)
            };
            // At least 1 ms so that the held-back copy really falls behind.
            delay = delay.saturating_add(uniform(rng, Duration::from_millis(1), extra_max));
        }
        delay
    }
}

/// `true` with probability `p` (clamped to `0..=1`; NaN counts as 0).
fn chance(rng: &mut impl Rng, p: f64) -> bool {
    // `gen::<f64>()` is in [0, 1): p >= 1 is always true, p <= 0 and NaN never.
    p > 0.0 && rng.gen::<f64>() < p
}

/// A uniformly drawn duration in `min..=max` (`min` when the range is empty or inverted).
fn uniform(rng: &mut impl Rng, min: Duration, max: Duration) -> Duration {
    if max <= min {
        return min;
    }
    let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
    min.saturating_add(Duration::from_nanos(rng.gen_range(0..=span)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn perfect_plan_delivers_once_without_delay() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(FaultPlan::default().fate(&mut rng), vec![Duration::ZERO]);
        }
    }

    #[test]
    fn out_of_range_rates_do_not_panic() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let plan = FaultPlan {
            drop_rate: f64::NAN,
            duplicate_rate: 7.0,
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(1),
            reorder_rate: -1.0,
            partitions: Vec::new(),
        };
        assert!(plan.validate().is_err());
        assert_eq!(plan.fate(&mut rng), vec![Duration::from_secs(2); 2]);
    }
}
