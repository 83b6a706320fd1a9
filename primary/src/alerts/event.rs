//! What the alert engine reports ([`Event`]) and the one line a phone shows for it
//! ([`Event::message`], e.g. `pi-07 hot: temperature cpu_thermal 82.1 °C > 80 for 2m`).
//!
//! A value's unit comes from its field's name: `_percent` is %, `celsius` °C, `_bytes` bytes
//! (shown as KiB, MiB, …), `_per_second` a rate; the message names the measurement, the
//! series (the mount, sensor, interface or device) and what is left of the field's name.

use std::fmt::Write as _;
use std::sync::Arc;

use super::rules::{Comparison, Condition, Metric};

/// One change worth telling someone about.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub rule: Arc<str>,
    pub node: String,
    /// The series' tags besides `node` and labels, in schema order (`mount`, `device`,
    /// `fstype`; `sensor`; …); empty for a node-wide field and for node down.
    pub series: Vec<(&'static str, String)>,
    pub kind: EventKind,
    pub condition: Condition,
    /// The value that caused the event; the last value seen for [`EventKind::ResolvedNoData`];
    /// `None` for node down.
    pub value: Option<f64>,
    /// When the condition began to hold (the first sample of the pending state), ms since
    /// the epoch.
    pub since_ms: i64,
    /// When the event happened: the sample's timestamp, or the time the node went down, came
    /// back or was gone.
    pub at_ms: i64,
    /// The rule's channels; empty means every channel.
    pub channels: Arc<[String]>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The condition held for the rule's `for`.
    Firing,
    /// Still firing, `repeat` after the last notification.
    Repeat,
    /// The condition no longer holds.
    Resolved,
    /// No data to judge by any more: the node was deleted or stopped, or the series stopped
    /// appearing in its samples.
    ResolvedNoData,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Firing => "firing",
            EventKind::Repeat => "repeat",
            EventKind::Resolved => "resolved",
            EventKind::ResolvedNoData => "resolved_no_data",
        }
    }
}

impl Event {
    pub fn metric(&self) -> Option<Metric> {
        match self.condition {
            Condition::NodeDown => None,
            Condition::Threshold { metric, .. } => Some(metric),
        }
    }

    pub fn comparison(&self) -> Option<Comparison> {
        match self.condition {
            Condition::NodeDown => None,
            Condition::Threshold { comparison, .. } => Some(comparison),
        }
    }

    pub fn threshold(&self) -> Option<f64> {
        match self.condition {
            Condition::NodeDown => None,
            Condition::Threshold { threshold, .. } => Some(threshold),
        }
    }

    /// A short title: node, rule and, unless firing, what happened (`pi-07 hot resolved`).
    pub fn title(&self) -> String {
        let suffix = match self.kind {
            EventKind::Firing => "",
            EventKind::Repeat => " still firing",
            EventKind::Resolved => " resolved",
            EventKind::ResolvedNoData => " resolved (no data)",
        };
        format!("{} {}{suffix}", self.node, self.rule)
    }

    /// The one line a phone shows: node, rule, what, value, threshold and for how long.
    pub fn message(&self) -> String {
        let mut line = self.title();
        line.push_str(": ");
        let elapsed = compact_duration(self.at_ms.saturating_sub(self.since_ms));
        let Condition::Threshold {
            metric,
            comparison,
            threshold,
        } = self.condition
        else {
            line.push_str(match self.kind {
                EventKind::Firing | EventKind::Repeat => "status down",
                EventKind::Resolved => "up again",
                EventKind::ResolvedNoData => "node stopped or deleted",
            });
            if self.kind != EventKind::Firing {
                let _ = write!(line, " after {elapsed}");
            }
            return line;
        };
        let (stem, unit) = unit_of(metric.field());
        line.push_str(metric.measurement());
        if let Some((_, value)) = self.series.first() {
            line.push(' ');
            line.push_str(value);
        }
        for part in [Some(stem), extreme_of(metric.field())]
            .into_iter()
            .flatten()
        {
            if !part.is_empty() {
                line.push(' ');
                line.push_str(part);
            }
        }
        let value = self.value.map(|v| unit.format(v, true));
        let rule = format!("{} {}", comparison.symbol(), unit.format(threshold, false));
        let held = self.at_ms - self.since_ms >= 1000;
        let _ = match (self.kind, value) {
            (EventKind::Resolved, Some(v)) => write!(line, " {v}, was {rule} for {elapsed}"),
            (EventKind::ResolvedNoData, Some(v)) => {
                write!(line, " last {v} {rule}, was firing for {elapsed}")
            }
            (_, Some(v)) if held => write!(line, " {v} {rule} for {elapsed}"),
            (_, Some(v)) => write!(line, " {v} {rule}"),
            (_, None) => write!(line, " {rule}"),
        };
        line
    }
}

