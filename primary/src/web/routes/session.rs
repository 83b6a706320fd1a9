//! The dashboard's sign-in: `POST /api/v1/session` `{"token": ...}` signs in with the admin
//! token and sets the session cookie, `GET /api/v1/session` says whether the request's cookie
//! names a live session, `DELETE /api/v1/session` signs out. The rules are in
//! [`crate::web::session`].

use std::time::Instant;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::{ApiJson, check_admin_token};
use crate::web::session;

/// `POST /api/v1/session`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    token: String,
}

/// 200 `{signed_in: true, expires_in_seconds}` with the cookie; 401 a wrong token; 403 when
/// the primary has no admin token.
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<SignIn>,
) -> Result<Response, ApiError> {
    check_admin_token(&state, request.token.trim()).inspect_err(|e| {
        tracing::info!(error = %e, "dashboard sign-in refused");
    })?;
    let id = state
        .sessions
        .create(Instant::now())
        .map_err(|e| ApiError::internal("session", e))?;
    let lifetime = state.sessions.lifetime();
    let cookie = session::set_cookie(&id, lifetime, serves_tls(&state));
    tracing::info!("dashboard signed in");
    with_cookie(
        Json(json!({"signed_in": true, "expires_in_seconds": lifetime.as_secs()})),
        &cookie,
    )
}

/// 200 `{signed_in, admin_enabled}`; never an error, so the page can always ask.
pub async fn status(State(state): State<AppState>, headers: HeaderMap) -> Json<serde_json::Value> {
    let signed_in =
        session::session_id(&headers).is_some_and(|id| state.sessions.is_valid(id, Instant::now()));
    Json(json!({
        "signed_in": signed_in,
        "admin_enabled": state.config.admin_token.is_some(),
    }))
}

/// 200 `{signed_in: false}`: the session (if any) is deleted and the cookie cleared.
pub async fn sign_out(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if session::session_id(&headers).is_some_and(|id| state.sessions.remove(id)) {
        tracing::info!("dashboard signed out");
    }
    with_cookie(
        Json(json!({"signed_in": false})),
        &session::clear_cookie(serves_tls(&state)),
    )
}

fn serves_tls(state: &AppState) -> bool {
    state.config.tls.cert.is_some()
}

fn with_cookie(body: impl IntoResponse, cookie: &str) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(cookie).map_err(|e| ApiError::internal("cookie", e))?;
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::SET_COOKIE, value);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
