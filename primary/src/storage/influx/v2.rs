//! InfluxDB 2.x: `POST /api/v2/write?org=&bucket=&precision=ns` with `Authorization: Token`,
//! and the bucket API (`/api/v2/orgs`, `/api/v2/buckets`) for the 365-day retention.
//!
//! Pivitals does not use the `influxdb2` crate: it drags in reqwest 0.11, hyper 0.14 and
//! rustls 0.21 beside our reqwest 0.13, and it hides the `Retry-After` header we back off by.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderValue};
use serde_json::{Value, json};
use url::Url;

use super::answer::{self, Answer, QUERY_BODY_LIMIT};
use super::config::{InfluxConfig, redact_url};
use super::error::InfluxError;
use super::retention::{RETENTION_SECONDS, RetentionOutcome, human};
use super::v1::endpoint;

/// Where and with which token to write on an InfluxDB 2.x server.
pub(crate) struct V2 {
    base: Url,
    org: String,
    bucket: String,
    /// `Token …`, marked sensitive so it never shows in debug output.
    authorization: HeaderValue,
}

impl V2 {
    /// Takes the v2 settings from a validated config.
    pub fn new(cfg: &InfluxConfig) -> Result<V2, InfluxError> {
        let missing = |var| InfluxError::Missing {
            var,
            api: super::InfluxApi::V2,
        };
        let org = cfg.org.as_deref().ok_or(missing("PIVITALS_INFLUX__ORG"))?;
        let token = cfg
            .token
            .as_deref()
            .ok_or(missing("PIVITALS_INFLUX__TOKEN"))?;
        let mut authorization =
            HeaderValue::from_str(&format!("Token {}", token.trim())).map_err(|_| {
                InfluxError::Invalid {
                    var: "PIVITALS_INFLUX__TOKEN",
                    reason: "cannot be sent as an HTTP header".to_owned(),
                }
            })?;
        authorization.set_sensitive(true);
        Ok(V2 {
            base: cfg.base_url()?,
            org: org.trim().to_owned(),
            bucket: cfg.bucket.trim().to_owned(),
            authorization,
        })
    }

    /// "InfluxDB v2 URL org=.. bucket=..", without the token.
    pub fn describe(&self) -> String {
        format!(
            "InfluxDB v2 {} org={} bucket={}",
            redact_url(self.base.as_str()),
            self.org,
            self.bucket
        )
    }

    /// Names the bucket in log lines.
    pub fn retention_target(&self) -> String {
        format!(
            "InfluxDB v2 bucket \"{}\" of org \"{}\" at {}",
            self.bucket,
            self.org,
            redact_url(self.base.as_str())
        )
    }

    /// `POST {url}/api/v2/write?org=&bucket=&precision=ns` with the token; the caller adds
    /// the body.
    pub fn write_request(&self, http: &reqwest::Client) -> reqwest::RequestBuilder {
        let mut url = endpoint(&self.base, &["api", "v2", "write"]);
        url.query_pairs_mut()
            .append_pair("org", &self.org)
            .append_pair("bucket", &self.bucket)
            .append_pair("precision", "ns");
        http.post(url)
            .header(AUTHORIZATION, self.authorization.clone())
    }

