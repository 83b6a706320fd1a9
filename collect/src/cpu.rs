//! CPU usage, core count and model from sysinfo; the frequency from
//! `ROOT/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`, or where there is no cpufreq
//! (virtual machines), the `cpu MHz` lines of `ROOT/proc/cpuinfo`, read once a sample (sysinfo
//! would read the whole of `/proc/cpuinfo` once per core).

use std::path::Path;

use pivitals_common::CpuVitals;
use sysinfo::{CpuRefreshKind, System};

use super::files::{numbered_entries, read_parsed};
use super::warn_once::WarnOnce;

/// What a CPU sample refreshes through sysinfo: usage only, never processes.
fn refresh_kind() -> CpuRefreshKind {
    CpuRefreshKind::nothing().with_usage()
}

/// Samples the CPUs. Usage is measured between two refreshes, so this keeps its `System`.
pub(crate) struct CpuCollector {
    system: Option<System>,
    warn: WarnOnce,
}

impl CpuCollector {
    /// Lists the CPUs and takes the first usage reading.
    pub(crate) fn new() -> Self {
        let mut warn = WarnOnce::default();
        let system = warn.ok("cpu", System::new()).map(|mut system| {
            system.refresh_cpu_list(refresh_kind());
            system
        });
        Self { system, warn }
    }

    pub(crate) fn sample(&mut self, root: &Path) -> Option<CpuVitals> {
        let system = self.system.as_mut()?;
        system.refresh_cpu_specifics(refresh_kind());
        let cpus = system.cpus();
        if cpus.is_empty() {
            self.warn.warn("cpu", &"sysinfo lists no CPUs");
            return None;
        }
        let usage = f64::from(system.global_cpu_usage());
        let usage_percent = if usage.is_finite() {
            // sysinfo measures in f32: two decimals are all it knows.
            (usage.clamp(0.0, 100.0) * 100.0).round() / 100.0
        } else {
            0.0
        };
        let frequency_mhz = read_cpufreq_mhz(root).or_else(|| read_cpuinfo_mhz(root));
        Some(CpuVitals {
            usage_percent,
            frequency_mhz,
            cores: count_u32(cpus.len()),
            ..Default::default()
        })
    }

    /// The brand of the first CPU, e.g. `Cortex-A72`; empty when unknown.
    pub(crate) fn model(&self) -> String {
        self.system
            .as_ref()
            .and_then(|s| s.cpus().first())
            .map(|cpu| cpu.brand().trim().to_owned())
            .unwrap_or_default()
    }

    /// Logical cores.
    pub(crate) fn cores(&self) -> u32 {
        self.system
            .as_ref()
            .map_or(0, |s| count_u32(s.cpus().len()))
    }
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The current frequency in MHz averaged over the cores that report one in
/// `ROOT/sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq` (kHz); None if none does.
pub(crate) fn read_cpufreq_mhz(root: &Path) -> Option<u64> {
    let cpus = numbered_entries(&root.join("sys/devices/system/cpu"), "cpu").ok()?;
    let khz: Vec<u64> = cpus
        .iter()
        .filter_map(|(_, cpu)| {
            read_parsed(&cpu.join("cpufreq/scaling_cur_freq"), |c| c.parse().ok()).ok()
        })
        .collect();
    if khz.is_empty() {
        return None;
    }
    let average_khz = khz.iter().sum::<u64>() / khz.len() as u64;
    Some((average_khz + 500) / 1000)
}

/// The `cpu MHz` lines of `ROOT/proc/cpuinfo` (x86 and most virtual machines; a Pi has none),
/// averaged and rounded; None if there is none.
pub(crate) fn read_cpuinfo_mhz(root: &Path) -> Option<u64> {
    let content = std::fs::read_to_string(root.join("proc/cpuinfo")).ok()?;
    let mhz: Vec<f64> = content
        .lines()
        .filter(|line| line.starts_with("cpu MHz"))
        .filter_map(|line| line.split_once(':')?.1.trim().parse::<f64>().ok())
        .filter(|mhz| mhz.is_finite() && *mhz > 0.0)
        .collect();
    if mhz.is_empty() {
        return None;
    }
    // Rounded to whole MHz; the cast saturates and the value is positive and finite.
    Some((mhz.iter().sum::<f64>() / mhz.len() as f64).round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    #[test]
    fn a_pi4_runs_at_1500_mhz() {
        let tree = Tree::pi4();
        assert_eq!(read_cpufreq_mhz(tree.root()), Some(1500));
    }

    #[test]
    fn frequencies_are_averaged_over_cores_that_report_one() {
        let tree = Tree::pi4();
        tree.write(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq",
            "600000\n",
        );
        tree.write(
            "sys/devices/system/cpu/cpu2/cpufreq/scaling_cur_freq",
            "<unsupported>\n",
        );
        tree.remove("sys/devices/system/cpu/cpu3/cpufreq/scaling_cur_freq");
        // (1_500_000 + 600_000) / 2 kHz
        assert_eq!(read_cpufreq_mhz(tree.root()), Some(1050));
    }

    #[test]
    fn without_cpufreq_the_cpuinfo_frequencies_are_averaged() {
        let tree = Tree::empty();
        assert_eq!(read_cpuinfo_mhz(tree.root()), None);
        tree.write(
            "proc/cpuinfo",
            "processor\t: 0\ncpu MHz\t\t: 2400.000\nprocessor\t: 1\ncpu MHz\t\t: 2599.5\n",
        );
        assert_eq!(read_cpuinfo_mhz(tree.root()), Some(2500));
        // A Pi's cpuinfo has no frequency.
        assert_eq!(read_cpuinfo_mhz(Tree::pi4().root()), None);
    }

    #[test]
    fn no_cpufreq_means_no_frequency() {
        let tree = Tree::empty();
        assert_eq!(read_cpufreq_mhz(tree.root()), None);
        tree.mkdir("sys/devices/system/cpu/cpu0");
        assert_eq!(read_cpufreq_mhz(tree.root()), None);
    }

    #[test]
    fn samples_this_machines_cpus() {
        let mut cpu = CpuCollector::new();
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let sample = cpu.sample(Path::new("/")).expect("this machine has CPUs");
        assert!(sample.cores >= 1);
        assert_eq!(sample.cores, cpu.cores());
        assert!((0.0..=100.0).contains(&sample.usage_percent));
    }
}
