//! The one error type of the HTTP API: every failure answers a status and `{"error": "..."}`;
//! the domain's error enums are mapped to it here.
//!
//! Bad input is the client's problem: it answers 4xx and is logged at debug level at most.
//! Internal failures answer a generic 500 and their detail is logged.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use thiserror::Error;

use crate::ingest::IngestError;

#[derive(Debug, Error)]
pub enum ApiError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("{0}")]
    Conflict(String),
    #[error("the request took longer than {0:?}")]
    RequestTimeout(Duration),
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("{0}")]
    Unprocessable(String),
    #[error("{reason}")]
    TooManyRequests {
        reason: String,
        retry_after: Duration,
    },
    #[error("{reason}")]
    Unavailable {
        reason: &'static str,
        retry_after: Duration,
    },
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// For failures of blocking work (the registry) that must not leak details to clients.
    pub fn internal(context: &str, err: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{context}: {err}"))
    }
}

impl From<IngestError> for ApiError {
    fn from(err: IngestError) -> Self {
        match err {
            IngestError::AheadOfClock { .. }
            | IngestError::TooOld { .. }
            | IngestError::Unencodable { .. } => Self::Unprocessable(err.to_string()),
            IngestError::SpoolFull => Self::Unavailable {
                reason: "the primary's spool is full while the storage catches up; retry later",
                retry_after: Duration::from_secs(30),
            },
            IngestError::ShuttingDown => Self::Unavailable {
                reason: "the primary is shutting down",
                retry_after: Duration::from_secs(10),
            },
            IngestError::Spool(detail) => Self::Internal(detail),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let Self::Internal(detail) = &self {
            tracing::error!(%detail, "request failed");
        }
        let mut response = (status, Json(json!({ "error": self.to_string() }))).into_response();
        if let Self::Unavailable { retry_after, .. } | Self::TooManyRequests { retry_after, .. } =
            self
            && let Ok(value) =
                HeaderValue::from_str(&(retry_after.as_secs_f64().ceil() as u64).max(1).to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}
