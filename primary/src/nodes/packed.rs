//! [`Packed`]: a value the live table holds for every node but reads seldom, kept in
//! postcard's compact encoding instead of as Rust values.
//!
//! # Why
//!
//! A node's newest sample is written at every push and read only when someone asks: the node's
//! page, `/metrics`, a placement query, the last-known snapshot every few minutes. As values it
//! is about 1.7 KB on a host with four interfaces and a disk: 472 bytes inline, a block for
//! each list and each name. Packed it is one block of about 300 bytes (numbers as varints, no
//! padding, no per-field blocks), which at 10,000 nodes is about 14 MB less, and one
//! allocation a push instead of a dozen. The node's registration info (names, addresses,
//! interfaces) goes from about 1.4 KB to about 120 bytes the same way.
//!
//! # Contract
//!
//! - [`Packed::pack`] then [`Packed::unpack`] gives back an equal value: postcard keeps every
//!   integer, float (bit for bit), string and list as it was.
//! - The bytes live in memory only, written and read by the same build: the encoding is not a
//!   file or wire format and is never stored.
//! - A `Packed<T>` serializes as the `T` it holds and deserializes from one (packing it), so a
//!   stored record that holds one keeps its stored form (the registry's JSON).
//! - Two `Packed<T>` are equal when their bytes are: for types without floats that is when
//!   the values are (postcard writes a value one way only).
//! - postcard is not self-describing, so only types whose serde form has a fixed field order
//!   and no skipped fields belong here (plain structs, `Option`, `Vec`, strings, numbers):
//!   `skip_serializing_if`, `flatten` or untagged enums would make `unpack` fail, which the
//!   tests of each packed type catch.

use std::fmt;
use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;

#[derive(Debug, Error)]
#[error("packed value: {0}")]
pub struct PackError(#[from] postcard::Error);

/// A `T` in postcard's encoding: one heap block.
pub struct Packed<T> {
    bytes: Box<[u8]>,
    // `fn() -> T`: a Packed<T> owns no T, so it is Send and Sync whatever T is.
    kind: PhantomData<fn() -> T>,
}

/// Room reserved for the encoding before it is shrunk to its size: a sample of a host with a
/// few disks and interfaces fits, so it is usually written without growing.
const FIRST_CAPACITY: usize = 1024;

impl<T: Serialize + DeserializeOwned> Packed<T> {
    /// Encodes `value`. Fails only for types this module does not take (see the contract).
    pub fn pack(value: &T) -> Result<Self, PackError> {
        let bytes = postcard::to_extend(value, Vec::with_capacity(FIRST_CAPACITY))?;
        Ok(Self {
            bytes: bytes.into_boxed_slice(),
            kind: PhantomData,
        })
    }

    /// Decodes the value.
    pub fn unpack(&self) -> Result<T, PackError> {
        Ok(postcard::from_bytes(&self.bytes)?)
    }

    /// Decodes the value; None (logged) if it does not decode, which only a bug could cause:
    /// the bytes are this process's own encoding.
    pub fn get(&self) -> Option<T> {
        self.unpack()
            .inspect_err(|error| {
                tracing::error!(kind = std::any::type_name::<T>(), %error, "a packed value");
            })
            .ok()
    }
}

impl<T: Serialize + DeserializeOwned> Serialize for Packed<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.unpack()
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

impl<'de, T: Serialize + DeserializeOwned> serde::Deserialize<'de> for Packed<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = T::deserialize(deserializer)?;
        Packed::pack(&value).map_err(serde::de::Error::custom)
    }
}

impl<T> PartialEq for Packed<T> {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl<T> Clone for Packed<T> {
    fn clone(&self) -> Self {
        Self {
            bytes: self.bytes.clone(),
            kind: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Packed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Packed({} bytes)", self.bytes.len())
    }
}

#[cfg(test)]
mod tests {
    use pivitals_common::{NodeInfo, VitalsPayload};
    use pivitals_testkit::samples;

    use super::*;

    #[test]
    fn this_hosts_sample_and_a_pis_come_back_equal_and_smaller_than_their_values() {
        let mut collector = pivitals_collect::Collector::new("/");
        let mut host = collector.sample();
        // Bit patterns a text format would round: they must come back exactly.
        if let Some(cpu) = host.cpu.as_mut() {
            cpu.usage_percent = 0.1 + 0.2;
            cpu.usage_percent_max = Some(f64::MIN_POSITIVE);
        }
        let pi = samples::pi_sample(1_700_000_000_123, 12.5, 48.25);
        for sample in [host, pi] {
            let packed = Packed::pack(&sample).unwrap();
            assert_eq!(packed.unpack().unwrap(), sample);
            assert!(
                packed.bytes.len() < std::mem::size_of::<VitalsPayload>(),
                "{} bytes",
                packed.bytes.len()
            );
        }
    }

    #[test]
    fn an_empty_sample_and_node_info_come_back_equal() {
        let empty = VitalsPayload::default();
        assert_eq!(Packed::pack(&empty).unwrap().unpack().unwrap(), empty);
        let info = samples::register_request("packed-node").info;
        assert_eq!(Packed::pack(&info).unwrap().unpack().unwrap(), info);
        let none = NodeInfo::default();
        assert_eq!(Packed::pack(&none).unwrap().unpack().unwrap(), none);
    }

    #[test]
    fn a_packed_value_is_stored_as_the_value_itself() {
        let info = samples::register_request("packed-node").info;
        let packed = Packed::pack(&info).unwrap();
        let json = serde_json::to_value(&packed).unwrap();
        assert_eq!(json, serde_json::to_value(&info).unwrap());
        let back: Packed<NodeInfo> = serde_json::from_value(json).unwrap();
        assert_eq!(back, packed);
        let mut other = info.clone();
        other.hostname.push('x');
        assert_ne!(Packed::pack(&other).unwrap(), packed);
    }

    #[test]
    fn bytes_of_another_type_are_an_error_not_a_panic() {
        let packed = Packed::<u8>::pack(&7).unwrap();
        let wrong = Packed::<VitalsPayload> {
            bytes: packed.bytes.clone(),
            kind: PhantomData,
        };
        assert!(wrong.unpack().is_err());
        assert_eq!(wrong.get(), None);
    }
}
