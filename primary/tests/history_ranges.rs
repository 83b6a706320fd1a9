//! The ranged history (`GET /api/v1/nodes/{name}/history?range=…`) end to end: the real
//! primary and agent binaries on the embedded default (rollups, also across a restart), on a
//! real InfluxDB 1.x, and its errors; Flux for InfluxDB 2.x against a local receiver of the
//! documented API (no InfluxDB 2 runs here).

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pivitals_common::{NetRates, NetVitals, VitalsPayload};
use pivitals_testkit::actions::{json_request, register};
use pivitals_testkit::harness::{
    ADMIN, Proc, eventually, get_json, start_agent_with, start_primary, start_primary_on_influx_v1,
};
use pivitals_testkit::history::{HISTORY_SERIES, push_samples, ranged_history};
use pivitals_testkit::samples::{now_ms, pi_sample, register_request};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::Value;

const MINUTE: i64 = 60_000;
const DAY: i64 = 24 * 60 * MINUTE;

/// A Pi sample at `ts` with CPU `cpu` (its 1-second peak `peak`), sensors at 50 and 40 °C,
/// disks 40 % and 70 % full, and two interfaces receiving 100 and 50 bytes a second.
fn sample(ts: i64, cpu: f64, peak: f64) -> VitalsPayload {
    let mut s = pi_sample(ts, cpu, 50.0);
    if let Some(c) = s.cpu.as_mut() {
        c.usage_percent_max = Some(peak);
    }
    s.networks = [("eth0", 100.0), ("wlan0", 50.0)]
        .into_iter()
        .map(|(name, rx)| NetVitals {
            interface: name.into(),
            rates: Some(NetRates {
                rx_bytes_per_second: rx,
                ..Default::default()
            }),
            ..Default::default()
        })
        .collect();
    s
}

/// One sample every ten minutes over the last `days` days up to an hour ago, CPU 10 %, with
/// one 97.5 % peak five days ago; returns the peak's time.
fn old_samples(days: i64) -> (Vec<VitalsPayload>, i64) {
    let now = now_ms();
    let peak_at = now - 5 * DAY;
    let mut samples: Vec<VitalsPayload> = (0..days * DAY / (10 * MINUTE))
        .map(|i| now - days * DAY + i * 10 * MINUTE)
        .filter(|ts| *ts < now - 60 * MINUTE && (ts - peak_at).abs() >= 10 * MINUTE)
        .map(|ts| sample(ts, 10.0, 10.0))
        .collect();
    samples.push(sample(peak_at, 10.0, 97.5));
    (samples, peak_at)
}

/// Registers node `old` and pushes it [`old_samples`] over `days` days, then `recent`; the
/// peak's time and how many samples were pushed.
fn feed_old(url: &str, days: i64, recent: Vec<VitalsPayload>) -> (i64, u64) {
    let token = register(url, &register_request("old"));
    let (mut samples, peak_at) = old_samples(days);
    samples.extend(recent);
    push_samples(url, &token, &samples);
    (peak_at, samples.len() as u64)
}

/// The agent binary as node `live`, pushing every second from the start.
fn live_agent(dir: &Path, url: &str) -> Proc {
    start_agent_with(
        dir,
        "live",
        url,
        "1s",
        &[("PIVITALS_START_JITTER", "false".to_owned())],
    )
}

fn points<'a>(answer: &'a Value, series: &str) -> &'a [Value] {
    answer["series"][series]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_else(|| panic!("no series {series}: {answer}"))
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is no number"))
}

/// Checks the contract's shape: every series present, ascending, at most 300 points, inside
/// the window, and the step.
fn check_shape(answer: &Value, range: &str, step_seconds: i64, source: &str) {
    assert_eq!(answer["range"], range, "{answer}");
    assert_eq!(answer["source"], source, "{answer}");
    assert_eq!(answer["step_seconds"], step_seconds, "{answer}");
    let (from, to) = (
        answer["from_ms"].as_i64().unwrap(),
        answer["to_ms"].as_i64().unwrap(),
    );
    assert_eq!(from % (step_seconds * 1000), 0);
    for name in HISTORY_SERIES {
        let series = points(answer, name);
        assert!(series.len() <= 300, "{name}: {}", series.len());
        let stamps: Vec<i64> = series.iter().map(|p| p[0].as_i64().unwrap()).collect();
        assert!(stamps.windows(2).all(|w| w[0] < w[1]), "{name} ascending");
        assert!(
            stamps.iter().all(|t| *t >= from && *t <= to),
            "{name} in window"
        );
        assert!(
            series
                .iter()
                .all(|p| p.as_array().is_some_and(|a| a.len() == 4))
        );
    }
}

