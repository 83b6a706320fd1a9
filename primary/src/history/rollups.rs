//! [`Rollups`]: the handle the primary shares: samples go in ([`Rollups::record`]), ranged
//! answers come out ([`Rollups::answer`]), and [`Rollups::run`] writes and prunes once a
//! minute.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pivitals_common::VitalsPayload;
use tokio::sync::{Notify, watch};

use super::error::RollupError;
use super::range::{Range, SeriesPoints, Window, fold};
use super::series::readings;
use super::store::{BucketKey, Pending, Resolution, RollupStore};

/// How often pending buckets are written (and old ones pruned).
pub const WRITE_EVERY: Duration = Duration::from_secs(60);
/// How long after each wall-clock minute the pending buckets are written: the minute just
/// ended is whole by then (its last pushes have arrived), and the one begun holds a few
/// seconds of pushes. So a node holds little more than one pending bucket at any time; writes
/// at any other second of the minute would leave two (the rest of one minute and the start of
/// the next) with a node pushing more often than once a minute.
pub const WRITE_PAST_THE_MINUTE: Duration = Duration::from_secs(2);
/// Pending buckets that make the writer write before its minute is up (a backlog of old
/// samples arriving at once): about 30 MB of memory at most (some 300 bytes a bucket with its
/// key and the map's room).
pub const MAX_PENDING: usize = 100_000;

/// Cheap to clone; clones share the store and the pending buckets.
#[derive(Clone)]
pub struct Rollups {
    inner: Arc<Inner>,
}

struct Inner {
    store: RollupStore,
    pending: Mutex<Pending>,
    /// Held while pending buckets move to the store, while a node is deleted and while an
    /// answer reads both, so no answer counts a bucket twice or a deleted node comes back.
    moving: Mutex<()>,
    full: Notify,
}

impl Rollups {
    /// Opens (or creates) the rollups database at `path` (`DATA_DIR/rollups.redb`).
    pub fn open(path: &Path) -> Result<Rollups, RollupError> {
        Ok(Rollups {
            inner: Arc::new(Inner {
                store: RollupStore::open(path)?,
                pending: Mutex::new(Pending::new()),
                moving: Mutex::new(()),
                full: Notify::new(),
            }),
        })
    }

    /// Adds accepted samples of `node` to its pending buckets. Samples older than a
    /// resolution's keep are left out of it. Never blocks on disk.
    ///
    /// A sample goes into one pending bucket only: its minute, or its ten minutes when it is
    /// too old for minutes. The ten-minute buckets of pending minutes are folded from them
    /// when they are written or answered, so a node costs one pending bucket a minute, not two.
    pub fn record(&self, node: &str, samples: &[VitalsPayload], now_ms: i64) {
        let mut pending = self.inner.pending();
        for sample in samples {
            let Some(resolution) = Resolution::ALL.into_iter().find(|resolution| {
                let start_ms = resolution.bucket_of(sample.timestamp_ms);
                start_ms + resolution.bucket_ms() > now_ms - resolution.keep_ms()
            }) else {
                continue;
            };
            let key = BucketKey {
                node: node.to_owned(),
                resolution,
                start_ms: resolution.bucket_of(sample.timestamp_ms),
            };
            pending.entry(key).or_default().add(&readings(sample));
        }
        if pending.len() >= MAX_PENDING {
            self.inner.full.notify_one();
        }
    }

    /// The window of `range` ending at `now_ms` and `node`'s points in it, from the stored
    /// buckets and those still pending.
    pub async fn answer(
        &self,
        node: &str,
        range: Range,
        now_ms: i64,
    ) -> Result<(Window, SeriesPoints), RollupError> {
        let resolution = Resolution::for_range(range);
        let window = Window::new(range, now_ms, resolution.bucket_ms());
        let inner = Arc::clone(&self.inner);
        let node = node.to_owned();
        tokio::task::spawn_blocking(move || {
            let _moving = inner.moving();
            let mut buckets = inner
                .store
                .read(&node, resolution, window.from_ms, window.to_ms)?;
            let pending = inner.pending();
            // Pending minutes count in the ten-minute answers too (see `record`).
            buckets.extend(
                pending
                    .iter()
                    .filter(|(k, _)| k.node == node && k.resolution <= resolution)
                    .map(|(k, b)| (resolution.bucket_of(k.start_ms), b.bucket())),
            );
            Ok((window, fold(&window, buckets)))
        })
        .await?
    }

