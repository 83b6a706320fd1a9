//! The Prometheus text exposition of `GET /metrics`: the pipeline's counters, the spool's
//! gauges and the node count per status.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::metrics::Metrics;
use crate::storage::spool::SpoolStats;

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

/// Prometheus text exposition; `nodes` is the count of nodes per status, `spool` what the
/// spool holds at `now_ms`, `alerts` how many alerts are firing and pending.
pub fn render(
    metrics: &Metrics,
    nodes: &[(&str, usize)],
    spool: &SpoolStats,
    now_ms: i64,
    alerts: (usize, usize),
) -> String {
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let mut out = String::with_capacity(2048);
    family(
        &mut out,
        "pivitals_pushes_total",
        "counter",
        "Vitals pushes by result.",
        &[
            ("{result=\"accepted\"}", get(&metrics.pushes_accepted)),
            ("{result=\"refused\"}", get(&metrics.pushes_refused)),
            ("{result=\"overloaded\"}", get(&metrics.pushes_overloaded)),
            (
                "{result=\"rate_limited\"}",
                get(&metrics.pushes_rate_limited),
            ),
        ],
    );
    family(
        &mut out,
        "pivitals_http_connections",
        "gauge",
        "Open HTTP connections: parked between requests (only their socket kept) or serving.",
        &[
            ("{state=\"parked\"}", get(&metrics.connections_parked)),
            ("{state=\"serving\"}", get(&metrics.connections_serving)),
        ],
    );
    family(
        &mut out,
        "pivitals_registrations_total",
        "counter",
        "Successful agent registrations.",
        &[("", get(&metrics.registrations))],
    );
    family(
        &mut out,
        "pivitals_samples_received_total",
        "counter",
        "Samples accepted from agents and the primary's own host.",
        &[("", get(&metrics.samples_received))],
    );
    family(
        &mut out,
        "pivitals_points_received_total",
        "counter",
        "Line-protocol points accepted and spooled (durable on the primary).",
        &[("", get(&metrics.points_received))],
    );
    family(
        &mut out,
        "pivitals_points_written_total",
        "counter",
        "Points confirmed by the storage (InfluxDB or the archive).",
        &[("", get(&metrics.points_written))],
    );
    let rejected: Vec<(String, u64)> = metrics
        .rejected()
        .into_iter()
        .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), n))
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
        &[("", get(&metrics.batches_written))],
    );
    let errors: Vec<(String, u64)> = metrics
        .write_errors()
        .into_iter()
        .map(|(status, n)| (format!("{{status=\"{status}\"}}"), n))
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
        &[("", get(&metrics.write_requests))],
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
        get(&metrics.write_seconds_micros) as f64 / 1e6
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
    let notifications: Vec<(String, u64)> = metrics
        .notifications()
        .into_iter()
        .map(|(channel, service, result, n)| {
            (
                format!(
                    "{{channel=\"{}\",service=\"{service}\",result=\"{result}\"}}",
                    escape_label(&channel)
                ),
                n,
            )
        })
        .collect();
    labelled(
        &mut out,
        "pivitals_alert_notifications_total",
        "Alert notifications by channel and result (sent: delivered; failed: one attempt failed; dropped: given up, or the queue was full).",
        &notifications,
    );
    let (firing, pending) = alerts;
    family(
        &mut out,
        "pivitals_alerts",
        "gauge",
        "Alerts by state.",
        &[
            ("{state=\"firing\"}", firing as u64),
            ("{state=\"pending\"}", pending as u64),
        ],
    );
    out
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn labelled_counters_and_spool_figures_render() {
        let metrics = Metrics::default();
        metrics.count_rejected("partial_write", 3);
        metrics.count_rejected("partial_write", 2);
        metrics.count_write_error("503".into());
        metrics.count_write_error("network".into());
        metrics.observe_write(Duration::from_millis(1500));
        let spool = SpoolStats {
            records: 2,
            points: 14,
            bytes: 900,
            oldest_spooled_ms: Some(10_000),
        };
        metrics.count_notification("phone", "ntfy", "sent", 2);
        metrics.count_notification("a\"b", "generic", "failed", 1);
        let text = render(&metrics, &[("up", 3)], &spool, 12_500, (1, 2));
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
            "pivitals_alert_notifications_total{channel=\"phone\",service=\"ntfy\",result=\"sent\"} 2",
            "pivitals_alert_notifications_total{channel=\"a\\\"b\",service=\"generic\",result=\"failed\"} 1",
            "pivitals_alerts{state=\"firing\"} 1",
            "pivitals_alerts{state=\"pending\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
