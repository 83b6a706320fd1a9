//! Request and reply bodies of the agent ↔ primary HTTP API.

use serde::{Deserialize, Serialize};

use crate::vitals::{Labels, NodeInfo, VitalsPayload};

/// `POST /api/v1/register`, authorised by the enrollment token.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub node_name: String,
    pub info: NodeInfo,
    #[serde(default)]
    pub labels: Labels,
    /// How often the agent pushes; the primary judges liveness from it.
    pub interval_seconds: u64,
    /// The board the agent runs on, read once at its start. Absent from agents older than this
    /// field (and left out when nothing could be read); a primary older than it ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareIdentity>,
}

/// What identifies the machine itself rather than its installation, so that a re-flashed
/// board (a new SD card, the same board) can prove it is the board that registered a name.
///
/// Neither part is a secret: a Pi's serial is also in [`NodeInfo::board_serial`]. Each is
/// optional and serde-defaulted, so either side may leave it out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HardwareIdentity {
    /// The board's own serial, which a re-flash keeps: a Raspberry Pi's SoC serial
    /// (`/proc/device-tree/serial-number`, else the `Serial` line of `/proc/cpuinfo`), or a
    /// PC's DMI product UUID (`/sys/class/dmi/id/product_uuid`, readable by root only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    /// A hash (hex SHA-256, specific to pivitals) of `/etc/machine-id`, never the ID itself,
    /// which machine-id(5) asks to keep confidential. It is new with every installation, so it
    /// recognises a board only as long as its system is not re-flashed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
}

impl HardwareIdentity {
    /// Longest serial or machine-id hash the primary accepts, in bytes.
    pub const MAX_LEN: usize = 128;

    /// Whether nothing identifies the board.
    pub fn is_empty(&self) -> bool {
        self.serial.is_none() && self.machine_id.is_none()
    }

    /// The first part that is empty, longer than [`Self::MAX_LEN`] or not printable ASCII,
    /// as `hardware.serial` or `hardware.machine_id` with the reason.
    pub fn invalid_part(&self) -> Option<String> {
        [("serial", &self.serial), ("machine_id", &self.machine_id)]
            .into_iter()
            .find_map(|(field, value)| {
                let value = value.as_deref()?;
                let why = if value.is_empty() {
                    "is empty"
                } else if value.len() > Self::MAX_LEN {
                    "is longer than 128 bytes"
                } else if !value.bytes().all(|b| b.is_ascii_graphic()) {
                    "must be printable ASCII without spaces"
                } else {
                    return None;
                };
                Some(format!("hardware.{field} {why}"))
            })
    }
}

/// The reply to a registration: the node's own token for every later call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterReply {
    pub node_name: String,
    pub node_token: String,
}

/// `POST /api/v1/vitals`, authorised by the node token: samples oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct VitalsPush {
    pub samples: Vec<VitalsPayload>,
    /// The node's facts, sent when they changed since the agent registered or last sent them
    /// (a new address after a DHCP renewal, a kernel upgrade); the primary keeps the newest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub info: Option<NodeInfo>,
}

/// The reply to a push: the samples are durable on the primary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushReply {
    /// Samples taken from the push: all of them.
    pub accepted: u64,
    /// Line-protocol points those samples made. Defaults to 0 when absent, so a reply of only
    /// `{"accepted": N}` still reads.
    #[serde(default)]
    pub points: u64,
}

/// `POST /api/v1/goodbye`, authorised by the node token: the agent is stopping on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Goodbye {
    #[serde(default)]
    pub reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(hardware: Option<HardwareIdentity>) -> RegisterRequest {
        RegisterRequest {
            node_name: "pi-1".into(),
            info: NodeInfo::default(),
            labels: Labels::new(),
            interval_seconds: 60,
            hardware,
        }
    }

    #[test]
    fn a_registration_without_hardware_reads_and_writes_as_before() {
        let json = serde_json::to_value(request(None)).unwrap();
        assert!(json.get("hardware").is_none(), "{json}");
        let old = serde_json::json!({
            "node_name": "pi-1", "info": json["info"].clone(), "interval_seconds": 60
        });
        assert_eq!(
            serde_json::from_value::<RegisterRequest>(old).unwrap(),
            request(None)
        );
    }

    #[test]
    fn hardware_round_trips_and_leaves_out_what_is_unknown() {
        let serial_only = HardwareIdentity {
            serial: Some("10000000a1b2c3d4".into()),
            machine_id: None,
        };
        let json = serde_json::to_value(request(Some(serial_only.clone()))).unwrap();
        assert_eq!(
            json["hardware"],
            serde_json::json!({"serial": "10000000a1b2c3d4"})
        );
        let back: RegisterRequest = serde_json::from_value(json).unwrap();
        assert_eq!(back.hardware, Some(serial_only));
        let empty: HardwareIdentity = serde_json::from_str("{}").unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn invalid_hardware_parts_are_named() {
        let with = |serial: &str| HardwareIdentity {
            serial: Some(serial.into()),
            machine_id: Some("ab".repeat(32)),
        };
        assert_eq!(with("10000000a1b2c3d4").invalid_part(), None);
        assert_eq!(
            with("").invalid_part().as_deref(),
            Some("hardware.serial is empty")
        );
        assert!(with("a b").invalid_part().unwrap().contains("printable"));
        assert!(
            with(&"x".repeat(129))
                .invalid_part()
                .unwrap()
                .contains("128")
        );
        let long_hash = HardwareIdentity {
            serial: None,
            machine_id: Some("0".repeat(200)),
        };
        assert!(
            long_hash
                .invalid_part()
                .unwrap()
                .starts_with("hardware.machine_id")
        );
    }

    #[test]
    fn push_replies_read_and_write_both_fields() {
        let reply = PushReply {
            accepted: 2,
            points: 4,
        };
        let json = serde_json::to_value(reply).unwrap();
        assert_eq!(json, serde_json::json!({"accepted": 2, "points": 4}));
        assert_eq!(serde_json::from_value::<PushReply>(json).unwrap(), reply);
        let short: PushReply = serde_json::from_str(r#"{"accepted": 3}"#).unwrap();
        assert_eq!(
            short,
            PushReply {
                accepted: 3,
                points: 0
            }
        );
        assert!(serde_json::from_str::<PushReply>(r#"{"points": 3}"#).is_err());
    }
}
