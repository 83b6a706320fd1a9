//! How to find a board on the network: the interface of the default route, and every
//! interface that is up (loopback aside) with its MAC, IPv4 and IPv6 addresses.
//!
//! Read under the collector's root, so fixture trees stand in for a host:
//!
//! - interfaces: `ROOT/sys/class/net/NAME/` (`flags` with `IFF_UP`, else `operstate` `up`;
//!   `address` for the MAC, all-zero ones left out; `ifindex` for the order `ip` shows);
//! - IPv6: `ROOT/proc/net/if_inet6`, link-local (`fe80::/10`) left out, temporary and
//!   deprecated addresses after the others;
//! - default route: `ROOT/proc/net/route` (destination and mask 0, lowest metric), else the
//!   IPv6 default of `ROOT/proc/net/ipv6_route`.
//!
//! `/proc` has no per-interface list of IPv4 addresses (`/proc/net/fib_trie` lists local
//! addresses without their interface), so IPv4 comes from `getifaddrs(3)`, one netlink dump of
//! the running host: only when the root is `/` ([`Ipv4Source::Host`]); a fixture tree gets
//! the IPv4 addresses its test hands in. The wrapper below is this module's only `unsafe`.
//!
//! Cheap enough to read every minute: a few files per interface and one netlink dump.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::sync::atomic::AtomicBool;

use pivitals_common::InterfaceInfo;

use crate::files::{ReadError, read_trimmed};
use crate::host::ok_or_warn;

/// `IFF_UP` and `IFF_LOOPBACK` of `/sys/class/net/NAME/flags` (linux/if.h).
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
/// Route flags of `/proc/net/route` and `ipv6_route` (linux/route.h, ipv6_route.h).
const RTF_UP: u32 = 0x1;
const RTF_REJECT: u32 = 0x200;
/// Address flags of `/proc/net/if_inet6` (linux/if_addr.h): `IFA_F_TEMPORARY`,
/// `IFA_F_DEPRECATED`.
const IFA_F_TEMPORARY: u32 = 0x01;
const IFA_F_DEPRECATED: u32 = 0x20;

// The most addresses of one family listed per interface is the primary's cap (it refuses an
// info with more), so a host with many IPv6 prefixes or temporary addresses still pushes.
// The first ones are kept: the primary address of a subnet, stable before temporary.
use pivitals_common::limits::MAX_ADDRESSES_PER_INTERFACE;

/// The default route's interface and the interfaces that are up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NetworkIdentity {
    pub(crate) default_interface: Option<String>,
    pub(crate) interfaces: Vec<InterfaceInfo>,
}

/// Where IPv4 addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ipv4Source {
    /// `getifaddrs(3)` of the running host: for the root `/`.
    Host,
    /// These (interface, address) pairs, in order: a fixture tree's, or none.
    Given(Vec<(String, Ipv4Addr)>),
}

impl Ipv4Source {
    /// [`Ipv4Source::Host`] when `root` is `/`, else no IPv4 addresses.
    pub(crate) fn for_root(root: &Path) -> Self {
        if root == Path::new("/") {
            Ipv4Source::Host
        } else {
            Ipv4Source::Given(Vec::new())
        }
    }
}

