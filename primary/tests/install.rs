//! The one-line installer end to end: a real primary serves `deploy/install.sh` and the real
//! `target/*/pivitals-agent` as the binary for this machine; the script runs as root (`sh`,
//! fed by `curl` like on a board) into a temporary root (`--prefix DIR --no-start`).
//! Checked: the files and their modes, idempotence, `--uninstall`, a binary that does not
//! match its SHA-256, an unreachable primary, the HTTP answers, once on the real root (the
//! system user made and removed again; `--no-start`), and, in a network namespace
//! joined to the primary by a veth pair, that the agent the script installed registers and
//! pushes with the settings the script wrote.
//!
//! These tests need root (CI runs them as root): they fail, naming the reason, otherwise.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use pivitals_testkit::free_port;
use pivitals_testkit::harness::{ADMIN, ENROLL, Proc, eventually, start_primary, workspace_binary};
use pivitals_testkit::http;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The installer's name for the machine the tests run on.
fn this_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        "arm" => "armv7",
        other => panic!("no installer architecture for {other}"),
    }
}

fn require_root() {
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "the installer tests run the script as root (it installs files, makes users and \
         network namespaces); run them as root, as CI does"
    );
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A directory of agent binaries holding the real agent for this machine.
fn binaries_dir(root: &Path) -> PathBuf {
    let dir = root.join("binaries");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(
        workspace_binary("pivitals-agent"),
        dir.join(format!("pivitals-agent-{}", this_arch())),
    )
    .unwrap();
    dir
}

