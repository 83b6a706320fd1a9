//! The actions' settings (`PIVITALS_ACTIONS__*`, and `[actions.host.NAME]` in the file).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pivitals_common::actions::is_valid_action_name;
use serde::{Deserialize, Deserializer};

use crate::serde_duration::duration;

/// A host action's timeout when its table names none.
pub const DEFAULT_HOST_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest timeout of a host action.
pub const MAX_HOST_TIMEOUT: Duration = Duration::from_secs(60 * 60);

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// How long an action waits to be taken by its node, and then for the node's result,
    /// before it is `expired` (`PIVITALS_ACTIONS__EXPIRE_AFTER`).
    #[serde(deserialize_with = "duration")]
    pub expire_after: Duration,
    /// Actions that run on the primary's own host, once per stack (`[actions.host.NAME]`, in
    /// the settings file only); see [`crate::actions::host`].
    pub host: BTreeMap<String, HostAction>,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            expire_after: Duration::from_secs(600),
            host: BTreeMap::new(),
        }
    }
}

impl ActionsConfig {
    /// The first problem of the settings, as a line naming the key.
    pub fn check(&self) -> Result<(), String> {
        if self.expire_after.is_zero() {
            return Err("PIVITALS_ACTIONS__EXPIRE_AFTER must be longer than 0s".into());
        }
        for (name, action) in &self.host {
            let key = format!("actions.host.{name}");
            if !is_valid_action_name(name) {
                return Err(format!(
                    "{key}: an action's name must match ^[a-z][a-z0-9_-]{{0,31}}$"
                ));
            }
            if action
                .command
                .first()
                .is_none_or(|program| program.is_empty())
            {
                return Err(format!(
                    "{key}.command must name a program: [\"prog\", \"arg\"]"
                ));
            }
            if action.timeout.is_zero() || action.timeout > MAX_HOST_TIMEOUT {
                return Err(format!("{key}.timeout must be more than 0s and at most 1h"));
            }
            if let Stacks::These(stacks) = &action.stacks
                && (stacks.is_empty() || stacks.iter().any(String::is_empty))
            {
                return Err(format!(
                    "{key}.stacks must be \"all\" or a list of stack names, not empty"
                ));
            }
        }
        Ok(())
    }
}

/// An `[actions.host.NAME]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostAction {
    /// Program and arguments; run without a shell.
    pub command: Vec<String>,
    #[serde(default = "default_host_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// The stacks it may run for.
    pub stacks: Stacks,
}

fn default_host_timeout() -> Duration {
    DEFAULT_HOST_TIMEOUT
}

/// The stacks a host action is for: `"all"` or `["1", "2"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stacks {
    /// Every stack a registered node is labelled with.
    All,
    These(BTreeSet<String>),
}

impl Stacks {
    pub fn allows(&self, stack: &str) -> bool {
        match self {
            Self::All => true,
            Self::These(stacks) => stacks.contains(stack),
        }
    }
}

impl<'de> Deserialize<'de> for Stacks {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Word(String),
            List(Vec<String>),
        }
        match Raw::deserialize(de)? {
            Raw::Word(word) if word == "all" => Ok(Self::All),
            Raw::Word(word) => Err(serde::de::Error::custom(format!(
                "stacks {word:?}: write \"all\" or a list such as [\"1\", \"2\"]"
            ))),
            Raw::List(list) => Ok(Self::These(list.into_iter().collect())),
        }
    }
}