/// The point of `series` whose step holds `ts`.
fn point_at<'a>(answer: &'a Value, series: &str, ts: i64) -> &'a Value {
    let step = answer["step_seconds"].as_i64().unwrap() * 1000;
    points(answer, series)
        .iter()
        .find(|p| p[0].as_i64().unwrap() == ts.div_euclid(step) * step)
        .unwrap_or_else(|| panic!("no {series} point at {ts}: {answer}"))
}

fn max_of(answer: &Value, series: &str) -> f64 {
    points(answer, series)
        .iter()
        .filter_map(|p| p[3].as_f64())
        .fold(f64::MIN, f64::max)
}

#[test]
fn the_embedded_default_answers_ranges_from_rollups_that_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary(dir.path(), port, &[]);
    let _agent = live_agent(dir.path(), &url);

    // Days of old samples for a registered node, and samples of this minute.
    let now = now_ms();
    let recent: Vec<VitalsPayload> = (0..5)
        .map(|i| sample(now - 5000 + i * 1000, 20.0 + i as f64, 60.0))
        .collect();
    let (peak_at, _) = feed_old(&url, 40, recent);

    // The live agent's samples show within seconds, with the sample's values.
    let live = eventually(
        "the agent's points in range=1h",
        Duration::from_secs(30),
        || {
            let (status, answer) = ranged_history(&url, "live", "1h");
            assert_eq!(status, 200, "{answer}");
            (!points(&answer, "cpu_percent").is_empty()
                && !points(&answer, "mem_percent").is_empty())
            .then_some(answer)
        },
    );
    check_shape(&live, "1h", 60, "rollups");
    // The newest sample the primary holds lies inside its minute's band.
    let node = get_json(&format!("{url}/api/v1/nodes/live"));
    let latest = &node["latest"];
    let ts = latest["timestamp_ms"].as_i64().unwrap();
    let mem = num(&latest["memory"]["used_bytes"]) * 100.0 / num(&latest["memory"]["total_bytes"]);
    let (_, live_now) = ranged_history(&url, "live", "1h");
    let band = point_at(&live_now, "mem_percent", ts);
    assert!(
        num(&band[2]) - 0.01 <= mem && mem <= num(&band[3]) + 0.01,
        "{mem} outside {band}"
    );
    for p in points(&live, "mem_percent") {
        let (mean, min, max) = (num(&p[1]), num(&p[2]), num(&p[3]));
        assert!(
            min <= mean && mean <= max && mean > 0.0 && max <= 100.0,
            "{p}"
        );
    }

    // This minute of the pushed node: the mean of 20..=24, the peak 60.
    let (_, hour) = ranged_history(&url, "old", "1h");
    check_shape(&hour, "1h", 60, "rollups");
    let newest = points(&hour, "cpu_percent").last().unwrap().clone();
    assert_eq!(newest[0].as_i64().unwrap() / 1000 % 60, 0);
    assert!(num(&newest[3]) >= 60.0, "{newest}");
    let temp = points(&hour, "temp_celsius").last().unwrap();
    assert_eq!(
        num(&temp[1]),
        50.0,
        "the hottest sensor, not the mean of both"
    );
    let disk = points(&hour, "disk_percent").last().unwrap();
    assert_eq!(num(&disk[1]), 70.0, "the fullest disk");
    let rx = points(&hour, "net_rx_bytes_per_second").last().unwrap();
    assert_eq!(num(&rx[1]), 150.0, "the sum of the interfaces");
    assert!(points(&hour, "disk_write_bytes_per_second").is_empty());

    // A week and a month: ten-minute buckets, at most 300 steps, the peak as a max.
    let (status, week) = ranged_history(&url, "old", "7d");
    assert_eq!(status, 200, "{week}");
    check_shape(&week, "7d", 2400, "rollups");
    let cpu = points(&week, "cpu_percent").len();
    assert!((240..=253).contains(&cpu), "{cpu} points in 7 d");
    assert_eq!(num(&point_at(&week, "cpu_percent", peak_at)[3]), 97.5);
    assert_eq!(num(&point_at(&week, "cpu_percent", peak_at)[1]), 10.0);
    assert_eq!(max_of(&week, "cpu_percent"), 97.5);
    let (_, month) = ranged_history(&url, "old", "30d");
    check_shape(&month, "30d", 9000, "rollups");
    let cpu = points(&month, "cpu_percent").len();
    assert!((280..=289).contains(&cpu), "{cpu} points in 30 d");
    assert_eq!(num(&point_at(&month, "cpu_percent", peak_at)[3]), 97.5);
    let (_, day) = ranged_history(&url, "old", "24h");
    check_shape(&day, "24h", 300, "rollups");

    // SIGTERM, start again on the same data dir: the same points are there.
    primary.stop_cleanly(Duration::from_secs(20));
    let before = history_points(&month);
    let before_hour_old = history_points(&hour);
    let before_live: Vec<Value> = points(&live, "cpu_percent")
        .iter()
        .filter(|p| p[0].as_i64().unwrap() + MINUTE < live["to_ms"].as_i64().unwrap())
        .cloned()
        .collect();
    let _primary = start_primary(dir.path(), port, &[]);
    let (_, month_again) = ranged_history(&url, "old", "30d");
    assert_eq!(history_points(&month_again), before);
    let (_, hour_again) = ranged_history(&url, "old", "1h");
    for p in &before_hour_old {
        assert!(
            history_points(&hour_again).contains(p),
            "{p} lost in the restart"
        );
    }
    let (_, live_again) = ranged_history(&url, "live", "1h");
    for p in &before_live {
        assert!(
            points(&live_again, "cpu_percent").contains(p),
            "{p} lost in the restart: {live_again}"
        );
    }
    let rollups = dir.path().join("primary").join("rollups.redb");
    let size = std::fs::metadata(&rollups).unwrap().len();
    eprintln!("rollups.redb after 40 days of one node: {size} bytes");
}

