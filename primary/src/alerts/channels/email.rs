//! E-mail over SMTP with `lettre`: the title as the subject and the one line as a plain-text
//! UTF-8 body, to every recipient at once.
//!
//! URL: `smtp://[user:pass@]host[:port]/?from=…&to=…[,…][&fromname=…][&encryption=…]`, as in
//! shoutrrr (`fromaddress`, `toaddresses` are aliases). `encryption` is `starttls` (the
//! default: STARTTLS is required, never silently skipped), `tls` (TLS from the first byte;
//! the default on port 465) or `none`; shoutrrr's `explicittls`, `implicittls` and `auto`
//! mean the same. The port defaults to 587 (`starttls`), 465 (`tls`) or 25 (`none`).
//! Credentials go as SMTP AUTH (lettre picks PLAIN or LOGIN). Certificates are checked with
//! the system's trust store.

use std::fmt;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use pivitals_common::Secret;
use url::Url;

use super::url_parts::{Query, path_segments, userinfo};
use super::{ChannelError, Message, SEND_TIMEOUT, SendError};

const SERVICE: &str = "email";

/// How the connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encryption {
    None,
    StartTls,
    Tls,
}

impl Encryption {
    fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::StartTls => "starttls",
            Self::Tls => "tls",
        }
    }
}

#[derive(Clone, PartialEq)]
pub(crate) struct Email {
    host: String,
    port: u16,
    encryption: Encryption,
    auth: Option<(String, Secret)>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Email {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        let mut query = Query::of(
            url,
            "smtp",
            "from, fromaddress, fromname, to, toaddresses, encryption",
        );
        let from = query.take(&["from", "fromaddress"]);
        let from_name = query.take(&["fromname"]);
        let to = query.take(&["to", "toaddresses"]);
        let encryption = query.take(&["encryption"]);
        query.finish()?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("the server is missing (smtp://host:port/?from=…&to=…)"))?;
        if !path_segments(url).is_empty() {
            return Err(invalid("unexpected path (smtp://host:port/?from=…&to=…)"));
        }
        let encryption = match encryption
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("auto") => match url.port() {
                Some(465) => Encryption::Tls,
                _ => Encryption::StartTls,
            },
            Some("starttls" | "explicittls") => Encryption::StartTls,
            Some("tls" | "implicittls") => Encryption::Tls,
            Some("none") => Encryption::None,
            Some(_) => return Err(invalid("`encryption` must be none, starttls or tls")),
        };
        let port = url.port().unwrap_or(match encryption {
            Encryption::None => 25,
            Encryption::StartTls => 587,
            Encryption::Tls => 465,
        });
        // shoutrrr's rule: a `+` in an address arrives as a space from the query string.
        let address = |a: &str| a.trim().replace(' ', "+");
        let from = from.ok_or_else(|| invalid("`from` is missing (?from=alerts@example.com)"))?;
        let from = Mailbox::new(
            from_name,
            address(&from)
                .parse()
                .map_err(|_| invalid(format!("`from` is not an e-mail address: {from}")))?,
        );
        let to = to
            .unwrap_or_default()
            .split(',')
            .filter(|a| !a.trim().is_empty())
            .map(|a| {
                address(a)
                    .parse::<Mailbox>()
                    .map_err(|_| invalid(format!("`to` has a bad address: {}", a.trim())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        if to.is_empty() {
            return Err(invalid("`to` is missing (?to=you@example.com[,…])"));
        }
        let (user, pass) = userinfo(url);
        let auth = (!user.is_empty()).then(|| (user, Secret::new(pass)));
        Ok(Self {
            host: host.to_owned(),
            port,
            encryption,
            auth,
            from,
            to,
        })
    }

    pub(crate) async fn send(&self, message: &Message) -> Result<(), SendError> {
        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(message.title.replace(['\r', '\n'], " "))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let email = builder
            .body(message.text.clone())
            .map_err(|e| refused(format!("cannot build the message: {e}")))?;
        let transport = self.transport()?;
        transport
            .send(email)
            .await
            .map(drop)
            .map_err(|e| classify(&e))
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        let builder = match self.encryption {
            Encryption::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&self.host),
            Encryption::StartTls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&self.host)
                    .map_err(|e| refused(format!("TLS setup: {e}")))?
            }
            Encryption::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&self.host)
                .map_err(|e| refused(format!("TLS setup: {e}")))?,
        };
        let mut builder = builder.port(self.port).timeout(Some(SEND_TIMEOUT));
        if let Some((user, pass)) = &self.auth {
            builder = builder.credentials(Credentials::new(user.clone(), pass.expose().to_owned()));
        }
        Ok(builder.build())
    }
}

fn invalid(problem: impl Into<String>) -> ChannelError {
    ChannelError::invalid("smtp", problem)
}

fn refused(reason: String) -> SendError {
    SendError::Refused {
        service: SERVICE,
        reason,
    }
}

/// An SMTP 5xx, a refused address, a missing STARTTLS or a failed certificate check will not
/// change by retrying; a 4xx, a network error or a timeout may.
fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    let reason = error.to_string();
    if error.is_permanent() || error.is_client() || error.is_tls() {
        refused(reason)
    } else {
        SendError::Retriable {
            service: SERVICE,
            reason,
            retry_after: None,
        }
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "smtp://")?;
        if let Some((user, _)) = &self.auth {
            write!(f, "{user}:***@")?;
        }
        let to: Vec<String> = self.to.iter().map(|m| m.email.to_string()).collect();
        write!(
            f,
            "{}:{}/?from={}&to={}&encryption={}",
            self.host,
            self.port,
            self.from.email,
            to.join(","),
            self.encryption.name()
        )
    }
}
