//! [`RollupStore`]: finished buckets in `DATA_DIR/rollups.redb`, one table per
//! [`Resolution`], keyed by (node name, bucket start in ms). Calls block; callers run them
//! on the blocking pool.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::bucket::{Bucket, Packed};
use super::error::RollupError;
use super::range::Range;

/// Page cache of the rollups database: reads are one node's range at a time, and what the cache
/// misses comes from the operating system's file cache; a larger one fills up to its size over
/// a long run and only holds memory (8 MiB before, of which 10,000 nodes used 2 to 3 MB in
/// their first minutes).
const CACHE_BYTES: usize = 2 * 1024 * 1024;

type BucketTable = TableDefinition<'static, (&'static str, i64), &'static [u8]>;
const MINUTE: BucketTable = TableDefinition::new("minute");
const TEN_MINUTES: BucketTable = TableDefinition::new("ten_minutes");

/// A bucket width and how long its buckets are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Resolution {
    /// 1-minute buckets, kept 7 days.
    Minute,
    /// 10-minute buckets, kept 90 days.
    TenMinutes,
}

impl Resolution {
    pub const ALL: [Resolution; 2] = [Resolution::Minute, Resolution::TenMinutes];

    pub fn bucket_ms(self) -> i64 {
        match self {
            Resolution::Minute => 60_000,
            Resolution::TenMinutes => 600_000,
        }
    }

    pub fn keep_ms(self) -> i64 {
        const DAY: i64 = 86_400_000;
        match self {
            Resolution::Minute => 7 * DAY,
            Resolution::TenMinutes => 90 * DAY,
        }
    }

    /// The resolution a range is answered from: minutes up to a day (at most 1,440 buckets
    /// read), ten minutes beyond (at most 4,320).
    pub fn for_range(range: Range) -> Resolution {
        if range.duration_ms() <= Range::Day.duration_ms() {
            Resolution::Minute
        } else {
            Resolution::TenMinutes
        }
    }

    /// The start of the bucket `ts_ms` falls in.
    pub fn bucket_of(self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.bucket_ms()) * self.bucket_ms()
    }

    fn table(self) -> BucketTable {
        match self {
            Resolution::Minute => MINUTE,
            Resolution::TenMinutes => TEN_MINUTES,
        }
    }
}

/// Where a bucket belongs: node, resolution, start.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub node: String,
    pub resolution: Resolution,
    pub start_ms: i64,
}

/// Buckets waiting to be merged into the store, in their stored form.
pub type Pending = BTreeMap<BucketKey, Packed>;

#[derive(Clone)]
pub struct RollupStore {
    db: Arc<Database>,
}

impl RollupStore {
    pub fn open(path: &Path) -> Result<Self, RollupError> {
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        let txn = db.begin_write()?;
        for resolution in Resolution::ALL {
            txn.open_table(resolution.table())?;
        }
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Merges `pending` into the stored buckets and deletes the buckets older than each
    /// resolution's keep before `now_ms`, in one transaction. Pending minutes are merged into
    /// their ten-minute buckets as well.
    pub fn write(&self, pending: &Pending, now_ms: i64) -> Result<(), RollupError> {
        let txn = self.db.begin_write()?;
        for resolution in Resolution::ALL {
            let mut table = txn.open_table(resolution.table())?;
            // In key order a node's finer buckets come first and ascending, so the ones that
            // fall in the same coarser bucket are neighbours: fold each run, then merge it.
            let mut run: Option<((&str, i64), Bucket)> = None;
            for (key, bucket) in pending.iter().filter(|(k, _)| k.resolution <= resolution) {
                let at = (key.node.as_str(), resolution.bucket_of(key.start_ms));
                match &mut run {
                    Some((run_at, folded)) if *run_at == at => folded.merge(&bucket.bucket()),
                    _ => {
                        if let Some((run_at, folded)) = run.replace((at, bucket.bucket())) {
                            merge_into(&mut table, run_at, folded)?;
                        }
                    }
                }
            }
            if let Some((run_at, folded)) = run {
                merge_into(&mut table, run_at, folded)?;
            }
            let cutoff = now_ms - resolution.keep_ms();
            for node in nodes_in(&table)? {
                table.retain_in(
                    (node.as_str(), i64::MIN)..(node.as_str(), cutoff),
                    |_, _| false,
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// The stored buckets of `node` at `resolution` starting in `from_ms..=to_ms`, ascending.
    pub fn read(
        &self,
        node: &str,
        resolution: Resolution,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Vec<(i64, Bucket)>, RollupError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(resolution.table())?;
        let mut out = Vec::new();
        for entry in table.range((node, from_ms)..=(node, to_ms))? {
            let (key, value) = entry?;
            if let Some(bucket) = Bucket::decode(value.value()) {
                out.push((key.value().1, bucket));
            }
        }
        Ok(out)
    }

    /// Deletes every bucket of `node`.
    pub fn remove_node(&self, node: &str) -> Result<(), RollupError> {
        let txn = self.db.begin_write()?;
        for resolution in Resolution::ALL {
            txn.open_table(resolution.table())?
                .retain_in((node, i64::MIN)..=(node, i64::MAX), |_, _| false)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// How many buckets are stored at `resolution` (for tests and the size figures).
    pub fn count(&self, resolution: Resolution) -> Result<u64, RollupError> {
        let txn = self.db.begin_read()?;
        Ok(txn.open_table(resolution.table())?.len()?)
    }
}

/// Merges `bucket` into the stored bucket at `key` (node, start), or stores it.
fn merge_into(
    table: &mut redb::Table<'_, (&'static str, i64), &'static [u8]>,
    key: (&str, i64),
    mut bucket: Bucket,
) -> Result<(), RollupError> {
    if let Some(stored) = table.get(key)?
        && let Some(stored) = Bucket::decode(stored.value())
    {
        bucket.merge(&stored);
    }
    table.insert(key, bucket.encode().as_slice())?;
    Ok(())
}

/// The node names a table holds buckets of, one seek per node.
fn nodes_in(
    table: &impl ReadableTable<(&'static str, i64), &'static [u8]>,
) -> Result<Vec<String>, RollupError> {
    let mut nodes: Vec<String> = Vec::new();
    loop {
        let next = match nodes.last() {
            None => table.first()?.map(|(k, _)| k.value().0.to_owned()),
            Some(last) => {
                let mut after = table.range((last.as_str(), i64::MAX)..)?;
                let mut found = None;
                for entry in after.by_ref() {
                    let (key, _) = entry?;
                    let name = key.value().0;
                    if name != last {
                        found = Some(name.to_owned());
                        break;
                    }
                }
                found
            }
        };
        match next {
            Some(name) => nodes.push(name),
            None => return Ok(nodes),
        }
    }
}
