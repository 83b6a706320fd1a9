//! `pivitals-agent [--config PATH]`: reads its settings, then samples and pushes until SIGTERM
//! or Ctrl-C. Exit codes: 0 after a clean stop, 2 for a configuration the operator must fix,
//! 1 for anything else.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use anyhow::anyhow;
use pivitals_agent::{AgentError, Config, ConfigError, shutdown};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::Command;

mod cli;

fn main() -> ExitCode {
    let command = match cli::parse(std::env::args_os().skip(1)) {
        Ok(command) => command,
        Err(e) => {
            eprintln!("pivitals-agent: {e}\n\nFor more information, try '--help'.");
            return ExitCode::from(2);
        }
    };
    init_logging();
    let result = match &command {
        Command::Print(text) => {
            print!("{text}");
            Ok(())
        }
        Command::Agent { config } => agent(config.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pivitals-agent: {e}");
            ExitCode::from(exit_code(&e))
        }
    }
}

fn agent(config_file: Option<&Path>) -> anyhow::Result<()> {
    let cfg = Config::load(config_file)?;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime =
        one_thread_runtime().map_err(|e| anyhow!("cannot start the async runtime: {e}"))?;
    runtime.block_on(pivitals_agent::run(cfg, shutdown::signal()))?;
    Ok(())
}

/// The agent's runtime: one thread. A `LocalRuntime` rather than `Builder::build`, which can
/// also build the multi-thread scheduler: when the workspace is built together with the primary
/// (which enables it), that code would be linked into the agent, and with it libm (its task-poll
/// statistics call `pow`), some 300 KiB of resident memory for a function never called.
fn one_thread_runtime() -> std::io::Result<tokio::runtime::LocalRuntime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build_local(tokio::runtime::LocalOptions::default())
}

fn exit_code(error: &anyhow::Error) -> u8 {
    let configuration = error.downcast_ref::<ConfigError>().is_some()
        || error
            .downcast_ref::<AgentError>()
            .is_some_and(AgentError::is_configuration);
    if configuration { 2 } else { 1 }
}

fn init_logging() {
    let filter = log_filter(
        std::env::var("PIVITALS_LOG").ok().as_deref(),
        std::env::var("RUST_LOG").ok().as_deref(),
    );
    let format = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false);
    tracing_subscriber::registry()
        .with(format)
        .with(filter)
        .init();
}

/// The first of `PIVITALS_LOG` and `RUST_LOG` that parses, else `info`. A level or
/// `target=level` list needs no regular expressions: `Targets` instead of `EnvFilter`, whose
/// span and field matching would add a regex engine (about 200 KiB) to the binary.
fn log_filter(pivitals_log: Option<&str>, rust_log: Option<&str>) -> Targets {
    [pivitals_log, rust_log]
        .into_iter()
        .flatten()
        .map(str::trim)
        .filter(|text| !text.is_empty())
        .find_map(|text| text.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO))
}

#[cfg(test)]
mod tests {
    use tracing::Level;
    use tracing::level_filters::LevelFilter;

    use super::*;

    #[test]
    fn log_filters_take_a_level_or_targets_with_a_default() {
        let warn = log_filter(Some("warn"), Some("debug"));
        assert_eq!(warn.default_level(), Some(LevelFilter::WARN));
        assert!(warn.would_enable("pivitals_agent::run", &Level::WARN));
        assert!(!warn.would_enable("pivitals_agent::run", &Level::INFO));

        let targets = log_filter(Some("pivitals_agent::push=debug,warn"), None);
        assert!(targets.would_enable("pivitals_agent::push", &Level::DEBUG));
        assert!(!targets.would_enable("pivitals_agent::run", &Level::INFO));
        assert!(targets.would_enable("hyper", &Level::WARN));
    }

    #[test]
    fn log_filter_falls_back_to_rust_log_then_info() {
        let from_rust_log = log_filter(None, Some("debug"));
        assert_eq!(from_rust_log.default_level(), Some(LevelFilter::DEBUG));
        let empty = log_filter(Some(" "), None);
        assert_eq!(empty.default_level(), Some(LevelFilter::INFO));
        let unparsable = log_filter(Some("pivitals_agent=loud"), None);
        assert_eq!(unparsable.default_level(), Some(LevelFilter::INFO));
    }
}
