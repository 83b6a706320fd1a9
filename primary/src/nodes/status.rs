//! Node status rules, pure: `up`, `late` after one missed push, `down` after three,
//! `stopped` after a goodbye, judged from each node's own interval; and [`Recorded`], what the
//! liveness watcher remembers of a node between checks so that only real changes are recorded.
//!
//! A change is recorded once two checks in a row agree, or when the next check moves on to
//! a third status (late, then down), so a push arriving a moment after its grace does not
//! leave a one-second `late` blip in InfluxDB or page anyone; the API always shows the status
//! of the moment. The point carries the time of the first check that saw it.
//! A node nobody has heard from since the primary started is presumed up without a record;
//! its first push records `up`, a missed one records `late`.
//!
//! This module knows no clock, no task and no storage: the watcher
//! (`crate::liveness`) feeds it.

use std::sync::Arc;
use std::time::Duration;

use pivitals_common::Labels;
use serde::Serialize;

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
    /// The node's own shared copy: a restart or a partition can record thousands of changes
    /// that wait for the spool at once.
    pub labels: Arc<Labels>,
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
