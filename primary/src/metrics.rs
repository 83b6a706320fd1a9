//! Counters about the pipeline itself, rendered as Prometheus text at `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::spool::SpoolStats;

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
    pub registrations: AtomicU64,
    pub samples_received: AtomicU64,
    pub points_received: AtomicU64,
    pub points_written: AtomicU64,
    pub points_rejected: AtomicU64,
    pub batches_written: AtomicU64,
    pub write_errors_transient: AtomicU64,
    pub write_errors_refused: AtomicU64,
    pub write_errors_rejected: AtomicU64,
    pub write_seconds_micros: AtomicU64,
}

impl Metrics {
    pub fn add(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub fn observe_write(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.write_seconds_micros.fetch_add(micros, Ordering::Relaxed);
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
            "Line-protocol points accepted for writing.",
            &[("", get(&self.points_received))],
        );
        family(
            &mut out,
            "pivitals_points_written_total",
            "counter",
            "Points confirmed by the storage (InfluxDB or the archive).",
            &[("", get(&self.points_written))],
        );
        family(
            &mut out,
            "pivitals_points_rejected_total",
            "counter",
            "Points in batches the storage refused for their content (not retried).",
            &[("", get(&self.points_rejected))],
        );
        family(
            &mut out,
            "pivitals_batches_written_total",
            "counter",
            "Batches confirmed by the storage.",
            &[("", get(&self.batches_written))],
        );
        family(
            &mut out,
            "pivitals_write_errors_total",
            "counter",
            "Failed batch writes by kind.",
            &[
                ("{kind=\"transient\"}", get(&self.write_errors_transient)),
                ("{kind=\"refused\"}", get(&self.write_errors_refused)),
                ("{kind=\"rejected\"}", get(&self.write_errors_rejected)),
            ],
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
