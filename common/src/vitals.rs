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
    /// From `/proc/device-tree/serial-number` (a Pi's SoC serial), where there is one.
    pub board_serial: Option<String>,
    /// The interface of the default IPv4 route (`/proc/net/route`), e.g. `eth0`.
    pub default_interface: Option<String>,
    /// Interfaces that are up, other than loopback, with their addresses.
    pub interfaces: Vec<InterfaceInfo>,
}

/// One network interface and its addresses, as `ip address` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceInfo {
    pub name: String,
    /// Hardware address, e.g. `dc:a6:32:01:02:03` (`/sys/class/net/NAME/address`).
    pub mac: Option<String>,
    /// IPv4 addresses, e.g. `192.168.1.21`, without prefix length.
    pub ipv4: Vec<String>,
    /// Global and unique-local IPv6 addresses (link-local ones left out).
    pub ipv6: Vec<String>,
}

impl NodeInfo {
    /// The first IPv4 address of the default route's interface (else of any interface): the
    /// address a person would `ssh` to.
    pub fn primary_ipv4(&self) -> Option<&str> {
        self.primary_interface()
            .and_then(|i| i.ipv4.first())
            .or_else(|| self.interfaces.iter().find_map(|i| i.ipv4.first()))
            .map(String::as_str)
    }

    /// The first IPv6 address of the default route's interface (else of any interface).
    pub fn primary_ipv6(&self) -> Option<&str> {
        self.primary_interface()
            .and_then(|i| i.ipv6.first())
            .or_else(|| self.interfaces.iter().find_map(|i| i.ipv6.first()))
            .map(String::as_str)
    }

