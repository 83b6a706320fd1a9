//! The sample an agent takes of its host ([`VitalsPayload`]) and the rarely changing facts
//! about that host ([`NodeInfo`]).
//!
//! Every family is optional (or a possibly empty list): a collector that fails leaves its
//! family out rather than inventing a value.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels a node carries as extra tags on every point (`stack=2`, `role=worker`).
pub type Labels = BTreeMap<String, String>;

/// Base facts about a node that rarely change; sent when the agent registers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeInfo {
    pub hostname: String,
    pub os: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub memory_total_bytes: u64,
    pub swap_total_bytes: u64,
    /// From `/proc/device-tree/model`, e.g. `Raspberry Pi 4 Model B Rev 1.4`.
    pub board_model: Option<String>,
    pub agent_version: String,
}

/// One sample of a node's vitals at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VitalsPayload {
    /// When the sample was taken, in milliseconds since the Unix epoch (UTC).
    pub timestamp_ms: i64,
    pub cpu: Option<CpuVitals>,
    pub load: Option<LoadAverage>,
    pub memory: Option<MemoryVitals>,
    pub swap: Option<SwapVitals>,
    pub disks: Vec<DiskVitals>,
    pub networks: Vec<NetVitals>,
    pub temperatures: Vec<TemperatureVitals>,
    pub uptime_seconds: Option<u64>,
    pub process_count: Option<u64>,
    /// Raspberry Pi firmware throttling state, where the kernel exposes it.
    pub throttling: Option<Throttling>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuVitals {
    /// Busy share of all cores since the previous sample, 0–100.
    pub usage_percent: f64,
    /// Current frequency averaged over cores, when known.
    pub frequency_mhz: Option<u64>,
    pub cores: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryVitals {
    pub total_bytes: u64,
    pub available_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwapVitals {
    pub total_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DiskVitals {
    /// Mount point, e.g. `/` or `/mnt/usb disk`.
    pub mount: String,
    pub device: String,
    pub fs_type: String,
    pub total_bytes: u64,
    pub used_bytes: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetVitals {
    pub interface: String,
    /// Counters since boot, as the kernel reports them.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemperatureVitals {
    /// Sensor name, e.g. `cpu-thermal` or `coretemp Package id 0`.
    pub sensor: String,
    pub celsius: f64,
}

/// The bits of the Raspberry Pi firmware's `get_throttled` word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttling {
    /// The raw word, e.g. `0x50005`.
    pub raw: u32,
}

impl Throttling {
    pub fn under_voltage_now(self) -> bool {
        self.raw & 0x1 != 0
    }
    pub fn frequency_capped_now(self) -> bool {
        self.raw & 0x2 != 0
    }
    pub fn throttled_now(self) -> bool {
        self.raw & 0x4 != 0
    }
    pub fn soft_temperature_limit_now(self) -> bool {
        self.raw & 0x8 != 0
    }
    pub fn under_voltage_occurred(self) -> bool {
        self.raw & 0x1_0000 != 0
    }
    pub fn frequency_capped_occurred(self) -> bool {
        self.raw & 0x2_0000 != 0
    }
    pub fn throttled_occurred(self) -> bool {
        self.raw & 0x4_0000 != 0
    }
    pub fn soft_temperature_limit_occurred(self) -> bool {
        self.raw & 0x8_0000 != 0
    }
}

impl VitalsPayload {
    /// Temperature of the hottest sensor, for summaries.
    pub fn hottest_celsius(&self) -> Option<f64> {
        self.temperatures
            .iter()
            .map(|t| t.celsius)
            .filter(|c| c.is_finite())
            .reduce(f64::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_bits_of_a_pi_that_saw_under_voltage() {
        let t = Throttling { raw: 0x50005 };
        assert!(t.under_voltage_now());
        assert!(!t.frequency_capped_now());
        assert!(t.throttled_now());
        assert!(t.under_voltage_occurred());
        assert!(t.throttled_occurred());
        assert!(!t.frequency_capped_occurred());
    }

    #[test]
    fn missing_families_decode_as_absent() {
        let p: VitalsPayload = serde_json::from_str(r#"{"timestamp_ms": 5}"#).unwrap();
        assert_eq!(p.timestamp_ms, 5);
        assert!(p.cpu.is_none());
        assert!(p.disks.is_empty());
    }
}
