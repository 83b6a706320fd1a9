//! The spool's handle: appends (answered after the group commit), ordered reads and deletes
//! for the flusher, and the figures `/metrics` shows.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};
use tokio::sync::{Notify, mpsc, oneshot};

use super::committer::{self, Append};
use super::record;
use super::types::{AppendError, Inner, RECORDS, SpoolError, SpoolStats, SpooledBatch};

/// Page cache of the spool database. Records are written once and read back within seconds;
/// what the cache misses comes from the operating system's file cache, so a large one would
/// only hold memory (it fills up to its size over a long run).
const CACHE_BYTES: usize = 4 * 1024 * 1024;

/// Appends that may wait for the committer; beyond it pushes are answered 503.
const QUEUE: usize = 8192;

#[derive(Clone)]
pub struct Spool {
    inner: Arc<Inner>,
    queue: mpsc::Sender<Append>,
    committer: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Spool {
    /// Opens (or creates) the spool at `path` and starts its committer task; must be called
    /// inside a tokio runtime. redb repairs the file on open after a crash.
    pub fn open(path: &Path, max_bytes: u64) -> Result<Self, SpoolError> {
        // redb caches up to 1 GiB by default; the spool is written once and read once.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
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
                let (_, value) = entry?;
                bytes += value.value().len() as u64;
                // A record that does not decode is skipped (and deleted) by the flusher.
                if let Ok(header) = record::header(value.value()) {
                    points += u64::from(header.points);
                    if oldest == i64::MIN {
                        oldest = header.spooled_at_ms;
                    }
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
        let committer_inner = Arc::clone(&inner);
        let committer = tokio::task::spawn_blocking(move || {
            committer::run(committer_inner, requests, next_seq);
        });
        Ok(Self {
            inner,
            queue,
            committer: Arc::new(std::sync::Mutex::new(Some(committer))),
        })
    }

    /// Waits until the committer has finished and the file is closed; every other clone of
    /// this handle must be gone already (else it returns once they are).
    pub async fn close(self) {
        let committer = self
            .committer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        drop(self);
        if let Some(task) = committer {
            let _ = task.await;
        }
    }

    /// Puts one node's lines in the spool; returns once they are committed and synced.
    pub async fn append(&self, node: &str, lines: &[u8], points: usize) -> Result<(), AppendError> {
        let value = record::encode(node, crate::clock::now_ms(), points as u32, lines);
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

    /// The oldest records from sequence number `from` on, up to `max_points` points (at least
    /// one record when any is held there). Blocking.
    pub fn read_from(&self, from: u64, max_points: usize) -> Result<SpooledBatch, SpoolError> {
        let read = self.inner.db.begin_read()?;
        let table = read.open_table(RECORDS)?;
        let mut batch = SpooledBatch::default();
        let mut first = None;
        for entry in table.range(from..)? {
            let (seq, value) = entry?;
            let seq = seq.value();
            let record = match record::decode(value.value()) {
                Ok(record) => record,
                Err(source) => {
                    // Unreadable (a format from a future version, or damage): it cannot be
                    // written, so it goes with this batch instead of blocking the spool.
                    tracing::error!(error = %SpoolError::Record { seq, source }, "skipping a spool record");
                    first.get_or_insert(seq);
                    batch.seqs = Some(first.unwrap_or(seq)..=seq);
                    batch.bytes += value.value().len() as u64;
                    batch.skipped += 1;
                    continue;
                }
            };
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
                Some((_, value)) => record::header(value.value())
                    .map(|h| h.spooled_at_ms)
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
            .fetch_sub(batch.records.len() as u64 + batch.skipped, Ordering::AcqRel);
        self.inner.oldest_ms.store(next_oldest, Ordering::Release);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(n: usize) -> Vec<u8> {
        (0..n)
            .map(|i| format!("cpu,node=a usage_percent={i} {i}\n"))
            .collect::<String>()
            .into_bytes()
    }

    #[tokio::test]
    async fn appended_records_survive_reopening_and_leave_only_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        {
            let spool = Spool::open(&path, 1 << 20).unwrap();
            spool.append("a", &lines(3), 3).await.unwrap();
            spool.append("b", &lines(2), 2).await.unwrap();
            spool.append("a", &lines(4), 4).await.unwrap();
            assert_eq!(spool.stats().points, 9);
            assert_eq!(spool.stats().records, 3);
            spool.close().await;
        }
        let spool = Spool::open(&path, 1 << 20).unwrap();
        let stats = spool.stats();
        assert_eq!((stats.records, stats.points), (3, 9));
        assert!(stats.oldest_spooled_ms.is_some());

        let first = spool.read_from(0, 5).unwrap();
        assert_eq!(first.seqs, Some(0..=1));
        assert_eq!(first.points, 5);
        assert_eq!(first.records[0], ("a".to_string(), lines(3)));
        spool.remove(&first).unwrap();
        let rest = spool.read_from(0, 5).unwrap();
        assert_eq!(rest.seqs, Some(2..=2), "a batch holds at least one record");
        assert_eq!(rest.points, 4);
        spool.remove(&rest).unwrap();
        assert_eq!(spool.stats(), SpoolStats::default());
        // Sequence numbers go on after the removed ones.
        spool.append("c", &lines(1), 1).await.unwrap();
        assert_eq!(spool.read_from(0, 5).unwrap().seqs, Some(3..=3));
    }

    #[tokio::test]
    async fn batches_read_past_a_cursor_are_deleted_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool.redb"), 1 << 20).unwrap();
        for node in ["a", "b", "c", "d"] {
            spool.append(node, &lines(2), 2).await.unwrap();
        }
        let first = spool.read_from(0, 4).unwrap();
        assert_eq!(first.seqs, Some(0..=1));
        let second = spool.read_from(2, 4).unwrap();
        assert_eq!(second.seqs, Some(2..=3));
        assert_eq!(second.records[0].0, "c");
        assert!(spool.read_from(4, 4).unwrap().seqs.is_none());

        // The later batch is answered first: the earlier one is still the oldest.
        spool.remove(&second).unwrap();
        let stats = spool.stats();
        assert_eq!((stats.records, stats.points), (2, 4));
        assert!(stats.oldest_spooled_ms.is_some());
        assert_eq!(spool.read_from(0, 100).unwrap().seqs, Some(0..=1));
        spool.remove(&first).unwrap();
        assert_eq!(spool.stats(), SpoolStats::default());
    }

    #[tokio::test]
    async fn a_full_spool_refuses_and_accepts_again_once_drained() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool.redb"), 4096).unwrap();
        let body = lines(20); // ~600 bytes a record
        let mut accepted = 0;
        let refused = loop {
            match spool.append("a", &body, 20).await {
                Ok(()) => accepted += 1,
                Err(e) => break e,
            }
        };
        assert!(
            matches!(refused, AppendError::Full { max_bytes: 4096 }),
            "{refused}"
        );
        assert!(
            accepted >= 5 && spool.stats().bytes <= 4096,
            "{accepted} {:?}",
            spool.stats()
        );
        let batch = spool.read_from(0, 1_000_000).unwrap();
        assert_eq!(batch.records.len(), accepted);
        spool.remove(&batch).unwrap();
        spool.append("a", &body, 20).await.unwrap();
    }

    #[tokio::test]
    async fn concurrent_appends_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(&dir.path().join("spool.redb"), 1 << 30).unwrap();
        let tasks: Vec<_> = (0..200)
            .map(|i| {
                let spool = spool.clone();
                tokio::spawn(async move { spool.append(&format!("n{i}"), &lines(2), 2).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let batch = spool.read_from(0, usize::MAX).unwrap();
        assert_eq!(batch.records.len(), 200);
        assert_eq!(batch.points, 400);
    }

    #[tokio::test]
    async fn an_unreadable_record_is_skipped_and_nothing_around_it_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        {
            let spool = Spool::open(&path, 1 << 20).unwrap();
            spool.append("a", &lines(1), 1).await.unwrap();
            spool.close().await;
        }
        {
            // A damaged record between two good ones, as a crash of another writer could leave.
            let db = Database::create(&path).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(RECORDS)
                .unwrap()
                .insert(1, &[9u8, 1, 2][..])
                .unwrap();
            txn.commit().unwrap();
        }
        let spool = Spool::open(&path, 1 << 20).unwrap();
        spool.append("b", &lines(2), 2).await.unwrap();
        let batch = spool.read_from(0, 100).unwrap();
        assert_eq!(batch.skipped, 1);
        assert_eq!(batch.points, 3);
        assert_eq!(batch.seqs, Some(0..=2));
        spool.remove(&batch).unwrap();
        assert_eq!(spool.stats(), SpoolStats::default());
    }

    /// In the child process: appends forever and prints each acknowledged sequence.
    async fn child_appends_until_killed(path: &Path) {
        let spool = Spool::open(path, 1 << 30).unwrap();
        for i in 0u64.. {
            spool
                .append("a", format!("m,node=a i={i}i {i}\n").as_bytes(), 1)
                .await
                .unwrap();
            println!("acked {i}");
        }
    }

    #[tokio::test]
    async fn every_acknowledged_append_survives_kill_9() {
        const CHILD: &str = "PIVITALS_SPOOL_CRASH_CHILD";
        if let Some(path) = std::env::var_os(CHILD) {
            child_appends_until_killed(Path::new(&path)).await;
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "storage::spool::store::tests::every_acknowledged_append_survives_kill_9",
                "--nocapture",
            ])
            .env(CHILD, &path)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Read acknowledgements for a while, then SIGKILL mid-stream.
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            let mut last = None;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("acked ") {
                    last = n.trim().parse::<u64>().ok();
                }
            }
            last
        });
        std::thread::sleep(std::time::Duration::from_millis(1500));
        child.kill().unwrap();
        child.wait().unwrap();
        let last_acked = reader
            .join()
            .unwrap()
            .expect("the child acknowledged appends");

        let spool = Spool::open(&path, 1 << 30).unwrap();
        let batch = spool.read_from(0, usize::MAX).unwrap();
        assert_eq!(batch.skipped, 0);
        let held = batch.records.len() as u64;
        assert!(
            held > last_acked,
            "acknowledged {} appends, the spool holds {held}",
            last_acked + 1
        );
        for (i, (_, lines)) in batch.records.iter().enumerate() {
            assert_eq!(
                lines,
                format!("m,node=a i={i}i {i}\n").as_bytes(),
                "record {i}"
            );
        }
    }
}
