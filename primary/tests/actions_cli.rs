//! `pivitals-primary action`: the real binary queues an action on a real primary binary, polls
//! its results and prints one row per node; exit 0 when all are done, 1 when any is not, 2 for
//! a missing admin token or an error answer from the primary. `pivitals-primary update` asks
//! the same way.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use pivitals_common::actions::{ActionRequest, ActionResult, ActionState};
use pivitals_testkit::actions::{json_request, register_labelled, start_primary_for_actions};
use pivitals_testkit::harness::{ADMIN, Proc, command};
use pivitals_testkit::http;

/// Stands in for a node's agent (the real agent's action runner is tested in the agent's
/// crate): long-polls for actions with the node token and answers `hello` with done and
/// "hi\n", anything else with refused, until `stop` is set or the primary is gone.
fn fake_agent(url: String, token: String, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let auth = format!("Bearer {token}");
        while !stop.load(Ordering::Relaxed) {
            let Ok(response) = http::request(
                "GET",
                &format!("{url}/api/v1/agent/actions?wait=5s"),
                &[("Authorization", &auth)],
                &[],
            ) else {
                return;
            };
            if response.status != 200 {
                continue;
            }
            let requests: Vec<ActionRequest> = serde_json::from_slice(&response.body).unwrap();
            for request in requests {
                let hello = request.action == "hello";
                let result = ActionResult {
                    id: request.id.clone(),
                    state: if hello {
                        ActionState::Done
                    } else {
                        ActionState::Refused
                    },
                    exit_code: hello.then_some(0),
                    output: if hello { "hi\n".into() } else { String::new() },
                    truncated: false,
                    duration_ms: 3,
                    message: (!hello).then(|| format!("no action {:?} here", request.action)),
                };
                let response = http::request(
                    "POST",
                    &format!("{url}/api/v1/agent/actions/{}", request.id),
                    &[
                        ("Authorization", &auth),
                        ("Content-Type", "application/json"),
                    ],
                    &serde_json::to_vec(&result).unwrap(),
                )
                .expect("POST an action result");
                assert_eq!(response.status, 204, "{}", response.text());
            }
        }
    })
}

/// A primary binary with the admin token, pi-01 (`stack=1`) and pi-02 (`stack=2`) and their
/// stand-in agents polling.
struct Cluster {
    primary: Option<Proc>,
    url: String,
    stop: Arc<AtomicBool>,
    agents: Vec<JoinHandle<()>>,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let (primary, url) = start_primary_for_actions(dir, "", &[]);
        let stop = Arc::new(AtomicBool::new(false));
        let agents = [("pi-01", "1"), ("pi-02", "2")]
            .into_iter()
            .map(|(name, stack)| {
                let token = register_labelled(&url, name, &[("stack", stack)]);
                fake_agent(url.clone(), token, stop.clone())
            })
            .collect();
        Cluster {
            primary: Some(primary),
            url,
            stop,
            agents,
        }
    }

    /// Runs `pivitals-primary action ARGS --url <primary>` with `token` as the admin token.
    fn action(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut cmd = command(Path::new(env!("CARGO_BIN_EXE_pivitals-primary")));
        cmd.arg("action")
            .args(args)
            .args(["--url", &self.url, "--timeout", "20s"]);
        if let Some(token) = token {
            cmd.env("PIVITALS_ADMIN_TOKEN", token);
        }
        cmd.output().expect("run pivitals-primary action")
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Killing the primary ends the agents' long polls.
        drop(self.primary.take());
        for agent in self.agents.drain(..) {
            let _ = agent.join();
        }
    }
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The table row of `node` in `stdout`, split into words.
fn row<'a>(stdout: &'a str, node: &str) -> Vec<&'a str> {
    stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(node))
        .unwrap_or_else(|| panic!("no row for {node}:\n{stdout}"))
        .split_whitespace()
        .collect()
}

#[test]
fn action_prints_each_nodes_result_and_exits_by_the_worst() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());

    let output = cluster.action(Some(ADMIN), &["hello", "--all"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("NODE"), "a header: {stdout}");
    for node in ["pi-01", "pi-02"] {
        assert_eq!(row(&stdout, node)[1..=2], ["done", "0"], "{stdout}");
        assert_eq!(row(&stdout, node).last(), Some(&"hi"), "{stdout}");
    }

    let output = cluster.action(Some(ADMIN), &["nope", "--stack", "2", "--verbose"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(1), "{stdout}\n{stderr}");
    assert_eq!(row(&stdout, "pi-02")[1], "refused", "{stdout}");
    assert!(stdout.contains("no action \"nope\" here"), "{stdout}");
    assert!(!stdout.contains("pi-01"), "only stack 2: {stdout}");

    // The primary keeps who asked: the CLI says so.
    let (status, listed) = json_request(
        "GET",
        &format!("{}/api/v1/actions", cluster.url),
        Some(ADMIN),
        &serde_json::Value::Null,
    );
    assert_eq!(status, 200, "{listed}");
    let by: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["by"].as_str().unwrap())
        .collect();
    assert_eq!(by, ["cli", "cli"], "{listed}");
}

#[test]
fn action_without_the_admin_token_or_with_an_unknown_node_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path());

    let output = cluster.action(None, &["hello", "--all"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(stderr.contains("PIVITALS_ADMIN_TOKEN"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");

    let output = cluster.action(Some(ADMIN), &["hello", "--node", "pi-09"]);
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("422") && stderr.contains("pi-09"),
        "the primary's error: {stderr}"
    );

    let output = cluster.action(Some(ADMIN), &["hello", "--all", "--stack", "1"]);
    assert_eq!(output.status.code(), Some(2), "one selector only");

    // `update` asks the same way: an error answer of the primary is one line and exit 2.
    let output = command(Path::new(env!("CARGO_BIN_EXE_pivitals-primary")))
        .args(["update", "--node", "pi-09", "--url", &cluster.url])
        .env("PIVITALS_ADMIN_TOKEN", ADMIN)
        .output()
        .expect("run pivitals-primary update");
    let (stdout, stderr) = text(&output);
    assert_eq!(output.status.code(), Some(2), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("POST /api/v1/updates"),
        "the primary's error: {stderr}"
    );
}
