//! Alert rules: what `[[alert.rules]]` in the primary's TOML file says ([`RuleConfig`]), the
//! checked form the engine evaluates ([`Rule`]), the defaults ([`default_rules`]) and how the
//! two lists merge ([`load`]).
//!
//! A rule names a field of [`SCHEMA`] (`measurement.field`, numeric), one comparison (`above`
//! or `below` a number, strictly), how long the comparison must hold (`for`, default `0s`),
//! whether to notify again while it still holds (`repeat`, default off), the channels it
//! notifies (`notify`, default: every channel) and its scope (`node`, `labels`; default: all
//! nodes). The special metric `node_status` is the node-down rule: the liveness watcher
//! decides when a node is down, so it takes no comparison, no `for` and no `repeat`.
//!
//! ```toml
//! [[alert.rules]]
//! name = "hot"
//! metric = "temperature.celsius"
//! above = 75
//! for = "2m"
//! notify = ["phone"]
//! labels = { stack = "2" }
//! ```
//!
//! **Defaults.** Five rules chosen for small boards are on unless turned off: `node down`,
//! `disk full` (`disk.used_percent` above 90 for 5m), `hot` (`temperature.celsius` above 80 for
//! 2m), `under-voltage` (`power.under_voltage_events` above 0: under-voltage began in the
//! interval) and `throttled` (`system.throttled` above 0). A configured rule with a default's
//! name replaces it; `enabled = false` with only that name turns it off; `[alert]
//! default_rules = false` turns them all off (the `defaults` argument of [`load`]).
//! Under-voltage is read from the power family, not from `system.under_voltage`: the agent's
//! power collector polls the same source every second (the `rpi_volt` hwmon, or
//! `get_throttled` on boards that only have that) and counts events between samples, whereas
//! `system.under_voltage` is only the moment of the sample; a second rule on it would notify
//! twice for one event.
//!
//! **Errors.** Every mistake is one line naming the rule and the key ([`RuleError`]), so the
//! primary can stop at start with it.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use pivitals_common::Labels;
use pivitals_common::line_protocol::{FieldType, SCHEMA};
use serde::Deserialize;
use thiserror::Error;

/// One `[[alert.rules]]` entry as written.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    pub name: String,
    /// `false` turns the rule off; with only `name`, it turns off the default of that name.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// `measurement.field` of the schema, or `node_status` for the node-down rule.
    #[serde(default)]
    pub metric: Option<String>,
    #[serde(default)]
    pub above: Option<f64>,
    #[serde(default)]
    pub below: Option<f64>,
    /// How long the comparison must hold before the rule fires, like `2m`.
    #[serde(default, rename = "for")]
    pub for_: Option<String>,
    /// Notify again every this long while the rule is still firing, like `1h`.
    #[serde(default)]
    pub repeat: Option<String>,
    /// The channels to notify, by name; empty means every channel.
    #[serde(default)]
    pub notify: Vec<String>,
    /// Only this node.
    #[serde(default)]
    pub node: Option<String>,
    /// Only nodes carrying all these labels.
    #[serde(default)]
    pub labels: Labels,
}

/// A field of [`SCHEMA`], resolved to its indices once so the engine compares no strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metric {
    measurement: usize,
    field: usize,
}

impl Metric {
    /// Resolves `measurement.field`; `None` when the schema has no such numeric field.
    pub fn parse(text: &str) -> Option<Self> {
        let (measurement, field) = text.split_once('.')?;
        let m = SCHEMA.iter().position(|m| {
            m.name == measurement && m.name != NODE_STATUS && m.name != ALERT && m.name != ACTION
        })?;
        let f = SCHEMA[m].fields.iter().position(|(name, ty)| {
            *name == field && matches!(ty, FieldType::Float | FieldType::Integer)
        })?;
        Some(Self {
            measurement: m,
            field: f,
        })
    }

    /// Index of the measurement in [`SCHEMA`].
    pub fn measurement_index(self) -> usize {
        self.measurement
    }

