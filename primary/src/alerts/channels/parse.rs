//! From a notification URL to a [`Channel`]: the scheme picks the service, each service
//! reads its own parts, and the helpers here are what they share (query parameters that must
//! all be known, percent-decoding, splitting a comma-separated list of URLs).

use url::Url;

use super::channel::{Channel, Service};
use super::{ChannelError, discord, email, generic, gotify, ntfy, slack, telegram};

impl Channel {
    /// Reads one notification URL (see the module docs for every format).
    pub fn parse(url: &str) -> Result<Channel, ChannelError> {
        let url = url.trim();
        let parsed = Url::parse(url).map_err(|e| ChannelError::NotAUrl(e.to_string()))?;
        let service = match parsed.scheme() {
            "ntfy" => Service::Ntfy(ntfy::Ntfy::from_url(&parsed)?),
            "gotify" => Service::Gotify(gotify::Gotify::from_url(&parsed)?),
            "discord" => Service::Discord(discord::Discord::from_url(&parsed)?),
            "slack" => Service::Slack(slack::Slack::from_url(&parsed)?),
            "telegram" => Service::Telegram(telegram::Telegram::from_url(&parsed)?),
            "smtp" => Service::Email(email::Email::from_url(&parsed)?),
            "generic+https" | "generic+http" => {
                Service::Generic(generic::Generic::from_url(&parsed)?)
            }
            "https" | "http" => {
                if let Some(slack) = slack::Slack::from_webhook_url(&parsed)? {
                    Service::Slack(slack)
                } else if let Some(discord) = discord::Discord::from_webhook_url(&parsed)? {
                    Service::Discord(discord)
                } else {
                    return Err(ChannelError::invalid(
                        "generic",
                        format!(
                            "a plain {}:// URL is not a channel; write generic+{}://… for the JSON webhook",
                            parsed.scheme(),
                            parsed.scheme()
                        ),
                    ));
                }
            }
            other => return Err(ChannelError::UnknownService(other.to_owned())),
        };
        Ok(Channel::from(service))
    }

    /// Reads a comma-separated list of URLs, as in `PIVITALS_ALERT__NOTIFY`.
    ///
    /// A comma starts a new URL only where a `scheme://` follows it, so commas inside a URL
    /// (`chats=1,2`, `to=a@x,b@x`) stay in it. Empty entries are skipped.
    pub fn parse_list(urls: &str) -> Result<Vec<Channel>, ChannelError> {
        split_list(urls).into_iter().map(Channel::parse).collect()
    }
}

impl std::str::FromStr for Channel {
    type Err = ChannelError;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Channel::parse(url)
    }
}

impl<'de> serde::Deserialize<'de> for Channel {
    /// A channel in a settings file is its URL; a bad one fails the load with the one-line
    /// [`ChannelError`].
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let url = String::deserialize(deserializer)?;
        Channel::parse(&url).map_err(serde::de::Error::custom)
    }
}

/// The entries of a comma-separated list of URLs (see [`Channel::parse_list`]).
pub(crate) fn split_list(urls: &str) -> Vec<&str> {
    let mut entries = Vec::new();
    let mut start = 0;
    for (at, _) in urls.match_indices(',') {
        if starts_with_scheme(&urls[at + 1..]) {
            entries.push(&urls[start..at]);
            start = at + 1;
        }
    }
    entries.push(&urls[start..]);
    entries
        .into_iter()
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// True when `text` (after spaces) opens with `scheme://`.
fn starts_with_scheme(text: &str) -> bool {
    let text = text.trim_start();
    let Some((scheme, _)) = text.split_once("://") else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

/// A URL's query parameters, taken one by one by the service; [`Query::finish`] refuses any
/// left over, so a typo is an error rather than a silently ignored setting. Keys are matched
/// without regard to case, as shoutrrr does.
pub(crate) struct Query {
    service: &'static str,
    known: &'static str,
    pairs: Vec<(String, String)>,
}

impl Query {
    /// `known` lists the accepted keys for the error message.
    pub(crate) fn of(url: &Url, service: &'static str, known: &'static str) -> Self {
        Self {
            service,
            known,
            pairs: url
                .query_pairs()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.into_owned()))
                .collect(),
        }
    }

    /// Takes the value of the first of `keys` present (aliases: `to`, `toaddresses`).
    pub(crate) fn take(&mut self, keys: &[&str]) -> Option<String> {
        let at = self.pairs.iter().position(|(k, _)| keys.contains(&k.as_str()))?;
        let (_, value) = self.pairs.remove(at);
        self.pairs.retain(|(k, _)| !keys.contains(&k.as_str()));
        Some(value)
    }

    /// Takes a yes/no parameter (`yes`, `true`, `1` or `no`, `false`, `0`).
    pub(crate) fn take_bool(&mut self, keys: &[&str]) -> Result<Option<bool>, ChannelError> {
        let Some(value) = self.take(keys) else {
            return Ok(None);
        };
        match value.to_ascii_lowercase().as_str() {
            "yes" | "true" | "1" => Ok(Some(true)),
            "no" | "false" | "0" => Ok(Some(false)),
            _ => Err(ChannelError::invalid(
                self.service,
                format!("`{}` must be yes or no", keys[0]),
            )),
        }
    }

    /// Fails on the first parameter no one took.
    pub(crate) fn finish(self) -> Result<(), ChannelError> {
        match self.pairs.into_iter().next() {
            None => Ok(()),
            Some((name, _)) => Err(ChannelError::UnknownParameter {
                service: self.service,
                name,
                known: self.known,
            }),
        }
    }
}

/// Decodes `%XX` escapes (a password with `@` or `:` is written `%40`, `%3A`); invalid UTF-8
/// is replaced, never an error.
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).and_then(|b| hex(*b)),
                bytes.get(i + 2).and_then(|b| hex(*b)),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL's user name and password, decoded; empty strings when absent.
pub(crate) fn userinfo(url: &Url) -> (String, String) {
    (
        percent_decode(url.username()),
        url.password().map(percent_decode).unwrap_or_default(),
    )
}

/// `host` or `host:port` (IPv6 in brackets), as written, for messages and rebuilt URLs.
pub(crate) fn authority(url: &Url) -> Option<String> {
    let host = url.host_str().filter(|h| !h.is_empty())?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// The non-empty, decoded segments of the URL's path.
pub(crate) fn path_segments(url: &Url) -> Vec<String> {
    url.path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_splits_only_where_a_new_url_starts() {
        assert_eq!(
            split_list(
                "ntfy://h/t, telegram://1:a@telegram?chats=1,2,smtp://h:25/?from=a@x&to=b@x,c@x ,"
            ),
            vec![
                "ntfy://h/t",
                "telegram://1:a@telegram?chats=1,2",
                "smtp://h:25/?from=a@x&to=b@x,c@x",
            ]
        );
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aw%zz%4"), "p@ss:w%zz%4");
    }
}
