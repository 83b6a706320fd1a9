//! Counters about the pipeline itself, rendered as Prometheus text at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::pipeline::sink::SinkError;
use crate::spool::SpoolStats;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Writes a counter family whose label sets are only known at run time.
fn labelled(out: &mut String, name: &str, help: &str, samples: &[(String, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
}

/// Writes one metric family: its help, its type and its samples (label set, value).
fn family(out: &mut String, name: &str, kind: &str, help: &str, samples: &[(&str, u64)]) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    for (labels, value) in samples {
        let _ = writeln!(out, "{name}{labels} {value}");
    }
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
    /// Points the storage refused for their content, by reason.
    points_rejected: Mutex<BTreeMap<&'static str, u64>>,
    /// Failed writes by HTTP status (`network` when there was no answer).
    write_errors: Mutex<BTreeMap<String, u64>>,
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

    pub fn count_write_error(&self, err: &SinkError) {
        let status = match err {
            SinkError::Rejected { .. } => None,
            SinkError::TooLarge => Some(413),
            SinkError::Retry { status, .. } => *status,
        };
        let key = match (err, status) {
            (SinkError::Rejected { .. }, _) => "rejected".to_owned(),
            (_, Some(code)) => code.to_string(),
            (_, None) => "network".to_owned(),
        };
        *lock(&self.write_errors).entry(key).or_default() += 1;
    }

    /// Prometheus text exposition; `nodes` is the count of nodes per status, `spool` what the
    /// spool holds at `now_ms`.
    pub fn render(&self, nodes: &[(&str, usize)], spool: &SpoolStats, now_ms: i64) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::with_capacity(2048);
        family(
            &mut out,
            "pivitals_pushes_total",
            "counter",
            "Vitals pushes by result.",
            &[
                ("{result=\"accepted\"}", get(&self.pushes_accepted)),
                ("{result=\"refused\"}", get(&self.pushes_refused)),
                ("{result=\"overloaded\"}", get(&self.pushes_overloaded)),
                ("{result=\"rate_limited\"}", get(&self.pushes_rate_limited)),
            ],
        );
        family(
            &mut out,
            "pivitals_registrations_total",
            "counter",
            "Successful agent registrations.",
            &[("", get(&self.registrations))],
        );
        family(
            &mut out,
            "pivitals_samples_received_total",
            "counter",
            "Samples accepted from agents and the primary's own host.",
            &[("", get(&self.samples_received))],
        );
        family(
            &mut out,
            "pivitals_points_received_total",
            "counter",
            "Line-protocol points accepted and spooled (durable on the primary).",
            &[("", get(&self.points_received))],
        );
        family(
            &mut out,
            "pivitals_points_written_total",
            "counter",
            "Points confirmed by the storage (InfluxDB or the archive).",
            &[("", get(&self.points_written))],
        );
        let rejected: Vec<(String, u64)> = lock(&self.points_rejected)
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n))
            .collect();
        labelled(
            &mut out,
            "pivitals_points_rejected_total",
            "Points the storage refused for their content (not retried), by reason.",
            &rejected,
        );
        family(
            &mut out,
            "pivitals_batches_written_total",
            "counter",
            "Batches confirmed by the storage.",
            &[("", get(&self.batches_written))],
        );
        let errors: Vec<(String, u64)> = lock(&self.write_errors)
            .iter()
            .map(|(status, n)| (format!("{{status=\"{status}\"}}"), *n))
            .collect();
        labelled(
            &mut out,
            "pivitals_write_errors_total",
            "Failed storage writes by HTTP status (network: no answer; rejected: content refused).",
            &errors,
        );
        family(
            &mut out,
            "pivitals_write_requests_total",
            "counter",
            "Storage write requests (their total time is pivitals_write_seconds_total).",
            &[("", get(&self.write_requests))],
        );
        family(
            &mut out,
            "pivitals_write_seconds_total",
            "counter",
            "Time spent in storage writes.",
            &[],
        );
        let _ = writeln!(
            out,
            "pivitals_write_seconds_total {:.6}",
            get(&self.write_seconds_micros) as f64 / 1e6
        );
        family(
            &mut out,
            "pivitals_spool_points",
            "gauge",
            "Points accepted and durable on the primary, not yet confirmed by the storage.",
            &[("", spool.points)],
        );
        family(
            &mut out,
            "pivitals_spool_bytes",
            "gauge",
            "Record bytes held by the spool (bounded by PIVITALS_SPOOL__MAX_BYTES).",
            &[("", spool.bytes)],
        );
        family(
            &mut out,
            "pivitals_spool_records",
            "gauge",
            "Pushes held by the spool.",
            &[("", spool.records)],
        );
        let age = spool
            .oldest_spooled_ms
            .map_or(0.0, |ms| (now_ms - ms).max(0) as f64 / 1000.0);
        family(
            &mut out,
            "pivitals_spool_oldest_age_seconds",
            "gauge",
            "Age of the oldest point not yet confirmed by the storage (0 when none).",
            &[],
        );
        let _ = writeln!(out, "pivitals_spool_oldest_age_seconds {age:.3}");
        let _ = writeln!(
            out,
            "# HELP pivitals_nodes Registered nodes by status.\n# TYPE pivitals_nodes gauge"
        );
        for (status, count) in nodes {
            let _ = writeln!(out, "pivitals_nodes{{status=\"{status}\"}} {count}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labelled_counters_and_spool_figures_render() {
        let metrics = Metrics::default();
        metrics.count_rejected("partial_write", 3);
        metrics.count_rejected("partial_write", 2);
        metrics.count_write_error(&SinkError::Retry {
            after: None,
            slow: false,
            status: Some(503),
            detail: String::new(),
        });
        metrics.count_write_error(&SinkError::Retry {
            after: None,
            slow: false,
            status: None,
            detail: String::new(),
        });
        metrics.observe_write(Duration::from_millis(1500));
        let spool = SpoolStats {
            records: 2,
            points: 14,
            bytes: 900,
            oldest_spooled_ms: Some(10_000),
        };
        let text = metrics.render(&[("up", 3)], &spool, 12_500);
        for line in [
            "pivitals_points_rejected_total{reason=\"partial_write\"} 5",
            "pivitals_write_errors_total{status=\"503\"} 1",
            "pivitals_write_errors_total{status=\"network\"} 1",
            "pivitals_write_requests_total 1",
            "pivitals_write_seconds_total 1.500000",
            "pivitals_spool_points 14",
            "pivitals_spool_bytes 900",
            "pivitals_spool_oldest_age_seconds 2.500",
            "pivitals_nodes{status=\"up\"} 3",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
