//! The one HTTP delivery step every web service shares: send with a timeout, then classify
//! the answer into done, retriable or refused.

use std::time::Duration;

use super::SendError;

/// How long one request may take, connecting included; the queue retries after that.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a refusal's body goes into the error (services explain themselves there).
const BODY_IN_ERROR: usize = 200;

/// Sends `request` and classifies the answer: 2xx is delivered; network errors, 408, 429 and
/// 5xx are retriable (with `Retry-After` in seconds, or Telegram's `parameters.retry_after`);
/// anything else is refused. Redirects are refused too (a webhook that moved must be
/// configured again; the primary's client follows none).
pub(crate) async fn deliver(
    service: &'static str,
    request: reqwest::RequestBuilder,
) -> Result<(), SendError> {
    let response = match request.timeout(SEND_TIMEOUT).send().await {
        Ok(response) => response,
        Err(error) => {
            return Err(SendError::Retriable {
                service,
                reason: describe(error),
                retry_after: None,
            });
        }
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return Ok(());
    }
    let header_wait = retry_after(response.headers());
    let body = response.text().await.unwrap_or_default();
    let body_wait = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["parameters"]["retry_after"].as_u64())
        .map(Duration::from_secs);
    let reason = answered(status, &body);
    if is_retriable(status) {
        Err(SendError::Retriable {
            service,
            reason,
            retry_after: header_wait.or(body_wait),
        })
    } else {
        Err(SendError::Refused { service, reason })
    }
}

/// Whether an HTTP answer that is not 2xx is worth another try: 408, 429 and 5xx.
pub(crate) fn is_retriable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// The `Retry-After` header, when it is in seconds.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs)
}

/// `answered 404: {"message":"…"}`, on one line and cut short.
fn answered(status: u16, body: &str) -> String {
    let line: String = body
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(BODY_IN_ERROR)
        .collect();
    if line.is_empty() {
        format!("answered {status}")
    } else {
        format!("answered {status}: {line}")
    }
}

/// The error and its causes on one line, without the request URL (which may hold a token).
fn describe(error: reqwest::Error) -> String {
    let error = error.without_url();
    let mut text = error.to_string();
    let mut source = std::error::Error::source(&error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