/// The cpu points of an answer.
fn history_points(answer: &Value) -> Vec<Value> {
    points(answer, "cpu_percent").to_vec()
}

#[test]
fn bad_ranges_unknown_nodes_and_deleted_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(
        dir.path(),
        port,
        &[("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned())],
    );
    let token = register(&url, &register_request("pi"));
    push_samples(&url, &token, &[sample(now_ms() - 1000, 5.0, 5.0)]);

    let (status, answer) = ranged_history(&url, "pi", "2d");
    assert_eq!(status, 400, "{answer}");
    let error = answer["error"].as_str().unwrap();
    assert!(
        error.contains("range") && error.contains("1h, 6h, 24h, 7d, 30d"),
        "{error}"
    );
    let (status, answer) = ranged_history(&url, "nobody", "1h");
    assert_eq!(status, 404, "{answer}");
    // Without a range: the last hour in memory, as before.
    let (status, answer) = json_request(
        "GET",
        &format!("{url}/api/v1/nodes/pi/history"),
        None,
        &Value::Null,
    );
    assert_eq!(status, 200);
    assert_eq!(
        answer["points"].as_array().map(Vec::len),
        Some(1),
        "{answer}"
    );

    // A deleted node's rollups go with it: registered again, it starts empty.
    let (status, answer) = ranged_history(&url, "pi", "1h");
    assert_eq!(status, 200);
    assert_eq!(points(&answer, "cpu_percent").len(), 1);
    let (status, _) = json_request(
        "DELETE",
        &format!("{url}/api/v1/nodes/pi"),
        Some(ADMIN),
        &Value::Null,
    );
    assert_eq!(status, 204);
    let (status, _) = ranged_history(&url, "pi", "1h");
    assert_eq!(status, 404);
    register(&url, &register_request("pi"));
    let (_, answer) = ranged_history(&url, "pi", "1h");
    assert!(points(&answer, "cpu_percent").is_empty(), "{answer}");
}

#[test]
fn influxdb_1_answers_the_ranges_with_the_samples_values() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary_on_influx_v1(dir.path(), port, &influx, "pivitals", &[]);
    let _agent = live_agent(dir.path(), &url);
    let (peak_at, count) = feed_old(&url, 8, Vec::new());
    eventually(
        "the old samples in InfluxDB",
        Duration::from_secs(30),
        || {
            let n = influx
                .count(
                    "pivitals",
                    "SELECT count(usage_percent) FROM cpu WHERE node = 'old'",
                )
                .ok()?;
            (n >= count).then_some(())
        },
    );

    let (status, day) = ranged_history(&url, "old", "24h");
    assert_eq!(status, 200, "{day}");
    check_shape(&day, "24h", 288, "influxdb");
    let cpu = points(&day, "cpu_percent");
    assert!((130..=145).contains(&cpu.len()), "{} points", cpu.len());
    assert!(
        cpu.iter().all(|p| num(&p[1]) == 10.0 && num(&p[3]) == 10.0),
        "{day}"
    );
    let temp = points(&day, "temp_celsius");
    assert!(
        temp.iter().all(|p| num(&p[1]) == 50.0),
        "hottest sensor: {day}"
    );
    assert!(
        points(&day, "disk_percent")
            .iter()
            .all(|p| num(&p[1]) == 70.0)
    );
    assert!(
        points(&day, "net_rx_bytes_per_second")
            .iter()
            .all(|p| num(&p[1]) == 150.0)
    );
    assert!(
        points(&day, "mem_percent")
            .iter()
            .all(|p| num(&p[1]) == 25.0)
    );

    let (status, week) = ranged_history(&url, "old", "7d");
    assert_eq!(status, 200, "{week}");
    check_shape(&week, "7d", 2016, "influxdb");
    assert!(points(&week, "cpu_percent").len() <= 300);
    let peak = point_at(&week, "cpu_percent", peak_at);
    assert_eq!((num(&peak[1]), num(&peak[3])), (10.0, 97.5), "{peak}");
    assert_eq!(max_of(&week, "cpu_percent"), 97.5);

    // The live agent: its points come from InfluxDB too, with values a sample can have.
    let live = eventually("the agent's points", Duration::from_secs(30), || {
        let (_, answer) = ranged_history(&url, "live", "1h");
        (!points(&answer, "cpu_percent").is_empty()).then_some(answer)
    });
    check_shape(&live, "1h", 12, "influxdb");
    for p in points(&live, "mem_percent") {
        let (mean, min, max) = (num(&p[1]), num(&p[2]), num(&p[3]));
        assert!(min <= mean && mean <= max && max <= 100.0, "{p}");
    }
}

