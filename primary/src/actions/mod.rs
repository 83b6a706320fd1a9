//! Actions: an admin asks nodes to run a named action; their agents fetch it and report back.
//! In memory only: a restart of the primary forgets every action.
//!
//! # Life of an action
//!
//! 1. `POST /api/v1/actions` names an action (checked with
//!    [`is_valid_action_name`](pivitals_common::actions::is_valid_action_name)) and exactly one
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
//!
//! # States of one target
//!
//! `queued` → `sent` → one of the node's final states; `queued` or `sent` → `expired` when the
//! node did not take it within `expire_after` of its queueing (`PIVITALS_ACTIONS__EXPIRE_AFTER`,
//! 10 minutes by default), or did not answer within `expire_after` of its sending. Expiry is
//! lazy: every call on [`Actions`] first expires what is due (a cheap comparison with the
//! earliest deadline while nothing is), so a read never shows a stale `queued` or `sent`, and no
//! background task runs. There is no `running` state: the wire has no message for it, so a
//! running action shows as `sent`.
//!
//! # How much is kept
//!
//! At most [`MAX_KEPT`] actions per primary; creating one more forgets the oldest, whatever its
//! targets' states (a target still queued then never goes out, and its node's late result
//! answers 404). An output is kept up to
//! [`MAX_ACTION_OUTPUT`](pivitals_common::actions::MAX_ACTION_OUTPUT) bytes (the rest is cut
//! and the result marked truncated), a message up to [`MAX_MESSAGE`] bytes.

pub mod config;
pub mod store;
pub mod target;

pub use store::{
    ActionError, ActionSummary, ActionView, Actions, MAX_KEPT, MAX_MESSAGE, TargetState, TargetView,
};