/// How a field's values read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    None,
    Percent,
    Celsius,
    Bytes,
    BytesPerSecond,
    PerSecond,
    Megahertz,
    Seconds,
    Milliseconds,
    Rpm,
}

/// The field's name without its unit and `_min`/`_max` (`used_percent` → `used`, `celsius` →
/// ``), and its unit.
fn unit_of(field: &'static str) -> (&'static str, Unit) {
    let base = field
        .strip_suffix("_min")
        .or_else(|| field.strip_suffix("_max"))
        .unwrap_or(field);
    if base == "celsius" {
        return ("", Unit::Celsius);
    }
    for (suffix, unit) in [
        ("_bytes_per_second", Unit::BytesPerSecond),
        ("_per_second", Unit::PerSecond),
        ("_percent", Unit::Percent),
        ("_bytes", Unit::Bytes),
        ("_mhz", Unit::Megahertz),
        ("_seconds", Unit::Seconds),
        ("_ms", Unit::Milliseconds),
        ("_rpm", Unit::Rpm),
    ] {
        if let Some(stem) = base.strip_suffix(suffix) {
            return (stem, unit);
        }
    }
    (base, Unit::None)
}

fn extreme_of(field: &str) -> Option<&'static str> {
    if field.ends_with("_min") {
        Some("min")
    } else if field.ends_with("_max") {
        Some("max")
    } else {
        None
    }
}

impl Unit {
    /// A value with its unit; a threshold (`with_unit` false) keeps only a byte unit, which a
    /// bare number would hide.
    fn format(self, value: f64, with_unit: bool) -> String {
        let bytes = matches!(self, Unit::Bytes | Unit::BytesPerSecond);
        if bytes {
            let text = human_bytes(value);
            return match self {
                Unit::BytesPerSecond if with_unit => format!("{text}/s"),
                _ => text,
            };
        }
        let number = number(value);
        let unit = match self {
            _ if !with_unit => return number,
            Unit::None => return number,
            Unit::Percent => "%",
            Unit::Celsius => "°C",
            Unit::PerSecond => return format!("{number}/s"),
            Unit::Megahertz => "MHz",
            Unit::Seconds => "s",
            Unit::Milliseconds => "ms",
            Unit::Rpm => "rpm",
            Unit::Bytes | Unit::BytesPerSecond => "",
        };
        format!("{number} {unit}")
    }
}

/// A number as a person reads it: whole numbers without decimals, otherwise one decimal from
/// 10 up and two below (`82.1`, `0.25`).
fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    let text = if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    };
    let text = text.trim_end_matches('0').trim_end_matches('.');
    text.to_owned()
}

/// Bytes in binary units with one decimal (`512 B`, `1.5 GiB`).
fn human_bytes(value: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut scaled = value;
    let mut unit = 0;
    while scaled.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        scaled /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{} B", number(scaled.round()))
    } else {
        let text = format!("{scaled:.1}");
        let text = text.strip_suffix(".0").unwrap_or(&text);
        format!("{text} {}", UNITS[unit])
    }
}

