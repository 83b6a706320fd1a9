//! Liveness from each node's own interval: `up`, `late` after one missed push, `down` after
//! three, `stopped` after a goodbye. A watcher task checks every node once a second and
//! records each change of status ([`Recorded`]): it logs it, writes a `node_status` point
//! through the spool (the same durable path as vitals) and hands it to the [`alert`] webhook.
//!
//! A change is recorded once two checks in a row agree, or when the next check moves on to
//! a third status (late, then down), so a push arriving a moment after its grace does not
//! leave a one-second `late` blip in InfluxDB or page anyone; the API always shows the status
//! of the moment. The point carries the time of the first check that saw it.
//! A node nobody has heard from since the primary started is presumed up without a record;
//! its first push records `up`, a missed one records `late`.
//!
//! [`alert`]: crate::alert

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pivitals_common::Labels;
use pivitals_common::line_protocol::encode_status;
use serde::Serialize;
use tokio::sync::watch;

use crate::alert::Alert;
use crate::ingest::now_ms;
use crate::spool::AppendError;
use crate::state::AppState;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Up,
    Late,
    Down,
    Stopped,
}

impl Status {
    pub const ALL: [Status; 4] = [Status::Up, Status::Late, Status::Down, Status::Stopped];

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Up => "up",
            Status::Late => "late",
            Status::Down => "down",
            Status::Stopped => "stopped",
        }
    }
}

/// Slack on top of the interval before a push counts as missed: network and scheduling delay,
/// and the agent's sampling time.
fn grace(interval: Duration) -> Duration {
    (interval / 2).clamp(Duration::from_secs(1), Duration::from_secs(30))
}

/// The status of a node whose last push (or, before any, the primary's start) was `since` ago.
pub fn status(since: Duration, interval: Duration, stopped: bool) -> Status {
    if stopped {
        return Status::Stopped;
    }
    let grace = grace(interval);
    if since <= interval + grace {
        Status::Up
    } else if since <= interval * 3 + grace {
        Status::Late
    } else {
        Status::Down
    }
}

/// What the watcher remembers of a node between checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recorded {
    /// The last status recorded; `None` before the first.
    pub status: Option<Status>,
    /// A different status seen by the last check, and when (ms since the epoch).
    candidate: Option<(Status, i64)>,
}

/// A recorded change of a node's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub node: String,
    pub labels: Labels,
    pub from: Option<Status>,
    pub to: Status,
    /// When the change was first seen, ms since the epoch.
    pub at_ms: i64,
}

impl Recorded {
    /// Feeds one check: the status `judged` now, whether the node has pushed since the primary
    /// started. Returns the change to record (previous status, new status, since when).
    pub fn check(
        &mut self,
        judged: Status,
        seen: bool,
        now_ms: i64,
    ) -> Option<(Option<Status>, Status, i64)> {
        let presumed_up = self.status.is_none() && !seen && judged == Status::Up;
        if self.status == Some(judged) || presumed_up {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            // Seen twice in a row: recorded.
            Some((status, since)) if status == judged => {
                self.candidate = None;
                let from = self.status.replace(judged);
                Some((from, judged, since))
            }
            // Seen once, and followed by yet another status (late, then down): it was no
            // blip, so it is recorded, and the new one waits for its second check.
            Some((status, since)) => {
                self.candidate = Some((judged, now_ms));
                let from = self.status.replace(status);
                Some((from, status, since))
            }
            None => {
                self.candidate = Some((judged, now_ms));
                None
            }
        }
    }
}

/// Status points waiting for room in the spool; beyond this the oldest is dropped (logged).
const MAX_PENDING: usize = 10_000;

/// Checks every node once a second and records status changes until shutdown.
pub async fn watch(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending: VecDeque<Transition> = VecDeque::new();
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
        for change in check_all(&state, Instant::now(), now_ms()) {
            log(&change);
            if crate::alert::worth_alerting(change.from, change.to) {
                state.alerts.send(Alert::of(&change));
            }
            if pending.len() == MAX_PENDING {
                let dropped = pending.pop_front();
                tracing::error!(
                    ?dropped,
                    "too many status points waiting for the spool; dropped the oldest"
                );
            }
            pending.push_back(change);
        }
        spool_status_points(&state, &mut pending).await;
    }
}

/// One check of every node; the node table is locked only for the check itself.
fn check_all(state: &AppState, now: Instant, now_ms: i64) -> Vec<Transition> {
    let mut nodes = state.nodes_mut();
    nodes
        .iter_mut()
        .filter_map(|node| {
            let judged = node.status_at(now, state.started);
            let seen = node.last_seen_at.is_some();
            let (from, to, at_ms) = node.recorded.check(judged, seen, now_ms)?;
            Some(Transition {
                node: node.record.name.clone(),
                labels: node.record.labels.clone(),
                from,
                to,
                at_ms,
            })
        })
        .collect()
}

