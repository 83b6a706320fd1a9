//! Optional webhook alerts: when a node goes down or recovers, a JSON `POST` to
//! `PIVITALS_ALERT__WEBHOOK_URL`:
//!
//! ```json
//! {"node": "pi-03", "status": "down", "previous": "late", "at": "2026-05-01T10:00:00.000Z",
//!  "labels": {"stack": "1"}}
//! ```
//!
//! `previous` is `null` when the primary had recorded nothing for the node since it started.
//! Alerts go through a bounded queue ([`QUEUE`]) to one sender task, which delivers them in
//! order and retries a failed delivery with capped exponential backoff and full jitter
//! ([`RetryPolicy`]). The liveness watcher only ever `try_send`s: a slow or dead receiver
//! never delays a check or a push; when the queue is full the alert is dropped and logged.

use std::time::Duration;

use pivitals_common::{Backoff, Labels};
use serde::Serialize;
use tokio::sync::{mpsc, watch};

use super::channels;
use super::queue::deliver_in_order;
use crate::nodes::status::{Status, Transition};

/// Alerts that may wait for the sender task.
pub const QUEUE: usize = 256;

/// Whether a recorded change is worth an alert: going down, and recovering from down.
pub fn worth_alerting(from: Option<Status>, to: Status) -> bool {
    match to {
        Status::Down => from != Some(Status::Down),
        Status::Up | Status::Late => from == Some(Status::Down),
        Status::Stopped => false,
    }
}

/// The JSON body of one alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub node: String,
    pub status: &'static str,
    pub previous: Option<&'static str>,
    /// When the change was first seen, RFC 3339 UTC.
    pub at: String,
    pub labels: Labels,
}

impl Alert {
    pub fn of(change: &Transition) -> Self {
        Self {
            node: change.node.clone(),
            status: change.to.as_str(),
            previous: change.from.map(Status::as_str),
            at: super::runtime::rfc3339(change.at_ms),
            labels: Labels::clone(&change.labels),
        }
    }
}

/// The handle the watcher sends alerts to; does nothing when no webhook is configured.
#[derive(Debug, Clone, Default)]
pub struct Alerts {
    queue: Option<mpsc::Sender<Alert>>,
}

impl Alerts {
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Starts the sender task for `url`; it stops at shutdown (alerts still queued are logged
    /// as dropped).
    pub fn start(
        url: url::Url,
        http: reqwest::Client,
        policy: RetryPolicy,
        shutdown: watch::Receiver<bool>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let task = tokio::spawn(deliver_all(url, http, policy, rx, shutdown));
        (Self { queue: Some(tx) }, task)
    }

    /// Queues an alert without waiting; a full queue drops it with an error in the log.
    pub fn send(&self, alert: Alert) {
        let Some(queue) = &self.queue else {
            return;
        };
        match queue.try_send(alert) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(alert)) => tracing::error!(
                node = %alert.node,
                status = alert.status,
                "alert queue full (the webhook is not answering); alert dropped"
            ),
            Err(mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// How a failed delivery is retried: the common [`Backoff`] rule (full jitter, at least a
/// capped `Retry-After`), [`Backoff::ALERT_WEBHOOK`] by default. After `max_attempts` the
/// alert is given up and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub backoff: Backoff,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            backoff: Backoff::ALERT_WEBHOOK,
            max_attempts: 8,
        }
    }
}

/// What one delivery attempt means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Worth another try (network error, 408, 429, 5xx), with the webhook's `Retry-After`.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good (another 4xx, or a redirect): retrying would not help.
    GiveUp(String),
}

/// Classifies a webhook's answer.
pub fn classify(status: u16, retry_after: Option<Duration>) -> Outcome {
    match status {
        200..=299 => Outcome::Delivered,
        _ if channels::is_retriable(status) => Outcome::Retry {
            reason: format!("answered {status}"),
            retry_after,
        },
        _ => Outcome::GiveUp(format!("answered {status}")),
    }
}

async fn attempt(http: &reqwest::Client, url: &url::Url, alert: &Alert) -> Outcome {
    match http.post(url.clone()).json(alert).send().await {
        Ok(response) => classify(
            response.status().as_u16(),
            channels::retry_after(response.headers()),
        ),
        Err(e) => Outcome::Retry {
            reason: e.to_string(),
            retry_after: None,
        },
    }
}

async fn deliver_all(
    url: url::Url,
    http: reqwest::Client,
    policy: RetryPolicy,
    queue: mpsc::Receiver<Alert>,
    shutdown: watch::Receiver<bool>,
) {
    let (url, http) = (&url, &http);
    let undelivered = deliver_in_order(queue, shutdown, move |alert: Alert| async move {
        deliver(url, http, policy, &alert).await
    })
    .await;
    if undelivered > 0 {
        tracing::warn!(undelivered, "shutting down: status alerts not delivered");
    }
}

