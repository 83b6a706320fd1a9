//! Facts about the host's operating system: hostname, OS name and version, kernel and
//! architecture, from sysinfo.

use sysinfo::System;

/// Hostname, OS, OS version, kernel and architecture of the running host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostFacts {
    pub(crate) hostname: String,
    pub(crate) os: String,
    pub(crate) os_version: String,
    pub(crate) kernel: String,
    pub(crate) arch: String,
}

impl HostFacts {
    /// Reads the facts; one that cannot be read is empty, with a warning.
    pub(crate) fn read() -> Self {
        Self {
            hostname: or_warn("hostname", System::host_name()),
            os: or_warn("os", System::name()),
            os_version: or_warn("os version", System::os_version()),
            kernel: or_warn("kernel", System::kernel_version()),
            // The machine's architecture (`aarch64` on a Pi with a 32-bit userland too), or
            // the one this binary was built for.
            arch: System::cpu_arch(),
        }
    }
}

fn or_warn(fact: &'static str, value: Result<String, sysinfo::Error>) -> String {
    value.unwrap_or_else(|error| {
        tracing::warn!(fact, "{fact} unknown: {error}");
        String::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_linux_host_has_a_name_kernel_and_arch() {
        let facts = HostFacts::read();
        assert!(!facts.hostname.is_empty(), "{facts:?}");
        assert!(!facts.kernel.is_empty(), "{facts:?}");
        assert!(!facts.arch.is_empty(), "{facts:?}");
    }
}
