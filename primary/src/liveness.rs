//! Liveness from each node's own interval: `up`, `late` after one missed push, `down` after
//! three, `stopped` after a goodbye. A watcher task notices transitions and logs them.

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::watch;

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

/// Notices status changes once a second and logs them.
pub async fn watch(state: AppState, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        }
        let now = Instant::now();
        let mut nodes = state.nodes_mut();
        for node in nodes.iter_mut() {
            let status = node.status_at(now, state.started);
            if status == node.status {
                continue;
            }
            let (node_name, from, to) = (&node.record.name, node.status.as_str(), status.as_str());
            match status {
                Status::Up | Status::Stopped => {
                    tracing::info!(node = %node_name, from, to, "node status changed")
                }
                Status::Late | Status::Down => {
                    tracing::warn!(node = %node_name, from, to, "node status changed")
                }
            }
            node.status = status;
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
