//! Actions over HTTP: the admin's `POST /api/v1/actions`, `GET /api/v1/actions[?node=NAME]` and
//! `GET /api/v1/actions/{id}`; the agent's long poll `GET /api/v1/agent/actions?wait=25s` and
//! its result `POST /api/v1/agent/actions/{id}`. With `"primary": true` the action runs on the
//! primary's own host per stack ([`crate::actions::host`]). The rules are in [`crate::actions`].

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use pivitals_common::Labels;
use pivitals_common::actions::{
    ActionResult, MAX_ACTION_NAME, UPDATE_ACTION, is_valid_action_name,
};
use serde::{Deserialize, Serialize};

use crate::actions::host;
use crate::actions::target::{self, Selector, TargetError};
use crate::actions::{ActionError, ActionSummary, ActionView, NewTarget, TargetState, TargetView};
use crate::clock::rfc3339;
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::{AdminAuth, ApiJson, ApiQuery, NodeAuth, bearer};

/// The longest long poll an agent may ask for.
pub const MAX_WAIT: Duration = Duration::from_secs(30);

/// The long poll when the agent names none.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(25);

/// The admin token, as [`AdminAuth`] checks it, except that a node token answers 403: a node
/// may not ask nodes to run actions, and its agent should learn that, not register again.
pub struct ActionsAdmin;

impl FromRequestParts<AppState> for ActionsAdmin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match AdminAuth::from_request_parts(parts, state).await {
            Ok(AdminAuth) => Ok(Self),
            Err(ApiError::Unauthorized(_))
                if bearer(&parts.headers).is_some_and(|t| state.nodes().by_token(t).is_some()) =>
            {
                Err(ApiError::Forbidden(
                    "a node token may not start or read actions; use the admin token",
                ))
            }
            Err(e) => Err(e),
        }
    }
}

/// `POST /api/v1/actions`: an action's name and exactly one selector.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAction {
    action: String,
    nodes: Option<Vec<String>>,
    labels: Option<Labels>,
    #[serde(default)]
    all: bool,
    /// Who asks (`cli`, `dashboard`, a person's name); [`DEFAULT_BY`] when left out.
    by: Option<String>,
    /// Run the action on the primary's own host, once per stack (`[actions.host.NAME]`).
    #[serde(default)]
    primary: bool,
}

/// Who asked, when the request does not say.
pub const DEFAULT_BY: &str = "api";

/// The longest `by`, in bytes.
pub const MAX_BY: usize = 64;

/// Exactly one of node names, labels or all; 422 otherwise. For actions and updates.
pub(super) fn selector(
    nodes: Option<Vec<String>>,
    labels: Option<Labels>,
    all: bool,
) -> Result<Selector, ApiError> {
    match (nodes, labels, all) {
        (Some(names), None, false) => Ok(Selector::Names(names)),
        (None, Some(labels), false) => Ok(Selector::Labels(labels)),
        (None, None, true) => Ok(Selector::All),
        _ => Err(ApiError::Unprocessable(
            "choose nodes with exactly one of \"nodes\", \"labels\" or \"all\": true".into(),
        )),
    }
}

/// `by` as given, or [`DEFAULT_BY`]; 422 unless it is 1 to [`MAX_BY`] bytes of printable text.
pub(super) fn checked_by(by: Option<String>) -> Result<String, ApiError> {
    let Some(by) = by else {
        return Ok(DEFAULT_BY.to_owned());
    };
    if by.is_empty() || by.len() > MAX_BY || by.chars().any(char::is_control) {
        return Err(ApiError::Unprocessable(format!(
            "by must be 1 to {MAX_BY} bytes of printable text"
        )));
    }
    Ok(by)
}

/// The 202 answer to an action or update asked: its id and the nodes it went to.
#[derive(Debug, Serialize)]
pub struct Created {
    pub(super) id: String,
    pub(super) targets: Vec<String>,
}

pub async fn create(
    State(state): State<AppState>,
    _admin: ActionsAdmin,
    ApiJson(request): ApiJson<CreateAction>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    if !is_valid_action_name(&request.action) {
        return Err(ApiError::Unprocessable(format!(
            "action {:?} must match ^[a-z][a-z0-9_-]{{0,{}}}$",
            request.action,
            MAX_ACTION_NAME - 1
        )));
    }
    if request.action == UPDATE_ACTION {
        return Err(ApiError::Unprocessable(
            "update names the binary to install: start it with POST /api/v1/updates".into(),
        ));
    }
    let by = checked_by(request.by)?;
    let selector = selector(request.nodes, request.labels, request.all)?;
    if request.primary {
        return start_on_host(state, &request.action, &by, &selector);
    }
    let (targets, labelled) = {
        let nodes = state.nodes();
        let targets = target::resolve(&selector, &nodes).map_err(|e| match e {
            TargetError::UnknownNodes(_)
            | TargetError::OwnHost(_)
            | TargetError::NoTarget
            | TargetError::NoLabels => ApiError::Unprocessable(e.to_string()),
        })?;
        let labelled = target::with_labels(&targets, &nodes);
        (targets, labelled)
    };
    let id = state.actions.create(&request.action, &by, labelled);
    tracing::info!(%id, action = %request.action, %by, targets = targets.len(), "action queued");
    Ok((StatusCode::ACCEPTED, Json(Created { id, targets })))
}

