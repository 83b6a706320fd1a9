//! The parts of a notification URL every service reads the same way: query parameters that
//! must all be known, percent-decoded user info, host and port, path segments; and joining an
//! API base with a documented path.

use url::Url;

use super::ChannelError;

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
        let at = self
            .pairs
            .iter()
            .position(|(k, _)| keys.contains(&k.as_str()))?;
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

/// `scheme://host[:port][/prefix]` of a self-hosted service, the prefix being `segments`.
pub(crate) fn server_base(
    service: &'static str,
    scheme: &str,
    host: &str,
    segments: &[String],
) -> Result<Url, ChannelError> {
    let prefix: String = segments.iter().map(|s| format!("/{s}")).collect();
    Url::parse(&format!("{scheme}://{host}{prefix}"))
        .map_err(|e| ChannelError::invalid(service, format!("bad server address: {e}")))
}

/// `host[:port][/prefix]` of a [`server_base`], to print a channel back.
pub(crate) fn server_display(base: &Url) -> String {
    let host = base.host_str().unwrap_or_default();
    let port = base.port().map(|p| format!(":{p}")).unwrap_or_default();
    let prefix = base.path().trim_end_matches('/');
    format!("{host}{port}{prefix}")
}

/// The non-empty, decoded segments of the URL's path.
pub(crate) fn path_segments(url: &Url) -> Vec<String> {
    url.path()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect()
}

/// `base` joined with `path` (which starts with `/`), keeping any path prefix of `base`.
pub(crate) fn join(base: &url::Url, path: &str) -> String {
    format!("{}{path}", base.as_str().trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_decoded() {
        assert_eq!(percent_decode("p%40ss%3Aw%zz%4"), "p@ss:w%zz%4");
    }
}
