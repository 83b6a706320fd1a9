//! What agents call: register, push vitals, say goodbye.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::CONNECTION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use pivitals_common::limits::MAX_SAMPLES_PER_PUSH;
use pivitals_common::{Goodbye, PushReply, RegisterReply, RegisterRequest, VitalsPush, validate};

use crate::ingest::{IngestError, ingest};
use crate::limits;
use crate::metrics::Metrics;
use crate::nodes::enroll::{self, HardwareMatch, HardwarePart, ReenrollPolicy};
use crate::nodes::packed::Packed;
use crate::nodes::registry::NodeRecord;
use crate::nodes::token;
use crate::state::AppState;
use crate::web::error::ApiError;
use crate::web::extract::{ApiJson, EnrollAuth, NodeAuth, PushAuth};

/// Longest push interval an agent may declare (a day).
const MAX_INTERVAL_SECONDS: u64 = 86_400;

/// Nodes pushing at least this often keep their connection open between pushes (parked by
/// `web::serve`: a socket and about 1.7 KiB each); slower ones are told to close it. The
/// primary closes a connection idle for the header timeout (30 s by default) anyway, and at the
/// default 60 s a kept connection would hold a socket a minute for each push, where a
/// reconnect costs one TCP (or TLS) handshake.
const KEEP_ALIVE_MAX_INTERVAL_SECONDS: u64 = 10;

