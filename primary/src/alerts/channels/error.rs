//! The two errors of a channel: a URL that cannot be used ([`ChannelError`]) and a delivery
//! that failed ([`SendError`], which says whether another try can help).
//!
//! Neither ever holds a password or token: URL errors name the part that is wrong, not its
//! value, and HTTP errors are stripped of the request URL (which holds the token for Discord
//! and Telegram).

use std::time::Duration;

/// Why a notification URL was refused; one line, never with its secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Not a URL at all (the reason comes from the URL parser, which does not echo input).
    #[error("not a notification URL: {0}")]
    NotAUrl(String),
    /// A scheme no channel answers to.
    #[error(
        "unknown notification service `{0}://` (known: ntfy, gotify, discord, slack, telegram, smtp, generic+https, generic+http)"
    )]
    UnknownService(String),
    /// The URL names a service but a part is missing or wrong.
    #[error("{service}: {problem}")]
    Invalid {
        service: &'static str,
        problem: String,
    },
    /// A query parameter the service does not know (a typo is an error, not ignored).
    #[error("{service}: unknown parameter `{name}` (known: {known})")]
    UnknownParameter {
        service: &'static str,
        name: String,
        known: &'static str,
    },
}

impl ChannelError {
    pub(crate) fn invalid(service: &'static str, problem: impl Into<String>) -> Self {
        Self::Invalid {
            service,
            problem: problem.into(),
        }
    }
}

/// Why a delivery failed, and whether retrying can help; the alert queue's retry policy acts
/// on [`SendError::is_retriable`] and [`SendError::retry_after`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Network error, timeout, 408, 429 or 5xx (or an SMTP 4xx): worth another try, not
    /// before `retry_after` when the service said so.
    #[error("{service}: {reason} (will retry)")]
    Retriable {
        service: &'static str,
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Refused for good (another 4xx, an SMTP 5xx, a TLS failure): retrying would not help.
    #[error("{service}: {reason}")]
    Refused {
        service: &'static str,
        reason: String,
    },
}

impl SendError {
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::Retriable { .. })
    }

    /// The least wait the service asked for (`Retry-After`), if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retriable { retry_after, .. } => *retry_after,
            Self::Refused { .. } => None,
        }
    }

    /// The service that failed (`ntfy`, `email`, …), for logs and metrics labels.
    pub fn service(&self) -> &'static str {
        match self {
            Self::Retriable { service, .. } | Self::Refused { service, .. } => service,
        }
    }
}
