//! Test helpers: real storage servers on free loopback ports, and the one harness that starts
//! a primary and agents for every end-to-end test of the workspace.
//!
//! - [`InfluxV1`] runs the Debian `influxdb` package's `influxd` (1.x) in a temporary directory.
//! - [`VictoriaMetrics`] runs the Debian `victoria-metrics` package's single-node server.
//! - [`influx3_receiver`] is a local receiver of the InfluxDB 3 HTTP API (not a real server:
//!   none can run here) that checks each request as the API reference documents it, writes
//!   and the v1-compatible `/query` of the history alike.
//! - [`Prometheus`] runs the Debian `prometheus` package's server, scraping what a test names.
//! - [`smtp::SmtpServer`] runs Python's `aiosmtpd` (PyPI), filing received mail in a Maildir.
//! - [`http`] is a tiny blocking HTTP/1.1 client for poking at those servers from tests.
//! - [`harness`] starts the primary (as its binary, or in-process on port 0) and agent binaries.
//! - [`actions`] asks a primary binary for actions, starts agents with `[actions.*]` settings
//!   and reads results and `action` lines back.
//! - [`samples`] builds registrations and vitals payloads from the wire types.
//! - [`history`] pushes nodes' samples, old ones too, and reads the ranged history back.
//! - [`archive`] reads the measurement lines of a primary's archive files.
//! - [`query_text`] reads which names a Flux or InfluxQL dashboard query refers to.
//! - [`repo_files`] reads the repository's own files (JSON, YAML through Python).
//!
//! The server helpers and [`http`] are synchronous and use only `std`, so they work the same
//! from a plain `#[test]` and from a `#[tokio::test]` (the calls are short and local); the
//! in-process primary needs a tokio runtime.
//!
//! A missing binary is an error that says what to install; tests fail with it rather than
//! skip, so a machine without the servers cannot pass by accident.
//!
//! **Architecture Invariant:** this crate is a dev-dependency only; nothing in it ships. It
//! depends on `pivitals-primary` (a normal dependency here, while the primary has this crate as
//! a dev-dependency: cargo allows that), never the other way round.

pub mod actions;
pub mod archive;
pub mod browser;
pub mod harness;
pub mod history;
pub mod http;
pub mod influx3_receiver;
mod influx_v1;
mod process;
pub mod prometheus;
pub mod query_text;
pub mod repo_files;
pub mod samples;
pub mod smtp;
mod victoria;

pub use http::HttpResponse;
pub use influx_v1::InfluxV1;
pub use prometheus::Prometheus;
pub use victoria::VictoriaMetrics;

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding port 0 and dropping the listener, so another process can
/// take it before the caller does; the server helpers retry their start-up for that reason.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}
