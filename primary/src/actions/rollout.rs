//! Rollouts: "update agents", the built-in `update` action sent to a set of nodes a few at a
//! time, each node awaited until it runs the new binary, the whole stopped at the first node
//! that does not.
//!
//! # Life of a rollout
//!
//! 1. `POST /api/v1/updates` chooses nodes like an action ([`super::target::resolve`]) and
//!    names `max_parallel` (default [`DEFAULT_MAX_PARALLEL`]) and a per-node `timeout` (default
//!    [`DEFAULT_TIMEOUT`]). Each node gets the binary this primary serves for its architecture
//!    ([`arch_of`] maps the node info's `arch`, as `uname -m` prints it, to
//!    [`Arch`]); a node whose architecture is not served refuses the whole request (422), as
//!    does a primary that serves no binaries (409). The rollout gets a random id; every node
//!    starts `pending`.
//! 2. One task per rollout ([`Rollouts::start`]) takes pending nodes in name order, at most
//!    `max_parallel` `updating` at once, and for each ([`update_node`]):
//!    - queues an `update` action whose request names the binary (`agent/ARCH`, relative to
//!      the primary's URL) and its SHA-256 ([`Actions::create_update`]), and waits for the
//!      answer. `done` means the agent already runs that binary: `already_current`. `refused`
//!      (the node does not set `PIVITALS_ALLOW_UPDATE`, or its agent is older than updates):
//!      `refused`. `failed` (download, SHA-256 mismatch, replacement), `timed_out`, `expired`
//!      or no answer: `failed`. `accepted`: the new binary is in place and the agent exits
//!      for systemd to start it; then
//!    - asks the node to verify (`update` with `verify_only`): an agent answers `done` only if
//!      the program that answers was started from a binary with that SHA-256 (it hashes its
//!      own executable once, at start). A `failed` verification (the old process answered
//!      before it exited) or one left unanswered for [`VERIFY_GRACE`] (taken by the old
//!      process as it exited) is asked again after [`VERIFY_EVERY`]. `done`: `updated`, with
//!      the version the agent reports.
//!
//!    The whole of one node, from queueing the update to its verification, must fit in the
//!    timeout; past it the node is `failed` ("did not come back").
//! 3. A node that ends `failed` or `refused` stops the rollout: nodes still `pending` become
//!    `skipped`; nodes already `updating` are awaited. The rollout is over when no node is
//!    pending or updating: `done` if none failed or was refused, `failed` otherwise.
//!
//! The state machine is [`Plan`] (pure, unit-tested); the waiting happens in [`update_node`],
//! which reads the actions every [`POLL_EVERY`].
//!
//! # How much is kept
//!
//! Rollouts live in memory: at most [`MAX_KEPT_ROLLOUTS`], the oldest forgotten first (a
//! forgotten rollout that still runs finishes its updating nodes and starts no other). Their
//! actions are ordinary actions (`by` is `update ID`), kept, expired and stored like any other.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pivitals_common::actions::UpdateRequest;
use serde::Serialize;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::store::{Actions, NewTarget, TargetState, TargetView};
use crate::clock::now_ms;
use crate::install::Arch;

/// Nodes updating at once unless the request says.
pub const DEFAULT_MAX_PARALLEL: usize = 1;
/// The most nodes a rollout may update at once.
pub const MAX_PARALLEL: usize = 64;
/// One node's update, from queueing to verification, unless the request says.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(180);
/// The shortest and longest per-node timeout a request may name.
pub const MIN_TIMEOUT: Duration = Duration::from_secs(1);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
/// Rollouts kept in memory.
pub const MAX_KEPT_ROLLOUTS: usize = 32;
/// How often a node's update action is looked at.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// After a failed verification, the next is asked this much later.
pub const VERIFY_EVERY: Duration = Duration::from_secs(1);
/// A verification taken by the node but unanswered this long is asked again.
pub const VERIFY_GRACE: Duration = Duration::from_secs(10);

/// Where one node stands in a rollout; JSON in lower case (`"already_current"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Pending,
    Updating,
    /// Came back running the new binary.
    Updated,
    /// Was running the served binary already; nothing changed.
    AlreadyCurrent,
    /// Did not update, or did not come back in time; stops the rollout.
    Failed,
    /// Not started: an earlier node failed or refused.
    Skipped,
    /// The node does not allow updates; stops the rollout.
    Refused,
}

impl NodeState {
    fn stops(self) -> bool {
        matches!(self, Self::Failed | Self::Refused)
    }
}

/// The rollout as a whole; JSON in lower case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Running,
    /// Every node updated or already current.
    Done,
    /// A node failed or refused; later ones were skipped.
    Failed,
}

