//! `pivitals-simulate`: many synthetic nodes from one process, to load a primary the way a
//! large cluster would, and to measure what it answers.
//!
//! ```text
//! pivitals-simulate --primary-url URL --enroll-token TOKEN [--nodes N] [--interval DURATION]
//!     [--duration DURATION] [--threads N] [--first N]
//!     [--poll-actions [--ask-action NAME --admin-token TOKEN [--ask-after DURATION]]]
//! ```
//!
//! The nodes are named `sim-00000`, `sim-00001`, … and labelled `role=sim`, `stack=<i % 16>`.
//! Each registers (`POST /api/v1/register`, at most [`REGISTER_CONCURRENCY`] at a time per
//! thread) with its own [`PrimaryClient`], the agent's real client, so each node keeps its own
//! connection like a real agent does. When every node has registered, the pushing starts: node
//! `i` first pushes at `i × interval ÷ nodes` (the starts are spread evenly over one interval),
//! then every interval, until `duration` has passed since the start; a push that is late delays
//! that node's next ones rather than firing a burst. Each push carries one sample.
//!
//! The samples come from one real sample of this host (the agent's [`Collector`], taken once),
//! varied per node and per push: CPU usage (a random walk), load, memory and swap use,
//! temperatures (a `cpu-thermal` sensor is added when the host has none), disk use, network
//! counters (growing), uptime, process count, and the timestamp (the time of the push).
//!
//! At the end it prints one line on stdout (see [`Summary`]):
//!
//! ```text
//! simulate: nodes=5 registered=5 interval=1s duration=3s sent=15 accepted=15 failed=0 elapsed=3.01s pushes/s=4.98 p50=1.92ms p99=4.31ms max=4.31ms
//! ```
//!
//! With `--poll-actions` every node also holds the agent's long poll for actions open
//! (`GET /api/v1/agent/actions?wait=25s` with its node token, through the same client as its
//! pushes, as the real agent does), polls again as soon as one is answered, and answers each
//! action it gets with a `done` result; the polls end with the pushing. With `--ask-action`,
//! `--ask-after` (default 10 s) after the pushing started, one admin request asks that action of
//! all nodes (`"all": true`, `"by": "bench"`), and the summary line adds, for that action: how
//! many nodes received it, and the time from just before the request was sent to each node's
//! poll answer:
//!
//! ```text
//! ... polls=4100 asked=2000 received=2000 results_failed=0 deliver_p50=31.20ms deliver_p99=80.11ms deliver_max=95.02ms
//! ```
//!
//! `failed` counts pushes that got no 200 (any error status or no answer); the exit code is 0
//! as long as at least one node registered, 2 for a command line that does not parse, 1
//! otherwise. `PIVITALS_LOG` (or `RUST_LOG`) sets the log level on stderr, default info. A
//! binary of its own (it was the agent's `simulate` subcommand), so none of it ships in the
//! agent.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail};
use clap::Parser;
use pivitals_agent::Secret;
use pivitals_agent::client::{CallError, PrimaryClient};
use pivitals_collect::Collector;
use pivitals_common::actions::{ActionResult, ActionState};
use pivitals_common::{
    Labels, NodeInfo, RegisterRequest, TemperatureVitals, VitalsPayload, VitalsPush,
};
use reqwest::Url;
use tokio::sync::{Barrier, Semaphore};
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

/// Registrations in flight at once, per thread.
pub const REGISTER_CONCURRENCY: usize = 32;
/// Attempts to register one node before giving up on it.
const REGISTER_ATTEMPTS: u32 = 5;
/// Push errors logged in full; the rest are only counted.
const LOGGED_FAILURES: u64 = 5;

/// Simulates many nodes against a primary and prints one summary line (a load test).
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(name = "pivitals-simulate", version)]
pub struct SimulateArgs {
    /// How many nodes to simulate (named sim-00000, sim-00001, ...).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub nodes: usize,
    /// Each node's push interval (1s, 500ms, 1m).
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// How long the nodes push, after all have registered.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The primary, e.g. http://127.0.0.1:7070.
    #[arg(long, value_name = "URL")]
    pub primary_url: String,
    /// The primary's enrollment token.
    #[arg(long, value_name = "TOKEN")]
    pub enroll_token: String,
    /// Threads, each with its own single-threaded runtime and a share of the nodes.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    /// The first node's number (to add nodes beside an earlier run's).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub first: usize,
    /// Each node also holds the long poll for actions open while it pushes, and answers each
    /// action it gets with done.
    #[arg(long)]
    pub poll_actions: bool,
    /// Ask this action of all nodes once, `--ask-after` after the pushing started (needs
    /// `--poll-actions` and `--admin-token`).
    #[arg(long, value_name = "NAME", requires_all = ["poll_actions", "admin_token"])]
    pub ask_action: Option<String>,
    /// The primary's admin token, for `--ask-action`.
    #[arg(long, value_name = "TOKEN")]
    pub admin_token: Option<String>,
    /// When to ask `--ask-action`, from the start of the pushing.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ask_after: Duration,
}

