//! The primary's configuration: an optional TOML file, then `PIVITALS_*` environment variables
//! (nested keys with `__`, e.g. `PIVITALS_INFLUX__URL`, `PIVITALS_BATCH__MAX_POINTS`).
//!
//! A key of the file that is not a setting (`[tls] cert_fil`, `[batch] max_point`) is refused
//! at start with [`ConfigError::UnknownKey`], naming the key and the file: a typo is not
//! silently ignored. Variables are another matter: agents and primaries often share an
//! environment, so a `PIVITALS_*` variable that is not a setting of the primary (the agent's
//! `PIVITALS_PRIMARY_URL`, `PIVITALS_LOG`) is left out and logged at debug level. The settings
//! are known from the structs themselves (serde's list of their fields), which also refuse
//! unknown fields, so the two cannot drift apart.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use pivitals_common::errors::UnknownKey;
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, IntoDeserializer};
use thiserror::Error;

use crate::actions::config::ActionsConfig;
use crate::alerts::channels::Channel;
use crate::alerts::rules::{self, RuleConfig, Rules};
use crate::limits::LimitsConfig;
use crate::nodes::enroll::ReenrollPolicy;
use crate::serde_duration::duration;
use crate::storage::config::{BatchConfig, SpoolConfig};
use crate::storage::influx::InfluxConfig;

