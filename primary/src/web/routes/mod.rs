//! The routes of the HTTP API and the dashboard: each turns a request into calls on the state,
//! the registry and the ingest path, and every failure into an [`ApiError`].

pub mod actions;
pub mod admin;
pub mod agents;
pub mod alerts;
pub mod dashboard;
pub mod install;
pub mod nodes;
pub mod ops;
pub mod placement;
pub mod session;
pub mod updates;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::state::AppState;
use crate::web::error::ApiError;
use pivitals_common::limits::MAX_BODY_BYTES;

pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/api/v1/register", post(agents::register))
        .route("/api/v1/vitals", post(agents::vitals))
        .route("/api/v1/goodbye", post(agents::goodbye))
        .route("/api/v1/nodes", get(nodes::list))
        .route("/api/v1/alerts", get(alerts::list))
        .route("/api/v1/placement", get(placement::rank))
        .route(
            "/api/v1/nodes/{name}",
            get(nodes::show).delete(nodes::remove),
        )
        .route("/api/v1/nodes/{name}/history", get(nodes::history))
        .route("/api/v1/dashboard", get(dashboard::settings))
        .route(
            "/api/v1/session",
            get(session::status)
                .post(session::sign_in)
                .delete(session::sign_out),
        )
        .route("/", get(dashboard::page))
        .route("/assets/{file}", get(dashboard::asset))
        .route(
            "/api/v1/admin/enroll-token/rotate",
            post(admin::rotate_enroll_token),
        )
        .route("/api/v1/actions", get(actions::list).post(actions::create))
        .route("/api/v1/actions/{id}", get(actions::show))
        .route("/api/v1/updates", post(updates::create))
        .route("/api/v1/updates/{id}", get(updates::show))
        .route("/api/v1/agent/actions", get(actions::poll))
        .route("/api/v1/agent/actions/{id}", post(actions::result))
        .route("/install.sh", get(install::script))
        .route("/agent/{file}", get(install::agent))
        .route("/api/v1/admin/install-command", get(install::command))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .route("/metrics/nodes", get(ops::node_metrics))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("method not allowed on this endpoint".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .with_state(state)
}

/// Answers 408 when a request, body included, takes longer than
/// `PIVITALS_LIMITS__REQUEST_TIMEOUT`, so a client that trickles or never finishes its body
/// does not hold a connection and a task for ever. (Reading the request head has its own
/// limit, in [`crate::web::serve`].)
async fn time_limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let limit = state.config.limits.request_timeout;
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::debug!(?limit, "request timed out");
            let mut response = ApiError::RequestTimeout(limit).into_response();
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
            response
        }
    }
}
