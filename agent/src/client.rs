//! The agent's side of the primary's HTTP API: one method per call, every answer that is not a
//! success sorted into a [`CallError`] that the sender (`push.rs`) decides on.
//!
//! | call                     | token        | body              | success                   |
//! |--------------------------|--------------|-------------------|---------------------------|
//! | `POST /api/v1/register`  | enroll token | `RegisterRequest` | 200 `RegisterReply`       |
//! | `POST /api/v1/vitals`    | node token   | `VitalsPush`      | 200 `PushReply`           |
//! | `POST /api/v1/goodbye`   | node token   | `Goodbye`         | 204                       |
//! | `GET /api/v1/agent/actions?wait=25s` | node token | —     | 200 `[ActionRequest]`, 204 none |
//! | `POST /api/v1/agent/actions/{id}` | node token | `ActionResult` | 204                  |
//!
//! Tokens go in `Authorization: Bearer …` (marked sensitive, so never logged by the HTTP stack).
//! Redirects are not followed: a redirected POST would silently turn into a GET.

use std::time::Duration;

use pivitals_common::actions::{ActionRequest, ActionResult};
use pivitals_common::{Goodbye, PushReply, RegisterReply, RegisterRequest, Secret, VitalsPush};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Response, StatusCode, Url};
use serde::Deserialize;
use thiserror::Error;

pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A long poll for actions gives up this long after the wait it asked for.
pub const POLL_MARGIN: Duration = Duration::from_secs(10);
/// The most of an answer's body that is read; error messages are short.
const MAX_BODY: usize = 64 * 1024;
/// The most of an error message that is kept for the log.
const MAX_MESSAGE: usize = 300;

/// Why a call did not succeed.
#[derive(Debug, Error)]
pub enum CallError {
    /// 401: the token was refused.
    #[error("the primary refused the token (401): {message}")]
    Unauthorized { message: String },
    /// 413: the body is too large for the primary.
    #[error("the request is too large for the primary (413)")]
    TooLarge,
    /// 422: the primary refuses the content for good.
    #[error("the primary refused the content (422): {message}")]
    Rejected { message: String },
    /// 429 or 503: come back later, after `Retry-After` if given.
    #[error("the primary is busy ({status}){}", retry_after_text(*.retry_after))]
    Busy {
        status: StatusCode,
        retry_after: Option<Duration>,
    },
    /// Any other status.
    #[error("the primary answered {status}: {message}")]
    Status { status: StatusCode, message: String },
    /// No answer: connection refused or reset, DNS, TLS, timeout.
    #[error(
        "cannot reach the primary: {}",
        pivitals_common::errors::with_causes(.0.to_string(), .0)
    )]
    Transport(#[source] reqwest::Error),
    /// A success status with a body that is not what the API promises.
    #[error("unexpected answer from the primary: {0}")]
    BadReply(String),
}

impl CallError {
    /// The `Retry-After` the primary asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Busy { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

fn retry_after_text(retry_after: Option<Duration>) -> String {
    retry_after.map_or_else(String::new, |d| format!(", retry after {}s", d.as_secs()))
}

/// A client for one primary.
#[derive(Debug, Clone)]
pub struct PrimaryClient {
    http: reqwest::Client,
    base: Url,
    register_url: Url,
    vitals_url: Url,
    goodbye_url: Url,
    actions_url: Url,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
}

/// How the agent checks the primary's certificate on `https://`.
#[derive(Debug, Clone, Default)]
pub struct ClientTls {
    /// PEM certificates (`PIVITALS_TLS__CA`) to trust instead of the system's store.
    pub ca_pem: Option<Vec<u8>>,
    /// Accept any certificate (`PIVITALS_TLS__INSECURE_SKIP_VERIFY`): encrypted, but anyone
    /// in the middle can read the tokens. For tests and first steps only.
    pub insecure_skip_verify: bool,
}

impl PrimaryClient {
    /// A client for the primary at `base` (whose path ends with `/`, as
    /// [`crate::Config::primary_url`] does), checking certificates against the system store.
    pub fn new(base: &Url) -> Result<Self, reqwest::Error> {
        Self::with_tls(base, &ClientTls::default())
    }

