//! Wire types and line-protocol encoding shared by the pivitals agent and primary.
//!
//! **Architecture Invariant:** this crate does no I/O. It describes what travels between an
//! agent and the primary ([`vitals`], [`registration`], [`actions`]), what names and labels
//! are allowed ([`validate`]), and how a sample becomes InfluxDB line protocol
//! ([`line_protocol`]).
//!
//! It also holds the policies both sides must apply alike, each in one place: how long to wait
//! before retrying ([`backoff`]), how much one request may carry ([`limits`]), and a token
//! type that never prints ([`secret`]).

pub mod actions;
pub mod backoff;
pub mod errors;
pub mod hex;
pub mod limits;
pub mod line_protocol;
pub mod registration;
pub mod secret;
pub mod validate;
pub mod vitals;

pub use backoff::{Backoff, MAX_RETRY_AFTER, Retries};
pub use registration::{
    Goodbye, HardwareIdentity, PushReply, RegisterReply, RegisterRequest, VitalsPush,
};
pub use secret::Secret;
pub use vitals::{
    CpuVitals, DiskIoRates, DiskIoVitals, DiskVitals, InterfaceInfo, Labels, LoadAverage,
    MemoryVitals, NetRates, NetVitals, NodeInfo, PowerVitals, StorageHealthVitals, SwapVitals,
    TemperatureVitals, Throttling, VitalsPayload,
};
