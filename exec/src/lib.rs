//! Running one command of an action: the one runner behind an agent's `[actions.NAME]` and the
//! primary's `[actions.host.NAME]`.
//!
//! **What it runs.** The argv it is given, program first, never through a shell; stdin from
//! `/dev/null`, the caller's environment plus the variables the caller adds. Which argv may run
//! is the caller's decision (its own settings); this crate only runs it.
//!
//! **How it ends.** The command leads a process group of its own. It has ended when the process
//! has exited and both of its pipes are closed, so a background child that keeps them open
//! counts as part of it. Past the timeout the whole group is killed with `SIGKILL` and the
//! leader reaped; a dropped run kills its leader (`kill_on_drop`).
//!
//! **What it keeps.** Stdout and stderr are read together as they come; the first
//! [`MAX_ACTION_OUTPUT`] bytes are kept and the rest read and discarded ([`Output::truncated`]),
//! so a chatty command never blocks on a full pipe. As text, invalid UTF-8 is replaced and a
//! character cut by the limit dropped.
//!
//! **How it answers.** [`run`] gives the [`Outcome`] and the [`Output`]; [`run_action`] turns
//! them into an [`ActionResult`]:
//!
//! | outcome                     | state       | exit code | message                                   |
//! |-----------------------------|-------------|-----------|-------------------------------------------|
//! | exited 0                    | `done`      | 0         | none                                      |
//! | exited otherwise, or signal | `failed`    | the code  | `exited with 3`, `killed by signal 9`     |
//! | not started                 | `failed`    | none      | `cannot start "prog": …`                  |
//! | past the timeout            | `timed_out` | none      | `still running after 10s; its process group was killed` |
//! | waiting failed              | `failed`    | none      | `waiting for it failed: …`                |
//!
//! **Architecture Invariant:** this crate knows only `common` (the result type and the output
//! limit): no settings, no HTTP, no node. It is Unix only (process groups, `kill(2)`).

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use pivitals_common::actions::{ActionResult, ActionState, MAX_ACTION_OUTPUT};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How a command ended.
#[derive(Debug)]
pub enum Outcome {
    /// It could not be started (empty argv, no such program, not executable, …).
    NotStarted(std::io::Error),
    /// It exited (or was ended by a signal) and its pipes closed.
    Exited(ExitStatus),
    /// It ran past its timeout; its process group was killed.
    TimedOut,
    /// Waiting for it failed.
    WaitFailed(std::io::Error),
}

/// What a command wrote, stdout and stderr together in the order they were read.
#[derive(Debug, Default)]
pub struct Output {
    /// At most [`MAX_ACTION_OUTPUT`] bytes.
    pub bytes: Vec<u8>,
    /// Whether more than [`MAX_ACTION_OUTPUT`] bytes came and the rest was discarded.
    pub truncated: bool,
}

impl Output {
    /// Appends what fits under [`MAX_ACTION_OUTPUT`]; the rest marks the output truncated.
    pub fn push(&mut self, chunk: &[u8]) {
        let room = MAX_ACTION_OUTPUT - self.bytes.len();
        if chunk.len() > room {
            self.truncated = true;
        }
        self.bytes
            .extend_from_slice(&chunk[..chunk.len().min(room)]);
    }

    /// The output as text, invalid UTF-8 replaced, at most [`MAX_ACTION_OUTPUT`] bytes (a
    /// character cut by the limit is dropped).
    pub fn text(&self) -> String {
        let mut bytes = self.bytes.as_slice();
        if self.truncated
            && let Err(e) = std::str::from_utf8(bytes)
            && e.error_len().is_none()
        {
            bytes = &bytes[..e.valid_up_to()];
        }
        let mut text = String::from_utf8_lossy(bytes).into_owned();
        let mut end = text.len().min(MAX_ACTION_OUTPUT);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text
    }
}

