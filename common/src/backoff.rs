//! How long to wait before trying again: the one retry policy of pivitals, capped exponential
//! backoff with full jitter, never sooner than a (capped) `Retry-After`.
//!
//! The rule, the same for every caller:
//!
//! - retry number `n` (counting from 0) may wait up to the *ceiling* `min(cap, base · 2ⁿ)`;
//! - it waits a uniformly random time in `[0, ceiling]`, to the millisecond ("full jitter"), so
//!   clients that failed together do not come back together;
//! - when the other side answered with `Retry-After`, the wait is at least that long, but
//!   never more than [`MAX_RETRY_AFTER`] for the `Retry-After` part: a wrong header cannot
//!   silence a client for hours.
//!
//! Only `base` and `cap` differ between uses, one constant each:
//!
//! | use                                   | constant                   | base   | cap  |
//! |---------------------------------------|----------------------------|--------|------|
//! | the agent pushing or registering      | [`Backoff::AGENT_PUSH`]    | 1 s    | 60 s |
//! | the primary writing to its storage    | [`Backoff::STORAGE_WRITE`] | 500 ms | 30 s |
//! | the primary calling the alert webhook | [`Backoff::ALERT_WEBHOOK`] | 1 s    | 60 s |
//!
//! [`Backoff::delay`] is the pure rule; [`Retries`] counts consecutive failures for a caller
//! that keeps state between attempts (the agent's sender).

use std::time::Duration;

/// The longest `Retry-After` anyone in pivitals honours: five minutes.
///
/// The longest hint pivitals sends itself is the primary's `Retry-After: 300` when its node
/// registry is full, so an agent honours that in full. InfluxDB and webhook receivers ask for
/// seconds to a minute or two when they are overloaded. A longer hint is more likely a wrong
/// header than a plan, and honouring it would hold a node's samples, a storage write or an
/// alert without a single attempt; after five minutes the caller tries again and, if the
/// other side is still busy, is told again.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A capped exponential backoff with full jitter: see the [module](self) for the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry; it doubles with every further one.
    pub base: Duration,
    /// The highest ceiling.
    pub cap: Duration,
}

impl Backoff {
    /// The agent pushing samples or registering with the primary. Samples accumulate in the
    /// backlog meanwhile, so retrying more often than the push interval costs nothing, and a
    /// primary back from an outage is seen within a minute.
    pub const AGENT_PUSH: Self = Self::new(Duration::from_secs(1), Duration::from_secs(60));
    /// The primary writing a batch to InfluxDB: the points are durable in the spool meanwhile,
    /// and a quick first retry rides over a storage restart.
    pub const STORAGE_WRITE: Self = Self::new(Duration::from_millis(500), Duration::from_secs(30));
    /// The primary delivering an alert to the webhook.
    pub const ALERT_WEBHOOK: Self = Self::new(Duration::from_secs(1), Duration::from_secs(60));

    pub const fn new(base: Duration, cap: Duration) -> Self {
        Self { base, cap }
    }

    /// The longest wait before retry number `attempt` (0 for the first retry):
    /// `min(cap, base · 2^attempt)`, without overflow for any `attempt`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(31);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The wait before retry number `attempt` (0 for the first retry), given the other side's
    /// `Retry-After` if it sent one: uniform in `[0, ceiling(attempt)]`, but at least
    /// `retry_after` capped at [`MAX_RETRY_AFTER`].
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(&mut fastrand::Rng::new(), attempt, retry_after)
    }

    /// [`Backoff::delay`] drawing from `rng`, for repeatable tests.
    pub fn delay_with(
        &self,
        rng: &mut fastrand::Rng,
        attempt: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let ceiling = u64::try_from(self.ceiling(attempt).as_millis()).unwrap_or(u64::MAX);
        let jittered = Duration::from_millis(rng.u64(0..=ceiling));
        match retry_after {
            Some(wanted) => jittered.max(wanted.min(MAX_RETRY_AFTER)),
            None => jittered,
        }
    }
}

/// Consecutive failures and the delays they earn under one [`Backoff`]; a success resets the
/// count.
#[derive(Debug)]
pub struct Retries {
    policy: Backoff,
    failures: u32,
    rng: fastrand::Rng,
}

impl Retries {
    pub fn new(policy: Backoff) -> Self {
        Self::with_rng(policy, fastrand::Rng::new())
    }

    /// With a seeded generator, for repeatable tests.
    pub fn with_rng(policy: Backoff, rng: fastrand::Rng) -> Self {
        Self {
            policy,
            failures: 0,
            rng,
        }
    }

    /// The longest delay the next failure can earn, `Retry-After` aside.
    pub fn ceiling(&self) -> Duration {
        self.policy.ceiling(self.failures)
    }

