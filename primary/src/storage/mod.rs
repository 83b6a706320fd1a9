//! From accepted points to storage: the [`spool`] keeps them durable on the primary's disk,
//! the [`flusher`] reads them oldest first, groups each batch by node and writes it to the
//! [`sink`] ([`influx`], or the embedded [`archive`] of daily line-protocol files), retrying
//! as [`retry`] says, and deletes what the storage confirmed.
//!
//! **Architecture Invariant:** only [`influx`] talks to InfluxDB; nothing else knows its URLs,
//! API versions, tokens or answer codes.

pub mod archive;
pub mod config;
pub mod flusher;
pub mod influx;
pub mod retry;
pub mod sink;
pub mod spool;
