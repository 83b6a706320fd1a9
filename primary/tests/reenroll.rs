//! Re-flashed boards end to end, with the real `pivitals-primary` and `pivitals-agent`
//! binaries: each agent reads its board from a fixture root (`PIVITALS_ROOT`) holding a
//! Raspberry Pi serial (`proc/device-tree/serial-number`) and an `etc/machine-id`, and keeps
//! its credential in a state directory of its own, so a fresh directory is a fresh SD card.
//!
//! - By default a second agent under a registered name is refused (409), even on the same
//!   board, and says so in its log.
//! - With `PIVITALS_REENROLL=same-hardware` the same board with a new machine-id (a re-flash)
//!   takes its name back: its old token answers 401, the node keeps its recent history, takes
//!   the new labels and is recorded up again; another board under the name is still refused,
//!   naming the board serial; an agent older than the hardware identity (a register body
//!   without it) still registers a new name, and that node cannot be taken back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pivitals_testkit::actions::json_request;
use pivitals_testkit::free_port;
use pivitals_testkit::harness::{
    ENROLL, Proc, eventually, get_json, node_status, start_agent_with, start_primary,
};
use pivitals_testkit::samples::{now_ms, push_body, sample};
use serde_json::{Value, json};

/// Every wait is bounded by this.
const WITHIN: Duration = Duration::from_secs(30);
const SERIAL: &str = "10000000a1b2c3d4";
const OTHER_SERIAL: &str = "10000000e5f60718";

/// A board's root: its SoC serial and machine-id, nothing else (the agent's other families
/// fail softly; CPU and memory come from the real host).
fn board_root(dir: &Path, serial: &str, machine_id: &str) -> PathBuf {
    let root = dir.join("root");
    std::fs::create_dir_all(root.join("proc/device-tree")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(
        root.join("proc/device-tree/serial-number"),
        format!("{serial}\0"),
    )
    .unwrap();
    std::fs::write(root.join("etc/machine-id"), format!("{machine_id}\n")).unwrap();
    root
}

/// An agent of node `name` on the board at `root`, its state and log under `dir` (a fresh
/// directory is a freshly flashed card), pushing every second with `labels`.
fn agent(dir: &Path, name: &str, url: &str, root: &Path, labels: &str) -> Proc {
    std::fs::create_dir_all(dir).unwrap();
    start_agent_with(
        dir,
        name,
        url,
        "1s",
        &[
            ("PIVITALS_ROOT", root.display().to_string()),
            ("PIVITALS_LABELS", labels.to_owned()),
            ("PIVITALS_START_JITTER", "false".to_owned()),
        ],
    )
}

/// The node token an agent stored in its state directory.
fn stored_token(agent_dir: &Path, name: &str) -> Option<String> {
    let text = std::fs::read_to_string(agent_dir.join(name).join("credential.json")).ok()?;
    let credential: Value = serde_json::from_str(&text).ok()?;
    credential["node_token"].as_str().map(str::to_owned)
}

/// Waits until the primary's log records node `node`'s status change `from` → `to`.
fn status_recorded(primary: &Proc, node: &str, from: &str, to: &str) {
    let (from, to) = (format!("from={from}"), format!("to={to}"));
    eventually(
        &format!("the primary records {node} {from} {to}"),
        WITHIN,
        || {
            primary
                .log()
                .lines()
                .map(|l| l.replace('"', ""))
                .any(|l| {
                    l.contains("node status changed")
                        && l.contains(&format!("node={node} "))
                        && l.contains(&from)
                        && l.contains(&to)
                })
                .then_some(())
        },
    );
}

/// Waits until the agent's log has a line with every one of `needles`; that line.
fn log_line(agent: &Proc, needles: &[&str]) -> String {
    eventually(
        &format!(
            "{} logs {needles:?}; log:\n{}",
            agent.name,
            agent.log_tail()
        ),
        WITHIN,
        || {
            agent
                .log()
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)))
                .map(str::to_owned)
        },
    )
}

/// The node's info as a register body would carry it (any valid one will do).
fn register_body(name: &str, hardware: Option<Value>) -> Value {
    let mut body = json!({
        "node_name": name,
        "info": {
            "hostname": name, "os": "Debian GNU/Linux", "os_version": "12", "kernel": "6.6",
            "arch": "aarch64", "cpu_model": "Cortex-A72", "cpu_cores": 4,
            "memory_total_bytes": 1u64 << 30, "swap_total_bytes": 0, "board_model": null,
            "agent_version": "0.1.0", "board_serial": null, "default_interface": null,
            "interfaces": []
        },
        "labels": {"stack": "3"},
        "interval_seconds": 60
    });
    if let Some(hardware) = hardware {
        body["hardware"] = hardware;
    }
    body
}

#[test]
fn by_default_a_second_agent_under_a_registered_name_is_refused_even_on_the_same_board() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(dir.path(), port, &[]);
    let root = board_root(dir.path(), SERIAL, "11111111111111111111111111111111");
    let first_dir = dir.path().join("first");
    let _first = agent(&first_dir, "pi-default", &url, &root, "stack=1");
    eventually("the first agent registers", WITHIN, || {
        stored_token(&first_dir, "pi-default")
    });

    let second_dir = dir.path().join("second");
    let second = agent(&second_dir, "pi-default", &url, &root, "stack=1");
    let line = log_line(&second, &["409", "already registered"]);
    assert!(line.contains("PIVITALS_REENROLL"), "{line}");
    assert_eq!(stored_token(&second_dir, "pi-default"), None);
}

