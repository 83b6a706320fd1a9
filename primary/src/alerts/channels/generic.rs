//! The generic JSON webhook: `POST` the message's `json` to any URL, with
//! `Content-Type: application/json`; any 2xx is delivered.
//!
//! URL: `generic+https://host[:port]/path[?query]` or `generic+http://…`, shoutrrr's
//! shortcut: the URL without `generic+` is called as written, query included.

use std::fmt;

use url::Url;

use super::{ChannelError, Message, SendError, http};

const SERVICE: &str = "generic";

#[derive(Clone, PartialEq)]
pub(crate) struct Generic {
    /// May hold a secret (in the path or the query); printed only as scheme, host and port.
    target: Url,
}

impl Generic {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        let raw = url.as_str();
        let inner = raw.strip_prefix("generic+").unwrap_or(raw);
        let target = Url::parse(inner)
            .map_err(|e| ChannelError::invalid(SERVICE, format!("bad target URL: {e}")))?;
        if target.host_str().is_none_or(str::is_empty) {
            return Err(ChannelError::invalid(
                SERVICE,
                "the server is missing (generic+https://host/path)",
            ));
        }
        Ok(Self { target })
    }

    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        message: &Message,
    ) -> Result<(), SendError> {
        http::deliver(SERVICE, http.post(self.target.clone()).json(&message.json)).await
    }
}

impl fmt::Display for Generic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.target.host_str().unwrap_or_default();
        let port = self
            .target
            .port()
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        write!(f, "generic+{}://{host}{port}", self.target.scheme())?;
        if self.target.path() != "/" || self.target.query().is_some() {
            write!(f, "/***")?;
        }
        Ok(())
    }
}