/// Delivers one alert, retrying as the policy says.
async fn deliver(url: &url::Url, http: &reqwest::Client, policy: RetryPolicy, alert: &Alert) {
    for n in 0..policy.max_attempts.max(1) {
        match attempt(http, url, alert).await {
            Outcome::Delivered => {
                tracing::info!(node = %alert.node, status = alert.status, "alert delivered");
                return;
            }
            Outcome::GiveUp(reason) => {
                tracing::error!(node = %alert.node, status = alert.status, %reason, "webhook refused the alert; not retried");
                return;
            }
            Outcome::Retry {
                reason,
                retry_after,
            } => {
                if n + 1 == policy.max_attempts.max(1) {
                    tracing::error!(node = %alert.node, status = alert.status, %reason, attempts = n + 1, "alert not delivered; given up");
                    return;
                }
                let wait = policy.backoff.delay(n, retry_after);
                tracing::warn!(node = %alert.node, status = alert.status, %reason, ?wait, "alert delivery failed; retrying");
                tokio::time::sleep(wait).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_on_going_down_and_on_recovering() {
        use Status::*;
        assert!(worth_alerting(Some(Up), Down));
        assert!(worth_alerting(Some(Late), Down));
        assert!(worth_alerting(None, Down));
        assert!(worth_alerting(Some(Down), Up));
        assert!(worth_alerting(Some(Down), Late));
        assert!(!worth_alerting(Some(Up), Late));
        assert!(!worth_alerting(Some(Late), Up));
        assert!(!worth_alerting(None, Up));
        assert!(!worth_alerting(Some(Down), Stopped));
        assert!(!worth_alerting(Some(Up), Stopped));
    }

    #[test]
    fn the_body_names_node_status_previous_time_and_labels() {
        let change = Transition {
            node: "pi-03".into(),
            labels: std::sync::Arc::new([("stack".to_owned(), "1".to_owned())].into()),
            from: Some(Status::Late),
            to: Status::Down,
            at_ms: 1_700_000_000_123,
        };
        assert_eq!(
            serde_json::to_value(Alert::of(&change)).unwrap(),
            serde_json::json!({
                "node": "pi-03",
                "status": "down",
                "previous": "late",
                "at": "2023-11-14T22:13:20.123Z",
                "labels": {"stack": "1"},
            })
        );
        let first = Transition {
            from: None,
            ..change
        };
        assert_eq!(Alert::of(&first).previous, None);
    }

    #[test]
    fn answers_are_retried_only_when_retrying_can_help() {
        assert_eq!(classify(204, None), Outcome::Delivered);
        assert!(matches!(classify(503, None), Outcome::Retry { .. }));
        assert!(matches!(classify(429, None), Outcome::Retry { .. }));
        assert!(matches!(classify(408, None), Outcome::Retry { .. }));
        assert!(matches!(classify(404, None), Outcome::GiveUp(_)));
        assert!(matches!(classify(400, None), Outcome::GiveUp(_)));
        assert!(matches!(classify(301, None), Outcome::GiveUp(_)));
    }

    /// Delivery against a receiver that fails twice: the retries wait, then the alert
    /// arrives (with a fast policy; the crate does not build tokio's paused test clock).
    #[tokio::test]
    async fn a_failing_receiver_is_retried_until_it_answers() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            url::Url::parse(&format!("http://{}/hook", listener.local_addr().unwrap())).unwrap();
        let receiver = tokio::spawn(async move {
            let mut bodies = Vec::new();
            for n in 0..3 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                while !String::from_utf8_lossy(&request).contains("\"labels\"") {
                    let read = socket.read(&mut buf).await.unwrap();
                    assert!(read > 0);
                    request.extend_from_slice(&buf[..read]);
                }
                let status = if n < 2 {
                    "503 Service Unavailable"
                } else {
                    "204 No Content"
                };
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                socket.write_all(answer.as_bytes()).await.unwrap();
                bodies.push(String::from_utf8_lossy(&request).into_owned());
            }
            bodies
        });
        let alert = Alert {
            node: "pi-09".into(),
            status: "down",
            previous: Some("up"),
            at: "2026-01-01T00:00:00.000Z".into(),
            labels: Labels::new(),
        };
        let policy = RetryPolicy {
            backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(50)),
            max_attempts: 5,
        };
        crate::install_crypto_provider();
        deliver(&url, &reqwest::Client::new(), policy, &alert).await;
        let bodies = receiver.await.unwrap();
        assert_eq!(bodies.len(), 3);
        assert!(bodies.iter().all(|b| b.contains("\"node\":\"pi-09\"")));
    }
}
