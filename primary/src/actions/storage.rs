//! Every target that became final, as one `action` point in the spool (the path of the vitals
//! and the `alert` points), so InfluxDB or the archive keeps who asked what of which node and
//! how it ended.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pivitals_common::line_protocol::{ActionPoint, encode_action};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

use super::store::Finished;
use crate::metrics::Metrics;
use crate::storage::spool::{AppendError, Spool};

/// The most finished targets taken from the queue for one round of appends.
pub const ROUND: usize = 1024;

/// The `action` line of `finished`; None (logged) when it cannot be encoded.
pub fn encode(finished: &Finished) -> Option<Vec<u8>> {
    let point = ActionPoint {
        action: &finished.action,
        state: finished.state.as_str(),
        exit_code: finished.exit_code,
        duration_seconds: finished.duration_ms.map(|ms| ms as f64 / 1000.0),
        by: &finished.by,
        id: &finished.id,
    };
    let mut line = Vec::with_capacity(160);
    match encode_action(
        &finished.node,
        &finished.labels,
        &point,
        finished.at_ms,
        &mut line,
    ) {
        Ok(_) => Some(line),
        Err(e) => {
            tracing::error!(error = %e, node = %finished.node, id = %finished.id, "action point not encodable; dropped");
            None
        }
    }
}

/// The spooler of `action` points, until `shutdown` or until every sender is gone: takes what
/// is waiting (up to [`ROUND`] targets), makes one spool record per node, and appends those
/// records concurrently, so a stack-wide action shares the spool's group commits. A full or
/// failing spool is retried every second; the points are counted received once committed.
pub async fn spool_finished(
    mut finished: mpsc::Receiver<Finished>,
    spool: Spool,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut round = Vec::with_capacity(ROUND);
    loop {
        round.clear();
        tokio::select! {
            taken = finished.recv_many(&mut round, ROUND) => if taken == 0 {
                return;
            },
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
        let mut by_node: BTreeMap<&str, (Vec<u8>, usize)> = BTreeMap::new();
        for target in &round {
            if let Some(line) = encode(target) {
                let (lines, points) = by_node.entry(target.node.as_str()).or_default();
                lines.extend_from_slice(&line);
                *points += 1;
            }
        }
        let mut appends = JoinSet::new();
        for (node, (lines, points)) in by_node {
            appends.spawn(append_until_committed(
                spool.clone(),
                node.to_owned(),
                lines,
                points,
                Arc::clone(&metrics),
                shutdown.clone(),
            ));
        }
        while appends.join_next().await.is_some() {}
    }
}

async fn append_until_committed(
    spool: Spool,
    node: String,
    lines: Vec<u8>,
    points: usize,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match spool.append(&node, &lines, points).await {
            Ok(()) => {
                Metrics::add(&metrics.points_received, points);
                return;
            }
            Err(AppendError::Closed) => return,
            Err(e) => {
                tracing::warn!(error = %e, %node, "action points wait for the spool");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = crate::shutdown::stopped(&mut shutdown) => return,
                }
            }
        }
    }
}
