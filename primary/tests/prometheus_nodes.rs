//! `GET /metrics/nodes` with the real binaries: its text, with every family three agents and
//! a pushed Raspberry Pi sample fill, passes `promtool check metrics` (Debian `prometheus`); a
//! stopped node keeps its values, a late one is no longer up, and a deleted one vanishes. A
//! real Prometheus scraping it every second answers `pivitals_node_up` 1 for running agents
//! and 0 for a stopped one, and every PromQL expression of the Grafana dashboard
//! `influx/grafana/dashboards-prometheus/` returns series from that Prometheus.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use pivitals_testkit::harness::{ADMIN, ENROLL, Proc, eventually, get_json, start_agent_with};
use pivitals_testkit::http::{self, request};
use pivitals_testkit::prometheus::ScrapeTarget;
use pivitals_testkit::repo_files::{read_json, repo_root, run, yaml_documents};
use pivitals_testkit::samples::{now_ms, pi_sample, push_body, register_request};
use pivitals_testkit::{Prometheus, free_port};
use serde_json::Value;

/// A tree that looks like a Raspberry Pi's `/sys` (one thermal zone, the firmware's throttling
/// word) with the host's `/proc` and block devices, for an agent's `PIVITALS_ROOT`: so the
/// temperature and throttling families have data on any machine.
fn raspberry_pi_root(dir: &Path) -> PathBuf {
    let root = dir.join("pi-root");
    let write = |path: &str, content: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    };
    write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    write("sys/class/thermal/thermal_zone0/temp", "48312\n");
    write(
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        "0x50005\n",
    );
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::os::unix::fs::symlink("/sys/devices/system", root.join("sys/devices/system")).unwrap();
    std::os::unix::fs::symlink("/sys/block", root.join("sys/block")).unwrap();
    root
}

/// The primary binary on `port` with the harness's tokens, the admin token, and self-monitoring
/// off (so only the test's nodes are in the table).
fn start_primary(dir: &Path, port: u16) -> Proc {
    pivitals_testkit::harness::start_primary(
        dir,
        port,
        &[
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
        ],
    )
}

/// Three one-second agents: `<prefix>-a` and `<prefix>-b` (labels `stack=7,role=worker`) and
/// `<prefix>-pi` reading [`raspberry_pi_root`] (labels `stack=7,role=pi`).
fn start_agents(dir: &Path, url: &str, prefix: &str) -> Vec<Proc> {
    let root = raspberry_pi_root(dir);
    let pi_env = [
        ("PIVITALS_LABELS", "stack=7,role=pi".to_owned()),
        ("PIVITALS_ROOT", root.display().to_string()),
    ];
    vec![
        start_agent_with(dir, &format!("{prefix}-a"), url, "1s", &[]),
        start_agent_with(dir, &format!("{prefix}-b"), url, "1s", &[]),
        start_agent_with(dir, &format!("{prefix}-pi"), url, "1s", &pi_env),
    ]
}

/// Registers `name` (labels `stack=1`) and pushes one [`pi_sample`]: the power and storage
/// wear families no agent can read on a machine that is no Raspberry Pi.
fn push_pi_node(url: &str, name: &str) {
    let json = ("Content-Type", "application/json");
    let body = serde_json::to_vec(&register_request(name)).unwrap();
    let enroll = format!("Bearer {ENROLL}");
    let reply = request(
        "POST",
        &format!("{url}/api/v1/register"),
        &[json, ("Authorization", enroll.as_str())],
        &body,
    )
    .unwrap();
    assert_eq!(reply.status, 200, "register: {}", reply.text());
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    let token = format!("Bearer {}", reply["node_token"].as_str().unwrap());
    let body = serde_json::to_vec(&push_body(vec![pi_sample(now_ms(), 20.0, 50.0)])).unwrap();
    let reply = request(
        "POST",
        &format!("{url}/api/v1/vitals"),
        &[json, ("Authorization", token.as_str())],
        &body,
    )
    .unwrap();
    assert_eq!(reply.status, 200, "push: {}", reply.text());
}

/// `GET /metrics/nodes`; checks the status and the content type.
fn node_metrics(url: &str) -> String {
    let answer = http::get(&format!("{url}/metrics/nodes")).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.text());
    assert_eq!(
        answer.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    answer.text()
}

