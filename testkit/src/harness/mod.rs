//! The one harness every end-to-end test uses to start a primary and agents.
//!
//! - [`binaries`]: the real `pivitals-primary` and `pivitals-agent` binaries as processes
//!   ([`Proc`]), with an environment and a log file each, signalled like systemd would.
//! - [`in_process`]: the primary's `run(listener, config, shutdown)` on a bound
//!   `127.0.0.1:0` listener inside the test's runtime ([`InProcessPrimary`]), and the state a
//!   router test hands to `pivitals_primary::app` without a socket ([`router_state`]).
//! - [`read`]: polling until a condition holds and reading what a primary or InfluxDB answers.
//!
//! Both ways of starting a primary share the tokens below; payloads come from
//! [`crate::samples`].

pub mod binaries;
pub mod in_process;
pub mod read;

pub use binaries::{
    Proc, command, start_agent, start_agent_with, start_primary, start_primary_on_influx_v1,
    wait_for_stderr_line, workspace_binary,
};
pub use in_process::{InProcessPrimary, router_state};
pub use read::{eventually, get_json, log_fields, metric, node_status, rows};

/// The enrollment token every harness primary is started with and every harness agent uses.
pub const ENROLL: &str = "e2e-enrollment-token-000001";

/// The admin token of in-process primaries (binary primaries get it when a test passes it).
pub const ADMIN: &str = "admin-token-for-tests-00001";
