//! The agent's life: sample on a timer, push, and run the actions the primary asks for,
//! concurrently until shutdown; then take a last sample, push what is waiting (bounded), say
//! goodbye.
//!
//! Everything runs on the caller's runtime (the binary uses a current-thread runtime): a
//! sampling loop, a sending loop and an action loop are three futures polled by one `select!`,
//! which also watches the shutdown future, so shutdown ends all three. The first two share the
//! backlog through a mutex that is never held across an `.await`.
//!
//! The action loop waits until the sender has a node token (it reads it through
//! [`Sender::node_token`]; only the sender registers), then long-polls
//! `GET /api/v1/agent/actions?wait=25s` and runs each action it gets as a task of its own, at
//! most [`MAX_RUNNING_ACTIONS`] at once, posting each result. An allowed `reboot` or
//! `shutdown` posts `accepted` before its command starts; an `update` that replaced the binary
//! posts `accepted` and then ends the process with
//! [`UPDATE_EXIT_CODE`](crate::actions::UPDATE_EXIT_CODE) for systemd to start the new one
//! (abruptly: samples not pushed yet are in the backlog on disk, and the new process sends
//! them). A refused token (401) waits for the sender to register again; a primary without the
//! endpoint (404, an older version) is asked again every [`NO_ACTIONS_RETRY`], said once at
//! `info`; other failures back off ([`Backoff::AGENT_PUSH`]). The poll is one more future of the same `select!`: it never
//! delays a sample or a push. Sampling never waits for the primary: while it is unreachable, samples
//! pile up in the backlog on disk (`STATE_DIR/backlog/`, the oldest dropped beyond
//! `backlog_max`) and go out oldest first, with their original timestamps, when it returns, in
//! this run or the next.
//!
//! The first sample is taken after a random offset in `[0, min(interval, 10 s))` (unless
//! `start_jitter` is off), so a rack that boots together spreads its pushes; then every
//! `interval`. A late tick (a slow sample, a suspended host) delays the next ones rather than
//! firing a burst.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pivitals_collect::Collector;
use pivitals_common::actions::{ActionRequest, ActionResult, ActionState};
use pivitals_common::{
    Backoff, HardwareIdentity, NodeInfo, RegisterRequest, Retries, Secret, VitalsPayload,
};
use reqwest::StatusCode;
use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tracing::{debug, info, warn};

use crate::actions::{Actions, Answer, UPDATE_EXIT_CODE};
use crate::backlog::Backlog;
use crate::client::{CallError, PrimaryClient};
use crate::config::Config;
use crate::credential;
use crate::error::AgentError;
use crate::push::{Sender, Step, lock, lock_info};

/// The last push before stopping gives up after this long.
pub const FINAL_PUSH_TIMEOUT: Duration = Duration::from_secs(5);
/// The goodbye gives up after this long.
pub const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// The random start offset is below this (and below the interval).
pub const MAX_START_JITTER: Duration = Duration::from_secs(10);
/// A full backlog, or one that cannot be written, says so at most this often.
const DROP_WARNING_EVERY: Duration = Duration::from_secs(60);
/// The backlog's directory under `state_dir`.
pub const BACKLOG_DIR: &str = "backlog";
/// How long the primary may hold a poll for actions.
pub const ACTIONS_WAIT: Duration = Duration::from_secs(25);
/// At most this many actions run at once; the others wait for a slot.
pub const MAX_RUNNING_ACTIONS: usize = 4;
/// A primary without the actions endpoint (404) is asked again after this long.
pub const NO_ACTIONS_RETRY: Duration = Duration::from_secs(600);
/// After a refused token (401), the poll waits this long at most for a new one.
const NEW_TOKEN_WAIT: Duration = Duration::from_secs(60);
/// Tries at posting one result.
const RESULT_TRIES: u32 = 3;

/// What the agent samples; [`Collector`] on a real host, something scripted in tests.
pub trait Sampler {
    /// Facts sent at registration, and again in a push when they changed.
    fn node_info(&mut self) -> NodeInfo;
    /// The board's identity, read once at start and sent with every registration.
    fn hardware_identity(&mut self) -> Option<HardwareIdentity> {
        None
    }
    /// Reads the fast vitals once, every `sample_every`; the next sample reports their peaks.
    fn tick(&mut self) {}
    /// One sample, stamped with the time it was taken.
    fn sample(&mut self) -> VitalsPayload;
}

