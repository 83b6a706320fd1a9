//! `pivitals-primary`: the command line around [`pivitals_primary::run`].

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use pivitals_primary::config::PrimaryConfig;
use pivitals_primary::enroll;
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
    if let Err(err) = start(args) {
        eprintln!("pivitals-primary: {err:#}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn start(args: Args) -> anyhow::Result<()> {
    let mut config = PrimaryConfig::load(args.config.as_deref(), std::env::vars())?;
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
    config.enroll_token = Some(token);
    let listener = TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    pivitals_primary::run(listener, config, shutdown_signal()).await
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
