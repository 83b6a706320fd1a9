//! Network interfaces: their counters from `ROOT/proc/net/dev` and per-second rates between
//! samples.
//!
//! # Where each number comes from
//!
//! `/proc/net/dev` has two header lines, then one line per interface:
//! `name: ` and 16 columns, 8 for receive (`bytes packets errs drop fifo frame compressed
//! multicast`) then 8 for transmit (`bytes packets errs drop fifo colls carrier compressed`).
//! Reported as counters, as the kernel has them (since boot or since the interface was
//! created), the way Telegraf's `net` input keeps them so InfluxDB users can derive their own:
//!
//! | field                  | column           |
//! |------------------------|------------------|
//! | `rx_bytes`             | receive `bytes`  |
//! | `rx_packets`           | receive `packets`|
//! | `rx_errors`            | receive `errs`   |
//! | `rx_dropped`           | receive `drop`   |
//! | `tx_bytes` … `tx_dropped` | the same four transmit columns |
//!
//! `rates` holds each of the eight per second: its increase since the previous sample divided
//! by the seconds between the two reads, measured on the monotonic clock
//! ([`std::time::Instant`]), never the wall clock, so a clock step cannot fake a rate.
//!
//! # When there are no rates
//!
//! As [`crate::rates`] specifies: on an interface's first sample, when any of its eight
//! counters went down (interface re-created, driver reloaded, reboot, or a 32-bit counter
//! wrapped, which looks the same and is treated the same: one interval without rates rather
//! than a spike of up to 4 GiB), and when no time passed. Interfaces that disappear are
//! forgotten. A failed read of the file leaves the baselines as they were, so the next good
//! sample's rates span both intervals.
//!
//! One read of one file gives every interface's counters; sysinfo would open nine files per
//! interface under `/sys/class/net` and ask netlink for addresses on every sample.

use std::path::Path;
use std::time::Instant;

use pivitals_common::{NetRates, NetVitals};

use super::files::{ReadError, read_parsed};
use super::rates::{Baselines, Delta};
use super::warn_once::WarnOnce;

/// Every interface in `ROOT/proc/net/dev`, loopback included, sorted by name, without rates.
pub(crate) fn read_net_dev(root: &Path) -> Result<Vec<NetVitals>, ReadError> {
    read_parsed(&root.join("proc/net/dev"), parse_net_dev)
}

/// Parses `/proc/net/dev` (see the module doc). `None` if a line does not have that shape.
fn parse_net_dev(content: &str) -> Option<Vec<NetVitals>> {
    let mut interfaces = Vec::new();
    for line in content.lines().skip(2) {
        let (name, counters) = line.split_once(':')?;
        let mut column = counters.split_whitespace().map(|c| c.parse::<u64>().ok());
        let rx_bytes = column.next()??;
        let rx_packets = column.next()??;
        let rx_errors = column.next()??;
        let rx_dropped = column.next()??;
        // Skip fifo, frame, compressed, multicast.
        let tx_bytes = column.nth(4)??;
        let tx_packets = column.next()??;
        let tx_errors = column.next()??;
        let tx_dropped = column.next()??;
        interfaces.push(NetVitals {
            interface: name.trim().to_owned(),
            rx_bytes,
            tx_bytes,
            rx_errors,
            tx_errors,
            rx_packets,
            tx_packets,
            rx_dropped,
            tx_dropped,
            rates: None,
        });
    }
    interfaces.sort_by(|a, b| a.interface.cmp(&b.interface));
    Some(interfaces)
}

/// An interface's counters in the order [`rates_of`] reads them back.
fn counters(n: &NetVitals) -> (&str, [u64; 8]) {
    (
        &n.interface,
        [
            n.rx_bytes,
            n.tx_bytes,
            n.rx_packets,
            n.tx_packets,
            n.rx_errors,
            n.tx_errors,
            n.rx_dropped,
            n.tx_dropped,
        ],
    )
}

