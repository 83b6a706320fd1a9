//! Uptime, load average and process count, read from `ROOT/proc`.

use std::path::Path;

use pivitals_common::LoadAverage;

use super::files::{ReadError, read_parsed};
use super::warn_once::WarnOnce;

/// Seconds since boot: the first field of `ROOT/proc/uptime`, rounded down.
pub(crate) fn read_uptime(root: &Path) -> Result<u64, ReadError> {
    read_parsed(&root.join("proc/uptime"), |content| {
        let seconds: f64 = content.split_whitespace().next()?.parse().ok()?;
        // Truncation is intended: whole seconds since boot.
        (seconds.is_finite() && seconds >= 0.0).then_some(seconds as u64)
    })
}

/// The 1, 5 and 15 minute load averages: the first three fields of `ROOT/proc/loadavg`.
pub(crate) fn read_loadavg(root: &Path) -> Result<LoadAverage, ReadError> {
    read_parsed(&root.join("proc/loadavg"), |content| {
        let mut fields = content
            .split_whitespace()
            .map(|f| f.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0));
        Some(LoadAverage {
            one: fields.next()??,
            five: fields.next()??,
            fifteen: fields.next()??,
            ..Default::default()
        })
    })
}

/// The number of processes: numeric directories in `ROOT/proc`. Cheaper than asking sysinfo,
/// which would read every process's status.
pub(crate) fn count_processes(root: &Path) -> Result<u64, ReadError> {
    let proc = root.join("proc");
    let io_error = |source| ReadError::Io {
        path: proc.clone(),
        source,
    };
    let mut count = 0;
    for entry in std::fs::read_dir(&proc).map_err(io_error)? {
        // A process can exit while we list; skip what vanished.
        let Ok(entry) = entry else { continue };
        let numeric = entry
            .file_name()
            .to_str()
            .is_some_and(|name| !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()));
        if numeric && entry.file_type().is_ok_and(|t| t.is_dir()) {
            count += 1;
        }
    }
    Ok(count)
}

/// The `/proc` families, each warning once when it cannot be read.
#[derive(Debug, Default)]
pub(crate) struct SystemFamilies {
    uptime: WarnOnce,
    load: WarnOnce,
    processes: WarnOnce,
}

impl SystemFamilies {
    pub(crate) fn uptime(&mut self, root: &Path) -> Option<u64> {
        self.uptime.ok("uptime", read_uptime(root))
    }

    pub(crate) fn load(&mut self, root: &Path) -> Option<LoadAverage> {
        self.load.ok("load", read_loadavg(root))
    }

    pub(crate) fn process_count(&mut self, root: &Path) -> Option<u64> {
        self.processes.ok("processes", count_processes(root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    #[test]
    fn reads_a_pi4s_proc() {
        let tree = Tree::pi4();
        assert_eq!(read_uptime(tree.root()).expect("fixture uptime"), 12345);
        let load = read_loadavg(tree.root()).expect("fixture loadavg");
        assert_eq!(
            load,
            LoadAverage {
                one: 0.52,
                five: 0.58,
                fifteen: 0.59,
                ..Default::default()
            }
        );
        // proc/1, proc/2 and proc/4321; not self, sys, cpuinfo or uptime.
        assert_eq!(count_processes(tree.root()).expect("fixture proc"), 3);
    }

    #[test]
    fn a_numeric_file_is_not_a_process() {
        let tree = Tree::pi4();
        tree.write("proc/777", "not a directory");
        assert_eq!(count_processes(tree.root()).expect("fixture proc"), 3);
    }

    #[test]
    fn missing_proc_gives_errors_and_families_give_none() {
        let tree = Tree::empty();
        assert!(read_uptime(tree.root()).is_err_and(|e| e.is_not_found()));
        assert!(read_loadavg(tree.root()).is_err_and(|e| e.is_not_found()));
        assert!(count_processes(tree.root()).is_err_and(|e| e.is_not_found()));
        let mut families = SystemFamilies::default();
        for _ in 0..2 {
            assert_eq!(families.uptime(tree.root()), None);
            assert_eq!(families.load(tree.root()), None);
            assert_eq!(families.process_count(tree.root()), None);
        }
    }

    #[test]
    fn garbage_is_rejected_not_zeroed() {
        let tree = Tree::empty();
        tree.write("proc/uptime", "soon\n");
        tree.write("proc/loadavg", "0.5 0.4\n");
        assert!(read_uptime(tree.root()).is_err_and(|e| !e.is_not_found()));
        assert!(read_loadavg(tree.root()).is_err_and(|e| !e.is_not_found()));
        tree.write("proc/loadavg", "0.5 NaN 0.3 1/2 3\n");
        assert!(read_loadavg(tree.root()).is_err());
    }
}
