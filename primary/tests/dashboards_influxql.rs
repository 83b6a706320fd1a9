//! The InfluxQL queries of `influx/influxql/queries.influxql`: each names only what pivitals
//! writes (`pivitals_common::line_protocol::SCHEMA`, read with testkit's `query_text`) and only
//! known Chronograf variables, a wrong name fails the check, and every query returns rows from
//! a real InfluxDB 1.x fed by a real agent and primary (the agent reads a Raspberry Pi's `/sys`
//! files from a fixture tree, so temperature and throttling have data on any machine). What no
//! agent can read on a test machine (a Pi's `power` and `storage_health`) is pushed through the
//! same primary by a second node with [`pi_sample`]. Also the setup script's 365-day retention
//! policy on a real InfluxDB 1.x.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pivitals_testkit::harness::{
    ENROLL, eventually, start_agent, start_agent_with, start_primary_on_influx_v1,
};
use pivitals_testkit::http::request;
use pivitals_testkit::query_text::{influxql, schema_errors};
use pivitals_testkit::repo_files::{installed, read, repo_root, run};
use pivitals_testkit::samples::{now_ms, pi_sample, push_body, register_request};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::Value;

const DB: &str = "pivitals";
/// The node whose agent reads the Raspberry Pi fixture; the per-node InfluxQL queries use it.
const PI_NODE: &str = "sd-pi";
/// The node whose samples the test pushes itself, with the Pi-only families.
const PUSHED_NODE: &str = "sd-pushed";

/// One named query of `influx/influxql/queries.influxql`.
#[derive(Debug, Clone)]
struct NamedQuery {
    name: String,
    text: String,
}

fn influxql_queries() -> Vec<NamedQuery> {
    let path = repo_root().join("influx/influxql/queries.influxql");
    let mut queries: Vec<NamedQuery> = Vec::new();
    let mut open = false;
    for line in read(&path).lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("-- name:") {
            assert!(!open, "{}: query before {name} has no `;`", path.display());
            queries.push(NamedQuery {
                name: name.trim().to_owned(),
                text: String::new(),
            });
            open = true;
        } else if line.is_empty() || line.starts_with("--") {
            continue;
        } else {
            let query = queries
                .last_mut()
                .filter(|_| open)
                .unwrap_or_else(|| panic!("{}: statement without a name: {line}", path.display()));
            if !query.text.is_empty() {
                query.text.push(' ');
            }
            query.text.push_str(line.trim_end_matches(';'));
            open = !line.ends_with(';');
        }
    }
    assert!(!open, "{}: the last query has no `;`", path.display());
    let names: BTreeSet<_> = queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names.len(), queries.len(), "query names repeat");
    assert!(queries.iter().all(|q| !q.text.is_empty()), "{queries:?}");
    queries
}

/// The Chronograf template variables the InfluxQL file uses, with the values the test runs.
const INFLUXQL_VARIABLES: &[(&str, &str)] = &[
    ("dashboardTime", "now() - 1h"),
    ("upperDashboardTime", "now() + 1m"),
    ("interval", "2s"),
    ("node", "'sd-pi'"),
];

fn substitute(statement: &str) -> String {
    let mut text = statement.to_owned();
    for (name, value) in INFLUXQL_VARIABLES {
        text = text.replace(&format!(":{name}:"), value);
    }
    text
}

