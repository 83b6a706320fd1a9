//! The web dashboard's files (`GET /`, `GET /assets/{file}`) and its settings
//! (`GET /api/v1/dashboard`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::nodes::history;
use crate::state::AppState;
use crate::web::dashboard::{self, Asset};
use crate::web::error::ApiError;

pub async fn page() -> Response {
    match dashboard::find("/") {
        Some(asset) => serve(asset),
        None => ApiError::NotFound("no dashboard page".into()).into_response(),
    }
}

pub async fn asset(Path(file): Path<String>) -> Response {
    match dashboard::find(&format!("/assets/{file}")) {
        Some(asset) => serve(asset),
        None => ApiError::NotFound(format!("no asset named {file:?}")).into_response(),
    }
}

fn serve(asset: &'static Asset) -> Response {
    let mut response = asset.body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The files change only with the binary; revalidating is cheap on a LAN.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(dashboard::CONTENT_SECURITY_POLICY),
    );
    response
}

/// What the page needs to know about the primary's settings.
pub async fn settings(State(state): State<AppState>) -> Json<Value> {
    Json(json!({
        "group_by": state.config.dashboard.group_by,
        "refresh_seconds": dashboard::REFRESH_SECONDS,
        "history": {
            "step_seconds": history::STEP_MS / 1000,
            "window_seconds": history::WINDOW_MS / 1000,
        },
        "version": env!("CARGO_PKG_VERSION"),
    }))
}
