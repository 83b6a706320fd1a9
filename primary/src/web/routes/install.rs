//! The one-line installer over HTTP: `GET /install.sh`, `GET /agent/{arch}`,
//! `GET /agent/{arch}.sha256`, `GET /agent/{arch}.sig` and `GET /api/v1/admin/install-command`.
//!
//! | request | answer |
//! |---|---|
//! | `GET /install.sh` | the script with this primary's URL; 404 when `PIVITALS_AGENT_BINARIES` is unset |
//! | `GET /agent/{arch}` | the binary, `application/octet-stream`, its hash in `X-Pivitals-Sha256`; 404 naming the arch when it is not served |
//! | `GET /agent/{arch}.sha256` | `HASH  pivitals-agent-<arch>\n`, as `sha256sum` prints it |
//! | `GET /agent/{arch}.sig` | the 64-byte Ed25519 signature of the binary, `application/octet-stream`, when `pivitals-agent-<arch>.sig` sits beside it; 404 otherwise |
//! | `GET /api/v1/admin/install-command` | admin only: `{"command": "curl -fsSL URL/install.sh \| sudo sh -s -- --token TOKEN"}` |
//!
//! The URL is `PIVITALS_PUBLIC_URL`, else the scheme this primary serves (HTTPS when
//! `PIVITALS_TLS__*` is set) and the request's `Host`; a `Host` that is not a plain host and
//! port answers 400 rather than being written into a script.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::install::{self, AgentBinaries, Arch};
use crate::nodes::enroll;
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::AdminAuth;

/// The header carrying a served binary's SHA-256 (lower-case hex).
pub const SHA256_HEADER: &str = "x-pivitals-sha256";

pub async fn script(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let answer = served(&state).and_then(|_| primary_url(&state, &headers));
    match answer {
        Ok(url) => {
            let mut response = install::render_script(&url).into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/x-shellscript; charset=utf-8"),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /agent/{arch}`, `GET /agent/{arch}.sha256` and `GET /agent/{arch}.sig` (one path
/// segment, so one route).
pub async fn agent(State(state): State<AppState>, Path(file): Path<String>) -> Response {
    match agent_file(&state, &file).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn agent_file(state: &AppState, file: &str) -> Result<Response, ApiError> {
    let binaries = served(state)?;
    let (arch_name, part) = if let Some(arch) = file.strip_suffix(".sha256") {
        (arch, Part::Checksum)
    } else if let Some(arch) = file.strip_suffix(".sig") {
        (arch, Part::Signature)
    } else {
        (file, Part::Binary)
    };
    let arch: Arch = arch_name
        .parse()
        .map_err(|e: install::UnknownArch| ApiError::NotFound(e.to_string()))?;
    let binary = binaries.get(arch).ok_or_else(|| {
        ApiError::NotFound(format!(
            "this primary serves no agent binary for {arch} (no {} in PIVITALS_AGENT_BINARIES)",
            arch.file_name()
        ))
    })?;
    let hash =
        HeaderValue::from_str(&binary.sha256).map_err(|e| ApiError::internal("binary hash", e))?;
    if part == Part::Signature {
        let signature = binary.signature.clone().ok_or_else(|| {
            ApiError::NotFound(format!(
                "this primary serves no signature for {arch} (no {}.sig in PIVITALS_AGENT_BINARIES)",
                arch.file_name()
            ))
        })?;
        let mut response = Body::from(signature).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        return Ok(response);
    }
    if part == Part::Checksum {
        let line = format!("{}  {}\n", binary.sha256, arch.file_name());
        let mut response = line.into_response();
        response.headers_mut().insert(SHA256_HEADER, hash);
        return Ok(response);
    }
    let bytes = tokio::fs::read(&binary.path)
        .await
        .map_err(|e| ApiError::internal("reading an agent binary", e))?;
    let mut response = Body::from(bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(SHA256_HEADER, hash);
    Ok(response)
}

/// Which file of an architecture `GET /agent/…` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Binary,
    Checksum,
    Signature,
}

/// The line the dashboard shows an admin: the installer with the current enrollment token.
pub async fn command(
    State(state): State<AppState>,
    _admin: AdminAuth,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    served(&state)?;
    let url = primary_url(&state, &headers)?;
    let token = current_enroll_token(&state).await?;
    Ok(Json(json!({
        "command": format!("curl -fsSL {url}/install.sh | sudo sh -s -- --token {token}"),
    })))
}

/// The configured token, else the stored one (rotation writes the file before it takes effect).
async fn current_enroll_token(state: &AppState) -> Result<String, ApiError> {
    if let Some(token) = &state.config.enroll_token {
        return Ok(token.trim().to_owned());
    }
    let path = state.config.data_dir.join(enroll::FILE_NAME);
    let text = tokio::fs::read_to_string(&path)
        .await
        .map_err(|e| ApiError::internal("reading the enrollment token", e))?;
    Ok(text.trim().to_owned())
}

fn served(state: &AppState) -> Result<&AgentBinaries, ApiError> {
    state.agent_binaries.as_deref().ok_or_else(|| {
        ApiError::NotFound(
            "this primary serves no agent binaries: set PIVITALS_AGENT_BINARIES to a directory of pivitals-agent-<arch> files".into(),
        )
    })
}

fn primary_url(state: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(url) = &state.config.public_url {
        return Ok(url.trim_end_matches('/').to_owned());
    }
    let scheme = if state.config.tls.cert.is_some() {
        "https"
    } else {
        "http"
    };
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    install::url_from_host(scheme, host).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "the Host header {host:?} is not a host and port; set PIVITALS_PUBLIC_URL"
        ))
    })
}
