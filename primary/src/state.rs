//! What the primary knows at run time: the live node table (in memory, rebuilt from the
//! registry at start) and the handles every request needs.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use pivitals_common::VitalsPayload;

use crate::alert::Alerts;
use crate::auth::{self, TokenHash};
use crate::config::PrimaryConfig;
use crate::enroll::EnrollToken;
use crate::history::{History, Summary};
use crate::ingest::now_ms;
use crate::limits::Bucket;
use crate::liveness::{self, Recorded, Status};
use crate::metrics::Metrics;
use crate::registry::{NodeRecord, Registry};
use crate::spool::Spool;

pub type AppState = Arc<Shared>;

pub struct Shared {
    pub config: PrimaryConfig,
    pub enroll_token: EnrollToken,
    pub registry: Registry,
    pub nodes: RwLock<Nodes>,
    pub spool: Spool,
    pub metrics: Arc<Metrics>,
    pub started: Instant,
    /// Where status changes are announced (a webhook, or nowhere).
    pub alerts: Alerts,
}

impl Shared {
    /// A poisoned lock only means another request panicked mid-update of plain data; the table
    /// is still usable, so recover instead of failing every later request.
    pub fn nodes(&self) -> RwLockReadGuard<'_, Nodes> {
        self.nodes.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn nodes_mut(&self) -> RwLockWriteGuard<'_, Nodes> {
        self.nodes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Notes an accepted push (or self-sample): the node is seen now, every sample joins its
    /// recent [`History`], and the newest is kept.
    pub fn record_push(&self, name: &str, samples: Vec<VitalsPayload>) {
        let now = now_ms();
        let summaries: Vec<(i64, Summary)> = samples
            .iter()
            .map(|s| (s.timestamp_ms, Summary::of(s)))
            .collect();
        let newest = samples.into_iter().max_by_key(|s| s.timestamp_ms);
        let mut nodes = self.nodes_mut();
        let Some(node) = nodes.get_mut(name) else {
            return;
        };
        for (ts, summary) in &summaries {
            node.history.record(*ts, summary, now);
        }
        node.last_seen_ms = Some(now);
        node.last_seen_at = Some(Instant::now());
        node.stopped = false;
        if let Some(sample) = newest
            && node
                .latest
                .as_ref()
                .is_none_or(|l| l.timestamp_ms <= sample.timestamp_ms)
        {
            node.latest = Some(sample);
        }
    }
}

/// A registered node and what has been seen of it since the primary started.
#[derive(Debug, Clone)]
pub struct LiveNode {
    pub record: NodeRecord,
    /// Wall-clock time of the last accepted push, ms since the epoch.
    pub last_seen_ms: Option<i64>,
    pub last_seen_at: Option<Instant>,
    pub stopped: bool,
    /// When this entry was made: at the primary's start for nodes from the registry, else at
    /// registration.
    pub known_since: Instant,
    /// The status changes the liveness watcher recorded.
    pub recorded: Recorded,
    pub latest: Option<VitalsPayload>,
    /// The last hour of summaries, for the dashboard.
    pub history: History,
    /// How many pushes the node may send right now ([`crate::limits`]).
    pub push_bucket: Bucket,
}

impl LiveNode {
    pub fn new(record: NodeRecord) -> Self {
        let history = History::for_interval(record.interval_seconds);
        Self {
            record,
            last_seen_ms: None,
            last_seen_at: None,
            stopped: false,
            known_since: Instant::now(),
            recorded: Recorded::default(),
            latest: None,
            history,
            push_bucket: Bucket::default(),
        }
    }

    /// Status now. A node not seen since the primary started is judged from the start (so a
    /// restart of the primary does not mark the whole cluster down), or from its registration
    /// when that came later (so a new node is not down before its first push is due).
    pub fn status_at(&self, now: Instant, started: Instant) -> Status {
        let since = now.saturating_duration_since(
            self.last_seen_at
                .unwrap_or_else(|| self.known_since.max(started)),
        );
        let interval = Duration::from_secs(self.record.interval_seconds.max(1));
        liveness::status(since, interval, self.stopped)
    }
}

#[derive(Debug, Default)]
pub struct Nodes {
    /// Boxed: a `LiveNode` is about 700 bytes, and B-tree nodes hold room for eleven entries
    /// whether used or not.
    by_name: BTreeMap<String, Box<LiveNode>>,
    by_token: HashMap<TokenHash, String>,
}

impl Nodes {
    pub fn from_records(records: Vec<NodeRecord>) -> Self {
        let mut nodes = Self::default();
        for record in records {
            nodes.insert(record);
        }
        nodes
    }

    /// Adds or replaces a node; a replaced node's old token stops working. A node that
    /// registers again keeps its recent history and recorded status, so its next push is
    /// recorded as a recovery, not as a new node.
    pub fn insert(&mut self, record: NodeRecord) {
        let previous = self.remove(&record.name);
        if let Some(hash) = record.token_hash.as_deref().and_then(auth::from_hex) {
            self.by_token.insert(hash, record.name.clone());
        }
        let mut node = LiveNode::new(record);
        if let Some(previous) = previous {
            // A new interval means slots of another width: the history starts over.
            if previous.history.step_ms() == node.history.step_ms() {
                node.history = previous.history;
            }
            node.recorded = previous.recorded;
        }
        self.by_name
            .insert(node.record.name.clone(), Box::new(node));
    }

    pub fn remove(&mut self, name: &str) -> Option<Box<LiveNode>> {
        let node = self.by_name.remove(name)?;
        if let Some(hash) = node.record.token_hash.as_deref().and_then(auth::from_hex) {
            self.by_token.remove(&hash);
        }
        Some(node)
    }

    /// The node a node token belongs to.
    pub fn by_token(&self, token: &str) -> Option<&LiveNode> {
        let name = self.by_token.get(&auth::hash_token(token))?;
        self.get(name)
    }

    pub fn get(&self, name: &str) -> Option<&LiveNode> {
        self.by_name.get(name).map(|node| &**node)
    }

    pub fn get_mut(&mut self, name: &str) -> Option<&mut LiveNode> {
        self.by_name.get_mut(name).map(|node| &mut **node)
    }

    pub fn iter(&self) -> impl Iterator<Item = &LiveNode> {
        self.by_name.values().map(|node| &**node)
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut LiveNode> {
        self.by_name.values_mut().map(|node| &mut **node)
    }

    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}
