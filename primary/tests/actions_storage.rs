//! Actions in storage, end to end with the real binaries: every target that becomes final is
//! one `action` point (tags `node`, the node's labels, `action`; fields `state`, `exit_code`,
//! `duration`, `by`, `id`), in the embedded default's daily archive files and in a real
//! InfluxDB 1.x; a target whose node never comes expires on its own and is stored without any
//! read of the action in between.

use std::path::Path;
use std::time::Duration;

use pivitals_testkit::harness::{
    ADMIN, ENROLL, Proc, command, eventually, rows, start_primary, start_primary_on_influx_v1,
    workspace_binary,
};
use pivitals_testkit::samples::register_request;
use pivitals_testkit::{InfluxV1, free_port, http};
use serde_json::{Value, json};

/// Every wait is bounded by this, unless a test says less.
const WITHIN: Duration = Duration::from_secs(30);

const DB: &str = "pivitals";

/// `hello` succeeds, `broken` exits 3.
const AGENT_SETTINGS: &str = r#"
[actions.hello]
command = ["echo", "hi"]

[actions.broken]
command = ["sh", "-c", "exit 3"]
"#;

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

/// Queues `body` with the admin token, asserts 202; the action's id.
fn queue(url: &str, body: Value) -> String {
    let (status, reply) =
        json_request("POST", &format!("{url}/api/v1/actions"), Some(ADMIN), &body);
    assert_eq!(status, 202, "{reply}");
    reply["id"].as_str().unwrap().to_owned()
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

/// Waits until every target of `id` is final (not queued or sent).
fn finished(url: &str, id: &str) -> Value {
    eventually(&format!("every result of {id}"), WITHIN, || {
        let body = show(url, id);
        body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !matches!(r["state"].as_str(), Some("queued" | "sent")))
            .then_some(body)
    })
}

fn start_agent(dir: &Path, name: &str, url: &str) -> Proc {
    let settings = dir.join("agent.toml");
    std::fs::write(&settings, AGENT_SETTINGS).unwrap();
    let env = [
        ("PIVITALS_PRIMARY_URL", url.to_owned()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", name.to_owned()),
        ("PIVITALS_INTERVAL", "1s".to_owned()),
        ("PIVITALS_START_JITTER", "false".to_owned()),
        ("PIVITALS_LABELS", "stack=4".to_owned()),
        ("PIVITALS_STATE_DIR", dir.join(name).display().to_string()),
    ];
    let agent = Proc::spawn_with_args(
        name,
        &workspace_binary("pivitals-agent"),
        &["--config".as_ref(), settings.as_os_str()],
        &env,
        dir,
    );
    eventually(&format!("{name} registered"), WITHIN, || {
        dir.join(name)
            .join("credential.json")
            .exists()
            .then_some(())
    });
    agent
}

/// Registers `name` (labelled `stack=9`) with no agent behind it: a node that is down.
fn register_without_agent(url: &str, name: &str) {
    let mut request = register_request(name);
    request.labels = [("stack".to_string(), "9".to_string())].into();
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

/// The `action` lines of every archive file under `data_dir`.
fn archived_actions(data_dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir.join("archive")) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for entry in entries.map_while(Result::ok) {
        if entry.path().extension().is_some_and(|e| e == "lp") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(
                text.lines()
                    .filter(|l| l.starts_with("action,"))
                    .map(str::to_owned),
            );
        }
    }
    lines
}

/// The archive line of action `id`, once it is there.
fn archived_line(data_dir: &Path, id: &str) -> String {
    let needle = format!("id=\"{id}\"");
    eventually(&format!("the action line of {id}"), WITHIN, || {
        archived_actions(data_dir)
            .into_iter()
            .find(|l| l.contains(&needle))
    })
}

#[test]
fn an_action_for_a_node_that_never_comes_expires_and_is_archived_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
            ("PIVITALS_ACTIONS__EXPIRE_AFTER", "2s".to_owned()),
        ],
    );
    register_without_agent(&url, "gone-1");
    let id = queue(&url, json!({"action": "hello", "nodes": ["gone-1"]}));
    assert_eq!(show(&url, &id)["results"][0]["state"], "queued");

    // No read of the action from here on: the expired point comes on its own.
    let line = archived_line(&dir.path().join("primary"), &id);
    assert!(
        line.starts_with("action,action=hello,node=gone-1,stack=9 state=\"expired\",by=\"api\""),
        "{line}"
    );
    assert!(!line.contains("exit_code"), "{line}");
    assert!(!line.contains("duration"), "{line}");

    let result = &show(&url, &id)["results"][0];
    assert_eq!(result["state"], "expired", "{result}");
    primary.stop_cleanly(Duration::from_secs(10));
}

