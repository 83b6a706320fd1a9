//! The flusher task: reads the spool oldest first, groups each batch of at most `max_points`
//! points by node, writes it to the sink and deletes it from the spool only once the storage
//! answered for it. A batch is written as soon as `max_points` are spooled, and whatever is
//! spooled at least every `flush_interval`.
//!
//! While a write is being retried nothing newer is written; the spool keeps growing (up to
//! its bound, then pushes are answered 503 and agents keep their samples).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use tokio::time::{self, Duration, MissedTickBehavior};

use super::retry;
use super::sink::{Sink, SinkError};
use crate::config::BatchConfig;
use crate::metrics::Metrics;
use crate::shutdown::{Shutdown, stopped};
use crate::spool::{Spool, SpooledBatch};

/// How long the flusher keeps writing once shutdown begins; what is left stays spooled.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// One write body: the batch's lines grouped by node (records of a node keep their order).
fn body_by_node(batch: &SpooledBatch) -> Vec<u8> {
    let mut by_node: BTreeMap<&str, Vec<&[u8]>> = BTreeMap::new();
    for (node, lines) in &batch.records {
        by_node.entry(node).or_default().push(lines);
    }
    let mut body = Vec::with_capacity(batch.bytes as usize);
    for chunks in by_node.into_values() {
        for lines in chunks {
            body.extend_from_slice(lines);
        }
    }
    body
}

pub struct Flusher {
    sink: Sink,
    config: BatchConfig,
    metrics: Arc<Metrics>,
    spool: Spool,
    shutdown: Shutdown,
    /// Set once shutdown began: retries stop at this instant.
    deadline: Option<Instant>,
}

impl Flusher {
    pub fn new(
        sink: Sink,
        spool: Spool,
        config: BatchConfig,
        metrics: Arc<Metrics>,
        shutdown: Shutdown,
    ) -> Self {
        Self {
            sink,
            config,
            metrics,
            spool,
            shutdown,
            deadline: None,
        }
    }

    pub async fn run(mut self) {
        tracing::info!(sink = %self.sink.describe(), "flusher started");
        let mut ticker = time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stop = self.shutdown.clone();
        loop {
            let timer_due = tokio::select! {
                _ = self.spool.appended() => false,
                _ = ticker.tick() => true,
                _ = stopped(&mut stop) => break,
            };
            if !self.drain(timer_due).await {
                break;
            }
        }
        self.deadline
            .get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
        self.drain(true).await;
        let left = self.spool.stats();
        if left.points > 0 {
            tracing::info!(
                points = left.points,
                "stopped with points still spooled; they are written after the next start"
            );
        }
        tracing::info!("flusher stopped");
    }

    /// Writes spooled batches: full ones always, a partial one only when `timer_due`. Returns
    /// false when the shutdown deadline passed.
    async fn drain(&mut self, timer_due: bool) -> bool {
        loop {
            let pending = self.spool.stats().points as usize;
            if pending == 0 || (pending < self.config.max_points && !timer_due) {
                return true;
            }
            let spool = self.spool.clone();
            let max_points = self.config.max_points;
            let batch =
                match tokio::task::spawn_blocking(move || spool.read_oldest(max_points)).await {
                    Ok(Ok(batch)) => batch,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot read the spool");
                        return self.sleep(retry::SLOW).await;
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "spool read task failed");
                        return self.sleep(retry::SLOW).await;
                    }
                };
            if batch.records.is_empty() {
                return true;
            }
            let body = body_by_node(&batch);
            if !self.write_until_settled(&body, batch.points).await {
                return false;
            }
            let spool = self.spool.clone();
            let removed = tokio::task::spawn_blocking(move || spool.remove(&batch)).await;
            match removed {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // The batch stays spooled and is written again: harmless, but loud.
                    tracing::error!(error = %e, "cannot delete written records from the spool");
                    return self.sleep(retry::SLOW).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, "spool delete task failed");
                    return self.sleep(retry::SLOW).await;
                }
            }
        }
    }

    /// Writes one body, splitting it when too large and retrying transient failures; returns
    /// false only when shutdown's deadline passed before the storage confirmed it.
    async fn write_until_settled(&mut self, body: &[u8], points: usize) -> bool {
        let mut attempt = 0u32;
        loop {
            let started = Instant::now();
            let result = self.sink.write(body).await;
            self.metrics.observe_write(started.elapsed());
            if let Err(e) = &result {
                self.metrics.count_write_error(e);
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
                    attempt = attempt.saturating_add(1);
                    if !self.sleep(wait).await {
                        return false;
                    }
                }
            }
        }
    }

    /// Sleeps before a retry; false when the shutdown deadline does not leave time for one.
    async fn sleep(&mut self, wait: Duration) -> bool {
        if self.deadline.is_none() {
            tokio::select! {
                _ = time::sleep(wait) => return true,
                _ = crate::shutdown::stopped(&mut self.shutdown) => {
                    self.deadline = Some(Instant::now() + SHUTDOWN_GRACE);
                }
            }
        }
        let Some(deadline) = self.deadline else {
            return true;
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
    use super::*;

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

    #[test]
    fn splitting_keeps_every_line() {
        let body = b"a 1\nb 2\nc 3\n";
        let ((left, l), (right, r)) = split_in_half(body, 3);
        assert_eq!((left, l), (&b"a 1\n"[..], 1));
        assert_eq!((right, r), (&b"b 2\nc 3\n"[..], 2));
    }
}
