//! Sampling the host: one module per metric family; a family that fails is left out of the
//! sample with a warning, never a crash.

use std::path::PathBuf;

use pivitals_common::{NodeInfo, VitalsPayload};

/// Samples one host. Keep one alive between samples: CPU usage is measured between refreshes.
pub struct Collector {
    /// Root under which `proc/` and `sys/` are read: `/` on a real host, a fixture tree in tests.
    root: PathBuf,
}

impl Collector {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Facts that rarely change, sent at registration.
    pub fn node_info(&mut self) -> NodeInfo {
        let _ = &self.root;
        NodeInfo::default()
    }

    /// One sample, stamped with the current time.
    pub fn sample(&mut self) -> VitalsPayload {
        VitalsPayload::default()
    }
}
