//! "Update agents" end to end with the real binaries: a `pivitals-primary` serving, as this
//! machine's agent binary, a second build of the agent that reports version `X+next`, and
//! real `pivitals-agent`s, each run from its own copy of the first build by a small supervisor
//! in this test that starts it again when it exits with the update code (standing in for
//! systemd's `RestartForceExitStatus=`).
//!
//! The second build is the same binary with its build tag written in
//! (`PIVITALS_BUILD_TAG=next` in the stamp the collector reads, see `agent_version` in the
//! collect crate): a distinct file, SHA-256 and version, without compiling the agent twice.
//!
//! One test, four rollouts in turn (each on its own stack), then one against a corrupted
//! binary: (a) every node of a stack updated with `max_parallel` 1, never two at once, each
//! back reporting the new version; again: all `already_current`. (b) a node without
//! `allow_update` is `refused` and stops the rollout. (c) a node that does not come back
//! (its supervisor does not restart it) is `failed` after the timeout and stops the rollout.
//! (d) a served file that no longer matches the SHA-256 the primary hashed: `failed`, the
//! node's binary untouched and the old agent still running.
//!
//! A second test: agents with `update_public_key` (a key made with `openssl genpkey`), each
//! against its own primary: (a) the binary signed with the key is installed; (b) a signature
//! of another file, or (c) none served, is `failed`, the old binary untouched and still running.
//!
//! A third test signs in to the dashboard in a headless Chromium and clicks a stack's
//! "Update agents": both nodes of the stack show `updated` in place.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pivitals_testkit::actions::{WITHIN, json_request, start_primary_for_actions};
use pivitals_testkit::browser::{Driver, Session, required};
use pivitals_testkit::harness::binaries::command;
use pivitals_testkit::harness::{ADMIN, ENROLL, eventually, get_json, workspace_binary};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The exit code of an agent that replaced itself (`pivitals_common::actions`).
const UPDATE_EXIT_CODE: i32 = pivitals_common::actions::UPDATE_EXIT_CODE as i32;
const MARKER: &[u8] = b"PIVITALS_BUILD_TAG=";
const TAG_ROOM: usize = 32;

/// The architecture name the primary serves this machine's binary under.
fn served_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        other => panic!("no served architecture for {other}"),
    }
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The agent binary with `tag` written into its build stamp.
fn tagged(binary: &[u8], tag: &str) -> Vec<u8> {
    let starts: Vec<usize> = binary
        .windows(MARKER.len() + TAG_ROOM)
        .enumerate()
        .filter(|(_, w)| w.starts_with(MARKER) && w[MARKER.len()..].iter().all(|b| *b == 0))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        starts.len(),
        1,
        "exactly one empty build stamp in the agent"
    );
    let mut out = binary.to_vec();
    let at = starts[0] + MARKER.len();
    out[at..at + tag.len()].copy_from_slice(tag.as_bytes());
    out
}

/// An agent run from its own copy of the binary, started again when it exits with
/// [`UPDATE_EXIT_CODE`] (unless `restart` is off); killed on drop.
struct Supervised {
    name: String,
    binary: PathBuf,
    log: PathBuf,
    stop: Arc<AtomicBool>,
    starts: Arc<AtomicUsize>,
    exits: Arc<Mutex<Vec<Option<i32>>>>,
    thread: Option<JoinHandle<()>>,
}

impl Supervised {
    fn start(
        dir: &Path,
        name: &str,
        labels: &str,
        url: &str,
        allow_update: bool,
        restart: bool,
    ) -> Self {
        Self::start_with(dir, name, labels, url, allow_update, restart, &[])
    }

