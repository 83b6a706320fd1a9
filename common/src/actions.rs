//! Actions: what the primary may ask a node to do, and the node's answer.
//!
//! The primary sends only an action's name ([`ActionRequest`]); the node runs it only if its own
//! settings define it, and answers with an [`ActionResult`]. The built-in [`UPDATE_ACTION`]
//! also names the agent binary to install ([`UpdateRequest`]), which a node runs only when its
//! settings allow updates. These are the wire types and the rule for an action's name; running
//! a command is `pivitals-exec`'s (for the agent, and for the primary's actions on its host).

use serde::{Deserialize, Serialize};

/// The most output (stdout and stderr together) an [`ActionResult`] carries; the rest is read
/// and discarded, and the result says [`truncated`](ActionResult::truncated).
pub const MAX_ACTION_OUTPUT: usize = 64 * 1024;

/// The longest action name, in bytes.
pub const MAX_ACTION_NAME: usize = 32;

/// The names of the built-in actions; a node's own commands may not use them.
pub const BUILTIN_ACTIONS: &[&str] = &["ping", "reboot", "shutdown", UPDATE_ACTION];

/// The built-in action that replaces the agent's binary with the one the primary serves.
pub const UPDATE_ACTION: &str = "update";

/// The exit code of an agent that replaced its own binary and stops to be started again (by
/// systemd: the units list it in `RestartForceExitStatus=`). EX_TEMPFAIL of `sysexits.h`.
pub const UPDATE_EXIT_CODE: u8 = 75;

/// What the primary hands an agent: the action's name, never a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// Chosen by the primary; the result carries it back.
    pub id: String,
    /// The name of an action in the node's settings (or a built-in one).
    pub action: String,
    /// The binary an [`UPDATE_ACTION`] installs; absent for every other action (and left out
    /// of the JSON, so older agents read the request as before).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateRequest>,
}

/// Which binary an `update` installs: the agent downloads `url` from its own primary and
/// refuses bytes whose SHA-256 is not `sha256`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateRequest {
    /// Relative to the primary's URL (`agent/aarch64`); the agent never fetches elsewhere.
    pub url: String,
    /// Lower-case hex SHA-256 of the binary.
    pub sha256: String,
    /// Only check: `done` when the running agent was started from a binary with this SHA-256,
    /// `failed` otherwise; nothing is downloaded. The primary asks this after a restart.
    #[serde(default)]
    pub verify_only: bool,
}

/// How an action ended, as JSON in lower case (`"done"`, `"timed_out"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionState {
    /// Ran and exited with 0.
    Done,
    /// Could not start, or exited with another code or by a signal.
    Failed,
    /// The node does not run this action (not defined, or not allowed).
    Refused,
    /// Started and not awaited: reboot and shutdown answer before the node goes away.
    Accepted,
    /// Ran past its timeout; its process group was killed.
    TimedOut,
}

/// The node's answer to an [`ActionRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// The request's id.
    pub id: String,
    pub state: ActionState,
    /// The process's exit code; None if it did not run or was ended by a signal.
    pub exit_code: Option<i32>,
    /// Stdout and stderr as they came, at most [`MAX_ACTION_OUTPUT`] bytes (invalid UTF-8
    /// replaced).
    pub output: String,
    /// Whether output beyond [`MAX_ACTION_OUTPUT`] was discarded.
    pub truncated: bool,
    /// From the request's arrival at the node to its answer.
    pub duration_ms: u64,
    /// Why it was refused or failed, in words for the operator.
    pub message: Option<String>,
}

/// Whether `name` may name an action: `^[a-z][a-z0-9_-]{0,31}$` (`hello`, `apt-upgrade`).
pub fn is_valid_action_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    matches!(bytes.first(), Some(b) if b.is_ascii_lowercase())
        && bytes.len() <= MAX_ACTION_NAME
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_result_travels_as_json_and_back() {
        let result = ActionResult {
            id: "a1".into(),
            state: ActionState::TimedOut,
            exit_code: None,
            output: "partial\n".into(),
            truncated: true,
            duration_ms: 1500,
            message: Some("killed after 1s".into()),
        };
        let json = serde_json::to_string(&result).unwrap();
        assert!(json.contains(r#""state":"timed_out""#), "{json}");
        assert_eq!(serde_json::from_str::<ActionResult>(&json).unwrap(), result);

        let request = ActionRequest {
            id: "a2".into(),
            action: "hello".into(),
            update: None,
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"id":"a2","action":"hello"}"#);
        assert_eq!(
            serde_json::from_str::<ActionRequest>(&json).unwrap(),
            request
        );
    }

    #[test]
    fn an_update_request_carries_its_binary_and_old_requests_still_read() {
        let request = ActionRequest {
            id: "u1".into(),
            action: UPDATE_ACTION.into(),
            update: Some(UpdateRequest {
                url: "agent/aarch64".into(),
                sha256: "ab".repeat(32),
                verify_only: false,
            }),
        };
        let json = serde_json::to_string(&request).unwrap();
        assert!(json.contains(r#""url":"agent/aarch64""#), "{json}");
        assert_eq!(
            serde_json::from_str::<ActionRequest>(&json).unwrap(),
            request
        );
        let old: ActionRequest = serde_json::from_str(r#"{"id":"a","action":"ping"}"#).unwrap();
        assert_eq!(old.update, None);
    }

    #[test]
    fn states_are_lower_case_in_json() {
        for (state, name) in [
            (ActionState::Done, "done"),
            (ActionState::Failed, "failed"),
            (ActionState::Refused, "refused"),
            (ActionState::Accepted, "accepted"),
            (ActionState::TimedOut, "timed_out"),
        ] {
            assert_eq!(
                serde_json::to_string(&state).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                serde_json::from_str::<ActionState>(&format!("\"{name}\"")).unwrap(),
                state
            );
        }
        assert!(serde_json::from_str::<ActionState>("\"Done\"").is_err());
    }

    #[test]
    fn action_names() {
        for good in ["hello", "apt-upgrade", "x", "a_b-2", &"a".repeat(32)] {
            assert!(is_valid_action_name(good), "{good}");
        }
        for bad in [
            "",
            "Hello",
            "-x",
            "2x",
            "a b",
            "a.b",
            "sh;rm",
            &"a".repeat(33),
        ] {
            assert!(!is_valid_action_name(bad), "{bad}");
        }
    }
}
