//! InfluxDB 1.x: `POST /write?db=&rp=&precision=ns` and InfluxQL on `POST /query`, with
//! HTTP basic auth when a username is configured.

use std::time::Duration;

use serde_json::Value;
use url::Url;

use super::answer::{self, QUERY_BODY_LIMIT};
use super::config::{InfluxConfig, redact_url};
use super::error::InfluxError;
use super::retention::{RETENTION_SECONDS, RetentionOutcome, human, parse_go_duration};

/// Where and as whom to write on an InfluxDB 1.x server.
pub(crate) struct V1 {
    base: Url,
    database: String,
    retention_policy: String,
    credentials: Option<(String, String)>,
}

impl V1 {
    /// Takes the v1 settings from a validated config.
    pub fn new(cfg: &InfluxConfig) -> Result<V1, InfluxError> {
        Ok(V1 {
            base: cfg.base_url()?,
            database: cfg.database.trim().to_owned(),
            retention_policy: cfg.retention_policy.trim().to_owned(),
            credentials: cfg.username.clone().zip(cfg.password.clone()),
        })
    }

    /// "InfluxDB v1 URL db=.. rp=..", without credentials.
    pub fn describe(&self) -> String {
        format!(
            "InfluxDB v1 {} db={} rp={}",
            redact_url(self.base.as_str()),
            self.database,
            self.retention_policy
        )
    }

    /// Names the retention policy in log lines.
    pub fn retention_target(&self) -> String {
        format!(
            "InfluxDB v1 retention policy \"{}\" on database \"{}\" at {}",
            self.retention_policy,
            self.database,
            redact_url(self.base.as_str())
        )
    }

    /// `POST {url}/write?db=&rp=&precision=ns` with basic auth when configured; the caller
    /// adds the body.
    pub fn write_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut url = endpoint(&self.base, &["write"]);
        url.query_pairs_mut()
            .append_pair("db", &self.database)
            .append_pair("rp", &self.retention_policy)
            .append_pair("precision", "ns");
        self.authenticate(http.post(url))
    }

    /// Creates the database (idempotent) and the 365-day retention policy as the default
    /// when it is missing; reports an existing policy with another duration.
    pub async fn ensure_retention(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> RetentionOutcome {
        let database = quote_ident(&self.database);
        let policy = quote_ident(&self.retention_policy);

        // A user without admin rights cannot create databases but may still read the
        // policies of an existing one, so a failure here is only reported if needed.
        let created = self
            .query(http, timeout, &format!("CREATE DATABASE {database}"))
            .await;
        let shown = self
            .query(
                http,
                timeout,
                &format!("SHOW RETENTION POLICIES ON {database}"),
            )
            .await;
        let policies = match shown.and_then(|answer| parse_policies(&answer)) {
            Ok(policies) => policies,
            Err(show_error) => {
                let reason = match created {
                    Err(create_error) => format!(
                        "CREATE DATABASE failed ({create_error}); \
                         SHOW RETENTION POLICIES failed ({show_error})"
                    ),
                    Ok(_) => format!("SHOW RETENTION POLICIES failed ({show_error})"),
                };
                return RetentionOutcome::Unverified { reason };
            }
        };

        if let Some(found) = policies.iter().find(|p| p.name == self.retention_policy) {
            return match parse_go_duration(&found.duration) {
                Some(RETENTION_SECONDS) => RetentionOutcome::AlreadyOk,
                Some(seconds) => RetentionOutcome::Differs {
                    found: human(seconds),
                },
                None => RetentionOutcome::Differs {
                    found: found.duration.clone(),
                },
            };
        }

        let create = format!(
            "CREATE RETENTION POLICY {policy} ON {database} DURATION 365d REPLICATION 1 DEFAULT"
        );
        match self.query(http, timeout, &create).await {
            Ok(_) => RetentionOutcome::Created,
            Err(error) => RetentionOutcome::Unverified {
                reason: format!("CREATE RETENTION POLICY failed ({error})"),
            },
        }
    }

    /// Runs one InfluxQL statement with `POST /query`; the statement's own error (InfluxDB
    /// answers 200 with `results[0].error`) is an `Err` too.
    async fn query(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        statement: &str,
    ) -> Result<Value, String> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("q", statement)
            .finish();
        let request = self
            .authenticate(http.post(endpoint(&self.base, &["query"])))
            .timeout(timeout)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body);
        let (answer, json) = answer::send_influxql(request, QUERY_BODY_LIMIT).await?;
        if let Some(error) = json.pointer("/results/0/error").and_then(Value::as_str) {
            return Err(error.to_owned());
        }
        if !answer.is_success() {
            return Err(answer.summary());
        }
        Ok(json)
    }

    fn authenticate(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        with_basic_auth(request, self.credentials.as_ref())
    }
}

