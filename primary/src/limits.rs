//! Abuse limits that are not plain validation: the per-node push rate (a token bucket), the
//! caps on what one sample may list, and on the size of a node's info ([`over_info_cap`]).
//!
//! Each node has a bucket of `push_burst` tokens; a push takes one, and one comes back every
//! `push_refill`. Requests are counted, not samples, so an agent catching up (500 samples per
//! push) is slowed only when it sends more than the refill allows after its burst, and then
//! it is told when to come back (429 with `Retry-After`). Buckets live with the node in the
//! [`Nodes`](crate::nodes::table::Nodes) table, so one node's bucket never affects another.

use std::time::{Duration, Instant};

use pivitals_common::{NodeInfo, VitalsPayload};

use serde::Deserialize;

use crate::serde_duration::duration;

/// Abuse limits (`PIVITALS_LIMITS__*`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Pushes a node may send back to back (`PIVITALS_LIMITS__PUSH_BURST`): the size of its
    /// token bucket. Requests are counted, not samples: one push carries up to 500 samples, so
    /// an agent catching up is never starved.
    pub push_burst: u32,
    /// One more push is allowed every this long, up to the burst (`PIVITALS_LIMITS__PUSH_REFILL`).
    #[serde(deserialize_with = "duration")]
    pub push_refill: Duration,
    /// Registered nodes; registering one more answers 429 (`PIVITALS_LIMITS__MAX_NODES`).
    pub max_nodes: usize,
    /// Disks per sample (`PIVITALS_LIMITS__MAX_DISKS`).
    pub max_disks: usize,
    /// Network interfaces per sample (`PIVITALS_LIMITS__MAX_INTERFACES`).
    pub max_interfaces: usize,
    /// Temperature sensors per sample (`PIVITALS_LIMITS__MAX_SENSORS`).
    pub max_sensors: usize,
    /// Time a request may take from its headers to its answer, body included; a slower
    /// client is answered 408 and cut off (`PIVITALS_LIMITS__REQUEST_TIMEOUT`).
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Time a client has to send a request's line and headers; a slower one, or an idle
    /// kept-alive connection, is closed (`PIVITALS_LIMITS__HEADER_TIMEOUT`).
    #[serde(deserialize_with = "duration")]
    pub header_timeout: Duration,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            push_burst: 10,
            push_refill: Duration::from_secs(1),
            max_nodes: 10_000,
            max_disks: 64,
            max_interfaces: 64,
            max_sensors: 64,
            request_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(30),
        }
    }
}

/// A token bucket, refilled continuously.
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    updated: Option<Instant>,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            tokens: f64::INFINITY,
            updated: None,
        }
    }
}

impl Bucket {
    /// Takes one token at `now`; when there is none, how long until there is.
    pub fn take(&mut self, now: Instant, burst: u32, refill: Duration) -> Result<(), Duration> {
        let burst = f64::from(burst.max(1));
        let refill = refill.as_secs_f64().max(1e-6);
        let elapsed = self.updated.map_or(0.0, |then| {
            now.saturating_duration_since(then).as_secs_f64()
        });
        self.tokens = (self.tokens + elapsed / refill).min(burst);
        self.updated = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) * refill))
        }
    }
}

/// The first list of `sample` that is longer than its cap, as a message for the client.
pub fn over_cap(limits: &LimitsConfig, sample: &VitalsPayload) -> Option<String> {
    [
        ("disks", sample.disks.len(), limits.max_disks),
        ("disk_io", sample.disk_io.len(), limits.max_disks),
        (
            "storage_health",
            sample.storage_health.len(),
            limits.max_disks,
        ),
        ("networks", sample.networks.len(), limits.max_interfaces),
        (
            "temperatures",
            sample.temperatures.len(),
            limits.max_sensors,
        ),
    ]
    .into_iter()
    .find(|(_, len, cap)| len > cap)
    .map(|(what, len, cap)| format!("{what}: at most {cap} per sample, got {len}"))
}

pub use pivitals_common::limits::{MAX_ADDRESSES_PER_INTERFACE, MAX_INFO_STRING_BYTES};

