//! Actions end to end with the real binaries: a `pivitals-primary` (embedded archive, no
//! InfluxDB) with an admin token, and three `pivitals-agent`s (`stack=1`, `stack=2`,
//! `stack=2`) whose settings file (`--config`) defines `hello` (`echo hi`) and `slow`
//! (`sleep 30` with a 1 s timeout). The admin queues actions over the API; the agents
//! long-poll for them, run them and post their results. Power actions are only tested refused:
//! no agent here sets `PIVITALS_ACTIONS__ALLOW_POWER`.

use std::time::{Duration, Instant};

use pivitals_testkit::actions::{
    WITHIN, ask, finished, json_request, start_agent_with_actions, start_primary_for_actions,
};
use pivitals_testkit::harness::Proc;
use serde_json::{Value, json};

const AGENT_SETTINGS: &str = r#"
[actions.hello]
command = ["echo", "hi"]

[actions.slow]
command = ["sleep", "30"]
timeout = "1s"
"#;

/// The agents: name and `stack` label.
const NODES: [(&str, &str); 3] = [("act-1", "1"), ("act-2a", "2"), ("act-2b", "2")];

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
    let (mut primary, url) = start_primary_for_actions(dir.path(), "", &[]);
    let mut agents: Vec<Proc> = NODES
        .iter()
        .map(|(name, stack)| {
            start_agent_with_actions(dir.path(), name, stack, &url, AGENT_SETTINGS)
        })
        .collect();
    let logs = |agents: &[Proc]| {
        let mut text = String::new();
        for agent in agents {
            text.push_str(&format!("\n--- {}:\n{}", agent.pid(), agent.log_tail()));
        }
        text
    };

    // (a) hello on two named nodes: both answer "hi\n", done, within 5 s of the POST.
    let posted = Instant::now();
    let (id, targets) = ask(
        &url,
        &json!({"action": "hello", "nodes": ["act-1", "act-2a"]}),
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
    let (id, targets) = ask(&url, &json!({"action": "hello", "labels": {"stack": "2"}}));
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
    let (id, targets) = ask(&url, &json!({"action": "nope", "all": true}));
    assert_eq!(targets, ["act-1", "act-2a", "act-2b"]);
    let results = finished(&url, &id, WITHIN);
    for result in &results {
        assert_eq!(result["state"], "refused", "{result}");
        let message = result["message"].as_str().unwrap();
        assert!(message.contains("does not define it"), "{message}");
    }

    // (d) reboot without allow_power: refused, naming the setting.
    let (id, _) = ask(&url, &json!({"action": "reboot", "nodes": ["act-1"]}));
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
    let (id, _) = ask(&url, &json!({"action": "slow", "nodes": ["act-2b"]}));
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