/// How one node's update ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub state: NodeState,
    pub message: Option<String>,
    /// What the agent said it runs (`running 0.1.0+next (sha256 …)`).
    pub running: Option<String>,
}

impl Outcome {
    fn new(state: NodeState, message: impl Into<Option<String>>) -> Self {
        Self {
            state,
            message: message.into(),
            running: None,
        }
    }
}

/// One node of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeUpdate {
    pub node: String,
    pub labels: pivitals_common::Labels,
    pub arch: Arch,
    /// The SHA-256 of the binary it gets.
    pub sha256: String,
    pub state: NodeState,
    pub message: Option<String>,
    pub running: Option<String>,
    pub started_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
}

/// The rollout's state machine: which node starts next, what a finished node does to the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub max_parallel: usize,
    pub nodes: Vec<NodeUpdate>,
}

impl Plan {
    /// Marks pending nodes `updating`, in order, while fewer than `max_parallel` are; their
    /// indexes. None once a node failed or refused.
    pub fn start_next(&mut self, now_ms: i64) -> Vec<usize> {
        if self.nodes.iter().any(|n| n.state.stops()) {
            return Vec::new();
        }
        let mut updating = self
            .nodes
            .iter()
            .filter(|n| n.state == NodeState::Updating)
            .count();
        let mut started = Vec::new();
        for (i, node) in self.nodes.iter_mut().enumerate() {
            if updating >= self.max_parallel {
                break;
            }
            if node.state == NodeState::Pending {
                node.state = NodeState::Updating;
                node.started_at_ms = Some(now_ms);
                updating += 1;
                started.push(i);
            }
        }
        started
    }

    /// Records how node `i` ended; a failure or refusal skips every pending node.
    pub fn finish(&mut self, i: usize, outcome: Outcome, now_ms: i64) {
        let Some(node) = self.nodes.get_mut(i) else {
            return;
        };
        if node.state != NodeState::Updating {
            return;
        }
        node.state = outcome.state;
        node.message = outcome.message;
        node.running = outcome.running;
        node.finished_at_ms = Some(now_ms);
        if outcome.state.stops() {
            let culprit = node.node.clone();
            for other in &mut self.nodes {
                if other.state == NodeState::Pending {
                    other.state = NodeState::Skipped;
                    other.message = Some(format!("not started: {culprit} did not update"));
                    other.finished_at_ms = Some(now_ms);
                }
            }
        }
    }

    pub fn state(&self) -> RolloutState {
        if self
            .nodes
            .iter()
            .any(|n| matches!(n.state, NodeState::Pending | NodeState::Updating))
        {
            RolloutState::Running
        } else if self.nodes.iter().any(|n| n.state.stops()) {
            RolloutState::Failed
        } else {
            RolloutState::Done
        }
    }
}

/// A rollout as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub id: String,
    pub by: String,
    pub created_at_ms: i64,
    pub timeout: Duration,
    pub plan: Plan,
}

/// Every kept rollout; one per primary.
#[derive(Debug, Default)]
pub struct Rollouts {
    kept: Mutex<VecDeque<Rollout>>,
}

/// The `arch` of a node's info (`uname -m`) as the architecture of the binaries served.
pub fn arch_of(machine: &str) -> Option<Arch> {
    match machine {
        "x86_64" | "amd64" => Some(Arch::X86_64),
        "aarch64" | "arm64" => Some(Arch::Aarch64),
        m if m.starts_with("armv7") => Some(Arch::Armv7),
        m if m.starts_with("armv6") => Some(Arch::Armv6),
        _ => None,
    }
}

