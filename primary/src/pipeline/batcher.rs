//! The batcher task: groups submitted points by node, writes a batch when it holds
//! `max_points` or when `flush_interval` has passed, and keeps a failed batch until the
//! storage confirms it (or refuses its content for good).
//!
//! While a write is being retried the batcher takes no new submissions; the bounded channel
//! in front of it fills and pushes are answered 503, so agents keep their samples.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::{mpsc, watch};
use tokio::time::{self, Duration, MissedTickBehavior};

use super::Batch;
use super::retry;
use super::sink::{Sink, SinkError};
use crate::config::BatchConfig;
use crate::metrics::Metrics;

/// How long the batcher keeps trying to write what it holds once shutdown begins.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Points waiting to be written, grouped by node.
#[derive(Default)]
struct Pending {
    by_node: BTreeMap<String, Vec<u8>>,
    points: usize,
}

impl Pending {
    fn add(&mut self, batch: Batch) {
        self.by_node
            .entry(batch.node)
            .or_default()
            .extend_from_slice(&batch.lines);
        self.points += batch.points;
    }

    /// The held lines, grouped by node, cut into bodies of at most `max_points` lines.
    fn take_bodies(&mut self, max_points: usize) -> Vec<(Vec<u8>, usize)> {
        let mut bodies = Vec::new();
        let mut body = Vec::new();
        let mut lines = 0;
        for chunk in std::mem::take(&mut self.by_node).into_values() {
            for line in chunk.split_inclusive(|b| *b == b'\n') {
                body.extend_from_slice(line);
                lines += 1;
                if lines == max_points {
                    bodies.push((std::mem::take(&mut body), lines));
                    lines = 0;
                }
            }
        }
        if lines > 0 {
            bodies.push((body, lines));
        }
        self.points = 0;
        bodies
    }
}

pub struct Batcher {
    sink: Sink,
    config: BatchConfig,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
    /// Set once shutdown began: retries stop at this instant.
    deadline: Option<Instant>,
}

impl Batcher {
    pub fn new(
        sink: Sink,
        config: BatchConfig,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            sink,
            config,
            metrics,
            shutdown,
            deadline: None,
        }
    }

    pub async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        tracing::info!(sink = %self.sink.describe(), "batcher started");
        let mut pending = Pending::default();
        let mut ticker = time::interval(self.config.flush_interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut stop = self.shutdown.clone();
        loop {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(batch) => {
                        pending.add(batch);
                        self.set_pending(pending.points);
                        if pending.points >= self.config.max_points {
                            self.flush(&mut pending).await;
                        }
                    }
                    None => break,
                },
                _ = ticker.tick() => {
                    if pending.points > 0 {
                        self.flush(&mut pending).await;
                    }
                }
                _ = crate::shutdown::stopped(&mut stop) => break,
            }
        }
        self.deadline.get_or_insert_with(|| Instant::now() + SHUTDOWN_GRACE);
        rx.close();
        while let Some(batch) = rx.recv().await {
            pending.add(batch);
        }
        self.flush(&mut pending).await;
        let lost = self.metrics.pending_points.load(Ordering::Relaxed);
        if lost > 0 {
            tracing::error!(points = lost, "stopped with points the storage never confirmed");
        }
        tracing::info!("batcher stopped");
    }

    fn set_pending(&self, points: usize) {
        self.metrics
            .pending_points
            .store(points as u64, Ordering::Relaxed);
    }

    async fn flush(&mut self, pending: &mut Pending) {
        let bodies = pending.take_bodies(self.config.max_points);
        let mut unwritten: usize = bodies.iter().map(|(_, n)| n).sum();
        for (body, points) in bodies {
            if self.write_until_settled(&body, points).await {
                unwritten -= points;
                self.set_pending(unwritten);
            }
        }
        if unwritten > 0 {
            // Only after the shutdown deadline: keep the count for the final report.
            self.set_pending(unwritten);
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
            match result {
                Ok(()) => {
                    Metrics::add(&self.metrics.points_written, points);
                    Metrics::add(&self.metrics.batches_written, 1);
                    return true;
                }
                Err(SinkError::Rejected { detail }) => {
                    Metrics::add(&self.metrics.write_errors_rejected, 1);
                    Metrics::add(&self.metrics.points_rejected, points);
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
                    Metrics::add(&self.metrics.points_rejected, 1);
                    tracing::error!("storage refuses a single point as too large; dropping it");
                    return true;
                }
                Err(SinkError::Retry {
                    after,
                    slow,
                    detail,
                }) => {
                    let counter = if slow {
                        &self.metrics.write_errors_refused
                    } else {
                        &self.metrics.write_errors_transient
                    };
                    Metrics::add(counter, 1);
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

/// Splits newline-terminated lines into two halves by line count.
fn split_in_half(body: &[u8], points: usize) -> ((&[u8], usize), (&[u8], usize)) {
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

    fn batch(node: &str, lines: &[&str]) -> Batch {
        Batch {
            node: node.into(),
            lines: lines.iter().map(|l| format!("{l}\n")).collect::<String>().into_bytes(),
            points: lines.len(),
        }
    }

    #[test]
    fn bodies_are_grouped_by_node_and_capped() {
        let mut pending = Pending::default();
        pending.add(batch("b", &["m,node=b f=1 1"]));
        pending.add(batch("a", &["m,node=a f=1 1", "m,node=a f=2 2"]));
        pending.add(batch("b", &["m,node=b f=2 2"]));
        assert_eq!(pending.points, 4);
        let bodies = pending.take_bodies(3);
        assert_eq!(pending.points, 0);
        let texts: Vec<_> = bodies
            .iter()
            .map(|(b, n)| (String::from_utf8(b.clone()).unwrap(), *n))
            .collect();
        assert_eq!(
            texts,
            [
                ("m,node=a f=1 1\nm,node=a f=2 2\nm,node=b f=1 1\n".to_string(), 3),
                ("m,node=b f=2 2\n".to_string(), 1),
            ]
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