    /// Finds the org, then the bucket; creates the bucket with a 365-day expire rule when it
    /// is missing, reports an existing bucket with another retention.
    pub async fn ensure_retention(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> RetentionOutcome {
        match self.try_ensure(http, timeout).await {
            Ok(outcome) => outcome,
            Err(reason) => RetentionOutcome::Unverified { reason },
        }
    }

    async fn try_ensure(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<RetentionOutcome, String> {
        let org_id = self.find_org_id(http, timeout).await?;
        if let Some(outcome) = self.check_bucket(http, timeout, &org_id).await? {
            return Ok(outcome);
        }

        let body = json!({
            "orgID": org_id,
            "name": self.bucket,
            "description": "pivitals node vitals, kept 365 days",
            "retentionRules": [{"type": "expire", "everySeconds": RETENTION_SECONDS}],
        });
        let request = http
            .post(endpoint(&self.base, &["api", "v2", "buckets"]))
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(timeout)
            .json(&body);
        let answer = self.send("POST /api/v2/buckets", request).await?;
        if answer.is_success() {
            return Ok(RetentionOutcome::Created);
        }
        // Someone else created it between our look-up and our create: look again.
        if answer.status == 422
            && answer.body.contains("already exists")
            && let Some(outcome) = self.check_bucket(http, timeout, &org_id).await?
        {
            return Ok(outcome);
        }
        Err(failed("POST /api/v2/buckets", &answer))
    }

    /// `GET /api/v2/orgs?org=NAME` → the org's id.
    async fn find_org_id(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
    ) -> Result<String, String> {
        let mut url = endpoint(&self.base, &["api", "v2", "orgs"]);
        url.query_pairs_mut().append_pair("org", &self.org);
        let answer = self.get("GET /api/v2/orgs", http, url, timeout).await?;
        let json = parse_json("GET /api/v2/orgs", &answer)?;
        json.get("orgs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|org| org.get("name").and_then(Value::as_str) == Some(self.org.as_str()))
            .and_then(|org| org.get("id").and_then(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| {
                format!(
                    "organisation \"{}\" is not visible with this token",
                    self.org
                )
            })
    }

    /// `GET /api/v2/buckets?name=&orgID=` → `None` when missing, else how its retention
    /// compares.
    async fn check_bucket(
        &self,
        http: &reqwest::Client,
        timeout: Duration,
        org_id: &str,
    ) -> Result<Option<RetentionOutcome>, String> {
        let mut url = endpoint(&self.base, &["api", "v2", "buckets"]);
        url.query_pairs_mut()
            .append_pair("name", &self.bucket)
            .append_pair("orgID", org_id);
        let answer = self.get("GET /api/v2/buckets", http, url, timeout).await?;
        // 2.x answers 404 for a bucket name that does not exist, or 200 with an empty list.
        if answer.status == 404 && answer.body.contains("not found") {
            return Ok(None);
        }
        let json = parse_json("GET /api/v2/buckets", &answer)?;
        let bucket = json
            .get("buckets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .find(|b| b.get("name").and_then(Value::as_str) == Some(self.bucket.as_str()));
        let Some(bucket) = bucket else {
            return Ok(None);
        };
        let seconds = expire_seconds(bucket);
        Ok(Some(if seconds == RETENTION_SECONDS {
            RetentionOutcome::AlreadyOk
        } else {
            RetentionOutcome::Differs {
                found: human(seconds),
            }
        }))
    }

    async fn get(
        &self,
        what: &str,
        http: &reqwest::Client,
        url: Url,
        timeout: Duration,
    ) -> Result<Answer, String> {
        let request = http
            .get(url)
            .header(AUTHORIZATION, self.authorization.clone())
            .timeout(timeout);
        self.send(what, request).await
    }

    async fn send(&self, what: &str, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        answer::send(request, QUERY_BODY_LIMIT)
            .await
            .map_err(|e| format!("{what}: {}", answer::describe_network_error(&e)))
    }
}

/// The bucket's expire rule in seconds; 0 (or no rule) means forever.
fn expire_seconds(bucket: &Value) -> u64 {
    bucket
        .get("retentionRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|rule| rule.get("type").and_then(Value::as_str) == Some("expire"))
        .and_then(|rule| rule.get("everySeconds"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

fn parse_json(what: &str, answer: &Answer) -> Result<Value, String> {
    if !answer.is_success() {
        return Err(failed(what, answer));
    }
    serde_json::from_str(&answer.body)
        .map_err(|_| format!("{what} answered {} with no JSON", answer.status))
}

/// A reason that says what the status usually means.
fn failed(what: &str, answer: &Answer) -> String {
    let hint = match answer.status {
        401 | 403 => " (the token may lack read/write permission for orgs and buckets)",
        400 | 404 | 405 => " (the server seems to have no InfluxDB 2 bucket API)",
        _ => "",
    };
    format!("{what} answered {}{hint}", answer.summary())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_expire_rules() {
        let bucket = json!({"retentionRules": [{"type": "expire", "everySeconds": 2592000}]});
        assert_eq!(expire_seconds(&bucket), 2_592_000);
        assert_eq!(expire_seconds(&json!({"retentionRules": []})), 0);
        assert_eq!(expire_seconds(&json!({})), 0);
    }

    #[test]
    fn debug_output_hides_the_token() {
        let cfg = InfluxConfig {
            api: Some(super::super::InfluxApi::V2),
            url: Some("http://influxdb:8086".into()),
            org: Some("home".into()),
            token: Some("very-secret".into()),
            ..InfluxConfig::default()
        };
        let v2 = V2::new(&cfg).unwrap();
        assert!(!format!("{:?}", v2.authorization).contains("very-secret"));
        assert!(!v2.describe().contains("very-secret"));
    }
}
