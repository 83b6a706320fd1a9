//! The agent's settings: an optional TOML file, overridden by `PIVITALS_*` environment variables.
//!
//! | variable                | TOML key       | default                                   |
//! |-------------------------|----------------|-------------------------------------------|
//! | `PIVITALS_PRIMARY_URL`  | `primary_url`  | required; `http://` or `https://`         |
//! | `PIVITALS_ENROLL_TOKEN` | `enroll_token` | none; needed for the first registration   |
//! | `PIVITALS_NODE_NAME`    | `node_name`    | the host name                             |
//! | `PIVITALS_INTERVAL`     | `interval`     | `60s` (`500ms`, `2m`, …; at least 1 s)    |
//! | `PIVITALS_SAMPLE_EVERY` | `sample_every` | `1s`: fast vitals (CPU, load, memory, temperatures, frequency, under-voltage) are read this often and each push carries their mean, min and max; 1 s up to the interval |
//! | `PIVITALS_DISK_IGNORE_FS_TYPES` | `disk_ignore_fs_types` | pseudo and memory filesystems (tmpfs, overlay, squashfs, proc, …); comma-separated or a TOML array |
//! | `PIVITALS_DISK_IGNORE_MOUNTS` | `disk_ignore_mounts` | `/dev`, `/proc`, `/sys`, `/run/credentials`, `/var/lib/docker`, `/var/lib/containers/storage` and what is under them |
//! | `PIVITALS_LABELS`       | `labels`       | none; `stack=2,role=worker` or a table    |
//! | `PIVITALS_STATE_DIR`    | `state_dir`    | `$STATE_DIRECTORY`, else `./pivitals-agent-state` |
//! | `PIVITALS_BACKLOG_MAX`  | `backlog_max`  | 24 h of samples: 86,400 s ÷ the interval   |
//! | `PIVITALS_ROOT`         | `root`         | `/` (where `proc/` and `sys/` are read)   |
//! | `PIVITALS_START_JITTER` | `start_jitter` | `true`                                    |
//! | `PIVITALS_TLS__CA`      | `[tls] ca`     | none: the system's certificate store      |
//! | `PIVITALS_TLS__INSECURE_SKIP_VERIFY` | `[tls] insecure_skip_verify` | `false`      |
//! | `PIVITALS_ACTIONS__ALLOW_POWER` | `[actions] allow_power` | `false`: the built-in `reboot` and `shutdown` actions are refused |
//! | `PIVITALS_ACTIONS__ALLOW_UPDATE` (or `PIVITALS_ALLOW_UPDATE`) | `[actions] allow_update` | `false`: the built-in `update` (replace this agent's binary with the one the primary serves) is refused |
//! | `PIVITALS_ACTIONS__UPDATE_PUBLIC_KEY` | `[actions] update_public_key` | none: an update checks the SHA-256 only; set, the base64 of a raw 32-byte Ed25519 public key, and an update also needs the binary's signature by its private key ([`parse_public_key`]) |
//! | —                       | `[actions] reboot_command` | `["systemctl", "reboot"]`            |
//! | —                       | `[actions] shutdown_command` | `["systemctl", "poweroff"]`        |
//! | —                       | `[actions.NAME] command` | none; an action the primary may ask for by `NAME`: argv, run without a shell |
//! | —                       | `[actions.NAME] timeout` | `30s` (at most `1h`); then its process group is killed |
//!
//! An action's `NAME` matches `^[a-z][a-z0-9_-]{0,31}$` (`hello`, `apt-upgrade`) and is not a
//! built-in action (`ping`, `reboot`, `shutdown`, `update`) or a key of `[actions]`:
//!
//! ```toml
//! [actions]
//! allow_power = true
//!
//! [actions.apt-upgrade]
//! command = ["sh", "-c", "apt-get update && apt-get -y upgrade"]
//! timeout = "20m"
//! ```
//!
//! `STATE_DIRECTORY` is what systemd sets for a unit with `StateDirectory=pivitals-agent`
//! (`/var/lib/pivitals-agent`). An empty variable counts as unset. Unknown keys in the file, at
//! the top level, in `[tls]`, `[actions]` or an `[actions.NAME]` table, are an error naming the
//! key and the file (a typo would otherwise be silently ignored); unknown `PIVITALS_*` variables
//! are not, since `PIVITALS_LOG` is read elsewhere and a primary on the same host reads its own.
//!
//! The file is parsed with `toml` and the two sources are merged here, key by key: the
//! general-purpose `config` crate did the same with a layer of dynamic values, path
//! expressions and format plumbing the agent does not need (about 60 KiB of a binary meant
//! for small boards).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use pivitals_common::actions::{BUILTIN_ACTIONS, is_valid_action_name};
use pivitals_common::errors::UnknownKey;
use pivitals_common::validate::{self, InvalidName};
use pivitals_common::{Labels, Secret};
use reqwest::Url;
use thiserror::Error;

use crate::client::ClientTls;

pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);
/// The default backlog holds this much time's worth of samples.
pub const DEFAULT_BACKLOG_SPAN: Duration = Duration::from_secs(24 * 60 * 60);
pub const DEFAULT_STATE_DIR: &str = "pivitals-agent-state";

/// Every key the file may hold; the variable is `PIVITALS_` and the key in upper case.
const KEYS: &[&str] = &[
    "primary_url",
    "enroll_token",
    "node_name",
    "interval",
    "sample_every",
    "disk_ignore_fs_types",
    "disk_ignore_mounts",
    "labels",
    "state_dir",
    "backlog_max",
    "root",
    "start_jitter",
    "tls",
    "actions",
];

/// Every key of the file's `[tls]` table.
const TLS_KEYS: &[&str] = &["ca", "insecure_skip_verify"];

/// Every setting of the file's `[actions]` table; its other keys are `[actions.NAME]` tables.
const ACTIONS_KEYS: &[&str] = &[
    "allow_power",
    "allow_update",
    "update_public_key",
    "reboot_command",
    "shutdown_command",
];

/// Every key of an `[actions.NAME]` table.
const ACTION_KEYS: &[&str] = &["command", "timeout"];

/// How long an action may run unless its `timeout` says otherwise.
pub const DEFAULT_ACTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest `timeout` an action may have.
pub const MAX_ACTION_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The agent's settings, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// Base address of the primary; the API lives under `{primary_url}/api/v1/`.
    pub primary_url: Url,
    /// Authorises registration; not needed while a stored credential is accepted.
    pub enroll_token: Option<Secret>,
    /// Passed [`validate::node_name`].
    pub node_name: String,
    /// Time between samples, at least [`MIN_INTERVAL`].
    pub interval: Duration,
    /// Time between fast readings (CPU, load, memory, temperatures, frequency, under-voltage)
    /// whose mean, min and max each sample carries: from [`MIN_INTERVAL`] up to `interval`.
    pub sample_every: Duration,
    /// What the collector leaves out (filesystem types and mount points).
    pub collect: pivitals_collect::Settings,
    /// Passed [`validate::labels`].
    pub labels: Labels,
    /// Where the node credential and the backlog (`backlog/`) are kept.
    pub state_dir: PathBuf,
    /// Samples kept (on disk, across restarts) while the primary is unreachable; the oldest
    /// go first. At least 1.
    pub backlog_max: usize,
    /// Root under which `proc/` and `sys/` are read.
    pub root: PathBuf,
    /// Wait a random moment in `[0, min(interval, 10 s))` before the first sample, so a rack that
    /// reboots together does not push in lock-step.
    pub start_jitter: bool,
    /// How the primary's certificate is checked on `https://`.
    pub tls: ClientTls,
    /// The actions the primary may ask this node to run.
    pub actions: ActionSettings,
}

