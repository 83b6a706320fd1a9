//! Operating the primary: `GET /healthz`, `GET /metrics` (the primary's own counters) and
//! `GET /metrics/nodes` (every node's latest vitals and liveness, for Prometheus).

use std::io::Write;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use flate2::Compression;
use flate2::write::GzEncoder;
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
/// read lock is held only while the nodes are copied, never across an `await`. Gzipped (fast
/// level) when the scraper accepts it, as Prometheus does: about 100 series a node make 20 MB
/// of text at 2,000 nodes.
pub async fn node_metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let gzip = accepts_gzip(&headers);
    let body = tokio::task::spawn_blocking(move || {
        let nodes = node_metrics::snapshot(&state.nodes(), Instant::now(), state.started);
        let text = node_metrics::render(&nodes);
        if gzip {
            gzipped(text.as_bytes())
        } else {
            Ok(text.into_bytes())
        }
    })
    .await
    .map_err(|e| ApiError::internal("node metrics task", e))?
    .map_err(|e| ApiError::internal("node metrics gzip", e))?;
    let content_type = [(header::CONTENT_TYPE, node_metrics::CONTENT_TYPE)];
    Ok(if gzip {
        (content_type, [(header::CONTENT_ENCODING, "gzip")], body).into_response()
    } else {
        (content_type, body).into_response()
    })
}

/// Whether `Accept-Encoding` names gzip with a non-zero weight.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            parts
                .next()
                .is_some_and(|name| name.eq_ignore_ascii_case("gzip"))
                && parts.all(|param| param.replace(' ', "") != "q=0")
        })
}

fn gzipped(text: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(text.len() / 8), Compression::fast());
    encoder.write_all(text)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_is_used_only_when_accepted() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::ACCEPT_ENCODING, value.parse().unwrap());
            accepts_gzip(&headers)
        };
        assert!(!accepts_gzip(&HeaderMap::new()));
        assert!(with("gzip"));
        assert!(with("identity, GZIP;q=0.5"));
        assert!(!with("identity"));
        assert!(!with("gzip;q=0"));
        assert!(!with("deflate, br"));
    }
}