    /// Moves the pending buckets into the store and prunes, in one transaction. On failure the
    /// buckets stay pending for the next try.
    pub async fn write(&self, now_ms: i64) -> Result<usize, RollupError> {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || inner.write(now_ms)).await?
    }

    /// Deletes every bucket of `node`, pending or stored (the admin deleted the node).
    pub async fn remove_node(&self, node: &str) -> Result<(), RollupError> {
        let inner = Arc::clone(&self.inner);
        let node = node.to_owned();
        tokio::task::spawn_blocking(move || {
            let _moving = inner.moving();
            inner.pending().retain(|k, _| k.node != node);
            inner.store.remove_node(&node)
        })
        .await?
    }

    /// Writes every [`WRITE_EVERY`], [`WRITE_PAST_THE_MINUTE`] after the wall-clock minute
    /// (sooner when [`MAX_PENDING`] buckets wait), until `stop` turns true, then writes once
    /// more.
    pub async fn run(self, mut stop: watch::Receiver<bool>, now_ms: fn() -> i64) {
        let first = tokio::time::Instant::now() + until_next_write(now_ms());
        let mut tick = tokio::time::interval_at(first, WRITE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = self.inner.full.notified() => {}
                _ = stop.wait_for(|stopped| *stopped) => break,
            }
            if let Err(error) = self.write(now_ms()).await {
                tracing::warn!(%error, "rollups not written; trying again in a minute");
            }
        }
        if let Err(error) = self.write(now_ms()).await {
            tracing::warn!(%error, "rollups not written at shutdown");
        }
    }

    /// How many buckets the store holds at `resolution`.
    pub fn stored(&self, resolution: Resolution) -> Result<u64, RollupError> {
        self.inner.store.count(resolution)
    }
}

/// From `now_ms` to the next [`WRITE_PAST_THE_MINUTE`] past a wall-clock minute.
fn until_next_write(now_ms: i64) -> Duration {
    let every_ms = WRITE_EVERY.as_millis() as i64;
    let past_ms = WRITE_PAST_THE_MINUTE.as_millis() as i64;
    let wait_ms = (past_ms - now_ms).rem_euclid(every_ms);
    // In range: rem_euclid of a positive modulus is in 0..every_ms.
    Duration::from_millis(wait_ms as u64)
}

