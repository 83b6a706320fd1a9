//! Admin calls beyond deleting nodes: `POST /api/v1/admin/enroll-token/rotate`.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::nodes::enroll::RotateError;
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AdminAuth;

/// Replaces the enrollment token; the reply carries the new one. Registered nodes keep
/// pushing with their own tokens; only new registrations need the new enrollment token.
pub async fn rotate_enroll_token(
    State(state): State<AppState>,
    _admin: AdminAuth,
) -> Result<Json<Value>, ApiError> {
    let shared = state.clone();
    let rotated =
        tokio::task::spawn_blocking(move || shared.enroll_token.rotate(&shared.config.data_dir))
            .await
            .map_err(|e| ApiError::internal("rotation task", e))?;
    match rotated {
        Ok(token) => {
            tracing::info!("enrollment token rotated");
            Ok(Json(json!({ "enroll_token": token })))
        }
        Err(e @ RotateError::Configured) => Err(ApiError::Conflict(e.to_string())),
        Err(e @ RotateError::Io(_)) => Err(ApiError::internal("enrollment token", e)),
    }
}