/// The `[actions]` settings: which actions this node runs, and the only ones it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSettings {
    /// Whether the built-in `reboot` and `shutdown` actions run; refused otherwise.
    pub allow_power: bool,
    /// Whether the built-in `update` runs (the agent replaces its own binary); refused otherwise.
    pub allow_update: bool,
    /// The Ed25519 public key an update's binary must be signed with; `None`: SHA-256 only.
    pub update_public_key: Option<[u8; 32]>,
    /// What `reboot` runs (argv, not empty).
    pub reboot_command: Vec<String>,
    /// What `shutdown` runs (argv, not empty).
    pub shutdown_command: Vec<String>,
    /// The node's own actions by name (`[actions.NAME]`); names are valid and not built-in.
    pub commands: BTreeMap<String, ActionCommand>,
}

impl Default for ActionSettings {
    /// Power actions refused, no actions of the node's own.
    fn default() -> Self {
        Self {
            allow_power: false,
            allow_update: false,
            update_public_key: None,
            reboot_command: vec!["systemctl".into(), "reboot".into()],
            shutdown_command: vec!["systemctl".into(), "poweroff".into()],
            commands: BTreeMap::new(),
        }
    }
}

/// An `[actions.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionCommand {
    /// Program and arguments, not empty; run without a shell.
    pub command: Vec<String>,
    /// More than zero, at most [`MAX_ACTION_TIMEOUT`].
    pub timeout: Duration,
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
    #[error(transparent)]
    UnknownKey(#[from] UnknownKey),
    #[error("{var} ({key}): {reason}")]
    Type {
        var: String,
        key: &'static str,
        reason: String,
    },
    #[error(
        "PIVITALS_PRIMARY_URL (primary_url) is required: the primary's address, e.g. http://primary:7070"
    )]
    MissingPrimaryUrl,
    #[error(
        "PIVITALS_PRIMARY_URL (primary_url) {value:?} is not an http:// or https:// URL: {reason}"
    )]
    PrimaryUrl { value: String, reason: String },
    #[error(
        "PIVITALS_INTERVAL (interval) {value:?} is not a duration between 1s and 24h (e.g. 60s, 500ms, 2m): {reason}"
    )]
    Interval { value: String, reason: String },
    #[error(
        "PIVITALS_SAMPLE_EVERY (sample_every) {value:?} is not a duration between 1s and the interval ({interval}): {reason}"
    )]
    SampleEvery {
        value: String,
        interval: String,
        reason: String,
    },
    #[error("PIVITALS_NODE_NAME (node_name): {0}")]
    NodeName(InvalidName),
    #[error(
        "the host name {hostname:?} is not a valid node name; set PIVITALS_NODE_NAME ({source})"
    )]
    HostnameNotANodeName {
        hostname: String,
        source: InvalidName,
    },
    #[error("cannot read the host name; set PIVITALS_NODE_NAME")]
    NoHostname,
    #[error("PIVITALS_LABELS (labels): {0}")]
    Labels(InvalidName),
    #[error("PIVITALS_BACKLOG_MAX (backlog_max) {0:?} is not a whole number of samples ≥ 1")]
    BacklogMax(String),
    #[error("PIVITALS_START_JITTER (start_jitter) {0:?} is not true or false")]
    StartJitter(String),
    #[error("PIVITALS_TLS__CA (tls.ca) {}: {reason}", path.display())]
    TlsCa { path: PathBuf, reason: String },
    #[error(
        "PIVITALS_TLS__INSECURE_SKIP_VERIFY (tls.insecure_skip_verify) {0:?} is not true or false"
    )]
    InsecureSkipVerify(String),
    #[error("PIVITALS_ACTIONS__ALLOW_POWER (actions.allow_power) {0:?} is not true or false")]
    AllowPower(String),
    #[error("PIVITALS_ACTIONS__ALLOW_UPDATE (actions.allow_update) {0:?} is not true or false")]
    AllowUpdate(String),
    #[error("PIVITALS_ACTIONS__UPDATE_PUBLIC_KEY (actions.update_public_key): {0}")]
    UpdatePublicKey(String),
}

