//! ntfy (<https://docs.ntfy.sh/publish/>): `POST` the text to `/<topic>` with the title,
//! priority and tags as the `Title`, `Priority` and `Tags` headers.
//!
//! URL: `ntfy://[user:pass@]host[:port][/prefix]/topic[?scheme=http][&tags=a,b]`, as in
//! shoutrrr; `scheme` defaults to `https`. Credentials go as HTTP basic auth (for an access
//! token, leave the user empty: `ntfy://:tk_…@host/topic`, which ntfy accepts as documented).
//! Header values that are not plain ASCII are sent RFC 2047-encoded, which ntfy decodes.

use std::fmt;

use pivitals_common::Secret;
use url::Url;

use super::url_parts::{
    Query, authority, join, path_segments, server_base, server_display, userinfo,
};
use super::{ChannelError, Message, Priority, SendError, http};

const SERVICE: &str = "ntfy";

#[derive(Clone, PartialEq)]
pub(crate) struct Ntfy {
    /// `scheme://host[:port][/prefix]`.
    base: Url,
    topic: String,
    auth: Option<(String, Secret)>,
    tags: Vec<String>,
}

impl Ntfy {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        let mut query = Query::of(url, SERVICE, "scheme, tags");
        let scheme = query.take(&["scheme"]).unwrap_or_else(|| "https".into());
        if scheme != "https" && scheme != "http" {
            return Err(ChannelError::invalid(
                SERVICE,
                "`scheme` must be https or http",
            ));
        }
        let tags = query
            .take(&["tags"])
            .map(|t| split_tags(&t))
            .unwrap_or_default();
        query.finish()?;
        let host = authority(url).ok_or_else(|| {
            ChannelError::invalid(SERVICE, "the server is missing (ntfy://host/topic)")
        })?;
        let mut segments = path_segments(url);
        let topic = segments.pop().ok_or_else(|| {
            ChannelError::invalid(SERVICE, "the topic is missing (ntfy://host/topic)")
        })?;
        if topic.len() > 64
            || !topic
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ChannelError::invalid(
                SERVICE,
                "a topic is 1 to 64 letters, digits, `-` or `_`",
            ));
        }
        let base = server_base(SERVICE, &scheme, &host, &segments)?;
        let (user, pass) = userinfo(url);
        let auth = (!user.is_empty() || !pass.is_empty()).then(|| (user, Secret::new(pass)));
        Ok(Self {
            base,
            topic,
            auth,
            tags,
        })
    }

    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        message: &Message,
    ) -> Result<(), SendError> {
        let mut tags = message.tags.clone();
        tags.extend(self.tags.iter().cloned());
        let mut request = http
            .post(join(&self.base, &format!("/{}", self.topic)))
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .header("Title", header_value(&message.title))
            .header("Priority", priority(message.priority));
        if !tags.is_empty() {
            request = request.header("Tags", header_value(&tags.join(",")));
        }
        if let Some((user, pass)) = &self.auth {
            request = request.basic_auth(user, Some(pass.expose()));
        }
        http::deliver(SERVICE, request.body(message.text.clone())).await
    }
}

/// ntfy's 1 to 5 scale: info is the default (3), a warning high (4), critical urgent (5).
pub(crate) fn priority(priority: Priority) -> &'static str {
    match priority {
        Priority::Info => "3",
        Priority::Warning => "4",
        Priority::Critical => "5",
    }
}

fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The text as it is if it is printable ASCII, else as an RFC 2047 encoded word
/// (`=?UTF-8?B?…?=`); control characters become spaces either way.
pub(crate) fn header_value(text: &str) -> String {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        text
    } else {
        format!("=?UTF-8?B?{}?=", base64(text.as_bytes()))
    }
}

/// Standard base64 with padding (RFC 4648), for the encoded words above.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl fmt::Display for Ntfy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let server = server_display(&self.base);
        write!(f, "ntfy://")?;
        if let Some((user, _)) = &self.auth {
            write!(f, "{user}:***@")?;
        }
        write!(f, "{server}/{}", self.topic)?;
        let mut query = Vec::new();
        if self.base.scheme() == "http" {
            query.push("scheme=http".to_owned());
        }
        if !self.tags.is_empty() {
            query.push(format!("tags={}", self.tags.join(",")));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    #[test]
    fn non_ascii_header_values_become_encoded_words() {
        assert_eq!(header_value("pi-07 hot"), "pi-07 hot");
        assert_eq!(header_value("a\nb"), "a b");
        assert_eq!(header_value("82 °C"), "=?UTF-8?B?ODIgwrBD?=");
    }
}
