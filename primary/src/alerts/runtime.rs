//! The alert runtime: the [`Engine`] behind a short lock, fed by ingest and the liveness
//! watcher, and what becomes of its [`Event`]s: a [`Message`] queued for each channel, an
//! `alert` point for the spool, and the last [`RESOLVED_KEPT`] resolved alerts for the API.
//!
//! **Who does what.** The hot path (a push, a self-sample, a status change, a delete) calls
//! [`AlertRuntime::observe`], [`AlertRuntime::node_down`], [`AlertRuntime::node_up`] or
//! [`AlertRuntime::node_gone`]: the engine's lock is held for the evaluation only, never
//! across an `await`; the events are then handed on with `try_send` only. Each channel has
//! its own task and bounded queue ([`CHANNEL_QUEUE`]): it delivers messages in order and
//! retries a retriable failure ([`SendError::is_retriable`](super::channels::SendError)) with
//! [`Backoff::ALERT_WEBHOOK`], at most [`MAX_ATTEMPTS`] times. One spooler task appends the
//! `alert` points to the spool (the path `node_status` points take), waiting while the spool
//! is full. **Architecture Invariant:** a dead channel never slows ingest: a full queue drops
//! the message (counted as `dropped`), it never waits.
//!
//! **Counted** (in [`Metrics`], shown at `/metrics` as
//! `pivitals_alert_notifications_total{channel, service, result}`): `sent`, a message
//! delivered; `failed`, one delivery attempt that failed (a dead channel shows at once);
//! `dropped`, a message given up (refused, out of attempts, queue full, or still queued at
//! shutdown).
//!
//! **Durable when.** The `alert` points are durable once the spooler's append commits (a
//! moment after the event; a crash before that loses them). Queued messages, the engine's
//! state and the resolved list live in memory only.
//!
//! **The message.** `title` is [`Event::title`], `text` the one line of [`Event::message`];
//! priority Critical for a node-down alert firing, Warning for any other firing or repeat,
//! Info for a resolved one; tags `rotating_light`, `warning` or `white_check_mark` (ntfy
//! shows them as emoji). The generic JSON webhook gets [`event_json`]:
//!
//! ```json
//! {"rule": "hot", "node": "pi-07", "labels": {"stack": "2"}, "series": {"sensor": "cpu_thermal"},
//!  "event": "firing", "state": "firing", "metric": "temperature.celsius",
//!  "comparison": "above", "threshold": 80.0, "value": 82.1,
//!  "since": "2026-05-01T10:00:00.000Z", "at": "2026-05-01T10:02:00.000Z",
//!  "title": "pi-07 hot", "message": "pi-07 hot: temperature cpu_thermal 82.1 °C > 80 for 2m"}
//! ```
//!
//! `event` is `firing`, `repeat`, `resolved` or `resolved_no_data`; `state` is `firing`
//! (also for a repeat), `resolved` or `no_data`; `metric`, `comparison`, `threshold` are
//! `null` for node down, `value` is `null` for node down.
//!
//! **What it does not know:** HTTP routes, the shared state, the settings file (it is given
//! rules, channels and a client).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use pivitals_common::line_protocol::encode_alert;
use pivitals_common::{Backoff, Labels, VitalsPayload};
use serde_json::{Map, Value, json};
use tokio::sync::{mpsc, watch};

use super::channels::{Channel, Message, Priority};
use super::engine::Engine;
use super::event::{Event, EventKind};
use super::queue::deliver_in_order;
use super::rules::{Condition, Rules};
use crate::metrics::Metrics;
use crate::storage::spool::{AppendError, Spool};

/// Messages that may wait for one channel's task.
pub const CHANNEL_QUEUE: usize = 256;
/// `alert` points that may wait for the spool.
pub const POINTS_QUEUE: usize = 10_000;
/// Resolved alerts kept for the API.
pub const RESOLVED_KEPT: usize = 100;
/// Delivery attempts of one message to one channel.
pub const MAX_ATTEMPTS: u32 = 8;

