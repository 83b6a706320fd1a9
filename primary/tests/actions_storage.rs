//! Actions in storage, end to end with the real binaries: every target that becomes final is
//! one `action` point (tags `node`, the node's labels, `action`; fields `state`, `exit_code`,
//! `duration`, `by`, `id`), in the embedded default's daily archive files and in a real
//! InfluxDB 1.x; a target whose node never comes expires on its own and is stored without any
//! read of the action in between.

use std::time::Duration;

use pivitals_testkit::actions::{
    WITHIN, archived, archived_action, ask, finished, register_labelled, show,
    start_agent_with_actions, start_primary_for_actions,
};
use pivitals_testkit::harness::{
    ADMIN, ENROLL, command, eventually, rows, start_primary_on_influx_v1, workspace_binary,
};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::{Value, json};

const DB: &str = "pivitals";

/// `hello` succeeds, `broken` exits 3.
const AGENT_SETTINGS: &str = r#"
[actions.hello]
command = ["echo", "hi"]

[actions.broken]
command = ["sh", "-c", "exit 3"]
"#;

/// Asks `body` of the primary at `url`; the action's id.
fn queue(url: &str, body: Value) -> String {
    ask(url, &body).0
}

/// The state of the only target of `id`, once it is final.
fn final_state(url: &str, id: &str) -> Value {
    finished(url, id, WITHIN)[0]["state"].clone()
}

#[test]
fn an_action_for_a_node_that_never_comes_expires_and_is_archived_without_being_read() {
    let dir = tempfile::tempdir().unwrap();
    let (mut primary, url) = start_primary_for_actions(
        dir.path(),
        "",
        &[("PIVITALS_ACTIONS__EXPIRE_AFTER", "2s".to_owned())],
    );
    register_labelled(&url, "gone-1", &[("stack", "9")]);
    let id = queue(&url, json!({"action": "hello", "nodes": ["gone-1"]}));
    assert_eq!(show(&url, &id)["results"][0]["state"], "queued");

    // No read of the action from here on: the expired point comes on its own.
    let line = archived_action(&dir.path().join("primary"), &id, "gone-1");
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
    let (mut primary, url) = start_primary_for_actions(dir.path(), "", &[]);
    let mut agent = start_agent_with_actions(dir.path(), "store-1", "4", &url, AGENT_SETTINGS);
    let data_dir = dir.path().join("primary");

    // What is asked, the target's final state, how its line starts, who asked.
    let cases = [
        (
            json!({"action": "hello", "nodes": ["store-1"], "by": "dashboard"}),
            "done",
            "action,action=hello,node=store-1,stack=4 state=\"done\",exit_code=0i,duration=",
            "dashboard",
        ),
        (
            json!({"action": "broken", "nodes": ["store-1"]}),
            "failed",
            "action,action=broken,node=store-1,stack=4 state=\"failed\",exit_code=3i,",
            "api",
        ),
        (
            json!({"action": "nope", "labels": {"stack": "4"}}),
            "refused",
            "action,action=nope,node=store-1,stack=4 state=\"refused\",",
            "api",
        ),
    ];
    for (body, state, starts, by) in cases {
        let id = queue(&url, body);
        assert_eq!(final_state(&url, &id), state);
        assert_eq!(show(&url, &id)["by"], by);
        let line = archived_action(&data_dir, &id, "store-1");
        assert!(line.starts_with(starts), "{line}");
        assert!(line.contains(&format!(",by=\"{by}\",")), "{line}");
        // A refused action never ran: it has no exit code.
        assert_eq!(line.contains("exit_code"), state != "refused", "{line}");
    }

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
    let mut agent = start_agent_with_actions(dir.path(), "influx-1", "4", &url, AGENT_SETTINGS);
    register_labelled(&url, "influx-gone", &[("stack", "9")]);

    let hello = queue(&url, json!({"action": "hello", "nodes": ["influx-1"]}));
    let broken = queue(&url, json!({"action": "broken", "nodes": ["influx-1"]}));
    let nope = queue(&url, json!({"action": "nope", "nodes": ["influx-1"]}));
    let lost = queue(&url, json!({"action": "hello", "nodes": ["influx-gone"]}));
    for id in [&hello, &broken, &nope] {
        finished(&url, id, WITHIN);
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
    let (mut primary, url) = start_primary_for_actions(dir.path(), "", &[]);
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
        let done = archived(&data_dir, "action")
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
