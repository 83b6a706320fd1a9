//! Sampling a host, for the agent (its samples) and the primary (its own vitals): one module
//! per metric family; a family that fails is left out of the sample with a warning (once per
//! family), never a crash.
//!
//! CPU usage, memory, disks and hwmon sensors come from sysinfo, which reads the real `/proc`
//! and `/sys`; the families read by hand (network counters, thermal zones, CPU frequency,
//! uptime, load, process count, Raspberry Pi throttling and board model) read them under the
//! collector's root, so tests can point them at a fixture tree. Each family reads only what it
//! reports, once a sample: processes are never listed through sysinfo (that would read every
//! process's status), interfaces come from one file rather than nine per interface.
//!
//! **Architecture Invariant:** this crate knows nothing of the agent or the primary: it depends
//! only on `pivitals-common` (the sample's types) and reads files, never the network.

mod cpu;
mod disks;
mod files;
mod host;
mod memory;
mod network;
mod pi;
mod system;
mod temperature;
#[cfg(test)]
mod test_fixtures;
mod warn_once;

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use pivitals_common::{NodeInfo, VitalsPayload};

use self::cpu::CpuCollector;
use self::disks::DiskCollector;
use self::host::HostFacts;
use self::memory::MemoryCollector;
use self::network::NetworkCollector;
use self::pi::PiFamilies;
use self::system::SystemFamilies;
use self::temperature::TemperatureCollector;

/// Samples one host. Keep one alive between samples: CPU usage is measured between refreshes.
pub struct Collector {
    /// Root under which `proc/` and `sys/` are read: `/` on a real host, a fixture tree in tests.
    root: PathBuf,
    cpu: CpuCollector,
    memory: MemoryCollector,
    disks: DiskCollector,
    networks: NetworkCollector,
    temperatures: TemperatureCollector,
    system: SystemFamilies,
    pi: PiFamilies,
}

impl Collector {
    /// Lists CPUs, disks, interfaces and sensors and takes a first CPU reading, so that the
    /// first sample already has a usage (over the time since construction).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            cpu: CpuCollector::new(),
            memory: MemoryCollector::new(),
            disks: DiskCollector::new(),
            networks: NetworkCollector::default(),
            temperatures: TemperatureCollector::new(),
            system: SystemFamilies::default(),
            pi: PiFamilies::default(),
        }
    }

    /// Facts that rarely change, sent at registration.
    pub fn node_info(&mut self) -> NodeInfo {
        let host = HostFacts::read();
        let (memory, swap) = self.memory.sample();
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
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }

    /// One sample, stamped with the current time.
    pub fn sample(&mut self) -> VitalsPayload {
        let timestamp_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| {
                i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
            });
        let (memory, swap) = self.memory.sample();
        VitalsPayload {
            timestamp_ms,
            cpu: self.cpu.sample(&self.root),
            load: self.system.load(&self.root),
            memory,
            swap,
            disks: self.disks.sample(),
            networks: self.networks.sample(&self.root),
            temperatures: self.temperatures.sample(&self.root),
            uptime_seconds: self.system.uptime(&self.root),
            process_count: self.system.process_count(&self.root),
            throttling: self.pi.throttling(&self.root),
        }
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
                fifteen: 0.59
            })
        );
        assert_eq!(sample.throttling, Some(Throttling { raw: 0x50005 }));
        let zone = TemperatureVitals {
            sensor: "cpu-thermal".to_owned(),
            celsius: 48.312,
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
