//! Helpers for the tests that run the real binaries: find them, start them with an
//! environment and a log file, signal them, and poll until a condition holds.

#![allow(dead_code)] // Each test crate uses its own subset.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub const ENROLL: &str = "e2e-enrollment-token-000001";

/// A workspace binary built next to this test (`target/<profile>/NAME`).
pub fn workspace_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(name))
        .expect("target directory");
    assert!(
        path.is_file(),
        "{} is missing: build it first (cargo build --workspace --bins, which scripts/test.sh does)",
        path.display()
    );
    path
}

/// A running binary; killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &str, program: &Path, env: &[(&str, String)], log_dir: &Path) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log handle");
        let mut command = Command::new(program);
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        command
            .env_remove("PIVITALS_PRIMARY_URL")
            .env("PIVITALS_LOG", "info");
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        Proc {
            name: name.to_owned(),
            child,
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} {}", self.name);
    }

    /// SIGTERM, then waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.signal("-TERM");
        self.wait(within)
    }

    /// SIGKILL: no goodbye, no flush.
    pub fn kill_hard(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}; log:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 200 ms until it gives `Some`, or panics after `within` with `what`.
pub fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A primary binary on a free loopback port with its data in `dir`.
pub fn start_primary(dir: &Path, port: u16, extra: &[(&str, String)]) -> Proc {
    let mut env = vec![
        ("PIVITALS_LISTEN", format!("127.0.0.1:{port}")),
        (
            "PIVITALS_DATA_DIR",
            dir.join("primary").display().to_string(),
        ),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_BATCH__FLUSH_INTERVAL", "500ms".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let mut primary = Proc::spawn("primary", &workspace_binary("pivitals-primary"), &env, dir);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    while pivitals_testkit::http::get(&url).map(|r| r.status) != Ok(200) {
        assert!(
            primary.is_running(),
            "primary exited:\n{}",
            primary.log_tail()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "primary did not answer:\n{}",
            primary.log_tail()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    primary
}

/// An agent binary pushing to `primary_url` every `interval`.
pub fn start_agent(dir: &Path, name: &str, primary_url: &str, interval: &str) -> Proc {
    let env = [
        ("PIVITALS_PRIMARY_URL", primary_url.to_owned()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", name.to_owned()),
        ("PIVITALS_INTERVAL", interval.to_owned()),
        ("PIVITALS_LABELS", "stack=7,role=worker".to_owned()),
        ("PIVITALS_STATE_DIR", dir.join(name).display().to_string()),
    ];
    Proc::spawn(name, &workspace_binary("pivitals-agent"), &env, dir)
}

/// `GET` a JSON document from the primary.
pub fn get_json(url: &str) -> serde_json::Value {
    let response = pivitals_testkit::http::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status, 200, "GET {url}: {}", response.text());
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The status the primary reports for `node`.
pub fn node_status(primary_url: &str, node: &str) -> String {
    let node = get_json(&format!("{primary_url}/api/v1/nodes/{node}"));
    node["status"].as_str().unwrap_or_default().to_owned()
}

/// A primary binary writing to a real InfluxDB 1.x (database `db`) with self-monitoring off;
/// `extra` settings come after, so they win.
pub fn start_primary_on_influx_v1(
    dir: &Path,
    port: u16,
    influx: &pivitals_testkit::InfluxV1,
    db: &str,
    extra: &[(&str, String)],
) -> Proc {
    let mut env = vec![
        ("PIVITALS_INFLUX__API", "v1".to_owned()),
        ("PIVITALS_INFLUX__URL", influx.url()),
        ("PIVITALS_INFLUX__DATABASE", db.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    start_primary(dir, port, &env)
}

impl Proc {
    /// SIGTERM, then asserts a clean exit within `within` (the log tail otherwise).
    pub fn stop_cleanly(&mut self, within: Duration) {
        let status = self.terminate(within);
        assert!(
            status.success(),
            "{} exit {status}:\n{}",
            self.name,
            self.log_tail()
        );
    }
}

/// The rows of the first series of an InfluxQL answer.
pub fn rows(answer: &serde_json::Value) -> Vec<Vec<serde_json::Value>> {
    answer["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}
