//! Actions: an admin asks nodes to run a named action; their agents fetch it and report back.
//! The actions themselves live in memory only (a restart of the primary forgets every one); each
//! target's final state is also written to storage as one `action` point.
//!
//! # Life of an action
//!
//! 1. `POST /api/v1/actions` names an action (checked with
//!    [`is_valid_action_name`](pivitals_common::actions::is_valid_action_name)), who asks
//!    (`by`: `api` unless said; the CLI says `cli`, the dashboard `dashboard`) and exactly one
//!    selector: node names, labels (every given label must match) or all. [`target::resolve`]
//!    turns it into node names; the primary's own host (no agent) is never a target. The
//!    action gets a random id and one target per node, each `queued`.
//! 2. An agent long-polls `GET /api/v1/agent/actions?wait=25s`. [`Actions::wait_for`] hands it
//!    every action queued for its node at once (those targets become `sent`), or waits: one
//!    [`tokio::sync::Notify`] per node that has a poll waiting (made by the first waiter,
//!    dropped with the last one), woken by [`Actions::create`]. Nothing polls a clock; an idle
//!    node costs one parked task and one map entry.
//! 3. The agent posts an [`ActionResult`](pivitals_common::actions::ActionResult);
//!    [`Actions::record`] makes the target final with the node's state (`done`, `failed`,
//!    `refused`, `accepted`, `timed_out`). A result for another node's action, for an unknown
//!    id, or for a target already final is refused ([`ActionError`]).
//! 4. Every target that becomes final (including `expired`) is handed, once, to
//!    [`storage::spool_finished`], which appends it to the spool as an `action` point.
//!
////! # States of one target
//!
//! `queued` → `sent` → one of the node's final states; `queued` or `sent` → `expired` when the
//! node did not take it within `expire_after` of its queueing (`PIVITALS_ACTIONS__EXPIRE_AFTER`,
//! 10 minutes by default), or did not answer within `expire_after` of its sending. Every call on
//! [`Actions`] first expires what is due (a cheap comparison with the earliest deadline while
//! nothing is), so a read never shows a stale `queued` or `sent`; and one timer task,
//! [`Actions::expire_on_time`], sleeps until the earliest deadline (woken early when a new
//! action is created), so an expired target is stored even if nobody reads the actions. While
//! no target is waiting, the timer sleeps without a deadline. There is no `running` state: the
//! wire has no message for it, so a running action shows as `sent`.
//!
//! # Storage: what is durable when
//!
//! When a target becomes final, it is handed without waiting to a bounded queue
//! ([`store::FINISHED_QUEUE`]; a full queue drops the point and logs an error, it never slows a
//! request) and [`storage::spool_finished`] appends it to the spool, the path of the vitals and
//! the `alert` points: one line of measurement `action`, tagged `node`, the node's labels (as
//! they were when the action was asked) and `action`; fields `state` (string), `exit_code`
//! (integer, only when the node reported one), `duration` (float seconds, only when a result
//! came), `by` (string), `id` (string); timestamped when the target became final. The point is
//! durable once the spool's append commits (a moment after the target became final; a crash
//! before that loses it) and counted received only then; the flusher takes it to InfluxDB or
//! the archive like any other point. The actions' in-memory state (queues, outputs, messages)
//! is never stored: output stays out of the time series.
//!
//! # On the primary's own host
//!
//! With `"primary": true`, the action is one the primary's settings name
//! (`[actions.host.NAME]`), run by the primary itself once per stack ([`host`]): each stack's
//! target `stack:NAME` starts `sent` ([`Actions::start_on_host`]), no poll takes it, and the
//! run's task records its result with [`Actions::record`] like an agent would; expiry, keeping
//! and storage are the same (the runs' own timeouts end them well before any expiry).
//!
//! # Updating agents
//!
//! "Update agents" is a rollout of the built-in `update` action over a set of nodes, a few at a
//! time, each awaited until it runs the new binary: [`rollout`] (its doc is the spec).
//!
//! # How much is kept
//!
//! At most [`MAX_KEPT`] actions per primary; creating one more forgets the oldest, whatever its
//! targets' states (a target still queued then never goes out, and its node's late result
//! answers 404). An output is kept up to
//! [`MAX_ACTION_OUTPUT`](pivitals_common::actions::MAX_ACTION_OUTPUT) bytes (the rest is cut
//! and the result marked truncated), a message up to [`MAX_MESSAGE`] bytes.

pub mod config;
pub mod host;
pub mod rollout;
pub mod storage;
pub mod store;
pub mod target;

pub use store::{
    ActionError, ActionSummary, ActionView, Actions, Finished, MAX_KEPT, MAX_MESSAGE, NewTarget,
    TargetState, TargetView,
};
