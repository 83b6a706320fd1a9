//! The HTTP API. **Architecture Invariant:** only this module knows HTTP; it turns requests
//! into calls on the state, the registry and the ingest path, and every failure into
//! [`ApiError`](crate::error::ApiError).

mod agents;
mod dashboard;
mod extract;
mod nodes;
mod ops;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

use crate::error::ApiError;
use crate::state::AppState;

/// Request bodies above this are answered 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/register", post(agents::register))
        .route("/api/v1/vitals", post(agents::vitals))
        .route("/api/v1/goodbye", post(agents::goodbye))
        .route("/api/v1/nodes", get(nodes::list))
        .route(
            "/api/v1/nodes/{name}",
            get(nodes::show).delete(nodes::remove),
        )
        .route("/api/v1/nodes/{name}/history", get(nodes::history))
        .route("/api/v1/dashboard", get(dashboard::settings))
        .route("/", get(dashboard::page))
        .route("/assets/{file}", get(dashboard::asset))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this endpoint".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}