impl Sampler for Collector {
    fn node_info(&mut self) -> NodeInfo {
        Collector::node_info(self)
    }

    fn hardware_identity(&mut self) -> Option<HardwareIdentity> {
        Collector::hardware_identity(self)
    }

    fn tick(&mut self) {
        Collector::tick(self)
    }

    fn sample(&mut self) -> VitalsPayload {
        Collector::sample(self)
    }
}

/// The node's facts are read again this often; a change (a new address after a DHCP renewal)
/// travels with the next push.
pub const NODE_INFO_EVERY: Duration = Duration::from_secs(60);

/// Runs the agent on this host until `shutdown` completes; see [`run_with`].
pub async fn run(cfg: Config, shutdown: impl Future<Output = ()>) -> Result<(), AgentError> {
    let collector = Collector::with_settings(cfg.root.clone(), cfg.collect.clone());
    run_with(cfg, collector, shutdown).await
}

/// Runs the agent with `sampler` until `shutdown` completes, then takes a last sample, pushes
/// what is waiting (for at most [`FINAL_PUSH_TIMEOUT`]), sends goodbye and returns `Ok`.
///
/// Returns early with an error only for what waiting cannot fix: the state directory is
/// unusable, the node must register without an enrollment token, or the primary refuses the
/// registration (422).
pub async fn run_with<S: Sampler>(
    cfg: Config,
    mut sampler: S,
    shutdown: impl Future<Output = ()>,
) -> Result<(), AgentError> {
    let state_error = |source: io::Error| AgentError::State {
        path: cfg.state_dir.clone(),
        source,
    };
    credential::prepare_dir(&cfg.state_dir).map_err(state_error)?;
    let stored = match credential::load(&cfg.state_dir) {
        Ok(Some(stored)) if stored.node_name == cfg.node_name => {
            info!(node = %stored.node_name, "using the stored node credential");
            Some(stored)
        }
        Ok(Some(stored)) => {
            info!(
                "the stored credential is for node {:?}, not {:?}; registering",
                stored.node_name, cfg.node_name
            );
            None
        }
        Ok(None) => None,
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            let path = credential::path(&cfg.state_dir);
            warn!(
                "ignoring the unreadable credential file {}: {e}",
                path.display()
            );
            None
        }
        Err(e) => return Err(state_error(e)),
    };
    if stored.is_none() && cfg.enroll_token.is_none() {
        return Err(AgentError::NoEnrollToken(cfg.state_dir.clone()));
    }

    if cfg.tls.insecure_skip_verify {
        warn!(
            "PIVITALS_TLS__INSECURE_SKIP_VERIFY is on: the primary's certificate is NOT checked, so anyone between this node and the primary can read and replace the tokens and the vitals; use PIVITALS_TLS__CA instead"
        );
    }
    let client =
        PrimaryClient::with_tls(&cfg.primary_url, &cfg.tls).map_err(AgentError::HttpClient)?;
    let actions = Actions::from_config(&cfg);
    let action_client = client.clone();
    let info = Arc::new(Mutex::new(sampler.node_info()));
    let request = RegisterRequest {
        node_name: cfg.node_name.clone(),
        info: lock_info(&info).clone(),
        labels: cfg.labels.clone(),
        interval_seconds: cfg.interval_seconds(),
        hardware: sampler.hardware_identity(),
    };
    let mut sender = Sender::new(
        client,
        cfg.state_dir.clone(),
        request,
        cfg.enroll_token.clone(),
        stored,
        Arc::clone(&info),
    );
    let node_token = sender.node_token();
    let backlog_dir = cfg.state_dir.join(BACKLOG_DIR);
    let backlog =
        Backlog::open(&backlog_dir, cfg.backlog_max).map_err(|source| AgentError::State {
            path: backlog_dir.clone(),
            source,
        })?;
    let waiting = backlog.len();
    if waiting > 0 {
        info!("{waiting} samples kept from before this start are sent first");
    }
    let backlog = Mutex::new(backlog);
    let wake = Notify::new();
    let interval = cfg.interval.max(Duration::from_millis(1));
    let sample_every = cfg.sample_every.clamp(Duration::from_millis(1), interval);
    let offset = if cfg.start_jitter {
        start_offset(interval)
    } else {
        Duration::ZERO
    };
    info!(
        node = %cfg.node_name,
        primary = %cfg.primary_url,
        interval = %humantime::format_duration(interval),
        sample_every = %humantime::format_duration(sample_every),
        backlog_max = cfg.backlog_max,
        backlog = waiting,
        "pivitals-agent started; first sample in {}",
        humantime::format_duration(offset)
    );

    let mut recorder = Recorder::new(&backlog, &wake);
    {
        let timing = Timing {
            interval,
            sample_every,
            offset,
        };
        let sampling = sample_loop(&mut sampler, &mut recorder, timing, &info);
        let sending = send_loop(&mut sender, &backlog, &wake);
        let acting = action_loop(action_client, actions, node_token);
        tokio::select! {
            biased;
            () = shutdown => {}
            result = sending => match result {
                Err(e) => return Err(e),
                Ok(never) => match never {},
            },
            never = sampling => match never {},
            never = acting => match never {},
        }
    }

    info!("stopping: taking a last sample and pushing what is waiting");
    recorder.record(sampler.sample());
    match tokio::time::timeout(FINAL_PUSH_TIMEOUT, sender.flush(&backlog)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(e),
        Err(_) => warn!(
            "the last push did not finish within {}s",
            FINAL_PUSH_TIMEOUT.as_secs()
        ),
    }
    let left = {
        let mut backlog = lock(&backlog);
        if let Err(e) = backlog.sync() {
            warn!("cannot sync the backlog: {e}; sent samples may be sent again after a restart");
        }
        backlog.len()
    };
    if left > 0 {
        info!(
            "{left} samples could not be pushed before stopping; they are kept in {} for the next start",
            backlog_dir.display()
        );
    }
    match tokio::time::timeout(GOODBYE_TIMEOUT, sender.goodbye("shutdown")).await {
        Ok(Ok(true)) => info!("said goodbye to the primary"),
        Ok(Ok(false)) => {}
        Ok(Err(e)) => warn!("goodbye failed: {e}"),
        Err(_) => warn!(
            "goodbye did not finish within {}s",
            GOODBYE_TIMEOUT.as_secs()
        ),
    }
    let dropped = lock(&backlog).dropped();
    info!(
        sampled = recorder.sampled,
        sent = sender.stats.sent,
        rejected = sender.stats.rejected,
        dropped,
        backlog = left,
        "pivitals-agent stopped"
    );
    Ok(())
}