impl NetworkIdentity {
    /// Reads the identity of the host whose `/` is `root`; a part that cannot be read is left
    /// out with one warning for the life of the process.
    pub(crate) fn read(root: &Path, ipv4: Ipv4Source) -> Self {
        static ROUTE: AtomicBool = AtomicBool::new(false);
        static INTERFACES: AtomicBool = AtomicBool::new(false);
        static IPV6: AtomicBool = AtomicBool::new(false);
        static IPV4: AtomicBool = AtomicBool::new(false);
        let ipv4 = match ipv4 {
            Ipv4Source::Host => ok_or_warn(&IPV4, "IPv4 addresses", host_ipv4()),
            Ipv4Source::Given(pairs) => Some(pairs),
        };
        let ipv6 = ok_or_warn(&IPV6, "IPv6 addresses", read_if_inet6(root));
        let interfaces = ok_or_warn(&INTERFACES, "interfaces", read_up_interfaces(root))
            .unwrap_or_default()
            .into_iter()
            .map(|(name, mac)| InterfaceInfo {
                ipv4: ipv4
                    .iter()
                    .flatten()
                    .filter(|(owner, _)| *owner == name)
                    .map(|(_, address)| address.to_string())
                    .take(MAX_ADDRESSES_PER_INTERFACE)
                    .collect(),
                ipv6: ipv6
                    .as_ref()
                    .and_then(|v| v.get(&name))
                    .map(|v| {
                        v.iter()
                            .take(MAX_ADDRESSES_PER_INTERFACE)
                            .cloned()
                            .collect()
                    })
                    .unwrap_or_default(),
                name,
                mac,
            })
            .collect();
        Self {
            default_interface: ok_or_warn(&ROUTE, "default route", read_default_interface(root))
                .flatten(),
            interfaces,
        }
    }
}

/// The interfaces under `ROOT/sys/class/net` that are up, loopback aside, with their MACs, in
/// `ifindex` order (as `ip address` lists them). None of them when the directory is missing.
fn read_up_interfaces(root: &Path) -> Result<Vec<(String, Option<String>)>, ReadError> {
    let class = root.join("sys/class/net");
    let entries = match std::fs::read_dir(&class) {
        Ok(entries) => entries,
        Err(source) if source.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ReadError::Io {
                path: class,
                source,
            });
        }
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let dir = entry.path();
        let flags = read_trimmed(&dir.join("flags"))
            .ok()
            .and_then(|f| u32::from_str_radix(f.trim_start_matches("0x"), 16).ok());
        let up = match flags {
            Some(flags) => flags & IFF_UP != 0 && flags & IFF_LOOPBACK == 0,
            None => read_trimmed(&dir.join("operstate")).is_ok_and(|s| s == "up") && name != "lo",
        };
        if !up {
            continue;
        }
        let mac = read_trimmed(&dir.join("address"))
            .ok()
            .filter(|mac| !mac.is_empty() && mac.bytes().any(|b| !matches!(b, b'0' | b':')));
        let index = read_trimmed(&dir.join("ifindex"))
            .ok()
            .and_then(|i| i.parse::<u64>().ok())
            .unwrap_or(u64::MAX);
        found.push((index, name, mac));
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|(_, name, mac)| (name, mac))
        .collect())
}

/// The IPv6 addresses of each interface from `ROOT/proc/net/if_inet6`, link-local ones left
/// out; temporary and deprecated ones after the others. Empty when the file is missing (IPv6
/// disabled).
fn read_if_inet6(root: &Path) -> Result<BTreeMap<String, Vec<String>>, ReadError> {
    let path = root.join("proc/net/if_inet6");
    let content = match read_trimmed(&path) {
        Ok(content) => content,
        Err(e) if e.is_not_found() => return Ok(BTreeMap::new()),
        Err(e) => return Err(e),
    };
    parse_if_inet6(&content).ok_or_else(|| ReadError::parse(&path, &content))
}

/// Lines of `ADDRESS(32 hex) IFINDEX PREFIXLEN SCOPE FLAGS NAME`.
fn parse_if_inet6(content: &str) -> Option<BTreeMap<String, Vec<String>>> {
    let mut ranked: BTreeMap<String, Vec<(bool, Ipv6Addr)>> = BTreeMap::new();
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hex, _index, _prefix, _scope, flags, name] = fields[..] else {
            return None;
        };
        let address = Ipv6Addr::from(u128::from_str_radix(hex, 16).ok()?);
        let flags = u32::from_str_radix(flags, 16).ok()?;
        if address.segments()[0] & 0xffc0 == 0xfe80 {
            continue;
        }
        let later = flags & (IFA_F_TEMPORARY | IFA_F_DEPRECATED) != 0;
        ranked
            .entry(name.to_owned())
            .or_default()
            .push((later, address));
    }
    Some(
        ranked
            .into_iter()
            .map(|(name, mut addresses)| {
                // Stable: the file's order within each rank.
                addresses.sort_by_key(|(later, _)| *later);
                let shown = addresses.iter().map(|(_, a)| a.to_string()).collect();
                (name, shown)
            })
            .collect(),
    )
}

