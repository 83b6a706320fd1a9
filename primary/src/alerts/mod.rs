//! Telling people about their nodes: the [`webhook`] that is posted when a node goes down or
//! recovers, and alert rules on the vitals: [`rules`] (what `[[alert.rules]]` says, checked
//! against the schema, and the defaults), the [`engine`] that judges each accepted sample
//! per series (pending, firing, resolved), and the [`event`]s it returns with their one-line
//! messages. Rules, engine and events are pure: no clock, task, channel or I/O.

pub mod engine;
pub mod event;
pub mod rules;
pub mod webhook;
