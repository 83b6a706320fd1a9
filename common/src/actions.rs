//! Actions: what the primary may ask a node to do, and the node's answer.
//!
//! The primary sends only an action's name ([`ActionRequest`]); the node runs it only if its own
//! settings define it, and answers with an [`ActionResult`]. These are the wire types and the
//! rule for an action's name; running an action is the agent's business.

use serde::{Deserialize, Serialize};

/// The most output (stdout and stderr together) an [`ActionResult`] carries; the rest is read
/// and discarded, and the result says [`truncated`](ActionResult::truncated).
pub const MAX_ACTION_OUTPUT: usize = 64 * 1024;

/// The longest action name, in bytes.
pub const MAX_ACTION_NAME: usize = 32;

/// The names of the built-in actions; a node's own commands may not use them.
pub const BUILTIN_ACTIONS: &[&str] = &["ping", "reboot", "shutdown"];

/// What the primary hands an agent: the action's name, never a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionRequest {
    /// Chosen by the primary; the result carries it back.
    pub id: String,
    /// The name of an action in the node's settings (or a built-in one).
    pub action: String,
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
        };
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(json, r#"{"id":"a2","action":"hello"}"#);
        assert_eq!(
            serde_json::from_str::<ActionRequest>(&json).unwrap(),
            request
        );
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