#[test]
fn with_reenroll_on_a_reflashed_board_takes_its_name_back_and_other_boards_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary(
        dir.path(),
        port,
        &[("PIVITALS_REENROLL", "same-hardware".to_owned())],
    );
    let board = dir.path().join("board");
    let root = board_root(&board, SERIAL, "11111111111111111111111111111111");
    let node = "pi-reflash";
    let node_url = format!("{url}/api/v1/nodes/{node}");

    // The board as first flashed: registers and pushes.
    let first_dir = dir.path().join("first");
    let mut first = agent(&first_dir, node, &url, &root, "stack=1");
    let old_token = eventually("the first agent registers", WITHIN, || {
        stored_token(&first_dir, node)
    });
    eventually("the first agent's samples in the history", WITHIN, || {
        let history = get_json(&format!("{node_url}/history"));
        (!history["points"].as_array()?.is_empty()).then_some(())
    });
    // A sample of five minutes ago, pushed with the old token: a history slot that no later
    // sample can fill, and proof that the token works before the re-flash.
    let five_minutes_ago = now_ms() - 300_000;
    let (status, reply) = json_request(
        "POST",
        &format!("{url}/api/v1/vitals"),
        Some(&old_token),
        &push_body(vec![sample(five_minutes_ago, 42.0)]),
    );
    assert_eq!(status, 200, "{reply}");
    status_recorded(&primary, node, "unknown", "up");
    first.stop_cleanly(WITHIN);
    status_recorded(&primary, node, "up", "stopped");
    assert_eq!(node_status(&url, node), "stopped");

    // The re-flash: a new card, so a new machine-id and an empty state directory.
    std::fs::write(
        root.join("etc/machine-id"),
        "22222222222222222222222222222222\n",
    )
    .unwrap();
    let second_dir = dir.path().join("second");
    let second = agent(&second_dir, node, &url, &root, "stack=2,role=reflashed");
    let new_token = eventually("the re-flashed agent registers", WITHIN, || {
        stored_token(&second_dir, node)
    });
    assert_ne!(new_token, old_token);
    let (status, reply) = json_request(
        "POST",
        &format!("{url}/api/v1/vitals"),
        Some(&old_token),
        &push_body(vec![]),
    );
    assert_eq!(status, 401, "{reply}");
    let shown = eventually("the node is up again with the new labels", WITHIN, || {
        let shown = get_json(&node_url);
        (shown["status"] == "up" && shown["latest"]["timestamp_ms"].as_i64()? > five_minutes_ago)
            .then_some(shown)
    });
    assert_eq!(shown["labels"], json!({"stack": "2", "role": "reflashed"}));
    let history = get_json(&format!("{node_url}/history"));
    let step_ms = history["step_seconds"].as_i64().unwrap() * 1000;
    let old_slot = five_minutes_ago - five_minutes_ago.rem_euclid(step_ms);
    let slots: Vec<i64> = history["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["ts_ms"].as_i64())
        .collect();
    assert!(
        slots.contains(&old_slot),
        "the slot {old_slot} from before the re-flash is gone: {history}"
    );
    // Recorded up again, as after any registration: a `node_status` point like any other.
    status_recorded(&primary, node, "stopped", "up");
    let reenrolled = primary
        .log()
        .lines()
        .find(|l| l.contains("node re-enrolled") && l.contains(node))
        .map(str::to_owned);
    assert!(
        reenrolled
            .as_deref()
            .is_some_and(|l| l.contains("board serial")),
        "{reenrolled:?}\n{}",
        primary.log_tail()
    );

    // Another board under the same name: refused, by the agent and by a hand-made request.
    let other_board = dir.path().join("other-board");
    let other_root = board_root(
        &other_board,
        OTHER_SERIAL,
        "33333333333333333333333333333333",
    );
    let third_dir = dir.path().join("third");
    let third = agent(&third_dir, node, &url, &other_root, "stack=9");
    let line = log_line(&third, &["409", "other hardware"]);
    assert!(line.contains("board serial"), "{line}");
    assert_eq!(stored_token(&third_dir, node), None);
    let hardware = json!({"serial": OTHER_SERIAL});
    let (status, answer) = json_request(
        "POST",
        &format!("{url}/api/v1/register"),
        Some(ENROLL),
        &register_body(node, Some(hardware)),
    );
    assert_eq!(status, 409, "{answer}");
    let error = answer["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("board serial differs") && error.contains("PIVITALS_REENROLL"),
        "{error}"
    );
    // The re-flashed agent still owns the name.
    assert_eq!(get_json(&node_url)["labels"]["stack"], "2");
    assert_eq!(stored_token(&second_dir, node), Some(new_token));
    drop(second);
    drop(third);

    // An agent from before the hardware identity: its body has no `hardware` field.
    let (status, old_style) = json_request(
        "POST",
        &format!("{url}/api/v1/register"),
        Some(ENROLL),
        &register_body("pi-old-agent", None),
    );
    assert_eq!(status, 200, "{old_style}");
    assert_eq!(old_style["node_name"], "pi-old-agent");
    assert!(
        old_style["node_token"]
            .as_str()
            .is_some_and(|t| t.len() == 64)
    );
    // Nothing on record proves which board it was, so no board can take the name back.
    let (status, claim) = json_request(
        "POST",
        &format!("{url}/api/v1/register"),
        Some(ENROLL),
        &register_body("pi-old-agent", Some(json!({"serial": SERIAL}))),
    );
    assert_eq!(status, 409, "{claim}");
    let error = claim["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains("cannot be proven") && error.contains("without a hardware identity"),
        "{error}"
    );
}
