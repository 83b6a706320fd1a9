//! Running one command of an action: its own process group, output captured up to a limit,
//! killed with its group past the timeout.

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pivitals_common::actions::MAX_ACTION_OUTPUT;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

/// How a command ended.
#[derive(Debug)]
pub(super) enum Outcome {
    /// It could not be started (no such program, not executable, …).
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
pub(super) struct Output {
    pub bytes: Vec<u8>,
    /// Whether more than [`MAX_ACTION_OUTPUT`] bytes came and the rest was discarded.
    pub truncated: bool,
}

impl Output {
    fn push(&mut self, chunk: &[u8]) {
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

/// Runs `argv` (not empty) in a process group of its own, stdin null, until it exits and its
/// pipes close or `timeout` passes, when the whole group is killed.
///
/// The output sits behind a (never contended) mutex rather than a `RefCell` so that the future
/// is `Send`: the agent may run as a task on a multi-thread runtime.
pub(super) async fn run(argv: &[String], timeout: Duration) -> (Outcome, Output) {
    let output = Mutex::new(Output::default());
    let mut child = match Command::new(&argv[0])
        .args(&argv[1..])
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

/// How an exit status reads in a message: `exited with 3`, `killed by signal 9`.
pub(super) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