#[test]
fn an_unreachable_influxdb_or_a_local_never_answering_receiver_answers_502() {
    // Nothing listens on this port: the query fails at once.
    let closed = free_port();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let settings = |influx_port: u16| {
        vec![
            ("PIVITALS_INFLUX__API", "v1".to_owned()),
            (
                "PIVITALS_INFLUX__URL",
                format!("http://127.0.0.1:{influx_port}"),
            ),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ]
    };
    let mut primary = start_primary(dir.path(), port, &settings(closed));
    register(&url, &register_request("pi"));
    let (status, answer) = ranged_history(&url, "pi", "1h");
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("InfluxDB v1"),
        "{answer}"
    );
    primary.stop_cleanly(Duration::from_secs(20));

    // A server that accepts and never answers (no real InfluxDB can be made to hang): 502
    // after the 10 s time-out, not a hang.
    let hanging = TcpListener::bind("127.0.0.1:0").unwrap();
    let hanging_port = hanging.local_addr().unwrap().port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&held);
    std::thread::spawn(move || {
        for stream in hanging.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let _primary = start_primary(dir.path(), port, &settings(hanging_port));
    let started = Instant::now();
    let (status, answer) = ranged_history(&url, "pi", "24h");
    let took = started.elapsed();
    assert_eq!(status, 502, "{answer}");
    assert!(
        answer["error"].as_str().unwrap().contains("within 10 s"),
        "{answer}"
    );
    assert!(
        took >= Duration::from_secs(9) && took < Duration::from_secs(20),
        "{took:?}"
    );
}

/// What the local receiver saw of one request.
#[derive(Debug, Clone, Default)]
struct Seen {
    head: String,
    body: String,
}

/// Answers `/api/v2/query` with `csv` and anything else with 204, recording each request.
fn documented_v2_receiver(csv: String) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut raw = Vec::new();
            let mut buf = [0u8; 8192];
            let (head, body) = loop {
                let Ok(n) = stream.read(&mut buf) else {
                    break (String::new(), String::new());
                };
                if n == 0 {
                    break (String::new(), String::new());
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                if let Some(end) = text.find("\r\n\r\n") {
                    let head = text[..end].to_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())?
                        })
                        .unwrap_or(0usize);
                    if raw.len() >= end + 4 + length {
                        break (head, String::from_utf8_lossy(&raw[end + 4..]).into_owned());
                    }
                }
            };
            let answer = if head.starts_with("POST /api/v2/query") {
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{csv}",
                    csv.len()
                )
            } else {
                "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n".to_owned()
            };
            record.lock().unwrap().push(Seen { head, body });
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    (port, seen)
}

