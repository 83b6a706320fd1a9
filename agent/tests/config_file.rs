//! The `pivitals-agent` binary refuses a settings file with an unknown key, naming the key and
//! the file, and starts with the same file once the typo is fixed.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use pivitals_testkit::harness::{command, wait_for_stderr_line};

const AGENT: &str = env!("CARGO_BIN_EXE_pivitals-agent");

/// The file's layout; `tls_line` is the `[tls]` line that holds the typo or not. Nothing
/// listens at the primary's address: the agent starts and keeps its samples.
fn settings(state_dir: &Path, tls_line: &str) -> String {
    format!(
        "primary_url = \"http://127.0.0.1:9\"\n\
         enroll_token = \"0123456789abcdef0123\"\n\
         node_name = \"pi-config\"\n\
         state_dir = {state_dir:?}\n\
         start_jitter = false\n\
         [labels]\nstack = \"a\"\n\
         [tls]\ninsecure_skip_verify = false\n{tls_line}\n"
    )
}

/// The agent with `file` and no `PIVITALS_*` of the caller's but a primary's variable, which it
/// must ignore.
fn agent(file: &Path) -> Child {
    command(Path::new(AGENT))
        .arg("--config")
        .arg(file)
        .env("PIVITALS_LOG", "info")
        .env("PIVITALS_INFLUX__URL", "http://influxdb:8086")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pivitals-agent")
}

#[test]
fn an_unknown_key_stops_the_agent_with_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    let text = settings(
        &dir.path().join("state"),
        "ca_fil = \"/etc/pivitals/ca.pem\"",
    );
    std::fs::write(&file, text).unwrap();
    let output = agent(&file).wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(2), "a configuration error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "pivitals-agent: config file {}: unknown key `tls.ca_fil` (expected one of ca, insecure_skip_verify)",
            file.display()
        ),
        "{stderr}"
    );
}

#[test]
fn the_same_file_without_the_typo_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.toml");
    std::fs::write(&file, settings(&dir.path().join("state"), "")).unwrap();
    let mut child = agent(&file);
    if let Err(log) = wait_for_stderr_line(
        &mut child,
        "pivitals-agent started",
        Duration::from_secs(30),
    ) {
        panic!("no \"pivitals-agent started\" in:\n{}", log.join("\n"));
    }
}