impl Inner {
    fn pending(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn moving(&self) -> MutexGuard<'_, ()> {
        self.moving.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, now_ms: i64) -> Result<usize, RollupError> {
        let _moving = self.moving();
        let taken = std::mem::take(&mut *self.pending());
        match self.store.write(&taken, now_ms) {
            Ok(()) => Ok(taken.len()),
            Err(error) => {
                let mut pending = self.pending();
                for (key, bucket) in taken {
                    pending.entry(key).or_default().merge(&bucket);
                }
                Err(error)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use pivitals_common::CpuVitals;

    use super::*;
    use crate::history::Series;

    const DAY: i64 = 86_400_000;
    /// A minute boundary.
    const NOW: i64 = 1_780_000_020_000;

    #[test]
    fn writes_fall_two_seconds_past_each_wall_clock_minute() {
        assert_eq!(NOW % 60_000, 0);
        let wait = |now_ms| until_next_write(now_ms).as_millis() as i64;
        assert_eq!(wait(NOW), 2_000);
        assert_eq!(wait(NOW + 1_999), 1);
        assert_eq!(wait(NOW + 2_000), 0);
        assert_eq!(wait(NOW + 2_001), 59_999);
        assert_eq!(wait(NOW + 59_999), 2_001);
    }

    fn cpu(ts: i64, mean: f64, max: f64) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: ts,
            cpu: Some(CpuVitals {
                usage_percent: mean,
                usage_percent_max: Some(max),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn open() -> (tempfile::TempDir, Rollups) {
        let dir = tempfile::tempdir().unwrap();
        let rollups = Rollups::open(&dir.path().join("rollups.redb")).unwrap();
        (dir, rollups)
    }

    #[tokio::test]
    async fn pending_and_stored_buckets_answer_alike_and_survive_reopening() {
        let (dir, rollups) = open();
        rollups.record(
            "pi",
            &[
                cpu(NOW - 120_000, 10.0, 50.0),
                cpu(NOW - 110_000, 20.0, 30.0),
            ],
            NOW,
        );
        let (_, before) = rollups.answer("pi", Range::Hour, NOW).await.unwrap();
        assert_eq!(
            rollups.write(NOW).await.unwrap(),
            1,
            "the minute; its ten minutes are folded from it"
        );
        let (_, after) = rollups.answer("pi", Range::Hour, NOW).await.unwrap();
        assert_eq!(before, after);
        let points = after.get(Series::CpuPercent);
        assert_eq!(points.len(), 1);
        assert_eq!(
            (points[0].mean, points[0].min, points[0].max),
            (Some(15.0), Some(10.0), Some(50.0))
        );
        drop(rollups);
        let rollups = Rollups::open(&dir.path().join("rollups.redb")).unwrap();
        let (_, reopened) = rollups.answer("pi", Range::Hour, NOW).await.unwrap();
        assert_eq!(reopened, after);
        assert!(
            rollups
                .answer("other", Range::Hour, NOW)
                .await
                .unwrap()
                .1
                .get(Series::CpuPercent)
                .is_empty()
        );
    }

    #[tokio::test]
    async fn pending_minutes_fold_into_one_ten_minute_bucket() {
        let (_dir, rollups) = open();
        let window = Resolution::TenMinutes.bucket_of(NOW - 3_600_000);
        rollups.record(
            "pi",
            &[
                cpu(window + 60_000, 10.0, 10.0),
                cpu(window + 120_000, 20.0, 40.0),
                cpu(window + 540_000, 30.0, 30.0),
            ],
            NOW,
        );
        let (_, before) = rollups.answer("pi", Range::Week, NOW).await.unwrap();
        assert_eq!(
            rollups.write(NOW).await.unwrap(),
            3,
            "three minutes pending"
        );
        assert_eq!(rollups.stored(Resolution::Minute).unwrap(), 3);
        assert_eq!(rollups.stored(Resolution::TenMinutes).unwrap(), 1);
        let (_, after) = rollups.answer("pi", Range::Week, NOW).await.unwrap();
        assert_eq!(before, after);
        let cpu = after.get(Series::CpuPercent);
        assert_eq!(cpu.len(), 1);
        assert_eq!((cpu[0].mean, cpu[0].max), (Some(20.0), Some(40.0)));
    }

    #[tokio::test]
    async fn a_late_sample_merges_into_its_written_bucket() {
        let (_dir, rollups) = open();
        let ts = NOW - 600_000;
        rollups.record("pi", &[cpu(ts, 10.0, 10.0)], NOW);
        rollups.write(NOW).await.unwrap();
        // Out of order: an older minute, then the first minute again.
        rollups.record(
            "pi",
            &[cpu(ts - 60_000, 1.0, 1.0), cpu(ts + 1, 30.0, 90.0)],
            NOW,
        );
        rollups.write(NOW).await.unwrap();
        let (_, points) = rollups.answer("pi", Range::Hour, NOW).await.unwrap();
        let cpu = points.get(Series::CpuPercent);
        assert_eq!(cpu.len(), 2);
        assert_eq!(cpu[0].mean, Some(1.0));
        assert_eq!((cpu[1].mean, cpu[1].max), (Some(20.0), Some(90.0)));
        assert_eq!(rollups.stored(Resolution::Minute).unwrap(), 2);
    }

    #[tokio::test]
    async fn old_buckets_are_pruned_and_too_old_samples_never_kept() {
        let (_dir, rollups) = open();
        let then = NOW - 8 * DAY;
        rollups.record("pi", &[cpu(then, 5.0, 5.0)], then);
        rollups.record("pi", &[cpu(NOW - 100 * DAY, 5.0, 5.0)], NOW);
        rollups.write(then).await.unwrap();
        assert_eq!(rollups.stored(Resolution::Minute).unwrap(), 1);
        assert_eq!(rollups.stored(Resolution::TenMinutes).unwrap(), 1);
        // Eight days later the minute bucket is gone, the ten-minute one is kept.
        rollups.write(NOW).await.unwrap();
        assert_eq!(rollups.stored(Resolution::Minute).unwrap(), 0);
        assert_eq!(rollups.stored(Resolution::TenMinutes).unwrap(), 1);
        let (_, month) = rollups.answer("pi", Range::Month, NOW).await.unwrap();
        assert_eq!(month.get(Series::CpuPercent).len(), 1);
        rollups.write(NOW + 83 * DAY).await.unwrap();
        assert_eq!(rollups.stored(Resolution::TenMinutes).unwrap(), 0);
    }

    #[tokio::test]
    async fn deleting_a_node_deletes_its_buckets_only() {
        let (_dir, rollups) = open();
        for node in ["a", "b", "c"] {
            rollups.record(node, &[cpu(NOW - 60_000, 1.0, 1.0)], NOW);
        }
        rollups.write(NOW).await.unwrap();
        rollups.record("b", &[cpu(NOW - 1000, 1.0, 1.0)], NOW);
        rollups.remove_node("b").await.unwrap();
        rollups.write(NOW).await.unwrap();
        assert_eq!(rollups.stored(Resolution::Minute).unwrap(), 2);
        let (_, b) = rollups.answer("b", Range::Hour, NOW).await.unwrap();
        assert!(b.get(Series::CpuPercent).is_empty());
        let (_, c) = rollups.answer("c", Range::Hour, NOW).await.unwrap();
        assert_eq!(c.get(Series::CpuPercent).len(), 1);
    }

    /// Fills a week of minute buckets and 90 days of ten-minute buckets for a few nodes and
    /// measures the file, to check the bytes-per-bucket figure in the module doc.
    #[tokio::test]
    async fn the_file_stays_near_260_bytes_a_bucket() {
        let (dir, rollups) = open();
        let nodes = 3;
        for n in 0..nodes {
            let node = format!("pi-{n:02}");
            // One sample a minute for 7 days, one every ten minutes before that.
            let mut ts = NOW - 90 * DAY + 1;
            let mut batch = Vec::new();
            while ts < NOW {
                batch.push(cpu(ts, 10.0, 20.0));
                ts += if ts < NOW - 7 * DAY { 600_000 } else { 60_000 };
                if batch.len() == 5000 {
                    rollups.record(&node, &batch, NOW);
                    batch.clear();
                    rollups.write(NOW).await.unwrap();
                }
            }
            rollups.record(&node, &batch, NOW);
            rollups.write(NOW).await.unwrap();
        }
        let buckets = rollups.stored(Resolution::Minute).unwrap()
            + rollups.stored(Resolution::TenMinutes).unwrap();
        assert!((3 * 23_000..=3 * 23_100).contains(&buckets), "{buckets}");
        drop(rollups);
        let bytes = std::fs::metadata(dir.path().join("rollups.redb"))
            .unwrap()
            .len();
        let per_bucket = bytes / buckets;
        eprintln!("rollups file: {bytes} bytes for {buckets} buckets, {per_bucket} B a bucket");
        assert!(per_bucket <= 300, "{per_bucket} B a bucket");
    }
}