/// The value of the sample of `family` whose label text contains every one of `labels`
/// (`node="x"`).
fn sample_value(text: &str, family: &str, labels: &[&str]) -> Option<f64> {
    text.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{'))
        })
        .find(|l| labels.iter().all(|label| l.contains(label)))
        .and_then(|l| l.rsplit_once(' ')?.1.parse().ok())
}

/// Runs `promtool check metrics` with `text` on stdin: (success, stdout + stderr).
fn promtool_check_metrics(text: &str) -> (bool, String) {
    use std::io::Write;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool (apt-get install prometheus): {e}"));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), said)
}

#[test]
fn node_metrics_of_real_agents_pass_promtool_and_follow_the_node_table() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(dir.path(), port);
    let mut agents = start_agents(dir.path(), &url, "pm");
    push_pi_node(&url, "pm-pushed");

    // Every agent has pushed twice: its network and disk rates are there.
    eventually(
        "every agent's rates in /metrics/nodes",
        Duration::from_secs(40),
        || {
            let text = node_metrics(&url);
            ["pm-a", "pm-b", "pm-pi"]
                .iter()
                .all(|node| {
                    let label = format!("node=\"{node}\"");
                    sample_value(
                        &text,
                        "pivitals_network_receive_bytes_per_second",
                        &[&label],
                    )
                    .is_some()
                })
                .then_some(())
        },
    );

    // A goodbye: stopped, up 0, and the last values stay.
    agents[1].stop_cleanly(Duration::from_secs(15));
    // The pushed node pushed once and has a one-second interval: it turns late, then down.
    let text = eventually(
        "pm-b stopped and pm-pushed late",
        Duration::from_secs(10),
        || {
            let text = node_metrics(&url);
            let stopped = ["node=\"pm-b\"", "state=\"stopped\""];
            let pushed_up = ["node=\"pm-pushed\"", "state=\"up\""];
            (sample_value(&text, "pivitals_node_state", &stopped) == Some(1.0)
                && sample_value(&text, "pivitals_node_state", &pushed_up) == Some(0.0))
            .then_some(text)
        },
    );
    assert_eq!(
        sample_value(&text, "pivitals_node_up", &["node=\"pm-b\""]),
        Some(0.0)
    );
    let shown = get_json(&format!("{url}/api/v1/nodes/pm-b"));
    assert_eq!(
        sample_value(&text, "pivitals_memory_used_bytes", &["node=\"pm-b\""]),
        shown["latest"]["memory"]["used_bytes"].as_f64(),
        "a stopped node keeps the values of its last sample:\n{text}"
    );
    for (node, up) in [("pm-a", 1.0), ("pm-pi", 1.0), ("pm-pushed", 0.0)] {
        let label = format!("node=\"{node}\"");
        assert_eq!(
            sample_value(&text, "pivitals_node_up", &[&label]),
            Some(up),
            "{node}:\n{text}"
        );
    }
    let late_or_down: f64 = ["late", "down"]
        .iter()
        .filter_map(|state| {
            let state = format!("state=\"{state}\"");
            sample_value(
                &text,
                "pivitals_node_state",
                &["node=\"pm-pushed\"", &state],
            )
        })
        .sum();
    assert_eq!(late_or_down, 1.0, "{text}");
    for (family, labels) in [
        (
            "pivitals_temperature_celsius",
            ["node=\"pm-pi\"", "sensor=\"cpu-thermal\""],
        ),
        (
            "pivitals_pi_throttled",
            ["node=\"pm-pi\"", "condition=\"under_voltage_now\""],
        ),
        (
            "pivitals_fan_speed_rpm",
            ["node=\"pm-pushed\"", "stack=\"1\""],
        ),
        (
            "pivitals_storage_emmc_life_time_estimate",
            ["node=\"pm-pushed\"", "type=\"a\""],
        ),
        (
            "pivitals_filesystem_avail_bytes",
            ["node=\"pm-a\"", "mountpoint=\"/\""],
        ),
        (
            "pivitals_memory_total_bytes",
            ["node=\"pm-a\"", "role=\"worker\""],
        ),
    ] {
        assert!(
            sample_value(&text, family, &labels).is_some(),
            "{family} {labels:?} missing from\n{text}"
        );
    }

    // The real output, every family the agents and the pushed Pi fill, passes promtool
    // without a single remark (lint problems would be printed).
    let (ok, said) = promtool_check_metrics(&text);
    assert!(ok && said.trim().is_empty(), "promtool: {said}\n{text}");

    // A deleted node vanishes from the next scrape.
    let bearer = format!("Bearer {ADMIN}");
    let answer = request(
        "DELETE",
        &format!("{url}/api/v1/nodes/pm-pushed"),
        &[("Authorization", bearer.as_str())],
        &[],
    )
    .unwrap();
    assert_eq!(answer.status, 204, "{}", answer.text());
    let text = node_metrics(&url);
    assert!(!text.contains("node=\"pm-pushed\""), "{text}");
    assert!(
        !text.contains("# TYPE pivitals_fan_speed_rpm"),
        "a family no node fills is left out:\n{text}"
    );
    assert!(text.contains("node=\"pm-b\""), "{text}");
}

