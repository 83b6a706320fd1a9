//! When to try a failed storage write again: the common [`Backoff::STORAGE_WRITE`] (capped
//! exponential backoff with full jitter, never sooner than the server's capped `Retry-After`),
//! and [`SLOW`] for answers that need a person (wrong token, missing bucket or database).

use std::time::Duration;

use pivitals_common::Backoff;

/// Wait between attempts while the storage refuses us for a reason a person must fix.
pub const SLOW: Duration = Duration::from_secs(30);

/// Delay before retry number `attempt` (0 for the first retry), given an optional server hint.
pub fn delay(attempt: u32, retry_after: Option<Duration>) -> Duration {
    Backoff::STORAGE_WRITE.delay(attempt, retry_after)
}
