//! `pivitals-agent [--config PATH]`: reads its settings, then samples and pushes until SIGTERM
//! or Ctrl-C. Exit codes: 0 after a clean stop, 2 for a configuration the operator must fix,
//! 1 for anything else.
//!
//! `pivitals-agent simulate --nodes N ...`: many synthetic nodes against a primary, for load
//! tests and benchmarks (see `simulate.rs`); the normal agent never touches that code.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::anyhow;
use clap::Parser;
use pivitals_agent::{AgentError, Config, ConfigError, shutdown};
use tracing_subscriber::EnvFilter;

mod simulate;

/// Samples this host's vitals and pushes them to the pivitals primary.
///
/// Settings come from PIVITALS_* environment variables (PIVITALS_PRIMARY_URL,
/// PIVITALS_ENROLL_TOKEN, PIVITALS_NODE_NAME, PIVITALS_INTERVAL, PIVITALS_LABELS,
/// PIVITALS_STATE_DIR, PIVITALS_BACKLOG_MAX), which override the optional TOML file.
/// PIVITALS_LOG (or RUST_LOG) sets the log level, default info.
#[derive(Debug, Parser)]
#[command(name = "pivitals-agent", version)]
struct Cli {
    /// TOML file with the same settings, keys in lower case without the prefix.
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Simulates many nodes against a primary and prints one summary line (a load test).
    Simulate(simulate::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Some(Command::Simulate(args)) => simulate::simulate(args),
        None => agent(&cli),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pivitals-agent: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn agent(cli: &Cli) -> anyhow::Result<()> {
    let cfg = Config::load(cli.config.as_deref())?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(pivitals_agent::run(cfg, shutdown::signal()))?;
    Ok(())
}

fn exit_code(error: &anyhow::Error) -> u8 {
    let configuration = error.downcast_ref::<ConfigError>().is_some()
        || error
            .downcast_ref::<AgentError>()
            .is_some_and(AgentError::is_configuration);
    if configuration { 2 } else { 1 }
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("PIVITALS_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
