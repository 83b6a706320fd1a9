//! Memory and swap totals and use, from sysinfo (`/proc/meminfo`); under a root other than `/`
//! whose `proc/meminfo` exists, from that file (sysinfo reads only the real `/proc`), so tests
//! can give each agent its own memory.

use std::path::Path;

use pivitals_common::{MemoryVitals, SwapVitals};
use sysinfo::{MemoryRefreshKind, System};

use super::warn_once::WarnOnce;

/// Samples memory and swap; refreshes nothing else.
pub(crate) struct MemoryCollector {
    system: Option<System>,
    warn: WarnOnce,
}

impl MemoryCollector {
    pub(crate) fn new() -> Self {
        let mut warn = WarnOnce::default();
        let system = warn.ok("memory", System::new());
        Self { system, warn }
    }

    /// Memory (None when the kernel reports no RAM, i.e. reading failed) and swap (zero when
    /// the host has none).
    pub(crate) fn sample(&mut self, root: &Path) -> (Option<MemoryVitals>, Option<SwapVitals>) {
        if root != Path::new("/")
            && let Ok(content) = std::fs::read_to_string(root.join("proc/meminfo"))
        {
            return parse_meminfo(&content).unwrap_or_else(|| {
                self.warn.warn("memory", &"no MemTotal in proc/meminfo");
                (None, None)
            });
        }
        let Some(system) = self.system.as_mut() else {
            return (None, None);
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        if system.total_memory() == 0 {
            self.warn.warn("memory", &"sysinfo reports no RAM");
            return (None, None);
        }
        let memory = MemoryVitals {
            total_bytes: system.total_memory(),
            available_bytes: system.available_memory(),
            used_bytes: system.used_memory(),
            ..Default::default()
        };
        let swap = SwapVitals {
            total_bytes: system.total_swap(),
            used_bytes: system.used_swap(),
        };
        (Some(memory), Some(swap))
    }
}

/// `MemTotal`, `MemAvailable` (else free + buffers + cached), `SwapTotal` and `SwapFree`
/// (kB) of a `/proc/meminfo`, counted as sysinfo counts them (used = total − available).
fn parse_meminfo(content: &str) -> Option<(Option<MemoryVitals>, Option<SwapVitals>)> {
    let field = |name: &str| {
        content.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            let kib: u64 = (key == name)
                .then(|| value.trim().trim_end_matches("kB").trim().parse().ok())??;
            Some(kib.saturating_mul(1024))
        })
    };
    let total = field("MemTotal").filter(|t| *t > 0)?;
    let available = field("MemAvailable")
        .or_else(|| Some(field("MemFree")? + field("Buffers")? + field("Cached")?))
        .unwrap_or(0)
        .min(total);
    let swap_total = field("SwapTotal").unwrap_or(0);
    let swap_free = field("SwapFree").unwrap_or(0).min(swap_total);
    let memory = MemoryVitals {
        total_bytes: total,
        available_bytes: available,
        used_bytes: total - available,
        ..Default::default()
    };
    let swap = SwapVitals {
        total_bytes: swap_total,
        used_bytes: swap_total - swap_free,
    };
    Some((Some(memory), Some(swap)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn under_a_fixture_root_memory_comes_from_its_meminfo() {
        let tree = crate::test_fixtures::Tree::pi4();
        tree.write(
            "proc/meminfo",
            "MemTotal:        4000 kB\nMemFree:          100 kB\nMemAvailable:     1000 kB\n\
             SwapTotal:        200 kB\nSwapFree:          50 kB\n",
        );
        let (memory, swap) = MemoryCollector::new().sample(tree.root());
        let memory = memory.expect("memory");
        assert_eq!(memory.total_bytes, 4000 * 1024);
        assert_eq!(memory.available_bytes, 1000 * 1024);
        assert_eq!(memory.used_bytes, 3000 * 1024);
        assert_eq!(swap.map(|s| s.used_bytes), Some(150 * 1024));
        assert_eq!(parse_meminfo("MemFree: 5 kB\n"), None, "no total");
    }

    #[test]
    fn samples_this_machines_memory() {
        let (memory, swap) = MemoryCollector::new().sample(Path::new("/"));
        let memory = memory.expect("this machine has RAM");
        assert!(memory.total_bytes > 0);
        assert!(memory.available_bytes <= memory.total_bytes);
        assert!(memory.used_bytes <= memory.total_bytes);
        let swap = swap.expect("swap is reported even when zero");
        assert!(swap.used_bytes <= swap.total_bytes);
    }
}