impl Rollouts {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Rollout>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Keeps a new rollout of `nodes` (all `pending`) and starts its task on the current
    /// runtime; its id. `shared` holds the rollouts and the actions, which `parts` finds in it
    /// (the primary's state, which this module does not know).
    pub fn start<S: Send + Sync + 'static>(
        shared: &Arc<S>,
        parts: Parts<S>,
        by: &str,
        nodes: Vec<NodeUpdate>,
        max_parallel: usize,
        timeout: Duration,
    ) -> String {
        let id = {
            let mut kept = parts(shared).0.lock();
            let id = loop {
                let id = format!("{:016x}", fastrand::u64(..));
                if !kept.iter().any(|r| r.id == id) {
                    break id;
                }
            };
            kept.push_back(Rollout {
                id: id.clone(),
                by: by.to_owned(),
                created_at_ms: now_ms(),
                timeout,
                plan: Plan {
                    max_parallel: max_parallel.max(1),
                    nodes,
                },
            });
            while kept.len() > MAX_KEPT_ROLLOUTS {
                kept.pop_front();
            }
            id
        };
        tokio::spawn(drive(Arc::clone(shared), parts, id.clone()));
        id
    }

    pub fn get(&self, id: &str) -> Option<Rollout> {
        self.lock().iter().find(|r| r.id == id).cloned()
    }

    /// Starts what the plan allows; each started node with its request and timeout.
    fn start_next(&self, id: &str) -> Vec<(usize, NodeUpdate, Duration)> {
        let mut kept = self.lock();
        let Some(rollout) = kept.iter_mut().find(|r| r.id == id) else {
            return Vec::new();
        };
        let timeout = rollout.timeout;
        let started = rollout.plan.start_next(now_ms());
        started
            .into_iter()
            .map(|i| (i, rollout.plan.nodes[i].clone(), timeout))
            .collect()
    }

    fn finish(&self, id: &str, i: usize, outcome: Outcome) {
        if let Some(rollout) = self.lock().iter_mut().find(|r| r.id == id) {
            rollout.plan.finish(i, outcome, now_ms());
        }
    }
}

/// Where [`Rollouts::start`] finds the rollouts and the actions in the state it is given.
pub type Parts<S> = fn(&S) -> (&Rollouts, &Actions);

/// The rollout's task: starts nodes as the plan allows until none is left to start or await.
async fn drive<S: Send + Sync + 'static>(shared: Arc<S>, parts: Parts<S>, id: String) {
    let by = format!("update {id}");
    let mut running = JoinSet::new();
    loop {
        for (i, node, timeout) in parts(&shared).0.start_next(&id) {
            let shared = Arc::clone(&shared);
            let by = by.clone();
            running.spawn(async move {
                let actions = parts(&shared).1;
                (i, update_node(actions, &by, &node, timeout).await)
            });
        }
        match running.join_next().await {
            None => break,
            Some(Ok((i, outcome))) => {
                tracing::info!(rollout = %id, node = i, state = ?outcome.state, "agent update ended");
                parts(&shared).0.finish(&id, i, outcome);
            }
            Some(Err(e)) => tracing::error!(rollout = %id, "an agent update task failed: {e}"),
        }
    }
    let state_now = parts(&shared).0.get(&id).map(|r| r.plan.state());
    tracing::info!(rollout = %id, state = ?state_now, "rollout over");
}

/// Sends `update` to `node`, then verifies it came back with the new binary; see the module.
pub async fn update_node(
    actions: &Actions,
    by: &str,
    node: &NodeUpdate,
    timeout: Duration,
) -> Outcome {
    let deadline = Instant::now() + timeout;
    let target = || {
        vec![NewTarget {
            node: node.node.clone(),
            labels: node.labels.clone(),
        }]
    };
    let request = |verify_only| UpdateRequest {
        url: format!("agent/{}", node.arch),
        sha256: node.sha256.clone(),
        verify_only,
    };
    let took = humantime::format_duration(timeout);
    let id = actions.create_update(by, target(), request(false));
    let Some(answer) = wait_final(actions, &id, &node.node, deadline, None).await else {
        return Outcome::new(
            NodeState::Failed,
            format!("no answer to the update within {took}"),
        );
    };
    let message = answer.message.clone();
    match answer.state {
        TargetState::Done => {
            return Outcome {
                running: Some(answer.output),
                ..Outcome::new(NodeState::AlreadyCurrent, message)
            };
        }
        TargetState::Accepted => {}
        TargetState::Refused => return Outcome::new(NodeState::Refused, message),
        other => {
            return Outcome::new(
                NodeState::Failed,
                message.or_else(|| Some(format!("the update ended {}", other.as_str()))),
            );
        }
    }
    loop {
        if Instant::now() >= deadline {
            return Outcome::new(
                NodeState::Failed,
                format!("did not come back running the new binary within {took}"),
            );
        }
        let id = actions.create_update(by, target(), request(true));
        match wait_final(actions, &id, &node.node, deadline, Some(VERIFY_GRACE)).await {
            Some(view) if view.state == TargetState::Done => {
                return Outcome {
                    running: Some(view.output),
                    ..Outcome::new(NodeState::Updated, None)
                };
            }
            Some(view) if view.state == TargetState::Refused => {
                return Outcome::new(
                    NodeState::Failed,
                    format!(
                        "came back but refuses to verify: {}",
                        view.message.unwrap_or_default()
                    ),
                );
            }
            _ => tokio::time::sleep(VERIFY_EVERY).await,
        }
    }
}

