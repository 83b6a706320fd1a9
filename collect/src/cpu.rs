//! CPU usage, core count and model from sysinfo; the frequency from
//! `ROOT/sys/devices/system/cpu/cpu*/cpufreq/scaling_cur_freq`, or where there is no cpufreq
//! (virtual machines), the `cpu MHz` lines of `ROOT/proc/cpuinfo`, read once a sample (sysinfo
//! would read the whole of `/proc/cpuinfo` once per core).
//!
//! Under a root other than `/` whose `proc/stat` exists, usage and core count come from that
//! file instead (sysinfo reads only the real `/proc`): tests give each agent its own counters,
//! so agents on one machine can be busy and idle at once.

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
    /// The last reading of `ROOT/proc/stat`, under a root other than `/`.
    proc_stat: Option<ProcStatReading>,
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
            proc_stat: None,
            warn,
        }
    }

    pub(crate) fn sample(&mut self, root: &Path) -> Option<CpuVitals> {
        let (usage_percent, cores) = match self.usage_under_root(root) {
            Some(found) => found,
            None => self.usage_from_sysinfo()?,
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
            cores,
            ..Default::default()
        })
    }

    /// Busy share (rounded to hundredths) since the last refresh, and the core count.
    fn usage_from_sysinfo(&mut self) -> Option<(f64, u32)> {
        let system = self.system.as_mut()?;
        system.refresh_cpu_specifics(refresh_kind());
        let cpus = system.cpus();
        if cpus.is_empty() {
            self.warn.warn("cpu", &"sysinfo lists no CPUs");
            return None;
        }
        let usage = f64::from(system.global_cpu_usage());
        // sysinfo measures in f32: two decimals are all it knows.
        Some((hundredths_percent(usage), count_u32(cpus.len())))
    }

    /// Busy share and core count from `ROOT/proc/stat`, under a root other than `/` that has
    /// that file; None otherwise (sysinfo then reads the real `/proc`).
    fn usage_under_root(&mut self, root: &Path) -> Option<(f64, u32)> {
        if root == Path::new("/") {
            return None;
        }
        let content = std::fs::read_to_string(root.join("proc/stat")).ok()?;
        let mut reading = ProcStatReading::parse(&content)?;
        let usage = reading.busy_percent_since(self.proc_stat.as_ref());
        self.proc_stat = Some(reading);
        Some((hundredths_percent(usage), reading.cores))
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

/// 0–100, rounded to hundredths; 0 for what is not a number.
fn hundredths_percent(usage: f64) -> f64 {
    if usage.is_finite() {
        (usage.clamp(0.0, 100.0) * 100.0).round() / 100.0
    } else {
        0.0
    }
}

/// The aggregate `cpu` line of a `/proc/stat`, in clock ticks, and its `cpuN` line count.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ProcStatReading {
    busy: u64,
    total: u64,
    cores: u32,
    /// The busy share this reading reported, kept for a next reading with no ticks in between.
    busy_percent: f64,
}

impl ProcStatReading {
    /// `cpu user nice system idle iowait irq softirq steal ...`: idle and iowait are idle time,
    /// the rest of the first eight busy (guest time is already counted in user).
    fn parse(content: &str) -> Option<Self> {
        let mut lines = content.lines();
        let ticks: Vec<u64> = lines
            .next()?
            .strip_prefix("cpu ")?
            .split_whitespace()
            .take(8)
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        if ticks.len() < 4 {
            return None;
        }
        let total: u64 = ticks.iter().sum();
        let idle = ticks[3] + ticks.get(4).copied().unwrap_or(0);
        let cores = lines
            .filter(|line| {
                line.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        Some(Self {
            busy: total - idle,
            total,
            cores: count_u32(cores.max(1)),
            busy_percent: 0.0,
        })
    }

    /// The busy share between `previous` and this reading (since boot without one), which it
    /// also keeps; with no tick in between, the previous reading's share.
    fn busy_percent_since(&mut self, previous: Option<&Self>) -> f64 {
        let (busy, total) = match previous {
            Some(p) if self.total > p.total => {
                (self.busy.saturating_sub(p.busy), self.total - p.total)
            }
            Some(p) => {
                self.busy_percent = p.busy_percent;
                return p.busy_percent;
            }
            None if self.total > 0 => (self.busy, self.total),
            None => return 0.0,
        };
        self.busy_percent = busy as f64 * 100.0 / total as f64;
        self.busy_percent
    }
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

    /// A `/proc/stat` with `cores` cores that spent `busy` and `idle` ticks in all.
    fn proc_stat(busy: u64, idle: u64, cores: usize) -> String {
        let mut text = format!("cpu  {busy} 0 0 {idle} 0 0 0 0 0 0\n");
        for n in 0..cores {
            text.push_str(&format!("cpu{n} 1 0 0 1 0 0 0 0 0 0\n"));
        }
        text + "intr 1 2 3\nctxt 42\n"
    }

    #[test]
    fn under_a_fixture_root_usage_and_cores_come_from_its_proc_stat() {
        let tree = Tree::pi4();
        let mut cpu = CpuCollector::new();
        tree.write("proc/stat", proc_stat(100, 900, 4));
        let first = cpu.sample(tree.root()).expect("a sample");
        assert_eq!((first.usage_percent, first.cores), (10.0, 4), "since boot");
        tree.write("proc/stat", proc_stat(100 + 95, 900 + 5, 4));
        assert_eq!(cpu.sample(tree.root()).map(|c| c.usage_percent), Some(95.0));
        // No tick in between: the last share again, not 0 % or a division by zero.
        assert_eq!(cpu.sample(tree.root()).map(|c| c.usage_percent), Some(95.0));
        tree.write("proc/stat", proc_stat(195 + 1, 905 + 99, 4));
        assert_eq!(cpu.sample(tree.root()).map(|c| c.usage_percent), Some(1.0));
    }

    #[test]
    fn a_proc_stat_is_parsed_as_the_kernel_writes_it() {
        let line = "cpu  10 1 4 80 5 0 0 0 3 0\ncpu0 1 0 0 1 0 0 0 0 0 0\ncpu1 1 0 0 1\n";
        let reading = ProcStatReading::parse(line).expect("parses");
        assert_eq!((reading.busy, reading.total, reading.cores), (15, 100, 2));
        assert_eq!(ProcStatReading::parse("intr 1\n"), None);
        assert_eq!(ProcStatReading::parse("cpu 1 x 3 4\n"), None);
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
