//! The durable registry of nodes: name, info, labels, interval, the hash of the node's
//! token and the hardware identity it registered with, kept in a redb database
//! (`DATA_DIR/registry.redb`) so it survives restarts.
//!
//! Every change is one redb write transaction committed with immediate durability: when a
//! registration is answered, the node's record is on disk. Calls block; callers run them on
//! the blocking pool.
//!
//! Records are versioned by their JSON shape, not by a number: a field added later is
//! `#[serde(default)]`, so a record written before it reads with the default (`hardware` is
//! `None` in records of primaries older than it, and stays so until the node registers
//! again). A primary older than a field ignores it when reading and drops it when it rewrites
//! the record (a node's new info), which only loses what it cannot use. A change that an older
//! reader would misread (a field that changes meaning or type) needs a new table instead.
//!
//! Beside the records, the table `last_known` keeps what was last seen of each node (the time
//! of its last push and its newest sample), so a restarted primary shows last known values
//! and "last seen" instead of blanks. It is display data, written as a whole every five
//! minutes and at a clean stop, so a crash loses at most that much of it; an unreadable entry
//! is skipped, never an error.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use pivitals_common::{HardwareIdentity, Labels, NodeInfo, VitalsPayload};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::packed::{PackError, Packed};

/// Page cache of the registry database. It is read once at start and written a record at a
/// time (registrations, changed facts, the last known state every 5 minutes); what the cache
/// misses comes from the operating system's file cache.
const CACHE_BYTES: usize = 256 * 1024;

const NODES: TableDefinition<&str, &[u8]> = TableDefinition::new("nodes");
const LAST_KNOWN: TableDefinition<&str, &[u8]> = TableDefinition::new("last_known");

/// What was last seen of a node: kept across restarts for display only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastKnown {
    /// Wall-clock time of its last accepted push, ms since the epoch.
    pub last_seen_ms: i64,
    /// Its newest sample.
    pub latest: Option<VitalsPayload>,
}

#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("registry database: {0}")]
    Database(#[from] redb::Error),
    #[error("registry record of {name} is unreadable: {source}")]
    Record {
        name: String,
        source: serde_json::Error,
    },
    #[error("registry record of {name}: {source}")]
    Pack { name: String, source: PackError },
    #[error("registry task: {0}")]
    Task(#[from] tokio::task::JoinError),
}

crate::redb_error::from_redb_errors!(RegistryError);

/// What the primary remembers of a node across restarts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeRecord {
    pub name: String,
    /// Packed: about 1.4 KB as values (a block for every name, address and list), read only
    /// by the node's page, `/metrics`, placement and updates ([`NodeRecord::info`]). Stored as
    /// the info itself.
    pub info: Packed<NodeInfo>,
    /// Shared: nodes with the same labels hold one copy ([`Nodes`](super::table::Nodes)
    /// interns them).
    #[serde(default)]
    pub labels: Arc<Labels>,
    pub interval_seconds: u64,
    /// Hex SHA-256 of the node token; `None` for the primary's own host.
    pub token_hash: Option<String>,
    pub registered_at_ms: i64,
    /// What the registering agent said of its board; `None` for records from before the field,
    /// nodes registered by agents older than it, and the primary's own host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareIdentity>,
}

impl NodeRecord {
    /// The node's info, unpacked; empty (and logged) in the case [`Packed::get`] rules out.
    pub fn info(&self) -> NodeInfo {
        self.info.get().unwrap_or_default()
    }
}

#[derive(Clone)]
pub struct Registry {
    db: Arc<Database>,
}

impl Registry {
    pub fn open(path: &Path) -> Result<Self, RegistryError> {
        // redb caches up to 1 GiB by default; the registry is read once at start.
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(path)?;
        // Create the table up front so that reads of an empty registry succeed.
        let txn = db.begin_write()?;
        txn.open_table(NODES)?;
        txn.open_table(LAST_KNOWN)?;
        txn.commit()?;
        Ok(Self { db: Arc::new(db) })
    }