/// Runs `argv` with `env` added to the environment, in a process group of its own, stdin null,
/// until it exits and its pipes close or `timeout` passes, when the whole group is killed.
///
/// The output sits behind a (never contended) mutex rather than a `RefCell` so that the future
/// is `Send`: callers run it as a task on a multi-thread runtime.
pub async fn run(argv: &[String], env: &[(&str, &str)], timeout: Duration) -> (Outcome, Output) {
    let output = Mutex::new(Output::default());
    let Some((program, args)) = argv.split_first() else {
        let empty = std::io::Error::new(std::io::ErrorKind::InvalidInput, "the argv is empty");
        return (Outcome::NotStarted(empty), Output::default());
    };
    let mut child = match Command::new(program)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => return (Outcome::NotStarted(e), into_inner(output)),
    };
    // The group's id is the leader's pid; kept now, since `id()` is None once it is reaped.
    let pgid = child.id().and_then(|pid| i32::try_from(pid).ok());
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();

    let finished = tokio::time::timeout(timeout, async {
        let (status, (), ()) =
            tokio::join!(child.wait(), drain(stdout, &output), drain(stderr, &output));
        status
    })
    .await;
    let outcome = match finished {
        Ok(Ok(status)) => Outcome::Exited(status),
        Ok(Err(e)) => Outcome::WaitFailed(e),
        Err(_elapsed) => {
            if let Some(pgid) = pgid {
                kill_group(pgid);
            }
            // Reaps the leader; SIGKILL cannot be ignored, so this is quick.
            let _ = child.wait().await;
            Outcome::TimedOut
        }
    };
    (outcome, into_inner(output))
}

/// [`run`], answered as an action: the state, exit code, message and output of the table above.
/// The id is left empty for the caller; the duration is the run's own.
pub async fn run_action(argv: &[String], env: &[(&str, &str)], timeout: Duration) -> ActionResult {
    let started = Instant::now();
    let (outcome, output) = run(argv, env, timeout).await;
    let (state, exit_code, message) = match outcome {
        Outcome::NotStarted(e) => (
            ActionState::Failed,
            None,
            Some(format!(
                "cannot start {:?}: {e}",
                argv.first().map_or("", String::as_str)
            )),
        ),
        Outcome::Exited(status) if status.success() => (ActionState::Done, Some(0), None),
        Outcome::Exited(status) => (ActionState::Failed, status.code(), Some(describe(status))),
        Outcome::TimedOut => (
            ActionState::TimedOut,
            None,
            Some(format!(
                "still running after {}; its process group was killed",
                humantime::format_duration(timeout)
            )),
        ),
        Outcome::WaitFailed(e) => (
            ActionState::Failed,
            None,
            Some(format!("waiting for it failed: {e}")),
        ),
    };
    ActionResult {
        id: String::new(),
        state,
        exit_code,
        output: output.text(),
        truncated: output.truncated,
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        message,
    }
}

/// How an exit status reads in a message: `exited with 3`, `killed by signal 9`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

fn into_inner(output: Mutex<Output>) -> Output {
    output.into_inner().unwrap_or_else(PoisonError::into_inner)
}

/// Reads `pipe` to its end into `output`; a read error ends it like the end of the pipe.
async fn drain(pipe: Option<impl AsyncRead + Unpin>, output: &Mutex<Output>) {
    let Some(mut pipe) = pipe else { return };
    let mut chunk = [0u8; 8192];
    loop {
        match pipe.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => output
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(&chunk[..n]),
        }
    }
}

