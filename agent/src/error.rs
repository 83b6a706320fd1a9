//! Why the agent stopped on its own: the errors [`crate::run`] returns.
//!
//! Anything the agent can outwait (an unreachable or busy primary, a refused enrollment token
//! that an operator may still fix on the primary) is retried and never ends up here.

use std::io;
use std::path::PathBuf;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum AgentError {
    /// The state directory cannot be created or read.
    #[error("state directory {}: {source}", path.display())]
    State { path: PathBuf, source: io::Error },
    /// The node must register but has no enrollment token.
    #[error(
        "PIVITALS_ENROLL_TOKEN is not set and there is no usable credential in {}: the node cannot register",
        .0.display()
    )]
    NoEnrollToken(PathBuf),
    /// The primary answered 422 to the registration: the name or labels are not acceptable.
    #[error("the primary refused to register node {node:?}: {message}")]
    Refused { node: String, message: String },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

impl AgentError {
    /// Whether the operator must change the configuration (exit code 2 rather than 1).
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::NoEnrollToken(_) | Self::Refused { .. })
    }
}
