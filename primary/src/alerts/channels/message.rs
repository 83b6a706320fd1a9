//! What a channel delivers: one [`Message`], the same for every service.

/// How urgent a message is; each service maps it to its own scale (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Priority {
    /// Good news or a notice, e.g. a node recovered.
    Info,
    /// Something needs a look soon, e.g. a node runs hot.
    Warning,
    /// Something is broken now, e.g. a node is down.
    Critical,
}

/// One notification.
///
/// `text` is the one line a phone shows, complete on its own: node, what, value, threshold and
/// since when, e.g. `pi-07 hot: temperature cpu_thermal 82.1 °C > 80 for 2m`. Chat services
/// send only `text`; ntfy, Gotify and e-mail also send `title` (header or subject); the
/// generic webhook sends only `json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// A short title, e.g. `pi-07 hot`.
    pub title: String,
    /// The one line (see above).
    pub text: String,
    pub priority: Priority,
    /// Tags for services that show them (ntfy: emoji short codes such as `warning`).
    pub tags: Vec<String>,
    /// The body of the generic JSON webhook.
    pub json: serde_json::Value,
}