/// A primary on loopback serving `binaries` (and the admin API).
fn primary_serving(dir: &Path, binaries: &Path, extra: &[(&str, String)]) -> (Proc, String) {
    let port = free_port();
    let mut env = vec![
        ("PIVITALS_AGENT_BINARIES", binaries.display().to_string()),
        ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    let primary = start_primary(dir, port, &env);
    (primary, format!("http://127.0.0.1:{port}"))
}

/// `curl -fsSL URL/install.sh | sh -s -- ARGS`, as the README tells a board to run it.
fn run_installer(url: &str, args: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!("curl -fsSL {url}/install.sh | sh -s -- {args}"))
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Every entry under `root`: its mode, and its content's hash and change time for files.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u32, Option<String>, Option<SystemTime>)> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let relative = path.strip_prefix(root).unwrap().to_owned();
            if meta.is_dir() {
                stack.push(path);
                entries.insert(relative, (meta.mode() & 0o7777, None, None));
            } else {
                let content = sha256_hex(&std::fs::read(&path).unwrap());
                let changed = meta.modified().ok();
                entries.insert(relative, (meta.mode() & 0o7777, Some(content), changed));
            }
        }
    }
    entries
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn the_installer_writes_binary_settings_and_unit_once_and_uninstall_restores_the_root() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries_dir(dir.path());
    let (_primary, url) = primary_serving(dir.path(), &binaries, &[]);

    // A temporary root that already holds something of its own.
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("etc/hostname"), "board\n").unwrap();
    let before = snapshot(&root);

    let args = format!(
        "--token {ENROLL} --name pi-07 --labels stack=2,position=1 --prefix {} --no-start",
        root.display()
    );
    let first = run_installer(&url, &args);
    assert!(first.status.success(), "{}", text(&first));
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(out.contains("node pi-07: installed, not started"), "{out}");

    let bin = root.join("var/lib/pivitals-agent/bin/pivitals-agent");
    let agent = std::fs::read(workspace_binary("pivitals-agent")).unwrap();
    // In the state directory, where the sandboxed agent may replace it; linked from the PATH.
    let link = root.join("usr/local/bin/pivitals-agent");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        Path::new("../../../var/lib/pivitals-agent/bin/pivitals-agent")
    );
    assert_eq!(std::fs::read(&link).unwrap(), agent, "the link resolves");
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        agent,
        "the binary served is installed"
    );
    assert_eq!(mode(&bin), 0o755);

    let conf = root.join("etc/pivitals/agent.toml");
    assert_eq!(mode(&conf), 0o600, "the settings hold the token");
    let settings = std::fs::read_to_string(&conf).unwrap();
    for line in [
        format!("primary_url = \"{url}\""),
        format!("enroll_token = \"{ENROLL}\""),
        "node_name = \"pi-07\"".to_owned(),
        "labels = \"stack=2,position=1\"".to_owned(),
    ] {
        assert!(
            settings.lines().any(|l| l == line),
            "{line:?} in\n{settings}"
        );
    }

    let unit_path = root.join("etc/systemd/system/pivitals-agent.service");
    assert_eq!(mode(&unit_path), 0o644);
    let unit = std::fs::read_to_string(&unit_path).unwrap();
    assert!(unit.contains(
        "ExecStart=/var/lib/pivitals-agent/bin/pivitals-agent --config /etc/pivitals/agent.toml"
    ));
    assert!(unit.lines().any(|l| l == "RestartForceExitStatus=75"));
    // The sandboxing of deploy/systemd/pivitals-agent.service, line for line.
    let deployed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/systemd/pivitals-agent.service"),
    )
    .unwrap();
    let hardening = deployed
        .lines()
        .skip_while(|l| !l.starts_with("NoNewPrivileges="))
        .take_while(|l| !l.is_empty());
    for line in hardening.chain(["StateDirectory=pivitals-agent", "StateDirectoryMode=0700"]) {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line:?}");
    }
    assert!(unit.contains("User=pivitals-agent"));
    // systemd accepts the unit (verify checks that ExecStart exists: the installed one).
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let copy = dir.path().join("pivitals-agent.service");
        let installed_bin = format!("ExecStart={}", bin.display());
        std::fs::write(
            &copy,
            unit.replace(
                "ExecStart=/var/lib/pivitals-agent/bin/pivitals-agent",
                &installed_bin,
            ),
        )
        .unwrap();
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&copy)
            .output()
            .unwrap();
        assert!(
            verify.status.success() && verify.stderr.is_empty(),
            "systemd-analyze verify: {}",
            text(&verify)
        );
    } else {
        eprintln!("systemd-analyze is not installed: the unit was not verified");
    }

    // The second run changes nothing: same files, same modes, not even rewritten.
    let installed = snapshot(&root);
    let second = run_installer(&url, &args);
    assert!(second.status.success(), "{}", text(&second));
    assert_eq!(snapshot(&root), installed);
    let out = String::from_utf8_lossy(&second.stdout);
    assert_eq!(out.matches("unchanged: ").count(), 3, "{out}");

    // Other labels: only the settings change.
    let relabelled = args.replace("position=1", "position=2");
    let third = run_installer(&url, &relabelled);
    assert!(third.status.success(), "{}", text(&third));
    let changed: Vec<PathBuf> = snapshot(&root)
        .into_iter()
        .filter(|(path, entry)| installed.get(path) != Some(entry))
        .map(|(path, _)| path)
        .collect();
    assert_eq!(changed, [PathBuf::from("etc/pivitals/agent.toml")]);

    let removed = run_installer(&url, &format!("--uninstall --prefix {}", root.display()));
    assert!(removed.status.success(), "{}", text(&removed));
    assert_eq!(
        snapshot(&root),
        before,
        "--uninstall leaves the root as it was"
    );
}

#[test]
fn a_binary_that_does_not_match_its_sha256_is_refused_and_nothing_is_installed() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries_dir(dir.path());
    let (_primary, url) = primary_serving(dir.path(), &binaries, &[]);
    // Corrupt the binary after the primary hashed it at start: what it serves is no longer
    // what its SHA-256 says.
    let served = binaries.join(format!("pivitals-agent-{}", this_arch()));
    let mut bytes = std::fs::read(&served).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&served, &bytes).unwrap();

    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let output = run_installer(
        &url,
        &format!(
            "--token {ENROLL} --name pi-08 --prefix {} --no-start",
            root.display()
        ),
    );
    assert_eq!(output.status.code(), Some(4), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("does not match its SHA-256") && stderr.contains("Nothing was installed"),
        "{stderr}"
    );
    assert!(snapshot(&root).is_empty(), "nothing is installed");
}