impl Config {
    /// Settings with defaults for everything but the primary, the node name and the state
    /// directory; for tests and for embedding the agent.
    pub fn new(
        primary_url: Url,
        node_name: impl Into<String>,
        state_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            primary_url,
            enroll_token: None,
            node_name: node_name.into(),
            interval: DEFAULT_INTERVAL,
            sample_every: DEFAULT_SAMPLE_EVERY,
            collect: pivitals_collect::Settings::default(),
            labels: Labels::new(),
            state_dir: state_dir.into(),
            backlog_max: default_backlog_max(DEFAULT_INTERVAL),
            root: PathBuf::from("/"),
            start_jitter: true,
            tls: ClientTls::default(),
            actions: ActionSettings::default(),
        }
    }

    /// Reads `file` (if any) and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let env = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)));
        Self::from_sources(file, env)
    }

    /// Reads `file` (if any), then lets the variables in `env` override it. Does not touch the
    /// process environment, so tests can pass their own.
    pub fn from_sources(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: HashMap<String, String> = env.into_iter().collect();
        let file_error = |path: &Path, reason: String| ConfigError::File {
            path: path.to_owned(),
            reason,
        };
        let table = match file {
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|e| file_error(path, e.to_string()))?;
                let table = text
                    .parse::<toml::Table>()
                    .map_err(|e| file_error(path, e.to_string().trim_end().to_owned()))?;
                if let Some((key, expected)) = unknown_key(&table) {
                    return Err(ConfigError::UnknownKey(UnknownKey {
                        path: path.to_owned(),
                        key,
                        expected,
                    }));
                }
                table
            }
            None => toml::Table::new(),
        };
        let raw = Raw {
            env: &env,
            file: &table,
        };

        let primary_url = parse_primary_url(
            &raw.string("primary_url")?
                .ok_or(ConfigError::MissingPrimaryUrl)?,
        )?;
        let enroll_token = raw.string("enroll_token")?.map(Secret::new);
        let node_name = match raw.string("node_name")? {
            Some(name) => {
                validate::node_name(&name).map_err(ConfigError::NodeName)?;
                name
            }
            None => {
                let hostname = sysinfo::System::host_name()
                    .ok()
                    .ok_or(ConfigError::NoHostname)?;
                validate::node_name(&hostname).map_err(|source| {
                    ConfigError::HostnameNotANodeName {
                        hostname: hostname.clone(),
                        source,
                    }
                })?;
                hostname
            }
        };
        let interval = match raw.string("interval")? {
            Some(text) => parse_interval(&text)?,
            None => DEFAULT_INTERVAL,
        };
        let sample_every = match raw.string("sample_every")? {
            Some(text) => parse_sample_every(&text, interval)?,
            None => DEFAULT_SAMPLE_EVERY.min(interval),
        };
        let mut collect = pivitals_collect::Settings::default();
        if let Some(list) = raw.list("disk_ignore_fs_types")? {
            collect.disk_ignore_fs_types = list;
        }
        if let Some(list) = raw.list("disk_ignore_mounts")? {
            collect.disk_ignore_mounts = list;
        }
        let labels = raw.labels()?;
        let state_dir = match raw.string("state_dir")? {
            Some(dir) => PathBuf::from(dir),
            None => match env.get("STATE_DIRECTORY").filter(|dir| !dir.is_empty()) {
                // systemd may list several directories separated by ':'; ours is the first.
                Some(dirs) => PathBuf::from(dirs.split(':').next().unwrap_or(dirs)),
                None => PathBuf::from(DEFAULT_STATE_DIR),
            },
        };
        let backlog_max = match raw.string("backlog_max")? {
            Some(text) => match text.trim().parse::<usize>() {
                Ok(n) if n >= 1 => n,
                _ => return Err(ConfigError::BacklogMax(text)),
            },
            None => default_backlog_max(interval),
        };
        let root = raw
            .string("root")?
            .map_or_else(|| PathBuf::from("/"), PathBuf::from);
        let start_jitter = match raw.string("start_jitter")? {
            Some(text) => parse_bool(&text).ok_or(ConfigError::StartJitter(text))?,
            None => true,
        };

        let ca_pem = match raw.nested("tls", "ca")? {
            Some(path) => {
                let path = PathBuf::from(path);
                let pem = std::fs::read(&path).map_err(|e| ConfigError::TlsCa {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
                match reqwest::Certificate::from_pem_bundle(&pem) {
                    Ok(certs) if !certs.is_empty() => Some(pem),
                    Ok(_) => {
                        return Err(ConfigError::TlsCa {
                            path,
                            reason: "no PEM certificate in it".into(),
                        });
                    }
                    Err(e) => {
                        return Err(ConfigError::TlsCa {
                            path,
                            reason: e.to_string(),
                        });
                    }
                }
            }
            None => None,
        };
        let insecure_skip_verify = match raw.nested("tls", "insecure_skip_verify")? {
            Some(text) => parse_bool(&text).ok_or(ConfigError::InsecureSkipVerify(text))?,
            None => false,
        };
        let mut actions = match file {
            Some(path) => parse_actions(&table).map_err(|reason| file_error(path, reason))?,
            None => ActionSettings::default(),
        };
        if let Some(text) = raw.nested("actions", "allow_power")? {
            actions.allow_power = parse_bool(&text).ok_or(ConfigError::AllowPower(text))?;
        }
        // The short `PIVITALS_ALLOW_UPDATE` is the name the installer and the docs use.
        let allow_update = match raw.nested("actions", "allow_update")? {
            Some(text) => Some(text),
            None => raw.variable("PIVITALS_ALLOW_UPDATE"),
        };
        if let Some(text) = allow_update {
            actions.allow_update = parse_bool(&text).ok_or(ConfigError::AllowUpdate(text))?;
        }
        if let Some(text) = raw.nested("actions", "update_public_key")? {
            let key = parse_public_key(&text).map_err(ConfigError::UpdatePublicKey)?;
            actions.update_public_key = Some(key);
        }

        Ok(Self {
            primary_url,
            enroll_token,
            node_name,
            interval,
            sample_every,
            collect,
            labels,
            state_dir,
            backlog_max,
            root,
            start_jitter,
            tls: ClientTls {
                ca_pem,
                insecure_skip_verify,
            },
            actions,
        })
    }

    /// The interval in whole seconds, rounded up, as the primary's liveness check wants it.
    pub fn interval_seconds(&self) -> u64 {
        let secs = self.interval.as_secs();
        if self.interval.subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        }
        .max(1)
    }
}

/// 24 h of samples at `interval` ([`DEFAULT_BACKLOG_SPAN`]), at least 1. Not capped: the
/// backlog is on disk and its memory is an index of 8 bytes a sample, so a day at 1 s (86,400
/// samples, 100–200 MB on disk) costs about 700 KiB of memory.
pub fn default_backlog_max(interval: Duration) -> usize {
    let per_day = DEFAULT_BACKLOG_SPAN.as_millis() / interval.as_millis().max(1);
    usize::try_from(per_day).unwrap_or(usize::MAX).max(1)
}

/// The two sources, read key by key: a non-empty `PIVITALS_*` variable wins over the file.
struct Raw<'a> {
    env: &'a HashMap<String, String>,
    file: &'a toml::Table,
}

