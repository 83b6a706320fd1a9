//! The 365-day retention pivitals asks of InfluxDB, and what checking it found.
//!
//! InfluxDB deletes points older than a bucket's (2.x), retention policy's (1.x) or
//! database's (3) duration. Pivitals wants a year of vitals: it creates the bucket, retention
//! policy or InfluxDB 3 database with 365 days when missing, and only warns when one exists
//! with another duration (an operator may have chosen that on purpose; InfluxDB 3 Core cannot
//! change it later).

use std::fmt;
use std::time::Duration;

/// 365 days in seconds, the `everySeconds` of a 2.x bucket's expire rule.
pub const RETENTION_SECONDS: u64 = 365 * 24 * 60 * 60;

/// 365 days: 1.x shows it as `8760h0m0s`.
pub const RETENTION: Duration = Duration::from_secs(RETENTION_SECONDS);

/// What [`InfluxWriter::ensure_retention`](super::InfluxWriter::ensure_retention) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetentionOutcome {
    /// The bucket, database or retention policy was missing and is now created with 365 days.
    Created,
    /// It exists with 365 days.
    AlreadyOk,
    /// It exists with another retention, left as it is; `found` is that retention
    /// (`infinite`, `30days`, …).
    Differs { found: String },
    /// The retention could not be checked (no bucket API, no rights, no answer); writing
    /// goes on regardless.
    Unverified { reason: String },
}

impl fmt::Display for RetentionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetentionOutcome::Created => write!(f, "created with 365 days"),
            RetentionOutcome::AlreadyOk => write!(f, "already 365 days"),
            RetentionOutcome::Differs { found } => write!(f, "{found} instead of 365 days"),
            RetentionOutcome::Unverified { reason } => write!(f, "could not be verified: {reason}"),
        }
    }
}

impl RetentionOutcome {
    /// Logs the outcome once: info when fine, one warning when it differs or is unverified.
    /// `what` names the bucket or retention policy and the server, without secrets.
    pub(crate) fn log(&self, what: &str) {
        match self {
            RetentionOutcome::Created => {
                tracing::info!("{what}: created with a retention of 365 days")
            }
            RetentionOutcome::AlreadyOk => {
                tracing::info!("{what}: retention is 365 days")
            }
            RetentionOutcome::Differs { found } => tracing::warn!(
                "{what}: retention is {found}, not the 365 days pivitals expects; \
                 left unchanged (change it in InfluxDB if that is not what you want)"
            ),
            RetentionOutcome::Unverified { reason } => tracing::warn!(
                "{what}: could not verify or create the 365-day retention ({reason}); \
                 writing anyway, check the retention in InfluxDB yourself"
            ),
        }
    }
}

/// A retention in seconds as people read it; 0 is `infinite`.
pub(crate) fn human(seconds: u64) -> String {
    if seconds == 0 {
        "infinite".to_owned()
    } else {
        humantime::format_duration(Duration::from_secs(seconds)).to_string()
    }
}

/// Parses an InfluxQL duration as 1.x shows it (`8760h0m0s`, `0s`, `1h30m0s`) into whole
/// seconds; `None` when it is not of that form.
pub(crate) fn parse_go_duration(text: &str) -> Option<u64> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(digits);
        let number: f64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale: f64 = match unit {
            "h" => 3_600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        nanos += (number * scale) as u128;
        rest = tail;
    }
    u64::try_from(nanos / 1_000_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_influxql_durations() {
        assert_eq!(parse_go_duration("8760h0m0s"), Some(RETENTION_SECONDS));
        assert_eq!(parse_go_duration("0s"), Some(0));
        assert_eq!(parse_go_duration("1h30m0s"), Some(5400));
        assert_eq!(parse_go_duration("720h0m0s"), Some(30 * 86_400));
        assert_eq!(parse_go_duration("1.5s"), Some(1));
        assert_eq!(parse_go_duration("forever"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn humanises_retention() {
        assert_eq!(human(0), "infinite");
        assert_eq!(human(30 * 86_400), "30days");
    }
}
