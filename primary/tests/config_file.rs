//! The `pivitals-primary` binary refuses a settings file with an unknown key, naming the key
//! and the file, and starts with the same file once the typo is fixed.

use std::path::Path;
use std::process::{Child, Stdio};

use pivitals_testkit::harness::{command, wait_for_stderr_line};
use std::time::Duration;

const PRIMARY: &str = env!("CARGO_BIN_EXE_pivitals-primary");

/// The file's layout; `{tls}` is the `[tls]` line that holds the typo or not.
fn settings(tls_line: &str) -> String {
    format!(
        "self_monitor = false\n\
         [batch]\nmax_points = 50\n\
         [influx]\ntimeout = \"5s\"\n\
         [tls]\n{tls_line}\n"
    )
}

/// The primary with `file`, a data dir of its own, port 0 and no `PIVITALS_*` of the caller's
/// but an agent's variable, which it must ignore.
fn primary(file: &Path, data_dir: &Path) -> Child {
    command(Path::new(PRIMARY))
        .arg("--config")
        .arg(file)
        .env("PIVITALS_LISTEN", "127.0.0.1:0")
        .env("PIVITALS_DATA_DIR", data_dir)
        .env("PIVITALS_LOG", "info")
        .env("PIVITALS_PRIMARY_URL", "http://primary.example:7070")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pivitals-primary")
}

#[test]
fn an_unknown_key_stops_the_primary_with_the_key_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("primary.toml");
    std::fs::write(&file, settings("cert_fil = \"/etc/pivitals/cert.pem\"")).unwrap();
    let output = primary(&file, &dir.path().join("data"))
        .wait_with_output()
        .unwrap();
    assert!(!output.status.success(), "{:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let last = stderr.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "pivitals-primary: config file {}: unknown key `tls.cert_fil` (expected one of cert, key)",
            file.display()
        ),
        "{stderr}"
    );
}

#[test]
fn the_same_file_without_the_typo_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("primary.toml");
    std::fs::write(&file, settings("")).unwrap();
    let mut child = primary(&file, &dir.path().join("data"));
    if let Err(log) = wait_for_stderr_line(&mut child, "primary listening", Duration::from_secs(30))
    {
        panic!(
            "no \"primary listening\" in:
{}",
            log.join(
                "
"
            )
        );
    }
}
