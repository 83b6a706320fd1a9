//! The live node table: every registered node with what has been seen of it since the primary
//! started (last push, status record, newest sample, recent history, push bucket), found by
//! name or by node token. In memory only; rebuilt from the registry at start.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use pivitals_common::{NodeInfo, VitalsPayload};

use super::history::History;
use super::registry::NodeRecord;
use super::status::{self, Recorded, Status};
use super::token::{self, TokenHash};
use crate::limits::Bucket;

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
        status::status(since, interval, self.stopped)
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
        if let Some(hash) = record.token_hash.as_deref().and_then(token::from_hex) {
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

    /// Replaces the info of node `name` (after
    /// [`Registry::update_info`](super::registry::Registry::update_info) stored it) if the
    /// node is still there with the token hash `token_hash`; returns whether it was.
    pub fn set_info(&mut self, name: &str, token_hash: Option<&str>, info: NodeInfo) -> bool {
        match self.by_name.get_mut(name) {
            Some(node) if node.record.token_hash.as_deref() == token_hash => {
                node.record.info = info;
                true
            }
            _ => false,
        }
    }

    pub fn remove(&mut self, name: &str) -> Option<Box<LiveNode>> {
        let node = self.by_name.remove(name)?;
        if let Some(hash) = node.record.token_hash.as_deref().and_then(token::from_hex) {
            self.by_token.remove(&hash);
        }
        Some(node)
    }

    /// The node a node token belongs to.
    pub fn by_token(&self, token: &str) -> Option<&LiveNode> {
        let name = self.by_token.get(&token::hash_token(token))?;
        self.get(name)
    }

    /// The node a node token belongs to, to change.
    pub fn by_token_mut(&mut self, token: &str) -> Option<&mut LiveNode> {
        let name = self.by_token.get(&token::hash_token(token))?;
        self.by_name.get_mut(name).map(|node| &mut **node)
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
