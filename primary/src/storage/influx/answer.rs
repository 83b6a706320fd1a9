//! Reading InfluxDB's HTTP answers and classifying write answers into [`WriteError`].
//!
//! The classification follows INFLUX-FACTS "Write answers" and Telegraf's `influxdb_v2`
//! output: partial writes and parse errors are not retried, 413 means split, 401/403/404 keep
//! the batch, 429/5xx back off with `Retry-After`. An answer we do not know (another 4xx, a
//! 3xx) keeps the batch too: it points at a wrong URL, which an operator can fix.
//!
//! InfluxDB 3's `/api/v3/write_lp` answers fit the same table: 400 `partial write of line
//! protocol occurred` (some lines refused, the rest written) is a partial write, another 400
//! (`parsing failed …`) is malformed, 401/403/404 keep the batch, 413 splits, 422 drops,
//! 429/5xx back off.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;

use super::error::WriteError;

/// How much of an answer body is kept for errors and logs.
pub(crate) const ERROR_BODY_LIMIT: usize = 4 * 1024;

/// How much of an answer body is read for queries (orgs, buckets, retention policies).
pub(crate) const QUERY_BODY_LIMIT: usize = 1024 * 1024;

/// One HTTP answer with its body read up to a limit.
#[derive(Debug)]
pub(crate) struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: String,
}

impl Answer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// "400: first part of the body", for logs and reasons.
    pub fn summary(&self) -> String {
        let body = self.body.trim();
        let short: String = body.chars().take(300).collect();
        let ellipsis = if short.len() < body.len() { "…" } else { "" };
        format!("{}: {short}{ellipsis}", self.status)
    }
}

