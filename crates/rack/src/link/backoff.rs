//! Reconnection delays: capped exponential backoff with jitter, so racks that lost the
//! region together do not all dial it again in the same second.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    failures: u32,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            failures: 0,
        }
    }

    /// The delay before the next attempt. `jitter` in `[0, 1)` (a random draw) picks a point
    /// in the upper half of the current step, so the delay is never below half the step.
    pub fn next_delay(&mut self, jitter: f64) -> Duration {
        let step = self
            .min
            .saturating_mul(1u32 << self.failures.min(16))
            .min(self.max);
        self.failures = self.failures.saturating_add(1);
        let jitter = jitter.clamp(0.0, 1.0);
        step.mul_f64(0.5 + jitter / 2.0)
    }

    /// After a success: the next failure starts from `min` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(jitter: f64, expected_ms: &[u64]) {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        let delays: Vec<u64> = expected_ms
            .iter()
            .map(|_| backoff.next_delay(jitter).as_millis() as u64)
            .collect();
        assert_eq!(delays, expected_ms, "jitter {jitter}");
    }

    #[test]
    fn doubles_up_to_the_cap_and_jitters_within_the_upper_half() {
        // Without jitter each delay is half its step; with the largest jitter almost all.
        check(0.0, &[500, 1000, 2000, 4000, 8000, 15000, 15000, 15000]);
        check(0.999, &[999, 1999, 3998, 7996, 15992, 29985, 29985, 29985]);
        check(0.5, &[750, 1500, 3000, 6000, 12000, 22500, 22500]);
        // Many failures never overflow.
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..1000 {
            assert!(backoff.next_delay(1.0) <= Duration::from_secs(30));
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..5 {
            backoff.next_delay(0.0);
        }
        backoff.reset();
        assert_eq!(backoff.failures(), 0);
        assert_eq!(backoff.next_delay(0.0), Duration::from_millis(500));
    }
}