/// One alert as the API shows it: pending, firing or resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRecord {
    pub rule: String,
    pub node: String,
    pub series: Vec<(&'static str, String)>,
    /// `pending`, `firing`, `resolved` or `no_data`.
    pub state: &'static str,
    pub condition: Condition,
    pub value: Option<f64>,
    pub since_ms: i64,
    pub resolved_at_ms: Option<i64>,
    pub message: String,
}

/// Pending, firing and recently resolved alerts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub firing: Vec<AlertRecord>,
    pub pending: Vec<AlertRecord>,
    /// Newest first, at most [`RESOLVED_KEPT`].
    pub resolved: Vec<AlertRecord>,
}

struct Target {
    name: Arc<str>,
    service: &'static str,
    queue: mpsc::Sender<Arc<Message>>,
}

struct AlertPoint {
    node: String,
    line: Vec<u8>,
}

/// The engine and its outlets; see the module docs.
pub struct AlertRuntime {
    engine: Mutex<Engine>,
    targets: Vec<Target>,
    points: Option<mpsc::Sender<AlertPoint>>,
    resolved: Mutex<VecDeque<AlertRecord>>,
    metrics: Arc<Metrics>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl AlertRuntime {
    /// No rules, no channels, no spool: for a state that never runs tasks (router tests).
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            engine: Mutex::new(Engine::new(Rules::default())),
            targets: Vec::new(),
            points: None,
            resolved: Mutex::new(VecDeque::new()),
            metrics,
        }
    }

    /// Starts one delivery task per channel and the spooler; they stop at shutdown.
    pub fn start(
        rules: Rules,
        channels: Vec<(String, Channel)>,
        http: reqwest::Client,
        spool: Spool,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mut targets = Vec::with_capacity(channels.len());
        for (name, channel) in channels {
            let name: Arc<str> = name.into();
            let service = channel.service();
            for result in ["sent", "failed", "dropped"] {
                metrics.count_notification(&name, service, result, 0);
            }
            let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
            tokio::spawn(deliver_all(
                Arc::clone(&name),
                channel,
                http.clone(),
                rx,
                Arc::clone(&metrics),
                shutdown.clone(),
            ));
            targets.push(Target {
                name,
                service,
                queue: tx,
            });
        }
        let (tx, rx) = mpsc::channel(POINTS_QUEUE);
        tokio::spawn(spool_points(spool, rx, Arc::clone(&metrics), shutdown));
        Self {
            engine: Mutex::new(Engine::new(rules)),
            targets,
            points: Some(tx),
            resolved: Mutex::new(VecDeque::new()),
            metrics,
        }
    }

    /// Judges accepted samples of `node` (oldest first) at `now_ms`.
    pub fn observe(&self, node: &str, labels: &Labels, samples: &[VitalsPayload], now_ms: i64) {
        let events: Vec<Event> = {
            let mut engine = lock(&self.engine);
            if engine.rules().as_slice().is_empty() {
                return;
            }
            samples
                .iter()
                .flat_map(|s| engine.observe(node, labels, s, now_ms))
                .collect()
        };
        self.dispatch(labels, events);
    }

    /// The liveness watcher recorded `node` down.
    pub fn node_down(&self, node: &str, labels: &Labels, at_ms: i64) {
        let events = lock(&self.engine).node_down(node, labels, at_ms);
        self.dispatch(labels, events);
    }

    /// The liveness watcher recorded `node` back from down.
    pub fn node_up(&self, node: &str, labels: &Labels, at_ms: i64) {
        let events = lock(&self.engine).node_up(node, at_ms);
        self.dispatch(labels, events);
    }

    /// `node` was stopped or deleted: its alerts resolve as "no data".
    pub fn node_gone(&self, node: &str, labels: &Labels, now_ms: i64) {
        let events = lock(&self.engine).node_gone(node, now_ms);
        self.dispatch(labels, events);
    }

    /// Firing and pending alerts (messages as of `now_ms`) and the last resolved ones.
    pub fn snapshot(&self, now_ms: i64) -> Snapshot {
        let active = lock(&self.engine).active();
        let mut snapshot = Snapshot::default();
        for alert in active {
            let event = Event {
                rule: alert.rule.as_str().into(),
                node: alert.node.clone(),
                series: alert.series.clone(),
                kind: EventKind::Firing,
                condition: alert.condition,
                value: alert.value,
                since_ms: alert.since_ms,
                at_ms: now_ms.max(alert.since_ms),
                channels: Arc::new([]),
            };
            let record = AlertRecord {
                rule: alert.rule,
                node: alert.node,
                series: alert.series,
                state: if alert.firing { "firing" } else { "pending" },
                condition: alert.condition,
                value: alert.value,
                since_ms: alert.since_ms,
                resolved_at_ms: None,
                message: event.message(),
            };
            if alert.firing {
                snapshot.firing.push(record);
            } else {
                snapshot.pending.push(record);
            }
        }
        snapshot.resolved = lock(&self.resolved).iter().cloned().collect();
        snapshot
    }

    /// How many alerts are firing and pending now.
    pub fn counts(&self) -> (usize, usize) {
        lock(&self.engine).counts()
    }

    fn dispatch(&self, labels: &Labels, events: Vec<Event>) {
        for event in events {
            self.handle(labels, event);
        }
    }

    fn handle(&self, labels: &Labels, event: Event) {
        let state = state_of(event.kind);
        tracing::info!(node = %event.node, rule = %event.rule, event = event.kind.as_str(), "{}", event.message());
        if event.kind != EventKind::Repeat {
            self.spool_point(labels, &event, state);
        }
        if matches!(event.kind, EventKind::Resolved | EventKind::ResolvedNoData) {
            let mut resolved = lock(&self.resolved);
            resolved.push_front(AlertRecord {
                rule: event.rule.to_string(),
                node: event.node.clone(),
                series: event.series.clone(),
                state,
                condition: event.condition,
                value: event.value,
                since_ms: event.since_ms,
                resolved_at_ms: Some(event.at_ms),
                message: event.message(),
            });
            resolved.truncate(RESOLVED_KEPT);
        }
        let wanted = |name: &str| {
            event.channels.is_empty() || event.channels.iter().any(|c| c.as_str() == name)
        };
        if !self.targets.iter().any(|t| wanted(&t.name)) {
            return;
        }
        let message = Arc::new(message_of(&event, labels));
        for target in self.targets.iter().filter(|t| wanted(&t.name)) {
            match target.queue.try_send(Arc::clone(&message)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    self.metrics
                        .count_notification(&target.name, target.service, "dropped", 1);
                    tracing::error!(
                        channel = %target.name,
                        "alert queue full (the channel is not answering); message dropped"
                    );
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    fn spool_point(&self, labels: &Labels, event: &Event, state: &'static str) {
        let Some(points) = &self.points else {
            return;
        };
        let series: Vec<(&str, &str)> =
            event.series.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut line = Vec::with_capacity(160);
        if let Err(e) = encode_alert(
            &event.node,
            labels,
            &event.rule,
            &series,
            state,
            event.value,
            event.at_ms,
            &mut line,
        ) {
            tracing::error!(error = %e, node = %event.node, "alert point not encodable; dropped");
            return;
        }
        let point = AlertPoint {
            node: event.node.clone(),
            line,
        };
        if let Err(mpsc::error::TrySendError::Full(_)) = points.try_send(point) {
            tracing::error!(node = %event.node, "too many alert points waiting for the spool; dropped");
        }
    }
}

/// The `state` an event records: `firing` (also for a repeat), `resolved` or `no_data`.
fn state_of(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Firing | EventKind::Repeat => "firing",
        EventKind::Resolved => "resolved",
        EventKind::ResolvedNoData => "no_data",
    }
}

/// RFC 3339 UTC with milliseconds; empty for a time out of range.
pub fn rfc3339(ms: i64) -> String {
    crate::clock::rfc3339(ms).unwrap_or_default()
}

/// The series' tags as a JSON object.
pub fn series_json(series: &[(&'static str, String)]) -> Value {
    Value::Object(
        series
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// The generic webhook's JSON of one event (documented in the module docs).
pub fn event_json(event: &Event, labels: &Labels) -> Value {
    json!({
        "rule": &*event.rule,
        "node": event.node,
        "labels": labels,
        "series": series_json(&event.series),
        "event": event.kind.as_str(),
        "state": state_of(event.kind),
        "metric": event.metric().map(|m| m.to_string()),
        "comparison": event.comparison().map(|c| c.as_str()),
        "threshold": event.threshold(),
        "value": event.value,
        "since": rfc3339(event.since_ms),
        "at": rfc3339(event.at_ms),
        "title": event.title(),
        "message": event.message(),
    })
}

/// The message every channel gets for `event`.
pub fn message_of(event: &Event, labels: &Labels) -> Message {
    let (priority, tag) = match event.kind {
        EventKind::Firing | EventKind::Repeat if event.condition == Condition::NodeDown => {
            (Priority::Critical, "rotating_light")
        }
        EventKind::Firing | EventKind::Repeat => (Priority::Warning, "warning"),
        EventKind::Resolved | EventKind::ResolvedNoData => (Priority::Info, "white_check_mark"),
    };
    Message {
        title: event.title(),
        text: event.message(),
        priority,
        tags: vec![tag.to_owned()],
        json: event_json(event, labels),
    }
}

/// One channel's task: delivers its queue in order until shutdown.
async fn deliver_all(
    name: Arc<str>,
    channel: Channel,
    http: reqwest::Client,
    queue: mpsc::Receiver<Arc<Message>>,
    metrics: Arc<Metrics>,
    shutdown: watch::Receiver<bool>,
) {
    let (name_ref, channel_ref, http_ref, metrics_ref) = (&name, &channel, &http, &metrics);
    let undelivered = deliver_in_order(queue, shutdown, move |message: Arc<Message>| async move {
        deliver(name_ref, channel_ref, http_ref, &message, metrics_ref).await
    })
    .await;
    if undelivered > 0 {
        metrics.count_notification(&name, channel.service(), "dropped", undelivered as u64);
        tracing::warn!(channel = %name, undelivered, "shutting down: queued alert messages not delivered");
    }
}

/// Delivers one message, retrying as the module docs say.
async fn deliver(
    name: &str,
    channel: &Channel,
    http: &reqwest::Client,
    message: &Message,
    metrics: &Metrics,
) {
    let service = channel.service();
    for attempt in 0..MAX_ATTEMPTS {
        match channel.send(http, message).await {
            Ok(()) => {
                metrics.count_notification(name, service, "sent", 1);
                return;
            }
            Err(e) => {
                metrics.count_notification(name, service, "failed", 1);
                if !e.is_retriable() || attempt + 1 == MAX_ATTEMPTS {
                    metrics.count_notification(name, service, "dropped", 1);
                    tracing::error!(channel = %name, error = %e, attempts = attempt + 1, "alert message given up");
                    return;
                }
                let wait = Backoff::ALERT_WEBHOOK.delay(attempt, e.retry_after());
                tracing::warn!(channel = %name, error = %e, ?wait, "alert message not delivered; will retry");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// The spooler: appends `alert` points, oldest first; a full or failing spool is retried
/// every second.
async fn spool_points(
    spool: Spool,
    mut points: mpsc::Receiver<AlertPoint>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let point = tokio::select! {
            point = points.recv() => match point {
                Some(point) => point,
                None => return,
            },
            _ = crate::shutdown::stopped(&mut shutdown) => return,
        };
        loop {
            match spool.append(&point.node, &point.line, 1).await {
                Ok(()) => {
                    Metrics::add(&metrics.points_received, 1);
                    break;
                }
                Err(AppendError::Closed) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "alert points wait for the spool");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        _ = crate::shutdown::stopped(&mut shutdown) => return,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use pivitals_common::TemperatureVitals;

    use super::*;
    use crate::alerts::rules::{RuleConfig, load};

    const T0: i64 = 1_700_000_000_000;

    fn hot(ts: i64, celsius: f64) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: ts,
            temperatures: vec![TemperatureVitals {
                sensor: "cpu_thermal".into(),
                celsius,
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    fn runtime() -> AlertRuntime {
        let rules = load(
            false,
            &[RuleConfig {
                name: "hot".into(),
                metric: Some("temperature.celsius".into()),
                above: Some(80.0),
                for_: Some("2s".into()),
                ..RuleConfig::default()
            }],
        )
        .unwrap();
        AlertRuntime {
            engine: Mutex::new(Engine::new(rules)),
            ..AlertRuntime::disabled(Arc::new(Metrics::default()))
        }
    }

    #[test]
    fn pending_firing_resolved_and_the_ring() {
        let rt = runtime();
        let labels = Labels::new();
        rt.observe("pi-01", &labels, &[hot(T0, 85.0)], T0);
        assert_eq!(rt.counts(), (0, 1));
        rt.observe(
            "pi-01",
            &labels,
            &[hot(T0 + 1000, 85.0), hot(T0 + 2000, 86.0)],
            T0,
        );
        assert_eq!(rt.counts(), (1, 0));
        let snap = rt.snapshot(T0 + 2000);
        assert_eq!(snap.firing[0].state, "firing");
        assert_eq!(
            snap.firing[0].series,
            [("sensor", "cpu_thermal".to_owned())]
        );
        assert_eq!(snap.firing[0].value, Some(86.0));
        rt.observe("pi-01", &labels, &[hot(T0 + 3000, 50.0)], T0);
        let snap = rt.snapshot(T0 + 3000);
        assert!(snap.firing.is_empty() && snap.pending.is_empty());
        assert_eq!(snap.resolved[0].state, "resolved");
        assert_eq!(snap.resolved[0].resolved_at_ms, Some(T0 + 3000));
        for i in 0..(RESOLVED_KEPT as i64 + 5) {
            let ts = T0 + 10_000 + i * 10_000;
            rt.observe("pi-01", &labels, &[hot(ts, 90.0)], ts);
            rt.observe("pi-01", &labels, &[hot(ts + 2000, 90.0)], ts);
            rt.observe("pi-01", &labels, &[hot(ts + 3000, 10.0)], ts);
        }
        let snap = rt.snapshot(T0);
        assert_eq!(snap.resolved.len(), RESOLVED_KEPT);
        assert!(snap.resolved[0].resolved_at_ms > snap.resolved[1].resolved_at_ms);
    }

    #[test]
    fn messages_carry_priority_and_the_documented_json() {
        let rules = load(true, &[]).unwrap();
        let mut engine = Engine::new(rules);
        let labels = Labels::from([("stack".to_owned(), "2".to_owned())]);
        let down = engine.node_down("pi-01", &labels, T0).remove(0);
        let message = message_of(&down, &labels);
        assert_eq!(message.priority, Priority::Critical);
        assert_eq!(message.title, "pi-01 node down");
        assert_eq!(message.json["state"], "firing");
        assert_eq!(message.json["metric"], Value::Null);
        assert_eq!(message.json["labels"]["stack"], "2");
        assert_eq!(message.json["since"], "2023-11-14T22:13:20.000Z");
        let up = engine.node_up("pi-01", T0 + 60_000).remove(0);
        let message = message_of(&up, &labels);
        assert_eq!(message.priority, Priority::Info);
        assert_eq!(message.json["event"], "resolved");
        assert_eq!(message.text, up.message());
        assert!(!message.text.contains('\n'));
    }
}