/// A random offset in `[0, min(interval, MAX_START_JITTER))`.
pub fn start_offset(interval: Duration) -> Duration {
    let bound = u64::try_from(interval.min(MAX_START_JITTER).as_millis()).unwrap_or(0);
    if bound == 0 {
        return Duration::ZERO;
    }
    Duration::from_millis(fastrand::u64(0..bound))
}

/// When the sampling loop reads what.
#[derive(Debug, Clone, Copy)]
struct Timing {
    interval: Duration,
    sample_every: Duration,
    /// Before the first sample.
    offset: Duration,
}

/// Reads the fast vitals every `sample_every` and takes a sample every `interval`; reads the
/// node's facts again every [`NODE_INFO_EVERY`] into `info`, where the sender finds them.
async fn sample_loop<S: Sampler>(
    sampler: &mut S,
    recorder: &mut Recorder<'_>,
    timing: Timing,
    info: &Mutex<NodeInfo>,
) -> Infallible {
    tokio::time::sleep(timing.offset).await;
    let mut samples = tokio::time::interval(timing.interval);
    samples.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut ticks = tokio::time::interval(timing.sample_every);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let fast = timing.sample_every < timing.interval;
    let mut info_read = Instant::now();
    loop {
        tokio::select! {
            biased;
            _ = samples.tick() => {
                recorder.record(sampler.sample());
                if info_read.elapsed() >= NODE_INFO_EVERY {
                    *lock_info(info) = sampler.node_info();
                    info_read = Instant::now();
                }
            }
            _ = ticks.tick(), if fast => sampler.tick(),
        }
    }
}

