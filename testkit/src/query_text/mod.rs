//! Reading dashboard queries without a parser: which measurements, fields, tags and variables
//! a Flux or InfluxQL query names, and whether pivitals writes them
//! (`pivitals_common::line_protocol::SCHEMA`).
//!
//! - [`names`]: the lexical pieces both languages share (identifiers, quoted strings).
//! - [`flux`]: the few Flux patterns the dashboards use (`r.name == "x"`, `field: "x"`, …).
//! - [`influxql`]: a tokenizer and the clauses the InfluxQL queries use.
//! - [`refs`]: what one query refers to, checked against the schema.
//!
//! No InfluxDB 2 (nor a Flux-enabled 1.8) runs on a test machine, so Flux is only read here;
//! InfluxQL is also run against a real InfluxDB 1.x by the tests.

pub mod flux;
pub mod influxql;
pub mod names;
pub mod refs;

pub use refs::{Refs, schema_errors, schema_errors_with_labels};
