//! Actions on the primary's own host, once per stack, with the real binary: `[actions.host.NAME]`
//! in its settings file, asked with `"primary": true`; the command gets the stack and its nodes
//! in `PIVITALS_STACK` and `PIVITALS_NODES`, its target is `stack:NAME`, a run past its timeout
//! is killed, and each result is an `action` line in the archive. The nodes are registered
//! without agents: a host action needs none.

use std::path::Path;
use std::time::{Duration, Instant};

use pivitals_testkit::harness::binaries::start_primary_with_config;
use pivitals_testkit::harness::{ADMIN, ENROLL, command, eventually};
use pivitals_testkit::samples::register_request;
use pivitals_testkit::{free_port, http};
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(30);

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

fn json_request(method: &str, url: &str, body: &Value) -> (u16, Value) {
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    let response = http::request(method, url, &headers, &bytes)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

fn register(url: &str, name: &str, stack: &str) {
    let mut request = register_request(name);
    request.labels = [("stack".to_string(), stack.to_string())].into();
    let auth = format!("Bearer {ENROLL}");
    let response = http::request(
        "POST",
        &format!("{url}/api/v1/register"),
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        &serde_json::to_vec(&request).unwrap(),
    )
    .expect("POST /api/v1/register");
    assert_eq!(response.status, 200, "{}", response.text());
}

/// Asks `body`, asserts 202; the id and the targets.
fn ask(url: &str, body: Value) -> (String, Vec<String>) {
    let (status, reply) = json_request("POST", &format!("{url}/api/v1/actions"), &body);
    assert_eq!(status, 202, "{body}: {reply}");
    let targets = reply["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (reply["id"].as_str().unwrap().to_owned(), targets)
}

/// The results of `id` once none is queued or sent.
fn finished(url: &str, id: &str) -> Vec<Value> {
    eventually(&format!("every result of {id}"), WITHIN, || {
        let (status, body) =
            json_request("GET", &format!("{url}/api/v1/actions/{id}"), &Value::Null);
        assert_eq!(status, 200, "{body}");
        let results = body["results"].as_array().unwrap().clone();
        results
            .iter()
            .all(|r| !matches!(r["state"].as_str(), Some("queued" | "sent")))
            .then_some(results)
    })
}

fn archived_line(data_dir: &Path, id: &str, node: &str) -> String {
    let (id, node) = (format!("id=\"{id}\""), format!(",node={node},"));
    eventually("the action line", WITHIN, || {
        let entries = std::fs::read_dir(data_dir.join("archive")).ok()?;
        entries
            .map_while(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "lp"))
            .flat_map(|e| {
                std::fs::read_to_string(e.path())
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .find(|l| l.starts_with("action,") && l.contains(&id) && l.contains(&node))
    })
}

#[test]
fn a_host_action_runs_once_per_stack_with_its_nodes_and_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_with_config(
        dir.path(),
        port,
        SETTINGS,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ],
    );
    register(&url, "pi-a", "1");
    register(&url, "pi-c", "2");
    register(&url, "pi-b", "2");
    register(&url, "pi-z", "3");

    // One stack: the command sees it and its nodes, sorted.
    let (id, targets) = ask(
        &url,
        json!({"action": "relay-off", "primary": true, "labels": {"stack": "2"}}),
    );
    assert_eq!(targets, ["stack:2"]);
    let results = finished(&url, &id);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["node"], "stack:2");
    assert_eq!(results[0]["state"], "done", "{}", results[0]);
    assert_eq!(results[0]["output"], "2 pi-b pi-c\n");
    let line = archived_line(&dir.path().join("primary"), &id, "stack:2");
    assert!(
        line.starts_with(
            "action,action=relay-off,node=stack:2,stack=2 state=\"done\",exit_code=0i,duration="
        ),
        "{line}"
    );

    // All: every stack the action is for (not stack 3).
    let (id, targets) = ask(
        &url,
        json!({"action": "relay-off", "primary": true, "all": true}),
    );
    assert_eq!(targets, ["stack:1", "stack:2"]);
    let outputs: Vec<String> = finished(&url, &id)
        .iter()
        .map(|r| r["output"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(outputs, ["1 pi-a\n", "2 pi-b pi-c\n"]);

    // Killed with its whole group at its timeout; "all" here is every stack a node has.
    let asked = Instant::now();
    let (id, targets) = ask(
        &url,
        json!({"action": "hang", "primary": true, "all": true}),
    );
    assert_eq!(targets, ["stack:1", "stack:2", "stack:3"]);
    let results = finished(&url, &id);
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    for result in &results {
        assert_eq!(result["state"], "timed_out", "{result}");
    }
    let line = archived_line(&dir.path().join("primary"), &id, "stack:3");
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
        let (status, reply) = json_request("POST", &format!("{url}/api/v1/actions"), &body);
        assert_eq!(status, 422, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Without "primary", the same name goes to the nodes' agents as before.
    let (_, targets) = ask(
        &url,
        json!({"action": "relay-off", "labels": {"stack": "1"}}),
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
