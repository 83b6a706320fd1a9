//! The spool: accepted points on the primary's disk until InfluxDB (or the archive) confirms
//! them. A push is answered 2xx only after its points are in the spool.
//!
//! # Format
//! One redb database, `DATA_DIR/spool.redb`, with one table `records`: a `u64` sequence number
//! (increasing, never reused while the file lives) maps to one [`record`]: the node, the time
//! it was spooled, its point count and its line protocol, as one LZ4 block when that is
//! smaller (see [`record`] for the bytes and why).
//! redb is a copy-on-write B-tree: a commit either happened entirely or not at all, so a crash
//! mid-write leaves the last committed state, never a torn record.
//!
//! # Durability and fsync policy
//! - Appends go through one committer thread (`committer.rs`): every append waiting when a commit
//!   starts joins it, and the commit is made with immediate durability (fsync) before any of
//!   them is answered. Many concurrent pushes share one fsync (group commit); under load (the
//!   last commit was shared) a commit first waits 5 ms for more appends, so that it takes
//!   more of them.
//! - The flusher reads records in sequence order, writes them, and deletes them only after the
//!   storage confirmed them (or refused their content for good). Deletions commit without
//!   their own fsync: a deletion lost in a crash means the records are written again after the
//!   restart, which is harmless (same series and timestamp overwrite), and the next append's
//!   fsync makes earlier deletions durable too.
//!
//! # Invariants
//! - **A point acknowledged to an agent is in a committed, synced spool transaction.**
//! - **A record leaves the spool only after the storage answered for it.**
//! - The spool holds at most `max_bytes` of record bytes; an append that would pass it is
//!   refused ([`AppendError::Full`]) and the push answered 503 with `Retry-After`, so the agent
//!   keeps its samples. Nothing is dropped silently.
//! - After a restart the flusher starts at the first record: whatever was not confirmed is
//!   written again.
//! - A record is read by the release that wrote it and by later ones. An earlier release
//!   skips records of a later format (logged, and deleted with their batch): before going
//!   back to one, let the spool empty (`pivitals_spool_points` 0 on `/metrics`).

mod committer;
pub mod record;
mod store;
mod types;

pub use store::Spool;
pub use types::{AppendError, SpoolError, SpoolStats, SpooledBatch};
