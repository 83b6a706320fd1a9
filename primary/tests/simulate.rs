//! `pivitals-agent simulate` against the real primary binary writing to a real InfluxDB 1.x:
//! five synthetic nodes push every second for three seconds; the summary line counts every
//! push, the primary lists the five nodes, and every push lands in InfluxDB.

mod support;

use std::process::Command;
use std::time::Duration;

use pivitals_testkit::{InfluxV1, free_port};
use support::{ENROLL, eventually, get_json, start_primary_on_influx_v1, workspace_binary};

const DB: &str = "pivitals";

/// The value of `key=` in the summary line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

#[test]
fn five_simulated_nodes_push_every_second_and_every_push_lands() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);

    let output = Command::new(workspace_binary("pivitals-agent"))
        .args([
            "simulate",
            "--nodes",
            "5",
            "--interval",
            "1s",
            "--duration",
            "3s",
        ])
        .args(["--primary-url", &url, "--enroll-token", ENROLL])
        .env("PIVITALS_LOG", "warn")
        .output()
        .expect("run pivitals-agent simulate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line: {stdout}\n{stderr}");
    let line = lines[0];
    assert!(line.starts_with("simulate: "), "{line}");
    assert_eq!(field(line, "nodes"), "5", "{line}");
    assert_eq!(field(line, "registered"), "5", "{line}");
    assert_eq!(field(line, "sent"), "15", "{line}");
    assert_eq!(field(line, "accepted"), "15", "{line}");
    assert_eq!(field(line, "failed"), "0", "{line}");
    let rate: f64 = field(line, "pushes/s").parse().unwrap();
    assert!((4.0..=5.5).contains(&rate), "{line}");
    for key in ["p50", "p99", "max"] {
        let ms: f64 = field(line, key).trim_end_matches("ms").parse().unwrap();
        assert!(ms > 0.0 && ms < 10_000.0, "{key} in {line}");
    }

    let nodes = get_json(&format!("{url}/api/v1/nodes"));
    let mut names: Vec<&str> = nodes
        .as_array()
        .expect("a node list")
        .iter()
        .filter_map(|node| node["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "sim-00000",
            "sim-00001",
            "sim-00002",
            "sim-00003",
            "sim-00004"
        ]
    );
    let node = get_json(&format!("{url}/api/v1/nodes/sim-00003"));
    assert_eq!(node["labels"]["role"], "sim", "{node}");
    assert!(
        node["latest"]["memory"]["total_bytes"].as_u64() > Some(0),
        "{node}"
    );

    // Each push is one sample, so one cpu point per accepted push.
    let query = "SELECT count(usage_percent) FROM cpu WHERE node =~ /^sim-/";
    eventually("15 cpu points in InfluxDB", Duration::from_secs(20), || {
        (influx.count(DB, query).ok()? == 15).then_some(())
    });
    let per_node = "SELECT count(usage_percent) FROM cpu WHERE node = 'sim-00004'";
    assert_eq!(influx.count(DB, per_node).unwrap(), 3);
    primary.terminate(Duration::from_secs(20));
}
