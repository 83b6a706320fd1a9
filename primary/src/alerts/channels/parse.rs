//! From a notification URL to a [`Channel`]: the scheme picks the service and each service
//! reads its own parts (with the helpers in `url_parts`); a comma-separated list of URLs is
//! split here.

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
    /// (`chats=1,2`, `to=a@x,b@x`) stay in it. Empty entries and trailing commas are skipped.
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
        .map(|entry| {
            entry
                .trim_end_matches(|c: char| c == ',' || c.is_whitespace())
                .trim()
        })
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
}
