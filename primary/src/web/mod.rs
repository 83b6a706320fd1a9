//! Everything HTTP on the primary side: the API and dashboard routes, the extractors that check
//! tokens and bodies, the one [`ApiError`](error::ApiError) that turns the domain's errors into
//! status codes with JSON bodies, the server loop with its time limits, and TLS.
//!
//! **Architecture Invariant:** only this module knows HTTP. The domain (nodes, ingest, storage,
//! alerts) returns its own error enums; [`error`] maps each to a status code.

pub mod dashboard;
pub mod error;
pub mod extract;
pub mod node_metrics;
pub(crate) mod prometheus;
pub mod routes;
pub mod serve;
pub mod session;
pub mod tls;

pub use routes::app;
