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
