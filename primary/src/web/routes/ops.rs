//! Operating the primary: `GET /healthz` and `GET /metrics`.

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::nodes::status::Status;
use crate::state::AppState;
use crate::web::prometheus;

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
