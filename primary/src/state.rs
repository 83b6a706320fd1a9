//! What the primary holds at run time: the live node table ([`Nodes`], rebuilt from the
//! registry at start) and the handles every request and task needs, in one [`Shared`].

use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use pivitals_common::{NodeInfo, VitalsPayload};

use crate::actions::Actions;
use crate::alerts::runtime::AlertRuntime;
use crate::alerts::webhook::Alerts;
use crate::clock::now_ms;
use crate::config::PrimaryConfig;
use crate::history::Rollups;
use crate::metrics::Metrics;
use crate::nodes::enroll::EnrollToken;
use crate::nodes::history::Summary;
use crate::nodes::registry::{Registry, RegistryError};
use crate::nodes::table::{Newest, Nodes};
use crate::sessions::SessionStore;
use crate::storage::influx::InfluxReader;
use crate::storage::spool::Spool;

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
    /// The alert rules: the engine, its channels' queues and the recently resolved alerts.
    pub alerting: AlertRuntime,
    /// The actions asked of nodes and their results, in memory.
    pub actions: Actions,
    /// The agent updates ("update agents") and each node's progress, in memory.
    pub rollouts: crate::actions::rollout::Rollouts,
    /// The dashboard's sign-in sessions, in memory.
    pub sessions: SessionStore,
    /// The agent binaries the installer downloads (`PIVITALS_AGENT_BINARIES`), hashed at start.
    pub agent_binaries: Option<Arc<crate::install::AgentBinaries>>,
    /// Where the ranged history (1 h to 30 d) comes from.
    pub history: HistorySource,
}

/// Where the ranged history comes from: the rollups on the embedded default, InfluxDB when
/// it is configured.
pub enum HistorySource {
    Rollups(Rollups),
    Influx(Box<InfluxReader>),
    /// Kept nowhere (router tests without a running primary).
    Off,
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

    /// Stores node `name`'s new info in the registry (durable) and then in the live table,
    /// unless the node was deleted, or deleted and registered again with another token hash
    /// than `token_hash`, meanwhile; returns whether it was stored.
    pub async fn update_info(
        &self,
        name: &str,
        token_hash: Option<String>,
        info: NodeInfo,
    ) -> Result<bool, RegistryError> {
        let (key, hash) = (name.to_owned(), token_hash.clone());
        let updated = self
            .registry
            .blocking(move |registry| registry.update_info(&key, hash.as_deref(), &info))
            .await?;
        Ok(updated.is_some_and(|record| {
            self.nodes_mut()
                .set_info(name, token_hash.as_deref(), record.info)
        }))
    }

    /// Notes an accepted push (or self-sample): the node is seen now, every sample joins its
    /// recent [`History`](crate::nodes::history::History), and the newest is kept.
    pub fn record_push(&self, name: &str, samples: &[VitalsPayload]) {
        let now = now_ms();
        let summaries: Vec<(i64, Summary)> = samples
            .iter()
            .map(|s| (s.timestamp_ms, Summary::of(s)))
            .collect();
        let power_trouble_ms = crate::nodes::table::newest_power_trouble(samples);
        // Packed before the lock is taken: the table's writers wait for no encoding.
        let newest = samples
            .iter()
            .max_by_key(|s| s.timestamp_ms)
            .and_then(Newest::of);
        let mut nodes = self.nodes_mut();
        let Some(node) = nodes.get_mut(name) else {
            return;
        };
        for (ts, summary) in &summaries {
            node.history.record(*ts, summary, now);
        }
        // Under the table's lock: a node deleted meanwhile gets no rollups back.
        if let HistorySource::Rollups(rollups) = &self.history {
            rollups.record(name, samples, now);
        }
        node.note_power_trouble(power_trouble_ms);
        node.last_seen_ms = Some(now);
        node.last_seen_at = Some(Instant::now());
        node.stopped = false;
        if let Some(newest) = newest {
            node.keep_newest(newest);
        }
    }
}
