//! [`InfluxConfig`]: where and how to write, read from `PIVITALS_INFLUX__*`, and checked.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::api::InfluxApi;
use super::error::InfluxError;

/// The InfluxDB settings, one field per `PIVITALS_INFLUX__<FIELD>` variable.
///
/// `api = None` means no InfluxDB is configured. `Debug` never shows the token or password.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// `PIVITALS_INFLUX__API`: `v1`, `v2` or `v3`; unset means no InfluxDB.
    pub api: Option<InfluxApi>,
    /// `PIVITALS_INFLUX__URL`: base URL such as `http://influxdb:8086` (InfluxDB 3:
    /// `http://influxdb3:8181`); a path prefix is kept.
    pub url: Option<String>,
    /// `PIVITALS_INFLUX__ORG` (v2): organisation name.
    pub org: Option<String>,
    /// `PIVITALS_INFLUX__BUCKET` (v2), default `node_vitals`.
    pub bucket: String,
    /// `PIVITALS_INFLUX__TOKEN`: v2, required: API token with write (and bucket-create)
    /// rights; v3, optional (a server started `--without-auth` needs none): a token that may
    /// write the database (and list and create databases, read `system.databases`).
    pub token: Option<String>,
    /// `PIVITALS_INFLUX__DATABASE` (v1 and v3), default `pivitals`.
    pub database: String,
    /// `PIVITALS_INFLUX__RETENTION_POLICY` (v1), default `pivitals_365d`.
    pub retention_policy: String,
    /// `PIVITALS_INFLUX__USERNAME` (v1, when auth is enabled).
    pub username: Option<String>,
    /// `PIVITALS_INFLUX__PASSWORD` (v1, when auth is enabled).
    pub password: Option<String>,
    /// `PIVITALS_INFLUX__TIMEOUT`: per-request time limit, humantime (`10s`, `1m`), default `10s`.
    pub timeout: String,
    /// `PIVITALS_INFLUX__CONTENT_ENCODING`: `identity` (default) or `gzip`, as Telegraf's
    /// option of that name.
    pub content_encoding: ContentEncoding,
}

/// How write bodies travel to InfluxDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum ContentEncoding {
    /// Plain line protocol. The default: a primary's writes are at most a few MB/s, which a
    /// LAN or the same host carries easily, and compressing costs CPU twice (the primary
    /// packs, InfluxDB unpacks) on the machine that usually runs both.
    #[default]
    Identity,
    /// `Content-Encoding: gzip` at a fast level, about a tenth of the bytes: for a metered or
    /// slow link, such as a hosted InfluxDB.
    Gzip,
}

impl TryFrom<String> for ContentEncoding {
    type Error = String;

    /// `identity` or `gzip`; anything else is refused with the two values named.
    fn try_from(text: String) -> Result<Self, String> {
        match text.trim() {
            "identity" => Ok(Self::Identity),
            "gzip" => Ok(Self::Gzip),
            other => Err(format!("expected identity or gzip, got {other:?}")),
        }
    }
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            api: None,
            url: None,
            org: None,
            bucket: "node_vitals".to_owned(),
            token: None,
            database: "pivitals".to_owned(),
            retention_policy: "pivitals_365d".to_owned(),
            username: None,
            password: None,
            timeout: "10s".to_owned(),
            content_encoding: ContentEncoding::Identity,
        }
    }
}

impl fmt::Debug for InfluxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<String>| secret.as_ref().map(|_| "<redacted>");
        f.debug_struct("InfluxConfig")
            .field("api", &self.api)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("org", &self.org)
            .field("bucket", &self.bucket)
            .field("token", &redacted(&self.token))
            .field("database", &self.database)
            .field("retention_policy", &self.retention_policy)
            .field("username", &self.username)
            .field("password", &redacted(&self.password))
            .field("timeout", &self.timeout)
            .field("content_encoding", &self.content_encoding)
            .finish()
    }
}