fn rates_of(delta: &Delta<8>) -> NetRates {
    NetRates {
        rx_bytes_per_second: delta.per_second(0),
        tx_bytes_per_second: delta.per_second(1),
        rx_packets_per_second: delta.per_second(2),
        tx_packets_per_second: delta.per_second(3),
        rx_errors_per_second: delta.per_second(4),
        tx_errors_per_second: delta.per_second(5),
        rx_dropped_per_second: delta.per_second(6),
        tx_dropped_per_second: delta.per_second(7),
    }
}

/// Samples every network interface with rates since its previous sample, warning once when it
/// cannot read them.
#[derive(Debug, Default)]
pub(crate) struct NetworkCollector {
    warn: WarnOnce,
    baselines: Baselines<8>,
}

impl NetworkCollector {
    /// Every interface, loopback included, sorted by name.
    pub(crate) fn sample(&mut self, root: &Path) -> Vec<NetVitals> {
        self.sample_at(root, Instant::now())
    }

    /// Like [`NetworkCollector::sample`], with the counters taken as read at `now`.
    pub(crate) fn sample_at(&mut self, root: &Path, now: Instant) -> Vec<NetVitals> {
        let Some(interfaces) = self.warn.ok("networks", read_net_dev(root)) else {
            return Vec::new();
        };
        if interfaces.is_empty() {
            self.warn.warn("networks", &"no network interface found");
        }
        self.baselines
            .advance(now, interfaces, counters)
            .into_iter()
            .map(|(interface, delta)| NetVitals {
                rates: delta.as_ref().map(rates_of),
                ..interface
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_fixtures::Tree;

    const HEADER: &str = "Inter-|   Receive                                                |  Transmit\n \
        face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n";

    /// A Raspberry Pi 4's `/proc/net/dev` with these `(name, rx bytes, rx packets, rx errs,
    /// rx drop, tx bytes, tx packets, tx errs, tx drop)`.
    fn net_dev(lines: &[(&str, [u64; 8])]) -> String {
        let mut text = HEADER.to_owned();
        for (name, [rb, rp, re, rd, tb, tp, te, td]) in lines {
            text.push_str(&format!(
                "{name:>6}: {rb:>8} {rp:>7} {re:>4} {rd:>4}    0     0          0         0 {tb:>8} {tp:>7} {te:>4} {td:>4}    0     0       0          0\n"
            ));
        }
        text
    }

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
                rx_packets: 700_000,
                tx_packets: 500_000,
                rx_dropped: 1,
                tx_dropped: 0,
                rates: None,
            }
        );
    }

    #[test]
    fn every_counter_comes_from_its_own_column() {
        let tree = Tree::empty();
        tree.write(
            "proc/net/dev",
            net_dev(&[("eth0", [11, 12, 13, 14, 21, 22, 23, 24])]),
        );
        let eth0 = &read_net_dev(tree.root()).expect("fixture")[0];
        assert_eq!(
            [
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ],
            [11, 12, 13, 14]
        );
        assert_eq!(
            [
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ],
            [21, 22, 23, 24]
        );
    }

