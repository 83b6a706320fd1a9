//! Telling people about their nodes: today the [`webhook`] that is posted when a node goes
//! down or recovers.

pub mod webhook;
