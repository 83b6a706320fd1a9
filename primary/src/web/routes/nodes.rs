//! Reading and removing nodes: `GET /api/v1/nodes`, `GET|DELETE /api/v1/nodes/{name}`, and a
//! node's history: `GET /api/v1/nodes/{name}/history` (the last hour in memory, or with
//! `range=1h|6h|24h|7d|30d` from the rollups or InfluxDB).

use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pivitals_common::{Labels, NodeInfo, VitalsPayload};
use serde::{Deserialize, Serialize};

use crate::clock::{now_ms, rfc3339};
use crate::history::{Range, SeriesPoints, Window};
use crate::nodes::history::{self, HistoryPoint};
use crate::nodes::status::Status;
use crate::nodes::table::LiveNode;
use crate::state::{AppState, HistorySource};
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
        let info = node.record.info();
        Self {
            name: node.record.name.clone(),
            status: node.status_at(now, started),
            last_seen: node.last_seen_ms.and_then(rfc3339),
            labels: Labels::clone(&node.record.labels),
            primary_ipv4: info.primary_ipv4().map(str::to_owned),
            primary_ipv6: info.primary_ipv6().map(str::to_owned),
            info,
            interval_seconds: node.record.interval_seconds,
            registered_at: rfc3339(node.record.registered_at_ms),
            latest: node.latest(),
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
    /// One of `1h`, `6h`, `24h`, `7d`, `30d`: the ranged history instead of the last hour
    /// in memory.
    range: Option<String>,
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

/// A node's history over a range: at most 300 points per series, each
/// `[ts_ms, mean, min, max]`.
#[derive(Debug, Serialize)]
pub struct RangedHistoryView {
    pub node: String,
    pub range: &'static str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_seconds: i64,
    /// `rollups` (the embedded default) or `influxdb`.
    pub source: &'static str,
    pub series: SeriesPoints,
}

/// `GET /api/v1/nodes/{name}/history`: the last hour in memory, or with `range` the
/// ranged history from the rollups or InfluxDB (502 when InfluxDB fails or is slower than
/// 10 s).
pub async fn history(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(query): ApiQuery<HistoryQuery>,
) -> Result<Response, ApiError> {
    let range = query
        .range
        .as_deref()
        .map(str::parse::<Range>)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("{e} (parameter range)")))?;
    let Some(range) = range else {
        let nodes = state.nodes();
        let node = nodes
            .get(&name)
            .ok_or_else(|| ApiError::NotFound(format!("no node named {name:?}")))?;
        return Ok(Json(HistoryView {
            node: name.clone(),
            step_seconds: node.history.step_ms() / 1000,
            window_seconds: history::WINDOW_MS / 1000,
            interval_seconds: node.record.interval_seconds,
            points: node.history.points(query.since_ms, now_ms()),
        })
        .into_response());
    };
    if state.nodes().get(&name).is_none() {
        return Err(ApiError::NotFound(format!("no node named {name:?}")));
    }
    let now = now_ms();
    let (window, series, source) = match &state.history {
        HistorySource::Rollups(rollups) => {
            let (window, series) = rollups
                .answer(&name, range, now)
                .await
                .map_err(|e| ApiError::internal("rollups", e))?;
            (window, series, "rollups")
        }
        HistorySource::Influx(reader) => {
            let window = Window::new(range, now, 1000);
            match reader.history(&name, &window).await {
                Ok(series) => (window, series, "influxdb"),
                Err(error) => {
                    tracing::warn!(node = %name, %error, "history query failed");
                    return Ok((
                        StatusCode::BAD_GATEWAY,
                        Json(serde_json::json!({ "error": error.to_string() })),
                    )
                        .into_response());
                }
            }
        }
        HistorySource::Off => {
            return Err(ApiError::Unavailable {
                reason: "this primary keeps no ranged history",
                retry_after: std::time::Duration::from_secs(60),
            });
        }
    };
    Ok(Json(RangedHistoryView {
        node: name,
        range: range.name(),
        from_ms: window.from_ms,
        to_ms: window.to_ms,
        step_seconds: window.step_ms / 1000,
        source,
        series,
    })
    .into_response())
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
    if let HistorySource::Rollups(rollups) = &state.history
        && let Err(error) = rollups.remove_node(&name).await
    {
        // The node is gone; its display data is pruned by age at the latest.
        tracing::warn!(node = %name, %error, "rollups of a deleted node not deleted");
    }
    state.alerting.node_gone(&name, &labels, now_ms());
    tracing::info!(node = %name, "node deregistered");
    Ok(StatusCode::NO_CONTENT)
}