/// The first part of a node's `info` (sent at registration or with a push) that is too large,
/// as a message naming the field (`info.interfaces[1].ipv6`); the interfaces are capped by
/// `max_interfaces`, like a sample's.
pub fn over_info_cap(limits: &LimitsConfig, info: &NodeInfo) -> Option<String> {
    let too_long = |field: &str, value: &str| {
        (value.len() > MAX_INFO_STRING_BYTES).then(|| {
            format!(
                "info.{field}: at most {MAX_INFO_STRING_BYTES} bytes, got {}",
                value.len()
            )
        })
    };
    let strings = [
        ("hostname", Some(&info.hostname)),
        ("os", Some(&info.os)),
        ("os_version", Some(&info.os_version)),
        ("kernel", Some(&info.kernel)),
        ("arch", Some(&info.arch)),
        ("cpu_model", Some(&info.cpu_model)),
        ("board_model", info.board_model.as_ref()),
        ("agent_version", Some(&info.agent_version)),
        ("board_serial", info.board_serial.as_ref()),
        ("default_interface", info.default_interface.as_ref()),
    ];
    if let Some(message) = strings
        .into_iter()
        .find_map(|(field, value)| too_long(field, value?))
    {
        return Some(message);
    }
    let cap = limits.max_interfaces;
    if info.interfaces.len() > cap {
        return Some(format!(
            "info.interfaces: at most {cap}, got {}",
            info.interfaces.len()
        ));
    }
    for (i, interface) in info.interfaces.iter().enumerate() {
        let field = |name: &str| format!("interfaces[{i}].{name}");
        let scalars = [
            ("name", Some(&interface.name)),
            ("mac", interface.mac.as_ref()),
        ];
        if let Some(message) = scalars
            .into_iter()
            .find_map(|(name, value)| too_long(&field(name), value?))
        {
            return Some(message);
        }
        for (name, addresses) in [("ipv4", &interface.ipv4), ("ipv6", &interface.ipv6)] {
            if addresses.len() > MAX_ADDRESSES_PER_INTERFACE {
                return Some(format!(
                    "info.{}: at most {MAX_ADDRESSES_PER_INTERFACE} addresses per interface, got {}",
                    field(name),
                    addresses.len()
                ));
            }
            if let Some(message) = addresses.iter().find_map(|a| too_long(&field(name), a)) {
                return Some(message);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_refill() {
        let start = Instant::now();
        let refill = Duration::from_secs(2);
        let mut bucket = Bucket::default();
        for _ in 0..3 {
            bucket.take(start, 3, refill).unwrap();
        }
        let wait = bucket.take(start, 3, refill).unwrap_err();
        assert_eq!(wait, refill);
        let later = start + Duration::from_secs(1);
        let wait = bucket.take(later, 3, refill).unwrap_err();
        assert_eq!(wait, Duration::from_secs(1));
        bucket.take(start + refill, 3, refill).unwrap();
        assert!(bucket.take(start + refill, 3, refill).is_err());
        // A long pause refills up to the burst, not beyond.
        let much_later = start + Duration::from_secs(3600);
        for _ in 0..3 {
            bucket.take(much_later, 3, refill).unwrap();
        }
        assert!(bucket.take(much_later, 3, refill).is_err());
    }

    #[test]
    fn caps_name_the_list_that_is_too_long() {
        let limits = LimitsConfig {
            max_disks: 1,
            ..LimitsConfig::default()
        };
        let mut sample = VitalsPayload::default();
        assert_eq!(over_cap(&limits, &sample), None);
        sample.disks = vec![Default::default(); 2];
        let message = over_cap(&limits, &sample).unwrap();
        assert!(message.starts_with("disks: at most 1"), "{message}");
        sample.disks.clear();
        sample.disk_io = vec![Default::default(); 2];
        let message = over_cap(&limits, &sample).unwrap();
        assert!(message.starts_with("disk_io: at most 1"), "{message}");
    }

    #[test]
    fn info_caps_name_the_field_that_is_too_large() {
        use pivitals_common::InterfaceInfo;
        let limits = LimitsConfig {
            max_interfaces: 2,
            ..LimitsConfig::default()
        };
        let mut info = NodeInfo {
            hostname: "pi-01".into(),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
                ipv4: vec!["192.168.1.21".into()],
                ..Default::default()
            }],
            ..Default::default()
        };
        assert_eq!(over_info_cap(&limits, &info), None);
        info.board_serial = Some("x".repeat(MAX_INFO_STRING_BYTES + 1));
        let message = over_info_cap(&limits, &info).unwrap();
        assert!(
            message.starts_with("info.board_serial: at most 256 bytes"),
            "{message}"
        );
        info.board_serial = None;
        info.interfaces[0].ipv6 = vec!["fd00::1".into(); MAX_ADDRESSES_PER_INTERFACE + 1];
        let message = over_info_cap(&limits, &info).unwrap();
        assert!(
            message.starts_with("info.interfaces[0].ipv6: at most 16"),
            "{message}"
        );
        info.interfaces[0].ipv6.clear();
        info.interfaces[0].mac = Some("m".repeat(300));
        let message = over_info_cap(&limits, &info).unwrap();
        assert!(message.starts_with("info.interfaces[0].mac:"), "{message}");
        info.interfaces = vec![InterfaceInfo::default(); 3];
        let message = over_info_cap(&limits, &info).unwrap();
        assert_eq!(message, "info.interfaces: at most 2, got 3");
    }
}
