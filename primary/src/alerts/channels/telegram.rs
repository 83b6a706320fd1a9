//! Telegram bots (<https://core.telegram.org/bots/api#sendmessage>): `POST
//! /bot<token>/sendMessage` with the JSON body `{"chat_id", "text"}` for each chat (plus
//! `message_thread_id` for a `chat:thread` entry and `disable_notification` for
//! `notification=no`). `text` is plain (no `parse_mode`), at most 4096 characters.
//!
//! URL: `telegram://token@telegram?chats=@channel,-1001234567890[:thread]`, as in shoutrrr
//! (`channels` is an alias of `chats`; `notification=no` sends silently). A message goes to
//! every chat in turn; when one fails, the error is returned and a retry sends to all again.

use std::fmt;

use pivitals_common::Secret;
use url::Url;

use super::url_parts::{Query, join, path_segments, userinfo};
use super::{ChannelError, Message, SendError, http};

const SERVICE: &str = "telegram";

/// Telegram's limit for `text`.
const MAX_CHARS: usize = 4096;

#[derive(Clone, PartialEq)]
pub(crate) struct Telegram {
    pub(crate) api_base: Url,
    token: Secret,
    chats: Vec<Chat>,
    notification: bool,
}

#[derive(Debug, Clone, PartialEq)]
struct Chat {
    /// A numeric id or an `@channelusername`.
    id: String,
    thread: Option<i64>,
}

impl Telegram {
    pub(crate) fn from_url(url: &Url) -> Result<Self, ChannelError> {
        let mut query = Query::of(url, SERVICE, "chats, channels, notification");
        let chats = query.take(&["chats", "channels"]).unwrap_or_default();
        let notification = query.take_bool(&["notification"])?.unwrap_or(true);
        query.finish()?;
        if url.host_str() != Some("telegram") || !path_segments(url).is_empty() {
            return Err(ChannelError::invalid(
                SERVICE,
                "the format is telegram://token@telegram?chats=…",
            ));
        }
        let (user, pass) = userinfo(url);
        let token = format!("{user}:{pass}");
        let valid = !user.is_empty()
            && user.chars().all(|c| c.is_ascii_digit())
            && !pass.is_empty()
            && pass
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid {
            return Err(ChannelError::invalid(
                SERVICE,
                "the bot token must look like 123456:ABC-def (telegram://token@telegram?chats=…)",
            ));
        }
        let chats = chats
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(parse_chat)
            .collect::<Result<Vec<_>, _>>()?;
        if chats.is_empty() {
            return Err(ChannelError::invalid(
                SERVICE,
                "no chats (add ?chats=@channel or a chat id)",
            ));
        }
        Ok(Self {
            api_base: default_api_base(),
            token: Secret::new(token),
            chats,
            notification,
        })
    }

    pub(crate) async fn send(
        &self,
        http: &reqwest::Client,
        message: &Message,
    ) -> Result<(), SendError> {
        let text: String = message.text.chars().take(MAX_CHARS).collect();
        let url = join(
            &self.api_base,
            &format!("/bot{}/sendMessage", self.token.expose()),
        );
        for chat in &self.chats {
            let mut body = serde_json::json!({ "chat_id": chat_id(&chat.id), "text": text });
            if let Some(thread) = chat.thread {
                body["message_thread_id"] = thread.into();
            }
            if !self.notification {
                body["disable_notification"] = true.into();
            }
            http::deliver(SERVICE, http.post(&url).json(&body)).await?;
        }
        Ok(())
    }
}

fn default_api_base() -> Url {
    Url::parse("https://api.telegram.org").expect("a valid URL")
}

/// `@name`, `123`, `-100123` or either with `:thread`.
fn parse_chat(entry: &str) -> Result<Chat, ChannelError> {
    let (id, thread) = match entry.split_once(':') {
        Some((id, thread)) => {
            let thread = thread.parse::<i64>().map_err(|_| {
                ChannelError::invalid(SERVICE, "a thread (after `chat:`) must be a number")
            })?;
            (id, Some(thread))
        }
        None => (entry, None),
    };
    let valid = match id.strip_prefix('@') {
        Some(name) => {
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => id.parse::<i64>().is_ok(),
    };
    if !valid {
        return Err(ChannelError::invalid(
            SERVICE,
            format!("chat `{id}` is neither a chat id (number) nor an @channel name"),
        ));
    }
    Ok(Chat {
        id: id.to_owned(),
        thread,
    })
}

/// A numeric id as a JSON number, a channel name as a string (the API takes either).
fn chat_id(id: &str) -> serde_json::Value {
    match id.parse::<i64>() {
        Ok(n) => n.into(),
        Err(_) => id.into(),
    }
}

impl fmt::Display for Telegram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chats: Vec<String> = self
            .chats
            .iter()
            .map(|c| match c.thread {
                Some(t) => format!("{}:{t}", c.id),
                None => c.id.clone(),
            })
            .collect();
        write!(f, "telegram://***@telegram?chats={}", chats.join(","))?;
        if !self.notification {
            write!(f, "&notification=no")?;
        }
        Ok(())
    }
}
