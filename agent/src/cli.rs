//! The command line: `pivitals-agent [--config PATH]`.
//!
//! Parsed by hand rather than with clap: the agent takes one option, and clap's parser, help
//! and error machinery was the largest part of the agent's own code (about 150 KiB of the
//! binary, all of it mapped on every start of a daemon that runs on small boards). Options are
//! `--name value` or `--name=value`. The load generator is a binary of its own,
//! `pivitals-simulate` (`bench/`).

use std::ffi::OsString;
use std::path::PathBuf;

use thiserror::Error;

pub const HELP: &str = "\
Samples this host's vitals and pushes them to the pivitals primary.

Usage: pivitals-agent [--config PATH]

Settings come from PIVITALS_* environment variables (PIVITALS_PRIMARY_URL,
PIVITALS_ENROLL_TOKEN, PIVITALS_NODE_NAME, PIVITALS_INTERVAL, PIVITALS_LABELS,
PIVITALS_STATE_DIR, PIVITALS_BACKLOG_MAX, PIVITALS_TLS__CA, ...), which override the
optional TOML file. PIVITALS_LOG (or RUST_LOG) sets the log level, default info: a level
(warn) or a list of target=level pairs with an optional default level
(pivitals_agent=debug,warn).

Options:
  --config PATH    TOML file with the same settings, keys in lower case without the prefix
  -h, --help       Print help
  -V, --version    Print version
";

/// What the command line asks for.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the agent, with this settings file if any.
    Agent { config: Option<PathBuf> },
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
            _ => return Err(CliError::Unexpected(arg)),
        }
    }
    Ok(Command::Agent { config })
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
        // The load generator moved to its own binary, `pivitals-simulate`.
        assert_eq!(
            parse_str(&["simulate"]),
            Err(CliError::Unexpected("simulate".into()))
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
    }
}
