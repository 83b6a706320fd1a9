//! The storage side's settings: how the flusher batches (`PIVITALS_BATCH__*`) and how much
//! the spool may hold (`PIVITALS_SPOOL__*`). InfluxDB's own are in [`super::influx`].

use std::time::Duration;

use serde::Deserialize;

use crate::serde_duration::duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BatchConfig {
    /// A batch is written as soon as it holds this many points.
    pub max_points: usize,
    /// A batch that is not full is written after this long.
    #[serde(deserialize_with = "duration")]
    pub flush_interval: Duration,
    /// Batches written to the storage at once: the next is read and sent while earlier ones
    /// wait for their answers.
    pub writes_in_flight: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpoolConfig {
    /// Record bytes the spool may hold before pushes are refused with 503.
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self { max_bytes: 1 << 30 }
    }
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_points: 5000,
            flush_interval: Duration::from_secs(10),
            writes_in_flight: 2,
        }
    }
}
