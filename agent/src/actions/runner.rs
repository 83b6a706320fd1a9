//! [`Actions`]: looks a requested name up in the node's settings and runs what it names, or the
//! built-in `ping`, `reboot`, `shutdown` and `update`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use pivitals_common::actions::{ActionRequest, ActionResult, ActionState, UPDATE_ACTION};
use tokio::process::Command;

use super::update::{UpdateStart, sha256_of};
use crate::config::{ActionSettings, Config};

/// How long `reboot` and `shutdown` watch their command before answering `accepted`: a command
/// that fails at once (`systemctl` without the right) answers `failed` instead.
pub const POWER_START_CHECK: Duration = Duration::from_millis(250);

/// The actions this node runs: the built-in ones and those of its settings, nothing else.
#[derive(Debug, Clone)]
pub struct Actions {
    settings: ActionSettings,
    /// `proc/uptime` under the configured root.
    uptime_file: PathBuf,
    /// The running executable and its SHA-256, read at start when `allow_update` is on (the
    /// file may be replaced later; the hash stays the one of the running program), or why
    /// they could not be read.
    running: Result<(PathBuf, String), String>,
}

/// What [`Actions::answer`] gives back.
#[derive(Debug)]
pub enum Answer {
    /// The action ran (or was refused): this is its result.
    Result(ActionResult),
    /// An allowed power action, not started yet.
    Power(PowerStart),
    /// An allowed `update` to a binary other than the running one, not downloaded yet.
    Update(UpdateStart),
}

/// A `reboot` or `shutdown` to start once the primary knows it is accepted.
#[derive(Debug)]
pub struct PowerStart {
    id: String,
    argv: Vec<String>,
    started: Instant,
}

impl PowerStart {
    /// The answer to send before starting: `accepted`.
    pub fn accepted(&self) -> ActionResult {
        let mut result = result(ActionState::Accepted, String::new());
        finish(&mut result, &self.id, self.started);
        result
    }

    /// Starts the command and leaves it running: `accepted`, or `failed` if it cannot start or
    /// exits non-zero within [`POWER_START_CHECK`].
    pub async fn start(self) -> ActionResult {
        let mut result = start_power(&self.argv).await;
        finish(&mut result, &self.id, self.started);
        result
    }
}

/// Sets the request's id and the time since it arrived.
fn finish(result: &mut ActionResult, id: &str, started: Instant) {
    result.id = id.to_owned();
    result.duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
}

impl Actions {
    pub fn from_config(config: &Config) -> Self {
        Self::new(config.actions.clone(), &config.root)
    }

    /// `root` is where `proc/` is read, as [`Config::root`].
    pub fn new(settings: ActionSettings, root: &Path) -> Self {
        let running = if settings.allow_update {
            running_executable()
        } else {
            Err("updates are not allowed".into())
        };
        Self {
            settings,
            uptime_file: root.join("proc/uptime"),
            running,
        }
    }

    /// Runs the action `request` names, if this node has one by that name, and answers.
    /// Never fails: every outcome is an [`ActionResult`]. A power action is started here (see
    /// [`Actions::answer`] for answering before it starts).
    pub async fn run(&self, request: &ActionRequest) -> ActionResult {
        match self.answer(request).await {
            Answer::Result(result) => result,
            Answer::Power(power) => power.start().await,
            Answer::Update(update) => {
                let mut result = failed(
                    None,
                    format!(
                        "update from {} needs the primary's client (the agent's action loop)",
                        update.request.url
                    ),
                );
                finish(&mut result, &update.id, update.started);
                result
            }
        }
    }

    /// Like [`Actions::run`], except that an allowed `reboot` or `shutdown` is not started:
    /// it comes back as [`Answer::Power`], for the caller to report `accepted` to the primary
    /// first and then [`PowerStart::start`] it (the node may be gone a moment later).
    pub async fn answer(&self, request: &ActionRequest) -> Answer {
        let started = Instant::now();
        let name = request.action.as_str();
        let mut result = match name {
            "ping" => self.ping(),
            UPDATE_ACTION => match self.update(request, started) {
                Ok(update) => return Answer::Update(update),
                Err(result) => result,
            },
            "reboot" | "shutdown" if !self.settings.allow_power => refused(format!(
                "{name} is not allowed on this node: its config does not set \
                 PIVITALS_ACTIONS__ALLOW_POWER=true ([actions] allow_power = true)"
            )),
            "reboot" | "shutdown" => {
                let argv = if name == "reboot" {
                    &self.settings.reboot_command
                } else {
                    &self.settings.shutdown_command
                };
                return Answer::Power(PowerStart {
                    id: request.id.clone(),
                    argv: argv.clone(),
                    started,
                });
            }
            _ => match self.settings.commands.get(name) {
                Some(action) => {
                    pivitals_exec::run_action(&action.command, &[], action.timeout).await
                }
                None => refused(format!(
                    "unknown action {name:?}: this node's config does not define it"
                )),
            },
        };
        finish(&mut result, &request.id, started);
        Answer::Result(result)
    }

