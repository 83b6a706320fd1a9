//! The flusher task: reads the spool oldest first, groups each batch of at most `max_points`
//! points by node, writes it to the sink and deletes it from the spool only once the storage
//! answered for it. A batch is written as soon as `max_points` are spooled, and whatever is
//! spooled at least every `flush_interval`. The end of a backlog is the exception: once a
//! full batch was read, what is left is written as soon as the spool has had no new record
//! for [`LINGER`], not at the next tick (after an outage of InfluxDB, the last points land a
//! moment after the others instead of up to `flush_interval` later). What the spool holds when
//! the flusher starts is such a backlog too.
//!
//! Up to `writes_in_flight` batches are written at once: each covers its own range of spool
//! sequence numbers, so they are deleted independently, in whatever order their answers come.
//! A single write in flight leaves the storage idle while the primary reads, encodes and waits
//! for the round trip. While a batch is being retried no newer batch is started; the spool
//! keeps growing (up to its bound, then pushes are answered 503 and agents keep their samples).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::task::JoinSet;
use tokio::time::{self, Duration, MissedTickBehavior};

use super::config::BatchConfig;
use super::retry;
use super::sink::{Sink, SinkError};
use crate::metrics::Metrics;
use crate::shutdown::{Shutdown, stopped};
use crate::storage::spool::{Spool, SpooledBatch};

/// How long the spool must have been quiet before the rest of a backlog is written.
pub const LINGER: Duration = Duration::from_millis(100);

/// How long the flusher keeps writing once shutdown begins; what is left stays spooled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// One write body: the batch's lines grouped by node (records of a node keep their order).
fn body_by_node(batch: &SpooledBatch) -> Vec<u8> {
    let mut by_node: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    let mut size = 0;
    for (node, lines) in &batch.records {
        by_node.entry(node).or_default().push(lines);
        size += lines.len();
    }
    let mut body = Vec::with_capacity(size);
    for chunks in by_node.into_values() {
        for lines in chunks {
            body.extend_from_slice(lines);
        }
    }
    body
}

pub struct Flusher {
    writer: Arc<BatchWriter>,
    config: BatchConfig,
    spool: Spool,
    shutdown: Shutdown,
    /// The sequence number the next batch starts at: everything before it is written or in
    /// flight.
    cursor: u64,
    in_flight: JoinSet<()>,
    /// The last batch read was full: a backlog is being drained, and its partial rest waits
    /// only for [`LINGER`] of quiet.
    draining: bool,
}

