//! The spool's handle: appends (answered after the group commit), ordered reads and deletes
//! for the flusher, and the figures `/metrics` shows.

use std::ops::RangeInclusive;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use thiserror::Error;
use tokio::sync::{Notify, mpsc, oneshot};

use super::committer::{self, Append};
use super::record::{self, RecordError};

pub(super) const RECORDS: TableDefinition<u64, &[u8]> = TableDefinition::new("records");

/// Appends that may wait for the committer; beyond it pushes are answered 503.
const QUEUE: usize = 8192;

#[derive(Debug, Error)]
pub enum SpoolError {
    #[error("spool database: {0}")]
    Database(#[from] redb::Error),
    #[error("spool record {seq}: {source}")]
    Record { seq: u64, source: RecordError },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for SpoolError {
            fn from(e: $t) -> Self {
                Self::Database(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

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
    pub bytes: u64,
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

#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Append>,
}

impl Spool {
    /// Opens (or creates) the spool at `path` and starts its committer task; must be called
    /// inside a tokio runtime. redb repairs the file on open after a crash.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        let db = Database::create(path)?;
        let txn = db.begin_write()?;
        txn.open_table(RECORDS)?;
        txn.commit()?;

        let (mut bytes, mut points, mut oldest) = (0u64, 0u64, i64::MIN);
        let records;
        {
            let read = db.begin_read()?;
            let table = read.open_table(RECORDS)?;
            records = table.len()?;
            for entry in table.iter()? {
                let (seq, value) = entry?;
                let record = record::decode(value.value()).map_err(|source| SpoolError::Record {
                    seq: seq.value(),
                    source,
                })?;
                bytes += value.value().len() as u64;
                points += u64::from(record.points);
                if oldest == i64::MIN {
                    oldest = record.spooled_at_ms;
                }
            }
        }
        let next_seq = {
            let read = db.begin_read()?;
            let table = read.open_table(RECORDS)?;
            table.last()?.map_or(0, |(seq, _)| seq.value() + 1)
        };

        let inner = Arc::new(Inner {
            db,
            max_bytes,
            bytes: AtomicU64::new(bytes),
            points: AtomicU64::new(points),
            records: AtomicU64::new(records),
            oldest_ms: AtomicI64::new(oldest),
            appended: Notify::new(),
        });
        let (queue, requests) = mpsc::channel(QUEUE);
        tokio::spawn(committer::run(Arc::clone(&inner), requests, next_seq));
        Ok(Self { inner, queue })
    }

    /// Puts one node's lines in the spool; returns once they are committed and synced.
    pub async fn append(&self, node: &str, lines: &[u8], points: usize) -> Result<(), AppendError> {
        let value = record::encode(node, crate::ingest::now_ms(), points as u32, lines);
        let size = value.len() as u64;
        let max_bytes = self.inner.max_bytes;
        let before = self.inner.bytes.fetch_add(size, Ordering::AcqRel);
        if before + size > max_bytes {
            self.inner.bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(AppendError::Full { max_bytes });
        }
        let (done, answer) = oneshot::channel();
        let append = Append {
            value,
            size,
            points: points as u64,
            done,
        };
        if self.queue.try_send(append).is_err() {
            self.inner.bytes.fetch_sub(size, Ordering::AcqRel);
            return Err(if self.queue.is_closed() {
                AppendError::Closed
            } else {
                AppendError::Full { max_bytes }
            });
        }
        // The committer releases the reservation itself when the commit fails.
        answer.await.unwrap_or(Err(AppendError::Closed))
    }

    /// Completes after the next append (or at once if one happened since the last wait).
    pub async fn appended(&self) {
        self.inner.appended.notified().await;
    }

    pub fn stats(&self) -> SpoolStats {
        let oldest = self.inner.oldest_ms.load(Ordering::Acquire);
        SpoolStats {
            records: self.inner.records.load(Ordering::Acquire),
            points: self.inner.points.load(Ordering::Acquire),
            bytes: self.inner.bytes.load(Ordering::Acquire),
            oldest_spooled_ms: (oldest != i64::MIN).then_some(oldest),
        }
    }

    /// The oldest records, up to `max_points` points (at least one record when any is held).
    /// Blocking.
    pub fn read_oldest(&self, max_points: usize) -> Result<SpooledBatch, SpoolError> {
        let read = self.inner.db.begin_read()?;
        let table = read.open_table(RECORDS)?;
        let mut batch = SpooledBatch::default();
        let mut first = None;
        for entry in table.iter()? {
            let (seq, value) = entry?;
            let seq = seq.value();
            let record = record::decode(value.value())
                .map_err(|source| SpoolError::Record { seq, source })?;
            let points = record.points as usize;
            if !batch.records.is_empty() && batch.points + points > max_points {
                break;
            }
            first.get_or_insert(seq);
            batch.seqs = Some(first.unwrap_or(seq)..=seq);
            batch.points += points;
            batch.bytes += value.value().len() as u64;
            batch.records.push((record.node, record.lines));
        }
        Ok(batch)
    }

    /// Deletes the records of a batch the storage answered for. Blocking.
    pub fn remove(&self, batch: &SpooledBatch) -> Result<(), SpoolError> {
        let Some(seqs) = batch.seqs.clone() else {
            return Ok(());
        };
        let mut txn = self.inner.db.begin_write()?;
        // See the module doc: a lost deletion only means a harmless rewrite.
        txn.set_durability(Durability::None)?;
        let next_oldest = {
            let mut table = txn.open_table(RECORDS)?;
            table.retain_in(seqs, |_, _| false)?;
            match table.first()? {
                Some((_, value)) => record::decode(value.value())
                    .map(|r| r.spooled_at_ms)
                    .unwrap_or(i64::MIN),
                None => i64::MIN,
            }
        };
        txn.commit()?;
        self.inner.bytes.fetch_sub(batch.bytes, Ordering::AcqRel);
        self.inner
            .points
            .fetch_sub(batch.points as u64, Ordering::AcqRel);
        self.inner
            .records
            .fetch_sub(batch.records.len() as u64, Ordering::AcqRel);
        self.inner.oldest_ms.store(next_oldest, Ordering::Release);
        Ok(())
    }
}