    /// An `update` to start, or the answer without one: refused unless allowed, `done` when
    /// the running binary is already the requested one (or, for `verify_only`, when it is),
    /// `failed` for a request without a binary or a `verify_only` that does not match.
    fn update(
        &self,
        request: &ActionRequest,
        started: Instant,
    ) -> Result<UpdateStart, ActionResult> {
        if !self.settings.allow_update {
            return Err(refused(
                "update is not allowed on this node: its config does not set \
                 PIVITALS_ALLOW_UPDATE=true ([actions] allow_update = true)"
                    .into(),
            ));
        }
        let Some(wanted) = &request.update else {
            return Err(failed(
                None,
                "the update names no binary (url, sha256)".into(),
            ));
        };
        let served_for = wanted.url.rsplit('/').next().unwrap_or_default();
        if !runs_here(served_for) {
            return Err(failed(
                None,
                format!(
                    "the binary at {} is not for this agent's machine ({})",
                    wanted.url,
                    std::env::consts::ARCH
                ),
            ));
        }
        let (executable, sha256) = self
            .running
            .as_ref()
            .map_err(|reason| failed(None, format!("cannot read the running binary: {reason}")))?;
        let running = format!(
            "running {} (sha256 {sha256})",
            pivitals_collect::agent_version()
        );
        if sha256.eq_ignore_ascii_case(&wanted.sha256) {
            return Err(result(ActionState::Done, running));
        }
        if wanted.verify_only {
            return Err(ActionResult {
                output: running,
                ..failed(
                    None,
                    format!("not the binary with sha256 {}", wanted.sha256),
                )
            });
        }
        Ok(UpdateStart {
            id: request.id.clone(),
            request: wanted.clone(),
            executable: executable.clone(),
            public_key: self.settings.update_public_key,
            started,
        })
    }

    /// `pong: up N s`, the host's uptime in whole seconds.
    fn ping(&self) -> ActionResult {
        let uptime = std::fs::read_to_string(&self.uptime_file)
            .map_err(|e| e.to_string())
            .and_then(|text| parse_uptime(&text).ok_or_else(|| format!("cannot read {text:?}")));
        match uptime {
            Ok(secs) => result(ActionState::Done, format!("pong: up {secs} s")),
            Err(reason) => ActionResult {
                message: Some(format!(
                    "uptime unknown ({}: {reason})",
                    self.uptime_file.display()
                )),
                ..result(ActionState::Done, "pong".into())
            },
        }
    }
}

/// The first field of `/proc/uptime` (`12345.67 23456.78`) in whole seconds.
fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    // Truncation is meant: whole seconds of a non-negative, finite uptime.
    (secs.is_finite() && secs >= 0.0).then_some(secs as u64)
}

/// Starts a reboot or shutdown command and leaves it running: `accepted` unless it cannot
/// start or exits non-zero within [`POWER_START_CHECK`].
async fn start_power(argv: &[String]) -> ActionResult {
    let spawned = Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return failed(None, format!("cannot start {:?}: {e}", argv[0])),
    };
    match tokio::time::timeout(POWER_START_CHECK, child.wait()).await {
        Ok(Ok(status)) if !status.success() => failed(
            status.code(),
            format!("{:?} {}", argv.join(" "), pivitals_exec::describe(status)),
        ),
        Ok(Err(e)) => failed(None, format!("waiting for {:?}: {e}", argv[0])),
        // Done already, or still running: dropping the child leaves it running (tokio reaps it).
        Ok(Ok(_)) | Err(_) => result(ActionState::Accepted, String::new()),
    }
}

/// Whether a binary served for `arch` (as the primary names them: `x86_64`, `aarch64`,
/// `armv7`, `armv6`) runs where this agent was built to run: a wrong one would leave the node
/// without an agent that starts.
fn runs_here(arch: &str) -> bool {
    match std::env::consts::ARCH {
        "x86_64" => arch == "x86_64",
        "aarch64" => arch == "aarch64",
        "arm" => matches!(arch, "armv7" | "armv6"),
        _ => false,
    }
}

