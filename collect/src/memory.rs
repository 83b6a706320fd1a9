//! Memory and swap totals and use, from sysinfo (`/proc/meminfo`).

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
    pub(crate) fn sample(&mut self) -> (Option<MemoryVitals>, Option<SwapVitals>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_machines_memory() {
        let (memory, swap) = MemoryCollector::new().sample();
        let memory = memory.expect("this machine has RAM");
        assert!(memory.total_bytes > 0);
        assert!(memory.available_bytes <= memory.total_bytes);
        assert!(memory.used_bytes <= memory.total_bytes);
        let swap = swap.expect("swap is reported even when zero");
        assert!(swap.used_bytes <= swap.total_bytes);
    }
}
