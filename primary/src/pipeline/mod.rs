//! From the spool to storage: the [`flusher`] reads spooled points oldest first, groups each
//! batch by node and writes it to the [`sink`] (InfluxDB, or the embedded [`archive`] of daily
//! line-protocol files), retrying as [`retry`] says.

pub mod archive;
pub mod flusher;
pub mod retry;
pub mod sink;