/// A duration in its two largest units (`45s`, `2m`, `2m5s`, `1h2m`, `3d4h`).
pub fn compact_duration(ms: i64) -> String {
    let mut left = ms.max(0) / 1000;
    if left == 0 {
        return "0s".to_owned();
    }
    let mut text = String::new();
    let mut parts = 0;
    for (size, unit) in [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")] {
        let n = left / size;
        left %= size;
        if n > 0 {
            let _ = write!(text, "{n}{unit}");
            parts += 1;
        }
        if parts == 2 || (parts > 0 && n == 0) {
            break;
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::rules::Metric;

    fn event(metric: &str, comparison: Comparison, threshold: f64, value: f64) -> Event {
        Event {
            rule: "rule".into(),
            node: "pi-07".into(),
            series: Vec::new(),
            kind: EventKind::Firing,
            condition: Condition::Threshold {
                metric: Metric::parse(metric).unwrap(),
                comparison,
                threshold,
            },
            value: Some(value),
            since_ms: 1_000_000,
            at_ms: 1_120_000,
            channels: Arc::from(Vec::new()),
        }
    }

    #[test]
    fn the_issue_example() {
        let e = Event {
            rule: "hot".into(),
            series: vec![("sensor", "cpu_thermal".into())],
            ..event("temperature.celsius", Comparison::Above, 80.0, 82.1)
        };
        assert_eq!(
            e.message(),
            "pi-07 hot: temperature cpu_thermal 82.1 °C > 80 for 2m"
        );
        assert_eq!(e.title(), "pi-07 hot");
    }

    #[test]
    fn every_kind_reads_as_a_line() {
        let firing = Event {
            rule: "disk full".into(),
            series: vec![
                ("mount", "/mnt/usb".into()),
                ("device", "/dev/sda1".into()),
                ("fstype", "ext4".into()),
            ],
            ..event("disk.used_percent", Comparison::Above, 90.0, 93.0)
        };
        assert_eq!(
            firing.message(),
            "pi-07 disk full: disk /mnt/usb used 93 % > 90 for 2m"
        );
        let repeat = Event {
            kind: EventKind::Repeat,
            at_ms: 1_000_000 + 3_725_000,
            ..firing.clone()
        };
        assert_eq!(
            repeat.message(),
            "pi-07 disk full still firing: disk /mnt/usb used 93 % > 90 for 1h2m"
        );
        let resolved = Event {
            kind: EventKind::Resolved,
            value: Some(88.0),
            ..firing.clone()
        };
        assert_eq!(
            resolved.message(),
            "pi-07 disk full resolved: disk /mnt/usb used 88 %, was > 90 for 2m"
        );
        let gone = Event {
            kind: EventKind::ResolvedNoData,
            ..firing.clone()
        };
        assert_eq!(
            gone.message(),
            "pi-07 disk full resolved (no data): disk /mnt/usb used last 93 % > 90, was firing for 2m"
        );
        assert_eq!(gone.title(), "pi-07 disk full resolved (no data)");
        let instant = Event {
            since_ms: firing.at_ms,
            ..event("power.under_voltage_events", Comparison::Above, 0.0, 2.0)
        };
        assert_eq!(
            instant.message(),
            "pi-07 rule: power under_voltage_events 2 > 0",
            "no `for 0s`"
        );
    }

    #[test]
    fn node_down_reads_as_a_line() {
        let down = Event {
            rule: "node down".into(),
            condition: Condition::NodeDown,
            value: None,
            since_ms: 1_000_000,
            at_ms: 1_000_000,
            ..event("cpu.usage_percent", Comparison::Above, 0.0, 0.0)
        };
        assert_eq!(down.message(), "pi-07 node down: status down");
        let up = Event {
            kind: EventKind::Resolved,
            at_ms: 1_000_000 + 720_000,
            ..down.clone()
        };
        assert_eq!(up.message(), "pi-07 node down resolved: up again after 12m");
        let gone = Event {
            kind: EventKind::ResolvedNoData,
            ..up
        };
        assert_eq!(
            gone.message(),
            "pi-07 node down resolved (no data): node stopped or deleted after 12m"
        );
    }

    #[test]
    fn units_come_from_field_names() {
        let cases = [
            (
                "mem.used_bytes",
                1.5 * 1024.0 * 1024.0 * 1024.0,
                "mem used 1.5 GiB > 1 GiB",
            ),
            ("cpu.usage_percent_max", 99.5, "cpu usage max 99.5 % > 1"),
            ("temperature.celsius_max", 85.0, "temperature max 85 °C > 1"),
            ("net.rx_bytes_per_second", 2048.0, "net rx 2 KiB/s > 1 B"),
            ("net.rx_errors_per_second", 0.25, "net rx_errors 0.25/s > 1"),
            ("cpu.frequency_mhz", 600.0, "cpu frequency 600 MHz > 1"),
            ("power.fan_rpm", 0.0, "power fan 0 rpm > 1"),
            ("system.load1", 4.333, "system load1 4.33 > 1"),
            ("system.throttled", 1.0, "system throttled 1 > 1"),
            (
                "disk.inodes_used_percent",
                97.0,
                "disk inodes_used 97 % > 1",
            ),
        ];
        for (metric, value, expected) in cases {
            let threshold = if metric == "mem.used_bytes" {
                1024.0 * 1024.0 * 1024.0
            } else {
                1.0
            };
            let e = Event {
                since_ms: 1_120_000,
                ..event(metric, Comparison::Above, threshold, value)
            };
            assert_eq!(e.message(), format!("pi-07 rule: {expected}"), "{metric}");
        }
        let below = Event {
            since_ms: 1_120_000,
            ..event(
                "mem.available_bytes",
                Comparison::Below,
                100.0 * 1024.0 * 1024.0,
                5e7,
            )
        };
        assert_eq!(
            below.message(),
            "pi-07 rule: mem available 47.7 MiB < 100 MiB"
        );
        assert_eq!(human_bytes(512.0), "512 B");
    }

    #[test]
    fn durations_read_compactly() {
        for (ms, text) in [
            (0, "0s"),
            (999, "0s"),
            (45_000, "45s"),
            (120_000, "2m"),
            (125_000, "2m5s"),
            (3_600_000, "1h"),
            (3_725_000, "1h2m"),
            (3_605_000, "1h"),
            (97_200_000, "1d3h"),
            (-5, "0s"),
        ] {
            assert_eq!(compact_duration(ms), text, "{ms}");
        }
    }
}