    /// Index of the field in the measurement's schema fields.
    pub fn field_index(self) -> usize {
        self.field
    }

    pub fn measurement(self) -> &'static str {
        SCHEMA[self.measurement].name
    }

    pub fn field(self) -> &'static str {
        SCHEMA[self.measurement].fields[self.field].0
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.measurement(), self.field())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Comparison {
    Above,
    Below,
}

impl Comparison {
    /// Whether `value` is strictly beyond `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::Above => value > threshold,
            Comparison::Below => value < threshold,
        }
    }

    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::Above => ">",
            Comparison::Below => "<",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Comparison::Above => "above",
            Comparison::Below => "below",
        }
    }
}

/// What makes a rule fire.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Condition {
    /// The node's status is down; fed by the liveness watcher, never by samples.
    NodeDown,
    /// A field of a sample's point is above or below a number.
    Threshold {
        metric: Metric,
        comparison: Comparison,
        threshold: f64,
    },
}

/// Which nodes a rule watches: all of them, one by name, or those with all given labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub node: Option<String>,
    pub labels: Labels,
}

impl Scope {
    pub fn matches(&self, node: &str, labels: &Labels) -> bool {
        self.node.as_deref().is_none_or(|n| n == node)
            && self
                .labels
                .iter()
                .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
    }
}

/// A checked rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Shared with every event of the rule, so an event costs no copy of it.
    pub name: Arc<str>,
    pub condition: Condition,
    /// How long the condition must hold, on sample timestamps.
    pub hold: Duration,
    pub repeat: Option<Duration>,
    /// Channel names; empty means every channel.
    pub notify: Arc<[String]>,
    pub scope: Scope,
}

/// The metric of the node-down rule.
pub const NODE_STATUS: &str = "node_status";

/// The measurement alert transitions are written to; no rule watches it.
pub const ALERT: &str = "alert";

/// The measurement actions' final states are written to; no rule watches it either.
pub const ACTION: &str = "action";

/// A mistake in one rule; its text is one line naming the rule and the key.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum RuleError {
    #[error("alert rule #{position}: key name: missing or empty")]
    NoName { position: usize },
    #[error("alert rule {rule:?}: key name: another rule has the same name")]
    DuplicateName { rule: String },
    #[error(
        "alert rule {rule:?}: key metric: missing (write measurement.field, like disk.used_percent)"
    )]
    NoMetric { rule: String },
    #[error(
        "alert rule {rule:?}: key metric: {metric:?} is not measurement.field, like disk.used_percent"
    )]
    MetricForm { rule: String, metric: String },
    #[error(
        "alert rule {rule:?}: key metric: no measurement {measurement:?} (measurements: {known})"
    )]
    UnknownMeasurement {
        rule: String,
        measurement: String,
        known: String,
    },
    #[error(
        "alert rule {rule:?}: key metric: no field {field:?} in measurement {measurement} (fields: {known})"
    )]
    UnknownField {
        rule: String,
        measurement: String,
        field: String,
        known: String,
    },
    #[error(
        "alert rule {rule:?}: key metric: {metric} is written by the liveness watcher; write metric = \"node_status\" for a node-down rule"
    )]
    NodeStatusField { rule: String, metric: String },
    #[error("alert rule {rule:?}: key metric: {metric} is text, not a number")]
    NotNumeric { rule: String, metric: String },
    #[error("alert rule {rule:?}: key above: a rule needs above or below")]
    NoComparison { rule: String },
    #[error("alert rule {rule:?}: key below: a rule has above or below, not both")]
    BothComparisons { rule: String },
    #[error("alert rule {rule:?}: key {key}: {value} is not a finite number")]
    NotFinite {
        rule: String,
        key: &'static str,
        value: f64,
    },
    #[error("alert rule {rule:?}: key {key}: {text:?} is not a duration like 2m ({why})")]
    BadDuration {
        rule: String,
        key: &'static str,
        text: String,
        why: String,
    },
    #[error("alert rule {rule:?}: key repeat: must be longer than 0s")]
    ZeroRepeat { rule: String },
    #[error(
        "alert rule {rule:?}: key {key}: a node_status rule fires when the liveness watcher records the node down, and takes no {key}"
    )]
    NodeStatusKey { rule: String, key: &'static str },
    #[error("alert rule {rule:?}: key node: {why}")]
    BadNode { rule: String, why: String },
    #[error("alert rule {rule:?}: key notify: no channel {channel:?} (channels: {known})")]
    UnknownChannel {
        rule: String,
        channel: String,
        known: String,
    },
    #[error(
        "alert rule {rule:?}: key enabled: no default rule of that name to turn off (defaults: {known})"
    )]
    NoSuchDefault { rule: String, known: String },
}