#[derive(Debug, Error)]
pub enum ConfigError {
    /// Not a `#[source]`: the message already says it all, and printing the error's chain
    /// would say it twice.
    #[error("configuration: {0}")]
    Load(config::ConfigError),
    #[error("configuration: {0}")]
    Invalid(String),
    #[error(transparent)]
    UnknownKey(#[from] UnknownKey),
}

impl From<config::ConfigError> for ConfigError {
    fn from(error: config::ConfigError) -> Self {
        Self::Load(error)
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrimaryConfig {
    /// Address the HTTP server binds (`PIVITALS_LISTEN`).
    pub listen: String,
    /// Where the registry, the enrollment token and the archive live (`PIVITALS_DATA_DIR`).
    pub data_dir: PathBuf,
    /// Agents register with it; generated once and kept in the data dir when unset.
    pub enroll_token: Option<String>,
    /// Required by admin calls (deleting nodes); admin calls are refused while unset.
    pub admin_token: Option<String>,
    /// Whether a re-flashed board takes its registered name back (`PIVITALS_REENROLL`:
    /// `off` or `same-hardware`); see [`crate::nodes::enroll`].
    pub reenroll: ReenrollPolicy,
    /// Whether the primary samples its own host as a node.
    pub self_monitor: bool,
    /// How often the primary samples itself.
    #[serde(deserialize_with = "duration")]
    pub self_interval: Duration,
    pub influx: InfluxConfig,
    pub batch: BatchConfig,
    pub spool: SpoolConfig,
    /// Days the embedded line-protocol archive keeps its daily files.
    pub archive_retention_days: u32,
    pub dashboard: DashboardConfig,
    pub alert: AlertConfig,
    pub limits: LimitsConfig,
    pub tls: TlsConfig,
    /// `[actions]`: when an action not taken or not answered expires.
    pub actions: ActionsConfig,
    /// The address agents and the installer reach this primary at (`PIVITALS_PUBLIC_URL`,
    /// `http://primary.lan:7070`); unset, `/install.sh` uses the request's `Host` header.
    pub public_url: Option<String>,
    /// A directory of `pivitals-agent-<arch>` binaries served to the installer
    /// (`PIVITALS_AGENT_BINARIES`); unset, the primary serves no installer.
    pub agent_binaries: Option<PathBuf>,
}

/// HTTPS (`PIVITALS_TLS__CERT`, `PIVITALS_TLS__KEY`): both set, or neither (plain HTTP).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DashboardConfig {
    /// The label whose values group the node cards (`PIVITALS_DASHBOARD__GROUP_BY`).
    pub group_by: String,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self {
            group_by: "stack".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertConfig {
    /// Receives a JSON `POST` when a node goes down or recovers (`PIVITALS_ALERT__WEBHOOK_URL`);
    /// no alerts while unset.
    pub webhook_url: Option<String>,
    /// Time limit of one delivery attempt (`PIVITALS_ALERT__TIMEOUT`).
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Whether the default rules are on (`PIVITALS_ALERT__DEFAULT_RULES`); see
    /// [`rules::default_rules`].
    pub default_rules: bool,
    /// Notification URLs, comma-separated (`PIVITALS_ALERT__NOTIFY`), named `notify-1`,
    /// `notify-2`, … in order; parsed with [`Channel::parse_list`].
    pub notify: Option<String>,
    /// Named channels: `name = "URL"` under `[alert.channels]`.
    pub channels: std::collections::BTreeMap<String, Channel>,
    /// `[[alert.rules]]`, merged with the defaults by [`rules::load`].
    pub rules: Vec<RuleConfig>,
}

impl Default for AlertConfig {
    fn default() -> Self {
        Self {
            webhook_url: None,
            timeout: Duration::from_secs(10),
            default_rules: true,
            notify: None,
            channels: Default::default(),
            rules: Vec::new(),
        }
    }
}

impl AlertConfig {
    /// Every channel with its name: those of `notify` first (`notify-1`, …), then
    /// `[alert.channels]` by name.
    pub fn channel_list(&self) -> Result<Vec<(String, Channel)>, ConfigError> {
        let mut list = Vec::new();
        if let Some(urls) = self.notify.as_deref().filter(|u| !u.trim().is_empty()) {
            let parsed = Channel::parse_list(urls)
                .map_err(|e| ConfigError::Invalid(format!("PIVITALS_ALERT__NOTIFY: {e}")))?;
            for (i, channel) in parsed.into_iter().enumerate() {
                list.push((format!("notify-{}", i + 1), channel));
            }
        }
        for (name, channel) in &self.channels {
            if list.iter().any(|(n, _)| n == name) {
                return Err(ConfigError::Invalid(format!(
                    "alert channel {name:?}: the name is taken by a URL of PIVITALS_ALERT__NOTIFY"
                )));
            }
            list.push((name.clone(), channel.clone()));
        }
        Ok(list)
    }

    /// The checked rules (defaults merged) whose channels all exist.
    pub fn checked_rules(&self) -> Result<Rules, ConfigError> {
        let invalid = |e: rules::RuleError| ConfigError::Invalid(e.to_string());
        let rules = rules::load(self.default_rules, &self.rules).map_err(invalid)?;
        let channels = self.channel_list()?;
        let names: Vec<&str> = channels.iter().map(|(n, _)| n.as_str()).collect();
        rules.check_channels(&names).map_err(invalid)?;
        Ok(rules)
    }

    /// The checked webhook URL, when one is configured.
    pub fn url(&self) -> Result<Option<url::Url>, ConfigError> {
        let Some(text) = self.webhook_url.as_deref().map(str::trim) else {
            return Ok(None);
        };
        let invalid = |why: &str| {
            ConfigError::Invalid(format!("PIVITALS_ALERT__WEBHOOK_URL {text:?}: {why}"))
        };
        let url = url::Url::parse(text).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(invalid("expected an http:// or https:// URL"));
        }
        Ok(Some(url))
    }
}

impl Default for PrimaryConfig {
    fn default() -> Self {
        Self {
            listen: "0.0.0.0:7070".into(),
            data_dir: PathBuf::from("pivitals-data"),
            enroll_token: None,
            admin_token: None,
            reenroll: ReenrollPolicy::Off,
            self_monitor: true,
            self_interval: Duration::from_secs(10),
            influx: InfluxConfig::default(),
            batch: BatchConfig::default(),
            spool: SpoolConfig::default(),
            archive_retention_days: 365,
            dashboard: DashboardConfig::default(),
            alert: AlertConfig::default(),
            limits: LimitsConfig::default(),
            tls: TlsConfig::default(),
            actions: ActionsConfig::default(),
            public_url: None,
            agent_binaries: None,
        }
    }
}

impl fmt::Debug for PrimaryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |t: &Option<String>| t.as_ref().map(|_| "<redacted>");
        f.debug_struct("PrimaryConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("enroll_token", &redacted(&self.enroll_token))
            .field("admin_token", &redacted(&self.admin_token))
            .field("reenroll", &self.reenroll)
            .field("self_monitor", &self.self_monitor)
            .field("self_interval", &self.self_interval)
            .field("influx", &self.influx)
            .field("batch", &self.batch)
            .field("spool", &self.spool)
            .field("archive_retention_days", &self.archive_retention_days)
            .field("dashboard", &self.dashboard)
            .field(
                "alert_webhook",
                &self.alert.webhook_url.as_ref().map(|_| "<set>"),
            )
            .field("alert_timeout", &self.alert.timeout)
            .field("alert_default_rules", &self.alert.default_rules)
            .field(
                "alert_channels",
                &self.alert.channels.keys().collect::<Vec<_>>(),
            )
            .field("alert_notify", &self.alert.notify.as_ref().map(|_| "<set>"))
            .field("alert_rules", &self.alert.rules.len())
            .field("limits", &self.limits)
            .field("tls", &self.tls)
            .field("actions", &self.actions)
            .field("public_url", &self.public_url)
            .field("agent_binaries", &self.agent_binaries)
            .finish()
    }
}

impl PrimaryConfig {
    /// Reads the optional file, then the given environment (normally `std::env::vars()`).
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: config::Map<String, String> = env
            .into_iter()
            .filter(|(name, _)| {
                let Some(key) = name.strip_prefix("PIVITALS_") else {
                    return false;
                };
                let path = key.to_ascii_lowercase();
                let known = is_setting::<PrimaryConfig>(&path.split("__").collect::<Vec<_>>());
                if !known {
                    tracing::debug!(variable = %name, "not a setting of the primary; ignored");
                }
                known
            })
            .collect();
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            let from_file = config::Config::builder()
                .add_source(config::File::from(path).required(true))
                .build()?;
            let table = from_file
                .clone()
                .try_deserialize::<config::Map<String, config::Value>>()?;
            if let Some((key, expected)) = unknown_key::<PrimaryConfig>(&table, &[]) {
                return Err(ConfigError::UnknownKey(UnknownKey {
                    path: path.to_owned(),
                    key,
                    expected,
                }));
            }
            builder = builder.add_source(from_file);
        }
        let cfg: PrimaryConfig = builder
            .add_source(
                config::Environment::with_prefix("PIVITALS")
                    .prefix_separator("_")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(env)),
            )
            .build()?
            .try_deserialize()?;
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(m.to_owned()));
        if self.batch.max_points == 0 {
            return invalid("PIVITALS_BATCH__MAX_POINTS must be at least 1");
        }
        if self.spool.max_bytes < 1 << 20 {
            return invalid("PIVITALS_SPOOL__MAX_BYTES must be at least 1048576 (1 MiB)");
        }
        if self.batch.writes_in_flight == 0 {
            return invalid("PIVITALS_BATCH__WRITES_IN_FLIGHT must be at least 1");
        }
        if self.batch.flush_interval.is_zero() {
            return invalid("PIVITALS_BATCH__FLUSH_INTERVAL must be longer than 0s");
        }
        if self.self_interval < Duration::from_secs(1) {
            return invalid("PIVITALS_SELF_INTERVAL must be at least 1s");
        }
        for (name, token) in [
            ("PIVITALS_ENROLL_TOKEN", &self.enroll_token),
            ("PIVITALS_ADMIN_TOKEN", &self.admin_token),
        ] {
            if token.as_ref().is_some_and(|t| t.trim().len() < 16) {
                return Err(ConfigError::Invalid(format!(
                    "{name} must be at least 16 characters"
                )));
            }
        }
        let group = pivitals_common::Labels::from([(self.dashboard.group_by.clone(), "x".into())]);
        if let Err(e) = pivitals_common::validate::labels(&group) {
            return Err(ConfigError::Invalid(format!(
                "PIVITALS_DASHBOARD__GROUP_BY must be a label key: {e}"
            )));
        }
        if self.alert.timeout.is_zero() {
            return invalid("PIVITALS_ALERT__TIMEOUT must be longer than 0s");
        }
        self.alert.url()?;
        self.alert.checked_rules()?;
        if self.tls.cert.is_some() != self.tls.key.is_some() {
            return invalid("PIVITALS_TLS__CERT and PIVITALS_TLS__KEY must be set together");
        }
        let limits = &self.limits;
        for (name, value) in [
            ("PIVITALS_LIMITS__PUSH_BURST", limits.push_burst as usize),
            ("PIVITALS_LIMITS__MAX_NODES", limits.max_nodes),
            ("PIVITALS_LIMITS__MAX_DISKS", limits.max_disks),
            ("PIVITALS_LIMITS__MAX_INTERFACES", limits.max_interfaces),
            ("PIVITALS_LIMITS__MAX_SENSORS", limits.max_sensors),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if limits.push_refill.is_zero() {
            return invalid("PIVITALS_LIMITS__PUSH_REFILL must be longer than 0s");
        }
        if limits.request_timeout < Duration::from_millis(100) {
            return invalid("PIVITALS_LIMITS__REQUEST_TIMEOUT must be at least 100ms");
        }
        if limits.header_timeout < Duration::from_millis(100) {
            return invalid("PIVITALS_LIMITS__HEADER_TIMEOUT must be at least 100ms");
        }
        self.actions.check().map_err(ConfigError::Invalid)?;
        if let Some(url) = &self.public_url {
            crate::install::check_public_url(url)
                .map_err(|e| ConfigError::Invalid(format!("PIVITALS_PUBLIC_URL {url:?}: {e}")))?;
        }
        self.influx
            .validate()
            .map_err(|e| ConfigError::Invalid(e.to_string()))
    }
}