async fn send_loop(
    sender: &mut Sender,
    backlog: &Mutex<Backlog>,
    wake: &Notify,
) -> Result<Infallible, AgentError> {
    loop {
        match sender.step(backlog).await? {
            Step::Continue => {}
            Step::Idle => wake.notified().await,
            Step::Wait(delay) => {
                // The primary did not take what is waiting: make it survive a power cut too
                // (appends to an empty backlog are written, not synced; see `Backlog::push`).
                if let Err(e) = lock(backlog).sync() {
                    warn!(
                        "cannot sync the backlog: {e}; waiting samples may not survive a power cut"
                    );
                }
                tokio::time::sleep(delay).await
            }
        }
    }
}

/// Long-polls the primary for actions with the sender's node token and runs each one as a task
/// (at most [`MAX_RUNNING_ACTIONS`] at once); dropping the loop aborts the tasks.
async fn action_loop(
    client: PrimaryClient,
    actions: Actions,
    mut token: watch::Receiver<Option<Secret>>,
) -> Infallible {
    let actions = Arc::new(actions);
    let slots = Arc::new(Semaphore::new(MAX_RUNNING_ACTIONS));
    let mut running = JoinSet::new();
    let mut backoff = Retries::new(Backoff::AGENT_PUSH);
    let mut told_no_endpoint = false;
    loop {
        while running.try_join_next().is_some() {}
        let current = token.borrow_and_update().clone();
        let Some(node_token) = current else {
            // Not registered yet, or again: the sender registers, this loop waits for it.
            if token.changed().await.is_err() {
                return std::future::pending().await;
            }
            continue;
        };
        match client.poll_actions(&node_token, ACTIONS_WAIT).await {
            Ok(requests) => {
                backoff.reset();
                for request in requests {
                    let task = run_action(
                        client.clone(),
                        Arc::clone(&actions),
                        Arc::clone(&slots),
                        token.clone(),
                        request,
                    );
                    running.spawn(task);
                }
            }
            Err(CallError::Unauthorized { message }) => {
                debug!(
                    "the primary refused the node token for actions ({message}); waiting for the sender to register again"
                );
                let _ = tokio::time::timeout(NEW_TOKEN_WAIT, token.changed()).await;
            }
            Err(CallError::Status { status, .. }) if status == StatusCode::NOT_FOUND => {
                if !told_no_endpoint {
                    info!(
                        "the primary has no actions endpoint (an older version?); asking again every {}",
                        humantime::format_duration(NO_ACTIONS_RETRY)
                    );
                    told_no_endpoint = true;
                }
                tokio::time::sleep(NO_ACTIONS_RETRY).await;
            }
            Err(error) => {
                let delay = backoff.next_delay(error.retry_after());
                debug!(
                    "cannot poll the primary for actions: {error}; retrying in {}",
                    humantime::format_duration(delay)
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Runs one action when a slot is free and posts its result; an allowed power action posts
/// `accepted` first, then starts.
async fn run_action(
    client: PrimaryClient,
    actions: Arc<Actions>,
    slots: Arc<Semaphore>,
    token: watch::Receiver<Option<Secret>>,
    request: ActionRequest,
) {
    let Ok(_slot) = slots.acquire_owned().await else {
        return;
    };
    info!(id = %request.id, action = %request.action, "running an action for the primary");
    match actions.answer(&request).await {
        Answer::Result(result) => {
            log_result(&request, &result);
            post_result(&client, &token, &result).await;
        }
        Answer::Power(power) => {
            post_result(&client, &token, &power.accepted()).await;
            warn!(
                id = %request.id,
                "starting {} as the primary asked",
                request.action
            );
            let started = power.start().await;
            if started.state != ActionState::Accepted {
                log_result(&request, &started);
            }
        }
        Answer::Update(update) => {
            let result = update.install(&client).await;
            log_result(&request, &result);
            post_result(&client, &token, &result).await;
            if result.state == ActionState::Accepted {
                // The new binary is in place: stop for systemd to start it (the units restart
                // on this code). Samples not yet pushed are in the backlog on disk and go out
                // from the new process.
                warn!(
                    id = %request.id,
                    "the agent's binary was replaced as the primary asked; exiting with {UPDATE_EXIT_CODE} to be restarted"
                );
                std::process::exit(i32::from(UPDATE_EXIT_CODE));
            }
        }
    }
}

fn log_result(request: &ActionRequest, result: &ActionResult) {
    let message = result.message.as_deref().unwrap_or("");
    info!(
        id = %request.id,
        action = %request.action,
        state = ?result.state,
        duration_ms = result.duration_ms,
        "action ended {message}"
    );
}

/// Posts `result` with the current node token, trying again a few times while the primary
/// cannot be reached or is busy; gives up (logged) on any other answer.
async fn post_result(
    client: &PrimaryClient,
    token: &watch::Receiver<Option<Secret>>,
    result: &ActionResult,
) {
    let mut backoff = Retries::new(Backoff::AGENT_PUSH);
    for attempt in 1..=RESULT_TRIES {
        let Some(node_token) = token.borrow().clone() else {
            warn!(id = %result.id, "not registered: cannot report the action's result");
            return;
        };
        let error = match client.post_action_result(&node_token, result).await {
            Ok(()) => return,
            Err(error) => error,
        };
        let again = attempt < RESULT_TRIES
            && match &error {
                CallError::Transport(_) | CallError::Busy { .. } => true,
                CallError::Status { status, .. } => status.is_server_error(),
                _ => false,
            };
        if !again {
            warn!(id = %result.id, "cannot report the action's result: {error}");
            return;
        }
        tokio::time::sleep(backoff.next_delay(error.retry_after())).await;
    }
}

/// Puts samples into the backlog, wakes the sender, counts, and warns (rate-limited) about
/// samples lost to a full backlog or to a failed write.
struct Recorder<'a> {
    backlog: &'a Mutex<Backlog>,
    wake: &'a Notify,
    /// Samples taken in this run.
    sampled: u64,
    full: Warnings,
    unwritable: Warnings,
}

/// Losses not yet reported, and when they were last.
#[derive(Default)]
struct Warnings {
    last: Option<Instant>,
    unreported: u64,
}

impl Warnings {
    /// Counts one loss; true when it is time to say so (the count is then in `unreported`
    /// until [`Self::reported`]).
    fn count(&mut self) -> bool {
        self.unreported += 1;
        let now = Instant::now();
        self.last
            .is_none_or(|last| now.duration_since(last) >= DROP_WARNING_EVERY)
    }

    fn reported(&mut self) {
        self.last = Some(Instant::now());
        self.unreported = 0;
    }
}

impl<'a> Recorder<'a> {
    fn new(backlog: &'a Mutex<Backlog>, wake: &'a Notify) -> Self {
        Self {
            backlog,
            wake,
            sampled: 0,
            full: Warnings::default(),
            unwritable: Warnings::default(),
        }
    }

    fn record(&mut self, sample: VitalsPayload) {
        self.sampled += 1;
        let mut backlog = lock(self.backlog);
        match backlog.push(&sample) {
            Ok(false) => {}
            Ok(true) => {
                if self.full.count() {
                    warn!(
                        "the backlog is full ({} samples): dropped the {} oldest ({} since start)",
                        backlog.capacity(),
                        self.full.unreported,
                        backlog.dropped()
                    );
                    self.full.reported();
                }
            }
            Err(e) => {
                if self.unwritable.count() {
                    warn!(
                        "cannot write to the backlog in {}: {e}; {} new samples lost",
                        backlog.dir().display(),
                        self.unwritable.unreported
                    );
                    self.unwritable.reported();
                }
            }
        }
        drop(backlog);
        self.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_offsets_stay_below_the_interval_and_ten_seconds() {
        for _ in 0..200 {
            assert!(start_offset(Duration::from_secs(60)) < MAX_START_JITTER);
            assert!(start_offset(Duration::from_secs(2)) < Duration::from_secs(2));
        }
        assert_eq!(start_offset(Duration::ZERO), Duration::ZERO);
        let offsets: Vec<_> = (0..50)
            .map(|_| start_offset(Duration::from_secs(60)))
            .collect();
        assert!(
            offsets.iter().any(|o| *o != offsets[0]),
            "offsets are random"
        );
    }

    #[test]
    fn the_agent_can_run_as_a_task_on_a_multi_thread_runtime() {
        fn assert_send<T: Send>(_: &T) {}
        let url = reqwest::Url::parse("http://primary:8080/").unwrap();
        let agent = run(
            Config::new(url, "pi-01", "/nonexistent"),
            std::future::pending(),
        );
        assert_send(&agent);
    }
}