/// A host action ([`crate::actions::host`]): planned per stack, recorded as started, then each
/// stack's run in a task of its own that records its result.
fn start_on_host(
    state: AppState,
    action: &str,
    by: &str,
    selector: &Selector,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let runs = host::plan(action, &state.config.actions, selector, &state.nodes())
        .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
    let targets: Vec<String> = runs.iter().map(|r| host::target_name(&r.stack)).collect();
    let labelled = runs
        .iter()
        .map(|r| NewTarget {
            node: host::target_name(&r.stack),
            labels: [(host::STACK_LABEL.to_owned(), r.stack.clone())].into(),
        })
        .collect();
    let id = state.actions.start_on_host(action, by, labelled);
    tracing::info!(%id, %action, %by, stacks = runs.len(), "host action started");
    for run in runs {
        let (state, id) = (state.clone(), id.clone());
        tokio::spawn(async move {
            let result = host::run(&id, &run).await;
            let target = host::target_name(&run.stack);
            tracing::info!(%id, %target, state = ?result.state, "host action result");
            if let Err(e) = state.actions.record(&target, &id, result) {
                tracing::warn!(%id, %target, error = %e, "host action result not recorded");
            }
        });
    }
    Ok((StatusCode::ACCEPTED, Json(Created { id, targets })))
}

/// One node's side of an action; times RFC 3339, UTC.
#[derive(Debug, Serialize)]
pub struct TargetJson {
    node: String,
    state: TargetState,
    exit_code: Option<i32>,
    output: String,
    truncated: bool,
    duration_ms: Option<u64>,
    message: Option<String>,
    queued_at: Option<String>,
    sent_at: Option<String>,
    finished_at: Option<String>,
}

impl From<TargetView> for TargetJson {
    fn from(t: TargetView) -> Self {
        Self {
            node: t.node,
            state: t.state,
            exit_code: t.exit_code,
            output: t.output,
            truncated: t.truncated,
            duration_ms: t.duration_ms,
            message: t.message,
            queued_at: rfc3339(t.queued_at_ms),
            sent_at: t.sent_at_ms.and_then(rfc3339),
            finished_at: t.finished_at_ms.and_then(rfc3339),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ActionJson {
    id: String,
    action: String,
    by: String,
    created_at: Option<String>,
    results: Vec<TargetJson>,
}

impl From<ActionView> for ActionJson {
    fn from(a: ActionView) -> Self {
        Self {
            id: a.id,
            action: a.action,
            by: a.by,
            created_at: rfc3339(a.created_at_ms),
            results: a.targets.into_iter().map(TargetJson::from).collect(),
        }
    }
}

/// An action in a list: each target's state only.
#[derive(Debug, Serialize)]
pub struct SummaryJson {
    id: String,
    action: String,
    by: String,
    created_at: Option<String>,
    states: BTreeMap<String, TargetState>,
}

impl From<ActionSummary> for SummaryJson {
    fn from(a: ActionSummary) -> Self {
        Self {
            id: a.id,
            action: a.action,
            by: a.by,
            created_at: rfc3339(a.created_at_ms),
            states: a.states,
        }
    }
}

pub async fn show(
    State(state): State<AppState>,
    _admin: ActionsAdmin,
    Path(id): Path<String>,
) -> Result<Json<ActionJson>, ApiError> {
    state
        .actions
        .get(&id)
        .map(|a| Json(a.into()))
        .ok_or_else(|| {
            ApiError::NotFound(format!("no action with id {id:?} (unknown, or forgotten)"))
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    node: Option<String>,
}

pub async fn list(
    State(state): State<AppState>,
    _admin: ActionsAdmin,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Vec<SummaryJson>>, ApiError> {
    let listed = state.actions.list(query.node.as_deref());
    Ok(Json(listed.into_iter().map(SummaryJson::from).collect()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    wait: Option<String>,
}

/// The agent's long poll: 200 with the actions queued for its node (now sent) as soon as there
/// are any, else 204 after `wait` (at most [`MAX_WAIT`], and always shorter than the request
/// time limit, so the poll ends before the primary cuts the request).
pub async fn poll(
    State(state): State<AppState>,
    node: NodeAuth,
    ApiQuery(query): ApiQuery<WaitQuery>,
) -> Result<Response, ApiError> {
    let wait = match query.wait.as_deref().map(str::trim) {
        None => DEFAULT_WAIT,
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            ApiError::BadRequest(format!("wait {text:?} is not a duration like 25s: {e}"))
        })?,
    };
    if wait > MAX_WAIT {
        return Err(ApiError::BadRequest(format!(
            "wait may be at most {}",
            humantime::format_duration(MAX_WAIT)
        )));
    }
    // A tenth of the time limit is left for the answer to go out.
    let limit = state.config.limits.request_timeout;
    let wait = wait.min(limit - limit / 10);
    let actions = state.actions.wait_for(&node.name, wait).await;
    if actions.is_empty() {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        tracing::debug!(node = %node.name, actions = actions.len(), "actions sent");
        Ok(Json(actions).into_response())
    }
}

/// The agent's result for one action.
pub async fn result(
    State(state): State<AppState>,
    node: NodeAuth,
    Path(id): Path<String>,
    ApiJson(result): ApiJson<ActionResult>,
) -> Result<StatusCode, ApiError> {
    if result.id != id {
        return Err(ApiError::Unprocessable(format!(
            "the result's id {:?} is not the id of the URL {id:?}",
            result.id
        )));
    }
    let state_name = result.state;
    state
        .actions
        .record(&node.name, &id, result)
        .map_err(|e| match e {
            ActionError::Unknown(_) => ApiError::NotFound(e.to_string()),
            ActionError::NotForNode { .. } => {
                ApiError::Forbidden("this action is not for the node of this token")
            }
            ActionError::AlreadyFinal { .. } => ApiError::Conflict(e.to_string()),
        })?;
    tracing::info!(node = %node.name, %id, state = ?state_name, "action result");
    Ok(StatusCode::NO_CONTENT)
}