impl Flusher {
    pub fn new(
        sink: Sink,
        spool: Spool,
        config: BatchConfig,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Self {
        let writer = Arc::new(BatchWriter {
            sink,
            metrics,
            spool: spool.clone(),
            shutdown: shutdown.clone(),
            deadline: Mutex::new(None),
            retrying: AtomicUsize::new(0),
            points_in_flight: AtomicU64::new(0),
        });
        Self {
            writer,
            config,
            spool,
            shutdown,
            cursor: 0,
            in_flight: JoinSet::new(),
            draining: false,
        }
    }

    pub async fn run(mut self) {
        tracing::info!(sink = %self.writer.sink.describe(), "flusher started");
        let interval = self.config.flush_interval;
        let mut ticker = time::interval_at(time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stop = self.shutdown.clone();
        // What the spool holds at start (left by the last run) is a backlog.
        self.draining = true;
        let mut timer_due = false;
        loop {
            if !self.drain(timer_due).await {
                break;
            }
            timer_due = tokio::select! {
                _ = self.spool.appended() => false,
                _ = ticker.tick() => true,
                // Made anew at every turn: it runs out only when nothing happened for LINGER.
                _ = time::sleep(LINGER), if self.draining => true,
                Some(done) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    self.settled(done);
                    false
                }
                _ = stopped(&mut stop) => break,
            };
        }
        let _ = self.writer.begin_grace();
        self.drain(true).await;
        while let Some(done) = self.in_flight.join_next().await {
            self.settled(done);
        }
        let left = self.spool.stats();
        if left.points > 0 {
            tracing::info!(
                points = left.points,
                "stopped with points still spooled; they are written after the next start"
            );
        }
        tracing::info!("flusher stopped");
    }

    /// Starts writes of spooled batches not yet in flight: full ones always, a partial one
    /// only when `timer_due`. Returns false when the shutdown deadline passed.
    async fn drain(&mut self, timer_due: bool) -> bool {
        loop {
            if self.writer.past_deadline() {
                return false;
            }
            // A retrying batch holds newer ones back; a full pipeline waits for a free slot.
            if self.in_flight.len() >= self.config.writes_in_flight || self.writer.is_retrying() {
                match self.in_flight.join_next().await {
                    Some(done) => {
                        self.settled(done);
                        continue;
                    }
                    None => return true,
                }
            }
            // The spool counts a batch until it is deleted, the writer until just after: a
            // moment's underestimate, never a batch read twice.
            let unread = self
                .spool
                .stats()
                .points
                .saturating_sub(self.writer.points_in_flight.load(Ordering::Acquire))
                as usize;
            if unread == 0 {
                // The backlog, if there was one, is all read.
                self.draining = false;
                return true;
            }
            if unread < self.config.max_points && !timer_due {
                return true;
            }
            let spool = self.spool.clone();
            let (from, max_points) = (self.cursor, self.config.max_points);
            let batch = match tokio::task::spawn_blocking(move || spool.read_from(from, max_points))
                .await
            {
                Ok(Ok(batch)) => batch,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot read the spool");
                    return self.writer.sleep(retry::SLOW).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool read task failed");
                    return self.writer.sleep(retry::SLOW).await;
                }
            };
            let Some(seqs) = batch.seqs.clone() else {
                // The counts say more is spooled than the reader found past the cursor: only
                // batches in flight are left.
                return true;
            };
            self.cursor = seqs.end() + 1;
            self.draining = batch.points >= max_points;
            self.writer
                .points_in_flight
                .fetch_add(batch.points as u64, Ordering::AcqRel);
            let writer = Arc::clone(&self.writer);
            self.in_flight
                .spawn(async move { writer.write_and_delete(batch).await });
        }
    }

    /// A batch task ended (written and deleted, or given up at shutdown).
    fn settled(&mut self, done: Result<(), tokio::task::JoinError>) {
        if let Err(e) = done {
            tracing::error!(error = %e, "batch write task failed; its records stay spooled");
        }
    }
}

/// What every batch task shares: the sink, the spool, and the shutdown deadline.
struct BatchWriter {
    sink: Sink,
    metrics: Arc<Metrics>,
    spool: Spool,
    shutdown: Shutdown,
    /// Set once shutdown began: retries stop at this instant.
    deadline: Mutex<Option<Instant>>,
    /// Batches waiting to try again.
    retrying: AtomicUsize,
    /// Points read from the spool whose batch is not deleted yet.
    points_in_flight: AtomicU64,
}

