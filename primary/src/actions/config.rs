//! The actions' settings (`PIVITALS_ACTIONS__*`).

use std::time::Duration;

use serde::Deserialize;

use crate::serde_duration::duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ActionsConfig {
    /// How long an action waits to be taken by its node, and then for the node's result,
    /// before it is `expired` (`PIVITALS_ACTIONS__EXPIRE_AFTER`).
    #[serde(deserialize_with = "duration")]
    pub expire_after: Duration,
}

impl Default for ActionsConfig {
    fn default() -> Self {
        Self {
            expire_after: Duration::from_secs(600),
        }
    }
}
