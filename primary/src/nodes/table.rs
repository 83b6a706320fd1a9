//! The live node table: every registered node with what has been seen of it since the primary
//! started (last push, status record, newest sample, recent history, push bucket), found by
//! name or by node token. In memory only; rebuilt from the registry at start.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pivitals_common::{Labels, NodeInfo, VitalsPayload};

use super::history::History;
use super::packed::Packed;
use super::registry::{LastKnown, NodeRecord};
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
    /// The newest sample, packed: read it with [`LiveNode::latest`].
    latest: Option<Newest>,
    /// The last hour of summaries, for the dashboard.
    pub history: History,
    /// How many pushes the node may send right now ([`crate::limits`]).
    pub push_bucket: Bucket,
    /// The timestamp (ms) of the newest sample that showed under-voltage or throttling
    /// ([`shows_power_trouble`]), for placement; None when none has since the primary started.
    pub power_trouble_ms: Option<i64>,
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
            power_trouble_ms: None,
        }
    }

    /// The newest sample, unpacked ([`Packed::get`]); None before the first.
    pub fn latest(&self) -> Option<VitalsPayload> {
        self.latest.as_ref()?.packed.get()
    }

    /// Keeps `newest` unless the node already holds a newer sample.
    pub fn keep_newest(&mut self, newest: Newest) {
        if self
            .latest
            .as_ref()
            .is_none_or(|held| held.timestamp_ms <= newest.timestamp_ms)
        {
            self.latest = Some(newest);
        }
    }

    /// Keeps the newer of the stored time and `sample_ms`, from [`newest_power_trouble`].
    pub fn note_power_trouble(&mut self, sample_ms: Option<i64>) {
        self.power_trouble_ms = self.power_trouble_ms.max(sample_ms);
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

/// A node's newest sample as the table holds it: its time, which every push compares, and the
/// sample [`Packed`] (about 300 bytes in one block instead of some 1.7 KB in a dozen).
#[derive(Debug, Clone)]
pub struct Newest {
    pub timestamp_ms: i64,
    packed: Packed<VitalsPayload>,
}

impl Newest {
    /// Packs `sample`; None (logged) if it cannot be, which the types of a sample rule out.
    pub fn of(sample: &VitalsPayload) -> Option<Self> {
        Packed::pack(sample)
            .inspect_err(|error| tracing::error!(%error, "packing a sample"))
            .ok()
            .map(|packed| Self {
                timestamp_ms: sample.timestamp_ms,
                packed,
            })
    }
}

/// Whether a sample saw under-voltage or throttling during its interval: the firmware's
/// "now" bits (under-voltage, frequency capped, throttled, soft temperature limit) or the
/// power poll's under-voltage (now, or any second or event in the interval). The sticky
/// "since boot" bits are not: they say nothing of the interval.
pub fn shows_power_trouble(sample: &VitalsPayload) -> bool {
    let firmware = sample.throttling.is_some_and(|t| {
        t.under_voltage_now()
            || t.frequency_capped_now()
            || t.throttled_now()
            || t.soft_temperature_limit_now()
    });
    let supply = sample.power.as_ref().is_some_and(|p| {
        p.under_voltage_now == Some(true)
            || p.under_voltage_seconds.is_some_and(|s| s > 0)
            || p.under_voltage_events.is_some_and(|e| e > 0)
    });
    firmware || supply
}

/// The timestamp of the newest of `samples` that [`shows_power_trouble`].
pub fn newest_power_trouble(samples: &[VitalsPayload]) -> Option<i64> {
    samples
        .iter()
        .filter(|s| shows_power_trouble(s))
        .map(|s| s.timestamp_ms)
        .max()
}

#[derive(Debug, Default)]
pub struct Nodes {
    /// Boxed: a `LiveNode` is 360 bytes (its sample and info packed apart), and B-tree nodes
    /// hold room for eleven entries whether used or not.
    /// The name is shared by both maps: one copy a node instead of two.
    by_name: BTreeMap<Arc<str>, Box<LiveNode>>,
    by_token: HashMap<TokenHash, Arc<str>>,
    /// Every distinct label set, shared by the nodes that carry it: clusters label by stack
    /// and role, so 10,000 nodes hold a few sets instead of 10,000 maps of about 600 bytes.
    label_sets: HashSet<Arc<Labels>>,
}

impl Nodes {
    pub fn from_records(records: Vec<NodeRecord>) -> Self {
        let mut nodes = Self::default();
        for record in records {
            nodes.insert(record);
        }
        nodes
    }

    /// Gives the nodes what was last seen of them before a restart: the time of the last push
    /// and the newest sample, for display. Their status is still judged from the primary's
    /// start (`last_seen_at` stays unset), so a restart does not mark the cluster down.
    pub fn restore_last_known(&mut self, mut known: HashMap<String, LastKnown>) {
        for node in self.by_name.values_mut() {
            if let Some(last) = known.remove(&node.record.name) {
                node.last_seen_ms = Some(last.last_seen_ms);
                node.latest = last.latest.as_ref().and_then(Newest::of);
            }
        }
    }

    /// What was last seen of the first `limit` nodes seen at all after `after` in name order,
    /// for [`Registry::save_last_known`]: copied a page at a time, because a copy of every
    /// node's newest sample at once is about 1.3 KB a node (13 MB for 10,000) on top of the
    /// table.
    ///
    /// [`Registry::save_last_known`]: super::registry::Registry::save_last_known
    pub fn last_known_page(&self, after: Option<&str>, limit: usize) -> Vec<(String, LastKnown)> {
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.by_name
            .range::<str, _>((from, Bound::Unbounded))
            .filter_map(|(_, node)| {
                let last_seen_ms = node.last_seen_ms?;
                Some((
                    node.record.name.clone(),
                    LastKnown {
                        last_seen_ms,
                        latest: node.latest(),
                    },
                ))
            })
            .take(limit)
            .collect()
    }

    /// Adds or replaces a node; a replaced node's old token stops working. A node that
    /// registers again keeps its recent history and recorded status, so its next push is
    /// recorded as a recovery, not as a new node.
    pub fn insert(&mut self, mut record: NodeRecord) {
        let previous = self.remove(&record.name);
        record.labels = self.shared_labels(record.labels);
        let name: Arc<str> = Arc::from(record.name.as_str());
        if let Some(hash) = record.token_hash.as_deref().and_then(token::from_hex) {
            self.by_token.insert(hash, Arc::clone(&name));
        }
        let mut node = LiveNode::new(record);
        if let Some(previous) = previous {
            // A new interval means slots of another width: the history starts over.
            if previous.history.step_ms() == node.history.step_ms() {
                node.history = previous.history;
            }
            node.recorded = previous.recorded;
            node.power_trouble_ms = previous.power_trouble_ms;
        }
        self.by_name.insert(name, Box::new(node));
    }

    /// Replaces the info of node `name` (after
    /// [`Registry::update_info`](super::registry::Registry::update_info) stored it) if the
    /// node is still there with the token hash `token_hash`; returns whether it was.
    pub fn set_info(
        &mut self,
        name: &str,
        token_hash: Option<&str>,
        info: Packed<NodeInfo>,
    ) -> bool {
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
        // Held by the set and this node only: no other node carries these labels any more.
        // (A copy held elsewhere for a moment only leaves the set one entry longer.)
        if Arc::strong_count(&node.record.labels) == 2 {
            self.label_sets.remove(&node.record.labels);
        }
        Some(node)
    }

    /// The set's copy of `labels`, which becomes the set's when it has none.
    fn shared_labels(&mut self, labels: Arc<Labels>) -> Arc<Labels> {
        match self.label_sets.get(&labels) {
            Some(shared) => Arc::clone(shared),
            None => {
                self.label_sets.insert(Arc::clone(&labels));
                labels
            }
        }
    }

    /// How many distinct label sets the nodes carry.
    pub fn label_sets(&self) -> usize {
        self.label_sets.len()
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

#[cfg(test)]
mod tests {
    use pivitals_common::{PowerVitals, Throttling};

    use super::*;

    fn at(timestamp_ms: i64) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms,
            ..Default::default()
        }
    }

    #[test]
    fn power_trouble_is_what_a_sample_saw_in_its_interval_not_since_boot() {
        let mut quiet = at(1);
        assert!(!shows_power_trouble(&quiet));
        // The firmware's sticky bits (0x50000: under-voltage and throttling occurred).
        quiet.throttling = Some(Throttling { raw: 0x5_0000 });
        quiet.power = Some(PowerVitals {
            under_voltage_since_boot: Some(true),
            under_voltage_now: Some(false),
            under_voltage_seconds: Some(0),
            under_voltage_events: Some(0),
            ..Default::default()
        });
        assert!(!shows_power_trouble(&quiet));
        for raw in [0x1, 0x2, 0x4, 0x8] {
            let mut firmware = at(1);
            firmware.throttling = Some(Throttling { raw });
            assert!(shows_power_trouble(&firmware), "{raw:#x}");
        }
        for power in [
            PowerVitals {
                under_voltage_now: Some(true),
                ..Default::default()
            },
            PowerVitals {
                under_voltage_seconds: Some(2),
                ..Default::default()
            },
            PowerVitals {
                under_voltage_events: Some(1),
                ..Default::default()
            },
        ] {
            let mut supply = at(1);
            supply.power = Some(power.clone());
            assert!(shows_power_trouble(&supply), "{power:?}");
        }
    }

    fn record(name: &str, stack: &str) -> NodeRecord {
        NodeRecord {
            name: name.to_owned(),
            info: Packed::pack(&NodeInfo::default()).unwrap(),
            labels: Arc::new(Labels::from([("stack".to_owned(), stack.to_owned())])),
            interval_seconds: 60,
            token_hash: None,
            registered_at_ms: 0,
            hardware: None,
        }
    }

    #[test]
    fn nodes_with_the_same_labels_share_one_copy_until_the_last_goes() {
        let mut nodes = Nodes::default();
        nodes.insert(record("a", "1"));
        nodes.insert(record("b", "1"));
        nodes.insert(record("c", "2"));
        let labels = |nodes: &Nodes, name| Arc::clone(&nodes.get(name).unwrap().record.labels);
        assert!(Arc::ptr_eq(&labels(&nodes, "a"), &labels(&nodes, "b")));
        assert_eq!(
            labels(&nodes, "c").get("stack").map(String::as_str),
            Some("2")
        );
        assert_eq!(nodes.label_sets(), 2);
        nodes.remove("c");
        assert_eq!(nodes.label_sets(), 1);
        nodes.remove("a");
        assert_eq!(nodes.label_sets(), 1, "b still carries stack=1");
        // Registering again with other labels moves the node to the other set.
        nodes.insert(record("b", "3"));
        assert_eq!(nodes.label_sets(), 1);
        assert_eq!(
            labels(&nodes, "b").get("stack").map(String::as_str),
            Some("3")
        );
    }

    #[test]
    fn last_known_pages_through_the_nodes_seen_in_name_order() {
        let mut nodes = Nodes::default();
        for name in ["a", "b", "c", "d"] {
            nodes.insert(record(name, "1"));
        }
        for name in ["a", "c", "d"] {
            nodes.get_mut(name).unwrap().last_seen_ms = Some(7);
        }
        let names = |page: Vec<(String, LastKnown)>| -> Vec<String> {
            page.into_iter().map(|(name, _)| name).collect()
        };
        assert_eq!(names(nodes.last_known_page(None, 2)), ["a", "c"]);
        assert_eq!(names(nodes.last_known_page(Some("c"), 2)), ["d"]);
        assert!(nodes.last_known_page(Some("d"), 2).is_empty());
    }

    #[test]
    fn the_newest_trouble_is_kept_even_when_samples_arrive_out_of_order() {
        let troubled = |ts| {
            let mut sample = at(ts);
            sample.throttling = Some(Throttling { raw: 0x4 });
            sample
        };
        let samples = [troubled(5), at(9), troubled(7)];
        assert_eq!(newest_power_trouble(&samples), Some(7));
        assert_eq!(newest_power_trouble(&[at(3)]), None);
        let mut node = LiveNode::new(NodeRecord {
            name: "n".to_owned(),
            info: Packed::pack(&NodeInfo::default()).unwrap(),
            labels: Default::default(),
            interval_seconds: 1,
            token_hash: None,
            registered_at_ms: 0,
            hardware: None,
        });
        node.note_power_trouble(Some(7));
        node.note_power_trouble(Some(4));
        node.note_power_trouble(None);
        assert_eq!(node.power_trouble_ms, Some(7));
    }
}
