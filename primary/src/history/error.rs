//! [`RollupError`]: the rollups database or its blocking task failed.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RollupError {
    #[error("rollups database: {0}")]
    Database(#[from] redb::Error),
    #[error("rollups task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

crate::redb_error::from_redb_errors!(RollupError);