impl BatchWriter {
    /// Writes a batch until the storage settled it, then deletes it from the spool.
    async fn write_and_delete(&self, batch: SpooledBatch) {
        let points = batch.points as u64;
        if !batch.records.is_empty() {
            let body = body_by_node(&batch);
            if !self.write_until_settled(&body, batch.points).await {
                // Shutdown's deadline: the batch stays spooled for the next start.
                self.points_in_flight.fetch_sub(points, Ordering::AcqRel);
                return;
            }
        }
        let batch = Arc::new(batch);
        loop {
            let spool = self.spool.clone();
            let written = Arc::clone(&batch);
            match tokio::task::spawn_blocking(move || spool.remove(&written)).await {
                Ok(Ok(())) => break,
                // Kept until deleted: a batch left behind would be written again only after a
                // restart, and its points would hold the counts up meanwhile.
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "cannot delete written records from the spool")
                }
                Err(e) => tracing::error!(error = %e, "spool delete task failed"),
            }
            if !self.sleep(retry::SLOW).await {
                break;
            }
        }
        self.points_in_flight.fetch_sub(points, Ordering::AcqRel);
    }

    /// Writes one body, splitting it when too large and retrying transient failures; returns
    /// false only when shutdown's deadline passed before the storage confirmed it.
    async fn write_until_settled(&self, body: &[u8], points: usize) -> bool {
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let result = self.sink.write(body).await;
            self.metrics.observe_write(started.elapsed());
            if let Err(e) = &result {
                self.metrics.count_write_error(e.metric_label());
            }
            if attempt > 0 && !matches!(result, Err(SinkError::Retry { .. })) {
                self.retrying.fetch_sub(1, Ordering::AcqRel);
            }
            match result {
                Ok(()) => {
                    Metrics::add(&self.metrics.points_written, points);
                    Metrics::add(&self.metrics.batches_written, 1);
                    return true;
                }
                Err(SinkError::Rejected { reason, detail }) => {
                    self.metrics.count_rejected(reason, points);
                    tracing::error!(points, %detail, "storage rejected a batch; not retrying it");
                    return true;
                }
                Err(SinkError::TooLarge) if points > 1 => {
                    let (left, right) = split_in_half(body, points);
                    tracing::warn!(points, "storage said the batch is too large; splitting it");
                    let left_done = Box::pin(self.write_until_settled(left.0, left.1)).await;
                    let right_done = Box::pin(self.write_until_settled(right.0, right.1)).await;
                    return left_done && right_done;
                }
                Err(SinkError::TooLarge) => {
                    self.metrics.count_rejected("too_large", 1);
                    tracing::error!("storage refuses a single point as too large; dropping it");
                    return true;
                }
                Err(SinkError::Retry {
                    after,
                    slow,
                    detail,
                    ..
                }) => {
                    let wait = if slow {
                        retry::SLOW
                    } else {
                        retry::delay(attempt, after)
                    };
                    if slow {
                        tracing::error!(%detail, retry_in = ?wait, "storage refuses writes; fix its settings, the batch is kept");
                    } else {
                        tracing::warn!(%detail, retry_in = ?wait, "storage write failed; the batch is kept");
                    }
                    if attempt == 0 {
                        self.retrying.fetch_add(1, Ordering::AcqRel);
                    }
                    attempt = attempt.saturating_add(1);
                    if !self.sleep(wait).await {
                        self.retrying.fetch_sub(1, Ordering::AcqRel);
                        return false;
                    }
                }
            }
        }
    }

    fn is_retrying(&self) -> bool {
        self.retrying.load(Ordering::Acquire) > 0
    }

    fn lock_deadline(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts the shutdown grace period (once); its end.
    fn begin_grace(&self) -> Instant {
        *self
            .lock_deadline()
            .get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE)
    }

    fn past_deadline(&self) -> bool {
        self.lock_deadline()
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// Sleeps before a retry; false when the shutdown deadline does not leave time for one.
    async fn sleep(&self, wait: Duration) -> bool {
        let current = *self.lock_deadline();
        let deadline = match current {
            Some(deadline) => deadline,
            None => {
                let mut shutdown = self.shutdown.clone();
                tokio::select! {
                    _ = time::sleep(wait) => return true,
                    _ = stopped(&mut shutdown) => self.begin_grace(),
                }
            }
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        time::sleep(wait.min(left)).await;
        true
    }
}
/// Part of a body: its bytes and how many points (lines) they hold.
type Part<'a> = (&'a [u8], usize);

/// Splits newline-terminated lines into two halves by line count.
fn split_in_half(body: &[u8], points: usize) -> (Part<'_>, Part<'_>) {
    let half = points / 2;
    let cut = body
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .nth(half.saturating_sub(1))
        .map_or(body.len(), |(i, _)| i + 1);
    let (left, right) = body.split_at(cut);
    ((left, half), (right, points - half))
}