/// The interface of the IPv4 default route with the lowest metric, else of the IPv6 one.
fn read_default_interface(root: &Path) -> Result<Option<String>, ReadError> {
    let v4 = root.join("proc/net/route");
    match read_trimmed(&v4) {
        Ok(content) => {
            if let Some(name) =
                parse_route(&content).ok_or_else(|| ReadError::parse(&v4, &content))?
            {
                return Ok(Some(name));
            }
        }
        Err(e) if e.is_not_found() => {}
        Err(e) => return Err(e),
    }
    let v6 = root.join("proc/net/ipv6_route");
    match read_trimmed(&v6) {
        Ok(content) => parse_ipv6_route(&content).ok_or_else(|| ReadError::parse(&v6, &content)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// `/proc/net/route`: `Iface Destination Gateway Flags RefCnt Use Metric Mask …` after a
/// header line, addresses in hex.
fn parse_route(content: &str) -> Option<Option<String>> {
    let mut best: Option<(u32, &str)> = None;
    for line in content.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [
            name,
            destination,
            _gateway,
            flags,
            _refcnt,
            _use,
            metric,
            mask,
            ..,
        ] = fields[..]
        else {
            return None;
        };
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let metric: u32 = metric.parse().ok()?;
        let default = destination == "00000000" && mask == "00000000";
        if default && flags & RTF_UP != 0 && best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, name));
        }
    }
    Some(best.map(|(_, name)| name.to_owned()))
}

/// `/proc/net/ipv6_route`: `DEST PLEN SRC SPLEN NEXTHOP METRIC REFCNT USE FLAGS NAME`, in
/// hex; the default is `::/0`, the kernel's unreachable route on `lo` left out.
fn parse_ipv6_route(content: &str) -> Option<Option<String>> {
    let mut best: Option<(u32, &str)> = None;
    for line in content.lines().filter(|l| !l.trim().is_empty()) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [
            destination,
            plen,
            _src,
            _splen,
            _nexthop,
            metric,
            _refcnt,
            _use,
            flags,
            name,
        ] = fields[..]
        else {
            return None;
        };
        let metric = u32::from_str_radix(metric, 16).ok()?;
        let flags = u32::from_str_radix(flags, 16).ok()?;
        let default = plen == "00" && destination.bytes().all(|b| b == b'0');
        let usable = flags & RTF_UP != 0 && flags & RTF_REJECT == 0 && name != "lo";
        if default && usable && best.is_none_or(|(m, _)| metric < m) {
            best = Some((metric, name));
        }
    }
    Some(best.map(|(_, name)| name.to_owned()))
}

