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
}

/// `POST /api/v1/goodbye`, authorised by the node token: the agent is stopping on purpose.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Goodbye {
    #[serde(default)]
    pub reason: Option<String>,
}
