//! [`Deadline`]: one tokio timer kept across the polls of a loop, re-armed only when the
//! machine's next deadline moves (creating a timer per loop turn costs a timer-wheel insert and
//! removal for every envelope).

use std::pin::Pin;

use tokio::time::{sleep_until, Instant, Sleep};

/// A sans-IO machine's next deadline on tokio's clock.
#[derive(Debug)]
pub(crate) struct Deadline {
    sleep: Pin<Box<Sleep>>,
    armed: Option<std::time::Instant>,
}

impl Deadline {
    pub(crate) fn new() -> Self {
        Self {
            sleep: Box::pin(sleep_until(Instant::now())),
            armed: None,
        }
    }

    /// Waits until `deadline` (forever when there is none). Cancel-safe.
    pub(crate) async fn wait(&mut self, deadline: Option<std::time::Instant>) {
        let Some(at) = deadline else {
            return std::future::pending().await;
        };
        if self.armed != Some(at) {
            self.sleep.as_mut().reset(Instant::from_std(at));
            self.armed = Some(at);
        }
        self.sleep.as_mut().await;
        self.armed = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_at_the_deadline_and_follows_it_when_it_moves() {
        let mut d = Deadline::new();
        let t0 = Instant::now();
        let first = (t0 + Duration::from_secs(5)).into_std();
        // Dropped before it fires: nothing is lost, the next wait sees the same deadline.
        assert!(
            tokio::time::timeout(Duration::from_secs(1), d.wait(Some(first)))
                .await
                .is_err()
        );
        let sooner = (t0 + Duration::from_secs(3)).into_std();
        d.wait(Some(sooner)).await;
        assert_eq!(Instant::now(), t0 + Duration::from_secs(3));
        d.wait(Some(first)).await;
        assert_eq!(Instant::now(), t0 + Duration::from_secs(5));
        // A deadline already past returns at once.
        d.wait(Some(sooner)).await;
        assert_eq!(Instant::now(), t0 + Duration::from_secs(5));
        assert!(tokio::time::timeout(Duration::from_secs(60), d.wait(None))
            .await
            .is_err());
    }
}
