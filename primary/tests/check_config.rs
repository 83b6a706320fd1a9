//! `pivitals-primary check-config`: the real binary reads a settings file and the environment
//! as a start would, prints one `ok:` line per part and exits 0, or prints the one-line
//! mistake (naming the rule, key or channel) and exits 2, without starting anything.

use std::path::{Path, PathBuf};
use std::process::Output;

use pivitals_testkit::harness::command;

/// Runs `check-config --config <dir>/primary.toml` with `text` as the file and only `env` as
/// `PIVITALS_*` variables; the data dir points into `dir`, so nothing may appear there.
fn check(dir: &Path, text: &str, env: &[(&str, &str)]) -> Output {
    let file = dir.join("primary.toml");
    std::fs::write(&file, text).unwrap();
    check_file(dir, &file, env)
}

fn check_file(dir: &Path, file: &Path, env: &[(&str, &str)]) -> Output {
    let mut cmd = command(Path::new(env!("CARGO_BIN_EXE_pivitals-primary")));
    cmd.current_dir(dir)
        .env("PIVITALS_DATA_DIR", dir.join("data"))
        .args(["check-config", "--config"])
        .arg(file);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let output = cmd.output().expect("run pivitals-primary check-config");
    assert!(
        !dir.join("data").exists(),
        "check-config created the data dir"
    );
    output
}

fn text(output: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The error of a failed check: exit code 2 and one line on stderr, which is returned.
fn refused(output: &Output) -> String {
    let (stdout, stderr) = text(output);
    assert_eq!(
        output.status.code(),
        Some(2),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    assert!(lines[0].starts_with("pivitals-primary: "), "{stderr}");
    lines[0].to_owned()
}

const VALID: &str = r#"
[alert]
default_rules = true

[alert.channels]
phone = "ntfy://ntfy.sh/pivitals-test"
mail = "smtp://alerts:secret@mail.example.com:587/?from=pi@example.com&to=me@example.com"

[[alert.rules]]
name = "hot"
metric = "temperature.celsius"
above = 75
for = "2m"
notify = ["phone"]

[[alert.rules]]
name = "stack 2 busy"
metric = "cpu.usage_percent"
above = 90
for = "15m"
repeat = "1h"
labels = { stack = "2" }
notify = ["mail", "phone"]

[[alert.rules]]
name = "throttled"
enabled = false
"#;

#[test]
fn a_valid_file_prints_what_it_configures_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(dir.path(), VALID, &[]);
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines.len() >= 3, "{stdout}");
    assert!(lines.iter().all(|l| l.starts_with("ok: ")), "{stdout}");
    let rules = lines
        .iter()
        .find(|l| l.contains(" rules ("))
        .unwrap_or_else(|| panic!("a line counts the rules: {stdout}"));
    // node down, disk full, under-voltage (defaults) + hot (a replacement) + stack 2 busy.
    assert!(rules.starts_with("ok: 5 rules (3 default)"), "{rules}");
    for name in ["node down", "hot", "stack 2 busy"] {
        assert!(rules.contains(name), "{name}: {rules}");
    }
    assert!(rules.contains("turned off: throttled"), "{rules}");
    let channels = lines
        .iter()
        .find(|l| l.contains(" channels"))
        .unwrap_or_else(|| panic!("a line counts the channels: {stdout}"));
    assert!(
        channels.starts_with("ok: 2 channels")
            && channels.contains("phone (ntfy)")
            && channels.contains("mail (email)"),
        "{channels}"
    );
    assert!(
        !stdout.contains("secret"),
        "no password is printed: {stdout}"
    );

    // The environment counts as at a start: PIVITALS_ALERT__NOTIFY adds notify-1.
    let output = check(
        dir.path(),
        VALID,
        &[(
            "PIVITALS_ALERT__NOTIFY",
            "gotify://gotify.lan/AzyoeNS.D4iJLVa",
        )],
    );
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        stdout.contains("ok: 3 channels") && stdout.contains("notify-1 (gotify)"),
        "{stdout}"
    );
    assert!(!stdout.contains("AzyoeNS"), "no token is printed: {stdout}");
}

#[test]
fn an_unknown_metric_field_names_the_rule_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(
        dir.path(),
        "[[alert.rules]]\nname = \"too warm\"\nmetric = \"temperature.celsus\"\nabove = 70\n",
        &[],
    );
    let error = refused(&output);
    assert!(
        error.contains("\"too warm\"") && error.contains("key metric") && error.contains("celsus"),
        "{error}"
    );
}

#[test]
fn an_unknown_channel_in_notify_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(
        dir.path(),
        "[alert.channels]\nphone = \"ntfy://ntfy.sh/pivitals-test\"\n\n\
         [[alert.rules]]\nname = \"hot\"\nmetric = \"temperature.celsius\"\nabove = 75\n\
         notify = [\"phone\", \"pager\"]\n",
        &[],
    );
    let error = refused(&output);
    assert!(
        error.contains("\"hot\"") && error.contains("notify") && error.contains("\"pager\""),
        "{error}"
    );
}

#[test]
fn a_malformed_channel_url_names_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let output = check(
        dir.path(),
        "[alert.channels]\nphone = \"ntfy://ntfy.sh/pivitals-test\"\nwall = \"ntfy://\"\n",
        &[],
    );
    let error = refused(&output);
    assert!(error.contains("wall"), "{error}");
    let output = check(
        dir.path(),
        "[alert.channels]\nchat = \"matrix://example.com/room\"\n",
        &[],
    );
    let error = refused(&output);
    assert!(error.contains("chat"), "{error}");
}

#[test]
fn the_example_rule_file_passes() {
    let dir = tempfile::tempdir().unwrap();
    let example: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "deploy",
        "alerts.example.toml",
    ]
    .iter()
    .collect();
    let output = check_file(dir.path(), &example, &[]);
    let (stdout, stderr) = text(&output);
    assert!(
        output.status.success(),
        "stdout: {stdout}\nstderr: {stderr}"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let text = std::fs::read_to_string(&example).unwrap();
    assert!(
        readme.contains(&format!("```toml\n{text}```")),
        "README.md's \"A rule file for a Pi cluster\" is deploy/alerts.example.toml"
    );
    for rule in [
        "hot",
        "disk full",
        "under-voltage",
        "memory peaks",
        "stack 2 busy",
    ] {
        assert!(stdout.contains(rule), "{rule}: {stdout}");
    }
}

#[test]
fn an_unknown_content_encoding_names_the_key_and_the_choices() {
    let dir = tempfile::tempdir().unwrap();
    let influx = [
        ("PIVITALS_INFLUX__API", "v1"),
        ("PIVITALS_INFLUX__URL", "http://127.0.0.1:8086"),
    ];
    let output = check(
        dir.path(),
        "",
        &[
            influx[0],
            influx[1],
            ("PIVITALS_INFLUX__CONTENT_ENCODING", "zstd"),
        ],
    );
    let error = refused(&output);
    assert!(
        error.contains("content_encoding")
            && error.contains("zstd")
            && error.contains("identity")
            && error.contains("gzip"),
        "{error}"
    );
    for encoding in ["gzip", "identity"] {
        let output = check(
            dir.path(),
            "",
            &[
                influx[0],
                influx[1],
                ("PIVITALS_INFLUX__CONTENT_ENCODING", encoding),
            ],
        );
        assert_eq!(
            output.status.code(),
            Some(0),
            "{encoding}: {:?}",
            text(&output)
        );
    }
}