    /// [`Supervised::start`] with more environment variables for the agent.
    fn start_with(
        dir: &Path,
        name: &str,
        labels: &str,
        url: &str,
        allow_update: bool,
        restart: bool,
        extra: &[(&str, &str)],
    ) -> Self {
        let home = dir.join(name);
        std::fs::create_dir_all(&home).unwrap();
        let binary = home.join("pivitals-agent");
        std::fs::copy(workspace_binary("pivitals-agent"), &binary).unwrap();
        let log = dir.join(format!("{name}.log"));
        let env: Vec<(String, String)> = vec![
            ("PIVITALS_PRIMARY_URL".into(), url.into()),
            ("PIVITALS_ENROLL_TOKEN".into(), ENROLL.into()),
            ("PIVITALS_NODE_NAME".into(), name.into()),
            ("PIVITALS_INTERVAL".into(), "1s".into()),
            ("PIVITALS_START_JITTER".into(), "false".into()),
            ("PIVITALS_LABELS".into(), labels.into()),
            (
                "PIVITALS_STATE_DIR".into(),
                home.join("state").display().to_string(),
            ),
            ("PIVITALS_ALLOW_UPDATE".into(), allow_update.to_string()),
            ("PIVITALS_LOG".into(), "info".into()),
        ];
        let env: Vec<(String, String)> = env
            .into_iter()
            .chain(
                extra
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
            )
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let starts = Arc::new(AtomicUsize::new(0));
        let exits = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (binary, log, stop, starts, exits) = (
                binary.clone(),
                log.clone(),
                stop.clone(),
                starts.clone(),
                exits.clone(),
            );
            std::thread::spawn(move || {
                let spawn = || -> Child {
                    let out = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(&log)
                        .unwrap();
                    let err = out.try_clone().unwrap();
                    let mut command = command(&binary);
                    command.stdin(Stdio::null()).stdout(out).stderr(err);
                    for (k, v) in &env {
                        command.env(k, v);
                    }
                    command.spawn().unwrap()
                };
                let mut child = spawn();
                starts.fetch_add(1, Ordering::SeqCst);
                loop {
                    if stop.load(Ordering::SeqCst) {
                        let _ = child.kill();
                        let _ = child.wait();
                        return;
                    }
                    if let Ok(Some(status)) = child.try_wait() {
                        exits.lock().unwrap().push(status.code());
                        if restart && status.code() == Some(UPDATE_EXIT_CODE) {
                            child = spawn();
                            starts.fetch_add(1, Ordering::SeqCst);
                        } else {
                            return;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            })
        };
        let agent = Self {
            name: name.to_owned(),
            binary,
            log,
            stop,
            starts,
            exits,
            thread: Some(thread),
        };
        eventually(&format!("{name} registered"), WITHIN, || {
            home.join("state/credential.json").exists().then_some(())
        });
        agent
    }

    fn binary_sha256(&self) -> String {
        sha256(&std::fs::read(&self.binary).unwrap())
    }

    /// After a refused update: the old binary in place, still running, no temporary file.
    fn assert_old_binary_kept(&self, old_sha: &str, case: &str) {
        assert_eq!(
            self.binary_sha256(),
            old_sha,
            "{case}: the binary is untouched"
        );
        assert!(
            self.running() && self.exits.lock().unwrap().is_empty(),
            "{case}: still running"
        );
        assert!(
            std::fs::read_dir(self.binary.parent().unwrap())
                .unwrap()
                .all(|e| !e
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".update")),
            "{case}: no temporary file left"
        );
    }

    fn running(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Supervised {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn agent_version(url: &str, node: &str) -> String {
    get_json(&format!("{url}/api/v1/nodes/{node}"))["info"]["agent_version"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Starts a rollout; its id and targets.
fn roll(url: &str, body: Value) -> (String, Vec<String>) {
    let (status, reply) =
        json_request("POST", &format!("{url}/api/v1/updates"), Some(ADMIN), &body);
    assert_eq!(status, 202, "{body}: {reply}");
    let targets = reply["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (reply["id"].as_str().unwrap().to_owned(), targets)
}

/// Follows rollout `id` until it is over; its last view and the most nodes seen updating at once.
fn follow(url: &str, id: &str, within: Duration) -> (Value, usize) {
    let deadline = Instant::now() + within;
    let mut most_updating = 0;
    loop {
        let (status, view) = json_request(
            "GET",
            &format!("{url}/api/v1/updates/{id}"),
            Some(ADMIN),
            &Value::Null,
        );
        assert_eq!(status, 200, "{view}");
        let updating = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|n| n["state"] == "updating")
            .count();
        most_updating = most_updating.max(updating);
        if view["state"] != "running" {
            return (view, most_updating);
        }
        assert!(
            Instant::now() < deadline,
            "rollout {id} still running: {view}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn states(view: &Value) -> Vec<(String, String)> {
    view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["node"].as_str().unwrap().to_owned(),
                n["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn pairs(expected: &[(&str, &str)]) -> Vec<(String, String)> {
    expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// The first build, the second (tagged `next`) and where the primary serves the second from.
struct Builds {
    old: Vec<u8>,
    next: Vec<u8>,
    served: PathBuf,
}

/// Writes the `next` build into `dir/binaries` as this machine's served binary.
fn builds(dir: &Path) -> Builds {
    let old = std::fs::read(workspace_binary("pivitals-agent")).unwrap();
    let next = tagged(&old, "next");
    assert_ne!(sha256(&old), sha256(&next));
    let binaries = dir.join("binaries");
    std::fs::create_dir(&binaries).unwrap();
    let served = binaries.join(format!("pivitals-agent-{}", served_arch()));
    std::fs::write(&served, &next).unwrap();
    Builds { old, next, served }
}

#[test]
fn rollouts_update_stacks_and_stop_at_the_first_node_that_does_not_update() {
    let dir = tempfile::tempdir().unwrap();
    let Builds { old, next, served } = builds(dir.path());
    let (old_sha, next_sha) = (sha256(&old), sha256(&next));
    let binaries = served.parent().unwrap();
    let (_primary, url) = start_primary_for_actions(
        dir.path(),
        "",
        &[("PIVITALS_AGENT_BINARIES", binaries.display().to_string())],
    );

    let start = |name: &str, stack: &str, allow: bool, restart: bool| {
        Supervised::start(
            dir.path(),
            name,
            &format!("stack={stack}"),
            &url,
            allow,
            restart,
        )
    };
    let stack1: Vec<Supervised> = ["up-1", "up-2", "up-3"]
        .iter()
        .map(|n| start(n, "1", true, true))
        .collect();
    let stack2 = [
        start("ref-1", "2", true, true),
        start("ref-2", "2", false, true),
        start("ref-3", "2", true, true),
    ];
    let stack3 = [
        start("gone-1", "3", true, false),
        start("gone-2", "3", true, true),
    ];
    let stack4 = [start("bad-1", "4", true, true)];
    let old_version = agent_version(&url, "up-1");
    assert!(!old_version.contains('+'), "{old_version}");
    let new_version = format!("{old_version}+next");
    let logs = |agents: &[Supervised]| {
        agents
            .iter()
            .map(|a| format!("\n--- {}:\n{}", a.name, a.log()))
            .collect::<String>()
    };

    // (a) The whole stack, one at a time.
    let started = Instant::now();
    let (id, targets) = roll(
        &url,
        json!({"labels": {"stack": "1"}, "max_parallel": 1, "timeout": "60s"}),
    );
    assert_eq!(targets, ["up-1", "up-2", "up-3"]);
    let (view, most_updating) = follow(&url, &id, Duration::from_secs(120));
    assert_eq!(view["state"], "done", "{view}{}", logs(&stack1));
    assert_eq!(
        states(&view),
        pairs(&[
            ("up-1", "updated"),
            ("up-2", "updated"),
            ("up-3", "updated")
        ])
    );
    assert_eq!(most_updating, 1, "never more than max_parallel at once");
    eprintln!("three nodes updated one by one in {:?}", started.elapsed());
    for agent in &stack1 {
        assert_eq!(agent.binary_sha256(), next_sha, "{}", agent.name);
        assert_eq!(agent.starts.load(Ordering::SeqCst), 2, "{}", agent.name);
        assert_eq!(*agent.exits.lock().unwrap(), [Some(UPDATE_EXIT_CODE)]);
        assert!(agent.running());
        let node = view["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == agent.name.as_str())
            .unwrap();
        let running = node["running"].as_str().unwrap();
        assert!(
            running.contains(&new_version) && running.contains(&next_sha),
            "{running}"
        );
        eventually("the new version in the node info", WITHIN, || {
            (agent_version(&url, &agent.name) == new_version).then_some(())
        });
    }
    // Again: nothing to do, nothing restarts.
    let (id, _) = roll(&url, json!({"labels": {"stack": "1"}, "max_parallel": 3}));
    let (view, _) = follow(&url, &id, Duration::from_secs(60));
    assert_eq!(view["state"], "done", "{view}");
    assert!(
        states(&view).iter().all(|(_, s)| s == "already_current"),
        "{view}"
    );
    assert!(stack1.iter().all(|a| a.starts.load(Ordering::SeqCst) == 2));

    // (b) A node that does not allow updates stops the rollout.
    let (id, _) = roll(&url, json!({"labels": {"stack": "2"}, "timeout": "60s"}));
    let (view, _) = follow(&url, &id, Duration::from_secs(120));
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(
        states(&view),
        pairs(&[
            ("ref-1", "updated"),
            ("ref-2", "refused"),
            ("ref-3", "skipped")
        ])
    );
    let refusal = view["nodes"][1]["message"].as_str().unwrap();
    assert!(refusal.contains("PIVITALS_ALLOW_UPDATE"), "{refusal}");
    assert_eq!(stack2[1].binary_sha256(), old_sha);
    assert_eq!(stack2[2].binary_sha256(), old_sha, "skipped: untouched");
    assert_eq!(agent_version(&url, "ref-3"), old_version);

    // (c) A node that does not come back within the timeout.
    let started = Instant::now();
    let (id, _) = roll(&url, json!({"labels": {"stack": "3"}, "timeout": "4s"}));
    let (view, _) = follow(&url, &id, Duration::from_secs(60));
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(
        states(&view),
        pairs(&[("gone-1", "failed"), ("gone-2", "skipped")])
    );
    let message = view["nodes"][0]["message"].as_str().unwrap();
    assert!(message.contains("did not come back"), "{message}");
    assert!(started.elapsed() >= Duration::from_secs(4));
    assert!(!stack3[0].running(), "gone-1 exited and was not restarted");
    assert_eq!(*stack3[0].exits.lock().unwrap(), [Some(UPDATE_EXIT_CODE)]);
    assert_eq!(stack3[1].binary_sha256(), old_sha);

    // (d) The served file changed after the primary hashed it: the download does not match.
    let mut corrupt = next.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    std::fs::write(&served, &corrupt).unwrap();
    let (id, _) = roll(&url, json!({"nodes": ["bad-1"], "timeout": "60s"}));
    let (view, _) = follow(&url, &id, Duration::from_secs(60));
    assert_eq!(view["state"], "failed", "{view}");
    assert_eq!(states(&view), pairs(&[("bad-1", "failed")]));
    let message = view["nodes"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("SHA-256") && message.contains(&next_sha) && message.contains("untouched"),
        "{message}"
    );
    stack4[0].assert_old_binary_kept(&old_sha, "corrupted download");
    assert_eq!(agent_version(&url, "bad-1"), old_version);

    // Bad requests name their field.
    for (body, needle) in [
        (
            json!({"labels": {"stack": "1"}, "max_parallel": 0}),
            "max_parallel",
        ),
        (
            json!({"labels": {"stack": "1"}, "timeout": "soon"}),
            "timeout",
        ),
        (json!({"nodes": ["up-1"], "all": true}), "exactly one"),
        (json!({"nodes": ["nobody"]}), "nobody"),
    ] {
        let (status, reply) =
            json_request("POST", &format!("{url}/api/v1/updates"), Some(ADMIN), &body);
        assert_eq!(status, 422, "{body}: {reply}");
        assert!(reply["error"].as_str().unwrap().contains(needle), "{reply}");
    }
    // The generic actions endpoint cannot send an update without its binary.
    let (status, reply) = json_request(
        "POST",
        &format!("{url}/api/v1/actions"),
        Some(ADMIN),
        &json!({"action": "update", "nodes": ["up-1"]}),
    );
    assert_eq!(status, 422, "{reply}");
    assert!(
        reply["error"].as_str().unwrap().contains("/api/v1/updates"),
        "{reply}"
    );
}

/// Runs `script` with `sh -c` in `dir`; its standard output. Fails naming openssl when the
/// machine has none.
fn sh(dir: &Path, script: &str) -> Vec<u8> {
    let has_openssl = std::process::Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        has_openssl,
        "this test needs the openssl command line tool (OpenSSL 3) to make an Ed25519 key"
    );
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{script}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

#[test]
fn with_a_public_key_only_a_binary_signed_with_it_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    // The key and the signatures, made as the README says.
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    sh(&keys, "openssl genpkey -algorithm ed25519 -out key.pem");
    let public_key = sh(
        &keys,
        "openssl pkey -in key.pem -pubout -outform DER | tail -c 32 | base64",
    );
    let public_key = String::from_utf8(public_key).unwrap().trim().to_owned();
    assert_eq!(public_key.len(), 44, "{public_key}");

    // One primary per case: it reads the signatures at start. `sign`: the file to sign, if any.
    let stack = |case: &str, sign: Option<&str>| {
        let home = dir.path().join(case);
        std::fs::create_dir(&home).unwrap();
        let Builds { old, next, served } = builds(&home);
        std::fs::write(home.join("other"), b"not the agent").unwrap();
        if let Some(what) = sign {
            let what = if what == "served" {
                served.display().to_string()
            } else {
                home.join(what).display().to_string()
            };
            sh(
                &keys,
                &format!(
                    "openssl pkeyutl -sign -rawin -inkey key.pem -in '{what}' -out '{}.sig'",
                    served.display()
                ),
            );
            assert_eq!(
                std::fs::metadata(format!("{}.sig", served.display()))
                    .unwrap()
                    .len(),
                64
            );
        }
        let (primary, url) = start_primary_for_actions(
            &home,
            "",
            &[(
                "PIVITALS_AGENT_BINARIES",
                served.parent().unwrap().display().to_string(),
            )],
        );
        let agent = Supervised::start_with(
            &home,
            &format!("{case}-1"),
            "stack=6",
            &url,
            true,
            true,
            &[("PIVITALS_ACTIONS__UPDATE_PUBLIC_KEY", public_key.as_str())],
        );
        (primary, url, agent, sha256(&old), sha256(&next))
    };
    let sig_url = |url: &str| format!("{url}/agent/{}.sig", served_arch());

    // (a) Signed with the key: installed.
    let (_primary, url, agent, _, next_sha) = stack("signed", Some("served"));
    let served_sig = pivitals_testkit::http::get(&sig_url(&url)).unwrap();
    assert_eq!(served_sig.status, 200);
    assert_eq!(served_sig.body.len(), 64);
    let (id, _) = roll(&url, json!({"nodes": ["signed-1"], "timeout": "60s"}));
    let (view, _) = follow(&url, &id, Duration::from_secs(120));
    assert_eq!(view["state"], "done", "{view}\n{}", agent.log());
    assert_eq!(states(&view), pairs(&[("signed-1", "updated")]));
    assert_eq!(agent.binary_sha256(), next_sha);
    assert_eq!(*agent.exits.lock().unwrap(), [Some(UPDATE_EXIT_CODE)]);
    assert!(agent.running());

    // (b) A signature of another file, (c) no signature at all: failed, nothing changed.
    for (case, sign, needle) in [
        ("forged", Some("other"), "not signed by"),
        ("unsigned", None, "no signature"),
    ] {
        let (_primary, url, agent, old_sha, _) = stack(case, sign);
        if sign.is_none() {
            let (status, reply) = json_request("GET", &sig_url(&url), None, &Value::Null);
            assert_eq!(status, 404, "{reply}");
            assert!(reply["error"].as_str().unwrap().contains(".sig"), "{reply}");
        }
        let node = format!("{case}-1");
        let (id, _) = roll(&url, json!({"nodes": [node], "timeout": "60s"}));
        let (view, _) = follow(&url, &id, Duration::from_secs(60));
        assert_eq!(view["state"], "failed", "{view}");
        assert_eq!(states(&view), pairs(&[(node.as_str(), "failed")]));
        let message = view["nodes"][0]["message"].as_str().unwrap();
        assert!(
            message.contains(needle) && message.contains("untouched"),
            "{case}: {message}"
        );
        agent.assert_old_binary_kept(&old_sha, case);
    }
}

#[test]
fn the_dashboard_updates_a_stack_and_shows_each_node_in_place() {
    required("chromium");
    required("chromedriver");
    let dir = tempfile::tempdir().unwrap();
    let Builds { next, served, .. } = builds(dir.path());
    let (_primary, url) = start_primary_for_actions(
        dir.path(),
        "",
        &[(
            "PIVITALS_AGENT_BINARIES",
            served.parent().unwrap().display().to_string(),
        )],
    );
    let agents = [
        Supervised::start(dir.path(), "web-1", "stack=5,position=1", &url, true, true),
        Supervised::start(dir.path(), "web-2", "stack=5,position=2", &url, true, true),
    ];
    let driver = Driver::start(dir.path());
    let session = Session::new(&driver, &dir.path().join("profile"));
    session.go(&format!("{url}/"));
    let wait_for = |what: &str, script: &str| {
        eventually(what, WITHIN, || {
            let value = session.eval(script);
            (!value.is_null() && value != json!(false)).then_some(value)
        })
    };
    wait_for(
        "two cards",
        "return document.querySelectorAll('article.card').length === 2",
    );
    session.type_into("#signin-token", ADMIN);
    session.click("#signin-button");
    wait_for(
        "signed in",
        "return !document.getElementById('signed-in').hidden",
    );
    session.click("#view-stacks");
    wait_for(
        "the stack view",
        "return location.hash === '#stacks' && !!document.querySelector(\".rack[data-stack='5'] button[data-action='update']\")",
    );
    session.click(".rack[data-stack='5'] button[data-action='update']");
    let rows = wait_for(
        "the update finished",
        "const box = document.querySelector(\".rack[data-stack='5'] .action-result[data-action='update']\"); \
         if (!box || box.dataset.state !== 'final') return null; \
         return [...box.querySelectorAll('tbody tr')].map(tr => [tr.dataset.node, tr.dataset.state]);",
    );
    let logs: String = agents.iter().map(|a| a.log()).collect();
    assert_eq!(
        rows,
        json!([["web-1", "updated"], ["web-2", "updated"]]),
        "{logs}"
    );
    for agent in &agents {
        assert_eq!(agent.binary_sha256(), sha256(&next), "{}", agent.name);
    }
}
