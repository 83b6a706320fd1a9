//! The actions in memory: their targets' states, the per-node wake-ups of waiting polls, and
//! lazy expiry (the rules are in the [module doc](super)).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pivitals_common::actions::{ActionRequest, ActionResult, ActionState, MAX_ACTION_OUTPUT};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::Notify;

use crate::clock::now_ms;

/// The most actions one primary keeps; creating one more forgets the oldest.
pub const MAX_KEPT: usize = 100;

/// The longest message of a result that is kept, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// Where one node stands with one action; JSON in lower case (`"timed_out"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Waiting for the node to fetch it.
    Queued,
    /// Handed to the node; no result yet.
    Sent,
    Done,
    Failed,
    Refused,
    Accepted,
    TimedOut,
    /// Not fetched, or not answered, in time.
    Expired,
}

impl TargetState {
    /// Whether nothing changes this state any more.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::Queued | Self::Sent)
    }
}

impl From<ActionState> for TargetState {
    fn from(state: ActionState) -> Self {
        match state {
            ActionState::Done => Self::Done,
            ActionState::Failed => Self::Failed,
            ActionState::Refused => Self::Refused,
            ActionState::Accepted => Self::Accepted,
            ActionState::TimedOut => Self::TimedOut,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ActionError {
    #[error("no action with id {0:?} (unknown, or forgotten)")]
    Unknown(String),
    #[error("action {id:?} is not for node {node:?}")]
    NotForNode { id: String, node: String },
    #[error("action {id:?} is already final on this node: {state:?}")]
    AlreadyFinal { id: String, state: TargetState },
}

/// One node's side of an action, as the admin API shows it (times in ms since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetView {
    pub node: String,
    pub state: TargetState,
    pub queued_at_ms: i64,
    pub sent_at_ms: Option<i64>,
    pub finished_at_ms: Option<i64>,
    pub exit_code: Option<i32>,
    pub output: String,
    pub truncated: bool,
    pub duration_ms: Option<u64>,
    pub message: Option<String>,
}

/// An action with every target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionView {
    pub id: String,
    pub action: String,
    pub created_at_ms: i64,
    pub targets: Vec<TargetView>,
}

/// An action with each target's state only, for lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSummary {
    pub id: String,
    pub action: String,
    pub created_at_ms: i64,
    pub states: BTreeMap<String, TargetState>,
}

#[derive(Debug, Clone)]
struct Target {
    state: TargetState,
    queued_at_ms: i64,
    sent_at_ms: Option<i64>,
    finished_at_ms: Option<i64>,
    result: Option<ActionResult>,
}