/// The PromQL of the Prometheus dashboard.
struct DashboardQueries {
    /// Every panel target's (panel title, `expr`).
    exprs: Vec<(String, String)>,
    /// The series selector and label of every `label_values(selector, label)` variable.
    variables: Vec<(String, String)>,
}

fn dashboard_queries(doc: &Value) -> DashboardQueries {
    let mut exprs = Vec::new();
    for panel in doc["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"]
                .as_str()
                .unwrap_or_else(|| panic!("panel {} has a target without expr", panel["title"]));
            assert_eq!(
                target["datasource"]["uid"], "${datasource}",
                "panel {}: targets use the datasource variable",
                panel["title"]
            );
            exprs.push((panel["title"].as_str().unwrap().to_owned(), expr.to_owned()));
        }
    }
    let mut variables = Vec::new();
    for variable in doc["templating"]["list"].as_array().unwrap() {
        if variable["type"] != "query" {
            continue;
        }
        let query = variable["definition"].as_str().unwrap();
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.strip_suffix(')'))
            .unwrap_or_else(|| panic!("variable query is not label_values(): {query}"));
        let (selector, label) = inner.rsplit_once(',').unwrap();
        variables.push((selector.trim().to_owned(), label.trim().to_owned()));
    }
    DashboardQueries { exprs, variables }
}

/// `expr` with Grafana's variables replaced as Grafana would for the test's selection: two
/// nodes picked in the multi-value `node` variable, stack 7, and a one-minute rate interval.
fn substitute(expr: &str, nodes: &str) -> String {
    let text = expr
        .replace("${node}", nodes)
        .replace("$node", nodes)
        .replace("${stack}", "7")
        .replace("$stack", "7")
        .replace("$__rate_interval", "1m")
        .replace("$__interval", "1m")
        .replace("$__range", "5m");
    assert!(!text.contains('$'), "a variable left in {text}");
    text
}

fn dashboard_path() -> PathBuf {
    repo_root().join("influx/grafana/dashboards-prometheus/pivitals-prometheus.json")
}

