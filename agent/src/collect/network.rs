//! Network interfaces with their cumulative byte and error counters, from sysinfo
//! (`/sys/class/net`).

use pivitals_common::NetVitals;
use sysinfo::Networks;

use super::warn_once::WarnOnce;

/// Samples every network interface; keeps the sysinfo list between samples.
pub(crate) struct NetworkCollector {
    networks: Option<Networks>,
    warn: WarnOnce,
}

impl NetworkCollector {
    pub(crate) fn new() -> Self {
        let mut warn = WarnOnce::default();
        let networks = warn.ok("networks", Networks::new_with_refreshed_list());
        Self { networks, warn }
    }

    /// Every interface, loopback included, sorted by name.
    pub(crate) fn sample(&mut self) -> Vec<NetVitals> {
        let Some(networks) = self.networks.as_mut() else {
            return Vec::new();
        };
        networks.refresh(true);
        let mut interfaces: Vec<NetVitals> = networks
            .iter()
            .map(|(name, data)| NetVitals {
                interface: name.to_string_lossy().into_owned(),
                rx_bytes: data.total_received(),
                tx_bytes: data.total_transmitted(),
                rx_errors: data.total_errors_on_received(),
                tx_errors: data.total_errors_on_transmitted(),
            })
            .collect();
        interfaces.sort_by(|a, b| a.interface.cmp(&b.interface));
        if interfaces.is_empty() {
            self.warn.warn("networks", &"no network interface found");
        }
        interfaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_this_machines_interfaces_in_name_order() {
        let interfaces = NetworkCollector::new().sample();
        assert!(!interfaces.is_empty(), "this machine has at least loopback");
        let names: Vec<&str> = interfaces.iter().map(|n| n.interface.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
