//! InfluxDB 3 (Core and Enterprise): `POST /api/v3/write_lp?db=&precision=nanosecond&
//! accept_partial=true` with `Authorization: Bearer` when a token is configured, and the
//! database API (`/api/v3/configure/database`, `system.databases`) for the 365-day retention.
//!
//! What the InfluxDB 3 HTTP API reference documents, and what pivitals does with it:
//!
//! - **Writes** take gzip (`Content-Encoding: gzip`), so the body is compressed as for v2.
//!   `precision=nanosecond` is spelled out: the default `auto` guesses from the magnitude,
//!   and only the long names are accepted by every 3.x release.
//! - **Partial writes**: `accept_partial=true` (the default, sent anyway so a changed default
//!   cannot change us) writes the good lines and answers 400 `partial write of line protocol
//!   occurred` with the refused lines in `data`. That is what 1.x (400 "partial write") and
//!   2.x (422) do, so the batch is dropped and counted the same way. `accept_partial=false`
//!   would make a batch atomic, but one bad line would then cost every good point of the
//!   batch, and resending cannot help (the line stays bad); a batch is already safe to
//!   resend on other failures (same series and time overwrite).
//! - **The database** is created at start with `POST /api/v3/configure/database
//!   {"db", "retention_period": "365d"}` when `GET /api/v3/configure/database?format=json`
//!   (which lists names only, `[{"iox::database": …}]`) does not list it. The list shows no
//!   retention, so an existing database's is read from `system.databases.retention_period_ns`
//!   (`POST /api/v3/query_sql` on `_internal`; absent or null = none, kept forever). A
//!   different retention is warned about once and left alone: Core cannot change it (and
//!   where a newer release can, it is the operator's call, as for v1/v2).
//! - **Never write-creates**: a write to a missing database creates it with infinite
//!   retention. Until the database check got an answer, writes are held back (the batch is
//!   kept and retried) and the check is repeated before each attempt; once it was answered
//!   (even "not allowed to list databases", for a token that may only write) writes go.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use super::answer::{self, Answer, QUERY_BODY_LIMIT};
use super::config::{InfluxConfig, redact_url};
use super::error::{InfluxError, WriteError};
use super::retention::{RETENTION_SECONDS, RetentionOutcome, human};
use super::v1::endpoint;

/// The retention asked for in `POST /api/v3/configure/database` (humantime: 365 × 24 h).
pub(crate) const RETENTION_PERIOD: &str = "365d";

/// The database that holds InfluxDB 3's system tables.
const SYSTEM_DATABASE: &str = "_internal";

/// Where and with which token to write on an InfluxDB 3 server.
pub(crate) struct V3 {
    base: Url,
    database: String,
    /// `Bearer …`, marked sensitive; `None` for a server without auth.
    authorization: Option<HeaderValue>,
    /// True once a database check was answered, so writes cannot create the database.
    checked: AtomicBool,
}

/// What one database check found: its outcome, and whether the server answered at all.
pub(crate) struct DatabaseCheck {
    pub outcome: RetentionOutcome,
    pub answered: bool,
}

