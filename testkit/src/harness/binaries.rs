//! The workspace's binaries as processes: found next to the test executable, started with an
//! environment of the test's choosing (nothing `PIVITALS_*` leaks in from the caller's shell)
//! and a log file, signalled, and waited for.

use std::ffi::OsStr;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::ENROLL;
use crate::InfluxV1;

/// A workspace binary built next to the running test (`target/<profile>/NAME`).
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

/// A command for `program` without the caller's `PIVITALS_*`, `STATE_DIRECTORY` and
/// `RUST_LOG` variables, so only what the test sets decides.
pub fn command(program: &Path) -> Command {
    let mut command = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        if key.starts_with("PIVITALS_") || key == "STATE_DIRECTORY" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

/// Reads `child`'s piped stderr until a line contains `needle` (Ok) or `within` passes (Err
/// with the lines read), then kills the child.
pub fn wait_for_stderr_line(
    child: &mut Child,
    needle: &str,
    within: Duration,
) -> Result<(), Vec<String>> {
    use std::io::{BufRead, BufReader};
    let stderr = child.stderr.take().expect("stderr is piped");
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + within;
    let mut log = Vec::new();
    let found = loop {
        match received.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => break true,
            Ok(line) => log.push(line),
            Err(_) => break false,
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    if found { Ok(()) } else { Err(log) }
}

/// A running binary with its stdout and stderr in `<log_dir>/<name>.log`; killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `program` with `PIVITALS_LOG=info` and `env` (later pairs win).
    pub fn spawn(name: &str, program: &Path, env: &[(&str, String)], log_dir: &Path) -> Proc {
        Proc::spawn_with_args(name, program, &[], env, log_dir)
    }

    /// [`Proc::spawn`] with command-line `args`.
    pub fn spawn_with_args(
        name: &str,
        program: &Path,
        args: &[&OsStr],
        env: &[(&str, String)],
        log_dir: &Path,
    ) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log handle");
        let mut command = command(program);
        command.args(args);
        command.stdin(Stdio::null()).stdout(out).stderr(err);
        command.env("PIVITALS_LOG", "info");
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

    /// Sends SIGTERM and returns at once (for tests that must not block their runtime).
    pub fn sigterm(&self) {
        self.signal("-TERM");
    }

    /// SIGTERM, then waits up to `within` for the exit.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        self.sigterm();
        self.wait(within)
    }

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

    /// SIGKILL: no goodbye, no flush.
    pub fn kill_hard(&mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// Blocks until the process exits, at most `within`.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exit_status() {
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

    /// The exit status when the process has exited, without waiting.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last 30 lines of the log.
    pub fn log_tail(&self) -> String {
        let text = self.log();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// The whole log so far.
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

/// The primary binary on `127.0.0.1:port` with its data in `<dir>/primary`, the harness's
/// enrollment token and a 500 ms flush interval; `extra` settings come after, so they win.
/// Returns once `/healthz` answers 200.
pub fn start_primary(dir: &Path, port: u16, extra: &[(&str, String)]) -> Proc {
    spawn_primary(dir, port, &[], extra)
}

/// [`start_primary`] with the settings file `<dir>/primary.toml` holding `config_toml`,
/// passed as `--config`; the environment (defaults, then `extra`) wins over the file.
pub fn start_primary_with_config(
    dir: &Path,
    port: u16,
    config_toml: &str,
    extra: &[(&str, String)],
) -> Proc {
    let file = dir.join("primary.toml");
    std::fs::write(&file, config_toml).expect("settings file");
    spawn_primary(dir, port, &["--config".as_ref(), file.as_os_str()], extra)
}

fn spawn_primary(dir: &Path, port: u16, args: &[&OsStr], extra: &[(&str, String)]) -> Proc {
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
    let program = workspace_binary("pivitals-primary");
    let mut primary = Proc::spawn_with_args("primary", &program, args, &env, dir);
    let url = format!("http://127.0.0.1:{port}/healthz");
    let started = Instant::now();
    while crate::http::get(&url).map(|r| r.status) != Ok(200) {
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

/// [`start_primary`] writing to a real InfluxDB 1.x (database `db`) with self-monitoring off;
/// `extra` settings come after, so they win.
pub fn start_primary_on_influx_v1(
    dir: &Path,
    port: u16,
    influx: &InfluxV1,
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

/// The agent binary pushing to `primary_url` every `interval` as node `name`, labelled
/// `stack=7,role=worker`, its state in `<dir>/<name>` and its log in `<dir>/<name>.log`.
pub fn start_agent(dir: &Path, name: &str, primary_url: &str, interval: &str) -> Proc {
    start_agent_with(dir, name, primary_url, interval, &[])
}

/// [`start_agent`] with `extra` settings, which win over the defaults.
pub fn start_agent_with(
    dir: &Path,
    name: &str,
    primary_url: &str,
    interval: &str,
    extra: &[(&str, String)],
) -> Proc {
    let mut env = vec![
        ("PIVITALS_PRIMARY_URL", primary_url.to_owned()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", name.to_owned()),
        ("PIVITALS_INTERVAL", interval.to_owned()),
        ("PIVITALS_LABELS", "stack=7,role=worker".to_owned()),
        ("PIVITALS_STATE_DIR", dir.join(name).display().to_string()),
    ];
    env.extend(extra.iter().cloned());
    Proc::spawn(name, &workspace_binary("pivitals-agent"), &env, dir)
}
