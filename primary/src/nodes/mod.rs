//! What the primary knows of its nodes: who they are ([`registry`], on disk), how they join
//! ([`enroll`] and [`token`]), the live table ([`table`]) with each node's recent [`history`],
//! and the [`status`] rules that judge them up, late, down or stopped.
//!
//! **Architecture Invariant:** nothing here knows HTTP, the spool or the storage; the liveness
//! watcher (`crate::liveness`) and the routes call into it.

pub mod enroll;
pub mod history;
pub mod packed;
pub mod registry;
pub mod status;
pub mod table;
pub mod token;
