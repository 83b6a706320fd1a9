//! The real binaries end to end: a primary and agents at `PIVITALS_INTERVAL=1s`, writing to a
//! real InfluxDB 1.x (v1 API) and to a real VictoriaMetrics (InfluxDB v2 write API). The
//! points are read back from the servers, not from the primary. Binaries start through
//! testkit's harness.

use std::time::Duration;

use pivitals_testkit::harness::{
    ENROLL, eventually, get_json, node_status, rows, start_agent, start_primary,
    start_primary_on_influx_v1,
};
use pivitals_testkit::{InfluxV1, VictoriaMetrics, free_port};
use serde_json::Value;

const DB: &str = "pivitals";

fn influx() -> InfluxV1 {
    InfluxV1::start().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn three_agents_at_one_second_land_in_influxdb_1x_tagged_by_node() {
    let influx = influx();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);
    let names = ["e2e-a", "e2e-b", "e2e-c"];
    let mut agents: Vec<_> = names
        .iter()
        .map(|name| start_agent(dir.path(), name, &url, "1s"))
        .collect();

    // Every node lands at least 5 one-second samples in InfluxDB.
    for name in names {
        let query = format!("SELECT count(usage_percent) FROM cpu WHERE node = '{name}'");
        eventually(
            &format!("5 cpu points of {name}"),
            Duration::from_secs(40),
            || (influx.count(DB, &query).ok()? >= 5).then_some(()),
        );
    }
    for name in names {
        for (measurement, field) in [
            ("mem", "used_bytes"),
            ("system", "uptime_seconds"),
            ("disk", "used_bytes"),
            ("net", "rx_bytes"),
        ] {
            let query = format!("SELECT count({field}) FROM {measurement} WHERE node = '{name}'");
            let count = influx.count(DB, &query).unwrap();
            assert!(count >= 1, "{name}: no {measurement}.{field} in InfluxDB");
        }
    }
    // One point per sample at 1 s: no two closer than half the interval. (Counting points per
    // calendar second is not it: a sample a few ms late next to one on time shares a second.)
    let times = influx
        .timestamps_ms(DB, "SELECT usage_percent FROM cpu WHERE node = 'e2e-a'")
        .unwrap();
    assert!(
        times.windows(2).all(|pair| pair[1] - pair[0] >= 500),
        "cpu points of e2e-a closer than 500 ms: {times:?}"
    );
    // Labels are tags.
    let stacks = influx
        .query(DB, "SHOW TAG VALUES FROM cpu WITH KEY = \"stack\"")
        .unwrap();
    assert_eq!(
        rows(&stacks),
        vec![vec![Value::from("stack"), Value::from("7")]]
    );

    // The 365-day retention policy, created by the primary as the default.
    let policies = influx
        .query(DB, "SHOW RETENTION POLICIES ON \"pivitals\"")
        .unwrap();
    let rp = rows(&policies)
        .into_iter()
        .find(|r| r.first() == Some(&Value::from("pivitals_365d")))
        .unwrap_or_else(|| panic!("no pivitals_365d in {policies}"));
    assert_eq!(rp.get(1), Some(&Value::from("8760h0m0s")), "{policies}");
    assert_eq!(
        rp.last(),
        Some(&Value::from(true)),
        "not the default: {policies}"
    );

    // The API sees the three nodes up with their labels and latest sample.
    let nodes = get_json(&format!("{url}/api/v1/nodes"));
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for node in nodes {
        assert_eq!(node["status"], "up", "{node}");
        assert_eq!(node["labels"]["stack"], "7");
        assert!(node["latest"]["cpu"]["usage_percent"].is_number(), "{node}");
        assert!(node["info"]["cpu_cores"].as_u64().unwrap() >= 1, "{node}");
    }

    // SIGTERM: a last push and a goodbye, so the node is `stopped`, not `down`.
    agents[0].stop_cleanly(Duration::from_secs(15));
    assert_eq!(node_status(&url, "e2e-a"), "stopped");
    // SIGKILL: no goodbye; the node goes late after one missed push, down after three.
    agents[1].kill_hard();
    eventually("e2e-b late", Duration::from_secs(10), || {
        (node_status(&url, "e2e-b") == "late").then_some(())
    });
    eventually("e2e-b down", Duration::from_secs(10), || {
        (node_status(&url, "e2e-b") == "down").then_some(())
    });
    assert_eq!(node_status(&url, "e2e-c"), "up");

    primary.stop_cleanly(Duration::from_secs(30));
    let log = primary.log();
    assert!(!log.contains(ENROLL), "the enrollment token was logged");
}

#[test]
fn agents_land_in_victoria_metrics_through_the_v2_write_api() {
    let vm = VictoriaMetrics::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_INFLUX__API", "v2".into()),
            ("PIVITALS_INFLUX__URL", vm.url()),
            ("PIVITALS_INFLUX__ORG", "homelab".into()),
            ("PIVITALS_INFLUX__BUCKET", "node_vitals".into()),
            ("PIVITALS_INFLUX__TOKEN", "vm-ignores-this-token".into()),
            ("PIVITALS_SELF_MONITOR", "true".into()),
            ("PIVITALS_SELF_INTERVAL", "1s".into()),
        ],
    );
    let _agents: Vec<_> = ["vm-a", "vm-b"]
        .iter()
        .map(|name| start_agent(dir.path(), name, &url, "1s"))
        .collect();
    for name in ["vm-a", "vm-b"] {
        let selector = format!("{{__name__=\"cpu_usage_percent\",node=\"{name}\"}}");
        let series = eventually(
            &format!("{name} in VictoriaMetrics"),
            Duration::from_secs(40),
            || {
                let _ = vm.force_flush();
                let series = vm.export(&selector).ok()?;
                let points = series.first()?["values"].as_array()?.len();
                (points >= 3).then_some(series)
            },
        );
        assert_eq!(series[0]["metric"]["stack"], "7", "{series:?}");
        assert_eq!(series[0]["metric"]["role"], "worker", "{series:?}");
    }
    // The primary's own host is a node too.
    let nodes = get_json(&format!("{url}/api/v1/nodes"));
    assert_eq!(nodes.as_array().unwrap().len(), 3, "{nodes}");
    primary.stop_cleanly(Duration::from_secs(30));
    // The bucket API is missing on VictoriaMetrics: one warning naming the unverified retention.
    let log = primary.log();
    assert!(log.contains("365"), "no retention warning:\n{log}");
}
