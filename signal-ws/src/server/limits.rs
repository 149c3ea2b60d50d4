//! Per-connection message rate limiting: a token bucket, and a count of refusals that closes a
//! connection which keeps flooding. Pure (the caller passes the time), so it is unit-tested
//! without a clock.

use std::time::{Duration, Instant};

/// A token bucket: `burst` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    tokens: f64,
    burst: f64,
    rate: f64,
    last: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            burst: f64::from(burst),
            rate: f64::from(rate_per_sec),
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub(crate) fn take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What the rate limiter says about one incoming message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RateVerdict {
    /// Within the rate.
    Pass,
    /// Over the rate: drop it and answer `rate_limited`.
    Drop,
    /// Over the rate too often: close the connection (4008).
    Close,
}

/// A token bucket plus a windowed count of refusals, and a second bucket (twice the size) for
/// acknowledgements. Acks answer what others sent, so a flood aimed at a device makes it ack at
/// the flooder's rate: counting those against the device's own budget (or closing it for them)
/// would let one client get another disconnected.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    bucket: TokenBucket,
    acks: TokenBucket,
    close_after: u32,
    window: Duration,
    window_start: Instant,
    refusals: u32,
}

impl RateLimiter {
    pub(crate) fn new(
        rate_per_sec: u32,
        burst: u32,
        close_after: u32,
        window: Duration,
        now: Instant,
    ) -> Self {
        Self {
            bucket: TokenBucket::new(rate_per_sec, burst, now),
            acks: TokenBucket::new(rate_per_sec.saturating_mul(2), burst.saturating_mul(2), now),
            close_after,
            window,
            window_start: now,
            refusals: 0,
        }
    }

    /// Checks an acknowledgement: its own bucket; never a reason to close.
    pub(crate) fn check_ack(&mut self, now: Instant) -> RateVerdict {
        if self.acks.take(now) {
            RateVerdict::Pass
        } else {
            RateVerdict::Drop
        }
    }

    /// Checks any other message.
    pub(crate) fn check(&mut self, now: Instant) -> RateVerdict {
        if self.bucket.take(now) {
            return RateVerdict::Pass;
        }
        if now.saturating_duration_since(self.window_start) > self.window {
            self.window_start = now;
            self.refusals = 0;
        }
        self.refusals = self.refusals.saturating_add(1);
        if self.close_after > 0 && self.refusals >= self.close_after {
            RateVerdict::Close
        } else {
            RateVerdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10, 5, t0);
        assert_eq!((0..8).filter(|_| b.take(t0)).count(), 5);
        // 10 per second: one more token every 100 ms.
        assert!(b.take(t0 + Duration::from_millis(100)));
        assert!(!b.take(t0 + Duration::from_millis(150)));
        // Never more than the burst, however long the pause.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 5);
    }

    #[test]
    fn a_flood_is_dropped_then_closed() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 2, 3, Duration::from_secs(10), t0);
        let verdicts: Vec<_> = (0..5).map(|_| r.check(t0)).collect();
        use RateVerdict::*;
        assert_eq!(verdicts, [Pass, Pass, Drop, Drop, Close]);
    }

    #[test]
    fn acks_have_their_own_bucket_and_never_close() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 2, 1, Duration::from_secs(10), t0);
        assert_eq!(
            (0..10)
                .filter(|_| r.check_ack(t0) == RateVerdict::Pass)
                .count(),
            4
        );
        assert_eq!(r.check_ack(t0), RateVerdict::Drop);
        // The main bucket is untouched.
        assert_eq!(r.check(t0), RateVerdict::Pass);
        assert_eq!(r.check(t0), RateVerdict::Pass);
        assert_eq!(r.check(t0), RateVerdict::Close);
    }

    #[test]
    fn refusals_are_forgotten_after_the_window() {
        let t0 = Instant::now();
        let mut r = RateLimiter::new(1, 1, 3, Duration::from_secs(10), t0);
        assert_eq!(r.check(t0), RateVerdict::Pass);
        assert_eq!(r.check(t0), RateVerdict::Drop);
        assert_eq!(r.check(t0), RateVerdict::Drop);
        let t1 = t0 + Duration::from_millis(10_500);
        assert_eq!(r.check(t1), RateVerdict::Pass);
        assert_eq!(r.check(t1), RateVerdict::Drop);
    }
}