/// Action `id`'s target `node` once final; None at `deadline`, when the action is forgotten,
/// or when it was sent more than `grace` ago without an answer.
async fn wait_final(
    actions: &Actions,
    id: &str,
    node: &str,
    deadline: Instant,
    grace: Option<Duration>,
) -> Option<TargetView> {
    let grace_ms = grace.map(|g| i64::try_from(g.as_millis()).unwrap_or(i64::MAX));
    loop {
        let view = actions
            .get(id)?
            .targets
            .into_iter()
            .find(|t| t.node == node)?;
        if view.state.is_final() {
            return Some(view);
        }
        if let (Some(grace_ms), Some(sent)) = (grace_ms, view.sent_at_ms)
            && now_ms().saturating_sub(sent) > grace_ms
        {
            return None;
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_EVERY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(names: &[&str], max_parallel: usize) -> Plan {
        Plan {
            max_parallel,
            nodes: names
                .iter()
                .map(|n| NodeUpdate {
                    node: (*n).to_owned(),
                    labels: Default::default(),
                    arch: Arch::X86_64,
                    sha256: "ab".repeat(32),
                    state: NodeState::Pending,
                    message: None,
                    running: None,
                    started_at_ms: None,
                    finished_at_ms: None,
                })
                .collect(),
        }
    }

    fn states(plan: &Plan) -> Vec<NodeState> {
        plan.nodes.iter().map(|n| n.state).collect()
    }

    use NodeState::*;

    #[test]
    fn nodes_start_in_order_never_more_than_max_parallel() {
        let mut plan = plan(&["a", "b", "c", "d", "e"], 2);
        assert_eq!(plan.start_next(1), [0, 1]);
        assert_eq!(
            plan.start_next(2),
            Vec::<usize>::new(),
            "two already updating"
        );
        plan.finish(1, Outcome::new(Updated, None), 3);
        assert_eq!(plan.start_next(4), [2]);
        plan.finish(0, Outcome::new(AlreadyCurrent, None), 5);
        plan.finish(2, Outcome::new(Updated, None), 5);
        assert_eq!(plan.start_next(6), [3, 4]);
        assert_eq!(plan.state(), RolloutState::Running);
        plan.finish(3, Outcome::new(Updated, None), 7);
        plan.finish(4, Outcome::new(Updated, None), 7);
        assert_eq!(
            states(&plan),
            [AlreadyCurrent, Updated, Updated, Updated, Updated]
        );
        assert_eq!(plan.state(), RolloutState::Done);
        assert_eq!(plan.nodes[3].started_at_ms, Some(6));
        assert_eq!(plan.nodes[3].finished_at_ms, Some(7));
    }

    #[test]
    fn a_failure_or_refusal_skips_the_rest_and_awaits_the_running() {
        for stop in [Failed, Refused] {
            let mut plan = plan(&["a", "b", "c", "d"], 2);
            plan.start_next(0);
            plan.finish(0, Outcome::new(stop, Some("no".to_owned())), 1);
            assert_eq!(states(&plan), [stop, Updating, Skipped, Skipped]);
            assert_eq!(
                plan.nodes[2].message.as_deref(),
                Some("not started: a did not update")
            );
            assert!(plan.start_next(2).is_empty(), "nothing starts after a stop");
            assert_eq!(plan.state(), RolloutState::Running, "b is still awaited");
            plan.finish(1, Outcome::new(Updated, None), 3);
            assert_eq!(plan.state(), RolloutState::Failed);
        }
    }

    #[test]
    fn a_node_finishes_once_and_only_when_updating() {
        let mut plan = plan(&["a", "b"], 1);
        plan.finish(1, Outcome::new(Updated, None), 1);
        assert_eq!(states(&plan), [Pending, Pending], "b never started");
        plan.start_next(1);
        plan.finish(0, Outcome::new(Updated, None), 2);
        plan.finish(0, Outcome::new(Failed, None), 3);
        assert_eq!(states(&plan), [Updated, Pending]);
        plan.finish(9, Outcome::new(Failed, None), 3);
        assert_eq!(plan.start_next(4), [1]);
    }

    #[test]
    fn an_empty_plan_is_done() {
        assert_eq!(plan(&[], 1).state(), RolloutState::Done);
    }

    #[test]
    fn machines_map_to_the_served_architectures() {
        assert_eq!(arch_of("x86_64"), Some(Arch::X86_64));
        assert_eq!(arch_of("aarch64"), Some(Arch::Aarch64));
        assert_eq!(arch_of("armv7l"), Some(Arch::Armv7));
        assert_eq!(arch_of("armv6l"), Some(Arch::Armv6));
        assert_eq!(arch_of("i686"), None);
        assert_eq!(arch_of(""), None);
    }
}
