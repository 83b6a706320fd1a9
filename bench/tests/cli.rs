//! The `pivitals-simulate` binary's command line, run for real: its help lists the options the
//! agent's old `simulate` subcommand took and those of the action long poll, and a command
//! line that does not parse exits 2 without contacting anything. Also makes
//! `cargo test --workspace` build the binary, which the primary's end-to-end tests run.

use std::process::Command;

const SIMULATE: &str = env!("CARGO_BIN_EXE_pivitals-simulate");

#[test]
fn help_lists_every_option() {
    let output = Command::new(SIMULATE).arg("--help").output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--nodes",
        "--interval",
        "--duration",
        "--primary-url",
        "--enroll-token",
        "--threads",
        "--first",
        "--poll-actions",
        "--ask-action",
        "--admin-token",
        "--ask-after",
    ] {
        assert!(help.contains(option), "{option} missing from\n{help}");
    }
}

#[test]
fn a_command_line_that_does_not_parse_exits_2() {
    let output = Command::new(SIMULATE)
        .args(["--primary-url", "http://127.0.0.1:9", "--nodes", "many"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(output.stdout.is_empty());
}
