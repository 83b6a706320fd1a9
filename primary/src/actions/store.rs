//! The actions in memory: their targets' states, the per-node wake-ups of waiting polls,
//! expiry, and the hand-over of every target that became final to the storage (the rules are
//! in the [module doc](super)).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pivitals_common::Labels;
use pivitals_common::actions::{
    ActionRequest, ActionResult, ActionState, MAX_ACTION_OUTPUT, UPDATE_ACTION, UpdateRequest,
};
use serde::Serialize;
use thiserror::Error;
use tokio::sync::{Notify, mpsc, watch};

use crate::clock::now_ms;

/// The most actions one primary keeps; creating one more forgets the oldest.
pub const MAX_KEPT: usize = 100;

/// The longest message of a result that is kept, in bytes.
pub const MAX_MESSAGE: usize = 1024;

/// Targets that became final and may wait for the storage; more are dropped (and logged).
pub const FINISHED_QUEUE: usize = 65_536;

/// Where one node stands with one action; JSON in lower case (`"timed_out"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetState {
    /// Waiting for the node to fetch it.
    Queued,
    /// Handed to the node (or, on the primary's host, started); no result yet.
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

    /// The state's name as JSON and the storage write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Refused => "refused",
            Self::Accepted => "accepted",
            Self::TimedOut => "timed_out",
            Self::Expired => "expired",
        }
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
    /// Who asked: `api`, `cli`, `dashboard` or what the asker wrote.
    pub by: String,
    pub created_at_ms: i64,
    pub targets: Vec<TargetView>,
}

/// An action with each target's state only, for lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionSummary {
    pub id: String,
    pub action: String,
    pub by: String,
    pub created_at_ms: i64,
    pub states: BTreeMap<String, TargetState>,
}

/// Who a new action is for: a node (or a stack on the primary's host, `stack:2`) and the
/// labels its `action` point carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTarget {
    pub node: String,
    pub labels: Labels,
}

/// One target that became final, handed to the storage once (see [`Actions::stored`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    pub node: String,
    pub labels: Labels,
    pub id: String,
    pub action: String,
    pub by: String,
    pub state: TargetState,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<u64>,
    /// When the target became final.
    pub at_ms: i64,
}

#[derive(Debug, Clone)]
struct Target {
    state: TargetState,
    labels: Labels,
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
    by: String,
    created_at_ms: i64,
    targets: BTreeMap<String, Target>,
    /// The binary of an `update` ([`Actions::create_update`]); None for other actions.
    update: Option<UpdateRequest>,
}

impl Action {
    fn finished(&self, node: &str, target: &Target) -> Finished {
        Finished {
            node: node.to_owned(),
            labels: target.labels.clone(),
            id: self.id.clone(),
            action: self.action.clone(),
            by: self.by.clone(),
            state: target.state,
            exit_code: target.result.as_ref().and_then(|r| r.exit_code),
            duration_ms: target.result.as_ref().map(|r| r.duration_ms),
            at_ms: target.finished_at_ms.unwrap_or(self.created_at_ms),
        }
    }
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
    /// Where targets that became final go (None: nowhere, for router tests).
    finished: Option<mpsc::Sender<Finished>>,
    /// Wakes [`Actions::expire_on_time`] when the earliest deadline may have moved.
    deadline_moved: Notify,
    /// `true` once the primary stops: waiting polls answer at once, so a shutdown does not
    /// wait out every agent's long-poll.
    closed: watch::Sender<bool>,
}

impl Actions {
    /// Actions whose finished targets go nowhere (for a state that runs no tasks).
    pub fn new(expire_after: Duration) -> Self {
        Self::with_outlet(expire_after, None)
    }

    /// Actions whose targets, once final, are handed to the returned receiver (for
    /// [`spool_finished`](super::storage::spool_finished)).
    pub fn stored(expire_after: Duration) -> (Self, mpsc::Receiver<Finished>) {
        let (tx, rx) = mpsc::channel(FINISHED_QUEUE);
        (Self::with_outlet(expire_after, Some(tx)), rx)
    }