#[test]
fn done_failed_and_refused_targets_are_action_lines_in_the_archive() {
    let dir = tempfile::tempdir().unwrap();
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
    let mut agent = start_agent(dir.path(), "store-1", &url);
    let data_dir = dir.path().join("primary");

    let hello = queue(
        &url,
        json!({"action": "hello", "nodes": ["store-1"], "by": "dashboard"}),
    );
    let shown = finished(&url, &hello);
    assert_eq!(shown["by"], "dashboard");
    assert_eq!(shown["results"][0]["state"], "done", "{shown}");
    let line = archived_line(&data_dir, &hello);
    assert!(
        line.starts_with(
            "action,action=hello,node=store-1,stack=4 state=\"done\",exit_code=0i,duration="
        ),
        "{line}"
    );
    assert!(line.contains(",by=\"dashboard\","), "{line}");

    let broken = queue(&url, json!({"action": "broken", "nodes": ["store-1"]}));
    assert_eq!(finished(&url, &broken)["results"][0]["state"], "failed");
    let line = archived_line(&data_dir, &broken);
    assert!(
        line.starts_with(
            "action,action=broken,node=store-1,stack=4 state=\"failed\",exit_code=3i,"
        ),
        "{line}"
    );
    assert!(line.contains(",by=\"api\","), "{line}");

    let nope = queue(&url, json!({"action": "nope", "labels": {"stack": "4"}}));
    assert_eq!(finished(&url, &nope)["results"][0]["state"], "refused");
    let line = archived_line(&data_dir, &nope);
    assert!(
        line.starts_with("action,action=nope,node=store-1,stack=4 state=\"refused\","),
        "{line}"
    );
    assert!(!line.contains("exit_code"), "{line}");

    agent.stop_cleanly(Duration::from_secs(10));
    primary.stop_cleanly(Duration::from_secs(10));
}

#[test]
fn done_failed_refused_and_expired_targets_are_action_points_in_influxdb_1() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(
        dir.path(),
        port,
        &influx,
        DB,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
            ("PIVITALS_ACTIONS__EXPIRE_AFTER", "2s".to_owned()),
        ],
    );
    let mut agent = start_agent(dir.path(), "influx-1", &url);
    register_without_agent(&url, "influx-gone");

    let hello = queue(&url, json!({"action": "hello", "nodes": ["influx-1"]}));
    let broken = queue(&url, json!({"action": "broken", "nodes": ["influx-1"]}));
    let nope = queue(&url, json!({"action": "nope", "nodes": ["influx-1"]}));
    let lost = queue(&url, json!({"action": "hello", "nodes": ["influx-gone"]}));
    for id in [&hello, &broken, &nope] {
        finished(&url, id);
    }

    let query = "SELECT \"state\", \"exit_code\", \"duration\", \"by\", \"id\", \"node\", \"action\", \"stack\" FROM \"action\"";
    let rows = eventually("four action points in InfluxDB", WITHIN, || {
        let rows = rows(&influx.query(DB, query).ok()?);
        (rows.len() == 4).then_some(rows)
    });
    let row = |id: &str| -> Vec<Value> {
        rows.iter()
            .find(|r| r[5] == id)
            .unwrap_or_else(|| panic!("no point of {id} in {rows:?}"))
            .clone()
    };
    // Columns: time, state, exit_code, duration, by, id, node, action, stack.
    let done = row(&hello);
    assert_eq!(done[1], "done", "{done:?}");
    assert_eq!(done[2], 0, "{done:?}");
    assert!(
        done[3].as_f64().is_some_and(|s| (0.0..5.0).contains(&s)),
        "{done:?}"
    );
    assert_eq!(done[4], "api");
    assert_eq!(
        (&done[6], &done[7], &done[8]),
        (&json!("influx-1"), &json!("hello"), &json!("4"))
    );
    let failed = row(&broken);
    assert_eq!(
        (&failed[1], &failed[2]),
        (&json!("failed"), &json!(3)),
        "{failed:?}"
    );
    assert_eq!(failed[7], "broken");
    let refused = row(&nope);
    assert_eq!(refused[1], "refused", "{refused:?}");
    assert_eq!(refused[2], Value::Null, "{refused:?}");
    let expired = row(&lost);
    assert_eq!(expired[1], "expired", "{expired:?}");
    assert_eq!(
        (&expired[2], &expired[3]),
        (&Value::Null, &Value::Null),
        "{expired:?}"
    );
    assert_eq!(
        (&expired[6], &expired[8]),
        (&json!("influx-gone"), &json!("9"))
    );

    agent.stop_cleanly(Duration::from_secs(10));
    primary.stop_cleanly(Duration::from_secs(10));
}

#[test]
fn simulated_nodes_holding_the_long_poll_all_get_an_action_asked_of_all() {
    let dir = tempfile::tempdir().unwrap();
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
    let output = command(&workspace_binary("pivitals-simulate"))
        .args(["--primary-url", &url, "--enroll-token", ENROLL])
        .args(["--nodes", "20", "--interval", "1s", "--duration", "4s"])
        .args([
            "--poll-actions",
            "--ask-action",
            "ping",
            "--admin-token",
            ADMIN,
        ])
        .args(["--ask-after", "2s"])
        .output()
        .expect("run pivitals-simulate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = stdout.lines().find(|l| l.starts_with("simulate:")).unwrap();
    for expected in [
        " failed=0 ",
        " asked=20 ",
        " received=20 ",
        " results_failed=0 ",
    ] {
        assert!(line.contains(expected), "{expected} in {line}");
    }
    let delivered_ms: f64 = line
        .split(" deliver_max=")
        .nth(1)
        .and_then(|rest| rest.trim().strip_suffix("ms"))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("deliver_max in {line}"));
    assert!(delivered_ms < 2000.0, "{line}");

    let data_dir = dir.path().join("primary");
    eventually("20 done ping lines by bench", WITHIN, || {
        let done = archived_actions(&data_dir)
            .iter()
            .filter(|l| {
                l.starts_with("action,action=ping,")
                    && l.contains("state=\"done\"")
                    && l.contains("by=\"bench\"")
            })
            .count();
        (done == 20).then_some(())
    });
    primary.stop_cleanly(Duration::from_secs(10));
}