impl Raw<'_> {
    /// `PIVITALS_{KEY}`, else `key` of the file.
    fn string(&self, key: &'static str) -> Result<Option<String>, ConfigError> {
        let var = variable_name(key);
        if let Some(value) = self.variable(&var) {
            return Ok(Some(value));
        }
        self.file
            .get(key)
            .map(|value| scalar(value).ok_or_else(|| type_error(key, value)))
            .transpose()
    }

    /// `PIVITALS_{TABLE}__{KEY}`, else `[table] key` of the file.
    fn nested(
        &self,
        table: &'static str,
        key: &'static str,
    ) -> Result<Option<String>, ConfigError> {
        let var = format!(
            "PIVITALS_{}__{}",
            table.to_ascii_uppercase(),
            key.to_ascii_uppercase()
        );
        if let Some(value) = self.variable(&var) {
            return Ok(Some(value));
        }
        let Some(section) = self.file.get(table) else {
            return Ok(None);
        };
        let section = section.as_table().ok_or_else(|| ConfigError::Type {
            var: variable_name(table),
            key: table,
            reason: format!("expected a table, found {}", section.type_str()),
        })?;
        section
            .get(key)
            .map(|value| {
                scalar(value).ok_or_else(|| ConfigError::Type {
                    var,
                    key,
                    reason: format!("expected a value, found {}", value.type_str()),
                })
            })
            .transpose()
    }

    /// A list: comma-separated in the variable or a string of the file, or an array of
    /// strings in the file. Entries are trimmed; empty ones dropped. An empty variable counts
    /// as unset; the file's `[]` is an empty list (nothing left out).
    fn list(&self, key: &'static str) -> Result<Option<Vec<String>>, ConfigError> {
        let split = |text: &str| {
            text.split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let var = variable_name(key);
        if let Some(text) = self.variable(&var) {
            return Ok(Some(split(&text)));
        }
        match self.file.get(key) {
            None => Ok(None),
            Some(toml::Value::String(text)) => Ok(Some(split(text))),
            Some(toml::Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    toml::Value::String(text) => Ok(text.trim().to_owned()),
                    other => Err(ConfigError::Type {
                        var: var.clone(),
                        key,
                        reason: format!("expected strings, found {}", other.type_str()),
                    }),
                })
                .filter(|item| !matches!(item, Ok(text) if text.is_empty()))
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(other) => Err(type_error(key, other)),
        }
    }

    /// `labels` as the string form (`stack=2,role=worker`), from the variable or the file, or
    /// as a table in the file.
    fn labels(&self) -> Result<Labels, ConfigError> {
        if let Some(text) = self.variable("PIVITALS_LABELS") {
            return validate::parse_labels(&text).map_err(ConfigError::Labels);
        }
        match self.file.get("labels") {
            None => Ok(Labels::new()),
            Some(toml::Value::Table(table)) => {
                let mut labels = Labels::new();
                for (key, value) in table {
                    let value = scalar(value).ok_or_else(|| type_error("labels", value))?;
                    labels.insert(key.clone(), value);
                }
                validate::labels(&labels).map_err(ConfigError::Labels)?;
                Ok(labels)
            }
            Some(toml::Value::String(text)) => {
                validate::parse_labels(text).map_err(ConfigError::Labels)
            }
            Some(other) => Err(type_error("labels", other)),
        }
    }

    /// A variable that is set and not empty.
    fn variable(&self, name: &str) -> Option<String> {
        self.env
            .get(name)
            .filter(|value| !value.is_empty())
            .cloned()
    }
}

/// The first key of the file that is not a setting, with its table's keys: the top level is
/// checked against [`KEYS`], a `[tls]` table against [`TLS_KEYS`], the values of `[actions]`
/// against [`ACTIONS_KEYS`] and each `[actions.NAME]` table against [`ACTION_KEYS`];
/// `[labels]` holds any keys. A `tls` or `actions` that is not a table is left to the type
/// check.
fn unknown_key(file: &toml::Table) -> Option<(String, &'static [&'static str])> {
    if let Some(key) = file.keys().find(|key| !KEYS.contains(&key.as_str())) {
        return Some((key.clone(), KEYS));
    }
    if let Some(tls) = file.get("tls").and_then(toml::Value::as_table)
        && let Some(key) = tls.keys().find(|key| !TLS_KEYS.contains(&key.as_str()))
    {
        return Some((format!("tls.{key}"), TLS_KEYS));
    }
    let actions = file.get("actions")?.as_table()?;
    for (name, value) in actions {
        match value.as_table() {
            Some(action) => {
                if let Some(key) = action
                    .keys()
                    .find(|key| !ACTION_KEYS.contains(&key.as_str()))
                {
                    return Some((format!("actions.{name}.{key}"), ACTION_KEYS));
                }
            }
            None if !ACTIONS_KEYS.contains(&name.as_str()) => {
                return Some((format!("actions.{name}"), ACTIONS_KEYS));
            }
            None => {}
        }
    }
    None
}

/// A raw Ed25519 public key from its standard base64 (44 characters, padded; surrounding
/// spaces ignored), as `openssl pkey -in key.pem -pubout -outform DER | tail -c 32 | base64`
/// prints it. The error says what is wrong, never the key's bytes.
pub fn parse_public_key(text: &str) -> Result<[u8; 32], String> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| {
        "not base64; expected the output of \
         `openssl pkey -in key.pem -pubout -outform DER | tail -c 32 | base64`"
            .to_owned()
    })?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "{} bytes, not the 32 of a raw Ed25519 public key; expected the output of \
             `openssl pkey -in key.pem -pubout -outform DER | tail -c 32 | base64`",
            bytes.len()
        )
    })
}

/// The `[actions]` table of the file, but `allow_power`, `allow_update` and
/// `update_public_key`, which the environment may override.
/// The error names the key.
fn parse_actions(file: &toml::Table) -> Result<ActionSettings, String> {
    let mut settings = ActionSettings::default();
    let Some(actions) = file.get("actions") else {
        return Ok(settings);
    };
    let actions = actions
        .as_table()
        .ok_or_else(|| format!("`actions`: expected a table, found {}", actions.type_str()))?;
    for (name, value) in actions {
        let key = format!("actions.{name}");
        match name.as_str() {
            "allow_power" | "allow_update" | "update_public_key" => {}
            "reboot_command" => settings.reboot_command = argv(&key, value)?,
            "shutdown_command" => settings.shutdown_command = argv(&key, value)?,
            _ => {
                if BUILTIN_ACTIONS.contains(&name.as_str()) {
                    return Err(format!(
                        "`{key}`: {name} is a built-in action; give yours another name"
                    ));
                }
                if !is_valid_action_name(name) {
                    return Err(format!(
                        "`{key}`: an action's name must match ^[a-z][a-z0-9_-]{{0,31}}$"
                    ));
                }
                let table = value.as_table().ok_or_else(|| {
                    format!("`{key}`: expected a table, found {}", value.type_str())
                })?;
                let command = table
                    .get("command")
                    .ok_or_else(|| format!("`{key}`: `command` is required"))
                    .and_then(|value| argv(&format!("{key}.command"), value))?;
                let timeout = match table.get("timeout") {
                    Some(value) => action_timeout(&format!("{key}.timeout"), value)?,
                    None => DEFAULT_ACTION_TIMEOUT,
                };
                settings
                    .commands
                    .insert(name.clone(), ActionCommand { command, timeout });
            }
        }
    }
    Ok(settings)
}

/// A command line as a TOML array of strings: not empty, its program not empty.
fn argv(key: &str, value: &toml::Value) -> Result<Vec<String>, String> {
    let error =
        || format!("`{key}`: expected a non-empty array of strings, like [\"echo\", \"hi\"]");
    let items = value.as_array().ok_or_else(error)?;
    let argv = items
        .iter()
        .map(|item| item.as_str().map(str::to_owned).ok_or_else(error))
        .collect::<Result<Vec<_>, _>>()?;
    match argv.first() {
        Some(program) if !program.is_empty() => Ok(argv),
        _ => Err(error()),
    }
}