impl InfluxConfig {
    /// Checks that the settings for the chosen API are complete and well-formed; each error
    /// names the environment variable to fix. `api = None` is always valid.
    pub fn validate(&self) -> Result<(), InfluxError> {
        let Some(api) = self.api else {
            return Ok(());
        };
        self.timeout()?;
        let url = required(api, "PIVITALS_INFLUX__URL", &self.url)?;
        self.base_url_checked(url)?;
        match api {
            InfluxApi::V2 => {
                let org = required(api, "PIVITALS_INFLUX__ORG", &self.org)?;
                no_control_chars("PIVITALS_INFLUX__ORG", org)?;
                nonempty(api, "PIVITALS_INFLUX__BUCKET", &self.bucket)?;
                no_control_chars("PIVITALS_INFLUX__BUCKET", &self.bucket)?;
                printable_token(required(api, "PIVITALS_INFLUX__TOKEN", &self.token)?)?;
            }
            InfluxApi::V3 => {
                nonempty(api, "PIVITALS_INFLUX__DATABASE", &self.database)?;
                v3_database_name(&self.database)?;
                if let Some(token) = &self.token {
                    printable_token(token)?;
                }
            }
            InfluxApi::V1 => {
                nonempty(api, "PIVITALS_INFLUX__DATABASE", &self.database)?;
                no_control_chars("PIVITALS_INFLUX__DATABASE", &self.database)?;
                nonempty(
                    api,
                    "PIVITALS_INFLUX__RETENTION_POLICY",
                    &self.retention_policy,
                )?;
                no_control_chars("PIVITALS_INFLUX__RETENTION_POLICY", &self.retention_policy)?;
                match (&self.username, &self.password) {
                    (Some(_), None) => {
                        return Err(InfluxError::Invalid {
                            var: "PIVITALS_INFLUX__PASSWORD",
                            reason: "is required when PIVITALS_INFLUX__USERNAME is set".to_owned(),
                        });
                    }
                    (None, Some(_)) => {
                        return Err(InfluxError::Invalid {
                            var: "PIVITALS_INFLUX__USERNAME",
                            reason: "is required when PIVITALS_INFLUX__PASSWORD is set".to_owned(),
                        });
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The per-request time limit parsed from [`InfluxConfig::timeout`].
    pub fn timeout(&self) -> Result<Duration, InfluxError> {
        let invalid = |reason: String| InfluxError::Invalid {
            var: "PIVITALS_INFLUX__TIMEOUT",
            reason,
        };
        let timeout = humantime::parse_duration(self.timeout.trim()).map_err(|e| {
            invalid(format!(
                "{:?} is not a duration like 10s: {e}",
                self.timeout
            ))
        })?;
        if timeout.is_zero() {
            return Err(invalid("must be more than zero".to_owned()));
        }
        Ok(timeout)
    }

    /// The base URL, checked: http or https, with a host, no query or fragment.
    pub(crate) fn base_url(&self) -> Result<url::Url, InfluxError> {
        let api = self.api.ok_or(InfluxError::NotConfigured)?;
        self.base_url_checked(required(api, "PIVITALS_INFLUX__URL", &self.url)?)
    }

    fn base_url_checked(&self, text: &str) -> Result<url::Url, InfluxError> {
        let invalid = |reason: String| InfluxError::Invalid {
            var: "PIVITALS_INFLUX__URL",
            reason,
        };
        let url = url::Url::parse(text.trim())
            .map_err(|e| invalid(format!("{:?} is not a URL: {e}", redact_url(text))))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid(format!(
                "{:?} must be an http:// or https:// URL with a host",
                redact_url(text)
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("must not have a query or fragment".to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "must not carry credentials; use PIVITALS_INFLUX__TOKEN or __USERNAME/__PASSWORD"
                    .to_owned(),
            ));
        }
        Ok(url)
    }
}

/// The URL without user info, query or fragment, for logs (the text itself if unparsable).
pub(crate) fn redact_url(text: &str) -> String {
    match url::Url::parse(text.trim()) {
        Ok(mut url) => {
            let _ = url.set_username("");
            let _ = url.set_password(None);
            url.set_query(None);
            url.set_fragment(None);
            url.as_str().trim_end_matches('/').to_owned()
        }
        Err(_) => "<unparsable URL>".to_owned(),
    }
}

fn required<'a>(
    api: InfluxApi,
    var: &'static str,
    value: &'a Option<String>,
) -> Result<&'a str, InfluxError> {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text),
        _ => Err(InfluxError::Missing { var, api }),
    }
}

fn nonempty(api: InfluxApi, var: &'static str, value: &str) -> Result<(), InfluxError> {
    if value.trim().is_empty() {
        return Err(InfluxError::Missing { var, api });
    }
    Ok(())
}

fn printable_token(token: &str) -> Result<(), InfluxError> {
    if token.trim().is_empty() || !token.trim().bytes().all(|b| b.is_ascii_graphic()) {
        return Err(InfluxError::Invalid {
            var: "PIVITALS_INFLUX__TOKEN",
            reason: "must be printable ASCII without spaces".to_owned(),
        });
    }
    Ok(())
}

/// InfluxDB 3's database names: at most 64 characters, ASCII letters, digits, `_`, `-` and
/// `/`, starting with a letter or digit (docs: reference "Naming restrictions").
fn v3_database_name(name: &str) -> Result<(), InfluxError> {
    let name = name.trim();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/');
    let starts_well = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if name.len() > 64 || !starts_well || !name.chars().all(allowed) {
        return Err(InfluxError::Invalid {
            var: "PIVITALS_INFLUX__DATABASE",
            reason: format!(
                "{name:?} is not an InfluxDB 3 database name: up to 64 letters, digits, \
                 `_`, `-` or `/`, starting with a letter or digit"
            ),
        });
    }
    Ok(())
}

fn no_control_chars(var: &'static str, value: &str) -> Result<(), InfluxError> {
    if value.chars().any(char::is_control) {
        return Err(InfluxError::Invalid {
            var,
            reason: "must not contain control characters such as newlines".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> InfluxConfig {
        InfluxConfig {
            api: Some(InfluxApi::V2),
            url: Some("http://influxdb:8086".to_owned()),
            org: Some("home".to_owned()),
            token: Some("s3cr3t-token".to_owned()),
            ..InfluxConfig::default()
        }
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let cfg = InfluxConfig::default();
        assert_eq!(cfg.api, None);
        assert_eq!(cfg.bucket, "node_vitals");
        assert_eq!(cfg.database, "pivitals");
        assert_eq!(cfg.retention_policy, "pivitals_365d");
        assert_eq!(cfg.timeout().unwrap(), Duration::from_secs(10));
        assert_eq!(cfg.content_encoding, ContentEncoding::Identity);
        cfg.validate().unwrap();
    }

    #[test]
    fn api_names_are_lowercase() {
        let api: InfluxApi = serde_json::from_str("\"v2\"").unwrap();
        assert_eq!(api, InfluxApi::V2);
        let cfg: InfluxConfig = serde_json::from_str(r#"{"api":"v1","url":"http://x"}"#).unwrap();
        assert_eq!(cfg.api, Some(InfluxApi::V1));
        assert_eq!(cfg.database, "pivitals");
    }

    #[test]
    fn v2_errors_name_the_missing_variable() {
        v2().validate().unwrap();
        for (var, cfg) in [
            ("PIVITALS_INFLUX__URL", InfluxConfig { url: None, ..v2() }),
            (
                "PIVITALS_INFLUX__ORG",
                InfluxConfig {
                    org: Some(" ".into()),
                    ..v2()
                },
            ),
            (
                "PIVITALS_INFLUX__TOKEN",
                InfluxConfig {
                    token: None,
                    ..v2()
                },
            ),
            (
                "PIVITALS_INFLUX__BUCKET",
                InfluxConfig {
                    bucket: String::new(),
                    ..v2()
                },
            ),
        ] {
            let message = cfg.validate().unwrap_err().to_string();
            assert!(message.contains(var), "{message}");
            assert!(message.contains("v2"), "{message}");
        }
    }

    #[test]
    fn v1_needs_username_and_password_together() {
        let v1 = InfluxConfig {
            api: Some(InfluxApi::V1),
            url: Some("http://influxdb:8086".to_owned()),
            ..InfluxConfig::default()
        };
        v1.validate().unwrap();
        let only_user = InfluxConfig {
            username: Some("u".into()),
            ..v1.clone()
        };
        assert!(
            only_user
                .validate()
                .unwrap_err()
                .to_string()
                .contains("PIVITALS_INFLUX__PASSWORD")
        );
        let newline = InfluxConfig {
            database: "a\nb".into(),
            ..v1
        };
        assert!(
            newline
                .validate()
                .unwrap_err()
                .to_string()
                .contains("PIVITALS_INFLUX__DATABASE")
        );
    }

    #[test]
    fn v3_needs_a_database_and_no_token() {
        let v3 = InfluxConfig {
            api: Some(InfluxApi::V3),
            url: Some("http://influxdb3:8181".to_owned()),
            ..InfluxConfig::default()
        };
        v3.validate().unwrap();
        InfluxConfig {
            token: Some("apiv3_abc".into()),
            ..v3.clone()
        }
        .validate()
        .unwrap();
        for (database, expected) in [
            (
                "",
                "PIVITALS_INFLUX__DATABASE is required when PIVITALS_INFLUX__API=v3",
            ),
            ("_internal", "not an InfluxDB 3 database name"),
            ("my db", "not an InfluxDB 3 database name"),
            ("pi'vitals", "not an InfluxDB 3 database name"),
        ] {
            let cfg = InfluxConfig {
                database: database.into(),
                ..v3.clone()
            };
            let message = cfg.validate().unwrap_err().to_string();
            assert!(message.contains(expected), "{database:?}: {message}");
        }
        let spaced = InfluxConfig {
            token: Some("a b".into()),
            ..v3
        };
        assert!(
            spaced
                .validate()
                .unwrap_err()
                .to_string()
                .contains("PIVITALS_INFLUX__TOKEN")
        );
    }

    #[test]
    fn bad_urls_and_timeouts_are_refused() {
        for url in ["influxdb:8086", "ftp://x", "http://x/?a=b", "http://u:p@x"] {
            let cfg = InfluxConfig {
                url: Some(url.into()),
                ..v2()
            };
            let message = cfg.validate().unwrap_err().to_string();
            assert!(message.contains("PIVITALS_INFLUX__URL"), "{url}: {message}");
            assert!(!message.contains(":p@"), "{message}");
        }
        for timeout in ["ten", "0s", ""] {
            let cfg = InfluxConfig {
                timeout: timeout.into(),
                ..v2()
            };
            assert!(
                cfg.validate()
                    .unwrap_err()
                    .to_string()
                    .contains("PIVITALS_INFLUX__TIMEOUT")
            );
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let cfg = InfluxConfig {
            password: Some("pa55word".into()),
            url: Some("http://user:pa55word@influxdb:8086".into()),
            ..v2()
        };
        let text = format!("{cfg:?}");
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(!text.contains("pa55word"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
        assert!(text.contains("influxdb:8086"), "{text}");
    }
}
