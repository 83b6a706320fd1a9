//! Slack incoming webhooks (<https://api.slack.com/messaging/webhooks>): `POST
//! /services/T…/B…/X…` with the JSON body `{"text": text}`; Slack answers 200 `ok`.
//!
//! URL: shoutrrr's `slack://hook:T…-B…-X…@webhook` (its older `slack://T…/B…/X…` too), or
//! the webhook URL Slack shows, `https://hooks.slack.com/services/T…/B…/X…`. Bot tokens
//! (`slack://xoxb:…@channel`, the chat.postMessage API) are not supported: create a webhook.

use std::fmt;

use pivitals_common::Secret;
use url::Url;

use super::url_parts::{Query, join, path_segments, userinfo};
use super::{ChannelError, Message, SendError, http};

const SERVICE: &str = "slack";

#[derive(Clone, PartialEq)]
pub(crate) struct Slack {
    pub(crate) api_base: Url,
    /// `T…/B…/X…`: the whole path after `/services/` is the secret.
    path: Secret,
}

fn default_api_base() -> Url {
    Url::parse("https://hooks.slack.com").expect("a valid URL")
}

impl Slack {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        Query::of(url, SERVICE, "none").finish()?;
        let (user, pass) = userinfo(url);
        let segments = path_segments(url);
        let parts: Vec<String> = if segments.is_empty() {
            match user.as_str() {
                "hook" => pass.split(['-', '/', ',']).map(str::to_owned).collect(),
                "xoxb" | "xoxp" => {
                    return Err(ChannelError::invalid(
                        SERVICE,
                        "bot tokens are not supported; use a webhook (slack://hook:…@webhook)",
                    ));
                }
                _ => {
                    return Err(ChannelError::invalid(
                        SERVICE,
                        "the format is slack://hook:T…-B…-X…@webhook",
                    ));
                }
            }
        } else {
            // The older slack://T…/B…/X… form.
            let mut parts = vec![url.host_str().unwrap_or_default().to_owned()];
            parts.extend(segments);
            parts
        };
        Self::new(&parts)
    }

    /// A `https://hooks.slack.com/services/T…/B…/X…` URL, or `None` for any other URL.
    pub(crate) fn from_webhook_url(url: &Url) -> Result<Option<Self>, ChannelError> {
        if url.host_str() != Some("hooks.slack.com") {
            return Ok(None);
        }
        match path_segments(url).split_first() {
            Some((services, parts)) if services == "services" => Self::new(parts).map(Some),
            _ => Err(ChannelError::invalid(
                SERVICE,
                "a webhook URL is https://hooks.slack.com/services/T…/B…/X…",
            )),
        }
    }

    fn new(parts: &[String]) -> Result<Self, ChannelError> {
        let valid = parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
        if !valid {
            return Err(ChannelError::invalid(
                SERVICE,
                "the webhook token must be three parts of letters and digits (T…-B…-X…)",
            ));
        }
        Ok(Self {
            api_base: default_api_base(),
            path: Secret::new(parts.join("/")),
        })
    }

    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        message: &Message,
    ) -> Result<(), SendError> {
        let path = format!("/services/{}", self.path.expose());
        let request = http
            .post(join(&self.api_base, &path))
            .json(&serde_json::json!({ "text": message.text }));
        http::deliver(SERVICE, request).await
    }
}

impl fmt::Display for Slack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "slack://hook:***@webhook")
    }
}