#[test]
fn the_prometheus_dashboard_and_its_provisioning_fit_together() {
    let doc = read_json(&dashboard_path());
    let DashboardQueries { exprs, variables } = dashboard_queries(&doc);
    assert!(exprs.len() >= 10, "{exprs:?}");
    assert!(
        variables.iter().any(|(_, label)| label == "node")
            && variables.iter().any(|(_, label)| label == "stack"),
        "{variables:?}"
    );
    let provisioning = repo_root().join("influx/grafana/provisioning-prometheus");
    let documents = yaml_documents(&[
        provisioning.join("datasources/prometheus.yaml"),
        provisioning.join("dashboards/pivitals-prometheus.yaml"),
    ]);
    let source = &documents[0][0]["datasources"][0];
    let default_source = doc["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["type"] == "datasource")
        .expect("a datasource variable");
    assert_eq!(default_source["query"], "prometheus");
    assert_eq!(source["type"], "prometheus", "{source}");
    assert_eq!(
        source["uid"], default_source["current"]["value"],
        "the dashboard's default data source is the provisioned one"
    );
    let provider = &documents[1][0]["providers"][0];
    assert_eq!(
        provider["options"]["path"],
        "/var/lib/grafana/dashboards/pivitals-prometheus"
    );
    // The example scrape configuration is one Prometheus accepts.
    let output = run(Command::new("promtool")
        .args(["check", "config"])
        .arg(provisioning.join("prometheus.yml")));
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn a_real_prometheus_sees_liveness_vitals_and_the_dashboard_queries() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(dir.path(), port);
    let prometheus = Prometheus::start(&[ScrapeTarget {
        job: "pivitals-nodes".into(),
        address: format!("127.0.0.1:{port}"),
        path: "/metrics/nodes".into(),
    }])
    .unwrap_or_else(|e| panic!("{e}"));
    let mut agents = start_agents(dir.path(), &url, "pe");

    // pivitals_node_up per node, as Prometheus answers it.
    let up = |prometheus: &Prometheus| -> Vec<(String, String)> {
        let mut series: Vec<(String, String)> = prometheus
            .query("pivitals_node_up")
            .unwrap_or_default()
            .iter()
            .map(|s| {
                (
                    s["metric"]["node"].as_str().unwrap_or("").to_owned(),
                    s["value"][1].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        series.sort();
        series
    };
    let all_up: Vec<(String, String)> = ["pe-a", "pe-b", "pe-pi"]
        .iter()
        .map(|n| (n.to_string(), "1".to_owned()))
        .collect();
    eventually(
        "Prometheus sees every agent up",
        Duration::from_secs(60),
        || (up(&prometheus) == all_up).then_some(()),
    );

    agents[1].stop_cleanly(Duration::from_secs(15));
    let expected: Vec<(String, String)> = [("pe-a", "1"), ("pe-b", "0"), ("pe-pi", "1")]
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    eventually(
        "Prometheus sees pe-b stopped and the others up",
        Duration::from_secs(30),
        || (up(&prometheus) == expected).then_some(()),
    );
    let stopped = prometheus
        .query("pivitals_node_state{node=\"pe-b\",state=\"stopped\"}")
        .unwrap();
    assert_eq!(stopped.len(), 1, "{stopped:?}");
    assert_eq!(stopped[0]["value"][1], "1");
    // One vital per node, the stopped node's last one included, with the node's labels.
    let memory = prometheus.query("pivitals_memory_used_bytes").unwrap();
    let mut nodes: Vec<&str> = memory
        .iter()
        .map(|s| s["metric"]["node"].as_str().unwrap())
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["pe-a", "pe-b", "pe-pi"], "{memory:?}");
    for series in &memory {
        assert_eq!(series["metric"]["stack"], "7", "{series}");
        let bytes: f64 = series["value"][1].as_str().unwrap().parse().unwrap();
        assert!(bytes > 0.0, "{series}");
    }

    // Every PromQL expression of the dashboard returns series, with two nodes picked (the
    // plain agent and the one with a thermal zone) in stack 7.
    let doc = read_json(&dashboard_path());
    let DashboardQueries { exprs, variables } = dashboard_queries(&doc);
    let picked = "(pe-a|pe-pi)";
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut empty: Vec<String> = Vec::new();
        for (title, expr) in &exprs {
            let query = substitute(expr, picked);
            let result = prometheus
                .query(&query)
                .unwrap_or_else(|e| panic!("{title}: Prometheus refused {query}: {e}"));
            if result.is_empty() {
                empty.push(format!("{title}: {query}"));
            }
        }
        for (selector, label) in &variables {
            let query = substitute(selector, picked);
            let result = prometheus.query(&query).unwrap();
            if !result
                .iter()
                .any(|s| s["metric"][label.as_str()].is_string())
            {
                empty.push(format!("variable {label}: {query}"));
            }
        }
        if empty.is_empty() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "dashboard queries without series:\n{}",
            empty.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let targets = prometheus.targets().unwrap();
    assert!(
        targets.iter().all(|t| t["health"] == "up"),
        "{targets:?}\n{}",
        prometheus.log_tail()
    );
}
