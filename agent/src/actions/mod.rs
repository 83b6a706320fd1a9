//! Actions: the few things the primary may ask this node to do, each named in the node's own
//! settings.
//!
//! A request ([`ActionRequest`](pivitals_common::actions::ActionRequest)) carries only a name;
//! [`Actions::run`] answers it with an
//! [`ActionResult`](pivitals_common::actions::ActionResult):
//!
//! | name                  | runs                                    | state                      |
//! |-----------------------|-----------------------------------------|----------------------------|
//! | `ping`                | nothing; output `pong: up N s`, the host's uptime | `done`           |
//! | `reboot`, `shutdown`  | `[actions] reboot_command` / `shutdown_command`, only with `allow_power`; started and not awaited | `accepted`, or `refused` without `allow_power` |
//! | `[actions.NAME]`      | its `command`, argv without a shell     | `done` (exit 0), `failed`, `timed_out` |
//! | `update`              | only with `allow_update`: downloads the binary the request names from the primary, checks its SHA-256 (and, with `update_public_key`, its Ed25519 signature), replaces the executable ([`update`](UpdateStart)); the agent then exits with [`UPDATE_EXIT_CODE`] | `accepted`, `done` if already running it, `failed`, or `refused` without `allow_update` |
//! | anything else         | nothing                                 | `refused`                  |
//!
//! **Architecture Invariant:** the primary can never make a node run something the node's
//! settings do not name. A request holds a name, never a program or an argument, and the name
//! is only looked up, never interpreted. The one exception is opt-in: with `allow_update`, the
//! node lets the primary replace the agent itself, and then only with a binary downloaded from
//! that same primary (`update`'s `url` is a path under `primary_url`) whose SHA-256 matches.
//!
//! A command runs through [`pivitals_exec::run_action`]: in a process group of its own with
//! stdin from `/dev/null`; stdout and stderr read together as they come, the first
//! [`MAX_ACTION_OUTPUT`](pivitals_common::actions::MAX_ACTION_OUTPUT) bytes kept and the rest
//! read and discarded (`truncated`), so a chatty command never blocks on a full pipe. The action
//! ends when the process has exited and both pipes are closed, so a background child that keeps
//! them open counts as part of it. Past its `timeout` the whole group is killed with `SIGKILL`
//! and the answer is `timed_out` with the output read so far.
//!
//! `reboot` and `shutdown` answer `accepted` before the node goes away: their command is started
//! in its own process group, watched for [`POWER_START_CHECK`] (a quick non-zero exit, such as
//! `systemctl` refusing, answers `failed`), then left running. [`Actions::answer`] hands an
//! allowed power action back unstarted ([`Answer::Power`]) so that the agent reports `accepted`
//! to the primary before starting it.
//!
//! - `runner.rs`: [`Actions`], the lookup and the built-in actions; the command itself runs in
//!   `pivitals-exec`, the runner the primary's host actions share.
//! - `update.rs`: [`UpdateStart`], the download, check and atomic replacement of `update`.

mod runner;
mod update;

pub use runner::{Actions, Answer, POWER_START_CHECK, PowerStart};
pub use update::{DOWNLOAD_TIMEOUT, MAX_BINARY, UPDATE_EXIT_CODE, UpdateStart, sha256_of};
