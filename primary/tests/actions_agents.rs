//! Actions end to end with the real binaries: a `pivitals-primary` (embedded archive, no
//! InfluxDB) with an admin token, and three `pivitals-agent`s (`stack=1`, `stack=2`,
//! `stack=2`) whose settings file (`--config`) defines `hello` (`echo hi`) and `slow`
//! (`sleep 30` with a 1 s timeout). The admin queues actions over the API; the agents
//! long-poll for them, run them and post their results. Power actions are only tested refused:
//! no agent here sets `PIVITALS_ACTIONS__ALLOW_POWER`.

use std::path::Path;
use std::time::{Duration, Instant};

use pivitals_testkit::harness::{ADMIN, ENROLL, Proc, eventually, start_primary, workspace_binary};
use pivitals_testkit::{free_port, http};
use serde_json::{Value, json};

/// Every wait is bounded by this, unless a test says less.
const WITHIN: Duration = Duration::from_secs(30);

const AGENT_SETTINGS: &str = r#"
[actions.hello]
command = ["echo", "hi"]

[actions.slow]
command = ["sleep", "30"]
timeout = "1s"
"#;

/// The agents: name and `stack` label.
const NODES: [(&str, &str); 3] = [("act-1", "1"), ("act-2a", "2"), ("act-2b", "2")];

