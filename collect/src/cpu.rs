//! CPU usage, core count and model from sysinfo; the frequency from
//! `ROOT/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`, or where there is no cpufreq
//! (virtual machines), the `cpu MHz` lines of `ROOT/proc/cpuinfo`, read once a sample (sysinfo
//! would read the whole of `/proc/cpuinfo` once per core).

use std::path::{Path, PathBuf};

use pivitals_common::CpuVitals;
use sysinfo::{CpuRefreshKind, System};

use super::disks::RELIST_EVERY;
use super::files::{numbered_entries, read_parsed};
use super::warn_once::WarnOnce;

/// What a CPU sample refreshes through sysinfo: usage only, never processes.
fn refresh_kind() -> CpuRefreshKind {
    CpuRefreshKind::nothing().with_usage()
}

/// Samples the CPUs. Usage is measured between two refreshes, so this keeps its `System`; the
/// cpufreq files are listed again only every [`RELIST_EVERY`] samples (a sample runs on every
/// tick).
pub(crate) struct CpuCollector {
    system: Option<System>,
    /// Each core's `scaling_cur_freq`; None until listed under the sample's root.
    cpufreq_files: Option<Vec<PathBuf>>,
    /// Samples taken since the cpufreq files were last listed.
    since_listed: u32,
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
        Self {
            system,
            cpufreq_files: None,
            since_listed: 0,
            warn,
        }
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
        if self.since_listed >= RELIST_EVERY || self.cpufreq_files.is_none() {
            self.cpufreq_files = Some(list_cpufreq_files(root));
            self.since_listed = 0;
        }
        self.since_listed += 1;
        let files = self.cpufreq_files.as_deref().unwrap_or_default();
        let frequency_mhz = average_cpufreq_mhz(files).or_else(|| read_cpuinfo_mhz(root));
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

/// Each core's `ROOT/sys/devices/system/cpu/cpuN/cpufreq/scaling_cur_freq`, whether or not it
/// exists; none without that directory.
fn list_cpufreq_files(root: &Path) -> Vec<PathBuf> {
    numbered_entries(&root.join("sys/devices/system/cpu"), "cpu")
        .map(|cpus| {
            cpus.into_iter()
                .map(|(_, cpu)| cpu.join("cpufreq/scaling_cur_freq"))
                .collect()
        })
        .unwrap_or_default()
}

/// The current frequency in MHz averaged over the cores whose `scaling_cur_freq` (kHz) of
/// `files` can be read; None if none can.
fn average_cpufreq_mhz(files: &[PathBuf]) -> Option<u64> {
    let khz: Vec<u64> = files
        .iter()
        .filter_map(|file| read_parsed(file, |c| c.parse().ok()).ok())
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

    fn read_cpufreq_mhz(root: &Path) -> Option<u64> {
        average_cpufreq_mhz(&list_cpufreq_files(root))
    }

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