impl Rule {
    /// Checks one configured rule. A rule with `enabled = false` is checked too (it must be
    /// correct to be turned on again); [`load`] then leaves it out.
    pub fn from_config(config: &RuleConfig) -> Result<Self, RuleError> {
        let rule = || config.name.clone();
        let metric = config
            .metric
            .as_deref()
            .map(str::trim)
            .ok_or_else(|| RuleError::NoMetric { rule: rule() })?;
        let condition = if metric == NODE_STATUS {
            for (key, set) in [
                ("above", config.above.is_some()),
                ("below", config.below.is_some()),
                ("for", config.for_.is_some()),
                ("repeat", config.repeat.is_some()),
            ] {
                if set {
                    return Err(RuleError::NodeStatusKey { rule: rule(), key });
                }
            }
            Condition::NodeDown
        } else {
            let metric = resolve_metric(&config.name, metric)?;
            let (comparison, key, threshold) = match (config.above, config.below) {
                (Some(_), Some(_)) => return Err(RuleError::BothComparisons { rule: rule() }),
                (None, None) => return Err(RuleError::NoComparison { rule: rule() }),
                (Some(t), None) => (Comparison::Above, "above", t),
                (None, Some(t)) => (Comparison::Below, "below", t),
            };
            if !threshold.is_finite() {
                return Err(RuleError::NotFinite {
                    rule: rule(),
                    key,
                    value: threshold,
                });
            }
            Condition::Threshold {
                metric,
                comparison,
                threshold,
            }
        };
        let hold = match &config.for_ {
            Some(text) => parse_duration(&config.name, "for", text)?,
            None => Duration::ZERO,
        };
        let repeat = match &config.repeat {
            Some(text) => {
                let every = parse_duration(&config.name, "repeat", text)?;
                if every.is_zero() {
                    return Err(RuleError::ZeroRepeat { rule: rule() });
                }
                Some(every)
            }
            None => None,
        };
        if let Some(node) = &config.node {
            pivitals_common::validate::node_name(node).map_err(|e| RuleError::BadNode {
                rule: rule(),
                why: e.to_string(),
            })?;
        }
        Ok(Self {
            name: config.name.as_str().into(),
            condition,
            hold,
            repeat,
            notify: config.notify.clone().into(),
            scope: Scope {
                node: config.node.clone(),
                labels: config.labels.clone(),
            },
        })
    }
}

