//! Where batches go: InfluxDB (through `crate::influx`, the only code that talks to it) or the
//! embedded archive; and what a failed write means for the batch.

use std::sync::Arc;
use std::time::Duration;

use thiserror::Error;

use super::archive::Archive;
use crate::storage::influx::{InfluxWriter, WriteError};

pub enum Sink {
    Influx(InfluxWriter),
    Archive(Arc<Archive>),
}

#[derive(Debug, Error)]
pub enum SinkError {
    /// The storage refused the content (partial write, parse error): retrying cannot help.
    #[error("storage rejected the batch: {detail}")]
    Rejected {
        reason: &'static str,
        detail: String,
    },
    /// The batch is too large for the storage: split it.
    #[error("storage says the batch is too large")]
    TooLarge,
    /// Keep the batch and try again later; `slow` when a person must fix something first.
    #[error("storage write failed: {detail}")]
    Retry {
        after: Option<Duration>,
        slow: bool,
        /// The HTTP status, or `None` for a network or local error.
        status: Option<u16>,
        detail: String,
    },
}

impl SinkError {
    /// How `/metrics` counts this failure: the HTTP status, `network` when there was no
    /// answer, `rejected` when the content was refused.
    pub fn metric_label(&self) -> String {
        match self {
            Self::Rejected { .. } => "rejected".to_owned(),
            Self::TooLarge => "413".to_owned(),
            Self::Retry {
                status: Some(code), ..
            } => code.to_string(),
            Self::Retry { status: None, .. } => "network".to_owned(),
        }
    }
}

impl From<WriteError> for SinkError {
    fn from(err: WriteError) -> Self {
        let detail = err.to_string();
        let status = err.status();
        match err {
            WriteError::PartiallyWritten { .. } => SinkError::Rejected {
                reason: "partial_write",
                detail,
            },
            WriteError::Malformed { .. } => SinkError::Rejected {
                reason: "malformed",
                detail,
            },
            WriteError::TooLarge => SinkError::TooLarge,
            WriteError::Refused { .. } => SinkError::Retry {
                after: None,
                slow: true,
                status,
                detail,
            },
            WriteError::Transient { retry_after, .. } => SinkError::Retry {
                after: retry_after,
                slow: false,
                status,
                detail,
            },
        }
    }
}

impl Sink {
    pub fn describe(&self) -> String {
        match self {
            Sink::Influx(writer) => writer.describe(),
            Sink::Archive(archive) => format!("archive {}", archive.dir().display()),
        }
    }

    pub async fn write(&self, body: &[u8]) -> Result<(), SinkError> {
        match self {
            Sink::Influx(writer) => Ok(writer.write(body).await?),
            Sink::Archive(archive) => {
                let archive = Arc::clone(archive);
                let body = body.to_vec();
                let result = tokio::task::spawn_blocking(move || archive.append(&body)).await;
                match result {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(SinkError::Retry {
                        after: None,
                        slow: false,
                        status: None,
                        detail: format!("archive append: {e}"),
                    }),
                    Err(e) => Err(SinkError::Retry {
                        after: None,
                        slow: false,
                        status: None,
                        detail: format!("archive task: {e}"),
                    }),
                }
            }
        }
    }
}