impl Target {
    /// When this target expires unless something happens first; None once final.
    fn deadline(&self, expire_after_ms: i64) -> Option<i64> {
        match self.state {
            TargetState::Queued => Some(self.queued_at_ms.saturating_add(expire_after_ms)),
            TargetState::Sent => Some(
                self.sent_at_ms
                    .unwrap_or(self.queued_at_ms)
                    .saturating_add(expire_after_ms),
            ),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Action {
    id: String,
    action: String,
    created_at_ms: i64,
    targets: BTreeMap<String, Target>,
}

/// The wake-up of a node's waiting polls, and how many there are.
struct Waiting {
    notify: Arc<Notify>,
    polls: usize,
}

#[derive(Default)]
struct Inner {
    /// Oldest first.
    kept: VecDeque<Action>,
    waiting: HashMap<String, Waiting>,
    /// No target expires before this (None: none can).
    next_expiry_ms: Option<i64>,
}

/// Every kept action; one per primary, shared by the routes.
pub struct Actions {
    inner: Mutex<Inner>,
    expire_after_ms: i64,
}

impl Actions {
    pub fn new(expire_after: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            expire_after_ms: i64::try_from(expire_after.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// The state with what is due expired. A poisoned lock only means a panic mid-update of
    /// plain data; the maps are still usable.
    fn lock(&self, now: i64) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.next_expiry_ms.is_some_and(|t| now >= t) {
            let mut next: Option<i64> = None;
            for action in &mut inner.kept {
                for target in action.targets.values_mut() {
                    match target.deadline(self.expire_after_ms) {
                        Some(t) if now >= t => {
                            target.state = TargetState::Expired;
                            target.finished_at_ms = Some(now);
                        }
                        Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                        None => {}
                    }
                }
            }
            inner.next_expiry_ms = next;
        }
        inner
    }

    /// Queues `action` for each of `nodes` (already resolved and checked) and wakes their
    /// waiting polls; the new action's id.
    pub fn create(&self, action: &str, nodes: &[String]) -> String {
        let now = now_ms();
        let mut inner = self.lock(now);
        let id = loop {
            let id = format!("{:016x}", fastrand::u64(..));
            if !inner.kept.iter().any(|a| a.id == id) {
                break id;
            }
        };
        let target = Target {
            state: TargetState::Queued,
            queued_at_ms: now,
            sent_at_ms: None,
            finished_at_ms: None,
            result: None,
        };
        inner.kept.push_back(Action {
            id: id.clone(),
            action: action.to_owned(),
            created_at_ms: now,
            targets: nodes.iter().map(|n| (n.clone(), target.clone())).collect(),
        });
        while inner.kept.len() > MAX_KEPT {
            inner.kept.pop_front();
        }
        let deadline = now.saturating_add(self.expire_after_ms);
        inner.next_expiry_ms = Some(inner.next_expiry_ms.map_or(deadline, |t| t.min(deadline)));
        for node in nodes {
            if let Some(waiting) = inner.waiting.get(node) {
                waiting.notify.notify_waiters();
            }
        }
        id
    }

    /// Every action queued for `node`, oldest first, now marked sent.
    pub fn take(&self, node: &str) -> Vec<ActionRequest> {
        let now = now_ms();
        let mut inner = self.lock(now);
        let mut taken = Vec::new();
        for action in &mut inner.kept {
            if let Some(target) = action.targets.get_mut(node)
                && target.state == TargetState::Queued
            {
                target.state = TargetState::Sent;
                target.sent_at_ms = Some(now);
                taken.push(ActionRequest {
                    id: action.id.clone(),
                    action: action.action.clone(),
                });
            }
        }
        // A sent target expires later than it would have queued: the earliest deadline kept
        // stays a lower bound, and the next expiry pass sets it again.
        taken
    }

    /// [`Actions::take`], waiting up to `wait` for something to be queued for `node` when
    /// nothing is; empty when nothing came. Cancel-safe: dropping the future leaves the actions
    /// untouched unless it has returned them.
    pub async fn wait_for(&self, node: &str, wait: Duration) -> Vec<ActionRequest> {
        let deadline = tokio::time::Instant::now() + wait;
        let poll = self.poll(node);
        loop {
            let notified = poll.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a `create` between the look and the wait wakes it.
            notified.as_mut().enable();
            let taken = self.take(node);
            if !taken.is_empty() {
                return taken;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Vec::new();
            }
        }
    }

    /// Joins `node`'s waiting polls (making its wake-up if it is the first).
    fn poll(&self, node: &str) -> Poll<'_> {
        let mut inner = self.lock(now_ms());
        let waiting = inner
            .waiting
            .entry(node.to_owned())
            .or_insert_with(|| Waiting {
                notify: Arc::new(Notify::new()),
                polls: 0,
            });
        waiting.polls += 1;
        Poll {
            actions: self,
            node: node.to_owned(),
            notify: Arc::clone(&waiting.notify),
        }
    }

    /// Records `node`'s result for action `id`.
    pub fn record(
        &self,
        node: &str,
        id: &str,
        mut result: ActionResult,
    ) -> Result<(), ActionError> {
        let now = now_ms();
        let mut inner = self.lock(now);
        let action = inner
            .kept
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or_else(|| ActionError::Unknown(id.to_owned()))?;
        let target = action
            .targets
            .get_mut(node)
            .ok_or_else(|| ActionError::NotForNode {
                id: id.to_owned(),
                node: node.to_owned(),
            })?;
        if target.state.is_final() {
            return Err(ActionError::AlreadyFinal {
                id: id.to_owned(),
                state: target.state,
            });
        }
        result.truncated |= cut(&mut result.output, MAX_ACTION_OUTPUT);
        if let Some(message) = &mut result.message {
            cut(message, MAX_MESSAGE);
        }
        target.state = result.state.into();
        target.finished_at_ms = Some(now);
        target.result = Some(result);
        Ok(())
    }

    /// Action `id` with every target, if it is kept.
    pub fn get(&self, id: &str) -> Option<ActionView> {
        let inner = self.lock(now_ms());
        let action = inner.kept.iter().find(|a| a.id == id)?;
        Some(ActionView {
            id: action.id.clone(),
            action: action.action.clone(),
            created_at_ms: action.created_at_ms,
            targets: action
                .targets
                .iter()
                .map(|(node, t)| TargetView {
                    node: node.clone(),
                    state: t.state,
                    queued_at_ms: t.queued_at_ms,
                    sent_at_ms: t.sent_at_ms,
                    finished_at_ms: t.finished_at_ms,
                    exit_code: t.result.as_ref().and_then(|r| r.exit_code),
                    output: t
                        .result
                        .as_ref()
                        .map(|r| r.output.clone())
                        .unwrap_or_default(),
                    truncated: t.result.as_ref().is_some_and(|r| r.truncated),
                    duration_ms: t.result.as_ref().map(|r| r.duration_ms),
                    message: t.result.as_ref().and_then(|r| r.message.clone()),
                })
                .collect(),
        })
    }

    /// The kept actions, newest first; only those for `node` when given.
    pub fn list(&self, node: Option<&str>) -> Vec<ActionSummary> {
        let inner = self.lock(now_ms());
        inner
            .kept
            .iter()
            .rev()
            .filter(|a| node.is_none_or(|n| a.targets.contains_key(n)))
            .map(|a| ActionSummary {
                id: a.id.clone(),
                action: a.action.clone(),
                created_at_ms: a.created_at_ms,
                states: a
                    .targets
                    .iter()
                    .map(|(n, t)| (n.clone(), t.state))
                    .collect(),
            })
            .collect()
    }

    /// How many nodes have a poll waiting (for tests and metrics).
    pub fn waiting_nodes(&self) -> usize {
        self.lock(now_ms()).waiting.len()
    }
}

/// One waiting poll of a node; leaving drops the node's wake-up with its last poll.
struct Poll<'a> {
    actions: &'a Actions,
    node: String,
    notify: Arc<Notify>,
}

impl Drop for Poll<'_> {
    fn drop(&mut self) {
        let mut inner = self.actions.lock(now_ms());
        if let Some(waiting) = inner.waiting.get_mut(&self.node) {
            waiting.polls = waiting.polls.saturating_sub(1);
            if waiting.polls == 0 {
                inner.waiting.remove(&self.node);
            }
        }
    }
}

/// Cuts `text` to at most `max` bytes at a character boundary; whether it cut.
fn cut(text: &mut String, max: usize) -> bool {
    if text.len() <= max {
        return false;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(id: &str, state: ActionState) -> ActionResult {
        ActionResult {
            id: id.into(),
            state,
            exit_code: Some(0),
            output: "hi\n".into(),
            truncated: false,
            duration_ms: 5,
            message: None,
        }
    }

    fn nodes(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn a_target_goes_queued_sent_final_and_stays_final() {
        let actions = Actions::new(Duration::from_secs(600));
        let id = actions.create("hello", &nodes(&["a", "b"]));
        let taken = actions.take("a");
        assert_eq!(
            taken,
            vec![ActionRequest {
                id: id.clone(),
                action: "hello".into()
            }]
        );
        assert!(actions.take("a").is_empty(), "sent once");
        assert_eq!(
            actions.record("c", &id, result(&id, ActionState::Done)),
            Err(ActionError::NotForNode {
                id: id.clone(),
                node: "c".into()
            })
        );
        actions
            .record("a", &id, result(&id, ActionState::Done))
            .unwrap();
        assert!(matches!(
            actions.record("a", &id, result(&id, ActionState::Failed)),
            Err(ActionError::AlreadyFinal {
                state: TargetState::Done,
                ..
            })
        ));
        assert!(matches!(
            actions.record("a", "nope", result("nope", ActionState::Done)),
            Err(ActionError::Unknown(_))
        ));
        let view = actions.get(&id).unwrap();
        assert_eq!(view.targets[0].state, TargetState::Done);
        assert_eq!(view.targets[0].output, "hi\n");
        assert_eq!(view.targets[1].state, TargetState::Queued);
    }

    #[test]
    fn output_is_cut_at_a_character_boundary() {
        let actions = Actions::new(Duration::from_secs(600));
        let id = actions.create("hello", &nodes(&["a"]));
        let mut long = result(&id, ActionState::Done);
        long.output = "é".repeat(MAX_ACTION_OUTPUT);
        actions.record("a", &id, long).unwrap();
        let target = &actions.get(&id).unwrap().targets[0];
        assert!(target.truncated);
        assert!(target.output.len() <= MAX_ACTION_OUTPUT);
    }

    #[test]
    fn only_the_newest_are_kept_and_listed_newest_first() {
        let actions = Actions::new(Duration::from_secs(600));
        let first = actions.create("hello", &nodes(&["a"]));
        for _ in 0..MAX_KEPT {
            actions.create("ping", &nodes(&["b"]));
        }
        assert!(actions.get(&first).is_none());
        let last = actions.create("hello", &nodes(&["a"]));
        let listed = actions.list(None);
        assert_eq!(listed.len(), MAX_KEPT);
        assert_eq!(listed[0].id, last);
        assert_eq!(actions.list(Some("a")).len(), 1);
    }

    #[test]
    fn queued_and_sent_targets_expire() {
        let actions = Actions::new(Duration::from_millis(50));
        let id = actions.create("hello", &nodes(&["a", "b"]));
        actions.take("a");
        std::thread::sleep(Duration::from_millis(80));
        let view = actions.get(&id).unwrap();
        assert!(
            view.targets.iter().all(|t| t.state == TargetState::Expired),
            "{view:?}"
        );
        assert!(actions.take("b").is_empty());
    }

    #[tokio::test]
    async fn a_waiting_poll_wakes_when_its_node_gets_an_action() {
        let actions = Arc::new(Actions::new(Duration::from_secs(600)));
        let waiter = {
            let actions = Arc::clone(&actions);
            tokio::spawn(async move { actions.wait_for("a", Duration::from_secs(10)).await })
        };
        while actions.waiting_nodes() == 0 {
            tokio::task::yield_now().await;
        }
        actions.create("ping", &nodes(&["b"]));
        let id = actions.create("hello", &nodes(&["a"]));
        let taken = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].id, id);
        assert_eq!(
            actions.waiting_nodes(),
            0,
            "the wake-up goes with the last poll"
        );
        assert!(
            actions
                .wait_for("a", Duration::from_millis(20))
                .await
                .is_empty()
        );
    }
}
