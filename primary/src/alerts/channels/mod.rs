//! Notification channels: where an alert goes, written as a notification URL the way Beszel,
//! Watchtower and Uptime Kuma users already write them (shoutrrr's formats), and how one
//! [`Message`] is delivered to each service.
//!
//! A channel is parsed once ([`Channel::parse`], or [`Channel::parse_list`] for a
//! comma-separated list; a [`Channel`] also deserializes from its URL) and then sent to with
//! [`Channel::send`]. Sending is one attempt: the alert queue owns retries, driven by
//! [`SendError::is_retriable`] and [`SendError::retry_after`].
//!
//! # URL formats
//!
//! | service | URL | example |
//! | --- | --- | --- |
//! | ntfy | `ntfy://[user:pass@]host[:port][/prefix]/topic[?scheme=http][&tags=a,b]` | `ntfy://ntfy.sh/pi-alerts` |
//! | Gotify | `gotify://host[:port][/prefix]/apptoken[?disabletls=yes]` | `gotify://gotify.lan/AzyoeNS.D4iJLVa` |
//! | Discord | `discord://token@webhookid`, or Discord's `https://discord.com/api/webhooks/webhookid/token` | `discord://W3dE2OZz4C13@693853386302554172` |
//! | Slack | `slack://hook:T…-B…-X…@webhook`, `slack://T…/B…/X…`, or Slack's `https://hooks.slack.com/services/T…/B…/X…` | `slack://hook:T000A0AAA-B000B0BBB-XXXXXXXXXXXXXXXXXXXXXXXX@webhook` |
//! | Telegram | `telegram://bottoken@telegram?chats=chat[,chat…][&notification=no]`; a chat is an id, `@channel`, or either with `:thread` | `telegram://123456:ABC-def@telegram?chats=@pi_alerts,-1001234567890` |
//! | e-mail | `smtp://[user:pass@]host[:port]/?from=addr&to=addr[,addr…][&fromname=…][&encryption=none\|starttls\|tls]` | `smtp://alerts:secret@mail.example.com:587/?from=pi@example.com&to=me@example.com` |
//! | JSON webhook | `generic+https://host[:port]/path[?query]` or `generic+http://…` | `generic+https://hooks.example.com/pivitals?key=1` |
//!
//! Passwords with `@`, `:` or `/` are percent-encoded (`%40`, `%3A`, `%2F`). Query keys are
//! matched without regard to case; a key the service does not know is an error (a typo must
//! not silently drop alerts). The API calls, as each service documents them: ntfy
//! `POST /topic` with `Title`, `Priority`, `Tags` headers; Gotify `POST /message` with
//! `X-Gotify-Key` and `{"title","message","priority"}`; Discord `POST
//! /api/webhooks/{id}/{token}` with `{"content"}`; Slack `POST /services/T/B/X` with
//! `{"text"}`; Telegram `POST /bot{token}/sendMessage` with `{"chat_id","text"}` per chat;
//! SMTP with `lettre` (`starttls` by default and required, `tls` by default on port 465);
//! the generic webhook `POST`s [`Message::json`] as it is.
//!
//! # What is sent
//!
//! | service | title | text (the one line) | priority (Info / Warning / Critical) | tags |
//! | --- | --- | --- | --- | --- |
//! | ntfy | `Title` header | body | `Priority` 3 / 4 / 5 | `Tags` header (message's, then the URL's) |
//! | Gotify | `title` | `message` | `priority` 4 / 7 / 10 | – |
//! | Discord | – | `content` (≤ 2000 chars) | – | – |
//! | Slack | – | `text` | – | – |
//! | Telegram | – | `text` (≤ 4096 chars, plain) | – | – |
//! | e-mail | `Subject` | `text/plain; charset=utf-8` body | – | – |
//! | generic | – | – | – | – (the body is [`Message::json`]) |
//!
//! # Failures
//!
//! Every HTTP request is bounded by [`SEND_TIMEOUT`] (connecting included), and so is each
//! SMTP command. A network error, a timeout, 408, 429, 5xx or an SMTP 4xx is
//! [`SendError::Retriable`] (with the service's `Retry-After`, or Telegram's
//! `parameters.retry_after`); any other answer is [`SendError::Refused`].
//!
//! **Architecture Invariant:** no password or token is ever printed: [`Channel`]'s `Display`
//! and `Debug` show the URL with `***` in their place, [`ChannelError`] names the wrong part
//! but not its value, and [`SendError`] never holds the request URL.
//!
//! **Architecture Invariant:** this module knows nothing of rules, nodes or the queue: it
//! turns URLs into channels and one message into one delivery attempt.

mod channel;
mod discord;
mod email;
mod error;
mod generic;
mod gotify;
mod http;
mod message;
mod ntfy;
mod parse;
mod slack;
mod telegram;
mod url_parts;

pub use channel::Channel;
pub use error::{ChannelError, SendError};
pub use http::SEND_TIMEOUT;
pub(crate) use http::{is_retriable, retry_after};
pub use message::{Message, Priority};
