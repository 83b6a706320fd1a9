//! The liveness watcher: checks every node once a second against the status rules
//! ([`crate::nodes::status`]) and records each change of status: it logs it, writes a
//! `node_status` point through the spool (the same durable path as vitals), hands it to the
//! alert [`webhook`](crate::alerts::webhook::Alerts) and tells the alert rules
//! ([`AlertRuntime`](crate::alerts::runtime::AlertRuntime): node down, up again, stopped).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pivitals_common::line_protocol::encode_status;
use tokio::sync::watch;

use crate::alerts::webhook::{self, Alert};
use crate::clock::now_ms;
use crate::metrics::Metrics;
use crate::nodes::status::{Status, Transition};
use crate::state::AppState;
use crate::storage::spool::AppendError;

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
            if webhook::worth_alerting(change.from, change.to) {
                state.alerts.send(Alert::of(&change));
            }
            feed_rules(&state, &change);
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
                labels: std::sync::Arc::clone(&node.record.labels),
                from,
                to,
                at_ms,
            })
        })
        .collect()
}

/// Tells the alert rules: node-down alerts fire when a node is recorded down and resolve when
/// it is back; a stopped node's alerts resolve as "no data".
fn feed_rules(state: &AppState, change: &Transition) {
    let rules = &state.alerting;
    match change.to {
        Status::Down => rules.node_down(&change.node, &change.labels, change.at_ms),
        Status::Up | Status::Late if change.from == Some(Status::Down) => {
            rules.node_up(&change.node, &change.labels, change.at_ms)
        }
        Status::Stopped => rules.node_gone(&change.node, &change.labels, change.at_ms),
        Status::Up | Status::Late => {}
    }
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
                Metrics::add(&state.metrics.points_received, 1);
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