/// The request with HTTP basic auth as `(user, password)`, or as it is without credentials.
pub(crate) fn with_basic_auth(
    request: reqwest::RequestBuilder,
    credentials: Option<&(String, String)>,
) -> reqwest::RequestBuilder {
    match credentials {
        Some((user, password)) => request.basic_auth(user, Some(password)),
        None => request,
    }
}

/// The base URL with path segments appended (a path prefix of the base URL is kept).
pub(crate) fn endpoint(base: &Url, segments: &[&str]) -> Url {
    let mut url = base.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(segments);
    }
    url
}

/// An InfluxQL identifier in double quotes, with `\` and `"` escaped.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

struct Policy {
    name: String,
    duration: String,
}

/// Reads `SHOW RETENTION POLICIES`: columns `name`, `duration`, … An answer without a
/// `duration` column is not from InfluxDB 1.x (VictoriaMetrics answers every query with its
/// database list).
fn parse_policies(answer: &Value) -> Result<Vec<Policy>, String> {
    let Some(series) = answer.pointer("/results/0/series/0") else {
        return Ok(Vec::new());
    };
    let columns: Vec<&str> = series
        .get("columns")
        .and_then(Value::as_array)
        .map(|cols| cols.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let column = |name: &str| columns.iter().position(|c| *c == name);
    let (Some(name_at), Some(duration_at)) = (column("name"), column("duration")) else {
        return Err(format!(
            "the answer lists no retention policy durations (columns {columns:?}); \
             the server does not behave like InfluxDB 1.x"
        ));
    };
    let rows = series
        .get("values")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    Ok(rows
        .iter()
        .filter_map(|row| {
            Some(Policy {
                name: row.get(name_at)?.as_str()?.to_owned(),
                duration: row.get(duration_at)?.as_str()?.to_owned(),
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_ident("pivitals"), "\"pivitals\"");
        assert_eq!(quote_ident("a\"b\\c"), "\"a\\\"b\\\\c\"");
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let base = Url::parse("http://h:8086/influx/").unwrap();
        assert_eq!(
            endpoint(&base, &["write"]).as_str(),
            "http://h:8086/influx/write"
        );
        let base = Url::parse("http://h:8086").unwrap();
        assert_eq!(endpoint(&base, &["query"]).as_str(), "http://h:8086/query");
    }

    #[test]
    fn parses_retention_policies() {
        let answer: Value = serde_json::from_str(
            r#"{"results":[{"statement_id":0,"series":[{"columns":["name","duration","shardGroupDuration","replicaN","default"],
            "values":[["autogen","0s","168h0m0s",1,false],["pivitals_365d","8760h0m0s","168h0m0s",1,true]]}]}]}"#,
        )
        .unwrap();
        let policies = parse_policies(&answer).unwrap();
        assert_eq!(policies.len(), 2);
        assert_eq!(policies[1].name, "pivitals_365d");
        assert_eq!(policies[1].duration, "8760h0m0s");
    }

    #[test]
    fn refuses_a_database_list_as_policies() {
        let answer: Value = serde_json::from_str(
            r#"{"results":[{"statement_id":0,"series":[{"name":"databases","columns":["name"],"values":[["_internal"]]}]}]}"#,
        )
        .unwrap();
        assert!(parse_policies(&answer).is_err());
    }
}
