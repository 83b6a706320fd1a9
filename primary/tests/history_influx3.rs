//! The ranged history (`GET /api/v1/nodes/{name}/history?range=…`) on InfluxDB 3
//! (`PIVITALS_INFLUX__API=v3`), read through InfluxDB 3's v1-compatible `/query` with
//! `Authorization: Bearer`. No InfluxDB 3 server can run on these machines: the primary talks
//! to [`Influx3Receiver`], a local receiver that is NOT a real InfluxDB 3. It checks each
//! request as the InfluxDB 3 HTTP API reference documents `GET /query` and answers each
//! statement with the series this test gives it, in the documented InfluxDB 1.x JSON shape;
//! it computes no aggregates, so the test asserts the exact statements the primary sent.

use std::time::Duration;

use pivitals_testkit::actions::register;
use pivitals_testkit::free_port;
use pivitals_testkit::harness::{Proc, start_primary};
use pivitals_testkit::history::{HISTORY_SERIES, ranged_history};
use pivitals_testkit::influx3_receiver::{Influx3Receiver, QueryAnswer, QuerySeen};
use pivitals_testkit::samples::{now_ms, register_request};
use serde_json::{Value, json};

const DB: &str = "pivitals";
const TOKEN: &str = "apiv3_history-receiver-token";
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// One statement: measurement, field, peak fields (min, max), the tag combined over.
type Statement = (
    &'static str,
    &'static str,
    Option<(&'static str, &'static str)>,
    Option<&'static str>,
);

/// The statements the history sends, in order (as README's history section and the query
/// code describe them).
const STATEMENTS: [Statement; 9] = [
    (
        "cpu",
        "usage_percent",
        Some(("usage_percent_min", "usage_percent_max")),
        None,
    ),
    (
        "mem",
        "used_percent",
        Some(("used_percent_min", "used_percent_max")),
        None,
    ),
    (
        "temperature",
        "celsius",
        Some(("celsius_min", "celsius_max")),
        Some("sensor"),
    ),
    ("disk", "used_percent", None, Some("mount")),
    ("system", "load1", Some(("load1_min", "load1_max")), None),
    ("net", "rx_bytes_per_second", None, Some("interface")),
    ("net", "tx_bytes_per_second", None, Some("interface")),
    ("diskio", "read_bytes_per_second", None, Some("device")),
    ("diskio", "write_bytes_per_second", None, Some("device")),
];

/// The exact InfluxQL statement of series `i` for node `node` over `from..=to` in `step`.
fn expected_statement(i: usize, node: &str, from: i64, to: i64, step_seconds: i64) -> String {
    let (measurement, field, peaks, tag) = STATEMENTS[i];
    let mut select = format!(
        "mean(\"{field}\") AS \"mean\", min(\"{field}\") AS \"min_mean\", max(\"{field}\") AS \"max_mean\""
    );
    if let Some((min, max)) = peaks {
        select.push_str(&format!(
            ", min(\"{min}\") AS \"min_peak\", max(\"{max}\") AS \"max_peak\""
        ));
    }
    let group = match tag {
        Some(tag) => format!("time({step_seconds}s), \"{tag}\""),
        None => format!("time({step_seconds}s)"),
    };
    format!(
        "SELECT {select} FROM \"{measurement}\" WHERE \"node\" = '{node}' AND time >= {from}ms \
         AND time <= {to}ms GROUP BY {group} fill(none)"
    )
}

/// The primary binary reading and writing InfluxDB 3 at `url`.
fn start_primary_on_v3(dir: &std::path::Path, port: u16, url: &str) -> Proc {
    start_primary(
        dir,
        port,
        &[
            ("PIVITALS_INFLUX__API", "v3".to_owned()),
            ("PIVITALS_INFLUX__URL", url.to_owned()),
            ("PIVITALS_INFLUX__TOKEN", TOKEN.to_owned()),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ],
    )
}

/// One series object as InfluxDB answers a `GROUP BY time(…)[, tag]` statement: the columns
/// the history asks for, `rows` as (time ms, mean, min_mean, max_mean, min_peak, max_peak).
fn series(name: &str, tag: Option<(&str, &str)>, rows: &[(i64, f64, f64, f64, f64, f64)]) -> Value {
    let mut one = json!({
        "name": name,
        "columns": ["time", "mean", "min_mean", "max_mean", "min_peak", "max_peak"],
        "values": rows
            .iter()
            .map(|(t, mean, lo, hi, min_peak, max_peak)| json!([t, mean, lo, hi, min_peak, max_peak]))
            .collect::<Vec<_>>(),
    });
    if let Some((key, value)) = tag {
        one["tags"] = json!({ key: value });
    }
    one
}

