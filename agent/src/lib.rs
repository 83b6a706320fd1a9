//! The pivitals agent: samples its host's vitals and pushes them to the primary.
//!
//! Layout: [`collect`] samples the host (sysinfo plus `/sys` and `/proc` readers).

pub mod collect;
