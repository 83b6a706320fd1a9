//! Extractors that answer in the API's own error shape: JSON bodies, node and admin tokens.

use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::MAX_BODY_BYTES;
use crate::auth;
use crate::error::ApiError;
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
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            match rejection.status() {
                StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge {
                    limit: MAX_BODY_BYTES,
                },
                _ => ApiError::BadRequest(rejection.body_text()),
            }
        })?;
        // axum's decoder tracks the path of every field it reads, for an error message that
        // names the field; that costs on every push. Only a body that fails is decoded again
        // with it.
        match serde_json::from_slice(&bytes) {
            Ok(value) => Ok(Self(value)),
            Err(_) => match axum::Json::<T>::from_bytes(&bytes) {
                Ok(axum::Json(value)) => Ok(Self(value)),
                Err(rejection) => Err(json_error(rejection)),
            },
        }
    }
}

/// `application/json`, or another `application/...+json` type, as axum's own extractor accepts.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    let Some((kind, subtype)) = essence.split_once('/') else {
        return false;
    };
    kind.eq_ignore_ascii_case("application")
        && (subtype.eq_ignore_ascii_case("json") || subtype.to_ascii_lowercase().ends_with("+json"))
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

/// The node whose token authorised the request.
pub struct NodeAuth {
    pub name: String,
}

impl FromRequestParts<AppState> for NodeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token =
            auth::bearer(&parts.headers).ok_or(ApiError::Unauthorized("missing bearer token"))?;
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
        let token =
            auth::bearer(&parts.headers).ok_or(ApiError::Unauthorized("missing bearer token"))?;
        let limits = &state.config.limits;
        let mut nodes = state.nodes_mut();
        let name = nodes
            .by_token(token)
            .ok_or(ApiError::Unauthorized("unknown node token; register again"))?
            .record
            .name
            .clone();
        let node = nodes
            .get_mut(&name)
            .ok_or(ApiError::Unauthorized("unknown node token; register again"))?;
        match node
            .push_bucket
            .take(Instant::now(), limits.push_burst, limits.push_refill)
        {
            Ok(()) => Ok(Self { name }),
            Err(wait) => {
                crate::metrics::Metrics::add(&state.metrics.pushes_rate_limited, 1);
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
        let token = auth::bearer(&parts.headers)
            .ok_or(ApiError::Unauthorized("missing bearer enrollment token"))?;
        if state.enroll_token.matches(token) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized("wrong enrollment token"))
        }
    }
}

/// The request carried the admin token.
pub struct AdminAuth;

impl FromRequestParts<AppState> for AdminAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let expected = state
            .config
            .admin_token
            .as_deref()
            .ok_or(ApiError::Forbidden(
                "admin API disabled: set PIVITALS_ADMIN_TOKEN on the primary",
            ))?;
        let token = auth::bearer(&parts.headers)
            .ok_or(ApiError::Unauthorized("missing bearer admin token"))?;
        if auth::tokens_match(token, expected) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized("wrong admin token"))
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn json_bodies_are_recognised_by_content_type_as_axum_does() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(value));
            is_json(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/vnd.api+json"));
        assert!(!with("text/plain"));
        assert!(!with("application/jsonx"));
        assert!(!with("json"));
        assert!(!is_json(&HeaderMap::new()));
    }
}
