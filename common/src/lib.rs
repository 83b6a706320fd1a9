//! Wire types and line-protocol encoding shared by the pivitals agent and primary.
//!
//! **Architecture Invariant:** this crate does no I/O. It describes what travels between an
//! agent and the primary ([`vitals`], [`registration`]), what names and labels are allowed
//! ([`validate`]), and how a sample becomes InfluxDB line protocol ([`line_protocol`]).

pub mod line_protocol;
pub mod registration;
pub mod validate;
pub mod vitals;

pub use registration::{Goodbye, RegisterReply, RegisterRequest, VitalsPush};
pub use vitals::{
    CpuVitals, DiskVitals, Labels, LoadAverage, MemoryVitals, NetVitals, NodeInfo, SwapVitals,
    TemperatureVitals, Throttling, VitalsPayload,
};