/// `response`, marked `Connection: close` when the node pushes too rarely to keep a connection.
fn for_interval(mut response: Response, interval_seconds: u64) -> Response {
    if interval_seconds > KEEP_ALIVE_MAX_INTERVAL_SECONDS {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// How long an agent refused for lack of room waits before registering again.
const FULL_RETRY_AFTER: Duration = Duration::from_secs(300);

/// Registrations run one at a time, so two agents asking for the same free name cannot both
/// get it (the check and the insert are separated by the registry write).
static REGISTERING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Registers a new node. A name that is taken answers 409: a second machine cannot take over
/// a node's name (and its series) with the enrollment token alone; the admin deletes the old
/// node first. An agent re-registers only after its token was refused, that is after its node
/// was deleted, so this never locks out the rightful agent.
///
/// A re-flashed board has lost its token. With `PIVITALS_REENROLL=same-hardware` it takes its
/// name back when its hardware identity matches the node's
/// ([`enroll::same_hardware`]): the record is replaced with a new token (the old one answers
/// 401 from now on), the request's info and labels, while the live entry keeps its recent
/// history and recorded status, so the liveness watcher records the node up again as for any
/// registration. Other hardware, or no identity to compare, still answers 409 saying why.
pub async fn register(
    State(state): State<AppState>,
    _enrolled: EnrollAuth,
    ApiJson(request): ApiJson<RegisterRequest>,
) -> Result<Response, ApiError> {
    let invalid = |e: validate::InvalidName| ApiError::Unprocessable(e.to_string());
    validate::node_name(&request.node_name).map_err(invalid)?;
    validate::labels(&request.labels).map_err(invalid)?;
    if !(1..=MAX_INTERVAL_SECONDS).contains(&request.interval_seconds) {
        return Err(ApiError::Unprocessable(format!(
            "interval_seconds must be between 1 and {MAX_INTERVAL_SECONDS}"
        )));
    }
    if let Some(message) = limits::over_info_cap(&state.config.limits, &request.info) {
        return Err(ApiError::Unprocessable(message));
    }
    if let Some(message) = request.hardware.as_ref().and_then(|h| h.invalid_part()) {
        return Err(ApiError::Unprocessable(message));
    }
    let _one_at_a_time = REGISTERING.lock().await;
    let taken_back = {
        let nodes = state.nodes();
        match nodes.get(&request.node_name) {
            Some(n) if n.record.token_hash.is_none() => {
                return Err(ApiError::Unprocessable(format!(
                    "node name {:?} is the primary's own host",
                    request.node_name
                )));
            }
            Some(n) => {
                let part = reenroll_check(
                    state.config.reenroll,
                    &request.node_name,
                    n.record.hardware.as_ref(),
                    request.hardware.as_ref(),
                )?;
                Some(part)
            }
            None => None,
        }
    };
    if taken_back.is_none() {
        let nodes = state.nodes();
        let max = state.config.limits.max_nodes;
        if nodes.len() >= max {
            return Err(ApiError::TooManyRequests {
                reason: format!(
                    "the primary already has {max} nodes (PIVITALS_LIMITS__MAX_NODES); delete unused nodes or raise the limit"
                ),
                retry_after: FULL_RETRY_AFTER,
            });
        }
    }

    let token = token::generate_token().map_err(|e| ApiError::internal("token", e))?;
    let record = NodeRecord {
        name: request.node_name.clone(),
        info: Packed::pack(&request.info).map_err(|e| ApiError::internal("node info", e))?,
        labels: request.labels.into(),
        interval_seconds: request.interval_seconds,
        token_hash: Some(token::to_hex(&token::hash_token(&token))),
        registered_at_ms: crate::clock::now_ms(),
        hardware: request.hardware,
    };
    let stored = record.clone();
    state
        .registry
        .blocking(move |registry| registry.put(&stored))
        .await
        .map_err(|e| ApiError::internal("registry", e))?;
    // Replacing the entry drops the old token hash from the table: the old token is refused
    // from the next request on. History and recorded status carry over.
    state.nodes_mut().insert(record);
    Metrics::add(&state.metrics.registrations, 1);
    match taken_back {
        Some(part) => tracing::info!(
            node = %request.node_name,
            matched = part.describe(),
            "node re-enrolled on the same hardware; its old token no longer works"
        ),
        None => tracing::info!(node = %request.node_name, "node registered"),
    }
    let reply = Json(RegisterReply {
        node_name: request.node_name,
        node_token: token,
    });
    Ok(for_interval(
        reply.into_response(),
        request.interval_seconds,
    ))
}

/// Whether a registration may take back the registered name `name`: Ok with the part of the
/// identity that matched, else the 409 that says why not and names the setting.
fn reenroll_check(
    policy: ReenrollPolicy,
    name: &str,
    on_record: Option<&pivitals_common::HardwareIdentity>,
    presented: Option<&pivitals_common::HardwareIdentity>,
) -> Result<HardwarePart, ApiError> {
    let delete = format!("an admin can delete it (DELETE /api/v1/nodes/{name}) to free the name");
    if policy == ReenrollPolicy::Off {
        return Err(ApiError::Conflict(format!(
            "node name {name:?} is already registered; {delete}, or set PIVITALS_REENROLL=same-hardware on the primary so that a re-flashed board takes its name back"
        )));
    }
    match enroll::same_hardware(on_record, presented) {
        HardwareMatch::Same(part) => Ok(part),
        HardwareMatch::Differs(part) => Err(ApiError::Conflict(format!(
            "node name {name:?} is registered to other hardware: the {} differs, so PIVITALS_REENROLL=same-hardware does not give the name to this board; {delete}",
            part.describe()
        ))),
        HardwareMatch::Unproven(why) => Err(ApiError::Conflict(format!(
            "node name {name:?} is already registered and this board cannot be proven to be the same hardware: {}, so PIVITALS_REENROLL=same-hardware does not apply; {delete}",
            why.describe()
        ))),
    }
}

/// Stores a push's samples, and the node's info when the push carries it (the agent sends it
/// when its facts changed: a new address after a DHCP renewal). Everything is checked before
/// anything is stored: a sample or an info over its caps answers 422 and nothing is spooled.
/// The info is stored after the samples are spooled, in the registry (durable) and then in the
/// live table, before the answer: an acknowledged info survives a restart of the primary.
pub async fn vitals(
    State(state): State<AppState>,
    node: PushAuth,
    ApiJson(push): ApiJson<VitalsPush>,
) -> Result<Response, ApiError> {
    if push.samples.len() > MAX_SAMPLES_PER_PUSH {
        Metrics::add(&state.metrics.pushes_refused, 1);
        return Err(ApiError::Unprocessable(format!(
            "at most {MAX_SAMPLES_PER_PUSH} samples per push, got {}",
            push.samples.len()
        )));
    }
    for (i, sample) in push.samples.iter().enumerate() {
        if let Some(message) = limits::over_cap(&state.config.limits, sample) {
            Metrics::add(&state.metrics.pushes_refused, 1);
            return Err(ApiError::Unprocessable(format!("sample {i}: {message}")));
        }
    }
    if let Some(info) = &push.info
        && let Some(message) = limits::over_info_cap(&state.config.limits, info)
    {
        Metrics::add(&state.metrics.pushes_refused, 1);
        return Err(ApiError::Unprocessable(message));
    }
    let (labels, interval_seconds, info) = state
        .nodes()
        .get(&node.name)
        .map(|n| {
            (
                n.record.labels.clone(),
                n.record.interval_seconds,
                // Only an info that differs from the stored one is written.
                push.info
                    .filter(|info| n.record.info.get().as_ref() != Some(info))
                    .map(|info| (info, n.record.token_hash.clone())),
            )
        })
        .ok_or(ApiError::Unauthorized("node was removed; register again"))?;
    let points = ingest(&state, &node.name, &labels, &push.samples)
        .await
        .inspect_err(|e| {
            let counter = match e {
                IngestError::SpoolFull | IngestError::ShuttingDown => {
                    &state.metrics.pushes_overloaded
                }
                _ => &state.metrics.pushes_refused,
            };
            Metrics::add(counter, 1);
        })?;
    if let Some((info, token_hash)) = info
        && state
            .update_info(&node.name, token_hash, info)
            .await
            .map_err(|e| ApiError::internal("registry", e))?
    {
        tracing::info!(node = %node.name, "node info updated");
    }
    let accepted = push.samples.len();
    // The samples are durable: the alert rules judge them, then the live table takes them.
    state
        .alerting
        .observe(&node.name, &labels, &push.samples, crate::clock::now_ms());
    state.record_push(&node.name, &push.samples);
    Metrics::add(&state.metrics.pushes_accepted, 1);
    let reply = Json(PushReply {
        accepted: accepted as u64,
        points: points as u64,
    });
    Ok(for_interval(reply.into_response(), interval_seconds))
}

pub async fn goodbye(
    State(state): State<AppState>,
    node: NodeAuth,
    ApiJson(goodbye): ApiJson<Goodbye>,
) -> StatusCode {
    if let Some(live) = state.nodes_mut().get_mut(&node.name) {
        live.stopped = true;
    }
    let reason = goodbye.reason.unwrap_or_default();
    let reason: String = reason
        .chars()
        .take(200)
        .filter(|c| !c.is_control())
        .collect();
    tracing::info!(node = %node.name, %reason, "node said goodbye");
    StatusCode::NO_CONTENT
}
