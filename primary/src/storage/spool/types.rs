//! The spool's shared types: its table, its errors, what it hands out (batches, figures) and
//! the state its handle ([`super::store`]) and its committer ([`super::committer`]) share.

use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicI64, AtomicU64};

use redb::{Database, TableDefinition};
use thiserror::Error;
use tokio::sync::Notify;

use super::record::RecordError;

pub(super) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool database: {0}")]
    Database(#[from] redb::Error),
    #[error("spool record {seq}: {source}")]
    Record { seq: u64, source: RecordError },
}

crate::redb_error::from_redb_errors!(SpoolError);

#[derive(Debug, Clone, Error)]
pub enum AppendError {
    /// The spool holds `max_bytes` already: the client should keep its data and retry.
    #[error("the spool is full ({max_bytes} bytes); retry later")]
    Full { max_bytes: u64 },
    /// The committer has stopped (shutdown).
    #[error("the spool is closed")]
    Closed,
    /// The disk refused the commit.
    #[error("spool commit failed: {0}")]
    Storage(String),
}

/// Records read for one write, in sequence order.
#[derive(Debug, Default)]
pub struct SpooledBatch {
    pub seqs: Option<RangeInclusive<u64>>,
    /// (node, lines) in sequence order.
    pub records: Vec<(String, Vec<u8>)>,
    pub points: usize,
    /// The bytes the records take in the spool (their lines may be compressed there).
    pub bytes: u64,
    /// Records that could not be decoded; removed with the batch.
    pub skipped: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpoolStats {
    pub records: u64,
    pub points: u64,
    pub bytes: u64,
    /// When the oldest record still held was spooled, ms since the epoch.
    pub oldest_spooled_ms: Option<i64>,
}

pub(super) struct Inner {
    pub(super) db: Database,
    pub(super) max_bytes: u64,
    pub(super) bytes: AtomicU64,
    pub(super) points: AtomicU64,
    pub(super) records: AtomicU64,
    /// `i64::MIN` when the spool is empty.
    pub(super) oldest_ms: AtomicI64,
    pub(super) appended: Notify,
}