    /// Counts a failure and returns how long to wait: [`Backoff::delay`] for the failures so
    /// far, at least `retry_after` (capped) if the answer carried one.
    pub fn next_delay(&mut self, retry_after: Option<Duration>) -> Duration {
        let delay = self
            .policy
            .delay_with(&mut self.rng, self.failures, retry_after);
        self.failures = self.failures.saturating_add(1);
        delay
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

    const ALL: [Backoff; 3] = [
        Backoff::AGENT_PUSH,
        Backoff::STORAGE_WRITE,
        Backoff::ALERT_WEBHOOK,
    ];

    fn seeded(policy: Backoff) -> Retries {
        Retries::with_rng(policy, fastrand::Rng::with_seed(7))
    }

    #[test]
    fn ceilings_double_up_to_the_cap_without_overflow() {
        let ceilings: Vec<u64> = (0..10)
            .map(|n| Backoff::AGENT_PUSH.ceiling(n).as_secs())
            .collect();
        assert_eq!(ceilings, [1, 2, 4, 8, 16, 32, 60, 60, 60, 60]);
        let ceilings: Vec<u128> = (0..8)
            .map(|n| Backoff::STORAGE_WRITE.ceiling(n).as_millis())
            .collect();
        assert_eq!(
            ceilings,
            [500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]
        );
        for policy in ALL {
            assert_eq!(policy.ceiling(31), policy.cap);
            assert_eq!(policy.ceiling(u32::MAX), policy.cap, "no overflow");
        }
    }

    #[test]
    fn delays_stay_within_zero_and_the_ceiling() {
        let mut rng = fastrand::Rng::with_seed(1);
        for policy in ALL {
            for attempt in 0..40 {
                let ceiling = policy.ceiling(attempt);
                for _ in 0..50 {
                    assert!(policy.delay_with(&mut rng, attempt, None) <= ceiling);
                    assert!(policy.delay(attempt, None) <= ceiling);
                }
            }
        }
    }

    #[test]
    fn delays_are_spread_over_the_whole_range() {
        let cap = Backoff::AGENT_PUSH.cap;
        let mut retries = seeded(Backoff::AGENT_PUSH);
        for _ in 0..6 {
            retries.next_delay(None);
        }
        let delays: Vec<Duration> = (0..1000).map(|_| retries.next_delay(None)).collect();
        assert!(delays.iter().all(|d| *d <= cap));
        let low = delays.iter().filter(|d| **d < cap / 4).count();
        let high = delays.iter().filter(|d| **d > cap * 3 / 4).count();
        // Uniform: about 250 each; a constant or a narrow band fails.
        assert!((150..350).contains(&low), "{low} below 15 s");
        assert!((150..350).contains(&high), "{high} above 45 s");
    }

    #[test]
    fn retry_after_is_a_lower_bound_capped_at_the_shared_maximum() {
        let mut rng = fastrand::Rng::with_seed(3);
        let thirty = Duration::from_secs(30);
        for policy in ALL {
            for attempt in [0, 5, 40] {
                let honoured = policy.delay_with(&mut rng, attempt, Some(thirty));
                assert!(honoured >= thirty, "{policy:?} {attempt}: {honoured:?}");
                assert!(honoured <= thirty.max(policy.ceiling(attempt)));
                let huge = Some(Duration::from_secs(86_400));
                assert_eq!(policy.delay_with(&mut rng, attempt, huge), MAX_RETRY_AFTER);
            }
        }
        assert!(MAX_RETRY_AFTER >= ALL.map(|p| p.cap).into_iter().max().unwrap());
    }

    #[test]
    fn retries_count_failures_and_reset_starts_over() {
        let mut retries = seeded(Backoff::AGENT_PUSH);
        let mut ceilings = Vec::new();
        for _ in 0..5 {
            ceilings.push(retries.ceiling().as_secs());
            let ceiling = retries.ceiling();
            assert!(retries.next_delay(None) <= ceiling);
        }
        assert_eq!(ceilings, [1, 2, 4, 8, 16]);
        assert_eq!(retries.failures(), 5);
        retries.reset();
        assert_eq!(retries.failures(), 0);
        assert_eq!(retries.ceiling(), Backoff::AGENT_PUSH.base);
        assert!(retries.next_delay(None) <= Backoff::AGENT_PUSH.base);
        for _ in 0..100 {
            retries.next_delay(None);
        }
        assert_eq!(retries.ceiling(), Backoff::AGENT_PUSH.cap, "no overflow");
        let wanted = Duration::from_secs(90);
        assert!(retries.next_delay(Some(wanted)) >= wanted);
    }
}