/// Sends a request and reads at most `limit` bytes of the answer body.
///
/// A body that breaks off mid-way is kept as far as it was read: the status is what counts.
pub(crate) async fn send(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Answer, reqwest::Error> {
    let mut response = request.send().await?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_retry_after);
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() >= limit {
            break;
        }
    }
    Ok(Answer {
        status,
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// [`send`] for a query: a request that got no answer is described in words.
pub(crate) async fn send_query(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<Answer, String> {
    send(request, limit)
        .await
        .map_err(|e| describe_network_error(&e))
}

/// [`send_query`] for an InfluxQL `/query` request: the answer and its JSON. An answer that is
/// not JSON, or carries a top-level `error` (the request's, not a statement's), is an `Err`;
/// statement errors and the status are left to the caller.
pub(crate) async fn send_influxql(
    request: reqwest::RequestBuilder,
    limit: usize,
) -> Result<(Answer, serde_json::Value), String> {
    let answer = send_query(request, limit).await?;
    let json: serde_json::Value = serde_json::from_str(&answer.body)
        .map_err(|_| format!("answer is not InfluxQL JSON: {}", answer.summary()))?;
    if let Some(error) = json.get("error").and_then(serde_json::Value::as_str) {
        return Err(format!("{}: {error}", answer.status));
    }
    Ok((answer, json))
}

/// `Retry-After` in seconds; the HTTP-date form is ignored (InfluxDB sends seconds).
fn parse_retry_after(text: &str) -> Option<Duration> {
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Maps a write answer to `Ok` or the [`WriteError`] that says what to do with the batch.
pub(crate) fn classify_write(answer: Answer) -> Result<(), WriteError> {
    let Answer {
        status,
        retry_after,
        body,
    } = answer;
    let body = body.trim().to_owned();
    let lower = body.to_ascii_lowercase();
    match status {
        200..=299 => Ok(()),
        400 if lower.contains("partial write") => {
            Err(WriteError::PartiallyWritten { status, body })
        }
        400 => Err(WriteError::Malformed { status, body }),
        413 => Err(WriteError::TooLarge),
        422 => Err(WriteError::PartiallyWritten { status, body }),
        408 | 429 => Err(WriteError::Transient {
            status: Some(status),
            retry_after,
            detail: body,
        }),
        // 1.x answers 500 when the retention policy named in `rp=` does not exist.
        500 if lower.contains("retention policy not found") => {
            Err(WriteError::Refused { status, body })
        }
        500..=599 => Err(WriteError::Transient {
            status: Some(status),
            retry_after,
            detail: body,
        }),
        300..=499 => Err(WriteError::Refused { status, body }),
        _ => Err(WriteError::Transient {
            status: Some(status),
            retry_after,
            detail: body,
        }),
    }
}

/// A request that got no answer (connect, time-out, broken connection) is transient.
pub(crate) fn network_error(error: &reqwest::Error) -> WriteError {
    WriteError::Transient {
        status: None,
        retry_after: None,
        detail: describe_network_error(error),
    }
}

/// The error and its causes, without the URL.
pub(crate) fn describe_network_error(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "request failed"
    };
    pivitals_common::errors::with_causes(kind, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: body.to_owned(),
        }
    }

    #[test]
    fn success_is_ok() {
        assert!(classify_write(answer(204, "")).is_ok());
        assert!(classify_write(answer(200, "")).is_ok());
    }

    #[test]
    fn v1_answers() {
        let partial = r#"{"error":"partial write: points beyond retention policy dropped=1"}"#;
        assert!(matches!(
            classify_write(answer(400, partial)),
            Err(WriteError::PartiallyWritten { status: 400, .. })
        ));
        assert!(matches!(
            classify_write(answer(
                400,
                r#"{"error":"unable to parse 'x': missing fields"}"#
            )),
            Err(WriteError::Malformed { status: 400, .. })
        ));
        assert!(matches!(
            classify_write(answer(404, r#"{"error":"database not found: \"x\""}"#)),
            Err(WriteError::Refused { status: 404, .. })
        ));
        let no_rp = r#"{"error":"retention policy not found: pivitals_365d"}"#;
        let refused = classify_write(answer(500, no_rp)).unwrap_err();
        assert!(matches!(refused, WriteError::Refused { status: 500, .. }));
        assert!(refused.is_retriable());
    }

    #[test]
    fn v2_answers() {
        let partial = classify_write(answer(422, "partial write")).unwrap_err();
        assert!(matches!(
            partial,
            WriteError::PartiallyWritten { status: 422, .. }
        ));
        assert!(!partial.is_retriable());
        let large = classify_write(answer(413, "")).unwrap_err();
        assert!(matches!(large, WriteError::TooLarge));
        assert!(!large.is_retriable());
        for status in [401, 403, 404, 405] {
            let refused = classify_write(answer(status, "no")).unwrap_err();
            assert!(matches!(refused, WriteError::Refused { .. }), "{status}");
        }
    }

    #[test]
    fn v3_answers() {
        let partial = r#"{"error":"partial write of line protocol occurred","data":[]}"#;
        assert!(matches!(
            classify_write(answer(400, partial)),
            Err(WriteError::PartiallyWritten { status: 400, .. })
        ));
        let atomic = r#"{"error":"parsing failed for write_lp endpoint","data":{}}"#;
        assert!(matches!(
            classify_write(answer(400, atomic)),
            Err(WriteError::Malformed { status: 400, .. })
        ));
        let missing = r#"{"error":"database not found: pivitals"}"#;
        assert!(matches!(
            classify_write(answer(404, missing)),
            Err(WriteError::Refused { status: 404, .. })
        ));
    }

    #[test]
    fn overload_keeps_retry_after() {
        for status in [429, 500, 502, 503, 504] {
            let error = classify_write(Answer {
                status,
                retry_after: parse_retry_after(" 7 "),
                body: "busy".into(),
            })
            .unwrap_err();
            assert!(error.is_retriable(), "{status}");
            assert_eq!(
                error.retry_after(),
                Some(Duration::from_secs(7)),
                "{status}"
            );
            assert_eq!(error.status(), Some(status));
        }
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[test]
    fn summary_is_short() {
        let long = answer(400, &"x".repeat(1000)).summary();
        assert!(long.starts_with("400: xxx"));
        assert!(long.chars().count() < 320);
    }
}
