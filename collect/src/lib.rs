//! Sampling a host, for the agent (its samples) and the primary (its own vitals): one module
//! per metric family; a family that fails is left out of the sample with a warning (once per
//! family), never a crash.
//!
//! CPU usage, memory and hwmon sensors come from sysinfo, which reads the real `/proc` and
//! `/sys` (under a root other than `/` with its own `proc/stat` or `proc/meminfo`, CPU usage
//! and memory are read from those instead, so tests can run busy and idle agents side by
//! side); the families read by hand (mounts and their `statvfs`, network and disk I/O
//! counters, thermal zones, CPU frequency, uptime, load, process count, Raspberry Pi power,
//! storage wear and board model) read them under the collector's root, so tests can point them
//! at a fixture tree. The fast vitals are read every `sample_every` by [`Collector::tick`] and
//! reported as mean, min and max (`peaks`). Each family reads only what it
//! reports, once a sample: processes are never listed through sysinfo (that would read every
//! process's status), interfaces come from one file rather than nine per interface.
//!
//! **Architecture Invariant:** this crate knows nothing of the agent or the primary: it depends
//! only on `pivitals-common` (the sample's types). It reads files under its root and asks the
//! local kernel (`statvfs`, `getifaddrs`, the NVMe SMART log ioctl); it never opens a socket.

mod cpu;
mod diskio;
mod disks;
mod files;
mod hardware;
mod host;
mod identity;
mod memory;
mod network;
mod nvme;
mod peaks;
mod pi;
mod power;
mod rates;
mod statvfs;
mod storage_health;
mod system;
mod temperature;
#[cfg(test)]
mod test_fixtures;
mod warn_once;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pivitals_common::{HardwareIdentity, NodeInfo, VitalsPayload};

use self::cpu::CpuCollector;
use self::disks::DiskCollector;
use self::host::HostFacts;
use self::memory::MemoryCollector;
use self::network::NetworkCollector;
use self::peaks::{Peaks, Reading};
use self::pi::PiFamilies;
use self::system::SystemFamilies;
use self::temperature::TemperatureCollector;

/// What the collector leaves out; the defaults are what node_exporter and Telegraf leave out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Filesystem types never reported (`PIVITALS_DISK_IGNORE_FS_TYPES`): kernel interfaces,
    /// memory-backed and layered filesystems.
    pub disk_ignore_fs_types: Vec<String>,
    /// Mount points never reported, with everything under them
    /// (`PIVITALS_DISK_IGNORE_MOUNTS`).
    pub disk_ignore_mounts: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            disk_ignore_fs_types: disks::DEFAULT_IGNORED_FS_TYPES
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            disk_ignore_mounts: disks::DEFAULT_IGNORED_MOUNTS
                .iter()
                .map(|m| (*m).to_owned())
                .collect(),
        }
    }
}

/// Samples one host. Keep one alive between samples: CPU usage is measured between refreshes.
pub struct Collector {
    /// Root under which `proc/` and `sys/` are read: `/` on a real host, a fixture tree in tests.
    root: PathBuf,
    cpu: CpuCollector,
    memory: MemoryCollector,
    disks: DiskCollector,
    networks: NetworkCollector,
    diskio: diskio::DiskIoCollector,
    temperatures: TemperatureCollector,
    system: SystemFamilies,
    pi: PiFamilies,
    power: power::PowerCollector,
    storage_health: storage_health::StorageHealthCollector,
    /// The fast vitals read since the last sample ([`Collector::tick`]).
    peaks: Peaks,
    last_tick: Option<Instant>,
}

/// Two fast readings closer than this are one: a tick right before or after a sample (their
/// timers firing together) would measure CPU over a few milliseconds.
const MIN_TICK_GAP: Duration = Duration::from_millis(500);

