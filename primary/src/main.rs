//! `pivitals-primary`: the command line around [`pivitals_primary::run`].

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
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
    #[arg(long, value_name = "PATH")]
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