/// How long each action poll may wait for an action, as the agent asks.
pub const POLL_WAIT: Duration = Duration::from_secs(25);

fn main() -> ExitCode {
    let args = SimulateArgs::parse();
    init_logging();
    match simulate(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pivitals-simulate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs on stderr at the level of `PIVITALS_LOG`, else `RUST_LOG`, else info.
fn init_logging() {
    let filter = ["PIVITALS_LOG", "RUST_LOG"]
        .into_iter()
        .find_map(|var| EnvFilter::try_from_env(var).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// Counts and latencies of a run; printed as the summary line.
#[derive(Debug, Default)]
pub struct Summary {
    pub nodes: usize,
    pub registered: usize,
    pub sent: u64,
    pub accepted: u64,
    pub failed: u64,
    /// `duration`, or longer when the last push ended after it.
    pub elapsed: Duration,
    /// One entry per accepted push.
    pub latencies: Vec<Duration>,
    /// When the last push ended.
    last_push: Option<Instant>,
    /// Action polls answered (with actions or empty).
    pub polls: u64,
    /// Every action each node received: its id and when the poll answered.
    pub received: Vec<(String, Instant)>,
    /// Results the primary did not take with 204.
    pub results_failed: u64,
    /// The asked action's id and when the request was about to be sent.
    pub asked: Option<(String, Instant)>,
}

impl Summary {
    fn merge(&mut self, other: Summary) {
        self.registered += other.registered;
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.failed += other.failed;
        self.latencies.extend(other.latencies);
        self.last_push = self.last_push.max(other.last_push);
        self.polls += other.polls;
        self.received.extend(other.received);
        self.results_failed += other.results_failed;
    }

    /// The action part of the summary line: empty without `--poll-actions`.
    fn actions_line(&self, args: &SimulateArgs) -> String {
        if !args.poll_actions {
            return String::new();
        }
        let mut line = format!(" polls={}", self.polls);
        if args.ask_action.is_some() {
            let mut delays: Vec<Duration> = match &self.asked {
                Some((id, at)) => self
                    .received
                    .iter()
                    .filter(|(got, _)| got == id)
                    .map(|(_, when)| when.saturating_duration_since(*at))
                    .collect(),
                None => Vec::new(),
            };
            delays.sort_unstable();
            let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1e3);
            line.push_str(&format!(
                " asked={} received={} results_failed={} deliver_p50={} deliver_p99={} deliver_max={}",
                if self.asked.is_some() { self.registered } else { 0 },
                delays.len(),
                self.results_failed,
                ms(percentile(&delays, 0.50)),
                ms(percentile(&delays, 0.99)),
                ms(delays.last().copied().unwrap_or_default()),
            ));
        }
        line
    }

    /// The `simulate: key=value ...` line.
    pub fn line(&mut self, args: &SimulateArgs) -> String {
        self.latencies.sort_unstable();
        let ms = |d: Duration| format!("{:.2}ms", d.as_secs_f64() * 1e3);
        let seconds = self.elapsed.as_secs_f64();
        let rate = if seconds > 0.0 {
            self.accepted as f64 / seconds
        } else {
            0.0
        };
        format!(
            "simulate: nodes={} registered={} interval={} duration={} sent={} accepted={} \
             failed={} elapsed={seconds:.2}s pushes/s={rate:.1} p50={} p99={} max={}{}",
            self.nodes,
            self.registered,
            humantime::format_duration(args.interval),
            humantime::format_duration(args.duration),
            self.sent,
            self.accepted,
            self.failed,
            ms(percentile(&self.latencies, 0.50)),
            ms(percentile(&self.latencies, 0.99)),
            ms(self.latencies.last().copied().unwrap_or_default()),
            self.actions_line(args),
        )
    }
}

/// The value at quantile `q` of `sorted` (nearest rank), zero when empty.
fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Runs the simulation and prints its summary line; an error only when it cannot start or no
/// node could register.
pub fn simulate(args: &SimulateArgs) -> anyhow::Result<()> {
    if args.nodes == 0 || args.threads == 0 {
        bail!("--nodes and --threads must be at least 1");
    }
    if args.interval < Duration::from_millis(10) {
        bail!("--interval must be at least 10ms");
    }
    let base_url = primary_url(&args.primary_url)?;
    if args.ask_action.is_some() && args.ask_after >= args.duration {
        bail!("--ask-after must be shorter than --duration");
    }
    let _ = rustls::crypto::ring::default_provider().install_default();

    let mut collector = Collector::new("/");
    thread::sleep(Duration::from_millis(250));
    let info = collector.node_info();
    let sample = collector.sample();
    drop(collector);
    info!(
        nodes = args.nodes,
        threads = args.threads,
        "simulating: registering the nodes"
    );

    let threads = args.threads.min(args.nodes);
    // Every thread registers its nodes, then waits here until all threads are done, so the
    // pushing starts at one moment for all.
    let registered = Barrier::new(threads);
    let start = std::sync::OnceLock::new();
    let mut summary = Summary {
        nodes: args.nodes,
        ..Summary::default()
    };
    let asked = std::sync::OnceLock::new();
    thread::scope(|scope| -> anyhow::Result<()> {
        if let (Some(action), Some(token)) = (&args.ask_action, &args.admin_token) {
            let (start, asked, url) = (&start, &asked, base_url.clone());
            let after = args.ask_after;
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                let Ok(runtime) = runtime else {
                    warn!("cannot start the runtime that asks the action");
                    return;
                };
                runtime.block_on(async {
                    // The pushing starts once every node registered.
                    let start = loop {
                        if let Some(start) = start.get() {
                            break *start;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    };
                    tokio::time::sleep_until(tokio::time::Instant::from_std(start + after)).await;
                    match ask(&url, token, action).await {
                        Ok((id, at)) => {
                            info!(%id, "asked {action} of all nodes");
                            let _ = asked.set((id, at));
                        }
                        Err(e) => warn!("asking {action} failed: {e:#}"),
                    }
                });
            });
        }
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let plan = Plan {
                    indexes: (t..args.nodes).step_by(threads).collect(),
                    total: args.nodes,
                    first: args.first,
                    interval: args.interval,
                    duration: args.duration,
                    enroll_token: Secret::new(args.enroll_token.clone()),
                    base_url: base_url.clone(),
                    info: info.clone(),
                    sample: sample.clone(),
                    poll_actions: args.poll_actions,
                };
                let (registered, start) = (&registered, &start);
                scope.spawn(move || -> anyhow::Result<Summary> {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("cannot start the async runtime")?;
                    runtime.block_on(plan.run(registered, start))
                })
            })
            .collect();
        for handle in handles {
            let part = handle
                .join()
                .map_err(|_| anyhow!("a simulation thread panicked"))??;
            summary.merge(part);
        }
        Ok(())
    })?;
    summary.asked = asked.into_inner();
    if let (Some(start), Some(end)) = (start.get(), summary.last_push) {
        // The window is `duration` unless pushes ran past it (a slow primary).
        summary.elapsed = end.saturating_duration_since(*start).max(args.duration);
    }
    println!("{}", summary.line(args));
    if summary.registered == 0 {
        bail!("no node could register");
    }
    Ok(())
}

