//! Writing vitals to InfluxDB and reading their history back: the only code in pivitals that
//! talks to InfluxDB.
//!
//! **Architecture Invariant:** nothing outside this module knows an InfluxDB URL, API
//! version, token or answer code. Callers hand [`InfluxWriter::write`] a batch of line
//! protocol and get back `Ok` or a [`WriteError`] that says what to do with the batch
//! (drop it, split it, keep it and retry slowly, or back off and retry).
//!
//! - `config`: [`InfluxConfig`] from `PIVITALS_INFLUX__*` and its validation; `api`:
//!   [`InfluxApi`], the API versions.
//! - `writer`: [`InfluxWriter`], one handle for either API version.
//! - `v1`, `v2` and `v3`: the HTTP requests of InfluxDB 1.x, 2.x and 3 (Core, Enterprise);
//!   `v3` also documents what pivitals does with InfluxDB 3's answers and databases.
//! - `answer`: how a write answer is classified into a [`WriteError`].
//! - `retention`: the 365-day retention that [`InfluxWriter::ensure_retention`] sets up (a
//!   2.x bucket, a 1.x retention policy, an InfluxDB 3 database's `retention_period`).
//! - `gzip`: request-body compression (`Content-Encoding: gzip`), when
//!   [`ContentEncoding::Gzip`] is chosen.
//! - `error`: [`InfluxError`] (configuration) and [`WriteError`] (one write).
//! - `query`: [`InfluxReader`], a node's ranged history read back for the dashboard
//!   (the series' fields in `query_series`, InfluxQL in `query_influxql` for v1 and v3,
//!   Flux in `query_flux` for v2), and [`QueryError`].

mod answer;
mod api;
mod config;
mod error;
mod gzip;
mod query;
mod query_flux;
mod query_influxql;
mod query_series;
mod retention;
mod v1;
mod v2;
mod v3;
mod writer;

pub use api::InfluxApi;
pub use config::{ContentEncoding, InfluxConfig};
pub use error::{InfluxError, WriteError};
pub use query::{InfluxReader, QUERY_TIMEOUT, QueryError};
pub use retention::{RETENTION, RETENTION_SECONDS, RetentionOutcome};
pub use writer::InfluxWriter;