impl Collector {
    /// Lists CPUs, disks, interfaces and sensors and takes a first CPU reading, so that the
    /// first sample already has a usage (over the time since construction).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self::with_settings(root, Settings::default())
    }

    /// Like [`Collector::new`], leaving out what `settings` say.
    pub fn with_settings(root: impl Into<PathBuf>, settings: Settings) -> Self {
        Self {
            root: root.into(),
            cpu: CpuCollector::new(),
            memory: MemoryCollector::new(),
            disks: DiskCollector::new(settings.disk_ignore_fs_types, settings.disk_ignore_mounts),
            networks: NetworkCollector::default(),
            diskio: diskio::DiskIoCollector::default(),
            temperatures: TemperatureCollector::new(),
            system: SystemFamilies::default(),
            pi: PiFamilies::default(),
            power: power::PowerCollector::default(),
            storage_health: storage_health::StorageHealthCollector::default(),
            peaks: Peaks::default(),
            last_tick: None,
        }
    }

    /// Facts that rarely change: read at start and every minute after (the agent sends them
    /// again when they differ, e.g. a new address after a DHCP renewal). Under a root other
    /// than `/` the interfaces have no IPv4 addresses (they come from `getifaddrs(3)`).
    pub fn node_info(&mut self) -> NodeInfo {
        let host = HostFacts::read(&self.root);
        let network =
            identity::NetworkIdentity::read(&self.root, identity::Ipv4Source::for_root(&self.root));
        let (memory, swap) = self.memory.sample(&self.root);
        NodeInfo {
            hostname: host.hostname,
            os: host.os,
            os_version: host.os_version,
            kernel: host.kernel,
            arch: host.arch,
            cpu_model: self.cpu.model(),
            cpu_cores: self.cpu.cores(),
            memory_total_bytes: memory.map_or(0, |m| m.total_bytes),
            swap_total_bytes: swap.map_or(0, |s| s.total_bytes),
            board_model: self.pi.board_model(&self.root),
            // The workspace's version, which the agent shares with this crate.
            agent_version: agent_version(),
            board_serial: host.board_serial,
            default_interface: network.default_interface,
            interfaces: network.interfaces,
        }
    }

    /// The board's serial and a hash of its machine ID, for the registration; None when neither
    /// can be read. Read it once, at start: see `hardware.rs` for where each part comes from.
    pub fn hardware_identity(&self) -> Option<HardwareIdentity> {
        hardware::read(&self.root)
    }

    /// Reads the fast vitals (CPU busy share and frequency, load, memory, temperatures,
    /// under-voltage) once;
    /// call every `sample_every` (1 s). The next [`sample`](Collector::sample) reports their
    /// mean, min and max since the sample before. A tick within half a second of the last
    /// one is skipped.
    pub fn tick(&mut self) {
        self.tick_at(Instant::now());
    }

    fn tick_at(&mut self, now: Instant) {
        if self
            .last_tick
            .is_some_and(|last| now.duration_since(last) < MIN_TICK_GAP)
        {
            return;
        }
        self.read_fast(now);
    }

    fn read_fast(&mut self, now: Instant) {
        self.last_tick = Some(now);
        self.power.poll(&self.root, now);
        let (memory, swap) = self.memory.sample(&self.root);
        self.peaks.add(Reading {
            cpu: self.cpu.sample(&self.root),
            load: self.system.load(&self.root),
            memory,
            swap,
            temperatures: self.temperatures.sample(&self.root),
        });
    }

    /// One sample, stamped with the current time: the fast vitals as mean, min and max of the
    /// ticks since the last sample (this one reads them once more), the rest as they are now.
    /// A sample right after another (the last one an agent takes when it stops) reads the fast
    /// vitals even within half a second of the last reading: a sample never lacks them.
    pub fn sample(&mut self) -> VitalsPayload {
        let now = Instant::now();
        if self.peaks.is_empty() {
            self.read_fast(now);
        } else {
            self.tick_at(now);
        }
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        let fast = self.peaks.take();
        VitalsPayload {
            timestamp_ms,
            cpu: fast.cpu,
            load: fast.load,
            memory: fast.memory,
            swap: fast.swap,
            disks: self.disks.sample(&self.root),
            networks: self.networks.sample(&self.root),
            disk_io: self.diskio.sample(&self.root),
            temperatures: fast.temperatures,
            uptime_seconds: self.system.uptime(&self.root),
            process_count: self.system.process_count(&self.root),
            throttling: self.pi.throttling(&self.root),
            power: self.power.power(&self.root),
            storage_health: self.storage_health.sample(&self.root),
        }
    }
}

