//! Network interfaces with their cumulative byte and error counters, from `ROOT/proc/net/dev`.
//!
//! One read of one file gives every interface's counters; sysinfo would open nine files per
//! interface under `/sys/class/net` and ask netlink for addresses on every sample.

use std::path::Path;

use pivitals_common::NetVitals;

use super::files::{ReadError, read_parsed};
use super::warn_once::WarnOnce;

/// Every interface in `ROOT/proc/net/dev`, loopback included, sorted by name.
pub(crate) fn read_net_dev(root: &Path) -> Result<Vec<NetVitals>, ReadError> {
    read_parsed(&root.join("proc/net/dev"), parse_net_dev)
}

/// Parses `/proc/net/dev`: two header lines, then `name: rx_bytes rx_packets rx_errs … (8
/// receive columns) tx_bytes tx_packets tx_errs …`. `None` if a line does not have that shape.
fn parse_net_dev(content: &str) -> Option<Vec<NetVitals>> {
    let mut interfaces = Vec::new();
    for line in content.lines().skip(2) {
        let (name, counters) = line.split_once(':')?;
        let mut column = counters.split_whitespace().map(|c| c.parse::<u64>().ok());
        let rx_bytes = column.next()??;
        let _rx_packets = column.next()??;
        let rx_errors = column.next()??;
        let tx_bytes = column.nth(5)??;
        let _tx_packets = column.next()??;
        let tx_errors = column.next()??;
        interfaces.push(NetVitals {
            interface: name.trim().to_owned(),
            rx_bytes,
            tx_bytes,
            rx_errors,
            tx_errors,
        });
    }
    interfaces.sort_by(|a, b| a.interface.cmp(&b.interface));
    Some(interfaces)
}

/// Samples every network interface, warning once when it cannot.
#[derive(Debug, Default)]
pub(crate) struct NetworkCollector {
    warn: WarnOnce,
}

impl NetworkCollector {
    /// Every interface, loopback included, sorted by name.
    pub(crate) fn sample(&mut self, root: &Path) -> Vec<NetVitals> {
        let interfaces = self
            .warn
            .ok("networks", read_net_dev(root))
            .unwrap_or_default();
        if interfaces.is_empty() {
            self.warn.warn("networks", &"no network interface found");
        }
        interfaces
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    #[test]
    fn reads_a_pi4s_interfaces_in_name_order() {
        let tree = Tree::pi4();
        let interfaces = read_net_dev(tree.root()).expect("fixture net/dev");
        let names: Vec<&str> = interfaces.iter().map(|n| n.interface.as_str()).collect();
        assert_eq!(names, ["eth0", "lo", "wlan0"]);
        assert_eq!(
            interfaces[0],
            NetVitals {
                interface: "eth0".to_owned(),
                rx_bytes: 987_654_321,
                tx_bytes: 123_456_789,
                rx_errors: 3,
                tx_errors: 7,
            }
        );
    }

    #[test]
    fn a_line_without_all_counters_is_an_error_not_zeroes() {
        let tree = Tree::empty();
        tree.write(
            "proc/net/dev",
            "Inter-| Receive | Transmit\n face |bytes packets\n  eth0: 1 2 3\n",
        );
        assert!(read_net_dev(tree.root()).is_err_and(|e| !e.is_not_found()));
        assert!(NetworkCollector::default().sample(tree.root()).is_empty());
    }

    #[test]
    fn samples_this_machines_interfaces_in_name_order() {
        let interfaces = NetworkCollector::default().sample(Path::new("/"));
        assert!(!interfaces.is_empty(), "this machine has at least loopback");
        let names: Vec<&str> = interfaces.iter().map(|n| n.interface.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted);
    }
}