/// This process's executable and its SHA-256.
fn running_executable() -> Result<(PathBuf, String), String> {
    let executable = std::env::current_exe().map_err(|e| format!("its path: {e}"))?;
    let sha256 = sha256_of(&executable).map_err(|e| format!("{}: {e}", executable.display()))?;
    Ok((executable, sha256))
}

/// A result in `state` with `output`; the id and duration are set by [`Actions::run`].
fn result(state: ActionState, output: String) -> ActionResult {
    ActionResult {
        id: String::new(),
        state,
        exit_code: None,
        output,
        truncated: false,
        duration_ms: 0,
        message: None,
    }
}

fn refused(message: String) -> ActionResult {
    ActionResult {
        message: Some(message),
        ..result(ActionState::Refused, String::new())
    }
}

fn failed(exit_code: Option<i32>, message: String) -> ActionResult {
    ActionResult {
        exit_code,
        message: Some(message),
        ..result(ActionState::Failed, String::new())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::config::ActionCommand;

    fn argv(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn actions(commands: &[(&str, &[&str], Duration)]) -> Actions {
        let settings = ActionSettings {
            allow_power: false,
            allow_update: false,
            update_public_key: None,
            reboot_command: argv(&["true"]),
            shutdown_command: argv(&["true"]),
            commands: commands
                .iter()
                .map(|(name, command, timeout)| {
                    (
                        (*name).to_owned(),
                        ActionCommand {
                            command: argv(command),
                            timeout: *timeout,
                        },
                    )
                })
                .collect::<BTreeMap<_, _>>(),
        };
        Actions::new(settings, Path::new("/"))
    }

    fn request(action: &str) -> ActionRequest {
        ActionRequest {
            id: format!("req-{action}"),
            action: action.to_owned(),
            update: None,
        }
    }

    const T: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn ping_answers_with_the_uptime() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("proc")).unwrap();
        std::fs::write(root.path().join("proc/uptime"), "12345.67 23456.78\n").unwrap();
        let actions = Actions::new(ActionSettings::default(), root.path());
        let result = actions.run(&request("ping")).await;
        assert_eq!(result.id, "req-ping");
        assert_eq!(result.state, ActionState::Done);
        assert_eq!(result.output, "pong: up 12345 s");
        assert_eq!(result.message, None);

        let real = actions_with_root("/").run(&request("ping")).await;
        assert_eq!(real.state, ActionState::Done);
        assert!(real.output.starts_with("pong: up "), "{real:?}");

        let missing = actions_with_root("/nonexistent")
            .run(&request("ping"))
            .await;
        assert_eq!(missing.state, ActionState::Done);
        assert_eq!(missing.output, "pong");
        assert!(missing.message.unwrap().starts_with("uptime unknown"));
    }

    fn actions_with_root(root: &str) -> Actions {
        Actions::new(ActionSettings::default(), Path::new(root))
    }

    #[tokio::test]
    async fn a_named_command_answers_with_its_output_and_exit_code() {
        let actions = actions(&[
            ("hello", &["echo", "hi"], T),
            ("three", &["sh", "-c", "echo out; echo err >&2; exit 3"], T),
        ]);
        let hello = actions.run(&request("hello")).await;
        assert_eq!(hello.id, "req-hello");
        assert_eq!(hello.state, ActionState::Done);
        assert_eq!(hello.exit_code, Some(0));
        assert_eq!(hello.output, "hi\n");
        assert!(!hello.truncated);
        assert_eq!(hello.message, None);

        let three = actions.run(&request("three")).await;
        assert_eq!(three.state, ActionState::Failed);
        assert_eq!(three.exit_code, Some(3));
        assert_eq!(three.message.as_deref(), Some("exited with 3"));
        assert!(
            three.output.contains("out\n") && three.output.contains("err\n"),
            "stderr too: {:?}",
            three.output
        );
    }

    #[tokio::test]
    async fn arguments_are_not_interpreted_by_a_shell() {
        let actions = actions(&[("literal", &["echo", "$HOME; ls"], T)]);
        assert_eq!(actions.run(&request("literal")).await.output, "$HOME; ls\n");
    }

    #[tokio::test]
    async fn a_missing_program_fails_to_start() {
        let actions = actions(&[("nothing", &["/nonexistent/pivitals-no-such-program"], T)]);
        let result = actions.run(&request("nothing")).await;
        assert_eq!(result.state, ActionState::Failed);
        assert_eq!(result.exit_code, None);
        let message = result.message.unwrap();
        assert!(message.starts_with("cannot start"), "{message}");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_is_killed() {
        // That the kill takes the whole group, background children too, is `pivitals-exec`'s
        // own test; here, that the node's timeout reaches the runner.
        let script = "echo started; sleep 30";
        let actions = actions(&[("slow", &["sh", "-c", script], Duration::from_secs(1))]);
        let started = Instant::now();
        let result = actions.run(&request("slow")).await;
        let took = started.elapsed();
        assert_eq!(result.state, ActionState::TimedOut);
        assert!(took < Duration::from_millis(1500), "{took:?}");
        assert!(took >= Duration::from_secs(1), "{took:?}");
        assert_eq!(result.output, "started\n", "what came before the kill");
        assert_eq!(result.exit_code, None);
        assert!(result.message.unwrap().contains("after 1s"));
    }

    #[tokio::test]
    async fn an_unknown_name_is_refused() {
        let actions = actions(&[("hello", &["echo", "hi"], T)]);
        for name in ["goodbye", "echo hi", "", "HELLO"] {
            let result = actions.run(&request(name)).await;
            assert_eq!(result.state, ActionState::Refused, "{name:?}");
            assert_eq!(result.output, "");
            let message = result.message.unwrap();
            assert_eq!(
                message,
                format!("unknown action {name:?}: this node's config does not define it")
            );
        }
    }

    #[tokio::test]
    async fn power_actions_need_allow_power() {
        let mut actions = actions(&[]);
        for name in ["reboot", "shutdown"] {
            let result = actions.run(&request(name)).await;
            assert_eq!(result.state, ActionState::Refused);
            let message = result.message.unwrap();
            assert!(
                message.starts_with(&format!("{name} is not allowed on this node"))
                    && message.contains("PIVITALS_ACTIONS__ALLOW_POWER=true"),
                "{message}"
            );
        }

        actions.settings.allow_power = true;
        for name in ["reboot", "shutdown"] {
            let result = actions.run(&request(name)).await;
            assert_eq!(result.state, ActionState::Accepted, "{result:?}");
            assert_eq!(result.id, format!("req-{name}"));
        }

        // Still running after the check: accepted at once, not awaited.
        actions.settings.reboot_command = argv(&["sleep", "5"]);
        let started = Instant::now();
        let result = actions.run(&request("reboot")).await;
        assert_eq!(result.state, ActionState::Accepted);
        assert!(started.elapsed() < Duration::from_secs(2));

        actions.settings.shutdown_command = argv(&["false"]);
        let result = actions.run(&request("shutdown")).await;
        assert_eq!(result.state, ActionState::Failed);
        assert_eq!(result.exit_code, Some(1));

        actions.settings.shutdown_command = argv(&["/nonexistent/pivitals-poweroff"]);
        let result = actions.run(&request("shutdown")).await;
        assert_eq!(result.state, ActionState::Failed);
        assert!(result.message.unwrap().starts_with("cannot start"));
    }

    fn update_request(sha256: &str, verify_only: bool) -> ActionRequest {
        ActionRequest {
            update: Some(pivitals_common::actions::UpdateRequest {
                url: format!("agent/{}", std::env::consts::ARCH),
                sha256: sha256.into(),
                verify_only,
            }),
            ..request("update")
        }
    }

    #[tokio::test]
    async fn update_needs_allow_update_and_compares_the_running_binary() {
        let refused = actions(&[]).run(&update_request("00", false)).await;
        assert_eq!(refused.state, ActionState::Refused);
        let message = refused.message.unwrap();
        assert!(message.contains("PIVITALS_ALLOW_UPDATE=true"), "{message}");

        let settings = ActionSettings {
            allow_update: true,
            ..ActionSettings::default()
        };
        let actions = Actions::new(settings, Path::new("/"));
        let own = sha256_of(&std::env::current_exe().unwrap()).unwrap();
        let current = actions.run(&update_request(&own, false)).await;
        assert_eq!(current.state, ActionState::Done, "{current:?}");
        assert!(current.output.contains(&own), "{current:?}");
        let verified = actions.run(&update_request(&own, true)).await;
        assert_eq!(verified.state, ActionState::Done);
        let other = actions.run(&update_request(&"0".repeat(64), true)).await;
        assert_eq!(other.state, ActionState::Failed, "{other:?}");
        let bare = actions.run(&request("update")).await;
        assert_eq!(bare.state, ActionState::Failed);
        assert!(matches!(
            actions
                .answer(&update_request(&"0".repeat(64), false))
                .await,
            Answer::Update(_)
        ));
    }

    #[test]
    fn uptime_is_the_first_field_in_whole_seconds() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime("0.99 0"), Some(0));
        assert_eq!(parse_uptime(""), None);
        assert_eq!(parse_uptime("soon"), None);
    }
}