/// The first key of `table` (sorted, so the answer does not depend on the map's order) that is
/// not a field of `T`'s struct at the path `at`, as a dotted path with the keys that struct has.
/// Tables under fields that are structs (the sections) are checked in turn; a value of the
/// wrong type is left to deserialization.
fn unknown_key<T: DeserializeOwned>(
    table: &config::Map<String, config::Value>,
    at: &[&'static str],
) -> Option<(String, &'static [&'static str])> {
    let expected = struct_fields::<T>(at)?;
    let mut keys: Vec<&String> = table.keys().collect();
    keys.sort();
    for key in keys {
        let Some(field) = expected.iter().find(|field| **field == key.as_str()) else {
            let mut path = at.to_vec();
            path.push(key);
            return Some((path.join("."), expected));
        };
        if let Ok(inner) = table[key].clone().into_table() {
            let mut path = at.to_vec();
            path.push(field);
            if let Some(found) = unknown_key::<T>(&inner, &path) {
                return Some(found);
            }
        }
    }
    None
}

/// Whether `path` (`["influx", "url"]`) names a setting of `T`: each step a field of the struct
/// the previous steps lead to.
fn is_setting<T: DeserializeOwned>(path: &[&str]) -> bool {
    let mut at: Vec<&'static str> = Vec::new();
    for step in path {
        let Some(fields) = struct_fields::<T>(&at) else {
            return false;
        };
        let Some(field) = fields.iter().find(|field| *field == step) else {
            return false;
        };
        at.push(field);
    }
    !at.is_empty()
}

