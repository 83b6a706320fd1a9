//! Spawning a server binary with its output in a log file, waiting until it answers, and
//! killing it again.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its health check.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running server process; killed (and reaped) on drop.
pub(crate) struct Server {
    child: Child,
    log: PathBuf,
}

/// Finds `name` in `/usr/bin` or on `PATH`.
pub(crate) fn find_binary(name: &str) -> Option<PathBuf> {
    let usr_bin = Path::new("/usr/bin").join(name);
    if usr_bin.is_file() {
        return Some(usr_bin);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

impl Server {
    /// Spawns `program args` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Server, String> {
        let out = File::create(log).map_err(|e| format!("create {}: {e}", log.display()))?;
        let err = out
            .try_clone()
            .map_err(|e| format!("clone log handle: {e}"))?;
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", program.display()))?;
        Ok(Server {
            child,
            log: log.to_owned(),
        })
    }

    /// Polls `ready` every 50 ms until it returns true, the process exits, or
    /// [`START_TIMEOUT`] passes; errors carry the tail of the log.
    pub(crate) fn wait_until(
        &mut self,
        what: &str,
        ready: impl Fn() -> bool,
    ) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready() {
                return Ok(());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{what} exited with {status} before it answered; log tail:\n{}",
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what} did not answer within {START_TIMEOUT:?}; log tail:\n{}",
                    self.log_tail()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The last 40 lines of the server's log.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// True when a start-up failure looks like a lost race for a port from [`crate::free_port`].
pub(crate) fn lost_port_race(error: &str) -> bool {
    error.contains("address already in use")
}
