//! Discord webhooks (<https://discord.com/developers/docs/resources/webhook#execute-webhook>):
//! `POST /api/webhooks/{webhook.id}/{webhook.token}` with the JSON body `{"content": text}`
//! (at most 2000 characters); Discord answers 204.
//!
//! URL: `discord://token@webhookid`, as in shoutrrr, or the webhook URL Discord shows,
//! `https://discord.com/api/webhooks/webhookid/token`.

use std::fmt;

use pivitals_common::Secret;
use url::Url;

use super::url_parts::{Query, join, path_segments, percent_decode};
use super::{ChannelError, Message, SendError, http};

const SERVICE: &str = "discord";

/// Discord's limit for `content`.
const MAX_CHARS: usize = 2000;

#[derive(Clone, PartialEq)]
pub(crate) struct Discord {
    pub(crate) api_base: Url,
    webhook_id: String,
    token: Secret,
}

fn default_api_base() -> Url {
    Url::parse("https://discord.com").expect("a valid URL")
}

impl Discord {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        Query::of(url, SERVICE, "none").finish()?;
        if !path_segments(url).is_empty() {
            return Err(ChannelError::invalid(
                SERVICE,
                "unexpected path (the format is discord://token@webhookid)",
            ));
        }
        let webhook_id = url.host_str().unwrap_or_default();
        Self::new(webhook_id, &percent_decode(url.username()))
    }

    /// A `https://discord.com/api/webhooks/{id}/{token}` URL (also `discordapp.com`), or
    /// `None` for any other URL.
    pub(crate) fn from_webhook_url(url: &Url) -> Result<Option<Self>, ChannelError> {
        if !matches!(url.host_str(), Some("discord.com" | "discordapp.com")) {
            return Ok(None);
        }
        match path_segments(url).as_slice() {
            [api, webhooks, id, token] if api == "api" && webhooks == "webhooks" => {
                Self::new(id, token).map(Some)
            }
            _ => Err(ChannelError::invalid(
                SERVICE,
                "a webhook URL is https://discord.com/api/webhooks/webhookid/token",
            )),
        }
    }

    fn new(webhook_id: &str, token: &str) -> Result<Self, ChannelError> {
        if webhook_id.is_empty() || !webhook_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(ChannelError::invalid(
                SERVICE,
                "the webhook id (after @) must be digits (discord://token@webhookid)",
            ));
        }
        if token.is_empty() {
            return Err(ChannelError::invalid(
                SERVICE,
                "the webhook token is missing (discord://token@webhookid)",
            ));
        }
        Ok(Self {
            api_base: default_api_base(),
            webhook_id: webhook_id.to_owned(),
            token: Secret::new(token),
        })
    }

    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        message: &Message,
    ) -> Result<(), SendError> {
        let content: String = message.text.chars().take(MAX_CHARS).collect();
        let path = format!("/api/webhooks/{}/{}", self.webhook_id, self.token.expose());
        let request = http
            .post(join(&self.api_base, &path))
            .json(&serde_json::json!({ "content": content }));
        http::deliver(SERVICE, request).await
    }
}

impl fmt::Display for Discord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "discord://***@{}", self.webhook_id)
    }
}