impl V3 {
    /// Takes the v3 settings from a validated config.
    pub fn new(cfg: &InfluxConfig) -> Result<V3, InfluxError> {
        let authorization = match cfg.token.as_deref().map(str::trim) {
            Some(token) if !token.is_empty() => {
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        InfluxError::Invalid {
                            var: "PIVITALS_INFLUX__TOKEN",
                            reason: "cannot be sent as an HTTP header".to_owned(),
                        }
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(V3 {
            base: cfg.base_url()?,
            database: cfg.database.trim().to_owned(),
            authorization,
            checked: AtomicBool::new(false),
        })
    }

    /// "InfluxDB v3 URL db=..", without the token.
    pub fn describe(&self) -> String {
        format!(
            "InfluxDB v3 {} db={}{}",
            redact_url(self.base.as_str()),
            self.database,
            if self.authorization.is_some() {
                ""
            } else {
                " (no token)"
            }
        )
    }

    /// Names the database in log lines.
    pub fn retention_target(&self) -> String {
        format!(
            "InfluxDB v3 database \"{}\" at {}",
            self.database,
            redact_url(self.base.as_str())
        )
    }

    /// `POST {url}/api/v3/write_lp?db=&precision=nanosecond&accept_partial=true` with the
    /// token; the caller adds the body.
    pub fn write_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut url = endpoint(&self.base, &["api", "v3", "write_lp"]);
        url.query_pairs_mut()
            .append_pair("db", &self.database)
            .append_pair("precision", "nanosecond")
            .append_pair("accept_partial", "true");
        self.authenticate(http.post(url))
    }

    /// Whether writes may go: the database check was answered (at start or since). When not,
    /// checks again (logging the outcome once) and returns the error that keeps the batch.
    pub async fn ready_to_write(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<(), WriteError> {
        if self.checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let check = self.check_database(http, timeout).await;
        if check.answered {
            self.log_outcome(&check.outcome);
            return Ok(());
        }
        Err(WriteError::Transient {
            status: None,
            retry_after: None,
            detail: format!(
                "not writing before the database is checked, so a write cannot create it \
                 without retention ({})",
                check.outcome
            ),
        })
    }

    /// Logs what a check found, once: as for v1/v2, except that a different retention says
    /// how to get a year, since InfluxDB 3 Core cannot change a database's retention.
    pub fn log_outcome(&self, outcome: &RetentionOutcome) {
        let target = self.retention_target();
        match outcome {
            RetentionOutcome::Differs { found } => tracing::warn!(
                "{target}: retention is {found}, not the configured {RETENTION_PERIOD}; left \
                 unchanged (InfluxDB 3 Core cannot change it: for a year of vitals create a new \
                 database with --retention-period {RETENTION_PERIOD} and set \
                 PIVITALS_INFLUX__DATABASE to it)"
            ),
            other => other.log(&target),
        }
    }

    /// Lists the databases; creates ours with a 365-day retention when missing, else reads
    /// its retention. Marks the writer ready when the server answered.
    pub async fn check_database(&self, http: &reqwest::Client, timeout: Duration) -> DatabaseCheck {
        let check = match self.try_check(http, timeout).await {
            Ok(outcome) => DatabaseCheck {
                outcome,
                answered: true,
            },
            Err(failure) => DatabaseCheck {
                outcome: RetentionOutcome::Unverified {
                    reason: failure.reason,
                },
                answered: failure.answered,
            },
        };
        if check.answered {
            self.checked.store(true, Ordering::Release);
        }
        check
    }

    async fn try_check(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<RetentionOutcome, Failure> {
        if self.exists(http, timeout).await? {
            return self.read_retention(http, timeout).await;
        }
        let request = self
            .authenticate(http.post(endpoint(
                &self.base,
                &["api", "v3", "configure", "database"],
            )))
            .timeout(timeout)
            .json(&json!({"db": self.database, "retention_period": RETENTION_PERIOD}));
        let answer = send("POST /api/v3/configure/database", request).await?;
        match answer.status {
            200..=299 => Ok(RetentionOutcome::Created),
            // Created by someone else since the list: read what it got.
            409 => self.read_retention(http, timeout).await,
            _ => Err(Failure::answered(
                "POST /api/v3/configure/database",
                &answer,
            )),
        }
    }

    /// `GET /api/v3/configure/database?format=json`: whether our database is listed.
    async fn exists(&self, http: &reqwest::Client, timeout: Duration) -> Result<bool, Failure> {
        const WHAT: &str = "GET /api/v3/configure/database";
        let mut url = endpoint(&self.base, &["api", "v3", "configure", "database"]);
        url.query_pairs_mut().append_pair("format", "json");
        let request = self.authenticate(http.get(url)).timeout(timeout);
        let answer = send(WHAT, request).await?;
        let json = parse_json(WHAT, &answer)?;
        Ok(database_names(&json).any(|name| name == self.database))
    }

    /// `SELECT … FROM system.databases` on `_internal`: our database's retention.
    async fn read_retention(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<RetentionOutcome, Failure> {
        const WHAT: &str = "POST /api/v3/query_sql (system.databases)";
        // Every row is fetched and filtered here, so the name is never part of the SQL.
        let request = self
            .authenticate(http.post(endpoint(&self.base, &["api", "v3", "query_sql"])))
            .timeout(timeout)
            .json(&json!({
                "db": SYSTEM_DATABASE,
                "q": "SELECT database_name, retention_period_ns FROM system.databases",
                "format": "json",
            }));
        let answer = send(WHAT, request).await?;
        let json = parse_json(WHAT, &answer)?;
        let row = json
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row.get("database_name").and_then(Value::as_str) == Some(&self.database))
            .ok_or_else(|| Failure {
                reason: format!("{WHAT} did not list the database"),
                answered: true,
            })?;
        Ok(compare(retention_seconds(row)))
    }

    fn authenticate(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.authorization {
            Some(value) => request.header(AUTHORIZATION, value.clone()),
            None => request,
        }
    }
}

/// Why a check did not finish, and whether the server answered (so writes may go).
struct Failure {
    reason: String,
    answered: bool,
}

impl Failure {
    /// An answer that is not the one hoped for: says what the status usually means. 5xx
    /// counts as no answer (the server is not ready), so writes wait.
    fn answered(what: &str, answer: &Answer) -> Failure {
        let hint = match answer.status {
            401 | 403 => {
                " (the token may lack the rights to list or create databases or to read \
                 system.databases; writes go ahead)"
            }
            404 | 405 => " (the server seems to have no InfluxDB 3 database API)",
            _ => "",
        };
        Failure {
            reason: format!("{what} answered {}{hint}", answer.summary()),
            answered: answer.status < 500,
        }
    }
}

async fn send(what: &str, request: reqwest::RequestBuilder) -> Result<Answer, Failure> {
    answer::send(request, QUERY_BODY_LIMIT)
        .await
        .map_err(|e| Failure {
            reason: format!("{what}: {}", answer::describe_network_error(&e)),
            answered: false,
        })
}

fn parse_json(what: &str, answer: &Answer) -> Result<Value, Failure> {
    if !answer.is_success() {
        return Err(Failure::answered(what, answer));
    }
    serde_json::from_str(&answer.body).map_err(|_| Failure {
        reason: format!("{what} answered {} with no JSON", answer.status),
        answered: true,
    })
}

/// The names in a database list: `[{"iox::database": "x"}, …]` as the server answers and
/// the "List databases" guide shows, or `{"databases": ["x"]}` as the OpenAPI schema says.
fn database_names(list: &Value) -> impl Iterator<Item = &str> {
    let rows = list.as_array().into_iter().flatten();
    let from_rows = rows.filter_map(|row| row.get("iox::database").and_then(Value::as_str));
    let from_object = list
        .get("databases")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str);
    from_rows.chain(from_object)
}

/// A `system.databases` row's retention in seconds; `None` when it has none (null or left
/// out of the JSON row), which means kept forever.
fn retention_seconds(row: &Value) -> Option<u64> {
    row.get("retention_period_ns")
        .and_then(Value::as_u64)
        .map(|nanos| nanos / 1_000_000_000)
}

fn compare(seconds: Option<u64>) -> RetentionOutcome {
    match seconds {
        Some(RETENTION_SECONDS) => RetentionOutcome::AlreadyOk,
        Some(other) => RetentionOutcome::Differs {
            found: human(other),
        },
        None => RetentionOutcome::Differs {
            found: "none (kept forever)".to_owned(),
        },
    }
}

/// Shortens a 400 partial-write answer to its first refused line and how many there were,
/// so the one log line of a dropped batch says what was wrong; other answers are unchanged.
pub(crate) fn first_rejection(mut answer: Answer) -> Answer {
    if answer.status != 400 {
        return answer;
    }
    let Ok(json) = serde_json::from_str::<Value>(&answer.body) else {
        return answer;
    };
    let error = json
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default();
    // `data` is an array with accept_partial=true, one object without.
    let lines: Vec<&Value> = match json.get("data") {
        Some(Value::Array(lines)) => lines.iter().collect(),
        Some(line @ Value::Object(_)) => vec![line],
        _ => return answer,
    };
    let Some(first) = lines.first() else {
        return answer;
    };
    let number = first
        .get("line_number")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let message = first
        .get("error_message")
        .and_then(Value::as_str)
        .unwrap_or("?");
    answer.body = format!(
        "{error}: {} line(s) refused, the first is line {number}: {message}",
        lines.len()
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_database_lists_in_both_documented_shapes() {
        let rows = json!([{"iox::database": "_internal"}, {"iox::database": "pivitals"}]);
        assert_eq!(
            database_names(&rows).collect::<Vec<_>>(),
            ["_internal", "pivitals"]
        );
        let object = json!({"databases": ["pivitals"]});
        assert_eq!(database_names(&object).collect::<Vec<_>>(), ["pivitals"]);
        assert_eq!(database_names(&json!({})).count(), 0);
    }

    #[test]
    fn reads_retention_periods() {
        let year = json!({"database_name": "p", "retention_period_ns": 31_536_000_000_000_000u64});
        assert_eq!(
            compare(retention_seconds(&year)),
            RetentionOutcome::AlreadyOk
        );
        let week = json!({"database_name": "p", "retention_period_ns": 604_800_000_000_000u64});
        assert_eq!(
            compare(retention_seconds(&week)),
            RetentionOutcome::Differs {
                found: "7days".into()
            }
        );
        for row in [
            json!({"database_name": "p"}),
            json!({"retention_period_ns": null}),
        ] {
            assert!(matches!(
                compare(retention_seconds(&row)),
                RetentionOutcome::Differs { found } if found.contains("forever")
            ));
        }
    }

    #[test]
    fn partial_write_answers_keep_their_first_error() {
        let body = r#"{"error":"partial write of line protocol occurred","data":[
            {"original_line":"cpu v= 1","line_number":2,"error_message":"No fields were provided"},
            {"original_line":"x","line_number":5,"error_message":"bad"}]}"#;
        let short = first_rejection(Answer {
            status: 400,
            retry_after: None,
            body: body.into(),
        });
        assert_eq!(
            short.body,
            "partial write of line protocol occurred: 2 line(s) refused, the first is line 2: \
             No fields were provided"
        );
        let other = first_rejection(Answer {
            status: 500,
            retry_after: None,
            body: body.into(),
        });
        assert_eq!(other.body, body);
    }

    #[test]
    fn the_token_is_sent_as_bearer_and_never_shown() {
        let cfg = InfluxConfig {
            api: Some(super::super::InfluxApi::V3),
            url: Some("http://influxdb3:8181".into()),
            token: Some("apiv3_secret".into()),
            ..InfluxConfig::default()
        };
        let v3 = V3::new(&cfg).unwrap();
        let header = v3.authorization.as_ref().unwrap();
        assert!(header.is_sensitive());
        assert_eq!(header.to_str().unwrap(), "Bearer apiv3_secret");
        assert!(!v3.describe().contains("secret"));
        let open = V3::new(&InfluxConfig { token: None, ..cfg }).unwrap();
        assert!(open.authorization.is_none());
        assert!(open.describe().contains("(no token)"));
    }
}
