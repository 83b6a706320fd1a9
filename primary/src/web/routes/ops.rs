//! Operating the primary: `GET /healthz`, `GET /metrics` (the primary's own counters) and
//! `GET /metrics/nodes` (every node's latest vitals and liveness, for Prometheus).

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::nodes::status::Status;
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::{node_metrics, prometheus};

pub async fn healthz(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "nodes": state.nodes().len(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let now = Instant::now();
    let mut counts = Status::ALL.map(|s| (s.as_str(), 0usize));
    for node in state.nodes().iter() {
        let status = node.status_at(now, state.started);
        if let Some(slot) = counts.iter_mut().find(|(name, _)| *name == status.as_str()) {
            slot.1 += 1;
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        prometheus::render(
            &state.metrics,
            &counts,
            &state.spool.stats(),
            crate::clock::now_ms(),
            state.alerting.counts(),
        ),
    )
}

/// Every node's latest vitals and liveness as Prometheus text. Like `/metrics` it needs no
/// token. The work (about 10 ms to copy and 25 ms to render 2,000 nodes on a server core,
/// several times that on a Pi) runs on a blocking thread so it stalls no request; the table's
/// read lock is held only while the nodes are copied, never across an `await`.
pub async fn node_metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = tokio::task::spawn_blocking(move || {
        let nodes = node_metrics::snapshot(&state.nodes(), Instant::now(), state.started);
        node_metrics::render(&nodes)
    })
    .await
    .map_err(|e| ApiError::internal("node metrics task", e))?;
    Ok(([(header::CONTENT_TYPE, node_metrics::CONTENT_TYPE)], text))
}
