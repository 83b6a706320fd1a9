//! Turning accepted samples into line protocol and handing them to the pipeline; shared by
//! the push route and the primary's own sampler.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pivitals_common::line_protocol::encode_sample;
use pivitals_common::{Labels, VitalsPayload};

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::spool::AppendError;
use crate::state::Shared;

/// How far ahead of the primary's clock a sample may be stamped.
pub const MAX_FUTURE: Duration = Duration::from_secs(10 * 60);
/// How old a sample may be: older points would fall outside the 365-day retention.
pub const MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Checks, encodes and spools the samples of one node; returns the number of points once
/// they are durable. Nothing is spooled unless every sample is acceptable.
pub async fn ingest(
    shared: &Shared,
    node: &str,
    labels: &Labels,
    samples: &[VitalsPayload],
) -> Result<usize, ApiError> {
    let now = now_ms();
    let earliest = now - MAX_AGE.as_millis() as i64;
    let latest = now + MAX_FUTURE.as_millis() as i64;
    let mut lines = Vec::with_capacity(samples.len() * 1024);
    let mut points = 0;
    for (i, sample) in samples.iter().enumerate() {
        if sample.timestamp_ms > latest {
            return Err(ApiError::Unprocessable(format!(
                "sample {i}: timestamp_ms {} is more than 10 minutes ahead of the primary's clock",
                sample.timestamp_ms
            )));
        }
        if sample.timestamp_ms < earliest {
            return Err(ApiError::Unprocessable(format!(
                "sample {i}: timestamp_ms {} is older than the 365-day retention",
                sample.timestamp_ms
            )));
        }
        points += encode_sample(node, labels, sample, &mut lines)
            .map_err(|e| ApiError::Unprocessable(format!("sample {i}: {e}")))?;
    }
    if points > 0 {
        shared
            .spool
            .append(node, &lines, points)
            .await
            .map_err(|e| match e {
                AppendError::Full { .. } => ApiError::Unavailable {
                    reason: "the primary's spool is full while the storage catches up; retry later",
                    retry_after: Duration::from_secs(30),
                },
                AppendError::Closed => ApiError::Unavailable {
                    reason: "the primary is shutting down",
                    retry_after: Duration::from_secs(10),
                },
                AppendError::Storage(detail) => ApiError::Internal(detail),
            })?;
    }
    Metrics::add(&shared.metrics.samples_received, samples.len());
    Metrics::add(&shared.metrics.points_received, points);
    Ok(points)
}