#[cfg(test)]
mod tests {
    use pivitals_testkit::harness::eventually;
    use tokio::sync::watch;

    use super::*;
    use crate::storage::archive::Archive;

    #[test]
    fn bodies_are_grouped_by_node_keeping_each_nodes_order() {
        let batch = SpooledBatch {
            seqs: Some(0..=2),
            records: vec![
                ("b".into(), b"m,node=b f=1 1\n".to_vec()),
                ("a".into(), b"m,node=a f=1 1\nm,node=a f=2 2\n".to_vec()),
                ("b".into(), b"m,node=b f=2 2\n".to_vec()),
            ],
            points: 4,
            bytes: 60,
            skipped: 0,
        };
        assert_eq!(
            String::from_utf8(body_by_node(&batch)).unwrap(),
            "m,node=a f=1 1\nm,node=a f=2 2\nm,node=b f=1 1\nm,node=b f=2 2\n"
        );
    }

    /// Points `archive` holds (one line each in the test's records).
    fn archived(archive: &Archive) -> usize {
        std::fs::read_dir(archive.dir())
            .map(|files| {
                files
                    .map_while(Result::ok)
                    .map(|f| {
                        std::fs::read_to_string(f.path())
                            .unwrap_or_default()
                            .lines()
                            .count()
                    })
                    .sum()
            })
            .unwrap_or(0)
    }

    /// A flusher of batches of 10 and a flush interval of an hour, over the archive.
    fn flusher(dir: &std::path::Path) -> (Spool, Arc<Archive>, Flusher, watch::Sender<bool>) {
        let spool = Spool::open(&dir.join("spool.redb"), 1 << 30).unwrap();
        let archive = Arc::new(Archive::open(&dir.join("archive"), 365).unwrap());
        let config = BatchConfig {
            max_points: 10,
            flush_interval: Duration::from_secs(3600),
            writes_in_flight: 1,
        };
        let (stop, shutdown) = watch::channel(false);
        let flusher = Flusher::new(
            Sink::Archive(Arc::clone(&archive)),
            spool.clone(),
            config,
            Arc::new(Metrics::default()),
            shutdown,
        );
        (spool, archive, flusher, stop)
    }

    // Two workers: `eventually` blocks the test's thread while the flusher runs on the other.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_backlogs_rest_is_written_after_a_quiet_linger_and_a_lone_partial_batch_waits() {
        let dir = tempfile::tempdir().unwrap();
        let (spool, archive, flusher, stop) = flusher(dir.path());
        // Spooled before the flusher starts (as after a restart), so that it finds them all
        // at once however slow the disk: appended while it runs, it could catch up between
        // two appends and see the last ones as new traffic.
        for i in 0..25 {
            let line = format!("m,node=n f={i} {i}\n");
            spool.append("n", line.as_bytes(), 1).await.unwrap();
        }
        let task = tokio::spawn(flusher.run());
        // Two full batches, then the rest after LINGER of quiet, not at the hour's tick.
        eventually("25 of 25 points archived", Duration::from_secs(10), || {
            (archived(&archive) == 25).then_some(())
        });
        eventually("the spool emptied", Duration::from_secs(5), || {
            (spool.stats().points == 0).then_some(())
        });

        // No backlog before it: a lone partial batch waits for the tick, as it always did.
        spool.append("n", b"m,node=n f=25 25\n", 1).await.unwrap();
        time::sleep(LINGER * 5).await;
        assert_eq!(archived(&archive), 25);
        assert_eq!(spool.stats().points, 1);

        stop.send(true).unwrap();
        task.await.unwrap();
        // At shutdown what is spooled is written.
        assert_eq!(archived(&archive), 26);
    }

    #[test]
    fn splitting_keeps_every_line() {
        let body = b"a 1\nb 2\nc 3\n";
        let ((left, l), (right, r)) = split_in_half(body, 3);
        assert_eq!((left, l), (&b"a 1\n"[..], 1));
        assert_eq!((right, r), (&b"b 2\nc 3\n"[..], 2));
    }
}
