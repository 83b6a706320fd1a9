//! [`InfluxError`] (the configuration cannot work) and [`WriteError`] (one batch failed, and
//! what the caller should do with it).

use std::time::Duration;

use super::api::InfluxApi;

/// The InfluxDB settings are incomplete or malformed; the message names the variable.
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    /// `PIVITALS_INFLUX__API` is unset, so there is nothing to write to.
    #[error("no InfluxDB is configured (PIVITALS_INFLUX__API is unset)")]
    NotConfigured,
    /// A setting the chosen API needs is unset or empty.
    #[error("{var} is required when PIVITALS_INFLUX__API={api}")]
    Missing { var: &'static str, api: InfluxApi },
    /// A setting is present but unusable.
    #[error("{var} {reason}")]
    Invalid { var: &'static str, reason: String },
}

/// Why one write of a batch failed, classified the way a careful client (Telegraf's
/// `influxdb_v2` output) treats InfluxDB's answers.
///
/// | variant | batch | retry |
/// | --- | --- | --- |
/// | `PartiallyWritten` | the rest was written | no (resending would not help) |
/// | `Malformed` | nothing written | no: log and drop |
/// | `TooLarge` | nothing written | split it in halves and send those |
/// | `Refused` | nothing written | keep it, retry slowly: configuration or server state |
/// | `Transient` | nothing written | keep it, back off, honour `retry_after` |
///
/// `body` holds at most the first few KiB of the server's answer.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Some points were refused (1.x 400 "partial write", 2.x 422); the others were written.
    #[error("InfluxDB wrote only part of the batch ({status}): {body}")]
    PartiallyWritten { status: u16, body: String },
    /// The batch could not be parsed (400); nothing was written.
    #[error("InfluxDB refused the batch as malformed ({status}): {body}")]
    Malformed { status: u16, body: String },
    /// The request body is over the server's limit (413).
    #[error("InfluxDB refused the batch as too large (413)")]
    TooLarge,
    /// Credentials, database, bucket or retention policy are wrong or missing (401, 403,
    /// 404, 1.x 500 "retention policy not found", other 4xx).
    #[error("InfluxDB refused the write ({status}): {body}")]
    Refused { status: u16, body: String },
    /// Overload, server error, network error or time-out (429, 5xx, no answer).
    #[error("InfluxDB write failed{}: {detail}", status.map(|s| format!(" ({s})")).unwrap_or_default())]
    Transient {
        status: Option<u16>,
        retry_after: Option<Duration>,
        detail: String,
    },
}

impl WriteError {
    /// True when the same batch should be sent again later: [`WriteError::Refused`] (slowly,
    /// the operator has to fix something) and [`WriteError::Transient`] (with backoff).
    ///
    /// [`WriteError::TooLarge`] is false: send the halves instead.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            WriteError::Refused { .. } | WriteError::Transient { .. }
        )
    }

    /// The server's `Retry-After` (in seconds), when it sent one. Uncapped: cap it.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            WriteError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The HTTP status, if there was an answer.
    pub fn status(&self) -> Option<u16> {
        match self {
            WriteError::PartiallyWritten { status, .. }
            | WriteError::Malformed { status, .. }
            | WriteError::Refused { status, .. } => Some(*status),
            WriteError::TooLarge => Some(413),
            WriteError::Transient { status, .. } => *status,
        }
    }
}
