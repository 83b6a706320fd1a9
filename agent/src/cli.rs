//! The command line: `pivitals-agent [--config PATH]` and `pivitals-agent simulate [OPTIONS]`.
//!
//! Parsed by hand rather than with clap: the agent takes one option and the load-test
//! subcommand seven, and clap's parser, help and error machinery was the largest part of the
//! agent's own code (about 150 KiB of the binary, all of it mapped on every start of a daemon
//! that runs on small boards). Options are `--name value` or `--name=value`.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use thiserror::Error;

use crate::simulate::SimulateArgs;

pub const HELP: &str = "\
Samples this host's vitals and pushes them to the pivitals primary.

Usage: pivitals-agent [--config PATH]
       pivitals-agent simulate --primary-url URL --enroll-token TOKEN [OPTIONS]

Settings come from PIVITALS_* environment variables (PIVITALS_PRIMARY_URL,
PIVITALS_ENROLL_TOKEN, PIVITALS_NODE_NAME, PIVITALS_INTERVAL, PIVITALS_LABELS,
PIVITALS_STATE_DIR, PIVITALS_BACKLOG_MAX, PIVITALS_TLS__CA, ...), which override the
optional TOML file. PIVITALS_LOG (or RUST_LOG) sets the log level, default info: a level
(warn) or a list of target=level pairs with an optional default level
(pivitals_agent=debug,warn).

Commands:
  simulate         Simulates many nodes against a primary and prints one summary line
                   (a load test); `pivitals-agent simulate --help` for its options

Options:
  --config PATH    TOML file with the same settings, keys in lower case without the prefix
  -h, --help       Print help
  -V, --version    Print version
";

pub const SIMULATE_HELP: &str = "\
Simulates many nodes against a primary and prints one summary line (a load test).

Usage: pivitals-agent simulate --primary-url URL --enroll-token TOKEN [OPTIONS]

Options:
  --nodes N             How many nodes to simulate (named sim-00000, sim-00001, ...) [default: 100]
  --interval DURATION   Each node's push interval (1s, 500ms, 1m) [default: 1s]
  --duration DURATION   How long the nodes push, after all have registered [default: 30s]
  --primary-url URL     The primary, e.g. http://127.0.0.1:7070
  --enroll-token TOKEN  The primary's enrollment token
  --threads N           Threads, each with its own single-threaded runtime and a share of the
                        nodes [default: 1]
  --first N             The first node's number (to add nodes beside an earlier run's) [default: 0]
  -h, --help            Print help
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the agent, with this settings file if any.
    Agent {
        config: Option<PathBuf>,
    },
    Simulate(SimulateArgs),
    /// Print this text on stdout and exit 0 (help or version).
    Print(String),
}

/// A command line that does not parse; printed with a pointer to `--help`, exit code 2.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum CliError {
    #[error("unexpected argument {0:?}")]
    Unexpected(String),
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    #[error("invalid value {value:?} for {option}: {reason}")]
    InvalidValue {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("simulate needs {0}")]
    Required(&'static str),
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Command, CliError> {
    let mut args = Arguments::new(args)?;
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Print(HELP.to_owned())),
            "-V" | "--version" => {
                return Ok(Command::Print(format!(
                    "pivitals-agent {}\n",
                    env!("CARGO_PKG_VERSION")
                )));
            }
            "--config" => config = Some(PathBuf::from(args.value("--config")?)),
            "simulate" => return parse_simulate(args),
            _ => return Err(CliError::Unexpected(arg)),
        }
    }
    Ok(Command::Agent { config })
}

fn parse_simulate(mut args: Arguments) -> Result<Command, CliError> {
    let mut simulate = SimulateArgs::default();
    let mut primary_url = None;
    let mut enroll_token = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Print(SIMULATE_HELP.to_owned())),
            "--nodes" => simulate.nodes = args.number("--nodes")?,
            "--interval" => simulate.interval = args.duration("--interval")?,
            "--duration" => simulate.duration = args.duration("--duration")?,
            "--primary-url" => primary_url = Some(args.value("--primary-url")?),
            "--enroll-token" => enroll_token = Some(args.value("--enroll-token")?),
            "--threads" => simulate.threads = args.number("--threads")?,
            "--first" => simulate.first = args.number("--first")?,
            _ => return Err(CliError::Unexpected(arg)),
        }
    }
    simulate.primary_url = primary_url.ok_or(CliError::Required("--primary-url"))?;
    simulate.enroll_token = enroll_token.ok_or(CliError::Required("--enroll-token"))?;
    Ok(Command::Simulate(simulate))
}

