//! Spawning a server binary with its output in a log file, waiting until it answers, and
//! stopping it again (gracefully or not).

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its health check.
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(30);

/// How long [`Server::terminate`] waits after SIGTERM before it sends SIGKILL.
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(30);

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
    /// Spawns `program args` with stdout and stderr appended to `log` (created if missing, so
    /// a restarted server's log follows the previous run's).
    pub(crate) fn spawn(program: &Path, args: &[String], log: &Path) -> Result<Server, String> {
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| format!("open {}: {e}", log.display()))?;
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
        log_tail(&self.log)
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; sends SIGKILL if it
    /// has not by then. Returns the exit status (already exited processes just report it).
    pub(crate) fn terminate(&mut self, timeout: Duration) -> Result<ExitStatus, String> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // The child has not been reaped (try_wait said it is running, or a zombie), so its
        // pid still belongs to it and cannot have been reused.
        sigterm(&self.child)?;
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill()
    }

    /// Sends SIGKILL (like a crash or power loss) and reaps the process.
    pub(crate) fn kill(&mut self) -> Result<ExitStatus, String> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // Fails only when the process already exited, which `wait` then reports.
        let _ = self.child.kill();
        self.child
            .wait()
            .map_err(|e| format!("wait for server: {e}"))
    }

    fn try_wait(&mut self) -> Result<Option<ExitStatus>, String> {
        self.child
            .try_wait()
            .map_err(|e| format!("check server process: {e}"))
    }
}

/// The last 40 lines of a log file (empty when it cannot be read).
pub(crate) fn log_tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(unix)]
fn sigterm(child: &Child) -> Result<(), String> {
    unsafe extern "C" {
        // From the C library std already links; `pid_t` is `i32` on every Unix Rust supports.
        fn kill(pid: i32, sig: i32) -> i32;
    }
    const SIGTERM: i32 = 15;
    let pid = i32::try_from(child.id()).map_err(|_| format!("pid {} too large", child.id()))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; the pid is our own
    // unreaped child.
    if unsafe { kill(pid, SIGTERM) } == 0 {
        Ok(())
    } else {
        Err(format!(
            "SIGTERM to pid {pid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(unix))]
fn sigterm(child: &Child) -> Result<(), String> {
    let _ = child;
    Err("graceful stop needs Unix signals".to_owned())
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