fn json_request(method: &str, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
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

fn start_agent(dir: &Path, name: &str, stack: &str, url: &str, settings: &Path) -> Proc {
    let env = [
        ("PIVITALS_PRIMARY_URL", url.to_owned()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", name.to_owned()),
        ("PIVITALS_INTERVAL", "1s".to_owned()),
        ("PIVITALS_START_JITTER", "false".to_owned()),
        ("PIVITALS_LABELS", format!("stack={stack}")),
        ("PIVITALS_STATE_DIR", dir.join(name).display().to_string()),
    ];
    Proc::spawn_with_args(
        name,
        &workspace_binary("pivitals-agent"),
        &["--config".as_ref(), settings.as_os_str()],
        &env,
        dir,
    )
}

/// Queues `body` with the admin token, asserts 202; the id and the targets.
fn queue(url: &str, body: Value) -> (String, Vec<String>) {
    let (status, reply) =
        json_request("POST", &format!("{url}/api/v1/actions"), Some(ADMIN), &body);
    assert_eq!(status, 202, "{reply}");
    let mut targets: Vec<String> = reply["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    targets.sort();
    (reply["id"].as_str().unwrap().to_owned(), targets)
}

fn show(url: &str, id: &str) -> Value {
    let (status, body) = json_request(
        "GET",
        &format!("{url}/api/v1/actions/{id}"),
        Some(ADMIN),
        &Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits (at most `within`) until every target of `id` has a result in a final state; the
/// results by node.
fn finished(url: &str, id: &str, within: Duration) -> Vec<Value> {
    eventually(&format!("every result of {id}"), within, || {
        let body = show(url, id);
        let results = body["results"].as_array().unwrap().clone();
        results
            .iter()
            .all(|r| {
                matches!(
                    r["state"].as_str(),
                    Some("done" | "failed" | "refused" | "accepted" | "timed_out")
                )
            })
            .then_some(results)
    })
}

fn nodes_of(results: &[Value]) -> Vec<String> {
    let mut nodes: Vec<String> = results
        .iter()
        .map(|r| r["node"].as_str().unwrap().to_owned())
        .collect();
    nodes.sort();
    nodes
}

#[test]
fn real_agents_run_named_actions_and_refuse_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let settings = dir.path().join("agent.toml");
    std::fs::write(&settings, AGENT_SETTINGS).unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ],
    );
    let mut agents: Vec<Proc> = NODES
        .iter()
        .map(|(name, stack)| start_agent(dir.path(), name, stack, &url, &settings))
        .collect();
    let logs = |agents: &[Proc]| {
        let mut text = String::new();
        for agent in agents {
            text.push_str(&format!("\n--- {}:\n{}", agent.pid(), agent.log_tail()));
        }
        text
    };
    for (name, _) in NODES {
        eventually(&format!("{name} registered"), WITHIN, || {
            dir.path()
                .join(name)
                .join("credential.json")
                .exists()
                .then_some(())
        });
    }

    // (a) hello on two named nodes: both answer "hi\n", done, within 5 s of the POST.
    let posted = Instant::now();
    let (id, targets) = queue(
        &url,
        json!({"action": "hello", "nodes": ["act-1", "act-2a"]}),
    );
    assert_eq!(targets, ["act-1", "act-2a"]);
    let results = finished(&url, &id, Duration::from_secs(5));
    let took = posted.elapsed();
    for result in &results {
        assert_eq!(result["state"], "done", "{result}{}", logs(&agents));
        assert_eq!(result["output"], "hi\n", "{result}");
        assert_eq!(result["exit_code"], 0, "{result}");
    }
    assert!(took < Duration::from_secs(5), "{took:?}");
    eprintln!("hello on two nodes done after {took:?}");

    // (b) by label: exactly the stack-2 nodes.
    let (id, targets) = queue(&url, json!({"action": "hello", "labels": {"stack": "2"}}));
    assert_eq!(targets, ["act-2a", "act-2b"]);
    let results = finished(&url, &id, WITHIN);
    assert_eq!(nodes_of(&results), ["act-2a", "act-2b"]);
    assert!(
        results
            .iter()
            .all(|r| r["state"] == "done" && r["output"] == "hi\n"),
        "{results:?}"
    );

    // (c) an action no node defines: refused on each.
    let (id, targets) = queue(&url, json!({"action": "nope", "all": true}));
    assert_eq!(targets, ["act-1", "act-2a", "act-2b"]);
    let results = finished(&url, &id, WITHIN);
    for result in &results {
        assert_eq!(result["state"], "refused", "{result}");
        let message = result["message"].as_str().unwrap();
        assert!(message.contains("does not define it"), "{message}");
    }

    // (d) reboot without allow_power: refused, naming the setting.
    let (id, _) = queue(&url, json!({"action": "reboot", "nodes": ["act-1"]}));
    let results = finished(&url, &id, WITHIN);
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["state"], "refused", "{}", results[0]);
    let message = results[0]["message"].as_str().unwrap();
    assert!(
        message.contains("PIVITALS_ACTIONS__ALLOW_POWER"),
        "{message}"
    );

    // (e) slow past its 1 s timeout: timed out within about 3 s.
    let posted = Instant::now();
    let (id, _) = queue(&url, json!({"action": "slow", "nodes": ["act-2b"]}));
    let results = finished(&url, &id, Duration::from_secs(4));
    let took = posted.elapsed();
    assert_eq!(results[0]["state"], "timed_out", "{}", results[0]);
    assert!(took < Duration::from_millis(3500), "{took:?}");
    eprintln!("slow timed out after {took:?}");

    // (f) tokens: none is 401 on both sides; a node token may not queue actions.
    let (status, body) = json_request(
        "GET",
        &format!("{url}/api/v1/agent/actions?wait=1s"),
        None,
        &Value::Null,
    );
    assert_eq!(status, 401, "{body}");
    let (status, body) = json_request(
        "POST",
        &format!("{url}/api/v1/actions"),
        None,
        &json!({"action": "hello", "all": true}),
    );
    assert_eq!(status, 401, "{body}");
    let credential: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("act-1/credential.json")).unwrap(),
    )
    .unwrap();
    let node_token = credential["node_token"].as_str().unwrap();
    let (status, body) = json_request(
        "POST",
        &format!("{url}/api/v1/actions"),
        Some(node_token),
        &json!({"action": "hello", "all": true}),
    );
    assert_eq!(status, 403, "{body}");

    for agent in &mut agents {
        agent.stop_cleanly(Duration::from_secs(10));
    }
    primary.stop_cleanly(Duration::from_secs(10));
}
