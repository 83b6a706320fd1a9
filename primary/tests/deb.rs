//! The Debian packages end to end on this machine: `scripts/build-deb.sh` packs the binaries
//! this test run was built with, `dpkg -i` installs both packages, the installed primary and
//! the installed agent run as their system users with the installed settings (started by
//! hand, as their units would: no systemd runs here), the agent registers and pushes, and
//! `dpkg --purge` leaves no file, state directory or user behind.
//!
//! Needs root and dpkg (CI runs as root on Debian); fails, naming the reason, otherwise. It
//! refuses to run where either package is already installed, so it never purges a real one.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pivitals_testkit::free_port;
use pivitals_testkit::harness::{Proc, eventually, workspace_binary};
use pivitals_testkit::http;
use serde_json::Value;

const PACKAGES: [&str; 2] = ["pivitals-agent", "pivitals-primary"];

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// `dpkg ARGS`, waiting (up to a minute) while another dpkg or apt holds the lock.
fn dpkg(args: &[&str]) -> Output {
    let started = Instant::now();
    loop {
        let output = run("dpkg", args);
        let locked = String::from_utf8_lossy(&output.stderr).contains("lock");
        if output.status.success() || !locked || started.elapsed() > Duration::from_secs(60) {
            return output;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn is_installed(package: &str) -> bool {
    let status = run("dpkg-query", &["-W", "-f=${Status}", package]);
    String::from_utf8_lossy(&status.stdout).contains("ok installed")
}

fn user_exists(name: &str) -> bool {
    run("getent", &["passwd", name]).status.success()
}

fn group_exists(name: &str) -> bool {
    run("getent", &["group", name]).status.success()
}

fn uid_of(name: &str) -> u32 {
    let out = run("id", &["-u", name]);
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// Purges what the test installed, also when it fails half-way.
struct Installed;

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = dpkg(&["--purge", PACKAGES[0], PACKAGES[1]]);
    }
}

/// A directory the units' `StateDirectory=` would make: owned by `user`, mode 0700.
fn state_directory(path: &str, user: &str) {
    std::fs::create_dir_all(path).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).unwrap();
    let chown = run("chown", &[&format!("{user}:{user}"), path]);
    assert!(chown.status.success(), "{}", text(&chown));
}

/// `KEY=VALUE` lines of an environment file, as systemd's `EnvironmentFile=` reads them.
fn environment_file(path: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// `program args` as `user`, exec'd in place by setpriv, so signals reach the program.
fn as_user(user: &str, program: &str, args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = [
        "--reuid",
        user,
        "--regid",
        user,
        "--init-groups",
        "--",
        program,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    argv.extend(args.iter().map(|s| s.to_string()));
    argv
}

#[test]
fn the_debs_install_run_as_their_users_register_and_push_and_purge_leaves_nothing() {
    let uid = run("id", &["-u"]);
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "dpkg -i needs root; run this test as root, as CI does"
    );
    for package in PACKAGES {
        assert!(
            !is_installed(package),
            "{package} is installed on this machine already; this test installs and purges it, \
             so it will not run here"
        );
    }
    let etc_pivitals_before = Path::new("/etc/pivitals").exists();

    // Build both packages from the binaries of this test run.
    let dir = tempfile::tempdir().unwrap();
    let bin_dir: PathBuf = workspace_binary("pivitals-agent")
        .parent()
        .unwrap()
        .to_owned();
    workspace_binary("pivitals-primary");
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let built = Command::new("bash")
        .arg(repo.join("scripts/build-deb.sh"))
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(dir.path())
        // Debug binaries are large and xz is slow; what is packed is the same.
        .args(["--compression", "none"])
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built));
    let debs: Vec<String> = String::from_utf8_lossy(&built.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(debs.len(), 2, "{}", text(&built));
    let arch = String::from_utf8_lossy(&run("dpkg", &["--print-architecture"]).stdout)
        .trim()
        .to_owned();
    for (deb, package) in debs.iter().zip(PACKAGES) {
        assert!(deb.ends_with(&format!("_{arch}.deb")), "{deb}");
        let fields = run("dpkg-deb", &["--field", deb, "Package", "Architecture"]);
        assert_eq!(
            String::from_utf8_lossy(&fields.stdout),
            format!("Package: {package}\nArchitecture: {arch}\n")
        );
    }

    let _installed = Installed;
    let install = dpkg(&["-i", &debs[0], &debs[1]]);
    assert!(install.status.success(), "{}", text(&install));
    for package in PACKAGES {
        assert!(is_installed(package), "{package}");
    }
    for (path, mode) in [
        ("/usr/bin/pivitals-agent", 0o755),
        ("/usr/bin/pivitals-primary", 0o755),
        ("/lib/systemd/system/pivitals-agent.service", 0o644),
        ("/lib/systemd/system/pivitals-primary.service", 0o644),
        ("/etc/pivitals/agent.toml", 0o600),
        ("/etc/pivitals/primary.env", 0o600),
    ] {
        let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(meta.permissions().mode() & 0o7777, mode, "{path}");
    }
    assert!(user_exists("pivitals-agent") && user_exists("pivitals"));
    // The agent reads its settings as its own user; systemd reads the primary's as root.
    assert_eq!(
        std::fs::metadata("/etc/pivitals/agent.toml").unwrap().uid(),
        uid_of("pivitals-agent")
    );
    // The units keep the sandboxing of deploy/systemd/, line for line.
    for package in PACKAGES {
        let deployed =
            std::fs::read_to_string(repo.join(format!("deploy/systemd/{package}.service")))
                .unwrap();
        let installed =
            std::fs::read_to_string(format!("/lib/systemd/system/{package}.service")).unwrap();
        let hardening = deployed
            .lines()
            .skip_while(|l| !l.starts_with("NoNewPrivileges="))
            .take_while(|l| !l.is_empty());
        for line in hardening {
            assert!(
                installed.lines().any(|l| l == line),
                "{package}: no {line:?}"
            );
        }
    }
    // The installed units, with the installed binaries and users, as systemd would load them.
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        for unit in PACKAGES.map(|p| format!("/lib/systemd/system/{p}.service")) {
            let verify = run("systemd-analyze", &["verify", &unit]);
            assert!(
                verify.status.success() && verify.stderr.is_empty(),
                "systemd-analyze verify {unit}: {}",
                text(&verify)
            );
        }
    } else {
        eprintln!("systemd-analyze is not installed: the installed units were not verified");
    }
    let conffiles = run("dpkg-query", &["-W", "-f=${Conffiles}", "pivitals-agent"]);
    assert!(String::from_utf8_lossy(&conffiles.stdout).contains("/etc/pivitals/agent.toml"));

    // The primary as its unit runs it: its user, the unit's PIVITALS_DATA_DIR, the installed
    // primary.env; only the address differs (7070 may be taken on a test machine).
    let unit = std::fs::read_to_string("/lib/systemd/system/pivitals-primary.service").unwrap();
    assert!(unit.contains("Environment=PIVITALS_DATA_DIR=/var/lib/pivitals"));
    state_directory("/var/lib/pivitals", "pivitals");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut env: Vec<(String, String)> = environment_file("/etc/pivitals/primary.env");
    env.push(("PIVITALS_DATA_DIR".into(), "/var/lib/pivitals".into()));
    env.push(("PIVITALS_LISTEN".into(), format!("127.0.0.1:{port}")));
    env.push(("PIVITALS_SELF_MONITOR".into(), "false".into()));
    let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let primary_args = as_user("pivitals", "/usr/bin/pivitals-primary", &[]);
    let primary_args: Vec<&std::ffi::OsStr> = primary_args.iter().map(|a| a.as_ref()).collect();
    let mut primary = Proc::spawn_with_args(
        "primary",
        Path::new("/usr/bin/setpriv"),
        &primary_args,
        &env,
        dir.path(),
    );
    eventually(
        "the installed primary answers",
        Duration::from_secs(30),
        || {
            assert!(primary.is_running(), "{}", primary.log_tail());
            (http::get(&format!("{url}/healthz")).map(|r| r.status) == Ok(200)).then_some(())
        },
    );
    // It generated its enrollment token in its state directory, as its user.
    let token = std::fs::read_to_string("/var/lib/pivitals/enroll-token").unwrap();
    let token = token.trim();
    assert_eq!(
        std::fs::metadata("/var/lib/pivitals/enroll-token")
            .unwrap()
            .uid(),
        uid_of("pivitals")
    );

    // The agent's settings edited as its comments say.
    let settings = std::fs::read_to_string("/etc/pivitals/agent.toml").unwrap();
    let settings = settings
        .replace(
            "primary_url = \"http://primary.lan:7070\"",
            &format!("primary_url = \"{url}\""),
        )
        .replace(
            "#enroll_token = \"paste-the-enrollment-token-here\"",
            &format!("enroll_token = \"{token}\""),
        )
        .replace("#node_name = \"pi-01\"", "node_name = \"deb-board\"")
        .replace("#labels = \"stack=1,position=1\"", "labels = \"stack=4\"");
    std::fs::write("/etc/pivitals/agent.toml", settings).unwrap();
    state_directory("/var/lib/pivitals-agent", "pivitals-agent");
    let agent_args = as_user(
        "pivitals-agent",
        "/usr/bin/pivitals-agent",
        &["--config", "/etc/pivitals/agent.toml"],
    );
    let agent_args: Vec<&std::ffi::OsStr> = agent_args.iter().map(|a| a.as_ref()).collect();
    let mut agent = Proc::spawn_with_args(
        "agent",
        Path::new("/usr/bin/setpriv"),
        &agent_args,
        &[
            ("STATE_DIRECTORY", "/var/lib/pivitals-agent".to_owned()),
            ("PIVITALS_INTERVAL", "1s".to_owned()),
            ("PIVITALS_START_JITTER", "false".to_owned()),
        ],
        dir.path(),
    );
    let node = eventually(
        "the installed agent registers and pushes",
        Duration::from_secs(30),
        || {
            assert!(agent.is_running(), "{}", agent.log_tail());
            let answer = http::get(&format!("{url}/api/v1/nodes/deb-board")).ok()?;
            let node: Value = serde_json::from_slice(&answer.body).ok()?;
            (node["status"] == "up" && node["latest"]["timestamp_ms"].is_i64()).then_some(node)
        },
    );
    assert_eq!(node["labels"]["stack"], "4");
    let credential = std::fs::metadata("/var/lib/pivitals-agent/credential.json").unwrap();
    assert_eq!(credential.uid(), uid_of("pivitals-agent"));
    agent.stop_cleanly(Duration::from_secs(15));
    primary.stop_cleanly(Duration::from_secs(15));

    let purge = dpkg(&["--purge", PACKAGES[0], PACKAGES[1]]);
    assert!(purge.status.success(), "{}", text(&purge));
    for package in PACKAGES {
        assert!(!is_installed(package), "{package}");
    }
    for path in [
        "/usr/bin/pivitals-agent",
        "/usr/bin/pivitals-primary",
        "/lib/systemd/system/pivitals-agent.service",
        "/lib/systemd/system/pivitals-primary.service",
        "/etc/pivitals/agent.toml",
        "/etc/pivitals/primary.env",
        "/usr/share/doc/pivitals-agent",
        "/var/lib/pivitals-agent",
        "/var/lib/pivitals",
    ] {
        assert!(!Path::new(path).exists(), "{path} is left after the purge");
    }
    if !etc_pivitals_before {
        assert!(
            !Path::new("/etc/pivitals").exists(),
            "/etc/pivitals is left"
        );
    }
    for name in ["pivitals-agent", "pivitals"] {
        assert!(!user_exists(name), "the user {name} is left");
        assert!(!group_exists(name), "the group {name} is left");
    }
}