    #[test]
    fn rates_are_counter_increases_over_the_interval() {
        let tree = Tree::empty();
        let mut collector = NetworkCollector::default();
        let t0 = Instant::now();
        tree.write(
            "proc/net/dev",
            net_dev(&[
                ("lo", [5_000_000, 40_000, 0, 0, 5_000_000, 40_000, 0, 0]),
                (
                    "eth0",
                    [987_654_321, 700_000, 3, 1, 123_456_789, 500_000, 7, 0],
                ),
                ("wlan0", [0; 8]),
            ]),
        );
        let first = collector.sample_at(tree.root(), t0);
        assert!(first.iter().all(|n| n.rates.is_none()), "{first:?}");

        tree.write(
            "proc/net/dev",
            net_dev(&[
                ("lo", [5_000_000, 40_000, 0, 0, 5_000_000, 40_000, 0, 0]),
                (
                    "eth0",
                    [
                        987_654_321 + 1_250_000,
                        701_000,
                        5,
                        11,
                        123_456_789 + 250_000,
                        500_500,
                        7,
                        3,
                    ],
                ),
                ("wlan0", [0; 8]),
            ]),
        );
        let second = collector.sample_at(tree.root(), t0 + Duration::from_secs(10));
        let eth0 = second.iter().find(|n| n.interface == "eth0").expect("eth0");
        assert_eq!(eth0.rx_bytes, 988_904_321, "counters stay raw");
        assert_eq!(
            eth0.rates,
            Some(NetRates {
                rx_bytes_per_second: 125_000.0,
                tx_bytes_per_second: 25_000.0,
                rx_packets_per_second: 100.0,
                tx_packets_per_second: 50.0,
                rx_errors_per_second: 0.2,
                tx_errors_per_second: 0.0,
                rx_dropped_per_second: 1.0,
                tx_dropped_per_second: 0.3,
            })
        );
        let lo = second.iter().find(|n| n.interface == "lo").expect("lo");
        assert_eq!(
            lo.rates,
            Some(NetRates::default()),
            "idle is zero, not absent"
        );
    }

    #[test]
    fn a_reset_interface_has_no_rates_then_counts_from_its_new_baseline() {
        let tree = Tree::empty();
        let mut collector = NetworkCollector::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        tree.write(
            "proc/net/dev",
            net_dev(&[("eth0", [4_294_967_000, 9, 0, 0, 1000, 9, 0, 0])]),
        );
        collector.sample_at(tree.root(), t0);
        // Re-created (or a 32-bit rx_bytes wrapped): only one counter went down.
        tree.write(
            "proc/net/dev",
            net_dev(&[("eth0", [500, 10, 0, 0, 2000, 10, 0, 0])]),
        );
        let reset = collector.sample_at(tree.root(), t0 + s);
        assert_eq!(reset[0].rates, None, "no spike");
        assert_eq!(reset[0].rx_bytes, 500);
        tree.write(
            "proc/net/dev",
            net_dev(&[("eth0", [1500, 12, 0, 0, 2000, 10, 0, 0])]),
        );
        let after = collector.sample_at(tree.root(), t0 + 2 * s);
        let rates = after[0].rates.as_ref().expect("rates again");
        assert_eq!(rates.rx_bytes_per_second, 1000.0);
        assert_eq!(rates.rx_packets_per_second, 2.0);
    }

    #[test]
    fn a_second_sample_at_the_same_instant_has_no_rates() {
        let tree = Tree::pi4();
        let mut collector = NetworkCollector::default();
        let t0 = Instant::now();
        collector.sample_at(tree.root(), t0);
        let again = collector.sample_at(tree.root(), t0);
        assert!(again.iter().all(|n| n.rates.is_none()), "{again:?}");
    }

    #[test]
    fn an_interface_that_comes_back_starts_over() {
        let tree = Tree::empty();
        let mut collector = NetworkCollector::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let eth0 = ("eth0", [100, 1, 0, 0, 100, 1, 0, 0]);
        let usb0 = ("usb0", [100, 1, 0, 0, 100, 1, 0, 0]);
        tree.write("proc/net/dev", net_dev(&[eth0, usb0]));
        collector.sample_at(tree.root(), t0);
        tree.write("proc/net/dev", net_dev(&[eth0]));
        assert_eq!(collector.sample_at(tree.root(), t0 + s).len(), 1);
        tree.write("proc/net/dev", net_dev(&[eth0, usb0]));
        let back = collector.sample_at(tree.root(), t0 + 2 * s);
        assert!(back[0].rates.is_some());
        assert_eq!(back[1].interface, "usb0");
        assert_eq!(back[1].rates, None);
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