fn resolve_metric(rule: &str, text: &str) -> Result<Metric, RuleError> {
    let rule = rule.to_owned();
    let Some((measurement, field)) = text.split_once('.') else {
        return Err(RuleError::MetricForm {
            rule,
            metric: text.to_owned(),
        });
    };
    let Some(schema) = SCHEMA
        .iter()
        .find(|m| m.name == measurement && m.name != ALERT && m.name != ACTION)
    else {
        return Err(RuleError::UnknownMeasurement {
            rule,
            measurement: measurement.to_owned(),
            known: SCHEMA
                .iter()
                .map(|m| m.name)
                .filter(|name| *name != NODE_STATUS && *name != ALERT && *name != ACTION)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    let Some((_, ty)) = schema.fields.iter().find(|(name, _)| *name == field) else {
        return Err(RuleError::UnknownField {
            rule,
            measurement: measurement.to_owned(),
            field: field.to_owned(),
            known: schema
                .fields
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(", "),
        });
    };
    if measurement == NODE_STATUS {
        return Err(RuleError::NodeStatusField {
            rule,
            metric: text.to_owned(),
        });
    }
    if *ty == FieldType::String {
        return Err(RuleError::NotNumeric {
            rule,
            metric: text.to_owned(),
        });
    }
    Metric::parse(text).ok_or(RuleError::NotNumeric {
        rule,
        metric: text.to_owned(),
    })
}

fn parse_duration(rule: &str, key: &'static str, text: &str) -> Result<Duration, RuleError> {
    humantime::parse_duration(text.trim()).map_err(|e| RuleError::BadDuration {
        rule: rule.to_owned(),
        key,
        text: text.to_owned(),
        why: e.to_string(),
    })
}

/// The rules the engine evaluates: checked, enabled, with unique names. Only [`load`] and
/// [`Rules::new`] make one.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Takes checked rules; refuses two with the same name.
    pub fn new(rules: Vec<Rule>) -> Result<Self, RuleError> {
        let mut seen = BTreeSet::new();
        for rule in &rules {
            if !seen.insert(&*rule.name) {
                return Err(RuleError::DuplicateName {
                    rule: rule.name.to_string(),
                });
            }
        }
        Ok(Self(rules))
    }

    pub fn as_slice(&self) -> &[Rule] {
        &self.0
    }

    /// Checks that every rule notifies only channels that exist; the channels are named by
    /// whoever sends the messages, which the rules know nothing of.
    pub fn check_channels(&self, channels: &[&str]) -> Result<(), RuleError> {
        for rule in &self.0 {
            if let Some(channel) = rule.notify.iter().find(|c| !channels.contains(&c.as_str())) {
                return Err(RuleError::UnknownChannel {
                    rule: rule.name.to_string(),
                    channel: channel.clone(),
                    known: channels.join(", "),
                });
            }
        }
        Ok(())
    }
}

/// The defaults' names, as configured rules refer to them.
pub const DEFAULT_NAMES: [&str; 5] = [
    "node down",
    "disk full",
    "hot",
    "under-voltage",
    "throttled",
];

/// The five default rules, as if written in the TOML file.
pub fn default_rules() -> Vec<RuleConfig> {
    let threshold = |name: &str, metric: &str, above: f64, hold: &str| RuleConfig {
        name: name.into(),
        metric: Some(metric.into()),
        above: Some(above),
        for_: Some(hold.into()),
        ..RuleConfig::default()
    };
    vec![
        RuleConfig {
            name: DEFAULT_NAMES[0].into(),
            metric: Some(NODE_STATUS.into()),
            ..RuleConfig::default()
        },
        threshold(DEFAULT_NAMES[1], "disk.used_percent", 90.0, "5m"),
        threshold(DEFAULT_NAMES[2], "temperature.celsius", 80.0, "2m"),
        threshold(DEFAULT_NAMES[3], "power.under_voltage_events", 0.0, "0s"),
        threshold(DEFAULT_NAMES[4], "system.throttled", 0.0, "0s"),
    ]
}

/// The rules to evaluate: the defaults (when `defaults` is on) merged with the configured
/// ones. A configured rule with a default's name replaces that default; one with
/// `enabled = false` is left out, and with no `metric` it must name a default, which it turns
/// off. Every configured rule is checked; names must be unique.
pub fn load(defaults: bool, configured: &[RuleConfig]) -> Result<Rules, RuleError> {
    let mut merged: Vec<RuleConfig> = if defaults {
        default_rules()
    } else {
        Vec::new()
    };
    let mut names = BTreeSet::new();
    for (position, config) in configured.iter().enumerate() {
        if config.name.trim().is_empty() {
            return Err(RuleError::NoName {
                position: position + 1,
            });
        }
        if !names.insert(config.name.as_str()) {
            return Err(RuleError::DuplicateName {
                rule: config.name.clone(),
            });
        }
        let enabled = config.enabled != Some(false);
        let is_default = DEFAULT_NAMES.contains(&config.name.as_str());
        if !enabled && config.metric.is_none() {
            if !is_default {
                return Err(RuleError::NoSuchDefault {
                    rule: config.name.clone(),
                    known: DEFAULT_NAMES.join(", "),
                });
            }
        } else {
            Rule::from_config(config)?;
        }
        merged.retain(|d| d.name != config.name);
        if enabled {
            merged.push(config.clone());
        }
    }
    let rules = merged
        .iter()
        .map(Rule::from_config)
        .collect::<Result<Vec<_>, _>>()?;
    Rules::new(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            metric: Some("temperature.celsius".into()),
            above: Some(80.0),
            ..RuleConfig::default()
        }
    }

    fn error(config: RuleConfig) -> String {
        Rule::from_config(&config).unwrap_err().to_string()
    }

    #[test]
    fn a_rule_parses_from_toml_and_refuses_unknown_keys() {
        #[derive(Debug, Deserialize)]
        struct File {
            alert: Alert,
        }
        #[derive(Debug, Deserialize)]
        struct Alert {
            rules: Vec<RuleConfig>,
        }
        let parse = |text: &str| {
            config::Config::builder()
                .add_source(config::File::from_str(text, config::FileFormat::Toml))
                .build()
                .and_then(|c| c.try_deserialize::<File>())
        };
        let file: File = parse(
            r#"
            [[alert.rules]]
            name = "hot"
            metric = "temperature.celsius"
            above = 75
            for = "2m"
            repeat = "1h"
            notify = ["phone"]
            labels = { stack = "2" }

            [[alert.rules]]
            name = "disk full"
            enabled = false
            "#,
        )
        .unwrap();
        let hot = Rule::from_config(&file.alert.rules[0]).unwrap();
        assert_eq!(&*hot.name, "hot");
        assert_eq!(
            hot.condition,
            Condition::Threshold {
                metric: Metric::parse("temperature.celsius").unwrap(),
                comparison: Comparison::Above,
                threshold: 75.0,
            }
        );
        assert_eq!(hot.hold, Duration::from_secs(120));
        assert_eq!(hot.repeat, Some(Duration::from_secs(3600)));
        assert_eq!(&*hot.notify, ["phone".to_owned()]);
        assert!(
            hot.scope
                .matches("pi-01", &[("stack".into(), "2".into())].into())
        );
        assert_eq!(file.alert.rules[1].enabled, Some(false));

        let typo = parse("[[alert.rules]]\nname = \"x\"\nabove_ = 1\n");
        assert!(typo.unwrap_err().to_string().contains("above_"));
    }

    #[test]
    fn every_mistake_is_one_line_naming_the_rule_and_the_key() {
        let cases = [
            (
                RuleConfig {
                    metric: Some("temperature.celsus".into()),
                    ..rule("hot")
                },
                r#"alert rule "hot": key metric: no field "celsus" in measurement temperature (fields: celsius, celsius_min, celsius_max)"#,
            ),
            (
                RuleConfig {
                    metric: Some("temp.celsius".into()),
                    ..rule("hot")
                },
                r#"alert rule "hot": key metric: no measurement "temp" (measurements: cpu, mem, swap, disk, diskio, net, temperature, system, power, storage_health)"#,
            ),
            (
                RuleConfig {
                    metric: Some("celsius".into()),
                    ..rule("hot")
                },
                r#"alert rule "hot": key metric: "celsius" is not measurement.field, like disk.used_percent"#,
            ),
            (
                RuleConfig {
                    metric: None,
                    ..rule("hot")
                },
                r#"alert rule "hot": key metric: missing (write measurement.field, like disk.used_percent)"#,
            ),
            (
                RuleConfig {
                    metric: Some("node_status.status".into()),
                    ..rule("s")
                },
                r#"alert rule "s": key metric: node_status.status is written by the liveness watcher; write metric = "node_status" for a node-down rule"#,
            ),
            (
                RuleConfig {
                    below: Some(10.0),
                    ..rule("hot")
                },
                r#"alert rule "hot": key below: a rule has above or below, not both"#,
            ),
            (
                RuleConfig {
                    above: None,
                    ..rule("hot")
                },
                r#"alert rule "hot": key above: a rule needs above or below"#,
            ),
            (
                RuleConfig {
                    above: Some(f64::NAN),
                    ..rule("hot")
                },
                r#"alert rule "hot": key above: NaN is not a finite number"#,
            ),
            (
                RuleConfig {
                    for_: Some("2 minutes-ish".into()),
                    ..rule("hot")
                },
                r#"alert rule "hot": key for: "2 minutes-ish" is not a duration like 2m (invalid character at 9)"#,
            ),
            (
                RuleConfig {
                    repeat: Some("often".into()),
                    ..rule("hot")
                },
                r#"alert rule "hot": key repeat: "often" is not a duration like 2m (expected number at 0)"#,
            ),
            (
                RuleConfig {
                    repeat: Some("0s".into()),
                    ..rule("hot")
                },
                r#"alert rule "hot": key repeat: must be longer than 0s"#,
            ),
            (
                RuleConfig {
                    metric: Some("node_status".into()),
                    above: None,
                    for_: Some("1m".into()),
                    ..rule("down")
                },
                r#"alert rule "down": key for: a node_status rule fires when the liveness watcher records the node down, and takes no for"#,
            ),
            (
                RuleConfig {
                    metric: Some("node_status".into()),
                    ..rule("down")
                },
                r#"alert rule "down": key above: a node_status rule fires when the liveness watcher records the node down, and takes no above"#,
            ),
        ];
        for (config, expected) in cases {
            assert_eq!(error(config), expected);
        }
        let bad_node = error(RuleConfig {
            node: Some("pi 07".into()),
            ..rule("hot")
        });
        assert!(
            bad_node.starts_with(r#"alert rule "hot": key node: "#),
            "{bad_node}"
        );
        for text in [
            load(false, &[rule("a"), rule("a")])
                .unwrap_err()
                .to_string(),
            load(false, &[rule("")]).unwrap_err().to_string(),
            load(
                false,
                &[RuleConfig {
                    name: "disk ful".into(),
                    enabled: Some(false),
                    ..RuleConfig::default()
                }],
            )
            .unwrap_err()
            .to_string(),
            load(false, &[rule("x")])
                .unwrap()
                .check_channels(&["mail"])
                .map(|()| String::new())
                .unwrap_or_else(|e| e.to_string()),
            load(
                false,
                &[RuleConfig {
                    notify: vec!["phone".into()],
                    ..rule("x")
                }],
            )
            .unwrap()
            .check_channels(&["mail", "chat"])
            .unwrap_err()
            .to_string(),
        ] {
            assert!(!text.contains('\n'), "{text}");
            assert!(text.is_empty() || text.starts_with("alert rule "), "{text}");
        }
        assert_eq!(
            load(false, &[rule("a"), rule("a")])
                .unwrap_err()
                .to_string(),
            r#"alert rule "a": key name: another rule has the same name"#
        );
        assert_eq!(
            load(false, &[rule("a"), rule(" ")])
                .unwrap_err()
                .to_string(),
            "alert rule #2: key name: missing or empty"
        );
        assert_eq!(
            load(
                true,
                &[RuleConfig {
                    name: "disk ful".into(),
                    enabled: Some(false),
                    ..RuleConfig::default()
                }]
            )
            .unwrap_err()
            .to_string(),
            r#"alert rule "disk ful": key enabled: no default rule of that name to turn off (defaults: node down, disk full, hot, under-voltage, throttled)"#
        );
        assert_eq!(
            load(
                false,
                &[RuleConfig {
                    notify: vec!["mail".into(), "phone".into()],
                    ..rule("x")
                }]
            )
            .unwrap()
            .check_channels(&["mail", "chat"])
            .unwrap_err()
            .to_string(),
            r#"alert rule "x": key notify: no channel "phone" (channels: mail, chat)"#
        );
    }

    #[test]
    fn the_defaults_suit_small_boards() {
        let rules = load(true, &[]).unwrap();
        let summary: Vec<String> = rules
            .as_slice()
            .iter()
            .map(|r| match r.condition {
                Condition::NodeDown => format!("{}: node down", r.name),
                Condition::Threshold {
                    metric,
                    comparison,
                    threshold,
                } => format!(
                    "{}: {metric} {} {threshold} for {}",
                    r.name,
                    comparison.as_str(),
                    humantime::format_duration(r.hold)
                ),
            })
            .collect();
        assert_eq!(
            summary,
            [
                "node down: node down",
                "disk full: disk.used_percent above 90 for 5m",
                "hot: temperature.celsius above 80 for 2m",
                "under-voltage: power.under_voltage_events above 0 for 0s",
                "throttled: system.throttled above 0 for 0s",
            ]
        );
        for rule in rules.as_slice() {
            assert_eq!(rule.scope, Scope::default(), "all nodes");
            assert!(rule.notify.is_empty(), "every channel");
            assert_eq!(rule.repeat, None);
        }
        assert!(load(false, &[]).unwrap().as_slice().is_empty());
    }

    #[test]
    fn a_default_is_replaced_or_turned_off_by_name() {
        let rules = load(
            true,
            &[
                RuleConfig {
                    name: "hot".into(),
                    above: Some(70.0),
                    ..rule("hot")
                },
                RuleConfig {
                    name: "throttled".into(),
                    enabled: Some(false),
                    ..RuleConfig::default()
                },
                rule("mine"),
                RuleConfig {
                    enabled: Some(false),
                    ..rule("mine off")
                },
            ],
        )
        .unwrap();
        let names: Vec<&str> = rules.as_slice().iter().map(|r| &*r.name).collect();
        assert_eq!(
            names,
            ["node down", "disk full", "under-voltage", "hot", "mine"]
        );
        let hot = &rules.as_slice()[3];
        assert!(matches!(
            hot.condition,
            Condition::Threshold { threshold, .. } if threshold == 70.0
        ));
        assert_eq!(
            hot.hold,
            Duration::ZERO,
            "a replacement is taken as written"
        );
        let bad_off = RuleConfig {
            enabled: Some(false),
            metric: Some("cpu.nope".into()),
            ..rule("off")
        };
        assert!(
            load(true, &[bad_off]).is_err(),
            "disabled rules are checked"
        );
    }

    #[test]
    fn scope_by_node_and_labels() {
        let labels: Labels = [("stack".into(), "2".into()), ("role".into(), "db".into())].into();
        let all = Scope::default();
        assert!(all.matches("pi-01", &Labels::new()));
        let one = Scope {
            node: Some("pi-01".into()),
            labels: Labels::new(),
        };
        assert!(one.matches("pi-01", &labels));
        assert!(!one.matches("pi-02", &labels));
        let stack = Scope {
            node: None,
            labels: [("stack".into(), "2".into())].into(),
        };
        assert!(stack.matches("pi-02", &labels));
        assert!(!stack.matches("pi-02", &[("stack".into(), "3".into())].into()));
        assert!(!stack.matches("pi-02", &Labels::new()));
    }

    #[test]
    fn metrics_resolve_to_schema_indices() {
        let m = Metric::parse("disk.used_percent").unwrap();
        assert_eq!(SCHEMA[m.measurement_index()].name, "disk");
        assert_eq!(
            SCHEMA[m.measurement_index()].fields[m.field_index()].0,
            "used_percent"
        );
        assert_eq!(m.to_string(), "disk.used_percent");
        assert_eq!(Metric::parse("node_status.status"), None);
        assert_eq!(Metric::parse("disk"), None);
        assert!(Comparison::Below.holds(9.0, 10.0));
        assert!(!Comparison::Below.holds(10.0, 10.0));
        assert!(!Comparison::Above.holds(10.0, 10.0));
    }
}