/// Room for a build tag in [`BUILD_STAMP`] after its marker.
const BUILD_TAG_ROOM: usize = 32;

/// `PIVITALS_BUILD_TAG=` and the build tag, NUL-padded: set from the variable of that name at
/// build time, or written into a built binary afterwards (the bytes after the marker), which
/// is how a second build of the same source gets a version of its own without compiling again.
#[used]
static BUILD_STAMP: [u8; 19 + BUILD_TAG_ROOM] = build_stamp(option_env!("PIVITALS_BUILD_TAG"));

const fn build_stamp(tag: Option<&str>) -> [u8; 19 + BUILD_TAG_ROOM] {
    let marker = b"PIVITALS_BUILD_TAG=";
    let mut stamp = [0u8; 19 + BUILD_TAG_ROOM];
    let mut i = 0;
    while i < marker.len() {
        stamp[i] = marker[i];
        i += 1;
    }
    if let Some(tag) = tag {
        let tag = tag.as_bytes();
        let mut j = 0;
        while j < tag.len() && j < BUILD_TAG_ROOM {
            stamp[marker.len() + j] = tag[j];
            j += 1;
        }
    }
    stamp
}

/// The agent's version: the crate's, then `+TAG` when the build carries a tag (`0.1.0+next`).
pub fn agent_version() -> String {
    // Read through a volatile load: the bytes may be changed in the binary after compiling,
    // so the compiler must not fold them into a constant.
    // SAFETY: a plain byte array in a static that nothing writes while the program runs.
    let stamp: [u8; 19 + BUILD_TAG_ROOM] =
        unsafe { std::ptr::read_volatile(std::ptr::addr_of!(BUILD_STAMP)) };
    let tag = &stamp[19..];
    let tag = &tag[..tag.iter().position(|b| *b == 0).unwrap_or(tag.len())];
    match std::str::from_utf8(tag) {
        Ok(tag) if !tag.is_empty() => format!("{}+{tag}", env!("CARGO_PKG_VERSION")),
        _ => env!("CARGO_PKG_VERSION").to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use pivitals_common::{LoadAverage, TemperatureVitals, Throttling};

    use super::test_fixtures::Tree;
    use super::*;

    fn now_ms() -> i64 {
        let since = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("the clock is after 1970");
        i64::try_from(since.as_millis()).expect("milliseconds fit in i64")
    }

    #[test]
    fn a_collector_can_move_into_a_task() {
        fn assert_send<T: Send + 'static>() {}
        assert_send::<Collector>();
    }

    #[test]
    fn samples_a_pi4_tree() {
        let tree = Tree::pi4();
        let mut collector = Collector::new(tree.root());
        let sample = collector.sample();
        assert_eq!(sample.uptime_seconds, Some(12345));
        assert_eq!(sample.process_count, Some(3));
        assert_eq!(
            sample.load,
            Some(LoadAverage {
                one: 0.52,
                five: 0.58,
                fifteen: 0.59,
                one_min: Some(0.52),
                one_max: Some(0.52),
            })
        );
        assert_eq!(sample.throttling, Some(Throttling { raw: 0x50005 }));
        let zone = TemperatureVitals {
            sensor: "cpu-thermal".to_owned(),
            celsius: 48.31,
            celsius_min: Some(48.312),
            celsius_max: Some(48.312),
        };
        assert_eq!(sample.temperatures.first(), Some(&zone));
        let info = collector.node_info();
        assert_eq!(
            info.board_model.as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        assert_eq!(info.agent_version, env!("CARGO_PKG_VERSION"));
    }

    #[test]
    fn ticks_between_samples_give_the_interval_mean_min_and_max() {
        let tree = Tree::pi4();
        let mut collector = Collector::new(tree.root());
        let start = Instant::now();
        let loads = [0.5, 4.0, 1.5];
        let zones = [45_000, 71_500, 50_000];
        for (i, (load, zone)) in loads.iter().zip(zones).enumerate() {
            tree.write("proc/loadavg", format!("{load} 0.58 0.59 1/123 4567\n"));
            tree.write("sys/class/thermal/thermal_zone0/temp", format!("{zone}\n"));
            collector.tick_at(start + Duration::from_secs(i as u64));
        }
        // A tick a moment after the last is the same reading: skipped.
        tree.write("proc/loadavg", "99 0.58 0.59 1/123 4567\n");
        collector.tick_at(start + Duration::from_millis(2100));
        collector.last_tick = None;
        tree.write("proc/loadavg", "2.0 0.58 0.59 1/123 4567\n");
        tree.write("sys/class/thermal/thermal_zone0/temp", "48000\n");
        let sample = collector.sample();
        let load = sample.load.unwrap();
        assert_eq!(load.one, 2.0, "(0.5 + 4 + 1.5 + 2) / 4");
        assert_eq!((load.one_min, load.one_max), (Some(0.5), Some(4.0)));
        let zone = &sample.temperatures[0];
        assert_eq!(zone.sensor, "cpu-thermal");
        assert_eq!(
            (zone.celsius_min, zone.celsius_max),
            (Some(45.0), Some(71.5))
        );
        assert_eq!(zone.celsius, 53.63, "(45 + 71.5 + 50 + 48) / 4");
        let cpu = sample.cpu.unwrap();
        assert!(cpu.usage_percent_min <= Some(cpu.usage_percent));
        assert!(cpu.usage_percent_max >= Some(cpu.usage_percent));

        collector.last_tick = None;
        let next = collector.sample();
        assert_eq!(
            next.load.unwrap().one_max,
            Some(2.0),
            "each interval starts afresh"
        );
    }

    #[test]
    fn a_tree_without_proc_or_sys_leaves_those_families_out() {
        let tree = Tree::empty();
        let mut collector = Collector::new(tree.root());
        for _ in 0..2 {
            let sample = collector.sample();
            assert_eq!(sample.uptime_seconds, None);
            assert_eq!(sample.process_count, None);
            assert_eq!(sample.load, None);
            assert_eq!(sample.throttling, None);
            // hwmon sensors come from the real host through sysinfo; zones would come from the tree.
            assert!(
                !sample
                    .temperatures
                    .iter()
                    .any(|t| t.sensor.starts_with("thermal_zone")),
                "{:?}",
                sample.temperatures
            );
        }
        assert_eq!(collector.node_info().board_model, None);
    }

    #[test]
    fn samples_this_machine() {
        let mut collector = Collector::new("/");
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL.max(Duration::from_millis(250)));
        let before = now_ms();
        let sample = collector.sample();
        let after = now_ms();
        println!("{sample:#?}");
        assert!(
            (before..=after).contains(&sample.timestamp_ms),
            "{before} <= {} <= {after}",
            sample.timestamp_ms
        );
        let cpu = sample.cpu.as_ref().expect("cpu");
        assert!(cpu.cores >= 1);
        assert!((0.0..=100.0).contains(&cpu.usage_percent));
        let memory = sample.memory.as_ref().expect("memory");
        assert!(memory.total_bytes > 0 && memory.used_bytes <= memory.total_bytes);
        assert!(sample.swap.is_some());
        assert!(
            sample.disks.iter().any(|d| d.total_bytes > 0),
            "{:?}",
            sample.disks
        );
        assert!(!sample.networks.is_empty());
        assert!(sample.uptime_seconds.is_some_and(|s| s > 0));
        assert!(sample.process_count.is_some_and(|n| n > 0));
        assert!(sample.load.is_some());

        let info = collector.node_info();
        println!("{info:#?}");
        assert_eq!(info.cpu_cores, cpu.cores);
        assert_eq!(info.memory_total_bytes, memory.total_bytes);
        assert!(!info.hostname.is_empty() && !info.kernel.is_empty() && !info.arch.is_empty());
    }
}
