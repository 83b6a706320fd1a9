//! The committer: one redb write transaction, synced, for every append waiting when it starts
//! (group commit), then every waiter is answered.
//!
//! Each commit costs about the same whatever it holds (a redb transaction and one fdatasync),
//! so under load the committer gathers for `GATHER` before committing: when the last commit
//! was shared by several appends, pushes are arriving concurrently and a short wait lets one
//! commit take many of them. A lone append (an idle primary) is committed at once.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::types::{AppendError, Inner, RECORDS, SpoolError};

/// The most appends one commit takes.
const MAX_GROUP: usize = 4096;

/// How long a commit waits for more appends once the previous one was shared. Measured with
/// 2,000 nodes pushing every second, three alternating pairs: 2 ms gave 98 µs of CPU a push
/// (p50 2.5 ms), 5 ms 81 µs (p50 3.7 ms, p99 7-15 ms): fewer commits of more appends each.
const GATHER: Duration = Duration::from_millis(5);

pub(super) struct Append {
    pub(super) value: Vec<u8>,
    /// The bytes `value` reserved in the spool's budget.
    pub(super) size: u64,
    pub(super) points: u64,
    pub(super) done: oneshot::Sender<Result<(), AppendError>>,
}

/// The committer's loop, on a thread of its own for the spool's life (started with
/// `spawn_blocking`): it sleeps on the queue and commits on the same thread, where a task
/// handing every commit to a blocking thread and back cost two thread switches a commit.
/// Ends when every sender of `requests` is gone.
pub(super) fn run(inner: Arc<Inner>, mut requests: mpsc::Receiver<Append>, mut next_seq: u64) {
    let mut group = Vec::with_capacity(64);
    let mut last_group = 0;
    while let Some(first) = requests.blocking_recv() {
        group.push(first);
        take_waiting(&mut requests, &mut group);
        if last_group > 1 && group.len() < MAX_GROUP {
            std::thread::sleep(GATHER);
            take_waiting(&mut requests, &mut group);
        }
        last_group = group.len();
        let values: Vec<(Vec<u8>, u64)> = group
            .iter_mut()
            .map(|a| (std::mem::take(&mut a.value), a.points))
            .collect();
        match commit(&inner, next_seq, &values) {
            Ok((count, oldest)) => {
                next_seq += count;
                let points: u64 = group.iter().map(|a| a.points).sum();
                inner.points.fetch_add(points, Ordering::AcqRel);
                inner.records.fetch_add(count, Ordering::AcqRel);
                let _ = inner.oldest_ms.compare_exchange(
                    i64::MIN,
                    oldest,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                for append in group.drain(..) {
                    let _ = append.done.send(Ok(()));
                }
                inner.appended.notify_one();
            }
            Err(err) => {
                let err = AppendError::Storage(err.to_string());
                tracing::error!(error = %err, appends = group.len(), "spool commit failed; pushes answered 500");
                for append in group.drain(..) {
                    // Release the reservation `append` made; the record is not in the spool.
                    inner.bytes.fetch_sub(append.size, Ordering::AcqRel);
                    let _ = append.done.send(Err(err.clone()));
                }
            }
        }
    }
}

/// Moves the appends already queued into `group`, up to [`MAX_GROUP`].
fn take_waiting(requests: &mut mpsc::Receiver<Append>, group: &mut Vec<Append>) {
    while group.len() < MAX_GROUP {
        match requests.try_recv() {
            Ok(append) => group.push(append),
            Err(_) => break,
        }
    }
}

/// Inserts the values under consecutive sequence numbers and commits with fsync; returns how
/// many were written and the spool time of the first.
fn commit(
    inner: &Inner,
    first_seq: u64,
    values: &[(Vec<u8>, u64)],
) -> Result<(u64, i64), SpoolError> {
    let txn = inner.db.begin_write()?;
    {
        let mut table = txn.open_table(RECORDS)?;
        for (i, (value, _)) in values.iter().enumerate() {
            table.insert(first_seq + i as u64, value.as_slice())?;
        }
    }
    txn.commit()?;
    let oldest = values
        .first()
        .and_then(|(v, _)| super::record::header(v).ok())
        .map_or(i64::MIN, |r| r.spooled_at_ms);
    Ok((values.len() as u64, oldest))
}
