//! Counters about the pipeline itself (pushes, points, writes); `web` renders them as
//! Prometheus text at `GET /metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default)]
pub struct Metrics {
    pub pushes_accepted: AtomicU64,
    pub pushes_refused: AtomicU64,
    pub pushes_overloaded: AtomicU64,
    /// Pushes answered 429 because their node pushed faster than its bucket allows.
    pub pushes_rate_limited: AtomicU64,
    pub registrations: AtomicU64,
    pub samples_received: AtomicU64,
    pub points_received: AtomicU64,
    pub points_written: AtomicU64,
    pub batches_written: AtomicU64,
    pub write_requests: AtomicU64,
    pub write_seconds_micros: AtomicU64,
    /// Open HTTP connections between requests, holding only their socket (gauge).
    pub connections_parked: AtomicU64,
    /// Open HTTP connections hyper is serving (gauge).
    pub connections_serving: AtomicU64,
    /// Points the storage refused for their content, by reason.
    points_rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Failed writes by HTTP status (`network` when there was no answer).
    write_errors: Mutex<BTreeMap<String, u64>>,
    /// Alert notifications by channel name, service and result (`sent`, `failed`, `dropped`).
    notifications: Mutex<BTreeMap<(String, &'static str, &'static str), u64>>,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn observe_write(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.write_seconds_micros
            .fetch_add(micros, Ordering::Relaxed);
        self.write_requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn count_rejected(&self, reason: &'static str, points: usize) {
        *lock(&self.points_rejected).entry(reason).or_default() += points as u64;
    }

    /// Counts a failed write under its label: the HTTP status, `network` when there was no
    /// answer, `rejected` when the content was refused.
    pub fn count_write_error(&self, label: String) {
        *lock(&self.write_errors).entry(label).or_default() += 1;
    }

    /// Points refused for their content so far, by reason.
    pub fn rejected(&self) -> Vec<(&'static str, u64)> {
        lock(&self.points_rejected)
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect()
    }

    /// Failed writes so far, by label.
    pub fn write_errors(&self) -> Vec<(String, u64)> {
        lock(&self.write_errors)
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// Counts `n` alert notifications of `channel` (a `service`) with `result`; 0 only makes
    /// the series appear.
    pub fn count_notification(
        &self,
        channel: &str,
        service: &'static str,
        result: &'static str,
        n: u64,
    ) {
        *lock(&self.notifications)
            .entry((channel.to_owned(), service, result))
            .or_default() += n;
    }

    /// Alert notifications so far: (channel, service, result, count).
    pub fn notifications(&self) -> Vec<(String, &'static str, &'static str, u64)> {
        lock(&self.notifications)
            .iter()
            .map(|((c, s, r), n)| (c.clone(), *s, *r, *n))
            .collect()
    }
}
