//! Which nodes an action is for: a selector (names, labels or all) against the live table.

use std::collections::BTreeSet;

use pivitals_common::Labels;
use thiserror::Error;

use super::store::NewTarget;
use crate::nodes::table::Nodes;

/// Exactly one way to choose nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// These nodes, by name; each must be registered.
    Names(Vec<String>),
    /// Every node carrying all these labels (at least one).
    Labels(Labels),
    /// Every node.
    All,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TargetError {
    #[error("no such node: {}", .0.join(", "))]
    UnknownNodes(Vec<String>),
    #[error("node {0:?} is the primary's own host: it runs no agent and takes no action")]
    OwnHost(String),
    #[error("the selector matches no node")]
    NoTarget,
    #[error("select nodes with at least one label")]
    NoLabels,
}

/// The names of the nodes `selector` chooses, sorted, each once. Only nodes with an agent
/// (a node token) are chosen; naming the primary's own host is an error.
pub fn resolve(selector: &Selector, nodes: &Nodes) -> Result<Vec<String>, TargetError> {
    let with_agent = |n: &&crate::nodes::table::LiveNode| n.record.token_hash.is_some();
    let chosen: BTreeSet<String> = match selector {
        Selector::Names(names) => {
            let unknown: BTreeSet<&String> =
                names.iter().filter(|n| nodes.get(n).is_none()).collect();
            if !unknown.is_empty() {
                return Err(TargetError::UnknownNodes(
                    unknown.into_iter().cloned().collect(),
                ));
            }
            if let Some(own) = names
                .iter()
                .find(|n| nodes.get(n).is_some_and(|n| n.record.token_hash.is_none()))
            {
                return Err(TargetError::OwnHost(own.clone()));
            }
            names.iter().cloned().collect()
        }
        Selector::Labels(labels) => {
            if labels.is_empty() {
                return Err(TargetError::NoLabels);
            }
            nodes
                .iter()
                .filter(with_agent)
                .filter(|n| {
                    labels
                        .iter()
                        .all(|(k, v)| n.record.labels.get(k) == Some(v))
                })
                .map(|n| n.record.name.clone())
                .collect()
        }
        Selector::All => nodes
            .iter()
            .filter(with_agent)
            .map(|n| n.record.name.clone())
            .collect(),
    };
    if chosen.is_empty() {
        return Err(TargetError::NoTarget);
    }
    Ok(chosen.into_iter().collect())
}

/// `names` (as [`resolve`] chose them) with each node's labels, which its `action` points
/// carry like every other point of the node.
pub fn with_labels(names: &[String], nodes: &Nodes) -> Vec<NewTarget> {
    names
        .iter()
        .map(|name| NewTarget {
            node: name.clone(),
            labels: nodes
                .get(name)
                .map(|n| Labels::clone(&n.record.labels))
                .unwrap_or_default(),
        })
        .collect()
}
