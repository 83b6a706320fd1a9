//! Actions on the primary's own host, once per stack: for what no agent can do for its own
//! board, such as a relay that cuts a hung stack's power.
//!
//! The primary's settings name them, as an agent's name its own actions:
//!
//! ```toml
//! [actions.host.relay-off]
//! command = ["/usr/local/bin/relay", "off"]   # argv, never through a shell
//! timeout = "10s"                             # default 30s, at most 1h
//! stacks = ["1", "2"]                         # or "all"
//! ```
//!
//! `POST /api/v1/actions {"action": "relay-off", "primary": true, "labels": {"stack": "2"}}`
//! (or `"all": true`: every stack the action is for) runs the command once per stack, with the
//! environment variables `PIVITALS_STACK` (`2`) and `PIVITALS_NODES` (the names of the nodes
//! labelled `stack=2`, sorted, space separated) added to the primary's own. Each run is the
//! target `stack:2` (no node name has a `:`), `sent` when it starts and then `done` (exit 0),
//! `failed` (another exit, a signal, or not started) or `timed_out`, stored like any target
//! (an `action` point tagged `node=stack:2`, `stack=2`).
//!
//! A run is the agent's runner, [`pivitals_exec::run_action`]: a process group of its own,
//! stdin from `/dev/null`, stdout and stderr read together as they come, the first
//! [`MAX_ACTION_OUTPUT`](pivitals_common::actions::MAX_ACTION_OUTPUT) bytes kept and the rest
//! read and discarded (`truncated`); past its `timeout` the whole group is killed with `SIGKILL`.

use std::collections::BTreeSet;
use std::time::Duration;

use pivitals_common::actions::ActionResult;
use thiserror::Error;

use super::config::{ActionsConfig, Stacks};
use super::target::Selector;
use crate::nodes::table::Nodes;

/// The label whose value names a node's stack.
pub const STACK_LABEL: &str = "stack";

/// The target of a host action for `stack`: `stack:NAME`.
pub fn target_name(stack: &str) -> String {
    format!("stack:{stack}")
}

/// What to run for one stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRun {
    /// Program and arguments, not empty.
    pub argv: Vec<String>,
    pub timeout: Duration,
    /// `PIVITALS_STACK`.
    pub stack: String,
    /// `PIVITALS_NODES`, in this order.
    pub nodes: Vec<String>,
}

/// Why a host action cannot run as asked; each answers 422.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostError {
    #[error("no host action {0:?}: the primary's settings have no [actions.host.{0}]")]
    NotConfigured(String),
    #[error("host action {action:?} is not configured for stack {stack:?}")]
    NotForStack { action: String, stack: String },
    #[error(
        "a host action is chosen with \"labels\": {{\"stack\": NAME}} (that one label) or \"all\": true"
    )]
    Selector,
    #[error("host action {0:?}: no registered node has a stack label")]
    NoStack(String),
}

/// The runs of host action `name` that `selector` asks for, one per stack, sorted by stack:
/// `labels` naming exactly the `stack` label, or all (every stack the action is for; with
/// `stacks = "all"`, every stack a registered node has).
pub fn plan(
    name: &str,
    actions: &ActionsConfig,
    selector: &Selector,
    nodes: &Nodes,
) -> Result<Vec<HostRun>, HostError> {
    let action = actions
        .host
        .get(name)
        .ok_or_else(|| HostError::NotConfigured(name.to_owned()))?;
    let known: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.record.labels.get(STACK_LABEL).cloned())
        .collect();
    let stacks: BTreeSet<String> = match selector {
        Selector::Labels(labels) if labels.len() == 1 => {
            let stack = labels.get(STACK_LABEL).ok_or(HostError::Selector)?;
            if !action.stacks.allows(stack) {
                return Err(HostError::NotForStack {
                    action: name.to_owned(),
                    stack: stack.clone(),
                });
            }
            [stack.clone()].into()
        }
        Selector::All => match &action.stacks {
            Stacks::All if known.is_empty() => return Err(HostError::NoStack(name.to_owned())),
            Stacks::All => known,
            Stacks::These(stacks) => stacks.clone(),
        },
        _ => return Err(HostError::Selector),
    };
    Ok(stacks
        .into_iter()
        .map(|stack| HostRun {
            argv: action.command.clone(),
            timeout: action.timeout,
            nodes: nodes
                .iter()
                .filter(|n| n.record.labels.get(STACK_LABEL) == Some(&stack))
                .map(|n| n.record.name.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect(),
            stack,
        })
        .collect())
}

/// Runs `run` to its end (or its timeout) and answers as a node would, `id` being the action's.
pub async fn run(id: &str, run: &HostRun) -> ActionResult {
    let nodes = run.nodes.join(" ");
    let env = [
        ("PIVITALS_STACK", run.stack.as_str()),
        ("PIVITALS_NODES", nodes.as_str()),
    ];
    ActionResult {
        id: id.to_owned(),
        ..pivitals_exec::run_action(&run.argv, &env, run.timeout).await
    }
}

#[cfg(test)]
mod tests {
    use pivitals_common::actions::ActionState;

    use super::*;

    fn sh(script: &str, timeout: Duration) -> HostRun {
        HostRun {
            argv: vec!["sh".into(), "-c".into(), script.into()],
            timeout,
            stack: "2".into(),
            nodes: vec!["pi-05".into(), "pi-06".into()],
        }
    }

    #[tokio::test]
    async fn the_stack_and_its_nodes_reach_the_command() {
        let result = run(
            "a1",
            &sh(
                "echo $PIVITALS_STACK $PIVITALS_NODES",
                Duration::from_secs(10),
            ),
        )
        .await;
        assert_eq!(result.state, ActionState::Done, "{result:?}");
        assert_eq!(result.output, "2 pi-05 pi-06\n");
        assert_eq!((result.id.as_str(), result.exit_code), ("a1", Some(0)));
    }

    #[tokio::test]
    async fn exit_codes_missing_programs_and_timeouts() {
        let failed = run("a", &sh("echo no >&2; exit 3", Duration::from_secs(10))).await;
        assert_eq!(
            (failed.state, failed.exit_code, failed.output.as_str()),
            (ActionState::Failed, Some(3), "no\n")
        );
        let mut missing = sh("", Duration::from_secs(10));
        missing.argv = vec!["/nonexistent/relay".into()];
        let missing = run("b", &missing).await;
        assert_eq!(missing.state, ActionState::Failed);
        assert!(missing.message.unwrap().starts_with("cannot start"));
        // The background sleep holds the pipes: only killing the whole group ends the run.
        let slow = run(
            "c",
            &sh("sleep 30 & echo started; wait", Duration::from_millis(300)),
        )
        .await;
        assert_eq!(slow.state, ActionState::TimedOut, "{slow:?}");
        assert_eq!(slow.output, "started\n");
        assert!(slow.duration_ms < 10_000, "{slow:?}");
    }
}
