//! `pivitals-primary`: the command line around [`pivitals_primary::run`].

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{ArgGroup, Parser, Subcommand};
use pivitals_primary::alerts::rules::DEFAULT_NAMES;
use pivitals_primary::config::PrimaryConfig;
use pivitals_primary::nodes::enroll;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// The pivitals primary: registers agents and writes their vitals to InfluxDB.
///
/// Settings come from the optional file, then PIVITALS_* environment variables
/// (see README.md).
#[derive(Parser)]
#[command(version)]
struct Args {
    /// TOML configuration file.
    #[arg(long, value_name = "PATH", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Manage the enrollment token kept in the data dir.
    Token {
        #[command(subcommand)]
        action: TokenAction,
    },
    /// Read the settings (the file, then PIVITALS_* variables) as a start would, print what
    /// they configure and exit without starting anything: 0 when they are valid, 2 with the
    /// mistake.
    CheckConfig,
    /// Ask nodes to run the action NAME (defined in each node's own agent settings, or ping,
    /// reboot, shutdown) through a running primary, and print each node's result as it arrives.
    ///
    /// Needs the admin token in PIVITALS_ADMIN_TOKEN. Exits 0 when every node is done (or
    /// accepted), 1 when any failed, refused, timed out, expired or is still pending, 2 for a
    /// usage or HTTP error.
    Action(ActionArgs),
    /// Update the agents of the chosen nodes to the binary this primary serves for their
    /// architecture (PIVITALS_AGENT_BINARIES), at most --max-parallel at a time, stopping at the
    /// first node that fails, refuses or does not come back within --timeout; print each
    /// node's progress.
    ///
    /// Needs the admin token in PIVITALS_ADMIN_TOKEN and PIVITALS_ALLOW_UPDATE=true on the
    /// nodes. Exits 0 when every node is updated (or already current), 1 when the rollout
    /// failed, 2 for a usage or HTTP error.
    Update(UpdateArgs),
}

#[derive(clap::Args)]
#[command(group(
    ArgGroup::new("target")
        .required(true)
        .multiple(false)
        .args(["nodes", "stack", "labels", "all"])
))]
struct NodeSelection {
    /// A node by name (repeat for more).
    #[arg(long = "node", value_name = "NODE")]
    nodes: Vec<String>,
    /// Every node labelled stack=S (the same as --label stack=S).
    #[arg(long, value_name = "S")]
    stack: Option<String>,
    /// Every node with this label (repeat: a node must have all of them).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// Every registered node (not the primary's own host).
    #[arg(long)]
    all: bool,
}

#[derive(clap::Args)]
struct UpdateArgs {
    #[command(flatten)]
    target: NodeSelection,
    /// Nodes updating at once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    max_parallel: usize,
    /// How long one node may take, from the request to running the new binary.
    #[arg(long, value_name = "DURATION", default_value = "3m")]
    timeout: String,
    /// The primary's URL [default: PIVITALS_URL, else http://127.0.0.1:7070].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
}

