//! When to try a failed storage write again: capped exponential backoff with full jitter,
//! never sooner than the server's `Retry-After`, and slowly for answers that need a person
//! (wrong token, missing bucket or database).

use std::time::Duration;

pub const BASE: Duration = Duration::from_millis(500);
pub const CAP: Duration = Duration::from_secs(30);
/// Wait between attempts while the storage refuses us for a reason a person must fix.
pub const SLOW: Duration = Duration::from_secs(30);

/// Delay before retry number `attempt` (0 for the first retry), given an optional server hint.
pub fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = BASE.saturating_mul(1u32 << attempt.min(16)).min(CAP);
    let jittered = ceiling.mul_f64(fastrand::f64());
    match retry_after {
        Some(hint) => jittered.max(hint.min(CAP * 5)),
        None => jittered,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_stay_under_a_growing_cap() {
        for attempt in 0..40 {
            let ceiling = BASE.saturating_mul(1u32 << attempt.min(16)).min(CAP);
            for _ in 0..50 {
                assert!(delay(attempt, None) <= ceiling);
            }
        }
        assert!(delay(30, None) <= CAP);
    }

    #[test]
    fn retry_after_is_honoured_but_bounded() {
        assert!(delay(0, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
        assert!(delay(0, Some(Duration::from_secs(86_400))) <= CAP * 5);
    }
}