/// The field names of the struct at `path` inside `T` (`&[]` for `T` itself, `&["influx"]` for
/// its `influx` section), as serde's derive lists them; None when that is not a struct.
///
/// Found by deserializing `T` from [`Probe`], which follows `path` one field at a time and
/// stops with an error where it ends, so no list of keys is kept by hand.
fn struct_fields<T: DeserializeOwned>(path: &[&'static str]) -> Option<&'static [&'static str]> {
    let mut found = None;
    let _ = T::deserialize(Probe {
        path,
        found: &mut found,
    });
    found
}

/// A deserializer that walks down `path` and records the fields of the struct found there.
struct Probe<'a> {
    path: &'a [&'static str],
    found: &'a mut Option<&'static [&'static str]>,
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("probe: not a struct"))
    }

    fn deserialize_struct<V: de::Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        match self.path.split_first() {
            None => {
                *self.found = Some(fields);
                Err(de::Error::custom("probe: found"))
            }
            Some((&field, rest)) => visitor.visit_map(ProbeEntry {
                field: Some(field),
                rest,
                found: self.found,
            }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

/// The one entry of a struct that [`Probe`] follows: the field's name, then a probe of its value.
struct ProbeEntry<'a> {
    field: Option<&'static str>,
    rest: &'a [&'static str],
    found: &'a mut Option<&'static [&'static str]>,
}

impl<'de> de::MapAccess<'de> for ProbeEntry<'_> {
    type Error = de::value::Error;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.field
            .take()
            .map(|field| seed.deserialize(field.into_deserializer()))
            .transpose()
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        seed.deserialize(Probe {
            path: self.rest,
            found: self.found,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_influxdb() {
        let cfg = PrimaryConfig::load(None, env(&[])).unwrap();
        assert_eq!(cfg.listen, "0.0.0.0:7070");
        assert!(cfg.self_monitor);
        assert_eq!(cfg.batch.max_points, 5000);
        assert_eq!(cfg.batch.flush_interval, Duration::from_secs(10));
        assert!(cfg.influx.api.is_none());
        assert_eq!(cfg.dashboard.group_by, "stack");
        assert!(cfg.alert.url().unwrap().is_none());
        assert_eq!(cfg.limits.push_burst, 10);
        assert_eq!(cfg.limits.push_refill, Duration::from_secs(1));
        assert_eq!(cfg.limits.max_nodes, 10_000);
        assert_eq!(cfg.limits.max_disks, 64);
        assert_eq!(cfg.limits.request_timeout, Duration::from_secs(30));
    }

    #[test]
    fn reenroll_is_off_unless_set_in_the_environment_or_the_file() {
        let off = PrimaryConfig::load(None, env(&[])).unwrap();
        assert_eq!(off.reenroll, ReenrollPolicy::Off);
        let on = PrimaryConfig::load(None, env(&[("PIVITALS_REENROLL", "same-hardware")])).unwrap();
        assert_eq!(on.reenroll, ReenrollPolicy::SameHardware);
        let file = toml_file("reenroll = \"same-hardware\"\n");
        let from_file = PrimaryConfig::load(Some(file.path()), env(&[])).unwrap();
        assert_eq!(from_file.reenroll, ReenrollPolicy::SameHardware);
        let err = PrimaryConfig::load(None, env(&[("PIVITALS_REENROLL", "yes")])).unwrap_err();
        assert!(err.to_string().contains("reenroll"), "{err}");
        assert!(err.to_string().contains("same-hardware"), "{err}");
    }

    #[test]
    fn dashboard_and_alert_settings() {
        let cfg = PrimaryConfig::load(
            None,
            env(&[
                ("PIVITALS_DASHBOARD__GROUP_BY", "rack"),
                (
                    "PIVITALS_ALERT__WEBHOOK_URL",
                    "http://alerts.lan:9000/hook?x=1",
                ),
                ("PIVITALS_ALERT__TIMEOUT", "3s"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.dashboard.group_by, "rack");
        assert_eq!(
            cfg.alert.url().unwrap().unwrap().as_str(),
            "http://alerts.lan:9000/hook?x=1"
        );
        assert_eq!(cfg.alert.timeout, Duration::from_secs(3));
        assert!(
            !format!("{cfg:?}").contains("alerts.lan"),
            "the URL may hold a secret"
        );
        for (key, value, expected) in [
            (
                "PIVITALS_ALERT__WEBHOOK_URL",
                "alerts.lan/hook",
                "PIVITALS_ALERT__WEBHOOK_URL",
            ),
            (
                "PIVITALS_ALERT__WEBHOOK_URL",
                "ftp://alerts.lan/",
                "http://",
            ),
            (
                "PIVITALS_DASHBOARD__GROUP_BY",
                "a b",
                "PIVITALS_DASHBOARD__GROUP_BY",
            ),
            (
                "PIVITALS_DASHBOARD__GROUP_BY",
                "node",
                "PIVITALS_DASHBOARD__GROUP_BY",
            ),
        ] {
            let err = PrimaryConfig::load(None, env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(expected), "{value}: {err}");
        }
    }

    #[test]
    fn environment_overrides_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("primary.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:1\"\nself_monitor = true\n[batch]\nmax_points = 10\n",
        )
        .unwrap();
        let cfg = PrimaryConfig::load(
            Some(&file),
            env(&[
                ("PIVITALS_LISTEN", "127.0.0.1:2"),
                ("PIVITALS_SELF_MONITOR", "false"),
                ("PIVITALS_BATCH__FLUSH_INTERVAL", "250ms"),
                ("PIVITALS_ADMIN_TOKEN", "0123456789abcdef0123"),
                ("PIVITALS_PRIMARY_URL", "ignored by the primary"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:2");
        assert!(!cfg.self_monitor);
        assert_eq!(cfg.batch.max_points, 10);
        assert_eq!(cfg.batch.flush_interval, Duration::from_millis(250));
        assert!(!format!("{cfg:?}").contains("0123456789abcdef"));
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        std::fs::write(file.path(), text).unwrap();
        file
    }

    fn unknown_key_error(text: &str) -> (String, String) {
        let file = toml_file(text);
        match PrimaryConfig::load(Some(file.path()), env(&[])) {
            Err(e @ ConfigError::UnknownKey(_)) => {
                (e.to_string(), file.path().display().to_string())
            }
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn the_settings_are_read_from_the_structs() {
        let top = struct_fields::<PrimaryConfig>(&[]).unwrap();
        for key in ["listen", "data_dir", "influx", "batch", "limits", "tls"] {
            assert!(top.contains(&key), "{key}: {top:?}");
        }
        assert_eq!(
            struct_fields::<PrimaryConfig>(&["tls"]),
            Some(&["cert", "key"][..])
        );
        assert!(struct_fields::<PrimaryConfig>(&["influx"]).is_some_and(|f| f.contains(&"url")));
        assert_eq!(struct_fields::<PrimaryConfig>(&["listen"]), None);
        assert!(is_setting::<PrimaryConfig>(&["batch", "max_points"]));
        assert!(is_setting::<PrimaryConfig>(&["self_interval"]));
        for path in [
            &["primary_url"][..],
            &["batch", "max_point"],
            &["listen", "x"],
            &[],
        ] {
            assert!(!is_setting::<PrimaryConfig>(path), "{path:?}");
        }
    }

    #[test]
    fn an_unknown_top_level_key_in_the_file_is_refused() {
        let (text, path) =
            unknown_key_error("listen = \"127.0.0.1:1\"\nlistne = \"127.0.0.1:2\"\n");
        assert!(
            text.starts_with(&format!(
                "config file {path}: unknown key `listne` (expected one of listen, data_dir,"
            )),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_key_in_a_section_of_the_file_is_refused() {
        let (text, path) = unknown_key_error("[tls]\ncert_fil = \"/etc/cert.pem\"\n");
        assert_eq!(
            text,
            format!("config file {path}: unknown key `tls.cert_fil` (expected one of cert, key)")
        );
        for (file, key) in [
            ("[batch]\nmax_point = 5\n", "`batch.max_point`"),
            (
                "[influx]\napi = \"v2\"\nurll = \"http://x\"\n",
                "`influx.urll`",
            ),
            (
                "[limits]\nmax_nodes = 3\n[alert]\ntimeout = \"1s\"\nhook = \"x\"\n",
                "`alert.hook`",
            ),
        ] {
            let (text, path) = unknown_key_error(file);
            assert!(text.contains(key) && text.contains(&path), "{text}");
        }
    }

    #[test]
    fn a_valid_file_with_every_section_loads() {
        let file = toml_file(
            r#"
            listen = "127.0.0.1:0"
            self_monitor = false
            archive_retention_days = 30
            [influx]
            url = "http://influxdb:8086"
            [batch]
            max_points = 5
            [spool]
            max_bytes = 2097152
            [dashboard]
            group_by = "rack"
            [alert]
            timeout = "2s"
            [limits]
            max_nodes = 3
            [tls]
            "#,
        );
        let cfg = PrimaryConfig::load(Some(file.path()), env(&[])).unwrap();
        assert_eq!(cfg.listen, "127.0.0.1:0");
        assert_eq!(cfg.batch.max_points, 5);
        assert_eq!(cfg.spool.max_bytes, 2_097_152);
        assert_eq!(cfg.dashboard.group_by, "rack");
        assert_eq!(cfg.alert.timeout, Duration::from_secs(2));
        assert_eq!(cfg.limits.max_nodes, 3);
        assert_eq!(cfg.archive_retention_days, 30);
    }

    #[test]
    fn alert_channels_and_rules_load_and_are_checked() {
        let file = toml_file(
            r#"
            [alert]
            default_rules = false
            [alert.channels]
            phone = "ntfy://ntfy.sh/pi-alerts"
            chat = "generic+https://hooks.example.com/x"
            [[alert.rules]]
            name = "hot"
            metric = "temperature.celsius"
            above = 75
            notify = ["phone", "notify-2"]
            "#,
        );
        let cfg = PrimaryConfig::load(
            Some(file.path()),
            env(&[(
                "PIVITALS_ALERT__NOTIFY",
                "ntfy://ntfy.sh/a,generic+http://127.0.0.1:9/hook",
            )]),
        )
        .unwrap();
        let names: Vec<(String, &str)> = cfg
            .alert
            .channel_list()
            .unwrap()
            .into_iter()
            .map(|(name, channel)| (name, channel.service()))
            .collect();
        assert_eq!(
            names,
            [
                ("notify-1".to_owned(), "ntfy"),
                ("notify-2".to_owned(), "generic"),
                ("chat".to_owned(), "generic"),
                ("phone".to_owned(), "ntfy"),
            ]
        );
        let rules = cfg.alert.checked_rules().unwrap();
        assert_eq!(rules.as_slice().len(), 1, "the defaults are off");
        assert!(!format!("{cfg:?}").contains("ntfy.sh"));

        let defaults = PrimaryConfig::load(None, env(&[])).unwrap();
        assert!(defaults.alert.default_rules);
        assert_eq!(defaults.alert.checked_rules().unwrap().as_slice().len(), 5);

        let err = PrimaryConfig::load(Some(file.path()), env(&[])).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"configuration: alert rule "hot": key notify: no channel "notify-2" (channels: chat, phone)"#
        );
        let err =
            PrimaryConfig::load(None, env(&[("PIVITALS_ALERT__NOTIFY", "nope://x")])).unwrap_err();
        assert!(err.to_string().contains("PIVITALS_ALERT__NOTIFY"), "{err}");
        let (text, _) = unknown_key_error("[alert]\nnotfy = \"ntfy://ntfy.sh/a\"\n");
        assert!(text.contains("`alert.notfy`"), "{text}");
    }

    #[test]
    fn unknown_variables_are_tolerated() {
        let file = toml_file("[batch]\nmax_points = 7\n");
        let cfg = PrimaryConfig::load(
            Some(file.path()),
            env(&[
                // The agent's, met where both run with one environment.
                ("PIVITALS_PRIMARY_URL", "http://primary:7070"),
                ("PIVITALS_TLS__CA", "/etc/pivitals/ca.pem"),
                ("PIVITALS_LOG", "debug"),
                ("PIVITALS_BATCH__MAX_POINT", "9"),
                ("PIVITALS_LISTEN__PORT", "9"),
                ("PIVITALS_BATCH__FLUSH_INTERVAL", "3s"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.batch.max_points, 7);
        assert_eq!(cfg.batch.flush_interval, Duration::from_secs(3));
        assert!(cfg.tls.cert.is_none());
    }

    #[test]
    fn bad_values_are_clear_errors() {
        let err = PrimaryConfig::load(None, env(&[("PIVITALS_BATCH__FLUSH_INTERVAL", "soon")]))
            .unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
        let err = PrimaryConfig::load(None, env(&[("PIVITALS_ADMIN_TOKEN", "short")])).unwrap_err();
        assert!(err.to_string().contains("PIVITALS_ADMIN_TOKEN"), "{err}");
        for (key, value) in [
            ("PIVITALS_LIMITS__PUSH_BURST", "0"),
            ("PIVITALS_LIMITS__PUSH_REFILL", "0s"),
            ("PIVITALS_LIMITS__MAX_NODES", "0"),
            ("PIVITALS_LIMITS__MAX_SENSORS", "0"),
            ("PIVITALS_LIMITS__REQUEST_TIMEOUT", "1ms"),
            ("PIVITALS_LIMITS__HEADER_TIMEOUT", "0s"),
            ("PIVITALS_BATCH__WRITES_IN_FLIGHT", "0"),
        ] {
            let err = PrimaryConfig::load(None, env(&[(key, value)])).unwrap_err();
            assert!(err.to_string().contains(key), "{key}={value}: {err}");
        }
    }
}