#[derive(clap::Args)]
struct ActionArgs {
    /// The action's name, as the nodes' settings define it (`[actions.NAME]`).
    #[arg(value_name = "NAME")]
    name: String,
    #[command(flatten)]
    target: NodeSelection,
    /// The primary's URL [default: PIVITALS_URL, else http://127.0.0.1:7070].
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// How long to wait for the results; the nodes still pending then are listed as such.
    #[arg(long, value_name = "DURATION", default_value = "60s", value_parser = humantime::parse_duration)]
    timeout: Duration,
    /// Print each node's whole output (and message) below its row.
    #[arg(long, short)]
    verbose: bool,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[derive(Subcommand)]
enum TokenAction {
    /// Replace the stored enrollment token with a new one and print it. Run it while the
    /// primary is stopped (a running primary rotates with POST
    /// /api/v1/admin/enroll-token/rotate); registered nodes keep working.
    Rotate,
}

/// Turns glibc's fastbins off. They keep small freed chunks unmerged, and then every larger
/// allocation (hyper takes 8 KiB buffers for each request of a parked connection) first merges
/// them all (`malloc_consolidate`): about 4 % of the primary's CPU per push in two alternating
/// pairs of runs. Small allocations still come from glibc's per-thread cache.
///
/// glibc keeps its default arenas (one for each thread that meets another in one): a single
/// arena for all saves memory at 10,000 nodes (README, Performance) but costs about 6-9 % more
/// CPU a push, the lock the threads would share.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_allocator() {
    // SAFETY: mallopt only sets a parameter of glibc's allocator; no thread has started yet.
    unsafe {
        libc::mallopt(libc::M_MXFAST, 0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

fn main() {
    tune_allocator();
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PIVITALS_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let outcome = match args.command {
        Some(Command::Token {
            action: TokenAction::Rotate,
        }) => rotate(args.config.as_deref()),
        Some(Command::CheckConfig) => match check_config(args.config.as_deref()) {
            Ok(()) => Ok(()),
            Err(err) => {
                eprintln!("pivitals-primary: {err:#}");
                std::process::exit(2);
            }
        },
        Some(Command::Action(action)) => std::process::exit(run_action(action)),
        Some(Command::Update(update)) => std::process::exit(run_update(update)),
        None => start(args),
    };
    if let Err(err) = outcome {
        eprintln!("pivitals-primary: {err:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn start(args: Args) -> anyhow::Result<()> {
    let config = PrimaryConfig::load(args.config.as_deref(), std::env::vars())?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let (token, origin) = enroll::load_or_create(config.enroll_token.as_deref(), &config.data_dir)
        .context("enrollment token")?;
    if origin != enroll::Origin::Configured {
        // Printed once at start-up for the person setting up agents; never logged.
        println!(
            "enrollment token ({}): {token}",
            config.data_dir.join(enroll::FILE_NAME).display()
        );
    }
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    pivitals_primary::run(listener, config, shutdown_signal()).await
}

/// `pivitals-primary token rotate`: the offline rotation of the stored enrollment token.
fn rotate(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = PrimaryConfig::load(file, std::env::vars())?;
    if config.enroll_token.is_some() {
        anyhow::bail!("{}", enroll::RotateError::Configured);
    }
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating data dir {}", config.data_dir.display()))?;
    let token = enroll::rotate_file(&config.data_dir).with_context(|| {
        format!(
            "writing {}",
            config.data_dir.join(enroll::FILE_NAME).display()
        )
    })?;
    println!(
        "new enrollment token ({}): {token}",
        config.data_dir.join(enroll::FILE_NAME).display()
    );
    Ok(())
}

/// `pivitals-primary check-config`: loads the settings exactly as a start does and prints one
/// line per part they configure; the first mistake is the error.
fn check_config(file: Option<&std::path::Path>) -> anyhow::Result<()> {
    let config = PrimaryConfig::load(file, std::env::vars())?;
    let alert = &config.alert;
    let rules = alert.checked_rules()?;
    let channels = alert.channel_list()?;
    let source = match file {
        Some(path) => format!("{} and the environment", path.display()),
        None => "the environment (no --config file)".to_owned(),
    };
    println!("ok: settings from {source}");
    let configured: Vec<&str> = alert.rules.iter().map(|r| r.name.as_str()).collect();
    let names: Vec<&str> = rules.as_slice().iter().map(|r| &*r.name).collect();
    let defaults = names
        .iter()
        .filter(|n| DEFAULT_NAMES.contains(n) && !configured.contains(n))
        .count();
    let off: Vec<&str> = if alert.default_rules {
        DEFAULT_NAMES
            .into_iter()
            .filter(|n| !names.contains(n))
            .collect()
    } else {
        vec!["every default (default_rules = false)"]
    };
    println!(
        "ok: {} ({defaults} default){}{}{}",
        plural(names.len(), "rule"),
        if names.is_empty() { "" } else { ": " },
        names.join(", "),
        if off.is_empty() {
            String::new()
        } else {
            format!("; turned off: {}", off.join(", "))
        }
    );
    let listed: Vec<String> = channels
        .iter()
        .map(|(name, channel)| format!("{name} ({})", channel.service()))
        .collect();
    if listed.is_empty() {
        println!(
            "ok: 0 channels: alerts are only shown on the dashboard, in GET /api/v1/alerts and in the alert measurement"
        );
    } else {
        println!(
            "ok: {}: {}",
            plural(listed.len(), "channel"),
            listed.join(", ")
        );
    }
    match alert.url()? {
        Some(url) => println!(
            "ok: node down/recovered webhook to {}",
            url.host_str().unwrap_or_default()
        ),
        None => println!("ok: no node down/recovered webhook"),
    }
    Ok(())
}

/// Where `action` finds the primary when neither `--url` nor `PIVITALS_URL` says.
const DEFAULT_URL: &str = "http://127.0.0.1:7070";

/// How often `action` asks for the results.
const POLL_EVERY: Duration = Duration::from_millis(250);

/// `pivitals-primary action`: its exit code (0 all done, 1 any not done, 2 usage or HTTP error).
fn run_action(args: ActionArgs) -> i32 {
    run_admin_command("action", |token| action(args, token))
}

/// `pivitals-primary update`: its exit code (0 all updated, 1 the rollout failed, 2 usage or
/// HTTP error).
fn run_update(args: UpdateArgs) -> i32 {
    run_admin_command("update", |token| update(args, token))
}

/// Runs `command` (`name` in messages) with the admin token from `PIVITALS_ADMIN_TOKEN` on a
/// small runtime; exit code 0 when it answers Ok(true), 1 for Ok(false), 2 for a missing token
/// or an error (printed on one line).
fn run_admin_command<F>(name: &str, command: impl FnOnce(String) -> F) -> i32
where
    F: Future<Output = anyhow::Result<bool>>,
{
    let token = match std::env::var("PIVITALS_ADMIN_TOKEN") {
        Ok(token) if !token.trim().is_empty() => token.trim().to_owned(),
        _ => {
            eprintln!(
                "pivitals-primary: PIVITALS_ADMIN_TOKEN is not set: {name} needs the primary's admin token"
            );
            return 2;
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("pivitals-primary: starting the runtime: {err}");
            return 2;
        }
    };
    match runtime.block_on(command(token)) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(err) => {
            eprintln!("pivitals-primary: {err:#}");
            2
        }
    }
}

/// Starts the rollout, then prints a row each time a node's state changes until it is over;
/// Ok(whether it is done rather than failed).
async fn update(args: UpdateArgs, token: String) -> anyhow::Result<bool> {
    let token = token.as_str();
    let base = primary_base(args.url.clone());
    let mut body = serde_json::json!({
        "by": "cli",
        "max_parallel": args.max_parallel,
        "timeout": args.timeout,
    });
    args.target.put_into(&mut body);
    let Asked { http, id, targets } = ask(&base, token, "/api/v1/updates", &body).await?;
    println!(
        "update {id} started for {}, at most {} at a time",
        plural(targets.len(), "node"),
        args.max_parallel
    );
    let width = targets.iter().map(|t| t.len()).max().unwrap_or(0).max(4);
    println!("{:<width$}  {:<15}  DETAIL", "NODE", "STATE");
    let path = format!("/api/v1/updates/{id}");
    let mut shown_states = std::collections::BTreeMap::new();
    loop {
        let rollout = call(http.get(format!("{base}{path}")).bearer_auth(token), &path).await?;
        for node in rollout["nodes"].as_array().into_iter().flatten() {
            let name = node["node"].as_str().unwrap_or_default();
            let state = node["state"].as_str().unwrap_or_default();
            if shown_states.get(name).map(String::as_str) != Some(state) && state != "pending" {
                shown_states.insert(name.to_owned(), state.to_owned());
                let detail = node["message"]
                    .as_str()
                    .or(node["running"].as_str())
                    .unwrap_or_default();
                println!("{name:<width$}  {state:<15}  {detail}");
            }
        }
        match rollout["state"].as_str() {
            Some("running") => tokio::time::sleep(POLL_EVERY).await,
            Some("done") => {
                println!("update {id} done");
                return Ok(true);
            }
            other => {
                println!("update {id} {}", other.unwrap_or("ended"));
                return Ok(false);
            }
        }
    }
}

/// What the primary answered to an action or update asked of nodes.
struct Asked {
    http: reqwest::Client,
    id: String,
    targets: Vec<String>,
}

/// Posts `body` to `endpoint` (`/api/v1/actions` or `/api/v1/updates`) with the admin token;
/// the client to follow it with, its id and its target nodes.
async fn ask(
    base: &str,
    token: &str,
    endpoint: &str,
    body: &serde_json::Value,
) -> anyhow::Result<Asked> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .context("building the HTTP client")?;
    let created = call(
        http.post(format!("{base}{endpoint}"))
            .bearer_auth(token)
            .json(body),
        &format!("POST {endpoint}"),
    )
    .await?;
    let id = created["id"]
        .as_str()
        .with_context(|| format!("the primary's answer to POST {endpoint} has no id"))?
        .to_owned();
    let targets = created["targets"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Asked { http, id, targets })
}

/// `--url`, else `PIVITALS_URL`, else [`DEFAULT_URL`], without a trailing `/`.
fn primary_base(url: Option<String>) -> String {
    let base = url
        .or_else(|| {
            std::env::var("PIVITALS_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
        })
        .unwrap_or_else(|| DEFAULT_URL.to_owned());
    base.trim().trim_end_matches('/').to_owned()
}

impl NodeSelection {
    /// Puts exactly one selector into `body`: `all`, `nodes`, or `labels` (with `stack`).
    fn put_into(&self, body: &mut serde_json::Value) {
        if self.all {
            body["all"] = true.into();
        } else if !self.nodes.is_empty() {
            body["nodes"] = self.nodes.clone().into();
        } else {
            let mut map = serde_json::Map::new();
            if let Some(stack) = &self.stack {
                map.insert("stack".into(), stack.clone().into());
            }
            for (key, value) in &self.labels {
                map.insert(key.clone(), value.clone().into());
            }
            body["labels"] = map.into();
        }
    }
}

/// States after which a node's result no longer changes.
const FINAL_STATES: &[&str] = &[
    "done",
    "failed",
    "refused",
    "accepted",
    "timed_out",
    "expired",
];

/// Queues the action, then prints each node's row once final; Ok(whether all succeeded).
async fn action(args: ActionArgs, token: String) -> anyhow::Result<bool> {
    let token = token.as_str();
    let base = primary_base(args.url.clone());
    let mut body = serde_json::json!({ "action": args.name, "by": "cli" });
    args.target.put_into(&mut body);
    let Asked { http, id, targets } = ask(&base, token, "/api/v1/actions", &body).await?;
    println!(
        "action {} ({id}) queued for {}",
        args.name,
        plural(targets.len(), "node")
    );
    let width = targets.iter().map(|t| t.len()).max().unwrap_or(0).max(4);
    println!(
        "{:<width$}  {:<9}  {:>4}  {:>8}  OUTPUT",
        "NODE", "STATE", "EXIT", "DURATION"
    );
    let deadline = Instant::now() + args.timeout;
    let mut printed = std::collections::BTreeSet::new();
    let mut all_ok = true;
    let path = format!("/api/v1/actions/{id}");
    loop {
        let shown = call(http.get(format!("{base}{path}")).bearer_auth(token), &path).await?;
        let results = shown["results"].as_array().cloned().unwrap_or_default();
        for result in &results {
            let node = result["node"].as_str().unwrap_or_default();
            let state = result["state"].as_str().unwrap_or_default();
            if FINAL_STATES.contains(&state) && printed.insert(node.to_owned()) {
                all_ok &= matches!(state, "done" | "accepted");
                print_row(result, width, args.verbose, None);
            }
        }
        if printed.len() >= results.len() {
            return Ok(all_ok);
        }
        if Instant::now() >= deadline {
            let waited = humantime::format_duration(args.timeout);
            for result in &results {
                let node = result["node"].as_str().unwrap_or_default();
                if !printed.contains(node) {
                    print_row(
                        result,
                        width,
                        false,
                        Some(&format!("still pending after {waited}")),
                    );
                }
            }
            return Ok(false);
        }
        tokio::time::sleep(POLL_EVERY.min(deadline.saturating_duration_since(Instant::now())))
            .await;
    }
}

/// Sends `request`; the JSON answer of a 2xx, else an error with the status and the primary's
/// `error`.
async fn call(request: reqwest::RequestBuilder, what: &str) -> anyhow::Result<serde_json::Value> {
    let response = request.send().await.with_context(|| what.to_owned())?;
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{what}: reading the answer"))?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let error = json
            .as_ref()
            .and_then(|j| j["error"].as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| text.trim().to_owned());
        anyhow::bail!("{what}: {status}: {error}");
    }
    json.with_context(|| format!("{what}: the answer is not JSON"))
}

/// One table row for a node's result; `pending` replaces the output for unfinished ones.
fn print_row(result: &serde_json::Value, width: usize, verbose: bool, pending: Option<&str>) {
    let node = result["node"].as_str().unwrap_or_default();
    let state = result["state"].as_str().unwrap_or_default();
    let exit = result["exit_code"]
        .as_i64()
        .map_or_else(|| "-".to_owned(), |c| c.to_string());
    let duration = result["duration_ms"].as_u64().map_or_else(
        || "-".to_owned(),
        |ms| {
            if ms < 1000 {
                format!("{ms}ms")
            } else {
                format!("{:.1}s", ms as f64 / 1000.0)
            }
        },
    );
    let output = result["output"].as_str().unwrap_or_default();
    let message = result["message"].as_str().unwrap_or_default();
    let summary = match pending {
        Some(text) => text.to_owned(),
        None => output
            .lines()
            .find(|l| !l.trim().is_empty())
            .or(Some(message).filter(|m| !m.is_empty()))
            .unwrap_or_default()
            .to_owned(),
    };
    println!("{node:<width$}  {state:<9}  {exit:>4}  {duration:>8}  {summary}");
    if verbose {
        for line in output.lines() {
            println!("    {line}");
        }
        if result["truncated"].as_bool() == Some(true) {
            println!("    (output truncated)");
        }
        if !message.is_empty() {
            println!("    message: {message}");
        }
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// Completes on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
