//! [`InfluxWriter`]: one cheap-to-clone handle that writes line protocol to InfluxDB 1.x, 2.x
//! or 3 and sets up the 365-day retention.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE};

use super::answer::{self, ERROR_BODY_LIMIT};
use super::api::InfluxApi;
use super::config::{ContentEncoding, InfluxConfig};
use super::error::{InfluxError, WriteError};
use super::gzip;
use super::retention::RetentionOutcome;
use super::v1::V1;
use super::v2::V2;
use super::v3::{self, V3};

/// Writes batches of line protocol to the configured InfluxDB.
///
/// Clones share one connection pool. The writer does not log write failures or retry: the
/// caller does, guided by the [`WriteError`] variant.
#[derive(Clone)]
pub struct InfluxWriter {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    timeout: Duration,
    content_encoding: ContentEncoding,
    backend: Backend,
}

enum Backend {
    V1(V1),
    V2(V2),
    V3(V3),
}

impl InfluxWriter {
    /// Validates `cfg` and builds a writer on `http` (the caller's client: TLS roots, user
    /// agent and pool are its business). Fails with [`InfluxError::NotConfigured`] when
    /// `cfg.api` is `None`.
    pub fn new(cfg: &InfluxConfig, http: reqwest::Client) -> Result<Self, InfluxError> {
        cfg.validate()?;
        let backend = match cfg.api.ok_or(InfluxError::NotConfigured)? {
            InfluxApi::V1 => Backend::V1(V1::new(cfg)?),
            InfluxApi::V2 => Backend::V2(V2::new(cfg)?),
            InfluxApi::V3 => Backend::V3(V3::new(cfg)?),
        };
        Ok(InfluxWriter {
            inner: Arc::new(Inner {
                http,
                timeout: cfg.timeout()?,
                content_encoding: cfg.content_encoding,
                backend,
            }),
        })
    }

    /// Where the writer writes, without secrets, e.g.
    /// `InfluxDB v1 http://127.0.0.1:8086 db=pivitals rp=pivitals_365d`.
    pub fn describe(&self) -> String {
        match &self.inner.backend {
            Backend::V1(v1) => v1.describe(),
            Backend::V2(v2) => v2.describe(),
            Backend::V3(v3) => v3.describe(),
        }
    }

    /// Ensures the 365-day retention at start-up and logs the outcome once (a single
    /// `warn!` when it differs or cannot be verified). Never fails: a server without the
    /// bucket API, a token without rights, or no answer at all gives
    /// [`RetentionOutcome::Unverified`], and writing goes on.
    ///
    /// - v2: `GET /api/v2/orgs?org=`, `GET /api/v2/buckets?name=&orgID=`, then
    ///   `POST /api/v2/buckets` with `everySeconds: 31536000` when the bucket is missing.
    /// - v1: `CREATE DATABASE` (idempotent), `SHOW RETENTION POLICIES`, then
    ///   `CREATE RETENTION POLICY … DURATION 365d REPLICATION 1 DEFAULT` when missing.
    /// - v3: `GET /api/v3/configure/database?format=json`, then `POST
    ///   /api/v3/configure/database` with `retention_period: 365d` when the database is
    ///   missing, else its retention from `system.databases`. Until one such check got an
    ///   answer, [`InfluxWriter::write`] checks again first and keeps the batch when there is
    ///   still none, so a write never creates the database without retention.
    pub async fn ensure_retention(&self) -> RetentionOutcome {
        let Inner {
            http,
            timeout,
            backend,
            ..
        } = &*self.inner;
        match backend {
            Backend::V1(v1) => {
                let outcome = v1.ensure_retention(http, *timeout).await;
                outcome.log(&v1.retention_target());
                outcome
            }
            Backend::V2(v2) => {
                let outcome = v2.ensure_retention(http, *timeout).await;
                outcome.log(&v2.retention_target());
                outcome
            }
            Backend::V3(v3) => {
                let outcome = v3.check_database(http, *timeout).await.outcome;
                v3.log_outcome(&outcome);
                outcome
            }
        }
    }

    /// Writes one batch of newline-separated line protocol with nanosecond timestamps, plain
    /// or gzip-compressed as configured. An empty batch is not sent.
    pub async fn write(&self, lines: &[u8]) -> Result<(), WriteError> {
        if lines.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let Inner {
            http,
            timeout,
            content_encoding,
            backend,
        } = &*self.inner;
        let request = match backend {
            Backend::V1(v1) => v1.write_request(http),
            Backend::V2(v2) => v2.write_request(http),
            Backend::V3(v3) => {
                v3.ready_to_write(http, *timeout).await?;
                v3.write_request(http)
            }
        }
        .timeout(*timeout)
        .header(CONTENT_TYPE, "text/plain; charset=utf-8");
        let request = match content_encoding {
            ContentEncoding::Gzip => match gzip::compress(lines) {
                Ok(packed) => request.header(CONTENT_ENCODING, "gzip").body(packed),
                // Compressing into memory does not fail in practice; plain text works too.
                Err(_) => request.body(lines.to_vec()),
            },
            ContentEncoding::Identity => request.body(lines.to_vec()),
        };
        match answer::send(request, ERROR_BODY_LIMIT).await {
            Ok(answer) if matches!(backend, Backend::V3(_)) => {
                answer::classify_write(v3::first_rejection(answer))
            }
            Ok(answer) => answer::classify_write(answer),
            Err(error) => Err(answer::network_error(&error)),
        }
    }
}

impl fmt::Debug for InfluxWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("InfluxWriter")
            .field(&self.describe())
            .finish()
    }
}
