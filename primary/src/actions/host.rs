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
//! A run has a process group of its own and stdin from `/dev/null`; stdout and stderr are read
//! together as they come, the first
//! [`MAX_ACTION_OUTPUT`] bytes kept and the rest
//! read and discarded (`truncated`). Past its `timeout` the whole group is killed with `SIGKILL`.
//! The same rules as the agent's runner (`agent/src/actions/command.rs`); a copy, since the
//! primary does not depend on the agent and `common` does no I/O.

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pivitals_common::actions::{ActionResult, ActionState, MAX_ACTION_OUTPUT};
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

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
    let started = Instant::now();
    let output = Mutex::new(Output::default());
    let spawned = Command::new(&run.argv[0])
        .args(&run.argv[1..])
        .env("PIVITALS_STACK", &run.stack)
        .env("PIVITALS_NODES", run.nodes.join(" "))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let (state, exit_code, message) = match spawned {
        Err(e) => (
            ActionState::Failed,
            None,
            Some(format!("{:?} could not start: {e}", run.argv[0])),
        ),
        Ok(mut child) => {
            // The group's id is the leader's pid; kept now, since `id()` is None once reaped.
            let pgid = child.id().and_then(|pid| i32::try_from(pid).ok());
            let stdout = child.stdout.take();
            let stderr = child.stderr.take();
            let finished = tokio::time::timeout(run.timeout, async {
                let (status, (), ()) =
                    tokio::join!(child.wait(), drain(stdout, &output), drain(stderr, &output));
                status
            })
            .await;
            match finished {
                Ok(Ok(status)) if status.success() => (ActionState::Done, Some(0), None),
                Ok(Ok(status)) => (ActionState::Failed, status.code(), Some(describe(status))),
                Ok(Err(e)) => (
                    ActionState::Failed,
                    None,
                    Some(format!("waiting for it failed: {e}")),
                ),
                Err(_elapsed) => {
                    if let Some(pgid) = pgid {
                        kill_group(pgid);
                    }
                    // Reaps the leader; SIGKILL cannot be ignored, so this is quick.
                    let _ = child.wait().await;
                    (
                        ActionState::TimedOut,
                        None,
                        Some(format!(
                            "killed after {}",
                            humantime::format_duration(run.timeout)
                        )),
                    )
                }
            }
        }
    };
    let output = output.into_inner().unwrap_or_else(PoisonError::into_inner);
    ActionResult {
        id: id.to_owned(),
        state,
        exit_code,
        output: output.text(),
        truncated: output.truncated,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        message,
    }
}

/// What a command wrote, stdout and stderr together in the order they were read.
#[derive(Debug, Default)]
struct Output {
    bytes: Vec<u8>,
    /// Whether more than [`MAX_ACTION_OUTPUT`] bytes came and the rest was discarded.
    truncated: bool,
}

impl Output {
    fn push(&mut self, chunk: &[u8]) {
        let room = MAX_ACTION_OUTPUT - self.bytes.len();
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The output as text, invalid UTF-8 replaced, at most [`MAX_ACTION_OUTPUT`] bytes.
    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        let mut end = text.len().min(MAX_ACTION_OUTPUT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text
    }
}

/// Reads `pipe` to its end into `output`; a read error ends it like the end of the pipe.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, output: &Mutex<Output>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => output
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&chunk[..n]),
        }
    }
}

/// Sends `SIGKILL` to every process of the group `pgid`. The id cannot have been reused while
/// any process of the group lives; once all are gone the call fails with `ESRCH`, ignored.
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let _ = unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

/// How an exit status reads in a message: `exited with 3`, `killed by signal 9`.
fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
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
        assert!(missing.message.unwrap().contains("could not start"));
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

    #[tokio::test]
    async fn output_past_the_limit_is_cut_and_marked() {
        let result = run(
            "d",
            &sh(
                "head -c 100000 /dev/zero | tr '\\0' x",
                Duration::from_secs(10),
            ),
        )
        .await;
        assert_eq!(result.state, ActionState::Done);
        assert!(result.truncated);
        assert_eq!(result.output.len(), MAX_ACTION_OUTPUT);
    }
}