/// The arguments as strings, with `--name=value` split in two.
struct Arguments {
    items: std::vec::IntoIter<String>,
}

impl Arguments {
    fn new(args: impl IntoIterator<Item = OsString>) -> Result<Self, CliError> {
        let mut items = Vec::new();
        for arg in args {
            let arg = arg
                .into_string()
                .map_err(|raw| CliError::Unexpected(raw.to_string_lossy().into_owned()))?;
            match arg.split_once('=') {
                Some((name, value)) if name.starts_with("--") => {
                    items.push(name.to_owned());
                    items.push(value.to_owned());
                }
                _ => items.push(arg),
            }
        }
        Ok(Self {
            items: items.into_iter(),
        })
    }

    fn next(&mut self) -> Option<String> {
        self.items.next()
    }

    fn value(&mut self, option: &'static str) -> Result<String, CliError> {
        self.items.next().ok_or(CliError::MissingValue(option))
    }

    fn number(&mut self, option: &'static str) -> Result<usize, CliError> {
        let value = self.value(option)?;
        value
            .parse()
            .map_err(|e: std::num::ParseIntError| CliError::InvalidValue {
                option,
                reason: e.to_string(),
                value,
            })
    }

    fn duration(&mut self, option: &'static str) -> Result<Duration, CliError> {
        let value = self.value(option)?;
        humantime::parse_duration(&value).map_err(|e| CliError::InvalidValue {
            option,
            reason: e.to_string(),
            value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(args: &[&str]) -> Result<Command, CliError> {
        parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_agent_takes_an_optional_config_file() {
        assert_eq!(parse_str(&[]), Ok(Command::Agent { config: None }));
        let expected = Command::Agent {
            config: Some(PathBuf::from("/etc/pivitals/agent.toml")),
        };
        assert_eq!(
            parse_str(&["--config", "/etc/pivitals/agent.toml"]),
            Ok(expected)
        );
        let expected = Command::Agent {
            config: Some(PathBuf::from("a=b.toml")),
        };
        assert_eq!(parse_str(&["--config=a=b.toml"]), Ok(expected));
        assert_eq!(
            parse_str(&["--config"]),
            Err(CliError::MissingValue("--config"))
        );
        assert_eq!(
            parse_str(&["--conf", "x"]),
            Err(CliError::Unexpected("--conf".into()))
        );
    }

    #[test]
    fn help_and_version_are_printed() {
        for help in ["-h", "--help"] {
            assert_eq!(parse_str(&[help]), Ok(Command::Print(HELP.to_owned())));
        }
        let Ok(Command::Print(version)) = parse_str(&["--version"]) else {
            panic!("--version prints");
        };
        assert_eq!(
            version,
            format!("pivitals-agent {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(
            parse_str(&["simulate", "--help"]),
            Ok(Command::Print(SIMULATE_HELP.to_owned()))
        );
    }

    #[test]
    fn simulate_takes_its_options_with_defaults() {
        let parsed = parse_str(&[
            "simulate",
            "--nodes",
            "5",
            "--interval=500ms",
            "--primary-url",
            "http://127.0.0.1:7070",
            "--enroll-token",
            "token",
            "--threads",
            "2",
        ]);
        let expected = SimulateArgs {
            nodes: 5,
            interval: Duration::from_millis(500),
            primary_url: "http://127.0.0.1:7070".into(),
            enroll_token: "token".into(),
            threads: 2,
            ..SimulateArgs::default()
        };
        assert_eq!(parsed, Ok(Command::Simulate(expected)));
        assert_eq!(SimulateArgs::default().nodes, 100);
        assert_eq!(SimulateArgs::default().duration, Duration::from_secs(30));
    }

    #[test]
    fn simulate_refuses_bad_or_missing_values() {
        let base = [
            "simulate",
            "--primary-url",
            "http://p",
            "--enroll-token",
            "t",
        ];
        let with = |extra: &[&str]| {
            let mut args = base.to_vec();
            args.extend_from_slice(extra);
            parse_str(&args)
        };
        assert!(matches!(
            with(&["--nodes", "many"]),
            Err(CliError::InvalidValue {
                option: "--nodes",
                ..
            })
        ));
        assert!(matches!(
            with(&["--interval", "soon"]),
            Err(CliError::InvalidValue {
                option: "--interval",
                ..
            })
        ));
        assert_eq!(
            parse_str(&["simulate", "--primary-url", "http://p"]),
            Err(CliError::Required("--enroll-token"))
        );
        assert_eq!(
            with(&["--config", "x"]),
            Err(CliError::Unexpected("--config".into()))
        );
    }
}