#[test]
fn an_unreachable_primary_is_refused_with_one_message_and_exit_code_3() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries_dir(dir.path());
    // The script names a primary nobody listens at (a port that was free a moment ago).
    let dead = format!("http://127.0.0.1:{}", free_port());
    let (_primary, url) = primary_serving(
        dir.path(),
        &binaries,
        &[("PIVITALS_PUBLIC_URL", dead.clone())],
    );
    let script = http::get(&format!("{url}/install.sh")).unwrap();
    assert_eq!(script.status, 200);
    let script_path = dir.path().join("install.sh");
    std::fs::write(&script_path, script.body).unwrap();

    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let output = Command::new("sh")
        .arg(&script_path)
        .args(["--token", ENROLL, "--prefix"])
        .arg(&root)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(3), "{}", text(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "one message: {stderr}");
    assert!(
        stderr.starts_with(&format!(
            "pivitals: cannot reach the pivitals primary at {dead}"
        )),
        "{stderr}"
    );
    assert!(snapshot(&root).is_empty(), "nothing is installed");
}

#[test]
fn the_primary_serves_script_binaries_hashes_and_the_admin_command() {
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries_dir(dir.path());
    let (_primary, url) = primary_serving(dir.path(), &binaries, &[]);
    let arch = this_arch();
    let agent = std::fs::read(workspace_binary("pivitals-agent")).unwrap();
    let hash = sha256_hex(&agent);

    let script = http::get(&format!("{url}/install.sh")).unwrap();
    assert_eq!(script.status, 200);
    assert!(script.text().starts_with("#!/bin/sh"));
    assert!(
        script.text().contains(&format!("PRIMARY_URL='{url}'")),
        "the Host's URL"
    );

    let binary = http::get(&format!("{url}/agent/{arch}")).unwrap();
    assert_eq!(binary.status, 200);
    assert_eq!(binary.body, agent);
    assert_eq!(binary.header("x-pivitals-sha256"), Some(hash.as_str()));
    let sum = http::get(&format!("{url}/agent/{arch}.sha256")).unwrap();
    assert_eq!(sum.text(), format!("{hash}  pivitals-agent-{arch}\n"));

    let other = if arch == "armv6" { "x86_64" } else { "armv6" };
    let absent = http::get(&format!("{url}/agent/{other}")).unwrap();
    assert_eq!(absent.status, 404);
    let error: Value = serde_json::from_slice(&absent.body).unwrap();
    assert!(error["error"].as_str().unwrap().contains(other), "{error}");
    let unknown = http::get(&format!("{url}/agent/sparc")).unwrap();
    assert_eq!(unknown.status, 404);
    assert!(unknown.text().contains("sparc"));

    let command_url = format!("{url}/api/v1/admin/install-command");
    assert_eq!(http::get(&command_url).unwrap().status, 401);
    let bearer = format!("Bearer {ADMIN}");
    let answer = http::request("GET", &command_url, &[("Authorization", &bearer)], &[]).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    let body: Value = serde_json::from_slice(&answer.body).unwrap();
    assert_eq!(
        body["command"],
        format!("curl -fsSL {url}/install.sh | sudo sh -s -- --token {ENROLL}")
    );

    // A Host header that is not a host and port is not written into a script.
    let mut stream = std::net::TcpStream::connect(url.trim_start_matches("http://")).unwrap();
    stream
        .write_all(b"GET /install.sh HTTP/1.1\r\nHost: x;reboot\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("PIVITALS_PUBLIC_URL"), "{answer}");
}

#[test]
fn a_primary_without_binaries_serves_no_installer_and_says_which_setting() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _primary = start_primary(
        dir.path(),
        port,
        &[("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned())],
    );
    let url = format!("http://127.0.0.1:{port}");
    for path in ["/install.sh", "/agent/x86_64", "/agent/armv6.sha256"] {
        let answer = http::get(&format!("{url}{path}")).unwrap();
        assert_eq!(answer.status, 404, "{path}");
        let body: Value = serde_json::from_slice(&answer.body).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(
            error.contains("serves no agent binaries") && error.contains("PIVITALS_AGENT_BINARIES"),
            "{path}: {error}"
        );
    }
    let bearer = format!("Bearer {ADMIN}");
    let command = http::request(
        "GET",
        &format!("{url}/api/v1/admin/install-command"),
        &[("Authorization", &bearer)],
        &[],
    )
    .unwrap();
    assert_eq!(command.status, 404);
}

/// A network namespace joined to this one by a veth pair: the host end
/// `10.251.N.1/30`, the namespace's end `.2`. Deleted (with the pair) on drop.
struct Netns {
    name: String,
    host_link: String,
    host_addr: String,
}

fn ip(args: &[&str]) {
    let output = Command::new("ip").args(args).output().unwrap_or_else(|e| {
        panic!("ip (iproute2) is needed for this test; scripts/test.sh installs it: {e}")
    });
    assert!(output.status.success(), "ip {args:?}: {}", text(&output));
}

impl Netns {
    fn create() -> Netns {
        let id = std::process::id() % 10_000;
        let name = format!("pvt-install-{id}");
        let host_link = format!("pvh{id}");
        let ns_link = format!("pvn{id}");
        let subnet = id % 250;
        let host_addr = format!("10.251.{subnet}.1");
        let ns_addr = format!("10.251.{subnet}.2");
        let netns = Netns {
            name: name.clone(),
            host_link: host_link.clone(),
            host_addr: host_addr.clone(),
        };
        ip(&["netns", "add", &name]);
        ip(&[
            "link", "add", &host_link, "type", "veth", "peer", "name", &ns_link,
        ]);
        ip(&["link", "set", &ns_link, "netns", &name]);
        ip(&["addr", "add", &format!("{host_addr}/30"), "dev", &host_link]);
        ip(&["link", "set", &host_link, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{ns_addr}/30"),
            "dev",
            &ns_link,
        ]);
        ip(&["-n", &name, "link", "set", &ns_link, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        netns
    }

    /// `ip netns exec NAME program args…`.
    fn exec(&self, program: &str) -> Command {
        let mut command = Command::new("ip");
        command.args(["netns", "exec", &self.name, program]);
        command
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        // Deleting the namespace destroys the pair, but not always at once.
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_link])
            .output();
    }
}

#[test]
fn in_a_network_namespace_the_agent_the_script_installed_registers_and_pushes() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries_dir(dir.path());
    let netns = Netns::create();

    // The primary listens on the host end of the pair only.
    let port = free_port();
    let url = format!("http://{}:{port}", netns.host_addr);
    let program = workspace_binary("pivitals-primary");
    let env = [
        ("PIVITALS_LISTEN", format!("{}:{port}", netns.host_addr)),
        (
            "PIVITALS_DATA_DIR",
            dir.path().join("primary").display().to_string(),
        ),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ("PIVITALS_AGENT_BINARIES", binaries.display().to_string()),
    ];
    let mut primary = Proc::spawn("primary", &program, &env, dir.path());
    eventually(
        "the primary answers on the veth address",
        Duration::from_secs(30),
        || {
            assert!(primary.is_running(), "{}", primary.log_tail());
            (http::get(&format!("{url}/healthz")).map(|r| r.status) == Ok(200)).then_some(())
        },
    );

    // The installer runs inside the namespace, where the primary is reachable only over the
    // pair, and fetches everything from it.
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    let installed = netns
        .exec("sh")
        .arg("-c")
        .arg(format!(
            "curl -fsSL {url}/install.sh | sh -s -- --token {ENROLL} --name ns-board \
             --labels stack=3,position=1 --prefix {} --no-start",
            root.display()
        ))
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", text(&installed));

    // The installed binary with the installed settings; only where systemd would put its
    // state, and a short interval so the test need not wait a minute, come from here.
    let state = dir.path().join("agent-state");
    let log = std::fs::File::create(dir.path().join("agent.log")).unwrap();
    let mut agent = netns
        .exec(
            &root
                .join("usr/local/bin/pivitals-agent")
                .display()
                .to_string(),
        )
        .arg("--config")
        .arg(root.join("etc/pivitals/agent.toml"))
        .env("PIVITALS_STATE_DIR", &state)
        .env("PIVITALS_INTERVAL", "1s")
        .env("PIVITALS_START_JITTER", "false")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let agent_log = || std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();

    let node = eventually(
        "the installed agent registers and pushes from the namespace",
        Duration::from_secs(30),
        || {
            assert!(
                agent.try_wait().unwrap().is_none(),
                "the agent exited:\n{}",
                agent_log()
            );
            let answer = http::get(&format!("{url}/api/v1/nodes/ns-board")).ok()?;
            let node: Value = serde_json::from_slice(&answer.body).ok()?;
            (node["status"] == "up" && node["latest"]["timestamp_ms"].is_i64()).then_some(node)
        },
    );
    assert_eq!(node["labels"]["stack"], "3");
    assert_eq!(node["labels"]["position"], "1");
    // It pushed from the namespace's address, over the pair.
    let ipv4 = node["primary_ipv4"].as_str().unwrap_or_default();
    assert!(ipv4.starts_with("10.251."), "{node}");

    let _ = agent.kill();
    let _ = agent.wait();
    primary.stop_cleanly(Duration::from_secs(15));
}

/// Runs the installer's `--uninstall` on the real root when dropped, so a failing test
/// leaves no user or file behind.
struct UninstallOnDrop(String);

impl Drop for UninstallOnDrop {
    fn drop(&mut self) {
        let _ = run_installer(&self.0, "--uninstall");
    }
}

fn getent(database: &str, key: &str) -> Option<String> {
    let output = Command::new("getent")
        .args([database, key])
        .output()
        .unwrap();
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

#[test]
fn on_the_real_root_the_installer_makes_its_user_and_uninstall_removes_it_again() {
    require_root();
    let bin = Path::new("/usr/local/bin/pivitals-agent");
    let conf = Path::new("/etc/pivitals/agent.toml");
    let unit = Path::new("/etc/systemd/system/pivitals-agent.service");
    assert!(
        !bin.exists() && !conf.exists() && getent("passwd", "pivitals-agent").is_none(),
        "an agent is installed on this machine already; this test installs and removes one, \
         so it will not run here"
    );
    let existed = |path: &str| Path::new(path).exists();
    let before = [
        existed("/etc/pivitals"),
        existed("/etc/systemd/system"),
        existed("/usr/local/bin"),
    ];
    let dir = tempfile::tempdir().unwrap();
    let binaries = binaries_dir(dir.path());
    let (_primary, url) = primary_serving(dir.path(), &binaries, &[]);
    let _cleanup = UninstallOnDrop(url.clone());

    // --no-start: where systemd runs, this test must not leave a service running.
    let installed = run_installer(&url, &format!("--token {ENROLL} --name root-01 --no-start"));
    assert!(installed.status.success(), "{}", text(&installed));
    let user = getent("passwd", "pivitals-agent").expect("the system user is made");
    let fields: Vec<&str> = user.split(':').collect();
    assert_eq!(fields[5], "/var/lib/pivitals-agent", "{user}");
    assert!(fields[6].ends_with("nologin"), "{user}");
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid < 1000, "a system user: {user}");
    assert_eq!(mode(bin), 0o755);
    assert_eq!(mode(conf), 0o600);
    assert_eq!(
        std::fs::metadata(conf).unwrap().uid(),
        uid,
        "the agent reads its settings as its own user"
    );
    assert_eq!(mode(unit), 0o644);

    let removed = run_installer(&url, "--uninstall");
    assert!(removed.status.success(), "{}", text(&removed));
    for path in [bin, conf, unit, Path::new("/var/lib/pivitals-agent")] {
        assert!(!path.exists(), "{} is left", path.display());
    }
    assert!(
        getent("passwd", "pivitals-agent").is_none(),
        "the user is left"
    );
    assert!(
        getent("group", "pivitals-agent").is_none(),
        "the group is left"
    );
    let after = [
        existed("/etc/pivitals"),
        existed("/etc/systemd/system"),
        existed("/usr/local/bin"),
    ];
    // /etc/pivitals is the installer's own; a unit directory it had to make stays (on a
    // real root it removes no directory of the system's).
    assert_eq!(after[0], before[0], "/etc/pivitals");
    for (was, is) in before.iter().zip(after) {
        assert!(
            !was || is,
            "a directory that was there is gone: {before:?} -> {after:?}"
        );
    }
}