#[test]
fn flux_history_follows_the_documented_api_v2_query() {
    // No InfluxDB 2 runs here: a local receiver checks the request against the documented
    // `POST /api/v2/query` (Authorization: Token, org parameter, JSON body with `query` and
    // `dialect`, Accept: application/csv) and answers documented annotated CSV.
    let now = now_ms();
    let at = |ms: i64| {
        humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap()),
        )
        .to_string()
    };
    // range=6h: 72 s steps; a step twenty minutes ago.
    let step = (now - 20 * MINUTE).div_euclid(72_000) * 72_000;
    let (t, start, stop) = (at(step), at(now - 6 * 3_600_000), at(now));
    let csv = format!(
        "#group,false,false,true,true,false,false,true,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string\r\n\
#default,0:mean,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,node\r\n\
,,0,{start},{stop},{t},12.5,usage_percent,cpu,pi\r\n\
\r\n\
#group,false,false,true,true,false,false,true,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string\r\n\
#default,0:max,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,node\r\n\
,,1,{start},{stop},{t},14,usage_percent,cpu,pi\r\n\
,,2,{start},{stop},{t},99.5,usage_percent_max,cpu,pi\r\n\
\r\n\
#group,false,false,true,true,false,false,true,true,true,true\r\n\
#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,double,string,string,string,string\r\n\
#default,2:mean,,,,,,,,,\r\n\
,result,table,_start,_stop,_time,_value,_field,_measurement,node,sensor\r\n\
,,3,{start},{stop},{t},48,celsius,temperature,pi,cpu-thermal\r\n\
,,4,{start},{stop},{t},38,celsius,temperature,pi,rp1_adc\r\n\
\r\n"
    );
    let (influx_port, seen) = documented_v2_receiver(csv);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_INFLUX__API", "v2".to_owned()),
            (
                "PIVITALS_INFLUX__URL",
                format!("http://127.0.0.1:{influx_port}"),
            ),
            ("PIVITALS_INFLUX__ORG", "home lab".to_owned()),
            ("PIVITALS_INFLUX__BUCKET", "vitals".to_owned()),
            ("PIVITALS_INFLUX__TOKEN", "secret-token-1".to_owned()),
            ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ],
    );
    register(&url, &register_request("pi"));
    let (status, answer) = ranged_history(&url, "pi", "6h");
    assert_eq!(status, 200, "{answer}");
    check_shape(&answer, "6h", 72, "influxdb");
    let cpu = points(&answer, "cpu_percent");
    assert_eq!(cpu.len(), 1, "{answer}");
    assert_eq!(cpu[0][0].as_i64(), Some(step));
    assert_eq!((num(&cpu[0][1]), num(&cpu[0][3])), (12.5, 99.5));
    assert_eq!(
        num(&points(&answer, "temp_celsius")[0][1]),
        48.0,
        "the hottest sensor"
    );

    let seen = seen.lock().unwrap().clone();
    let query = seen
        .iter()
        .find(|s| s.head.starts_with("POST /api/v2/query"))
        .unwrap_or_else(|| panic!("no query request: {seen:?}"));
    let head = query.head.to_ascii_lowercase();
    assert!(
        query.head.starts_with("POST /api/v2/query?org=home+lab "),
        "{}",
        query.head
    );
    assert!(
        head.contains("\r\nauthorization: token secret-token-1"),
        "{}",
        query.head
    );
    assert!(
        head.contains("\r\naccept: application/csv"),
        "{}",
        query.head
    );
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{}",
        query.head
    );
    let body: Value = serde_json::from_str(&query.body).unwrap();
    let flux = body["query"].as_str().unwrap();
    assert!(flux.contains("from(bucket: \"vitals\")"), "{flux}");
    assert!(flux.contains("r.node == \"pi\""), "{flux}");
    assert!(
        flux.contains("aggregateWindow(every: 72s, fn: max"),
        "{flux}"
    );
    assert!(flux.contains("r._field == \"usage_percent_max\""), "{flux}");
    assert_eq!(body["type"], "flux");
    assert_eq!(body["dialect"]["header"], true);
    assert_eq!(
        body["dialect"]["annotations"],
        serde_json::json!(["datatype", "group", "default"])
    );
}
