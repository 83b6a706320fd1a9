//! [`Channel`]: one configured destination, whichever service it is, with a `Display` and
//! `Debug` that never show its secrets.

use std::fmt;

use super::{Message, SendError, discord, email, generic, gotify, ntfy, slack, telegram};

/// A parsed notification URL ([`Channel::parse`]), ready to [`send`](Channel::send).
///
/// Printing it (`{}` or `{:?}`) shows the URL with passwords and tokens replaced by `***`.
#[derive(Clone, PartialEq)]
pub struct Channel {
    service: Service,
}

#[derive(Clone, PartialEq)]
pub(crate) enum Service {
    Ntfy(ntfy::Ntfy),
    Gotify(gotify::Gotify),
    Discord(discord::Discord),
    Slack(slack::Slack),
    Telegram(telegram::Telegram),
    Email(email::Email),
    Generic(generic::Generic),
}

impl From<Service> for Channel {
    fn from(service: Service) -> Self {
        Self { service }
    }
}

impl Channel {
    /// Delivers `message` once; the caller's queue decides about retries from the
    /// [`SendError`]. `http` is used by every service but e-mail; each request is bounded by
    /// [`SEND_TIMEOUT`](super::SEND_TIMEOUT).
    pub async fn send(&self, http: &reqwest::Client, message: &Message) -> Result<(), SendError> {
        match &self.service {
            Service::Ntfy(s) => s.send(http, message).await,
            Service::Gotify(s) => s.send(http, message).await,
            Service::Discord(s) => s.send(http, message).await,
            Service::Slack(s) => s.send(http, message).await,
            Service::Telegram(s) => s.send(http, message).await,
            Service::Email(s) => s.send(message).await,
            Service::Generic(s) => s.send(http, message).await,
        }
    }

    /// The service's name (`ntfy`, `gotify`, `discord`, `slack`, `telegram`, `email`,
    /// `generic`), for logs and metrics labels.
    pub fn service(&self) -> &'static str {
        match &self.service {
            Service::Ntfy(_) => "ntfy",
            Service::Gotify(_) => "gotify",
            Service::Discord(_) => "discord",
            Service::Slack(_) => "slack",
            Service::Telegram(_) => "telegram",
            Service::Email(_) => "email",
            Service::Generic(_) => "generic",
        }
    }

    /// Sends the requests of a service whose URL does not name its server (Discord
    /// `https://discord.com`, Slack `https://hooks.slack.com`, Telegram
    /// `https://api.telegram.org`) to `base` instead, keeping the documented paths: for a
    /// local Telegram Bot API server, a proxy, or a test's receiver. Services whose URL names
    /// the server (ntfy, Gotify, generic, SMTP) are returned unchanged.
    pub fn with_api_base(mut self, base: url::Url) -> Self {
        match &mut self.service {
            Service::Discord(s) => s.api_base = base,
            Service::Slack(s) => s.api_base = base,
            Service::Telegram(s) => s.api_base = base,
            Service::Ntfy(_) | Service::Gotify(_) | Service::Email(_) | Service::Generic(_) => {}
        }
        self
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.service {
            Service::Ntfy(s) => s.fmt(f),
            Service::Gotify(s) => s.fmt(f),
            Service::Discord(s) => s.fmt(f),
            Service::Slack(s) => s.fmt(f),
            Service::Telegram(s) => s.fmt(f),
            Service::Email(s) => s.fmt(f),
            Service::Generic(s) => s.fmt(f),
        }
    }
}

impl fmt::Debug for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Channel({self})")
    }
}