/// Sends `SIGKILL` to every process of the group `pgid`. The id cannot have been reused while
/// any process of the group lives; once all are gone the call fails with `ESRCH`, ignored.
fn kill_group(pgid: i32) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let _ = unsafe { libc::kill(-pgid, libc::SIGKILL) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["sh".into(), "-c".into(), script.into()]
    }

    const T: Duration = Duration::from_secs(10);

    #[test]
    fn output_keeps_the_first_bytes_and_says_it_was_cut() {
        let mut output = Output::default();
        output.push(&[b'a'; 1000]);
        assert!(!output.truncated);
        output.push(&vec![b'b'; MAX_ACTION_OUTPUT]);
        assert!(output.truncated);
        assert_eq!(output.bytes.len(), MAX_ACTION_OUTPUT);
        output.push(b"more");
        assert_eq!(output.bytes.len(), MAX_ACTION_OUTPUT);
        assert_eq!(output.text().len(), MAX_ACTION_OUTPUT);
    }

    #[test]
    fn a_character_cut_by_the_limit_is_dropped() {
        let mut output = Output::default();
        output.push(&vec![b'a'; MAX_ACTION_OUTPUT - 1]);
        output.push("é".as_bytes());
        assert!(output.truncated);
        let text = output.text();
        assert_eq!(text.len(), MAX_ACTION_OUTPUT - 1);
        assert!(text.bytes().all(|b| b == b'a'));
    }

    #[tokio::test]
    async fn the_added_variables_reach_the_command() {
        let env = [("PIVITALS_EXEC_WORD", "hello")];
        let result = run_action(&sh("echo $PIVITALS_EXEC_WORD"), &env, T).await;
        assert_eq!(result.state, ActionState::Done, "{result:?}");
        assert_eq!(
            (result.output.as_str(), result.exit_code),
            ("hello\n", Some(0))
        );
        assert_eq!((result.id.as_str(), result.message), ("", None));
    }

    #[tokio::test]
    async fn failures_say_how_the_command_ended() {
        let four = run_action(&sh("exit 4"), &[], T).await;
        assert_eq!((four.state, four.exit_code), (ActionState::Failed, Some(4)));
        assert_eq!(four.message.as_deref(), Some("exited with 4"));

        let signalled = run_action(&sh("kill -9 $$"), &[], T).await;
        assert_eq!(
            (signalled.state, signalled.exit_code),
            (ActionState::Failed, None)
        );
        assert_eq!(signalled.message.as_deref(), Some("killed by signal 9"));

        for argv in [
            vec!["/nonexistent/pivitals-no-such-program".to_owned()],
            vec![],
        ] {
            let missing = run_action(&argv, &[], T).await;
            assert_eq!(
                (missing.state, missing.exit_code),
                (ActionState::Failed, None)
            );
            let message = missing.message.unwrap();
            assert!(message.starts_with("cannot start"), "{message}");
        }
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group_and_keeps_what_came_before() {
        let pid_file = tempfile::NamedTempFile::new().unwrap();
        // The background sleep holds the pipes: only killing the whole group ends the run.
        let script = format!(
            "echo started; sleep 30 & echo $! > {}; wait",
            pid_file.path().display()
        );
        let result = run_action(&sh(&script), &[], Duration::from_millis(500)).await;
        assert_eq!(result.state, ActionState::TimedOut, "{result:?}");
        // Well before the background sleep's 30 s: the run did not wait for the group to end.
        assert!(result.duration_ms < 10_000, "{result:?}");
        assert_eq!(
            (result.output.as_str(), result.exit_code),
            ("started\n", None)
        );
        assert_eq!(
            result.message.as_deref(),
            Some("still running after 500ms; its process group was killed")
        );

        let pid: i32 = std::fs::read_to_string(pid_file.path())
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid) {
            assert!(Instant::now() < deadline, "background child {pid} survived");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Whether `pid` runs: it exists and is not a zombie.
    fn alive(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command's closing parenthesis.
            Ok(stat) => stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
            Err(_) => false,
        }
    }

    #[tokio::test]
    async fn output_past_the_limit_is_read_to_the_end_and_cut() {
        // Twice the limit on stdout and some on stderr: the command must not block on a full
        // pipe, and exits 0.
        let script = format!(
            "head -c {} /dev/zero | tr '\\0' x; echo tail >&2",
            2 * MAX_ACTION_OUTPUT
        );
        let result = run_action(&sh(&script), &[], T).await;
        assert_eq!(result.state, ActionState::Done, "{:?}", result.message);
        assert!(result.truncated);
        assert_eq!(result.output.len(), MAX_ACTION_OUTPUT);
    }
}
