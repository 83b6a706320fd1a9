//! `GET /api/v1/alerts`: the firing and pending alerts and the last resolved ones, newest
//! first. No token, like `GET /api/v1/nodes`.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use serde_json::Value;

use crate::alerts::rules::Condition;
use crate::alerts::runtime::{AlertRecord, rfc3339, series_json};
use crate::clock::now_ms;
use crate::state::AppState;

/// One alert as the API shows it.
#[derive(Debug, Serialize)]
pub struct AlertView {
    pub rule: String,
    pub node: String,
    /// The series' tags (`mount`, `sensor`, …); empty for a node-wide field and node down.
    pub series: Value,
    /// `pending`, `firing`, `resolved` or `no_data`.
    pub state: &'static str,
    /// `measurement.field`; `null` for node down.
    pub metric: Option<String>,
    /// `above` or `below`; `null` for node down.
    pub comparison: Option<&'static str>,
    pub threshold: Option<f64>,
    /// The last value seen; `null` for node down.
    pub value: Option<f64>,
    /// When the condition began to hold, RFC 3339 UTC.
    pub since: String,
    pub resolved_at: Option<String>,
    /// The one line a phone shows.
    pub message: String,
}

impl AlertView {
    fn of(record: AlertRecord) -> Self {
        let (metric, comparison, threshold) = match record.condition {
            Condition::NodeDown => (None, None, None),
            Condition::Threshold {
                metric,
                comparison,
                threshold,
            } => (
                Some(metric.to_string()),
                Some(comparison.as_str()),
                Some(threshold),
            ),
        };
        Self {
            series: series_json(&record.series),
            rule: record.rule,
            node: record.node,
            state: record.state,
            metric,
            comparison,
            threshold,
            value: record.value,
            since: rfc3339(record.since_ms),
            resolved_at: record.resolved_at_ms.map(rfc3339),
            message: record.message,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AlertsView {
    pub firing: Vec<AlertView>,
    pub pending: Vec<AlertView>,
    /// The last 100, newest first.
    pub resolved: Vec<AlertView>,
}

pub async fn list(State(state): State<AppState>) -> Json<AlertsView> {
    let snapshot = state.alerting.snapshot(now_ms());
    let views = |records: Vec<AlertRecord>| records.into_iter().map(AlertView::of).collect();
    Json(AlertsView {
        firing: views(snapshot.firing),
        pending: views(snapshot.pending),
        resolved: views(snapshot.resolved),
    })
}