    /// Runs `call` on the blocking pool, as every registry call from async code must.
    pub async fn blocking<T: Send + 'static>(
        &self,
        call: impl FnOnce(&Registry) -> Result<T, RegistryError> + Send + 'static,
    ) -> Result<T, RegistryError> {
        let registry = self.clone();
        tokio::task::spawn_blocking(move || call(&registry)).await?
    }

    pub fn load_all(&self) -> Result<Vec<NodeRecord>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(NODES)?;
        let mut records = Vec::new();
        for entry in table.iter()? {
            let (name, bytes) = entry?;
            let record =
                serde_json::from_slice(bytes.value()).map_err(|source| RegistryError::Record {
                    name: name.value().to_owned(),
                    source,
                })?;
            records.push(record);
        }
        Ok(records)
    }

    pub fn put(&self, record: &NodeRecord) -> Result<(), RegistryError> {
        let bytes = serde_json::to_vec(record).map_err(|source| RegistryError::Record {
            name: record.name.clone(),
            source,
        })?;
        let txn = self.db.begin_write()?;
        txn.open_table(NODES)?
            .insert(record.name.as_str(), bytes.as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Replaces the info of node `name` if it is still there with the token hash
    /// `token_hash` (a push racing a delete, or a delete and a new registration of the name,
    /// must not bring back or overwrite a record); the updated record, or None when it was
    /// not updated. One transaction, so the check and the write see the same record.
    pub fn update_info(
        &self,
        name: &str,
        token_hash: Option<&str>,
        info: &NodeInfo,
    ) -> Result<Option<NodeRecord>, RegistryError> {
        let txn = self.db.begin_write()?;
        let updated = {
            let mut table = txn.open_table(NODES)?;
            let current = match table.get(name)? {
                Some(bytes) => {
                    serde_json::from_slice::<NodeRecord>(bytes.value()).map_err(|source| {
                        RegistryError::Record {
                            name: name.to_owned(),
                            source,
                        }
                    })?
                }
                None => return Ok(None),
            };
            if current.token_hash.as_deref() != token_hash {
                return Ok(None);
            }
            let record = NodeRecord {
                info: Packed::pack(info).map_err(|source| RegistryError::Pack {
                    name: name.to_owned(),
                    source,
                })?,
                ..current
            };
            let bytes = serde_json::to_vec(&record).map_err(|source| RegistryError::Record {
                name: name.to_owned(),
                source,
            })?;
            table.insert(name, bytes.as_slice())?;
            record
        };
        txn.commit()?;
        Ok(Some(updated))
    }

    /// Removes a node (and what was last seen of it); returns whether it was there.
    pub fn remove(&self, name: &str) -> Result<bool, RegistryError> {
        let txn = self.db.begin_write()?;
        let removed = txn.open_table(NODES)?.remove(name)?.is_some();
        txn.open_table(LAST_KNOWN)?.remove(name)?;
        txn.commit()?;
        Ok(removed)
    }

    /// Replaces what is kept of the nodes' last state with `nodes` (one transaction), for
    /// nodes still in the registry only: a node deleted meanwhile is not brought back. `nodes`
    /// is consumed one at a time, so a caller can hand them over a few at a time.
    pub fn save_last_known(
        &self,
        nodes: impl IntoIterator<Item = (String, LastKnown)>,
    ) -> Result<(), RegistryError> {
        let txn = self.db.begin_write()?;
        {
            let registered = txn.open_table(NODES)?;
            txn.delete_table(LAST_KNOWN)?;
            let mut table = txn.open_table(LAST_KNOWN)?;
            for (name, last) in nodes {
                if registered.get(name.as_str())?.is_none() {
                    continue;
                }
                let bytes = serde_json::to_vec(&last).map_err(|source| RegistryError::Record {
                    name: name.clone(),
                    source,
                })?;
                table.insert(name.as_str(), bytes.as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// What was last seen of each node, by name; unreadable entries are left out (logged).
    pub fn load_last_known(&self) -> Result<HashMap<String, LastKnown>, RegistryError> {
        let txn = self.db.begin_read()?;
        let table = txn.open_table(LAST_KNOWN)?;
        let mut known = HashMap::new();
        for entry in table.iter()? {
            let (name, bytes) = entry?;
            match serde_json::from_slice(bytes.value()) {
                Ok(last) => {
                    known.insert(name.value().to_owned(), last);
                }
                Err(e) => {
                    tracing::warn!(node = name.value(), error = %e, "last known state unreadable; skipped");
                }
            }
        }
        Ok(known)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> NodeRecord {
        NodeRecord {
            name: name.into(),
            info: Packed::pack(&NodeInfo {
                hostname: name.into(),
                ..Default::default()
            })
            .unwrap(),
            labels: Arc::new([("stack".to_string(), "1".to_string())].into()),
            interval_seconds: 60,
            token_hash: Some("ab".repeat(32)),
            registered_at_ms: 1,
            hardware: Some(HardwareIdentity {
                serial: Some("10000000a1b2c3d4".into()),
                machine_id: None,
            }),
        }
    }

    /// A record as primaries before the `hardware` field wrote it reads with none, and one
    /// with it keeps it across a reopening.
    #[test]
    fn records_without_a_hardware_identity_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        let old = serde_json::json!({
            "name": "pi-old",
            "info": NodeInfo::default(),
            "labels": {},
            "interval_seconds": 60,
            "token_hash": "cd".repeat(32),
            "registered_at_ms": 5,
        });
        {
            let registry = Registry::open(&path).unwrap();
            let txn = registry.db.begin_write().unwrap();
            txn.open_table(NODES)
                .unwrap()
                .insert("pi-old", serde_json::to_vec(&old).unwrap().as_slice())
                .unwrap();
            txn.commit().unwrap();
            registry.put(&record("pi-new")).unwrap();
        }
        let registry = Registry::open(&path).unwrap();
        let records = registry.load_all().unwrap();
        assert_eq!(records.len(), 2);
        let by_name = |name: &str| records.iter().find(|r| r.name == name).unwrap();
        assert_eq!(by_name("pi-old").hardware, None);
        assert_eq!(by_name("pi-old").registered_at_ms, 5);
        assert_eq!(by_name("pi-new").hardware, record("pi-new").hardware);
    }

    #[test]
    fn the_last_known_state_survives_reopening_and_goes_with_its_node() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        let seen = |ms: i64| LastKnown {
            last_seen_ms: ms,
            latest: None,
        };
        {
            let registry = Registry::open(&path).unwrap();
            registry.put(&record("pi-1")).unwrap();
            registry.put(&record("pi-2")).unwrap();
            registry
                .save_last_known([
                    ("pi-1".into(), seen(10)),
                    ("pi-2".into(), seen(20)),
                    ("gone".into(), seen(30)),
                ])
                .unwrap();
        }
        let registry = Registry::open(&path).unwrap();
        let known = registry.load_last_known().unwrap();
        assert_eq!(known.len(), 2, "a node not in the registry is not kept");
        assert_eq!(known["pi-1"], seen(10));
        assert!(registry.remove("pi-2").unwrap());
        assert!(!registry.load_last_known().unwrap().contains_key("pi-2"));
        registry
            .save_last_known([("pi-1".into(), seen(11))])
            .unwrap();
        assert_eq!(registry.load_last_known().unwrap()["pi-1"], seen(11));
    }

    #[test]
    fn records_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        {
            let registry = Registry::open(&path).unwrap();
            assert!(registry.load_all().unwrap().is_empty());
            registry.put(&record("pi-1")).unwrap();
            registry.put(&record("pi-2")).unwrap();
            assert!(registry.remove("pi-2").unwrap());
            assert!(!registry.remove("pi-2").unwrap());
        }
        let registry = Registry::open(&path).unwrap();
        assert_eq!(registry.load_all().unwrap(), vec![record("pi-1")]);
    }

    #[test]
    fn info_is_updated_only_for_the_same_token() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.redb");
        let info = NodeInfo {
            hostname: "renamed".into(),
            default_interface: Some("eth0".into()),
            ..Default::default()
        };
        {
            let registry = Registry::open(&path).unwrap();
            registry.put(&record("pi-1")).unwrap();
            let token = record("pi-1").token_hash;
            assert_eq!(
                registry
                    .update_info("pi-2", token.as_deref(), &info)
                    .unwrap(),
                None
            );
            assert_eq!(
                registry.update_info("pi-1", Some("cd"), &info).unwrap(),
                None
            );
            let updated = registry
                .update_info("pi-1", token.as_deref(), &info)
                .unwrap();
            assert_eq!(updated.map(|r| r.info()), Some(info.clone()));
        }
        let registry = Registry::open(&path).unwrap();
        let records = registry.load_all().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].info(), info);
        assert_eq!(records[0].labels, record("pi-1").labels);
    }
}
