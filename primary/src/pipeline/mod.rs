//! From accepted points to storage: [`PipelineHandle::submit`] takes a node's encoded lines,
//! the [`batcher`] groups them by node into batches of at most `max_points` (or whatever
//! arrived within `flush_interval`) and writes each batch to the [`sink`] (InfluxDB, or the
//! embedded [`archive`] of daily line-protocol files), retrying as [`retry`] says.

pub mod archive;
pub mod batcher;
pub mod retry;
pub mod sink;

use tokio::sync::mpsc;

/// Encoded points of one node, ready to be batched.
#[derive(Debug)]
pub struct Batch {
    pub node: String,
    /// Newline-terminated line protocol.
    pub lines: Vec<u8>,
    pub points: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmitError {
    /// The batcher is behind (the storage is slow or away): the client should retry later.
    Full,
    /// The batcher has stopped.
    Closed,
}

#[derive(Clone)]
pub struct PipelineHandle {
    tx: mpsc::Sender<Batch>,
}

impl PipelineHandle {
    /// A handle and the receiving end for [`batcher::run`]; `capacity` bounds the submissions
    /// waiting for the batcher, so a stalled storage turns into 503 answers, not memory growth.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Batch>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    pub fn submit(&self, batch: Batch) -> Result<(), SubmitError> {
        self.tx.try_send(batch).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => SubmitError::Full,
            mpsc::error::TrySendError::Closed(_) => SubmitError::Closed,
        })
    }
}