    /// A client for the primary at `base` that checks the primary's certificate as `tls` says.
    ///
    /// Installs rustls' ring provider as the process default if there is none yet: reqwest is
    /// built without one.
    pub fn with_tls(base: &Url, tls: &ClientTls) -> Result<Self, reqwest::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if base.scheme() == "http" {
            // The client only ever calls `base` (redirects are off), so plain HTTP never needs
            // a certificate: trusting none spares reading and parsing the whole system store
            // (hundreds of files, some 200 KiB of memory) at every start.
            builder = builder.tls_certs_only(Vec::new());
        } else if let Some(pem) = &tls.ca_pem {
            builder = builder.tls_certs_only(reqwest::Certificate::from_pem_bundle(pem)?);
        }
        if tls.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let http = builder
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("pivitals-agent/", env!("CARGO_PKG_VERSION")))
            // The long poll for actions holds one connection while pushes use another.
            .pool_max_idle_per_host(2)
            .build()?;
        let endpoint = |path: &str| base.join(path).expect("a relative path joins any http URL");
        Ok(Self {
            http,
            base: base.clone(),
            register_url: endpoint("api/v1/register"),
            vitals_url: endpoint("api/v1/vitals"),
            goodbye_url: endpoint("api/v1/goodbye"),
            actions_url: endpoint("api/v1/agent/actions"),
        })
    }

    /// The HTTP client, with this primary's TLS settings (for the `update` download).
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The primary's URL, as [`crate::Config::primary_url`].
    pub fn base(&self) -> &Url {
        &self.base
    }

    /// Registers this node with the enrollment token.
    pub async fn register(
        &self,
        enroll_token: &Secret,
        request: &RegisterRequest,
    ) -> Result<RegisterReply, CallError> {
        let response = self.post(&self.register_url, enroll_token, request).await?;
        let body = success_body(response).await?;
        serde_json::from_slice(&body).map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// Pushes samples (oldest first); returns how many the primary accepted, which it has made
    /// durable.
    pub async fn push(&self, node_token: &Secret, push: &VitalsPush) -> Result<u64, CallError> {
        let response = self.post(&self.vitals_url, node_token, push).await?;
        let body = success_body(response).await?;
        serde_json::from_slice::<PushReply>(&body)
            .map(|reply| reply.accepted)
            .map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// Tells the primary that the node stops on purpose.
    pub async fn goodbye(&self, node_token: &Secret, goodbye: &Goodbye) -> Result<(), CallError> {
        let response = self.post(&self.goodbye_url, node_token, goodbye).await?;
        success_body(response).await.map(drop)
    }

    /// Waits up to `wait` for actions for this node: none when the primary has none by then
    /// (204). The request gives up [`POLL_MARGIN`] after `wait`.
    pub async fn poll_actions(
        &self,
        node_token: &Secret,
        wait: Duration,
    ) -> Result<Vec<ActionRequest>, CallError> {
        let mut url = self.actions_url.clone();
        url.query_pairs_mut()
            .append_pair("wait", &format!("{}s", wait.as_secs()));
        let response = self
            .http
            .get(url)
            .bearer_auth(node_token.expose())
            .timeout(wait + POLL_MARGIN)
            .send()
            .await
            .map_err(CallError::Transport)?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(Vec::new());
        }
        let body = success_body(response).await?;
        serde_json::from_slice(&body).map_err(|e| CallError::BadReply(e.to_string()))
    }

    /// Reports an action's result.
    pub async fn post_action_result(
        &self,
        node_token: &Secret,
        result: &ActionResult,
    ) -> Result<(), CallError> {
        let url = self.action_result_url(&result.id);
        let response = self.post(&url, node_token, result).await?;
        success_body(response).await.map(drop)
    }

    /// `…/api/v1/agent/actions/{id}`, the id escaped as one path segment.
    fn action_result_url(&self, id: &str) -> Url {
        let mut url = self.actions_url.clone();
        url.path_segments_mut()
            .expect("an http URL has a path")
            .push(id);
        url
    }

    async fn post(
        &self,
        url: &Url,
        token: &Secret,
        body: &impl serde::Serialize,
    ) -> Result<Response, CallError> {
        self.http
            .post(url.clone())
            .bearer_auth(token.expose())
            .json(body)
            .send()
            .await
            .map_err(CallError::Transport)
    }
}