/// The IPv4 addresses of the running host's interfaces, in the kernel's order (the primary
/// address of a subnet first, as `ip address` shows them): `getifaddrs(3)`. An alias label
/// (`eth0:1`) counts for its interface (`eth0`).
fn host_ipv4() -> Result<Vec<(String, Ipv4Addr)>, ReadError> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: `list` is a valid place for getifaddrs to store the head of the list it
    // allocates; on failure it returns -1 and stores nothing we use.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(ReadError::Io {
            path: "getifaddrs(3)".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    let mut found = Vec::new();
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, which stays allocated
        // until the freeifaddrs below; nothing here keeps a reference past that.
        let entry = unsafe { &*cursor };
        cursor = entry.ifa_next;
        if entry.ifa_addr.is_null() || entry.ifa_name.is_null() {
            continue;
        }
        // SAFETY: a non-null `ifa_addr` points to a socket address that starts with its
        // family; for `AF_INET` it is a whole `sockaddr_in`. `ifa_name` is a NUL-terminated
        // string owned by the list.
        let (family, name) = unsafe {
            (
                i32::from((*entry.ifa_addr).sa_family),
                std::ffi::CStr::from_ptr(entry.ifa_name),
            )
        };
        if family != libc::AF_INET {
            continue;
        }
        // SAFETY: as above, the family says this is a `sockaddr_in`; read unaligned to make
        // no assumption about the allocation.
        let address =
            unsafe { std::ptr::read_unaligned(entry.ifa_addr.cast::<libc::sockaddr_in>()) };
        let name = name.to_string_lossy();
        let interface = name.split(':').next().unwrap_or_default().to_owned();
        found.push((
            interface,
            Ipv4Addr::from(u32::from_be(address.sin_addr.s_addr)),
        ));
    }
    // SAFETY: `list` came from a successful getifaddrs and is freed once; `entry` references
    // ended with the loop.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    /// A Pi 4 on Raspberry Pi OS: wired (`eth0`, the default route), Wi-Fi up too
    /// (`wlan0`, a second default route with a higher metric), Docker's bridge down, and the
    /// kernel's files as a 6.6 kernel writes them.
    fn pi4_network() -> Tree {
        let tree = Tree::empty();
        let interfaces = [
            ("lo", "1", "0x9", "unknown", "00:00:00:00:00:00"),
            ("eth0", "2", "0x1003", "up", "dc:a6:32:01:02:03"),
            ("wlan0", "3", "0x1003", "up", "dc:a6:32:01:02:04"),
            ("docker0", "4", "0x1002", "down", "02:42:8e:00:00:01"),
            ("wg0", "5", "0x91", "unknown", ""),
        ];
        for (name, index, flags, operstate, address) in interfaces {
            let dir = format!("sys/class/net/{name}");
            tree.write(&format!("{dir}/ifindex"), format!("{index}\n"));
            tree.write(&format!("{dir}/flags"), format!("{flags}\n"));
            tree.write(&format!("{dir}/operstate"), format!("{operstate}\n"));
            tree.write(&format!("{dir}/address"), format!("{address}\n"));
        }
        tree.write(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n\
             eth0\t00000000\t0101A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
             eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
        );
        tree.write(
            "proc/net/if_inet6",
            "fe80000000000000dea632fffe010203 02 40 20 80     eth0\n\
             2a0102d8000000001111222233334444 02 40 00 01     eth0\n\
             2a0102d800000000dea632fffe010203 02 40 00 00     eth0\n\
             fd00000000000000dea632fffe010204 03 40 00 00    wlan0\n\
             00000000000000000000000000000001 01 80 10 80       lo\n",
        );
        tree
    }

    fn ipv4(pairs: &[(&str, &str)]) -> Ipv4Source {
        Ipv4Source::Given(
            pairs
                .iter()
                .map(|(name, a)| ((*name).to_owned(), a.parse().unwrap()))
                .collect(),
        )
    }

    #[test]
    fn reads_a_pi4s_interfaces_addresses_and_default_route() {
        let tree = pi4_network();
        let given = ipv4(&[
            ("lo", "127.0.0.1"),
            ("eth0", "192.168.1.21"),
            ("eth0", "192.168.1.99"),
            ("wlan0", "192.168.1.22"),
        ]);
        let identity = NetworkIdentity::read(tree.root(), given);
        assert_eq!(identity.default_interface.as_deref(), Some("eth0"));
        let eth0 = InterfaceInfo {
            name: "eth0".into(),
            mac: Some("dc:a6:32:01:02:03".into()),
            ipv4: vec!["192.168.1.21".into(), "192.168.1.99".into()],
            // The temporary (privacy) address after the stable one; link-local left out.
            ipv6: vec![
                "2a01:2d8::dea6:32ff:fe01:203".into(),
                "2a01:2d8::1111:2222:3333:4444".into(),
            ],
        };
        let wlan0 = InterfaceInfo {
            name: "wlan0".into(),
            mac: Some("dc:a6:32:01:02:04".into()),
            ipv4: vec!["192.168.1.22".into()],
            ipv6: vec!["fd00::dea6:32ff:fe01:204".into()],
        };
        // Up but without a MAC (WireGuard reports operstate `unknown`); loopback and the
        // down bridge are left out.
        let wg0 = InterfaceInfo {
            name: "wg0".into(),
            ..Default::default()
        };
        assert_eq!(identity.interfaces, vec![eth0, wlan0, wg0]);
    }

    #[test]
    fn at_most_sixteen_addresses_of_a_family_are_listed() {
        let tree = pi4_network();
        let lines: String = (1..=20)
            .map(|i| format!("fd0000000000000000000000000000{i:02x} 02 40 00 00     eth0\n"))
            .collect();
        tree.write("proc/net/if_inet6", lines);
        let many: Vec<(String, Ipv4Addr)> = (1..=20)
            .map(|i| ("eth0".to_owned(), Ipv4Addr::new(10, 0, 0, i)))
            .collect();
        let identity = NetworkIdentity::read(tree.root(), Ipv4Source::Given(many));
        let eth0 = &identity.interfaces[0];
        assert_eq!(eth0.ipv4.len(), MAX_ADDRESSES_PER_INTERFACE);
        assert_eq!(eth0.ipv4[0], "10.0.0.1");
        assert_eq!(eth0.ipv6.len(), MAX_ADDRESSES_PER_INTERFACE);
        assert_eq!(eth0.ipv6[0], "fd00::1");
    }

    #[test]
    fn operstate_decides_when_flags_are_missing() {
        let tree = Tree::empty();
        tree.write("sys/class/net/eth0/operstate", "up\n");
        tree.write("sys/class/net/eth1/operstate", "down\n");
        tree.write("sys/class/net/lo/operstate", "unknown\n");
        let identity = NetworkIdentity::read(tree.root(), ipv4(&[]));
        let names: Vec<&str> = identity
            .interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["eth0"]);
        assert_eq!(identity.interfaces[0].mac, None);
    }

    #[test]
    fn without_an_ipv4_default_the_ipv6_one_counts() {
        let tree = Tree::empty();
        tree.write(
            "proc/net/route",
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
             eth0\t0001A8C0\t00000000\t0001\t0\t0\t100\t00FFFFFF\t0\t0\t0\n",
        );
        tree.write(
            "proc/net/ipv6_route",
            "00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000003 00000000 00000003    wlan0\n\
             00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000064 00000003 00000000 00000003     eth0\n",
        );
        assert_eq!(
            read_default_interface(tree.root()).unwrap().as_deref(),
            Some("eth0")
        );
    }

    #[test]
    fn a_tree_without_network_files_has_no_identity() {
        let tree = Tree::empty();
        let identity = NetworkIdentity::read(tree.root(), Ipv4Source::for_root(tree.root()));
        assert_eq!(identity, NetworkIdentity::default());
    }

    #[test]
    fn garbage_is_an_error_not_an_empty_answer() {
        let tree = Tree::empty();
        tree.write("proc/net/route", "Iface\tDestination\neth0\n");
        tree.write("proc/net/if_inet6", "not an address\n");
        assert!(read_default_interface(tree.root()).is_err());
        assert!(read_if_inet6(tree.root()).is_err());
    }

    #[test]
    fn this_host_has_an_ipv4_address() {
        let addresses = host_ipv4().expect("getifaddrs works");
        assert!(
            addresses
                .iter()
                .any(|(name, a)| name == "lo" && a.is_loopback()),
            "{addresses:?}"
        );
    }
}
