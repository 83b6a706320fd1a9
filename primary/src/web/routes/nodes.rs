//! Reading and removing nodes: `GET /api/v1/nodes`, `GET|DELETE /api/v1/nodes/{name}`, and a
//! node's last hour: `GET /api/v1/nodes/{name}/history`.

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pivitals_common::{Labels, NodeInfo, VitalsPayload};
use serde::{Deserialize, Serialize};

use crate::clock::{now_ms, rfc3339};
use crate::nodes::history::{self, HistoryPoint};
use crate::nodes::status::Status;
use crate::nodes::table::LiveNode;
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::{AdminAuth, ApiQuery};

/// A node as the API shows it.
#[derive(Debug, Serialize)]
pub struct NodeView {
    pub name: String,
    pub status: Status,
    /// RFC 3339, UTC; `null` when the node has not pushed since the primary started.
    pub last_seen: Option<String>,
    pub labels: Labels,
    pub info: NodeInfo,
    /// The first IPv4 address of the default route's interface (else of any interface), from
    /// `info`: the address to `ssh` to. `null` when the node reported none.
    pub primary_ipv4: Option<String>,
    /// The same for IPv6 (link-local addresses are never reported).
    pub primary_ipv6: Option<String>,
    pub interval_seconds: u64,
    pub registered_at: Option<String>,
    pub latest: Option<VitalsPayload>,
}

impl NodeView {
    fn of(node: &LiveNode, now: Instant, started: Instant) -> Self {
        Self {
            name: node.record.name.clone(),
            status: node.status_at(now, started),
            last_seen: node.last_seen_ms.and_then(rfc3339),
            labels: node.record.labels.clone(),
            info: node.record.info.clone(),
            primary_ipv4: node.record.info.primary_ipv4().map(str::to_owned),
            primary_ipv6: node.record.info.primary_ipv6().map(str::to_owned),
            interval_seconds: node.record.interval_seconds,
            registered_at: rfc3339(node.record.registered_at_ms),
            latest: node.latest.clone(),
        }
    }
}

pub async fn list(State(state): State<AppState>) -> Json<Vec<NodeView>> {
    let now = Instant::now();
    let nodes = state.nodes();
    Json(
        nodes
            .iter()
            .map(|n| NodeView::of(n, now, state.started))
            .collect(),
    )
}

pub async fn show(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Json<NodeView>, ApiError> {
    let nodes = state.nodes();
    let node = nodes
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no node named {name:?}")))?;
    Ok(Json(NodeView::of(node, Instant::now(), state.started)))
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    /// Only the slots that start at or after this time (ms since the epoch), or contain it;
    /// a page polling for news asks from its newest point, which may still be filling.
    since_ms: Option<i64>,
}

/// A node's last hour, one point per slot.
#[derive(Debug, Serialize)]
pub struct HistoryView {
    pub node: String,
    pub step_seconds: i64,
    pub window_seconds: i64,
    pub interval_seconds: u64,
    pub points: Vec<HistoryPoint>,
}

pub async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Json<HistoryView>, ApiError> {
    let nodes = state.nodes();
    let node = nodes
        .get(&name)
        .ok_or_else(|| ApiError::NotFound(format!("no node named {name:?}")))?;
    Ok(Json(HistoryView {
        node: name.clone(),
        step_seconds: node.history.step_ms() / 1000,
        window_seconds: history::WINDOW_MS / 1000,
        interval_seconds: node.record.interval_seconds,
        points: node.history.points(query.since_ms, now_ms()),
    }))
}

pub async fn remove(
    State(state): State<AppState>,
    _admin: AdminAuth,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    let Some(labels) = state.nodes().get(&name).map(|n| n.record.labels.clone()) else {
        return Err(ApiError::NotFound(format!("no node named {name:?}")));
    };
    let key = name.clone();
    state
        .registry
        .blocking(move |registry| registry.remove(&key))
        .await
        .map_err(|e| ApiError::internal("registry", e))?;
    state.nodes_mut().remove(&name);
    state.alerting.node_gone(&name, &labels, now_ms());
    tracing::info!(node = %name, "node deregistered");
    Ok(StatusCode::NO_CONTENT)
}