/// Series without peak fields: only the mean and the means' extremes.
fn plain(name: &str, tag: (&str, &str), rows: &[(i64, f64)]) -> Value {
    json!({
        "name": name,
        "tags": { tag.0: tag.1 },
        "columns": ["time", "mean", "min_mean", "max_mean"],
        "values": rows.iter().map(|(t, v)| json!([t, v, v, v])).collect::<Vec<_>>(),
    })
}

fn points<'a>(answer: &'a Value, name: &str) -> &'a [Value] {
    answer["series"][name]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no series {name}: {answer}"))
}

fn point(answer: &Value, name: &str, ts: i64) -> (f64, f64, f64) {
    let p = points(answer, name)
        .iter()
        .find(|p| p[0].as_i64() == Some(ts))
        .unwrap_or_else(|| panic!("no {name} point at {ts}: {answer}"));
    let num = |v: &Value| v.as_f64().unwrap_or_else(|| panic!("{v} in {p}"));
    (num(&p[1]), num(&p[2]), num(&p[3]))
}

/// Checks the nine `/query` requests of one ranged answer: documented parameters, the Bearer
/// token, and the exact statements for `node` over the answer's window.
fn check_requests(seen: &[QuerySeen], answer: &Value, node: &str) {
    let from = answer["from_ms"].as_i64().unwrap();
    let to = answer["to_ms"].as_i64().unwrap();
    let step = answer["step_seconds"].as_i64().unwrap();
    assert_eq!(seen.len(), 9, "one request per statement: {seen:#?}");
    for (i, q) in seen.iter().enumerate() {
        assert_eq!(q.method, "GET");
        assert_eq!(q.status, 200, "{q:?}");
        assert_eq!(q.db, DB);
        assert_eq!(q.epoch.as_deref(), Some("ms"));
        assert_eq!(
            q.authorization.as_deref(),
            Some(format!("Bearer {TOKEN}").as_str())
        );
        assert_eq!(
            q.q,
            expected_statement(i, node, from, to, step),
            "statement {i}"
        );
        // What the receiver understood of it, independently of the expected text.
        assert_eq!(q.measurement, STATEMENTS[i].0);
        assert_eq!(q.node.as_deref(), Some(node));
        assert_eq!((q.from_ms, q.to_ms), (Some(from), Some(to)));
        assert_eq!(q.step_seconds, Some(step));
        assert_eq!(q.tag.as_deref(), STATEMENTS[i].3);
    }
}

#[test]
fn v3_history_follows_the_documented_api_v1_compatible_query() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    receiver.add_database(DB, Some(Duration::from_secs(365 * 86_400)));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary_on_v3(dir.path(), port, &receiver.url());
    register(&url, &register_request("pi-4"));

    // Steps of both ranges (288 s for 24 h, 2,016 s = 7 × 288 s for 7 d): one three hours
    // ago, in both windows; one five days ago, in the week only.
    let now = now_ms();
    let recent = (now - 3 * HOUR).div_euclid(2_016_000) * 2_016_000;
    let old = (now - 5 * DAY).div_euclid(2_016_000) * 2_016_000;
    receiver.answer_queries(
        "cpu",
        vec![series(
            "cpu",
            None,
            &[
                (old, 10.0, 9.0, 11.0, 8.0, 97.5),
                (recent, 12.5, 11.0, 14.0, 10.5, 99.5),
            ],
        )],
    );
    receiver.answer_queries(
        "temperature",
        vec![
            series(
                "temperature",
                Some(("sensor", "cpu-thermal")),
                &[(recent, 48.0, 47.0, 49.0, 46.5, 51.0)],
            ),
            series(
                "temperature",
                Some(("sensor", "rp1_adc")),
                &[(recent, 38.0, 37.0, 39.0, 36.0, 40.0)],
            ),
        ],
    );
    receiver.answer_queries(
        "disk",
        vec![
            plain("disk", ("mount", "/"), &[(recent, 40.0)]),
            plain("disk", ("mount", "/boot/firmware"), &[(recent, 70.0)]),
        ],
    );
    receiver.answer_queries(
        "net",
        vec![
            plain("net", ("interface", "eth0"), &[(recent, 100.0)]),
            plain("net", ("interface", "wlan0"), &[(recent, 50.0)]),
        ],
    );

    // 24 h: 200 from InfluxDB with the values the receiver answered.
    let (status, day) = ranged_history(&url, "pi-4", "24h");
    assert_eq!(status, 200, "{day}");
    assert_eq!(day["source"], "influxdb", "{day}");
    assert_eq!(day["range"], "24h");
    assert_eq!(day["step_seconds"], 288);
    assert_eq!(points(&day, "cpu_percent").len(), 1, "{day}");
    assert_eq!(point(&day, "cpu_percent", recent), (12.5, 10.5, 99.5));
    assert_eq!(
        point(&day, "temp_celsius", recent),
        (48.0, 46.5, 51.0),
        "the hottest sensor"
    );
    assert_eq!(
        point(&day, "disk_percent", recent).0,
        70.0,
        "the fullest disk"
    );
    assert_eq!(
        point(&day, "net_rx_bytes_per_second", recent).0,
        150.0,
        "the sum of the interfaces"
    );
    for name in [
        "mem_percent",
        "load1",
        "disk_read_bytes_per_second",
        "disk_write_bytes_per_second",
    ] {
        assert!(points(&day, name).is_empty(), "{name}: {day}");
    }
    assert_eq!(HISTORY_SERIES.len(), STATEMENTS.len());
    let queries = receiver.queries();
    check_requests(&queries, &day, "pi-4");

    // 7 d: 2,016 s steps, the old step too.
    let (status, week) = ranged_history(&url, "pi-4", "7d");
    assert_eq!(status, 200, "{week}");
    assert_eq!(week["source"], "influxdb", "{week}");
    assert_eq!(week["step_seconds"], 2016);
    assert_eq!(point(&week, "cpu_percent", old), (10.0, 8.0, 97.5));
    assert_eq!(point(&week, "cpu_percent", recent), (12.5, 10.5, 99.5));
    let queries = receiver.queries();
    check_requests(&queries[9..], &week, "pi-4");
    assert_eq!(
        receiver.violations(),
        Vec::<String>::new(),
        "not as documented"
    );
}

