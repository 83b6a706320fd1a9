//! Actions end to end against primary binaries: the admin's requests, nodes registered with
//! labels, agents started with an `[actions.*]` settings file, waiting for every result, and the
//! `action` lines in the archive files.
//!
//! Blocking, like [`crate::http`]: for plain `#[test]`s that run the real binaries. A primary
//! started here has the harness's [`ADMIN`] token and no self-monitoring, so the only nodes are
//! the test's own.

use std::path::Path;
use std::time::Duration;

use pivitals_common::RegisterRequest;
use serde_json::Value;

pub use crate::archive::archived;
use crate::free_port;
use crate::harness::binaries::start_primary_with_config;
use crate::harness::{ADMIN, ENROLL, Proc, eventually, workspace_binary};
use crate::http::{self, HttpResponse};
use crate::samples::register_request;

/// How long the helpers here wait for a result, a registration or an archive line.
pub const WITHIN: Duration = Duration::from_secs(30);

/// The primary binary on a free port with the admin token, self-monitoring off, `settings` as
/// its settings file (`""` for none) and `extra` settings after those; the process and its URL.
pub fn start_primary_for_actions(
    dir: &Path,
    settings: &str,
    extra: &[(&str, String)],
) -> (Proc, String) {
    let port = free_port();
    let mut env = vec![
        ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let primary = start_primary_with_config(dir, port, settings, &env);
    (primary, format!("http://127.0.0.1:{port}"))
}

/// `method` on `url` with `body` as JSON (none when `Null`) and `token` as the bearer token;
/// the status and the answer's JSON (`Null` when it has none).
pub fn json_request(method: &str, url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .iter()
        .map(|auth| ("Authorization", auth.as_str()))
        .collect();
    let response = send_json(method, url, &headers, body);
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

/// `method` on `url` with `body` as JSON (none when `Null`) and `headers` besides its
/// Content-Type; the whole answer, for tests that read its headers too.
pub fn send_json(method: &str, url: &str, headers: &[(&str, &str)], body: &Value) -> HttpResponse {
    let mut all = vec![("Content-Type", "application/json")];
    all.extend_from_slice(headers);
    let bytes = if body.is_null() {
        Vec::new()
    } else {
        body.to_string().into_bytes()
    };
    http::request(method, url, &all, &bytes).unwrap_or_else(|e| panic!("{method} {url}: {e}"))
}

/// Registers `request` at the primary `url` with the harness's enrollment token; the node's
/// token.
pub fn register(url: &str, request: &RegisterRequest) -> String {
    let body = serde_json::to_value(request).expect("a registration is JSON");
    let (status, reply) = json_request(
        "POST",
        &format!("{url}/api/v1/register"),
        Some(ENROLL),
        &body,
    );
    assert_eq!(status, 200, "{reply}");
    reply["node_token"]
        .as_str()
        .unwrap_or_else(|| panic!("node_token in {reply}"))
        .to_owned()
}

/// Registers `name` with `labels` at the primary `url`, with no agent behind it; its node token.
pub fn register_labelled(url: &str, name: &str, labels: &[(&str, &str)]) -> String {
    let mut request = register_request(name);
    request.labels = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    register(url, &request)
}

/// The agent binary as node `name` labelled `stack=<stack>`, pushing every second to `url`,
/// with `settings` (its `[actions.*]` tables) as its settings file `<dir>/<name>.toml`, its
/// state in `<dir>/<name>`; returns once it has registered (its credential is on disk).
pub fn start_agent_with_actions(
    dir: &Path,
    name: &str,
    stack: &str,
    url: &str,
    settings: &str,
) -> Proc {
    start_labelled_agent_with_actions(dir, name, &format!("stack={stack}"), url, settings)
}

/// [`start_agent_with_actions`] with all of the node's labels given (`key=value,…`).
pub fn start_labelled_agent_with_actions(
    dir: &Path,
    name: &str,
    labels: &str,
    url: &str,
    settings: &str,
) -> Proc {
    let file = dir.join(format!("{name}.toml"));
    std::fs::write(&file, settings).expect("the agent's settings file");
    let env = [
        ("PIVITALS_PRIMARY_URL", url.to_owned()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", name.to_owned()),
        ("PIVITALS_INTERVAL", "1s".to_owned()),
        ("PIVITALS_START_JITTER", "false".to_owned()),
        ("PIVITALS_LABELS", labels.to_owned()),
        ("PIVITALS_STATE_DIR", dir.join(name).display().to_string()),
    ];
    let agent = Proc::spawn_with_args(
        name,
        &workspace_binary("pivitals-agent"),
        &["--config".as_ref(), file.as_os_str()],
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

/// Asks the primary at `url` for `body` with the admin token and asserts 202; the action's id
/// and its targets (as the primary sorts them).
pub fn ask(url: &str, body: &Value) -> (String, Vec<String>) {
    let (status, reply) = json_request("POST", &format!("{url}/api/v1/actions"), Some(ADMIN), body);
    assert_eq!(status, 202, "{body}: {reply}");
    let targets = reply["targets"]
        .as_array()
        .unwrap_or_else(|| panic!("targets in {reply}"))
        .iter()
        .map(|t| t.as_str().unwrap_or_default().to_owned())
        .collect();
    let id = reply["id"]
        .as_str()
        .unwrap_or_else(|| panic!("id in {reply}"));
    (id.to_owned(), targets)
}

/// Action `id` as the primary at `url` shows it to the admin.
pub fn show(url: &str, id: &str) -> Value {
    let (status, body) = json_request(
        "GET",
        &format!("{url}/api/v1/actions/{id}"),
        Some(ADMIN),
        &Value::Null,
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits (at most `within`) until no target of action `id` is `queued` or `sent`; its results
/// then, in the primary's order (by node).
pub fn finished(url: &str, id: &str, within: Duration) -> Vec<Value> {
    eventually(&format!("every result of {id}"), within, || {
        let results = show(url, id)["results"].as_array()?.clone();
        results
            .iter()
            .all(|r| !matches!(r["state"].as_str(), Some("queued" | "sent")))
            .then_some(results)
    })
}

/// Waits for the archived `action` line of action `id` for target `node`; the line.
pub fn archived_action(data_dir: &Path, id: &str, node: &str) -> String {
    let id = format!("id=\"{id}\"");
    let tagged = [format!(",node={node},"), format!(",node={node} ")];
    eventually(
        &format!("the action line of {id} for {node}"),
        WITHIN,
        || {
            archived(data_dir, "action")
                .into_iter()
                .find(|l| l.contains(&id) && tagged.iter().any(|t| l.contains(t)))
        },
    )
}
