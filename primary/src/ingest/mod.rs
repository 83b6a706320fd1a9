//! Accepted samples into the spool: checks their timestamps, encodes them into line protocol
//! and appends one node's lines as one spool record; shared by the push route and the
//! primary's own sampler ([`self_monitor`]).
//!
//! Nothing is spooled unless every sample of the call is acceptable, and a call returns only
//! once its points are durable. Failures are [`IngestError`]s; `web` decides what they answer.

pub mod self_monitor;

use std::time::Duration;

use pivitals_common::line_protocol::{EncodeError, encode_sample};
use pivitals_common::{Labels, VitalsPayload};
use thiserror::Error;

use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::state::Shared;
use crate::storage::spool::AppendError;

/// How far ahead of the primary's clock a sample may be stamped.
pub const MAX_FUTURE: Duration = Duration::from_secs(10 * 60);
/// How old a sample may be: older points would fall outside the 365-day retention.
pub const MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// Why samples were not ingested. The first three are the sender's fault (nothing was
/// stored); the others are the primary's state (the sender should retry later).
#[derive(Debug, Error)]
pub enum IngestError {
    #[error(
        "sample {index}: timestamp_ms {timestamp_ms} is more than 10 minutes ahead of the primary's clock"
    )]
    AheadOfClock { index: usize, timestamp_ms: i64 },
    #[error("sample {index}: timestamp_ms {timestamp_ms} is older than the 365-day retention")]
    TooOld { index: usize, timestamp_ms: i64 },
    #[error("sample {index}: {source}")]
    Unencodable { index: usize, source: EncodeError },
    #[error("the primary's spool is full while the storage catches up; retry later")]
    SpoolFull,
    #[error("the primary is shutting down")]
    ShuttingDown,
    #[error("spool: {0}")]
    Spool(String),
}

/// Checks, encodes and spools the samples of one node; returns the number of points once
/// they are durable. Nothing is spooled unless every sample is acceptable.
pub async fn ingest(
    shared: &Shared,
    node: &str,
    labels: &Labels,
    samples: &[VitalsPayload],
) -> Result<usize, IngestError> {
    let now = now_ms();
    let earliest = now - MAX_AGE.as_millis() as i64;
    let latest = now + MAX_FUTURE.as_millis() as i64;
    let mut lines = Vec::with_capacity(samples.len() * 1024);
    let mut points = 0;
    for (index, sample) in samples.iter().enumerate() {
        let timestamp_ms = sample.timestamp_ms;
        if timestamp_ms > latest {
            return Err(IngestError::AheadOfClock {
                index,
                timestamp_ms,
            });
        }
        if timestamp_ms < earliest {
            return Err(IngestError::TooOld {
                index,
                timestamp_ms,
            });
        }
        points += encode_sample(node, labels, sample, &mut lines)
            .map_err(|source| IngestError::Unencodable { index, source })?;
    }
    if points > 0 {
        shared
            .spool
            .append(node, &lines, points)
            .await
            .map_err(|e| match e {
                AppendError::Full { .. } => IngestError::SpoolFull,
                AppendError::Closed => IngestError::ShuttingDown,
                AppendError::Storage(detail) => IngestError::Spool(detail),
            })?;
    }
    Metrics::add(&shared.metrics.samples_received, samples.len());
    Metrics::add(&shared.metrics.points_received, points);
    Ok(points)
}
