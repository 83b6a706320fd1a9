//! `pivitals-simulate` against the real primary binary writing to a real InfluxDB 1.x:
//! five synthetic nodes push every second for three seconds; the summary line counts every
//! push, the primary lists the five nodes, and every push lands in InfluxDB. Then many small
//! batches written four at a time: every point lands and the spool ends empty. Binaries start
//! through testkit's harness.

use std::time::Duration;

use pivitals_testkit::harness::{
    self, ENROLL, eventually, get_json, start_primary_on_influx_v1, workspace_binary,
};
use pivitals_testkit::{InfluxV1, free_port};

const DB: &str = "pivitals";

/// The value of `key=` in the summary line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key}= in {line:?}"))
}

/// Runs `pivitals-simulate` with `args` against `url`; its summary line.
fn simulate(url: &str, args: &[&str]) -> String {
    let output = harness::command(&workspace_binary("pivitals-simulate"))
        .args(args)
        .args(["--primary-url", url, "--enroll-token", ENROLL])
        .env("PIVITALS_LOG", "warn")
        .output()
        .expect("run pivitals-simulate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one summary line: {stdout}\n{stderr}");
    assert!(lines[0].starts_with("simulate: "), "{}", lines[0]);
    lines[0].to_owned()
}

/// The value of an unlabelled metric of the primary.
fn metric(url: &str, name: &str) -> u64 {
    let response = pivitals_testkit::http::get(&format!("{url}/metrics")).expect("GET /metrics");
    harness::metric(&response.text(), name)
}

#[test]
fn small_batches_written_four_at_a_time_all_land_and_leave_the_spool_empty() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let settings = [
        ("PIVITALS_BATCH__MAX_POINTS", "25".to_owned()),
        ("PIVITALS_BATCH__WRITES_IN_FLIGHT", "4".to_owned()),
        ("PIVITALS_BATCH__FLUSH_INTERVAL", "200ms".to_owned()),
        ("PIVITALS_LIMITS__PUSH_BURST", "1000".to_owned()),
        ("PIVITALS_LIMITS__PUSH_REFILL", "1ms".to_owned()),
    ];
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &settings);

    let line = simulate(
        &url,
        &["--nodes", "20", "--interval", "100ms", "--duration", "3s"],
    );
    assert_eq!(field(&line, "failed"), "0", "{line}");
    let accepted: u64 = field(&line, "accepted").parse().unwrap();
    assert!(accepted >= 400, "{line}");

    let query = "SELECT count(usage_percent) FROM cpu WHERE node =~ /^sim-/";
    eventually(
        "every push's cpu point in InfluxDB",
        Duration::from_secs(30),
        || (influx.count(DB, query).ok()? == accepted).then_some(()),
    );
    eventually("an empty spool", Duration::from_secs(10), || {
        (metric(&url, "pivitals_spool_points") == 0 && metric(&url, "pivitals_spool_records") == 0)
            .then_some(())
    });
    let received = metric(&url, "pivitals_points_received_total");
    assert_eq!(metric(&url, "pivitals_points_written_total"), received);
    let batches = metric(&url, "pivitals_batches_written_total");
    assert!(
        batches >= received / 25,
        "{batches} batches for {received} points"
    );
    primary.stop_cleanly(Duration::from_secs(20));
}

#[test]
fn five_simulated_nodes_push_every_second_and_every_push_lands() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);

    let line = simulate(
        &url,
        &["--nodes", "5", "--interval", "1s", "--duration", "3s"],
    );
    let line = line.as_str();
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