/// Asks `action` of all nodes with the admin token; the action's id and the moment just before
/// the request went out.
async fn ask(base: &Url, admin_token: &str, action: &str) -> anyhow::Result<(String, Instant)> {
    let http = reqwest::Client::builder()
        .tls_certs_only(Vec::new())
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let url = base.join("api/v1/actions").context("the actions URL")?;
    let body = format!(r#"{{"action":"{action}","all":true,"by":"bench"}}"#);
    let at = Instant::now();
    let response = http
        .post(url)
        .bearer_auth(admin_token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .context("POST /api/v1/actions")?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if status.as_u16() != 202 {
        bail!("POST /api/v1/actions answered {status}: {text}");
    }
    let reply: serde_json::Value =
        serde_json::from_str(&text).context("the answer to POST /api/v1/actions")?;
    let id = reply["id"]
        .as_str()
        .context("the answer to POST /api/v1/actions has no id")?;
    Ok((id.to_owned(), at))
}

/// `text` as a base URL whose path ends with `/`, as [`PrimaryClient::new`] wants it.
fn primary_url(text: &str) -> anyhow::Result<Url> {
    let mut url = Url::parse(text.trim()).with_context(|| format!("--primary-url {text:?}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        bail!("--primary-url {text:?}: the scheme must be http or https");
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

/// One thread's share of the nodes and what they need.
struct Plan {
    indexes: Vec<usize>,
    total: usize,
    first: usize,
    interval: Duration,
    duration: Duration,
    enroll_token: Secret,
    base_url: Url,
    info: NodeInfo,
    sample: VitalsPayload,
    poll_actions: bool,
}

/// A registered node, ready to push.
#[derive(Clone)]
struct Registered {
    index: usize,
    name: String,
    client: PrimaryClient,
    token: Secret,
}

impl Plan {
    async fn run(
        self,
        registered: &Barrier,
        start: &std::sync::OnceLock<Instant>,
    ) -> anyhow::Result<Summary> {
        let permits = std::sync::Arc::new(Semaphore::new(REGISTER_CONCURRENCY));
        let registering: Vec<_> = self
            .indexes
            .iter()
            .map(|&index| {
                let request = RegisterRequest {
                    node_name: format!("sim-{:05}", self.first + index),
                    info: NodeInfo {
                        hostname: format!("sim-{:05}", self.first + index),
                        ..self.info.clone()
                    },
                    labels: Labels::from([
                        ("role".to_owned(), "sim".to_owned()),
                        ("stack".to_owned(), (index % 16).to_string()),
                    ]),
                    interval_seconds: (self.interval.as_secs_f64().ceil() as u64).max(1),
                    hardware: None,
                };
                let (permits, token, url) = (
                    permits.clone(),
                    self.enroll_token.clone(),
                    self.base_url.clone(),
                );
                tokio::spawn(async move {
                    let _permit = permits.acquire_owned().await;
                    register(index, &url, &token, request).await
                })
            })
            .collect();
        let mut nodes = Vec::with_capacity(registering.len());
        for task in registering {
            match task.await {
                Ok(Ok(node)) => nodes.push(node),
                Ok(Err(e)) => warn!("{e:#}"),
                Err(e) => warn!("a registration task failed: {e}"),
            }
        }
        registered.wait().await;
        let mut first = false;
        let start = *start.get_or_init(|| {
            first = true;
            Instant::now()
        });
        if first {
            info!(
                "all nodes registered: pushing every {} for {}",
                humantime::format_duration(self.interval),
                humantime::format_duration(self.duration)
            );
        }
        let start_at = tokio::time::Instant::from_std(start);

        let mut summary = Summary {
            registered: nodes.len(),
            ..Summary::default()
        };
        let pushing: Vec<_> = nodes
            .into_iter()
            .map(|node| {
                let offset = self.interval.mul_f64(node.index as f64 / self.total as f64);
                let sim = SimNode::new(&self.sample, node.index, self.interval);
                let (interval, duration) = (self.interval, self.duration);
                let polling = self
                    .poll_actions
                    .then(|| tokio::spawn(poll_loop(node.clone(), start_at + duration)));
                tokio::spawn(async move {
                    let mut result =
                        push_loop(node, sim, start_at + offset, start_at + duration, interval)
                            .await;
                    if let Some(polling) = polling
                        && let Ok(polled) = polling.await
                    {
                        result.polls = polled.polls;
                        result.received = polled.received;
                        result.results_failed = polled.results_failed;
                        result.errors.extend(polled.errors);
                    }
                    result
                })
            })
            .collect();
        let mut logged = 0;
        for task in pushing {
            let part = task.await.map_err(|e| anyhow!("a push task failed: {e}"))?;
            for error in &part.errors {
                if logged < LOGGED_FAILURES {
                    warn!("{error}");
                    logged += 1;
                }
            }
            summary.sent += part.sent;
            summary.accepted += part.accepted;
            summary.failed += part.failed;
            summary.latencies.extend(part.latencies);
            summary.last_push = summary.last_push.max(part.last);
            summary.polls += part.polls;
            summary.received.extend(part.received);
            summary.results_failed += part.results_failed;
        }
        Ok(summary)
    }
}

/// Registers one node with its own client, retrying what waiting can fix.
async fn register(
    index: usize,
    url: &Url,
    enroll_token: &Secret,
    request: RegisterRequest,
) -> anyhow::Result<Registered> {
    let client = PrimaryClient::new(url).context("cannot build the HTTP client")?;
    let mut attempt = 1;
    loop {
        match client.register(enroll_token, &request).await {
            Ok(reply) => {
                return Ok(Registered {
                    index,
                    name: request.node_name,
                    client,
                    token: Secret::new(reply.node_token),
                });
            }
            Err(e) if attempt < REGISTER_ATTEMPTS && retriable(&e) => {
                let wait = e.retry_after().unwrap_or(Duration::from_secs(1));
                tokio::time::sleep(wait.min(Duration::from_secs(5))).await;
                attempt += 1;
            }
            Err(e) => bail!("node {} could not register: {e}", request.node_name),
        }
    }
}

fn retriable(error: &CallError) -> bool {
    match error {
        CallError::Busy { .. } | CallError::Transport(_) => true,
        CallError::Status { status, .. } => status.is_server_error(),
        _ => false,
    }
}

/// What one node's pushes gave.
#[derive(Default)]
struct NodeResult {
    sent: u64,
    accepted: u64,
    failed: u64,
    latencies: Vec<Duration>,
    /// The first errors, for the log.
    errors: Vec<String>,
    /// When the last push ended.
    last: Option<Instant>,
    polls: u64,
    received: Vec<(String, Instant)>,
    results_failed: u64,
}

/// Holds the action long poll open until `end`, polling again as soon as one is answered
/// (after a second when it failed), and answers each action with done.
async fn poll_loop(node: Registered, end: tokio::time::Instant) -> NodeResult {
    let mut result = NodeResult::default();
    while tokio::time::Instant::now() < end {
        let polled = tokio::select! {
            polled = node.client.poll_actions(&node.token, POLL_WAIT) => polled,
            _ = tokio::time::sleep_until(end) => break,
        };
        match polled {
            Ok(actions) => {
                let now = Instant::now();
                result.polls += 1;
                for action in actions {
                    let answer = ActionResult {
                        id: action.id.clone(),
                        state: ActionState::Done,
                        exit_code: Some(0),
                        output: String::new(),
                        truncated: false,
                        duration_ms: 0,
                        message: None,
                    };
                    result.received.push((action.id, now));
                    if node
                        .client
                        .post_action_result(&node.token, &answer)
                        .await
                        .is_err()
                    {
                        result.results_failed += 1;
                    }
                }
            }
            Err(e) => {
                if result.errors.len() < 2 {
                    result
                        .errors
                        .push(format!("{}: action poll failed: {e}", node.name));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    _ = tokio::time::sleep_until(end) => break,
                }
            }
        }
    }
    result
}

/// Pushes one sample at `first` and then every `interval` until `end`; a late push delays the
/// next ones (no burst), and nothing waits past the last push.
async fn push_loop(
    node: Registered,
    mut sim: SimNode,
    first: tokio::time::Instant,
    end: tokio::time::Instant,
    interval: Duration,
) -> NodeResult {
    let mut result = NodeResult::default();
    let mut next = first;
    while next < end {
        tokio::time::sleep_until(next).await;
        let push = sim.next_push();
        result.sent += 1;
        let sent = Instant::now();
        match node.client.push(&node.token, push).await {
            Ok(_) => {
                result.accepted += 1;
                result.latencies.push(sent.elapsed());
            }
            Err(e) => {
                result.failed += 1;
                if result.errors.len() < 2 {
                    result
                        .errors
                        .push(format!("{}: push failed: {e}", node.name));
                }
            }
        }
        let now = Instant::now();
        result.last = Some(now);
        next = (next + interval).max(tokio::time::Instant::from_std(now));
    }
    result
}

/// One synthetic node's sample, varied in place before each push.
struct SimNode {
    rng: fastrand::Rng,
    push: VitalsPush,
    interval_seconds: f64,
    cpu_percent: f64,
    memory_share: f64,
    process_count: u64,
}

impl SimNode {
    /// Starts from `base` with this node's own disk use, counters, uptime and memory use.
    fn new(base: &VitalsPayload, index: usize, interval: Duration) -> Self {
        let mut rng = fastrand::Rng::with_seed(0x5eed_0000 + index as u64);
        let mut sample = base.clone();
        if sample.temperatures.is_empty() {
            sample.temperatures.push(TemperatureVitals {
                sensor: "cpu-thermal".to_owned(),
                celsius: 45.0,
                ..Default::default()
            });
        }
        for disk in &mut sample.disks {
            disk.used_bytes = (disk.total_bytes as f64 * (0.1 + 0.8 * rng.f64())) as u64;
        }
        for net in &mut sample.networks {
            net.rx_bytes = net.rx_bytes.saturating_add(rng.u64(0..1 << 34));
            net.tx_bytes = net.tx_bytes.saturating_add(rng.u64(0..1 << 32));
        }
        sample.uptime_seconds = Some(rng.u64(600..90 * 86_400));
        let process_count = sample.process_count.unwrap_or(150) + rng.u64(0..100);
        Self {
            cpu_percent: 2.0 + 40.0 * rng.f64(),
            memory_share: 0.15 + 0.6 * rng.f64(),
            process_count,
            interval_seconds: interval.as_secs_f64(),
            rng,
            push: VitalsPush {
                samples: vec![sample],
                ..Default::default()
            },
        }
    }

    /// The next push: one sample stamped now, every family moved on a little.
    fn next_push(&mut self) -> &VitalsPush {
        let rng = &mut self.rng;
        self.cpu_percent = (self.cpu_percent + (rng.f64() - 0.5) * 12.0).clamp(0.5, 100.0);
        self.memory_share = (self.memory_share + (rng.f64() - 0.5) * 0.02).clamp(0.05, 0.95);
        let cpu_percent = (self.cpu_percent * 100.0).round() / 100.0;
        let sample = &mut self.push.samples[0];
        sample.timestamp_ms = now_ms();
        let mut cores = 4.0;
        if let Some(cpu) = &mut sample.cpu {
            cpu.usage_percent = cpu_percent;
            cores = f64::from(cpu.cores.max(1));
        }
        if let Some(load) = &mut sample.load {
            let busy = cpu_percent / 100.0 * cores;
            load.one = round2(0.8 * load.one + 0.2 * busy);
            load.five = round2(0.95 * load.five + 0.05 * busy);
            load.fifteen = round2(0.98 * load.fifteen + 0.02 * busy);
        }
        if let Some(memory) = &mut sample.memory {
            memory.used_bytes = (memory.total_bytes as f64 * self.memory_share) as u64;
            memory.available_bytes = memory.total_bytes - memory.used_bytes;
        }
        if let Some(swap) = &mut sample.swap
            && swap.total_bytes > 0
        {
            swap.used_bytes = (swap.total_bytes as f64 * 0.05 * rng.f64()) as u64;
        }
        for disk in &mut sample.disks {
            disk.used_bytes = (disk.used_bytes + rng.u64(0..1 << 20)).min(disk.total_bytes);
        }
        let seconds = self.interval_seconds;
        for net in &mut sample.networks {
            net.rx_bytes += (rng.f64() * 200_000.0 * seconds) as u64;
            net.tx_bytes += (rng.f64() * 50_000.0 * seconds) as u64;
        }
        for (i, sensor) in sample.temperatures.iter_mut().enumerate() {
            let celsius = 38.0 + 0.3 * cpu_percent + i as f64 + 2.0 * rng.f64();
            sensor.celsius = (celsius * 1000.0).round() / 1000.0;
        }
        if let Some(uptime) = &mut sample.uptime_seconds {
            *uptime += seconds.round() as u64;
        }
        sample.process_count = Some(self.process_count + rng.u64(0..8));
        &self.push
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use pivitals_common::{CpuVitals, DiskVitals, MemoryVitals, NetVitals};

    use super::*;

    fn base() -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: 1,
            cpu: Some(CpuVitals {
                usage_percent: 5.0,
                frequency_mhz: Some(1500),
                cores: 4,
                ..Default::default()
            }),
            memory: Some(MemoryVitals {
                total_bytes: 4 << 30,
                available_bytes: 3 << 30,
                used_bytes: 1 << 30,
                ..Default::default()
            }),
            disks: vec![DiskVitals {
                mount: "/".into(),
                device: "/dev/mmcblk0p2".into(),
                fs_type: "ext4".into(),
                total_bytes: 32 << 30,
                used_bytes: 6 << 30,
                ..Default::default()
            }],
            networks: vec![NetVitals {
                interface: "eth0".into(),
                ..NetVitals::default()
            }],
            uptime_seconds: Some(100),
            ..VitalsPayload::default()
        }
    }

    #[test]
    fn samples_vary_per_node_and_per_push_and_stay_plausible() {
        let mut a = SimNode::new(&base(), 0, Duration::from_secs(1));
        let mut b = SimNode::new(&base(), 1, Duration::from_secs(1));
        let first = a.next_push().samples[0].clone();
        let second = a.next_push().samples[0].clone();
        let other = b.next_push().samples[0].clone();
        assert_ne!(first.cpu, second.cpu);
        assert_ne!(first.disks[0].used_bytes, other.disks[0].used_bytes);
        assert!(second.networks[0].rx_bytes >= first.networks[0].rx_bytes);
        assert_eq!(first.temperatures[0].sensor, "cpu-thermal");
        for sample in [&first, &second, &other] {
            let usage = sample.cpu.as_ref().unwrap().usage_percent;
            assert!((0.0..=100.0).contains(&usage), "{usage}");
            let memory = sample.memory.as_ref().unwrap();
            assert_eq!(
                memory.used_bytes + memory.available_bytes,
                memory.total_bytes
            );
            assert!(sample.disks[0].used_bytes <= sample.disks[0].total_bytes);
            assert!(sample.timestamp_ms > 1_600_000_000_000);
        }
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let ms = |n| Duration::from_millis(n);
        let sorted: Vec<_> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&sorted, 0.50), ms(50));
        assert_eq!(percentile(&sorted, 0.99), ms(99));
        assert_eq!(percentile(&[ms(7)], 0.99), ms(7));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn primary_urls_get_a_trailing_slash() {
        assert_eq!(
            primary_url("http://127.0.0.1:7070").unwrap().as_str(),
            "http://127.0.0.1:7070/"
        );
        assert_eq!(
            primary_url("http://h/base").unwrap().as_str(),
            "http://h/base/"
        );
        assert!(primary_url("ftp://h/").is_err());
    }

    fn parse(args: &[&str]) -> Result<SimulateArgs, clap::Error> {
        SimulateArgs::try_parse_from(
            std::iter::once("pivitals-simulate").chain(args.iter().copied()),
        )
    }

    #[test]
    fn the_options_are_those_of_the_old_subcommand_with_its_defaults() {
        use clap::CommandFactory;
        SimulateArgs::command().debug_assert();
        let required = [
            "--primary-url",
            "http://127.0.0.1:7070",
            "--enroll-token=token",
        ];
        let defaults = parse(&required).unwrap();
        let expected = SimulateArgs {
            nodes: 100,
            interval: Duration::from_secs(1),
            duration: Duration::from_secs(30),
            primary_url: "http://127.0.0.1:7070".into(),
            enroll_token: "token".into(),
            threads: 1,
            first: 0,
            poll_actions: false,
            ask_action: None,
            admin_token: None,
            ask_after: Duration::from_secs(10),
        };
        assert_eq!(defaults, expected);
        let mut args = required.to_vec();
        args.extend([
            "--nodes",
            "5",
            "--interval=500ms",
            "--duration",
            "3s",
            "--threads",
            "2",
            "--first",
            "7",
        ]);
        let expected = SimulateArgs {
            nodes: 5,
            interval: Duration::from_millis(500),
            duration: Duration::from_secs(3),
            threads: 2,
            first: 7,
            ..expected
        };
        assert_eq!(parse(&args).unwrap(), expected);
    }

    #[test]
    fn bad_or_missing_values_are_refused() {
        let with = |extra: &[&str]| {
            let mut args = vec!["--primary-url", "http://p", "--enroll-token", "t"];
            args.extend_from_slice(extra);
            parse(&args).map_err(|e| e.kind())
        };
        assert_eq!(
            with(&["--nodes", "many"]),
            Err(clap::error::ErrorKind::ValueValidation)
        );
        assert_eq!(
            with(&["--interval", "soon"]),
            Err(clap::error::ErrorKind::ValueValidation)
        );
        assert_eq!(
            with(&["--config", "x"]),
            Err(clap::error::ErrorKind::UnknownArgument)
        );
        assert_eq!(
            parse(&["--primary-url", "http://p"]).map_err(|e| e.kind()),
            Err(clap::error::ErrorKind::MissingRequiredArgument)
        );
    }
}
