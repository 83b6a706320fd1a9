//! Extractors that answer in the API's own error shape: JSON bodies, node and admin tokens.

use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::session;
use pivitals_common::limits::MAX_BODY_BYTES;

use crate::metrics::Metrics;
use crate::nodes::token;
use crate::state::AppState;

/// A JSON body; malformed JSON is 400, JSON of the wrong shape 422, too large 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::UnsupportedMediaType(
                "expected Content-Type: application/json".into(),
            ));
        }
        let body = match axum::body::Bytes::from_request(req, state).await {
            Ok(body) => body,
            Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Err(ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                });
            }
            Err(rejection) => return Err(ApiError::BadRequest(rejection.body_text())),
        };
        // The plain decoder for bodies that decode; axum's, which tracks the path of the field
        // at fault (a few percent of a push's CPU when always on), only to word a refusal.
        match serde_json::from_slice(&body) {
            Ok(value) => Ok(Self(value)),
            Err(_) => match axum::Json::<T>::from_bytes(&body) {
                Ok(axum::Json(value)) => Ok(Self(value)),
                Err(rejection) => Err(json_error(rejection)),
            },
        }
    }
}

/// `Content-Type: application/json`, or another JSON type (`application/…+json`), as axum's
/// own extractor accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json")
            || subtype.len() > 5
                && subtype.as_bytes()[subtype.len() - 5..].eq_ignore_ascii_case(b"+json"))
}

fn json_error(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
            limit: MAX_BODY_BYTES,
        },
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            ApiError::UnsupportedMediaType("expected Content-Type: application/json".into())
        }
        StatusCode::UNPROCESSABLE_ENTITY => ApiError::Unprocessable(text),
        _ => ApiError::BadRequest(text),
    }
}

/// A query string; one of the wrong shape is 400.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned> FromRequestParts<AppState> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::BadRequest(rejection.body_text())),
        }
    }
}

/// The node whose token authorised the request.
pub struct NodeAuth {
    pub name: String,
}

impl FromRequestParts<AppState> for NodeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let nodes = state.nodes();
        let node = nodes
            .by_token(token)
            .ok_or(ApiError::Unauthorized("unknown node token; register again"))?;
        Ok(Self {
            name: node.record.name.clone(),
        })
    }
}

/// A node allowed to push now: its token is known and its bucket
/// ([`crate::limits`]) holds a push; else 401, or 429 with `Retry-After`. Checked before the
/// body is read.
pub struct PushAuth {
    pub name: String,
}

impl FromRequestParts<AppState> for PushAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers).ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let limits = &state.config.limits;
        let mut nodes = state.nodes_mut();
        let node = nodes
            .by_token_mut(token)
            .ok_or(ApiError::Unauthorized("unknown node token; register again"))?;
        let name = node.record.name.clone();
        match node
            .push_bucket
            .take(Instant::now(), limits.push_burst, limits.push_refill)
        {
            Ok(()) => Ok(Self { name }),
            Err(wait) => {
                Metrics::add(&state.metrics.pushes_rate_limited, 1);
                Err(ApiError::TooManyRequests {
                    reason: format!(
                        "node {name:?} pushes more often than {} in a row and then one every {}; retry later",
                        limits.push_burst,
                        humantime::format_duration(limits.push_refill)
                    ),
                    retry_after: wait,
                })
            }
        }
    }
}

/// The request carried the enrollment token.
pub struct EnrollAuth;

impl FromRequestParts<AppState> for EnrollAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer(&parts.headers)
            .ok_or(ApiError::Unauthorized("missing bearer enrollment token"))?;
        if state.enroll_token.matches(token) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized("wrong enrollment token"))
        }
    }
}

/// The request carried the admin token as a bearer token, or the cookie of a live dashboard
/// session ([`crate::web::session`]). A bearer token, when there is one, decides alone. A
/// session cookie authorises a request that changes something (any method but `GET` and
/// `HEAD`) only together with the header `X-Pivitals-Session: 1`, else 403.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(token) = bearer(&parts.headers) {
            return check_admin_token(state, token).map(|()| Self);
        }
        admin_enabled(state)?;
        let Some(id) = session::session_id(&parts.headers) else {
            return Err(ApiError::Unauthorized("missing bearer admin token"));
        };
        if !state.sessions.is_valid(id, Instant::now()) {
            return Err(ApiError::Unauthorized(
                "the session has ended or expired; sign in again",
            ));
        }
        let reads_only = matches!(parts.method, Method::GET | Method::HEAD);
        if reads_only || session::has_session_header(&parts.headers) {
            Ok(Self)
        } else {
            Err(ApiError::Forbidden(
                "a request signed in by cookie that changes something must carry the header X-Pivitals-Session: 1",
            ))
        }
    }
}

/// The admin token the primary was given; 403 when it has none (the admin API is off).
fn admin_enabled(state: &AppState) -> Result<&str, ApiError> {
    state
        .config
        .admin_token
        .as_deref()
        .ok_or(ApiError::Forbidden(
            "admin API disabled: set PIVITALS_ADMIN_TOKEN on the primary",
        ))
}

/// Whether `token` is the admin token: 403 when the admin API is off, 401 when it is wrong.
pub fn check_admin_token(state: &AppState, token: &str) -> Result<(), ApiError> {
    if token::tokens_match(token, admin_enabled(state)?) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong admin token"))
    }
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_header_parsing() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer(&headers), None);
    }
}