#[test]
fn v3_history_failures_of_the_documented_api_answer_502_naming_the_store() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    receiver.add_database(DB, Some(Duration::from_secs(365 * 86_400)));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary_on_v3(dir.path(), port, &receiver.url());
    register(&url, &register_request("pi"));

    let store = format!("InfluxDB v3 {} db={DB}", receiver.url());
    let error_of = |answer: &Value| answer["error"].as_str().unwrap_or_default().to_owned();

    // A 500 on the first statement.
    receiver.script_queries([QueryAnswer::Status {
        status: 500,
        body: json!({"error": "query execution failed: out of memory"}).to_string(),
    }]);
    let (status, answer) = ranged_history(&url, "pi", "24h");
    assert_eq!(status, 502, "{answer}");
    let error = error_of(&answer);
    assert!(error.contains(&store), "{error}");
    assert!(error.contains("500"), "{error}");

    // A 200 whose result is an error, on the third statement.
    let ok = |n| {
        (0..n).map(|_| QueryAnswer::Status {
            status: 200,
            body: json!({"results": [{"statement_id": 0}]}).to_string(),
        })
    };
    receiver.script_queries(
        ok(2).chain([QueryAnswer::Status {
            status: 200,
            body:
                json!({"results": [{"statement_id": 0, "error": "error parsing query: found EOF"}]})
                    .to_string(),
        }]),
    );
    let (status, answer) = ranged_history(&url, "pi", "7d");
    assert_eq!(status, 502, "{answer}");
    let error = error_of(&answer);
    assert!(error.contains(&store), "{error}");
    assert!(error.contains("error parsing query: found EOF"), "{error}");

    // A 400 error JSON (a statement InfluxDB 3 refuses).
    receiver.script_queries([QueryAnswer::Status {
        status: 400,
        body: json!({"error": "InfluxQL feature not supported"}).to_string(),
    }]);
    let (status, answer) = ranged_history(&url, "pi", "24h");
    assert_eq!(status, 502, "{answer}");
    let error = error_of(&answer);
    assert!(error.contains(&store), "{error}");
    assert!(error.contains("InfluxQL feature not supported"), "{error}");

    assert_eq!(receiver.query_script_left(), 0);
    let tokens: Vec<Option<String>> = receiver
        .queries()
        .iter()
        .map(|q| q.authorization.clone())
        .collect();
    assert!(
        tokens
            .iter()
            .all(|t| t.as_deref() == Some(format!("Bearer {TOKEN}").as_str())),
        "{tokens:?}"
    );
    assert_eq!(
        receiver.violations(),
        Vec::<String>::new(),
        "not as documented"
    );
}
