//! The pivitals agent: samples its host's vitals and pushes them to the primary.
//!
//! Layout, one concern per module:
//! - [`config`]: settings from a TOML file and `PIVITALS_*` variables;
//! - [`collect`]: samples the host (sysinfo plus `/sys` and `/proc` readers);
//! - [`run`](run()): the agent's life — sampling loop, sending loop, shutdown;
//! - `push`: the sender's decisions on every answer of the primary;
//! - [`client`]: the primary's HTTP API, one method per call;
//! - [`backlog`]: samples waiting for the primary, on disk in the state directory so they
//!   survive a restart; bounded, oldest dropped first;
//! - [`backoff`]: capped exponential backoff with full jitter;
//! - [`credential`]: the node token kept in the state directory;
//! - [`shutdown`]: SIGTERM and Ctrl-C; [`secret`]: tokens that never print.
//!
//! **Architecture Invariant:** the agent never stops sampling because of the primary. Only a
//! configuration the operator must fix ends [`run`](run()) with an error ([`AgentError`]);
//! everything else is retried.
//!
//! **Architecture Invariant:** a sample leaves the backlog only after the primary answered for
//! it (accepted, or refused for good with 413 or 422).

pub mod backlog;
pub mod backoff;
pub mod client;
pub mod collect;
pub mod config;
pub mod credential;
mod error;
mod push;
mod run;
pub mod secret;
pub mod shutdown;

pub use config::{Config, ConfigError};
pub use error::AgentError;
pub use push::MAX_BATCH;
pub use run::{
    BACKLOG_DIR, FINAL_PUSH_TIMEOUT, GOODBYE_TIMEOUT, MAX_START_JITTER, Sampler, run, run_with,
    start_offset,
};
pub use secret::Secret;
