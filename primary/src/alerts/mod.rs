//! Telling people about their nodes: the [`webhook`] that is posted when a node goes down or
//! recovers; alert rules on the vitals: [`rules`] (what `[[alert.rules]]` says, checked
//! against the schema, and the defaults), the [`engine`] that judges each accepted sample
//! per series (pending, firing, resolved), and the [`event`]s it returns with their one-line
//! messages; the [`channels`] messages are delivered to; and the [`runtime`] that runs it all
//! in the primary. Rules, engine and events are pure: no clock, task, delivery or I/O.
//!
//! **Wiring.** `config` loads `[[alert.rules]]` ([`rules::load`], the defaults unless
//! `default_rules = false`) and the channels (`[alert.channels]` and `PIVITALS_ALERT__NOTIFY`)
//! and refuses a wrong rule or channel at start, in one line. The push route and the
//! self-monitor hand every accepted sample to [`runtime::AlertRuntime::observe`]; the
//! liveness watcher reports nodes down, back and stopped, the admin delete reports nodes
//! gone. The runtime queues each event's message per channel (bounded, `try_send` only),
//! spools an `alert` point for each transition and keeps the last resolved alerts for
//! `GET /api/v1/alerts`. The status webhook (`webhook_url`) runs beside it, unchanged.

pub mod channels;
pub mod engine;
pub mod event;
mod queue;
pub mod rules;
pub mod runtime;
pub mod webhook;
