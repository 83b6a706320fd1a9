//! Gotify (<https://gotify.net/api-docs>, `POST /message`): the application token in the
//! `X-Gotify-Key` header and the JSON body `{"title", "message", "priority"}`.
//!
//! URL: `gotify://host[:port][/prefix]/token[?disabletls=yes]`, as in shoutrrr (whose
//! `disabletls=yes` means plain HTTP). The token goes in the header rather than shoutrrr's
//! `?token=`, so it does not end up in proxy logs.

use std::fmt;

use pivitals_common::Secret;
use url::Url;

use super::url_parts::{Query, authority, join, path_segments, server_base, server_display};
use super::{ChannelError, Message, Priority, SendError, http};

const SERVICE: &str = "gotify";

#[derive(Clone, PartialEq)]
pub(crate) struct Gotify {
    /// `scheme://host[:port][/prefix]`.
    base: Url,
    token: Secret,
}

impl Gotify {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        let mut query = Query::of(url, SERVICE, "disabletls");
        let plain = query.take_bool(&["disabletls"])?.unwrap_or(false);
        query.finish()?;
        let host = authority(url).ok_or_else(|| {
            ChannelError::invalid(SERVICE, "the server is missing (gotify://host/token)")
        })?;
        let mut segments = path_segments(url);
        let token = segments.pop().ok_or_else(|| {
            ChannelError::invalid(
                SERVICE,
                "the application token is missing (gotify://host/token)",
            )
        })?;
        let scheme = if plain { "http" } else { "https" };
        let base = server_base(SERVICE, scheme, &host, &segments)?;
        Ok(Self {
            base,
            token: Secret::new(token),
        })
    }

    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        message: &Message,
    ) -> Result<(), SendError> {
        let body = serde_json::json!({
            "title": message.title,
            "message": message.text,
            "priority": priority(message.priority),
        });
        let request = http
            .post(join(&self.base, "/message"))
            .header("X-Gotify-Key", self.token.expose())
            .json(&body);
        http::deliver(SERVICE, request).await
    }
}

/// Gotify's 0 to 10 scale as its Android app shows it: 4–7 notify with sound, 8–10 also pop
/// up. Info is 4, a warning 7, critical 10.
pub(crate) fn priority(priority: Priority) -> u8 {
    match priority {
        Priority::Info => 4,
        Priority::Warning => 7,
        Priority::Critical => 10,
    }
}

impl fmt::Display for Gotify {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = server_display(&self.base);
        write!(f, "gotify://{server}/***")?;
        if self.base.scheme() == "http" {
            write!(f, "?disabletls=yes")?;
        }
        Ok(())
    }
}