fn check_influxql(query: &NamedQuery) -> Vec<String> {
    let place = format!("influx/influxql/queries.influxql {}", query.name);
    let mut errors = Vec::new();
    match influxql::tokens(&query.text) {
        Ok(tokens) => {
            for token in tokens {
                if let influxql::Tok::Var(name) = token
                    && !INFLUXQL_VARIABLES.iter().any(|(known, _)| *known == name)
                {
                    errors.push(format!("{place}: unknown variable :{name}:"));
                }
            }
        }
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    match influxql::refs(&query.text) {
        Ok(refs) => errors.extend(
            schema_errors(&refs)
                .into_iter()
                .map(|e| format!("{place}: {e}")),
        ),
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    errors
}

#[test]
fn every_influxql_query_names_only_what_pivitals_writes() {
    let mut errors = Vec::new();
    let queries = influxql_queries();
    assert!(queries.len() >= 22, "{} InfluxQL queries", queries.len());
    for query in &queries {
        errors.extend(check_influxql(query));
    }
    let checked = queries.len();

    assert!(
        errors.is_empty(),
        "{} of {checked} InfluxQL queries name what pivitals does not write:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn a_wrong_name_fails_the_influxql_schema_check() {
    // A real query of the InfluxQL file passes, and breaking any one name fails it.
    let queries = influxql_queries();
    let disk = queries
        .iter()
        .find(|q| q.name == "node_disk")
        .expect("node_disk");
    assert_eq!(check_influxql(disk), Vec::<String>::new());
    for (good, bad, named) in [
        (r#"FROM "disk""#, r#"FROM "disks""#, "disks"),
        (r#"last("free_bytes")"#, r#"last("free")"#, "free"),
        (r#"GROUP BY "mount""#, r#"GROUP BY "path""#, "path"),
        (r#""node" = :node:"#, r#""host" = :node:"#, "host"),
        (":dashboardTime:", ":since:", "since"),
    ] {
        let broken = NamedQuery {
            name: disk.name.clone(),
            text: disk.text.replace(good, bad),
        };
        assert_ne!(broken.text, disk.text, "{good} is not in the query");
        let errors = check_influxql(&broken);
        assert!(
            errors.iter().any(|e| e.contains(named)),
            "breaking {good} into {bad} went unnoticed: {errors:?}"
        );
    }
}

/// A root for the agent's `/proc` and `/sys` reads: the host's own, plus the files a Raspberry
/// Pi has and this machine may not (a thermal zone and the firmware's throttling word).
fn raspberry_pi_root(dir: &Path) -> PathBuf {
    let root = dir.join("pi-root");
    let write = |path: &str, content: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    };
    write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    write("sys/class/thermal/thermal_zone0/temp", "48312\n");
    // Under-voltage and throttled now, and both have occurred since boot.
    write(
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        "0x50005\n",
    );
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::os::unix::fs::symlink("/sys/devices/system", root.join("sys/devices/system")).unwrap();
    // The host's disks, so `diskio` has data (whole disks are the names under /sys/block).
    std::os::unix::fs::symlink("/sys/block", root.join("sys/block")).unwrap();
    root
}

/// Registers [`PUSHED_NODE`] with the primary at `url` and pushes `count` one-second
/// [`pi_sample`]s ending now: the `power` and `storage_health` points no agent can write here
/// (this machine is no Raspberry Pi), written by the real primary like an agent's.
fn push_pi_samples(url: &str, count: i64) {
    let json = [("Content-Type", "application/json")];
    let body = serde_json::to_vec(&register_request(PUSHED_NODE)).unwrap();
    let enroll = format!("Bearer {ENROLL}");
    let headers = [json[0], ("Authorization", enroll.as_str())];
    let reply = request("POST", &format!("{url}/api/v1/register"), &headers, &body).unwrap();
    assert_eq!(reply.status, 200, "register: {}", reply.text());
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    let token = format!("Bearer {}", reply["node_token"].as_str().unwrap());

    let end = now_ms();
    let samples = (0..count)
        .map(|i| pi_sample(end - (count - 1 - i) * 1000, 20.0, 50.0))
        .collect();
    let body = serde_json::to_vec(&push_body(samples)).unwrap();
    let headers = [json[0], ("Authorization", token.as_str())];
    let reply = request("POST", &format!("{url}/api/v1/vitals"), &headers, &body).unwrap();
    assert_eq!(reply.status, 200, "push: {}", reply.text());
}

/// True when the answer has a row with a value besides its time.
fn has_rows(answer: &Value) -> bool {
    answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|result| result["series"].as_array().into_iter().flatten())
        .flat_map(|series| series["values"].as_array().into_iter().flatten())
        .any(|row| {
            row.as_array()
                .is_some_and(|r| r.iter().skip(1).any(|v| !v.is_null()))
        })
}

#[test]
fn influxql_queries_return_rows_from_influxdb_1x_fed_by_a_real_agent() {
    let queries = influxql_queries();
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);
    let root = raspberry_pi_root(dir.path());
    let pi_env = [
        ("PIVITALS_LABELS", "stack=1,role=worker".to_owned()),
        ("PIVITALS_ROOT", root.display().to_string()),
    ];
    let _pi = start_agent_with(dir.path(), PI_NODE, &url, "1s", &pi_env);
    let _plain = start_agent(dir.path(), "sd-plain", &url, "1s");
    push_pi_samples(&url, 3);

    // The database exists and the Pi node's samples arrive before any query is judged.
    let count = format!("SELECT count(usage_percent) FROM cpu WHERE node = '{PI_NODE}'");
    eventually(
        "3 cpu points of the Pi node",
        Duration::from_secs(40),
        || (influx.count(DB, &count).ok()? >= 3).then_some(()),
    );

    let started = Instant::now();
    let mut pending: Vec<&NamedQuery> = queries.iter().collect();
    loop {
        let mut still = Vec::new();
        for query in pending {
            let text = substitute(&query.text);
            let answer = influx
                .query(DB, &text)
                .unwrap_or_else(|e| panic!("{}: InfluxDB refused {text}: {e}", query.name));
            if !has_rows(&answer) {
                still.push(query);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rows after 60 s from: {}\nprimary log:\n{}",
            pending
                .iter()
                .map(|q| format!("{} ({})", q.name, substitute(&q.text)))
                .collect::<Vec<_>>()
                .join("\n"),
            primary.log_tail()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "primary exit: {status}");
}

/// The 365-day policy on a database: (duration, default) from `SHOW RETENTION POLICIES`.
fn retention_policy(influx: &InfluxV1) -> (Value, Value) {
    let answer = influx
        .query(DB, "SHOW RETENTION POLICIES ON \"pivitals\"")
        .unwrap();
    let rows = answer["results"][0]["series"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r[0] == "pivitals_365d")
        .unwrap_or_else(|| panic!("no pivitals_365d in {answer}"));
    (
        row[1].clone(),
        row[row.as_array().unwrap().len() - 1].clone(),
    )
}

#[test]
fn influxdb1_setup_script_creates_and_repairs_the_365_day_policy() {
    assert!(
        installed("curl"),
        "the setup script needs curl: apt-get install curl"
    );
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let script = repo_root().join("influx/setup-influxdb1.sh");
    let setup = || {
        let output = run(Command::new("sh").arg(&script).arg(influx.url()).arg(DB));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(setup().contains("pivitals_365d"));
    assert_eq!(retention_policy(&influx), ("8760h0m0s".into(), true.into()));
    // Idempotent, and a policy shortened by hand comes back to 365 days.
    setup();
    influx
        .post_query(
            DB,
            "ALTER RETENTION POLICY \"pivitals_365d\" ON \"pivitals\" DURATION 30d",
        )
        .unwrap();
    assert_eq!(retention_policy(&influx).0, "720h0m0s");
    setup();
    assert_eq!(retention_policy(&influx), ("8760h0m0s".into(), true.into()));
}
