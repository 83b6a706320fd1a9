//! Telling people about their nodes: the [`webhook`] that is posted when a node goes down or
//! recovers; alert rules on the vitals: [`rules`] (what `[[alert.rules]]` says, checked
//! against the schema, and the defaults), the [`engine`] that judges each accepted sample
//! per series (pending, firing, resolved), and the [`event`]s it returns with their one-line
//! messages; and the [`channels`] messages are delivered to. Rules, engine and events are
//! pure: no clock, task, delivery or I/O.
//!
//! Not yet wired: today only the webhook runs in the primary. Rules, engine and channels are
//! built and tested on their own; loading `[[alert.rules]]` and `[alert.channels]` from the
//! settings, feeding the engine from ingest and liveness, and delivering events through the
//! queue come next.

pub mod channels;
pub mod engine;
pub mod event;
pub mod rules;
pub mod webhook;
