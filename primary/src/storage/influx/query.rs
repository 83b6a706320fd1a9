//! [`InfluxReader`]: the ranged history of one node read back from InfluxDB, for the
//! dashboard's 1 h to 30 d charts.
//!
//! One answer is nine series ([`Series`]), each grouped into the window's steps with the
//! step's mean, lowest and highest value:
//!
//! | series | measurement, field | peaks | over tags |
//! | --- | --- | --- | --- |
//! | `cpu_percent` | `cpu.usage_percent` | `usage_percent_min`, `_max` | — |
//! | `mem_percent` | `mem.used_percent` | `used_percent_min`, `_max` | — |
//! | `temp_celsius` | `temperature.celsius` | `celsius_min`, `_max` | highest `sensor` |
//! | `disk_percent` | `disk.used_percent` | — | highest `mount` |
//! | `load1` | `system.load1` | `load1_min`, `_max` | — |
//! | `net_rx/tx_bytes_per_second` | `net.rx/tx_bytes_per_second` | — | sum of `interface`s |
//! | `disk_read/write_bytes_per_second` | `diskio.read/write_bytes_per_second` | — | sum of `device`s |
//!
//! Per step and tag the store answers `mean(field)`, `min` of the field and its `_min` peak,
//! `max` of the field and its `_max` peak (so a peak field wins where it was written, and the
//! means' extremes stand in where it was not); the tags are then combined here (the highest,
//! or the sum: a sum of peaks is an upper bound, peaks of two interfaces need not coincide).
//!
//! - v1 (and v3 through its v1-compatible `/query`): InfluxQL `SELECT … GROUP BY time(step),
//!   tag fill(none)`, all nine statements in one request on v1 and one request each on v3;
//!   see `query_influxql`.
//! - v2: one Flux script on `POST /api/v2/query`, answered as annotated CSV; see
//!   `query_flux`.
//!
//! A query that fails or takes longer than [`QUERY_TIMEOUT`] is a [`QueryError`] naming the
//! store; nothing is retried (the dashboard asks again).

use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use super::api::InfluxApi;
use super::config::{InfluxConfig, redact_url};
use super::error::InfluxError;
use super::query_series::{SERIES_QUERIES, combine};
use super::{query_flux, query_influxql};
use crate::history::{SeriesPoints, Window};

/// The longest a history query may take, all requests included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// A history query failed; the message names the store.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("{store} did not answer the history query within {} s", QUERY_TIMEOUT.as_secs())]
    TimedOut { store: String },
    #[error("{store} failed the history query: {detail}")]
    Failed { store: String, detail: String },
}

/// Reads the ranged history from the configured InfluxDB. Cheap to clone.
#[derive(Clone)]
pub struct InfluxReader {
    http: reqwest::Client,
    store: String,
    dialect: Dialect,
}

#[derive(Clone)]
enum Dialect {
    InfluxQl(query_influxql::InfluxQl),
    Flux(query_flux::Flux),
}

impl InfluxReader {
    /// A reader for the InfluxDB `cfg` describes, on `http`.
    pub fn new(cfg: &InfluxConfig, http: reqwest::Client) -> Result<InfluxReader, InfluxError> {
        cfg.validate()?;
        let api = cfg.api.ok_or(InfluxError::NotConfigured)?;
        let base: Url = cfg.base_url()?;
        let header =
            |scheme: &str, var: &'static str| -> Result<Option<HeaderValue>, InfluxError> {
                match cfg.token.as_deref().map(str::trim) {
                    Some(token) if !token.is_empty() => {
                        let mut value = HeaderValue::from_str(&format!("{scheme} {token}"))
                            .map_err(|_| InfluxError::Invalid {
                                var,
                                reason: "cannot be sent as an HTTP header".to_owned(),
                            })?;
                        value.set_sensitive(true);
                        Ok(Some(value))
                    }
                    _ => Ok(None),
                }
            };
        let (store, dialect) = match api {
            InfluxApi::V1 => (
                format!(
                    "InfluxDB v1 {} db={}",
                    redact_url(base.as_str()),
                    cfg.database.trim()
                ),
                Dialect::InfluxQl(query_influxql::InfluxQl {
                    base,
                    database: cfg.database.trim().to_owned(),
                    retention_policy: Some(cfg.retention_policy.trim().to_owned())
                        .filter(|rp| !rp.is_empty()),
                    basic: cfg.username.clone().zip(cfg.password.clone()),
                    authorization: None,
                    one_statement_per_request: false,
                }),
            ),
            InfluxApi::V3 => (
                format!(
                    "InfluxDB v3 {} db={}",
                    redact_url(base.as_str()),
                    cfg.database.trim()
                ),
                Dialect::InfluxQl(query_influxql::InfluxQl {
                    base,
                    database: cfg.database.trim().to_owned(),
                    retention_policy: None,
                    basic: None,
                    authorization: header("Bearer", "PIVITALS_INFLUX__TOKEN")?,
                    one_statement_per_request: true,
                }),
            ),
            InfluxApi::V2 => {
                let authorization =
                    header("Token", "PIVITALS_INFLUX__TOKEN")?.ok_or(InfluxError::Missing {
                        var: "PIVITALS_INFLUX__TOKEN",
                        api,
                    })?;
                let org = cfg
                    .org
                    .as_deref()
                    .map(str::trim)
                    .unwrap_or_default()
                    .to_owned();
                (
                    format!(
                        "InfluxDB v2 {} org={org} bucket={}",
                        redact_url(base.as_str()),
                        cfg.bucket.trim()
                    ),
                    Dialect::Flux(query_flux::Flux {
                        base,
                        org,
                        bucket: cfg.bucket.trim().to_owned(),
                        authorization,
                    }),
                )
            }
        };
        Ok(InfluxReader {
            http,
            store,
            dialect,
        })
    }

    /// Where the reader reads, without secrets.
    pub fn describe(&self) -> &str {
        &self.store
    }

    /// `node`'s nine series over `window`, at most [`QUERY_TIMEOUT`] in all.
    pub async fn history(&self, node: &str, window: &Window) -> Result<SeriesPoints, QueryError> {
        let query = async {
            match &self.dialect {
                Dialect::InfluxQl(q) => q.history(&self.http, node, window).await,
                Dialect::Flux(f) => f.history(&self.http, node, window).await,
            }
        };
        let rows = match tokio::time::timeout(QUERY_TIMEOUT, query).await {
            Err(_) => {
                return Err(QueryError::TimedOut {
                    store: self.store.clone(),
                });
            }
            Ok(Err(detail)) => {
                return Err(QueryError::Failed {
                    store: self.store.clone(),
                    detail,
                });
            }
            Ok(Ok(rows)) => rows,
        };
        let mut points = SeriesPoints::default();
        for (query, rows) in SERIES_QUERIES.iter().zip(&rows) {
            *points.get_mut(query.series) = combine(query, rows)
                .into_iter()
                .filter(|p| window.contains(p.ts_ms))
                .collect();
        }
        points.normalise();
        Ok(points)
    }
}