/// The body of a 2xx answer, or the error the status stands for.
async fn success_body(response: Response) -> Result<Vec<u8>, CallError> {
    let status = response.status();
    let retry_after = parse_retry_after(response.headers());
    let body = read_limited(response).await?;
    if status.is_success() {
        return Ok(body);
    }
    let message = error_message(status, &body);
    Err(match status {
        StatusCode::UNAUTHORIZED => CallError::Unauthorized { message },
        StatusCode::PAYLOAD_TOO_LARGE => CallError::TooLarge,
        StatusCode::UNPROCESSABLE_ENTITY => CallError::Rejected { message },
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => CallError::Busy {
            status,
            retry_after,
        },
        _ => CallError::Status { status, message },
    })
}

async fn read_limited(mut response: Response) -> Result<Vec<u8>, CallError> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(CallError::Transport)? {
        let room = MAX_BODY.saturating_sub(body.len());
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    Ok(body)
}

/// `Retry-After` in seconds; an HTTP date is ignored (the backoff applies).
fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?;
    text.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// The `error` of a JSON error body, else the start of the body, else the status's reason.
fn error_message(status: StatusCode, body: &[u8]) -> String {
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => parsed.error,
        Err(_) => String::from_utf8_lossy(body).trim().to_owned(),
    };
    let mut message: String = message
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("no message").to_owned();
    }
    if message.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    message
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_in_seconds_only() {
        let mut headers = HeaderMap::new();
        assert_eq!(parse_retry_after(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(30)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(parse_retry_after(&headers), None);
    }

    #[test]
    fn error_messages_from_json_text_or_status() {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        assert_eq!(
            error_message(status, br#"{"error":"bad label"}"#),
            "bad label"
        );
        assert_eq!(error_message(status, b"plain\ntext "), "plain text");
        assert_eq!(error_message(status, b""), "Unprocessable Entity");
        let long = error_message(status, "é".repeat(400).as_bytes());
        assert!(long.len() <= MAX_MESSAGE + '…'.len_utf8() && long.ends_with('…'));
    }

    #[test]
    fn endpoints_keep_the_base_path() {
        let client =
            PrimaryClient::new(&Url::parse("http://primary:8080/pivitals/").unwrap()).unwrap();
        assert_eq!(
            client.vitals_url.as_str(),
            "http://primary:8080/pivitals/api/v1/vitals"
        );
        assert_eq!(
            client.register_url.as_str(),
            "http://primary:8080/pivitals/api/v1/register"
        );
        assert_eq!(
            client.goodbye_url.as_str(),
            "http://primary:8080/pivitals/api/v1/goodbye"
        );
        assert_eq!(
            client.action_result_url("a1/../x").as_str(),
            "http://primary:8080/pivitals/api/v1/agent/actions/a1%2F..%2Fx"
        );
    }

    #[test]
    fn busy_messages_say_when_to_retry() {
        let busy = CallError::Busy {
            status: StatusCode::SERVICE_UNAVAILABLE,
            retry_after: Some(Duration::from_secs(30)),
        };
        assert_eq!(
            busy.to_string(),
            "the primary is busy (503 Service Unavailable), retry after 30s"
        );
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(30)));
    }
}
