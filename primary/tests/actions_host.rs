//! Actions on the primary's own host, once per stack, with the real binary: `[actions.host.NAME]`
//! in its settings file, asked with `"primary": true`; the command gets the stack and its nodes
//! in `PIVITALS_STACK` and `PIVITALS_NODES`, its target is `stack:NAME`, a run past its timeout
//! is killed, and each result is an `action` line in the archive. The nodes are registered
//! without agents: a host action needs none.

use std::path::Path;
use std::time::{Duration, Instant};

use pivitals_testkit::actions::{
    WITHIN, archived_action, ask, finished, json_request, register_labelled,
    start_primary_for_actions,
};
use pivitals_testkit::harness::{ADMIN, command};
use serde_json::json;

const SETTINGS: &str = r#"
[actions.host.relay-off]
command = ["sh", "-c", "echo $PIVITALS_STACK $PIVITALS_NODES"]
timeout = "5s"
stacks = ["1", "2"]

[actions.host.hang]
command = ["sh", "-c", "sleep 30 & wait"]
timeout = "500ms"
stacks = "all"
"#;

#[test]
fn a_host_action_runs_once_per_stack_with_its_nodes_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let (mut primary, url) = start_primary_for_actions(dir.path(), SETTINGS, &[]);
    let data_dir = dir.path().join("primary");
    for (name, stack) in [("pi-a", "1"), ("pi-c", "2"), ("pi-b", "2"), ("pi-z", "3")] {
        register_labelled(&url, name, &[("stack", stack)]);
    }

    // One stack: the command sees it and its nodes, sorted.
    let (id, targets) = ask(
        &url,
        &json!({"action": "relay-off", "primary": true, "labels": {"stack": "2"}}),
    );
    assert_eq!(targets, ["stack:2"]);
    let results = finished(&url, &id, WITHIN);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["node"], "stack:2");
    assert_eq!(results[0]["state"], "done", "{}", results[0]);
    assert_eq!(results[0]["output"], "2 pi-b pi-c\n");
    let line = archived_action(&data_dir, &id, "stack:2");
    assert!(
        line.starts_with(
            "action,action=relay-off,node=stack:2,stack=2 state=\"done\",exit_code=0i,duration="
        ),
        "{line}"
    );

    // All: every stack the action is for (not stack 3).
    let (id, targets) = ask(
        &url,
        &json!({"action": "relay-off", "primary": true, "all": true}),
    );
    assert_eq!(targets, ["stack:1", "stack:2"]);
    let outputs: Vec<String> = finished(&url, &id, WITHIN)
        .iter()
        .map(|r| r["output"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outputs, ["1 pi-a\n", "2 pi-b pi-c\n"]);

    // Killed with its whole group at its timeout; "all" here is every stack a node has.
    let asked = Instant::now();
    let (id, targets) = ask(
        &url,
        &json!({"action": "hang", "primary": true, "all": true}),
    );
    assert_eq!(targets, ["stack:1", "stack:2", "stack:3"]);
    let results = finished(&url, &id, WITHIN);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    for result in &results {
        assert_eq!(result["state"], "timed_out", "{result}");
    }
    let line = archived_action(&data_dir, &id, "stack:3");
    assert!(line.contains("state=\"timed_out\""), "{line}");

    // Refused: a stack the action is not for, an action not configured, nodes by name.
    for (body, says) in [
        (
            json!({"action": "relay-off", "primary": true, "labels": {"stack": "3"}}),
            "relay-off",
        ),
        (
            json!({"action": "nope", "primary": true, "labels": {"stack": "1"}}),
            "nope",
        ),
        (
            json!({"action": "relay-off", "primary": true, "nodes": ["pi-a"]}),
            "\"stack\"",
        ),
        (
            json!({"action": "relay-off", "primary": true, "labels": {"stack": "1", "role": "x"}}),
            "\"stack\"",
        ),
    ] {
        let (status, reply) =
            json_request("POST", &format!("{url}/api/v1/actions"), Some(ADMIN), &body);
        assert_eq!(status, 422, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Without "primary", the same name goes to the nodes' agents as before.
    let (_, targets) = ask(
        &url,
        &json!({"action": "relay-off", "labels": {"stack": "1"}}),
    );
    assert_eq!(targets, ["pi-a"]);

    primary.stop_cleanly(Duration::from_secs(10));
}

#[test]
fn a_bad_host_action_table_stops_the_primary_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("primary.toml");
    for (settings, says) in [
        (
            "[actions.host.relay]\ncommand = [\"true\"]\nstacks = [\"1\"]\nshell = true\n",
            "shell",
        ),
        (
            "[actions.host.relay]\ncommand = []\nstacks = [\"1\"]\n",
            "actions.host.relay.command",
        ),
        (
            "[actions.host.relay]\ncommand = [\"true\"]\nstacks = \"some\"\n",
            "\"some\"",
        ),
        (
            "[actions.host.relay]\ncommand = [\"true\"]\nstacks = [\"1\"]\ntimeout = \"2h\"\n",
            "actions.host.relay.timeout",
        ),
    ] {
        std::fs::write(&file, settings).unwrap();
        let output = command(Path::new(env!("CARGO_BIN_EXE_pivitals-primary")))
            .env("PIVITALS_DATA_DIR", dir.path().join("data"))
            .args(["check-config", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(!output.status.success(), "{settings}: {stdout}{stderr}");
        assert!(
            stderr.contains(says) || stdout.contains(says),
            "{settings}: {stdout}{stderr}"
        );
    }
}