    fn primary_interface(&self) -> Option<&InterfaceInfo> {
        let name = self.default_interface.as_deref()?;
        self.interfaces.iter().find(|i| i.name == name)
    }
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
    /// Block devices' I/O (`/proc/diskstats`), whole disks only.
    pub disk_io: Vec<DiskIoVitals>,
    /// Power supply and cooling of a Raspberry Pi over the interval, where the kernel exposes
    /// them.
    pub power: Option<PowerVitals>,
    /// Wear of SD/eMMC and NVMe storage, where it can be read.
    pub storage_health: Vec<StorageHealthVitals>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CpuVitals {
    /// Busy share of all cores over the interval (the mean of the fast samples), 0–100.
    pub usage_percent: f64,
    /// The lowest and highest busy share of one fast sample (1 s by default) in the interval.
    pub usage_percent_min: Option<f64>,
    pub usage_percent_max: Option<f64>,
    /// Frequency averaged over cores and the interval, when known.
    pub frequency_mhz: Option<u64>,
    pub frequency_mhz_min: Option<u64>,
    pub frequency_mhz_max: Option<u64>,
    pub cores: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoadAverage {
    /// The 1-minute load: the mean of the fast samples over the interval.
    pub one: f64,
    pub five: f64,
    pub fifteen: f64,
    /// The lowest and highest 1-minute load seen by a fast sample in the interval.
    #[serde(default)]
    pub one_min: Option<f64>,
    #[serde(default)]
    pub one_max: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryVitals {
    pub total_bytes: u64,
    pub available_bytes: u64,
    /// Used memory (total − available): the mean of the fast samples over the interval.
    pub used_bytes: u64,
    /// The lowest and highest used memory of a fast sample in the interval.
    #[serde(default)]
    pub used_bytes_min: Option<u64>,
    #[serde(default)]
    pub used_bytes_max: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SwapVitals {
    pub total_bytes: u64,
    pub used_bytes: u64,
}

/// One mounted filesystem, counted as `df` counts it (statvfs).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskVitals {
    /// Mount point, e.g. `/` or `/mnt/usb disk`.
    pub mount: String,
    pub device: String,
    pub fs_type: String,
    /// `f_blocks × f_frsize`.
    pub total_bytes: u64,
    /// Total minus free blocks (`df`'s "Used").
    pub used_bytes: u64,
    /// `f_bfree × f_frsize`: free blocks, those reserved for root included.
    pub free_bytes: Option<u64>,
    /// `f_bavail × f_frsize`: what an unprivileged user can still write (`df`'s "Avail").
    pub available_bytes: Option<u64>,
    pub inodes_total: Option<u64>,
    pub inodes_free: Option<u64>,
}

impl DiskVitals {
    /// Use as `df` shows it: used / (used + available), rounded up to a whole percent; from
    /// used / total when the sender did not report what is available (older agents).
    pub fn used_percent(&self) -> Option<f64> {
        match self.available_bytes {
            Some(available) => {
                let whole = u128::from(self.used_bytes) + u128::from(available);
                (whole > 0).then(|| {
                    let part = u128::from(self.used_bytes) * 100;
                    (part.div_ceil(whole)) as f64
                })
            }
            None => (self.total_bytes > 0)
                .then(|| self.used_bytes as f64 * 100.0 / self.total_bytes as f64),
        }
    }

    /// Inodes in use, when both counts are known.
    pub fn inodes_used(&self) -> Option<u64> {
        Some(self.inodes_total?.saturating_sub(self.inodes_free?))
    }

    /// Inodes in use as `df -i` shows them (rounded up), when the filesystem has inodes.
    pub fn inodes_used_percent(&self) -> Option<f64> {
        let total = self.inodes_total.filter(|t| *t > 0)?;
        let used = self.inodes_used()?;
        Some((u128::from(used) * 100).div_ceil(u128::from(total)) as f64)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetVitals {
    pub interface: String,
    /// Counters since boot (or since the interface was created), as `/proc/net/dev` has them.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub tx_packets: u64,
    pub rx_dropped: u64,
    pub tx_dropped: u64,
    /// Per-second rates since the previous sample; absent on the first sample of an interface
    /// and after its counters went backwards (reset, interface re-created, reboot).
    pub rates: Option<NetRates>,
}

/// Per-second rates of an interface's counters over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NetRates {
    pub rx_bytes_per_second: f64,
    pub tx_bytes_per_second: f64,
    pub rx_packets_per_second: f64,
    pub tx_packets_per_second: f64,
    pub rx_errors_per_second: f64,
    pub tx_errors_per_second: f64,
    pub rx_dropped_per_second: f64,
    pub tx_dropped_per_second: f64,
}

/// One whole block device's I/O, from `/proc/diskstats`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskIoVitals {
    /// Kernel name, e.g. `mmcblk0`, `sda`, `nvme0n1`.
    pub device: String,
    /// Counters since boot: completed reads and writes, bytes (sectors × 512), and the
    /// milliseconds the device was busy (`io_ticks`).
    pub reads: u64,
    pub writes: u64,
    pub read_bytes: u64,
    pub written_bytes: u64,
    pub io_time_ms: u64,
    /// Rates since the previous sample; absent on the first sample and after a reset.
    pub rates: Option<DiskIoRates>,
}

/// Per-second rates of a block device over one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskIoRates {
    pub reads_per_second: f64,
    pub writes_per_second: f64,
    pub read_bytes_per_second: f64,
    pub write_bytes_per_second: f64,
    /// Share of the interval the device was busy, 0–100.
    pub busy_percent: f64,
}

/// A Raspberry Pi's power supply and cooling over one interval. Each field is absent where
/// its kernel file is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PowerVitals {
    /// Under-voltage at the moment of the sample.
    pub under_voltage_now: Option<bool>,
    /// Seconds of the interval in which a poll (every second) saw under-voltage.
    pub under_voltage_seconds: Option<u64>,
    /// Times under-voltage began during the interval.
    pub under_voltage_events: Option<u64>,
    /// The firmware's sticky bits (`get_throttled`): seen at least once since boot.
    pub under_voltage_since_boot: Option<bool>,
    pub frequency_capped_since_boot: Option<bool>,
    pub throttled_since_boot: Option<bool>,
    pub soft_temp_limit_since_boot: Option<bool>,
    /// Fan speed (hwmon `fan1_input`) and drive (`pwm1`, 0–255), e.g. a Pi 5's cooler.
    pub fan_rpm: Option<u64>,
    pub fan_pwm: Option<u64>,
}

/// Wear of one storage device. Each field is absent where it cannot be read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StorageHealthVitals {
    /// Kernel name, e.g. `mmcblk0` or `nvme0`.
    pub device: String,
    /// eMMC life time estimates A and B (JEDEC `DEVICE_LIFE_TIME_EST_TYP_A/B`): 1 means 0–10 %
    /// of the rated life used, … 10 means 90–100 %, 11 means past it.
    pub emmc_life_time_a: Option<u64>,
    pub emmc_life_time_b: Option<u64>,
    /// eMMC pre-EOL information: 1 normal, 2 warning (80 % of reserved blocks used), 3 urgent.
    pub emmc_pre_eol: Option<u64>,
    /// NVMe SMART: share of rated life used (may pass 100), spare capacity left, media errors.
    pub nvme_percentage_used: Option<u64>,
    pub nvme_available_spare: Option<u64>,
    pub nvme_media_errors: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemperatureVitals {
    /// Sensor name, e.g. `cpu-thermal` or `coretemp Package id 0`.
    pub sensor: String,
    /// The mean of the fast samples over the interval.
    pub celsius: f64,
    /// The lowest and highest reading of a fast sample in the interval.
    #[serde(default)]
    pub celsius_min: Option<f64>,
    #[serde(default)]
    pub celsius_max: Option<f64>,
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