/// An action's `timeout`: a duration (`30s`, `5m`) or a number of seconds, more than zero and at
/// most [`MAX_ACTION_TIMEOUT`].
fn action_timeout(key: &str, value: &toml::Value) -> Result<Duration, String> {
    let shown = match value {
        toml::Value::String(text) => format!("{text:?}"),
        toml::Value::Integer(n) => n.to_string(),
        other => other.type_str().to_owned(),
    };
    let error = |reason: String| {
        format!("`{key}`: {shown} is not a duration between 1ms and 1h (e.g. 30s, 5m): {reason}")
    };
    let timeout = match value {
        toml::Value::Integer(secs) => u64::try_from(*secs)
            .map(Duration::from_secs)
            .map_err(|_| error("negative".into()))?,
        toml::Value::String(text) => {
            humantime::parse_duration(text.trim()).map_err(|e| error(e.to_string()))?
        }
        other => return Err(error(format!("found {}", other.type_str()))),
    };
    if timeout.is_zero() {
        return Err(error("zero".into()));
    }
    if timeout > MAX_ACTION_TIMEOUT {
        return Err(error("longer than 1h".into()));
    }
    Ok(timeout)
}

/// A string, number or boolean of the file as text (`interval = 30` is `"30"`); None for a
/// table, an array or a date.
fn scalar(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(text) => Some(text.clone()),
        toml::Value::Integer(n) => Some(n.to_string()),
        toml::Value::Float(x) => Some(x.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `PIVITALS_{KEY}`, the variable of the file's `key`.
fn variable_name(key: &str) -> String {
    format!("PIVITALS_{}", key.to_ascii_uppercase())
}

fn type_error(key: &'static str, found: &toml::Value) -> ConfigError {
    ConfigError::Type {
        var: variable_name(key),
        key,
        reason: format!("expected a value, found {}", found.type_str()),
    }
}

fn parse_primary_url(text: &str) -> Result<Url, ConfigError> {
    let error = |reason: &str| ConfigError::PrimaryUrl {
        value: text.to_owned(),
        reason: reason.to_owned(),
    };
    let mut url = Url::parse(text.trim()).map_err(|e| error(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(error("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(error("there is no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(error("a query or fragment is not allowed"));
    }
    // `Url::join` replaces the last segment unless the path ends with '/'.
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// How often fast vitals are read unless `sample_every` says otherwise.
pub const DEFAULT_SAMPLE_EVERY: Duration = Duration::from_secs(1);

fn parse_sample_every(text: &str, interval: Duration) -> Result<Duration, ConfigError> {
    let error = |reason: String| ConfigError::SampleEvery {
        value: text.to_owned(),
        interval: humantime::format_duration(interval).to_string(),
        reason,
    };
    let every = parse_duration(text).map_err(error)?;
    if every < MIN_INTERVAL {
        return Err(error("shorter than 1s".into()));
    }
    if every > interval {
        return Err(error("longer than the interval".into()));
    }
    Ok(every)
}

/// A duration (`60s`, `500ms`, `2m`) or, as TOML `interval = 30` gives, a bare number of
/// seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    match trimmed.parse::<u64>() {
        Ok(secs) => Ok(Duration::from_secs(secs)),
        Err(_) => humantime::parse_duration(trimmed).map_err(|e| e.to_string()),
    }
}

/// `true`, `1` or `yes`; `false`, `0` or `no`; any case, spaces around ignored.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Some(true),
        "false" | "0" | "no" => Some(false),
        _ => None,
    }
}

fn parse_interval(text: &str) -> Result<Duration, ConfigError> {
    let error = |reason: String| ConfigError::Interval {
        value: text.to_owned(),
        reason,
    };
    let interval = parse_duration(text).map_err(error)?;
    if interval < MIN_INTERVAL {
        return Err(error("shorter than 1s".into()));
    }
    if interval > MAX_INTERVAL {
        return Err(error("longer than 24h".into()));
    }
    Ok(interval)
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn minimal() -> Vec<(String, String)> {
        env(&[
            ("PIVITALS_PRIMARY_URL", "http://primary:8080"),
            ("PIVITALS_NODE_NAME", "pi-01"),
        ])
    }

    fn toml_file(text: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".conf").tempfile().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file
    }

    fn error_text(file: Option<&Path>, vars: Vec<(String, String)>) -> String {
        Config::from_sources(file, vars).unwrap_err().to_string()
    }

    #[test]
    fn fast_vitals_are_read_every_second_unless_told_otherwise_within_the_interval() {
        let cfg = Config::from_sources(None, minimal()).unwrap();
        assert_eq!(cfg.sample_every, Duration::from_secs(1));
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_SAMPLE_EVERY", "5s")]));
        assert_eq!(
            Config::from_sources(None, vars).unwrap().sample_every,
            Duration::from_secs(5)
        );
        let file = toml_file("interval = \"10s\"\nsample_every = 10\n");
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert_eq!(cfg.sample_every, cfg.interval, "up to the interval");
        for (value, why) in [
            ("500ms", "shorter than 1s"),
            ("2m", "longer than the interval"),
        ] {
            let mut vars = minimal();
            vars.extend(env(&[("PIVITALS_SAMPLE_EVERY", value)]));
            let text = error_text(None, vars);
            assert!(
                text.starts_with("PIVITALS_SAMPLE_EVERY (sample_every)") && text.contains(why),
                "{text}"
            );
        }
    }

    #[test]
    fn ignored_filesystems_come_from_a_list_in_either_form() {
        let defaults = Config::from_sources(None, minimal()).unwrap().collect;
        assert!(defaults.disk_ignore_fs_types.iter().any(|t| t == "tmpfs"));
        assert!(defaults.disk_ignore_mounts.iter().any(|m| m == "/proc"));

        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_DISK_IGNORE_FS_TYPES", " tmpfs, ,vfat ")]));
        let cfg = Config::from_sources(None, vars).unwrap();
        assert_eq!(cfg.collect.disk_ignore_fs_types, ["tmpfs", "vfat"]);

        let file = toml_file("disk_ignore_mounts = [\"/boot/firmware\", \"/srv\"]\n");
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert_eq!(cfg.collect.disk_ignore_mounts, ["/boot/firmware", "/srv"]);

        let file = toml_file("disk_ignore_mounts = []\n");
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_DISK_IGNORE_MOUNTS", "")]));
        let cfg = Config::from_sources(Some(file.path()), vars).unwrap();
        assert!(
            cfg.collect.disk_ignore_mounts.is_empty(),
            "an empty variable is unset; the file's empty list leaves out nothing"
        );

        let file = toml_file("disk_ignore_fs_types = [1]\n");
        let text = error_text(Some(file.path()), minimal());
        assert!(text.contains("PIVITALS_DISK_IGNORE_FS_TYPES"), "{text}");
    }

    #[test]
    fn tls_settings_from_the_environment_or_the_file() {
        let cfg = Config::from_sources(None, minimal()).unwrap();
        assert!(cfg.tls.ca_pem.is_none() && !cfg.tls.insecure_skip_verify);
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_TLS__INSECURE_SKIP_VERIFY", "true")]));
        assert!(
            Config::from_sources(None, vars)
                .unwrap()
                .tls
                .insecure_skip_verify
        );
        let file = toml_file("[tls]\ninsecure_skip_verify = true\n");
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert!(cfg.tls.insecure_skip_verify);
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_TLS__INSECURE_SKIP_VERIFY", "maybe")]));
        assert!(error_text(None, vars).contains("PIVITALS_TLS__INSECURE_SKIP_VERIFY"));
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_TLS__CA", "/nonexistent/ca.pem")]));
        let text = error_text(None, vars);
        assert!(
            text.starts_with("PIVITALS_TLS__CA (tls.ca) /nonexistent/ca.pem"),
            "{text}"
        );
        let not_pem = toml_file("hello\n");
        let mut vars = minimal();
        vars.extend(env(&[(
            "PIVITALS_TLS__CA",
            not_pem.path().to_str().unwrap(),
        )]));
        let text = error_text(None, vars);
        assert!(text.contains("no PEM certificate"), "{text}");
    }

    #[test]
    fn defaults() {
        let cfg = Config::from_sources(None, minimal()).unwrap();
        assert_eq!(cfg.primary_url.as_str(), "http://primary:8080/");
        assert_eq!(cfg.node_name, "pi-01");
        assert!(cfg.enroll_token.is_none());
        assert_eq!(cfg.interval, Duration::from_secs(60));
        assert_eq!(cfg.interval_seconds(), 60);
        assert!(cfg.labels.is_empty());
        assert_eq!(cfg.state_dir, PathBuf::from("pivitals-agent-state"));
        assert_eq!(cfg.backlog_max, 1440);
        assert_eq!(cfg.root, PathBuf::from("/"));
        assert!(cfg.start_jitter);
    }

    #[test]
    fn node_name_defaults_to_the_host_name() {
        let vars = env(&[("PIVITALS_PRIMARY_URL", "http://primary:8080")]);
        match (
            Config::from_sources(None, vars),
            sysinfo::System::host_name().ok(),
        ) {
            (Ok(cfg), Some(host)) => assert_eq!(cfg.node_name, host),
            (Err(ConfigError::HostnameNotANodeName { hostname, .. }), Some(host)) => {
                assert_eq!(hostname, host)
            }
            (Err(ConfigError::NoHostname), None) => {}
            (other, host) => panic!("{other:?} with host name {host:?}"),
        }
    }

    #[test]
    fn systemd_state_directory_is_the_default_state_dir() {
        let mut vars = minimal();
        vars.extend(env(&[("STATE_DIRECTORY", "/var/lib/pivitals-agent")]));
        let cfg = Config::from_sources(None, vars).unwrap();
        assert_eq!(cfg.state_dir, PathBuf::from("/var/lib/pivitals-agent"));
    }

    #[test]
    fn environment_overrides_the_file() {
        let file = toml_file(
            r#"
            primary_url = "https://file.example:9000/base"
            enroll_token = "from-file"
            node_name = "file-node"
            interval = "2m"
            state_dir = "/tmp/file-state"
            backlog_max = 7
            start_jitter = false
            [labels]
            stack = 2
            role = "worker"
            "#,
        );
        let from_file = Config::from_sources(Some(file.path()), Vec::new()).unwrap();
        assert_eq!(
            from_file.primary_url.as_str(),
            "https://file.example:9000/base/"
        );
        assert_eq!(
            from_file.enroll_token.as_ref().map(Secret::expose),
            Some("from-file")
        );
        assert_eq!(from_file.node_name, "file-node");
        assert_eq!(from_file.interval, Duration::from_secs(120));
        assert_eq!(from_file.labels.get("stack").map(String::as_str), Some("2"));
        assert_eq!(
            from_file.labels.get("role").map(String::as_str),
            Some("worker")
        );
        assert_eq!(from_file.state_dir, PathBuf::from("/tmp/file-state"));
        assert_eq!(from_file.backlog_max, 7);
        assert!(!from_file.start_jitter);

        let vars = env(&[
            ("PIVITALS_PRIMARY_URL", "http://env:8080"),
            ("PIVITALS_ENROLL_TOKEN", "from-env"),
            ("PIVITALS_NODE_NAME", "env-node"),
            ("PIVITALS_INTERVAL", "1500ms"),
            ("PIVITALS_LABELS", "rack=b"),
            ("PIVITALS_ROOT", "/fixture"),
            ("PIVITALS_START_JITTER", "true"),
            ("PIVITALS_LOG", "debug"),
            ("PIVITALS_STATE_DIR", ""),
        ]);
        let cfg = Config::from_sources(Some(file.path()), vars).unwrap();
        assert_eq!(cfg.primary_url.as_str(), "http://env:8080/");
        assert_eq!(
            cfg.enroll_token.as_ref().map(Secret::expose),
            Some("from-env")
        );
        assert_eq!(cfg.node_name, "env-node");
        assert_eq!(cfg.interval, Duration::from_millis(1500));
        assert_eq!(cfg.interval_seconds(), 2);
        assert_eq!(cfg.labels.len(), 1);
        assert_eq!(cfg.labels.get("rack").map(String::as_str), Some("b"));
        assert_eq!(cfg.root, PathBuf::from("/fixture"));
        assert!(cfg.start_jitter);
        // An empty variable counts as unset, so the file's value stays.
        assert_eq!(cfg.state_dir, PathBuf::from("/tmp/file-state"));
        assert_eq!(cfg.backlog_max, 7);
    }

    #[test]
    fn labels_in_the_file_may_be_the_string_form() {
        let file = toml_file("labels = \"stack=3, role=db\"\n");
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert_eq!(cfg.labels.get("stack").map(String::as_str), Some("3"));
        assert_eq!(cfg.labels.get("role").map(String::as_str), Some("db"));
    }

    #[test]
    fn default_backlog_is_a_day_of_samples() {
        assert_eq!(default_backlog_max(Duration::from_secs(60)), 1440);
        assert_eq!(default_backlog_max(Duration::from_secs(10)), 8640);
        assert_eq!(default_backlog_max(Duration::from_secs(1)), 86_400);
        assert_eq!(default_backlog_max(Duration::from_millis(1500)), 57_600);
        assert_eq!(default_backlog_max(MAX_INTERVAL), 1);
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_INTERVAL", "30s")]));
        assert_eq!(Config::from_sources(None, vars).unwrap().backlog_max, 2880);
    }

    #[test]
    fn missing_or_wrong_primary_url() {
        let vars = env(&[("PIVITALS_NODE_NAME", "pi-01")]);
        assert!(
            error_text(None, vars).starts_with("PIVITALS_PRIMARY_URL (primary_url) is required")
        );
        for bad in [
            "primary:8080",
            "ftp://primary/",
            "http://",
            "not a url",
            "http://p/?x=1",
        ] {
            let vars = env(&[
                ("PIVITALS_NODE_NAME", "pi-01"),
                ("PIVITALS_PRIMARY_URL", bad),
            ]);
            let text = error_text(None, vars);
            assert!(
                text.contains("is not an http:// or https:// URL"),
                "{bad}: {text}"
            );
        }
    }

    #[test]
    fn bad_intervals() {
        for bad in ["0s", "999ms", "soon", "25h", "-1s", ""] {
            let mut vars = minimal();
            vars.push(("PIVITALS_INTERVAL".into(), bad.into()));
            match Config::from_sources(None, vars) {
                // An empty variable counts as unset.
                Ok(cfg) if bad.is_empty() => assert_eq!(cfg.interval, DEFAULT_INTERVAL),
                Err(e @ ConfigError::Interval { .. }) => {
                    assert!(
                        e.to_string().starts_with("PIVITALS_INTERVAL (interval)"),
                        "{e}"
                    )
                }
                other => panic!("{bad:?}: {other:?}"),
            }
        }
        for (good, expected) in [
            ("1s", 1000),
            ("2m", 120_000),
            ("30", 30_000),
            ("1m 30s", 90_000),
        ] {
            let mut vars = minimal();
            vars.push(("PIVITALS_INTERVAL".into(), good.into()));
            let cfg = Config::from_sources(None, vars).unwrap();
            assert_eq!(cfg.interval, Duration::from_millis(expected), "{good}");
        }
    }

    #[test]
    fn bad_labels_and_node_names() {
        let mut vars = minimal();
        vars.push(("PIVITALS_LABELS".into(), "node=x".into()));
        assert!(matches!(
            Config::from_sources(None, vars),
            Err(ConfigError::Labels(InvalidName::ReservedLabelKey(_)))
        ));
        let mut vars = minimal();
        vars.push(("PIVITALS_LABELS".into(), "stack".into()));
        let text = error_text(None, vars);
        assert!(
            text.starts_with("PIVITALS_LABELS (labels): label \"stack\""),
            "{text}"
        );

        let file = toml_file("[labels]\n\"bad key\" = \"x\"\n");
        assert!(matches!(
            Config::from_sources(Some(file.path()), minimal()),
            Err(ConfigError::Labels(InvalidName::LabelKey(_)))
        ));

        let vars = env(&[
            ("PIVITALS_PRIMARY_URL", "http://p"),
            ("PIVITALS_NODE_NAME", "pi 01"),
        ]);
        let text = error_text(None, vars);
        assert!(
            text.starts_with("PIVITALS_NODE_NAME (node_name): node name \"pi 01\""),
            "{text}"
        );
    }

    #[test]
    fn bad_numbers_and_flags() {
        for bad in ["0", "many", "-3"] {
            let mut vars = minimal();
            vars.push(("PIVITALS_BACKLOG_MAX".into(), bad.into()));
            assert!(
                matches!(
                    Config::from_sources(None, vars),
                    Err(ConfigError::BacklogMax(_))
                ),
                "{bad}"
            );
        }
        let mut vars = minimal();
        vars.push(("PIVITALS_START_JITTER".into(), "sometimes".into()));
        assert!(matches!(
            Config::from_sources(None, vars),
            Err(ConfigError::StartJitter(_))
        ));
    }

    #[test]
    fn file_errors_name_the_file() {
        let file = toml_file("primary_url = \"http://p\"\nintervall = \"5s\"\n");
        let text = error_text(Some(file.path()), minimal());
        assert_eq!(
            text,
            format!(
                "config file {}: unknown key `intervall` (expected one of {})",
                file.path().display(),
                KEYS.join(", ")
            )
        );

        let file = toml_file("primary_url = \n");
        let text = error_text(Some(file.path()), minimal());
        assert!(text.starts_with("config file "), "{text}");

        let missing = Path::new("/nonexistent/pivitals-agent.toml");
        let text = error_text(Some(missing), minimal());
        assert!(
            text.starts_with("config file /nonexistent/pivitals-agent.toml"),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_in_a_table_of_the_file_are_refused() {
        let file = toml_file("[tls]\ninsecure_skip_verify = false\ncert_fil = \"/etc/ca.pem\"\n");
        let text = error_text(Some(file.path()), minimal());
        assert_eq!(
            text,
            format!(
                "config file {}: unknown key `tls.cert_fil` (expected one of ca, insecure_skip_verify)",
                file.path().display()
            )
        );
        // Label keys are the operator's own, not settings.
        let file = toml_file("[labels]\nanything = \"x\"\n[tls]\ninsecure_skip_verify = false\n");
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert_eq!(cfg.labels.get("anything").map(String::as_str), Some("x"));
        assert!(!cfg.tls.insecure_skip_verify);
    }

    #[test]
    fn unknown_variables_are_tolerated() {
        // The primary's variables, met where both run with one environment.
        let mut vars = minimal();
        vars.extend(env(&[
            ("PIVITALS_LISTEN", "0.0.0.0:7070"),
            ("PIVITALS_INFLUX__URL", "http://influxdb:8086"),
            ("PIVITALS_TLS__CERT", "/etc/pivitals/cert.pem"),
            ("PIVITALS_INTERVALL", "5s"),
        ]));
        let cfg = Config::from_sources(None, vars).unwrap();
        assert_eq!(cfg.interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn actions_come_from_the_file_and_power_from_either_source() {
        let cfg = Config::from_sources(None, minimal()).unwrap();
        assert_eq!(cfg.actions, ActionSettings::default());
        assert!(!cfg.actions.allow_power);

        let file = toml_file(
            r#"
            [actions]
            reboot_command = ["true"]
            [actions.hello]
            command = ["echo", "hi"]
            [actions.apt-upgrade]
            command = ["sh", "-c", "apt-get -y upgrade"]
            timeout = "20m"
            [actions.quick]
            command = ["true"]
            timeout = 5
            "#,
        );
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        let actions = &cfg.actions;
        assert!(!actions.allow_power);
        assert_eq!(actions.reboot_command, ["true"]);
        assert_eq!(actions.shutdown_command, ["systemctl", "poweroff"]);
        assert_eq!(actions.commands.len(), 3);
        assert_eq!(actions.commands["hello"].command, ["echo", "hi"]);
        assert_eq!(actions.commands["hello"].timeout, DEFAULT_ACTION_TIMEOUT);
        assert_eq!(
            actions.commands["apt-upgrade"].timeout,
            Duration::from_secs(20 * 60)
        );
        assert_eq!(actions.commands["quick"].timeout, Duration::from_secs(5));

        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ACTIONS__ALLOW_POWER", "true")]));
        let cfg = Config::from_sources(Some(file.path()), vars).unwrap();
        assert!(cfg.actions.allow_power);
        assert_eq!(
            cfg.actions.commands.len(),
            3,
            "the variable leaves the tables"
        );

        let file = toml_file("[actions]\nallow_power = true\n");
        assert!(
            Config::from_sources(Some(file.path()), minimal())
                .unwrap()
                .actions
                .allow_power
        );
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ACTIONS__ALLOW_POWER", "false")]));
        assert!(
            !Config::from_sources(Some(file.path()), vars)
                .unwrap()
                .actions
                .allow_power,
            "the variable wins over the file"
        );
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ACTIONS__ALLOW_POWER", "sure")]));
        assert_eq!(
            error_text(None, vars),
            "PIVITALS_ACTIONS__ALLOW_POWER (actions.allow_power) \"sure\" is not true or false"
        );
    }

    #[test]
    fn update_is_allowed_by_the_file_or_either_variable() {
        let plain = Config::from_sources(None, minimal()).unwrap();
        assert!(!plain.actions.allow_update, "off unless asked");
        let file = toml_file("[actions]\nallow_update = true\n");
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert!(cfg.actions.allow_update && !cfg.actions.allow_power);
        for var in ["PIVITALS_ACTIONS__ALLOW_UPDATE", "PIVITALS_ALLOW_UPDATE"] {
            let mut vars = minimal();
            vars.extend(env(&[(var, "true")]));
            assert!(
                Config::from_sources(None, vars)
                    .unwrap()
                    .actions
                    .allow_update,
                "{var}"
            );
        }
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ACTIONS__ALLOW_UPDATE", "false")]));
        assert!(
            !Config::from_sources(Some(file.path()), vars)
                .unwrap()
                .actions
                .allow_update,
            "the variable wins over the file"
        );
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ALLOW_UPDATE", "yes please")]));
        assert_eq!(
            error_text(None, vars),
            "PIVITALS_ACTIONS__ALLOW_UPDATE (actions.allow_update) \"yes please\" is not true or false"
        );
    }

    #[test]
    fn the_update_public_key_is_32_bytes_of_base64() {
        // RFC 8032, test 1's public key.
        let hex = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let raw: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let text = "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
        assert_eq!(parse_public_key(text).unwrap().as_slice(), raw.as_slice());
        assert_eq!(
            parse_public_key(&format!("  {text}\n")).unwrap().as_slice(),
            raw.as_slice()
        );
        assert!(parse_public_key("").unwrap_err().starts_with("0 bytes"));
        for bad in [
            "YQ=",
            "Y===",
            "YW*j",
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
        ] {
            assert!(
                parse_public_key(bad).unwrap_err().starts_with("not base64"),
                "{bad}"
            );
        }
        let short = parse_public_key("YWJj").unwrap_err();
        assert!(short.starts_with("3 bytes, not the 32"), "{short}");
        assert!(
            parse_public_key("not a key")
                .unwrap_err()
                .starts_with("not base64")
        );

        let plain = Config::from_sources(None, minimal()).unwrap();
        assert_eq!(
            plain.actions.update_public_key, None,
            "SHA-256 only unless set"
        );
        let file = toml_file(&format!("[actions]\nupdate_public_key = \"{text}\"\n"));
        let cfg = Config::from_sources(Some(file.path()), minimal()).unwrap();
        assert_eq!(
            cfg.actions.update_public_key.map(|k| k.to_vec()),
            Some(raw.clone())
        );
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ACTIONS__UPDATE_PUBLIC_KEY", text)]));
        let cfg = Config::from_sources(None, vars).unwrap();
        assert_eq!(cfg.actions.update_public_key.map(|k| k.to_vec()), Some(raw));
        let mut vars = minimal();
        vars.extend(env(&[("PIVITALS_ACTIONS__UPDATE_PUBLIC_KEY", "YWJj")]));
        let error = error_text(None, vars);
        assert!(
            error.starts_with(
                "PIVITALS_ACTIONS__UPDATE_PUBLIC_KEY (actions.update_public_key): 3 bytes"
            ) && !error.contains('\n'),
            "{error}"
        );
    }

    #[test]
    fn bad_actions_are_refused_naming_the_key_and_the_file() {
        for (text, expected) in [
            (
                "[actions.ping]\ncommand = [\"echo\"]\n",
                "`actions.ping`: ping is a built-in action",
            ),
            (
                "[actions.reboot]\ncommand = [\"echo\"]\n",
                "`actions.reboot`: reboot is a built-in action",
            ),
            (
                "[actions.Hello]\ncommand = [\"echo\"]\n",
                "`actions.Hello`: an action's name must match",
            ),
            (
                "[actions.hello]\ncommand = []\n",
                "`actions.hello.command`: expected a non-empty array",
            ),
            (
                "[actions.hello]\ncommand = [\"\"]\n",
                "`actions.hello.command`: expected a non-empty",
            ),
            (
                "[actions.hello]\ncommand = \"echo hi\"\n",
                "`actions.hello.command`: expected a non-empty",
            ),
            (
                "[actions.hello]\ncommand = [\"echo\", 1]\n",
                "`actions.hello.command`: expected a non-empty",
            ),
            (
                "[actions.hello]\ntimeout = \"5s\"\n",
                "`actions.hello`: `command` is required",
            ),
            (
                "[actions.hello]\ncommand = [\"echo\"]\ntimeout = \"soon\"\n",
                "`actions.hello.timeout`: \"soon\" is not a duration",
            ),
            (
                "[actions.hello]\ncommand = [\"echo\"]\ntimeout = \"2h\"\n",
                "longer than 1h",
            ),
            (
                "[actions.hello]\ncommand = [\"echo\"]\ntimeout = \"0s\"\n",
                ": zero",
            ),
            (
                "[actions.hello]\ncommand = [\"echo\"]\ntimeout = -1\n",
                ": negative",
            ),
            (
                "[actions]\nreboot_command = []\n",
                "`actions.reboot_command`: expected",
            ),
            ("actions = 1\n", "`actions`: expected a table"),
        ] {
            let file = toml_file(text);
            let error = error_text(Some(file.path()), minimal());
            let prefix = format!("config file {}: ", file.path().display());
            assert!(
                error.starts_with(&prefix) && error.contains(expected),
                "{text:?}: {error}"
            );
        }
    }

    #[test]
    fn unknown_keys_of_actions_are_refused() {
        let file = toml_file("[actions.hello]\ncomand = [\"echo\", \"hi\"]\n");
        assert_eq!(
            error_text(Some(file.path()), minimal()),
            format!(
                "config file {}: unknown key `actions.hello.comand` (expected one of command, timeout)",
                file.path().display()
            )
        );
        let file = toml_file("[actions]\nallow_powr = true\n");
        assert_eq!(
            error_text(Some(file.path()), minimal()),
            format!(
                "config file {}: unknown key `actions.allow_powr` (expected one of allow_power, allow_update, update_public_key, reboot_command, shutdown_command)",
                file.path().display()
            )
        );
    }

    #[test]
    fn debug_redacts_the_enroll_token() {
        let mut vars = minimal();
        vars.push(("PIVITALS_ENROLL_TOKEN".into(), "s3cr3t-enroll".into()));
        let cfg = Config::from_sources(None, vars).unwrap();
        let debug = format!("{cfg:?}");
        assert!(!debug.contains("s3cr3t-enroll"), "{debug}");
        assert!(debug.contains("Secret(***)"), "{debug}");
    }
}