fn log(change: &Transition) {
    let (node, to) = (&change.node, change.to.as_str());
    let from = change.from.map_or("unknown", Status::as_str);
    match change.to {
        Status::Up | Status::Stopped => tracing::info!(%node, from, to, "node status changed"),
        Status::Late | Status::Down => tracing::warn!(%node, from, to, "node status changed"),
    }
}

/// Appends the waiting status points to the spool, oldest first; what does not fit now (a
/// full or failing spool) waits for the next check.
async fn spool_status_points(state: &AppState, pending: &mut VecDeque<Transition>) {
    while let Some(change) = pending.front() {
        let mut line = Vec::with_capacity(128);
        let up = change.to == Status::Up;
        if let Err(e) = encode_status(
            &change.node,
            &change.labels,
            change.to.as_str(),
            up,
            change.at_ms,
            &mut line,
        ) {
            tracing::error!(error = %e, node = %change.node, "status point not encodable; dropped");
            pending.pop_front();
            continue;
        }
        match state.spool.append(&change.node, &line, 1).await {
            Ok(()) => {
                crate::metrics::Metrics::add(&state.metrics.points_received, 1);
                pending.pop_front();
            }
            Err(AppendError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, waiting = pending.len(), "status points wait for the spool");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_missed_pushes() {
        let minute = Duration::from_secs(60);
        let at = |s| status(Duration::from_secs(s), minute, false);
        assert_eq!(at(0), Status::Up);
        assert_eq!(at(89), Status::Up);
        assert_eq!(at(91), Status::Late, "one push missed");
        assert_eq!(at(209), Status::Late);
        assert_eq!(at(211), Status::Down, "three pushes missed");
        assert_eq!(status(Duration::ZERO, minute, true), Status::Stopped);
    }

    #[test]
    fn a_change_is_recorded_when_two_checks_agree() {
        let mut r = Recorded::default();
        assert_eq!(
            r.check(Status::Up, true, 1),
            None,
            "first check of a new node"
        );
        assert_eq!(r.check(Status::Up, true, 2), Some((None, Status::Up, 1)));
        assert_eq!(r.check(Status::Up, true, 3), None);
        assert_eq!(r.check(Status::Late, true, 4), None);
        assert_eq!(r.check(Status::Up, true, 5), None, "a one-check blip");
        assert_eq!(r.check(Status::Late, true, 6), None);
        assert_eq!(
            r.check(Status::Late, true, 7),
            Some((Some(Status::Up), Status::Late, 6))
        );
        assert_eq!(r.check(Status::Down, true, 8), None);
        assert_eq!(
            r.check(Status::Down, true, 9),
            Some((Some(Status::Late), Status::Down, 8))
        );
        assert_eq!(r.check(Status::Up, true, 9), None);
        assert_eq!(
            r.check(Status::Up, true, 10),
            Some((Some(Status::Down), Status::Up, 9))
        );
        assert_eq!(r.check(Status::Late, true, 11), None);
        assert_eq!(
            r.check(Status::Down, true, 12),
            Some((Some(Status::Up), Status::Late, 11)),
            "a late seen once and followed by down is no blip"
        );
        assert_eq!(
            r.check(Status::Down, true, 13),
            Some((Some(Status::Late), Status::Down, 12))
        );
        assert_eq!(r.check(Status::Stopped, true, 14), None);
        assert_eq!(
            r.check(Status::Stopped, true, 15),
            Some((Some(Status::Down), Status::Stopped, 14))
        );
    }

    #[test]
    fn a_node_not_heard_from_is_presumed_up_until_it_misses_a_push() {
        let mut r = Recorded::default();
        for t in 0..5 {
            assert_eq!(r.check(Status::Up, false, t), None);
        }
        assert_eq!(r.check(Status::Late, false, 5), None);
        assert_eq!(
            r.check(Status::Late, false, 6),
            Some((None, Status::Late, 5))
        );
    }

    #[test]
    fn one_second_agents_get_at_least_a_second_of_grace() {
        let second = Duration::from_secs(1);
        assert_eq!(
            status(Duration::from_millis(1900), second, false),
            Status::Up
        );
        assert_eq!(
            status(Duration::from_millis(2100), second, false),
            Status::Late
        );
        assert_eq!(
            status(Duration::from_millis(4100), second, false),
            Status::Down
        );
    }
}