    fn with_outlet(expire_after: Duration, finished: Option<mpsc::Sender<Finished>>) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            expire_after_ms: i64::try_from(expire_after.as_millis()).unwrap_or(i64::MAX),
            finished,
            deadline_moved: Notify::new(),
            closed: watch::Sender::new(false),
        }
    }

    /// Ends every waiting poll now (with what is queued, usually nothing) and makes later
    /// polls answer without waiting; for the primary's shutdown.
    pub fn close(&self) {
        self.closed.send_replace(true);
    }

    /// The state with what is due expired. A poisoned lock only means a panic mid-update of
    /// plain data; the maps are still usable.
    fn lock(&self, now: i64) -> MutexGuard<'_, Inner> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if inner.next_expiry_ms.is_some_and(|t| now >= t) {
            let mut next: Option<i64> = None;
            for action in &mut inner.kept {
                let mut expired = Vec::new();
                for (node, target) in &mut action.targets {
                    match target.deadline(self.expire_after_ms) {
                        Some(t) if now >= t => {
                            target.state = TargetState::Expired;
                            target.finished_at_ms = Some(now);
                            expired.push(node.clone());
                        }
                        Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                        None => {}
                    }
                }
                for node in expired {
                    if let Some(target) = action.targets.get(&node) {
                        self.hand_over(action.finished(&node, target));
                    }
                }
            }
            inner.next_expiry_ms = next;
        }
        inner
    }

    /// Gives a final target to the storage without waiting; a full queue drops it.
    fn hand_over(&self, finished: Finished) {
        let Some(outlet) = &self.finished else {
            return;
        };
        if let Err(mpsc::error::TrySendError::Full(f)) = outlet.try_send(finished) {
            tracing::error!(node = %f.node, id = %f.id, "too many action results waiting for the storage; one dropped");
        }
    }

    /// Queues `action`, asked `by` someone, for each of `targets` (already resolved and
    /// checked) and wakes their waiting polls; the new action's id.
    pub fn create(&self, action: &str, by: &str, targets: Vec<NewTarget>) -> String {
        self.insert(action, by, targets, TargetState::Queued, None)
    }

    /// Like [`Actions::create`] for the built-in `update`, whose request names the binary.
    pub fn create_update(
        &self,
        by: &str,
        targets: Vec<NewTarget>,
        update: UpdateRequest,
    ) -> String {
        self.insert(
            UPDATE_ACTION,
            by,
            targets,
            TargetState::Queued,
            Some(update),
        )
    }

    /// Records `action`, asked `by` someone, as started on the primary's own host for each of
    /// `targets` (`stack:NAME`): they are `sent` at once, no poll takes them, and the host's
    /// runner records their results with [`Actions::record`]. The new action's id.
    pub fn start_on_host(&self, action: &str, by: &str, targets: Vec<NewTarget>) -> String {
        self.insert(action, by, targets, TargetState::Sent, None)
    }

    fn insert(
        &self,
        action: &str,
        by: &str,
        targets: Vec<NewTarget>,
        state: TargetState,
        update: Option<UpdateRequest>,
    ) -> String {
        let now = now_ms();
        let mut inner = self.lock(now);
        let id = loop {
            let id = format!("{:016x}", fastrand::u64(..));
            if !inner.kept.iter().any(|a| a.id == id) {
                break id;
            }
        };
        let sent_at_ms = (state == TargetState::Sent).then_some(now);
        let nodes: Vec<String> = targets.iter().map(|t| t.node.clone()).collect();
        inner.kept.push_back(Action {
            id: id.clone(),
            action: action.to_owned(),
            by: by.to_owned(),
            created_at_ms: now,
            targets: targets
                .into_iter()
                .map(|t| {
                    let target = Target {
                        state,
                        labels: t.labels,
                        queued_at_ms: now,
                        sent_at_ms,
                        finished_at_ms: None,
                        result: None,
                    };
                    (t.node, target)
                })
                .collect(),
            update,
        });
        while inner.kept.len() > MAX_KEPT {
            inner.kept.pop_front();
        }
        let deadline = now.saturating_add(self.expire_after_ms);
        inner.next_expiry_ms = Some(inner.next_expiry_ms.map_or(deadline, |t| t.min(deadline)));
        if state == TargetState::Queued {
            for node in &nodes {
                if let Some(waiting) = inner.waiting.get(node) {
                    waiting.notify.notify_waiters();
                }
            }
        }
        drop(inner);
        self.deadline_moved.notify_one();
        id
    }

    /// Expires every target when it is due, whether or not anything reads the actions, until
    /// `shutdown`: sleeps until the earliest deadline, woken early when a new action may have
    /// brought one nearer. Costs nothing while no target is waiting.
    pub async fn expire_on_time(&self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let next = self.lock(now_ms()).next_expiry_ms;
            let due = async {
                match next {
                    Some(t) => {
                        let wait = u64::try_from(t.saturating_sub(now_ms())).unwrap_or(0);
                        tokio::time::sleep(Duration::from_millis(wait)).await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = due => {}
                _ = self.deadline_moved.notified() => {}
                _ = crate::shutdown::stopped(&mut shutdown) => return,
            }
        }
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
                    update: action.update.clone(),
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
        let mut closed = self.closed.subscribe();
        loop {
            let notified = poll.notify.notified();
            tokio::pin!(notified);
            // Registered before looking, so a `create` between the look and the wait wakes it.
            notified.as_mut().enable();
            let taken = self.take(node);
            if !taken.is_empty() || *closed.borrow_and_update() {
                return taken;
            }
            tokio::select! {
                woken = tokio::time::timeout_at(deadline, notified) => {
                    if woken.is_err() {
                        return Vec::new();
                    }
                }
                _ = closed.changed() => {}
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
        let finished = action
            .targets
            .get(node)
            .map(|target| action.finished(node, target));
        drop(inner);
        if let Some(finished) = finished {
            self.hand_over(finished);
        }
        Ok(())
    }

    /// Action `id` with every target, if it is kept.
    pub fn get(&self, id: &str) -> Option<ActionView> {
        let inner = self.lock(now_ms());
        let action = inner.kept.iter().find(|a| a.id == id)?;
        Some(ActionView {
            id: action.id.clone(),
            action: action.action.clone(),
            by: action.by.clone(),
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
                by: a.by.clone(),
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

    fn nodes(names: &[&str]) -> Vec<NewTarget> {
        names
            .iter()
            .map(|n| NewTarget {
                node: n.to_string(),
                labels: [("stack".to_owned(), "2".to_owned())].into_iter().collect(),
            })
            .collect()
    }

    #[test]
    fn a_target_goes_queued_sent_final_and_stays_final() {
        let actions = Actions::new(Duration::from_secs(600));
        let id = actions.create("hello", "test", nodes(&["a", "b"]));
        let taken = actions.take("a");
        assert_eq!(
            taken,
            vec![ActionRequest {
                id: id.clone(),
                action: "hello".into(),
                update: None,
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
        let id = actions.create("hello", "test", nodes(&["a"]));
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
        let first = actions.create("hello", "test", nodes(&["a"]));
        for _ in 0..MAX_KEPT {
            actions.create("ping", "test", nodes(&["b"]));
        }
        assert!(actions.get(&first).is_none());
        let last = actions.create("hello", "test", nodes(&["a"]));
        let listed = actions.list(None);
        assert_eq!(listed.len(), MAX_KEPT);
        assert_eq!(listed[0].id, last);
        assert_eq!(actions.list(Some("a")).len(), 1);
    }

    #[test]
    fn queued_and_sent_targets_expire() {
        let actions = Actions::new(Duration::from_millis(50));
        let id = actions.create("hello", "test", nodes(&["a", "b"]));
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
        actions.create("ping", "test", nodes(&["b"]));
        let id = actions.create("hello", "test", nodes(&["a"]));
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

    #[tokio::test]
    async fn closing_ends_waiting_polls_and_later_ones_do_not_wait() {
        let actions = Arc::new(Actions::new(Duration::from_secs(600)));
        let waiter = {
            let actions = Arc::clone(&actions);
            tokio::spawn(async move { actions.wait_for("a", Duration::from_secs(600)).await })
        };
        while actions.waiting_nodes() == 0 {
            tokio::task::yield_now().await;
        }
        actions.close();
        let taken = tokio::time::timeout(Duration::from_secs(2), waiter)
            .await
            .expect("a closed store ends the poll at once")
            .unwrap();
        assert!(taken.is_empty());
        let later = tokio::time::timeout(
            Duration::from_secs(2),
            actions.wait_for("a", Duration::from_secs(600)),
        )
        .await
        .expect("a poll after closing does not wait");
        assert!(later.is_empty());
    }

    #[tokio::test]
    async fn final_targets_go_to_the_storage_once_expired_ones_without_any_read() {
        let (actions, mut finished) = Actions::stored(Duration::from_millis(300));
        let actions = Arc::new(actions);
        let (_stop, shutdown) = watch::channel(false);
        let timer = {
            let actions = Arc::clone(&actions);
            tokio::spawn(async move { actions.expire_on_time(shutdown).await })
        };
        let id = actions.create("hello", "cli", nodes(&["a", "b"]));
        actions.take("a");
        actions
            .record("a", &id, result(&id, ActionState::Done))
            .unwrap();
        let done = finished.recv().await.unwrap();
        assert_eq!(
            (
                done.node.as_str(),
                done.state,
                done.exit_code,
                done.duration_ms
            ),
            ("a", TargetState::Done, Some(0), Some(5))
        );
        assert_eq!((done.by.as_str(), done.action.as_str()), ("cli", "hello"));
        assert_eq!(done.labels.get("stack").map(String::as_str), Some("2"));
        // Nothing reads the actions from here on: the timer alone expires "b".
        let expired = tokio::time::timeout(Duration::from_secs(5), finished.recv())
            .await
            .expect("b expires on time")
            .unwrap();
        assert_eq!(
            (expired.node.as_str(), expired.state),
            ("b", TargetState::Expired)
        );
        assert_eq!((expired.exit_code, expired.duration_ms), (None, None));
        assert!(expired.at_ms >= done.at_ms);
        assert!(finished.try_recv().is_err(), "each target once");
        timer.abort();
    }

    #[test]
    fn targets_on_the_host_start_sent_and_no_poll_takes_them() {
        let actions = Actions::new(Duration::from_secs(600));
        let id = actions.start_on_host("relay-off", "api", nodes(&["stack:2"]));
        assert!(actions.take("stack:2").is_empty());
        let view = actions.get(&id).unwrap();
        assert_eq!(view.targets[0].state, TargetState::Sent);
        assert_eq!(view.by, "api");
        actions
            .record("stack:2", &id, result(&id, ActionState::Done))
            .unwrap();
        assert_eq!(
            actions.get(&id).unwrap().targets[0].state,
            TargetState::Done
        );
    }
}
