//! `GET /api/v1/placement`: which up nodes can take a job, best first
//! ([`crate::placement`] is the spec). Readable without a token, like `GET /api/v1/nodes`,
//! whose figures it ranks; a bad parameter answers 400 with `{"error"}` naming it.

use std::time::Instant;

use axum::Json;
use axum::extract::State;

use crate::clock::now_ms;
use crate::placement::{self, Params, Ranking, Request, Snapshot};
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::ApiQuery;

pub async fn rank(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<Params>,
) -> Result<Json<Ranking>, ApiError> {
    let request = Request::parse(&params).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let (now, now_ms) = (Instant::now(), now_ms());
    let window_ms = i64::try_from(request.window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let snapshots: Vec<Snapshot> = {
        let nodes = state.nodes();
        nodes
            .iter()
            .map(|node| {
                let status = node.status_at(now, state.started);
                Snapshot::of(node, status, now_ms, window_ms)
            })
            .collect()
    };
    Ok(Json(placement::rank(&snapshots, &request)))
}
