//! The pivitals agent: samples its host's vitals and pushes them to the primary.
//!
//! Layout, one concern per module:
//! - [`config`]: settings from a TOML file and `PIVITALS_*` variables;
//! - sampling the host is [`pivitals_collect::Collector`]'s job, a crate of its own that the
//!   primary uses too;
//! - [`run`](run()): the agent's life — sampling loop, sending loop, shutdown;
//! - `push`: the sender's decisions on every answer of the primary;
//! - [`client`]: the primary's HTTP API, one method per call;
//! - [`backlog`]: samples waiting for the primary, on disk in the state directory so they
//!   survive a restart; bounded, oldest dropped first;
//! - [`credential`]: the node token kept in the state directory;
//! - [`shutdown`]: SIGTERM and Ctrl-C;
//! - [`actions`]: what the primary may ask the node to run, only what its settings name.
//!
//! The policies the agent shares with the primary live in [`pivitals_common`]: the retry
//! backoff ([`pivitals_common::Backoff::AGENT_PUSH`]), the batch size
//! ([`pivitals_common::limits::AGENT_BATCH`]) and [`Secret`], tokens that never print.
//!
//! **Architecture Invariant:** the agent never stops sampling because of the primary. Only a
//! configuration the operator must fix ends [`run`](run()) with an error ([`AgentError`]);
//! everything else is retried.
//!
//! **Architecture Invariant:** a sample leaves the backlog only after the primary answered for
//! it (accepted, or refused for good with 413 or 422).

pub mod actions;
pub mod backlog;
pub mod client;
pub mod config;
pub mod credential;
mod error;
mod push;
mod run;
pub mod shutdown;

pub use config::{Config, ConfigError};
pub use error::AgentError;
pub use pivitals_common::Secret;
pub use run::{
    BACKLOG_DIR, FINAL_PUSH_TIMEOUT, GOODBYE_TIMEOUT, MAX_START_JITTER, Sampler, run, run_with,
    start_offset,
};
