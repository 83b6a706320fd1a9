//! How long to wait before trying the primary again: capped exponential backoff with full jitter.
//!
//! The n-th consecutive failure (counting from 0) waits a uniformly random time in
//! `[0, min(cap, base · 2ⁿ)]` ("full jitter"), so agents that lost the primary together do not
//! come back together. The agent uses `base` 1 s and `cap` 60 s whatever its interval: samples
//! keep accumulating in the backlog meanwhile, so retrying more often than the interval costs
//! nothing, and a primary back from an outage is seen within a minute. A `Retry-After` from the
//! primary is a lower bound on the wait, itself capped at [`MAX_RETRY_AFTER`] so a wrong header
//! cannot silence a node for hours. Success resets the count.

use std::time::Duration;

pub const BASE: Duration = Duration::from_secs(1);
pub const CAP: Duration = Duration::from_secs(60);
/// The longest `Retry-After` the agent honours.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Consecutive failures and the delays they earn.
#[derive(Debug)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    failures: u32,
    rng: fastrand::Rng,
}

impl Default for Backoff {
    /// [`BASE`] and [`CAP`].
    fn default() -> Self {
        Self::new(BASE, CAP)
    }
}

impl Backoff {
    pub fn new(base: Duration, cap: Duration) -> Self {
        Self::with_rng(base, cap, fastrand::Rng::new())
    }

    /// With a seeded generator, for repeatable tests.
    pub fn with_rng(base: Duration, cap: Duration, rng: fastrand::Rng) -> Self {
        Self {
            base,
            cap: cap.max(base),
            failures: 0,
            rng,
        }
    }

    /// The longest delay the next failure can earn: `min(cap, base · 2ⁿ)`.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32 << self.failures.min(31);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// Counts a failure and returns how long to wait: uniform in `[0, ceiling]`, to the
    /// millisecond.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = u64::try_from(self.ceiling().as_millis()).unwrap_or(u64::MAX);
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(self.rng.u64(0..=ceiling))
    }

    /// Counts a failure whose answer may have carried a `Retry-After`: the jittered delay, but
    /// at least `retry_after` (capped at [`MAX_RETRY_AFTER`]).
    pub fn next_delay_after(&mut self, retry_after: Option<Duration>) -> Duration {
        let jittered = self.next_delay();
        match retry_after {
            Some(wanted) => jittered.max(wanted.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// After a success.
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeded() -> Backoff {
        Backoff::with_rng(BASE, CAP, fastrand::Rng::with_seed(7))
    }

    #[test]
    fn ceilings_double_up_to_the_cap() {
        let mut backoff = seeded();
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(backoff.ceiling().as_secs());
            backoff.next_delay();
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        for _ in 0..100 {
            backoff.next_delay();
        }
        assert_eq!(backoff.ceiling(), CAP, "no overflow after many failures");
    }

    #[test]
    fn delays_are_jittered_within_zero_and_the_ceiling() {
        let mut backoff = seeded();
        for _ in 0..6 {
            backoff.next_delay();
        }
        let delays: Vec<Duration> = (0..1000).map(|_| backoff.next_delay()).collect();
        assert!(delays.iter().all(|d| *d <= CAP));
        let low = delays.iter().filter(|d| **d < CAP / 4).count();
        let high = delays.iter().filter(|d| **d > CAP * 3 / 4).count();
        // Uniform: about 250 each; a constant or a narrow band fails.
        assert!((150..350).contains(&low), "{low} below 15 s");
        assert!((150..350).contains(&high), "{high} above 45 s");
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = seeded();
        for _ in 0..5 {
            backoff.next_delay();
        }
        assert_eq!(backoff.failures(), 5);
        backoff.reset();
        assert_eq!(backoff.ceiling(), BASE);
        assert!(backoff.next_delay() <= BASE);
    }

    #[test]
    fn retry_after_is_a_lower_bound_and_is_capped() {
        let mut backoff = seeded();
        assert!(backoff.next_delay_after(Some(Duration::from_secs(30))) >= Duration::from_secs(30));
        let huge = backoff.next_delay_after(Some(Duration::from_secs(86_400)));
        assert_eq!(huge, MAX_RETRY_AFTER);
        let ceiling = backoff.ceiling();
        assert!(backoff.next_delay_after(None) <= ceiling);
    }
}
