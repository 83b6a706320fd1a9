//! "Update agents" over HTTP: the admin's `POST /api/v1/updates` starts a rollout and
//! `GET /api/v1/updates/{id}` shows it. The rules are in [`crate::actions::rollout`].
//!
//! | request | answer |
//! |---|---|
//! | `POST /api/v1/updates` `{"labels": {"stack": "2"}, "max_parallel": 2, "timeout": "3m"}` (or `"nodes": [...]`, or `"all": true`; `by` optional) | 202 `{"id", "targets"}`; 409 when no agent binaries are served; 422 for a bad field or a node whose architecture is not served |
//! | `GET /api/v1/updates/{id}` | 200 `{"id", "by", "state", "created_at", "max_parallel", "timeout", "nodes": [{"node", "arch", "sha256", "state", "running", "message", "started_at", "finished_at"}]}`; 404 when unknown or forgotten |

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use pivitals_common::Labels;
use serde::{Deserialize, Serialize};

use super::actions::{ActionsAdmin, Created, checked_by, selector};
use crate::actions::Actions;
use crate::actions::rollout::{
    DEFAULT_MAX_PARALLEL, DEFAULT_TIMEOUT, MAX_PARALLEL, MAX_TIMEOUT, MIN_TIMEOUT, NodeState,
    NodeUpdate, Rollout, RolloutState, Rollouts, arch_of,
};
use crate::actions::target;
use crate::clock::rfc3339;
use crate::state::{AppState, Shared};
use crate::web::error::ApiError;
use crate::web::extract::ApiJson;

/// `POST /api/v1/updates`: exactly one selector, and how to roll.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUpdate {
    nodes: Option<Vec<String>>,
    labels: Option<Labels>,
    #[serde(default)]
    all: bool,
    max_parallel: Option<usize>,
    /// Per node, as people write durations (`3m`).
    timeout: Option<String>,
    by: Option<String>,
}

pub async fn create(
    State(state): State<AppState>,
    _admin: ActionsAdmin,
    ApiJson(request): ApiJson<CreateUpdate>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let selector = selector(request.nodes, request.labels, request.all)?;
    let max_parallel = request.max_parallel.unwrap_or(DEFAULT_MAX_PARALLEL);
    if !(1..=MAX_PARALLEL).contains(&max_parallel) {
        return Err(ApiError::Unprocessable(format!(
            "max_parallel must be 1 to {MAX_PARALLEL}"
        )));
    }
    let timeout = match request.timeout.as_deref().map(str::trim) {
        None => DEFAULT_TIMEOUT,
        Some(text) => humantime::parse_duration(text)
            .ok()
            .filter(|t| (MIN_TIMEOUT..=MAX_TIMEOUT).contains(t))
            .ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "timeout {text:?} is not a duration from 1s to 1h (e.g. 3m)"
                ))
            })?,
    };
    let by = checked_by(request.by)?;
    let binaries = state.agent_binaries.clone().ok_or_else(|| {
        ApiError::Conflict(
            "this primary serves no agent binaries: set PIVITALS_AGENT_BINARIES".into(),
        )
    })?;
    let nodes = {
        let table = state.nodes();
        let names = target::resolve(&selector, &table)
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let mut nodes = Vec::with_capacity(names.len());
        for name in names {
            let Some(live) = table.get(&name) else {
                continue;
            };
            let machine = &live.record.info().arch;
            let arch = arch_of(machine).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "node {name}: its architecture {machine:?} is none of x86_64, aarch64, armv7, armv6"
                ))
            })?;
            let binary = binaries.get(arch).ok_or_else(|| {
                ApiError::Unprocessable(format!(
                    "node {name}: this primary serves no agent binary for {arch} (no {} in PIVITALS_AGENT_BINARIES)",
                    arch.file_name()
                ))
            })?;
            nodes.push(NodeUpdate {
                node: name,
                labels: Labels::clone(&live.record.labels),
                arch,
                sha256: binary.sha256.clone(),
                state: NodeState::Pending,
                message: None,
                running: None,
                started_at_ms: None,
                finished_at_ms: None,
            });
        }
        nodes
    };
    let targets: Vec<String> = nodes.iter().map(|n| n.node.clone()).collect();
    let id = Rollouts::start(
        &state,
        rollouts_and_actions,
        &by,
        nodes,
        max_parallel,
        timeout,
    );
    tracing::info!(%id, %by, targets = targets.len(), max_parallel, "agent update started");
    Ok((StatusCode::ACCEPTED, Json(Created { id, targets })))
}

/// Where a rollout's task finds what it needs in the primary's state.
fn rollouts_and_actions(state: &Shared) -> (&Rollouts, &Actions) {
    (&state.rollouts, &state.actions)
}

#[derive(Debug, Serialize)]
pub struct NodeJson {
    node: String,
    arch: String,
    sha256: String,
    state: NodeState,
    /// What the agent said it runs, once it answered (`running 0.1.0+next (sha256 …)`).
    running: Option<String>,
    message: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RolloutJson {
    id: String,
    by: String,
    state: RolloutState,
    created_at: Option<String>,
    max_parallel: usize,
    timeout: String,
    nodes: Vec<NodeJson>,
}

impl From<Rollout> for RolloutJson {
    fn from(r: Rollout) -> Self {
        Self {
            id: r.id,
            by: r.by,
            state: r.plan.state(),
            created_at: rfc3339(r.created_at_ms),
            max_parallel: r.plan.max_parallel,
            timeout: humantime::format_duration(r.timeout).to_string(),
            nodes: r
                .plan
                .nodes
                .into_iter()
                .map(|n| NodeJson {
                    node: n.node,
                    arch: n.arch.to_string(),
                    sha256: n.sha256,
                    state: n.state,
                    running: n.running,
                    message: n.message,
                    started_at: n.started_at_ms.and_then(rfc3339),
                    finished_at: n.finished_at_ms.and_then(rfc3339),
                })
                .collect(),
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    _admin: ActionsAdmin,
    Path(id): Path<String>,
) -> Result<Json<RolloutJson>, ApiError> {
    state
        .rollouts
        .get(&id)
        .map(|r| Json(r.into()))
        .ok_or_else(|| {
            ApiError::NotFound(format!("no update with id {id:?} (unknown, or forgotten)"))
        })
}
