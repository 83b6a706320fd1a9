//! `pivitals-primary`: the command line around [`pivitals_primary::run`].

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
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
}

#[derive(Subcommand)]
enum TokenAction {
    /// Replace the stored enrollment token with a new one and print it. Run it while the
    /// primary is stopped (a running primary rotates with POST
    /// /api/v1/admin/enroll-token/rotate); registered nodes keep working.
    Rotate,
}

fn main() {
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
