//! Abuse limits that are not plain validation: the per-node push rate (a token bucket) and the
//! caps on what one sample may list.
//!
//! Each node has a bucket of `push_burst` tokens; a push takes one, and one comes back every
//! `push_refill`. Requests are counted, not samples, so an agent catching up (500 samples per
//! push) is slowed only when it sends more than the refill allows after its burst, and then
//! it is told when to come back (429 with `Retry-After`). Buckets live with the node in the
//! [`Nodes`](crate::state::Nodes) table, so one node's bucket never affects another.

use std::time::{Duration, Instant};

use pivitals_common::VitalsPayload;

use crate::config::LimitsConfig;

/// A token bucket, refilled continuously.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    updated: Option<Instant>,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            tokens: f64::INFINITY,
            updated: None,
        }
    }
}

impl Bucket {
    /// Takes one token at `now`; when there is none, how long until there is.
    pub fn take(&mut self, now: Instant, burst: u32, refill: Duration) -> Result<(), Duration> {
        let burst = f64::from(burst.max(1));
        let refill = refill.as_secs_f64().max(1e-6);
        let elapsed = self.updated.map_or(0.0, |then| {
            now.saturating_duration_since(then).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed / refill).min(burst);
        self.updated = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) * refill))
        }
    }
}

/// The first list of `sample` that is longer than its cap, as a message for the client.
pub fn over_cap(limits: &LimitsConfig, sample: &VitalsPayload) -> Option<String> {
    [
        ("disks", sample.disks.len(), limits.max_disks),
        ("networks", sample.networks.len(), limits.max_interfaces),
        (
            "temperatures",
            sample.temperatures.len(),
            limits.max_sensors,
        ),
    ]
    .into_iter()
    .find(|(_, len, cap)| len > cap)
    .map(|(what, len, cap)| format!("{what}: at most {cap} per sample, got {len}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_refill() {
        let start = Instant::now();
        let refill = Duration::from_secs(2);
        let mut bucket = Bucket::default();
        for _ in 0..3 {
            bucket.take(start, 3, refill).unwrap();
        }
        let wait = bucket.take(start, 3, refill).unwrap_err();
        assert_eq!(wait, refill);
        let later = start + Duration::from_secs(1);
        let wait = bucket.take(later, 3, refill).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        bucket.take(start + refill, 3, refill).unwrap();
        assert!(bucket.take(start + refill, 3, refill).is_err());
        // A long pause refills up to the burst, not beyond.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            bucket.take(much_later, 3, refill).unwrap();
        }
        assert!(bucket.take(much_later, 3, refill).is_err());
    }

    #[test]
    fn caps_name_the_list_that_is_too_long() {
        let limits = LimitsConfig {
            max_disks: 1,
            ..LimitsConfig::default()
        };
        let mut sample = VitalsPayload::default();
        assert_eq!(over_cap(&limits, &sample), None);
        sample.disks = vec![Default::default(); 2];
        let message = over_cap(&limits, &sample).unwrap();
        assert!(message.starts_with("disks: at most 1"), "{message}");
    }
}
