//! The InfluxDB 3 writer (`PIVITALS_INFLUX__API=v3`) against the documented API: no InfluxDB 3
//! server can run on these machines, so every test here talks to
//! [`Influx3Receiver`], a local receiver (NOT a real server) that checks each request as the
//! InfluxDB 3 HTTP API reference documents it and answers as InfluxDB 3 does. The test names
//! say so with `documented_api` or `receiver`.
//!
//! Covered: the database created with 365 days when missing, and never by a write; an
//! existing database with another retention warned about while writes go on; points from a
//! real agent through a real primary, exact count; a partial write dropped and counted; 429
//! with Retry-After, 500 and 401 retried until nothing is lost; every documented answer
//! classified; `check-config` on v3 settings.

use std::path::Path;
use std::time::Duration;

use pivitals_primary::storage::influx::{
    InfluxApi, InfluxConfig, InfluxWriter, RETENTION, RetentionOutcome, WriteError,
};
use pivitals_testkit::free_port;
use pivitals_testkit::harness::{
    Proc, command, eventually, metric, start_agent, start_primary, workspace_binary,
};
use pivitals_testkit::influx3_receiver::{Influx3Receiver, WriteAnswer};

const DB: &str = "pivitals";
const TOKEN: &str = "apiv3_receiver-test-token";

// ---------------------------------------------------------------------------------------
// Helpers

fn http() -> reqwest::Client {
    // reqwest is built with `rustls-no-provider`: a crypto provider must be installed even
    // though these tests speak plain HTTP. A second install fails harmlessly.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .expect("a reqwest client with the ring provider builds")
}

fn v3_config(url: String, token: Option<&str>) -> InfluxConfig {
    InfluxConfig {
        api: Some(InfluxApi::V3),
        url: Some(url),
        token: token.map(str::to_owned),
        ..InfluxConfig::default()
    }
}

fn writer(cfg: &InfluxConfig) -> InfluxWriter {
    InfluxWriter::new(cfg, http()).expect("valid config")
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}

/// `n` cpu points of `node`, one nanosecond-timestamped line each.
fn cpu_lines(node: &str, n: usize) -> String {
    let now = now_ns();
    (0..n)
        .map(|i| {
            format!(
                "cpu,node={node} usage={}.5 {}\n",
                i + 10,
                now - n as u128 + i as u128
            )
        })
        .collect()
}

/// The primary binary writing with API v3 to `receiver`; `extra` settings win.
fn start_primary_on_v3(dir: &Path, port: u16, url: &str, extra: &[(&str, String)]) -> Proc {
    let mut env = vec![
        ("PIVITALS_INFLUX__API", "v3".to_owned()),
        ("PIVITALS_INFLUX__URL", url.to_owned()),
        ("PIVITALS_INFLUX__TOKEN", TOKEN.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
    ];
    env.extend(extra.iter().cloned());
    start_primary(dir, port, &env)
}

/// The value of `name{label="value"}` in Prometheus text, 0 when absent.
fn labelled(text: &str, name: &str, label: &str) -> u64 {
    let prefix = format!("{name}{{{label}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.trim().parse().ok())
        .unwrap_or(0)
}

fn metrics(primary_url: &str) -> String {
    let response = pivitals_testkit::http::get(&format!("{primary_url}/metrics"))
        .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
    assert_eq!(response.status, 200);
    response.text()
}

/// Waits until the primary has settled every point it received (written or rejected) and
/// returns its /metrics text.
fn settled_metrics(primary_url: &str) -> String {
    eventually(
        "every received point written or rejected",
        Duration::from_secs(60),
        || {
            let text = metrics(primary_url);
            let received = metric(&text, "pivitals_points_received_total");
            let written = metric(&text, "pivitals_points_written_total");
            let rejected: u64 = text
                .lines()
                .filter(|l| l.starts_with("pivitals_points_rejected_total{"))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum();
            (received > 0 && received == written + rejected).then_some(text)
        },
    )
}

fn assert_no_violations(receiver: &Influx3Receiver) {
    assert_eq!(
        receiver.violations(),
        Vec::<String>::new(),
        "not as documented"
    );
    assert_eq!(
        receiver.created_by_write(),
        Vec::<String>::new(),
        "a write created a database (without retention)"
    );
}

/// The paths of the requests so far, `METHOD path`, in order.
fn request_paths(receiver: &Influx3Receiver) -> Vec<String> {
    receiver
        .requests()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect()
}

// ---------------------------------------------------------------------------------------
// The writer alone against the receiver

#[tokio::test]
async fn documented_api_missing_database_is_created_with_365d_before_any_write() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    let writer = writer(&v3_config(receiver.url(), Some(TOKEN)));
    assert_eq!(writer.ensure_retention().await, RetentionOutcome::Created);
    assert_eq!(receiver.retention(DB), Some(Some(RETENTION)));
    let requests = receiver.requests();
    assert_eq!(
        request_paths(&receiver),
        [
            "GET /api/v3/configure/database",
            "POST /api/v3/configure/database"
        ]
    );
    assert_eq!(
        requests[0].query,
        [("format".to_owned(), "json".to_owned())]
    );
    let body: serde_json::Value = serde_json::from_str(&requests[1].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"db": DB, "retention_period": "365d"})
    );
    for request in &requests {
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer apiv3_receiver-test-token")
        );
    }

    writer.write(cpu_lines("pi1", 3).as_bytes()).await.unwrap();
    let write = receiver.requests().pop().unwrap();
    assert_eq!(write.path, "/api/v3/write_lp");
    assert_eq!(
        write.query,
        [
            ("db".to_owned(), DB.to_owned()),
            ("precision".to_owned(), "nanosecond".to_owned()),
            ("accept_partial".to_owned(), "true".to_owned()),
        ]
    );
    assert_eq!(write.status, 204);
    assert_eq!(receiver.lines(DB).len(), 3);
    // A second start finds it with the right retention and creates nothing.
    let again = self::writer(&v3_config(receiver.url(), Some(TOKEN)));
    assert_eq!(again.ensure_retention().await, RetentionOutcome::AlreadyOk);
    assert_no_violations(&receiver);
}

#[tokio::test]
async fn documented_api_existing_database_with_30_days_is_reported_and_left_alone() {
    let receiver = Influx3Receiver::start(None);
    receiver.add_database(DB, Some(Duration::from_secs(30 * 86_400)));
    let outcome = writer(&v3_config(receiver.url(), None))
        .ensure_retention()
        .await;
    assert_eq!(
        outcome,
        RetentionOutcome::Differs {
            found: "30days".into()
        }
    );
    assert_eq!(
        request_paths(&receiver),
        ["GET /api/v3/configure/database", "POST /api/v3/query_sql"]
    );
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.authorization.is_none())
    );
    assert_eq!(
        receiver.retention(DB),
        Some(Some(Duration::from_secs(30 * 86_400)))
    );

    // No retention at all (created by a write, or by hand without one): kept forever.
    let receiver = Influx3Receiver::start(None);
    receiver.add_database(DB, None);
    let outcome = writer(&v3_config(receiver.url(), None))
        .ensure_retention()
        .await;
    assert!(
        matches!(&outcome, RetentionOutcome::Differs { found } if found.contains("forever")),
        "{outcome:?}"
    );
    assert_no_violations(&receiver);
}

#[tokio::test]
async fn documented_api_a_wrong_token_leaves_retention_unverified_and_writes_refused() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    let writer = writer(&v3_config(receiver.url(), Some("apiv3_wrong")));
    let outcome = writer.ensure_retention().await;
    assert!(
        matches!(&outcome, RetentionOutcome::Unverified { reason } if reason.contains("401")),
        "{outcome:?}"
    );
    let error = writer
        .write(cpu_lines("pi1", 1).as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(error, WriteError::Refused { status: 401, .. }),
        "{error:?}"
    );
    assert!(error.is_retriable());
    assert_eq!(receiver.lines(DB).len(), 0);
    assert_eq!(receiver.retention(DB), None);
}

#[tokio::test]
async fn documented_api_no_write_before_the_database_check_was_answered() {
    // Nothing listens yet: the check gets no answer, so the write is held back (kept).
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let writer = writer(&v3_config(url, None));
    assert!(matches!(
        writer.ensure_retention().await,
        RetentionOutcome::Unverified { .. }
    ));
    let error = writer
        .write(cpu_lines("pi1", 1).as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(&error, WriteError::Transient { status: None, detail, .. }
            if detail.contains("database is checked")),
        "{error:?}"
    );
}

#[tokio::test]
async fn documented_api_write_answers_are_classified_like_v1_and_v2() {
    let receiver = Influx3Receiver::start(None);
    let writer = writer(&v3_config(receiver.url(), None));
    assert_eq!(writer.ensure_retention().await, RetentionOutcome::Created);
    let status = |status: u16, retry_after: Option<u64>, body: &str| WriteAnswer::Status {
        status,
        retry_after,
        body: body.to_owned(),
    };
    receiver.script_writes([
        WriteAnswer::RefuseLines(vec![2]),
        status(
            400,
            None,
            r#"{"error":"parsing failed for write_lp endpoint","data":{}}"#,
        ),
        status(
            401,
            None,
            r#"{"error":"the request was not authenticated"}"#,
        ),
        status(403, None, r#"{"error":"access denied"}"#),
        status(404, None, r#"{"error":"database not found: pivitals"}"#),
        status(413, None, ""),
        status(422, None, r#"{"error":"unprocessable entity"}"#),
        status(429, Some(7), ""),
        status(500, None, "internal error"),
        status(503, Some(3), ""),
    ]);
    let lines = cpu_lines("pi1", 3);
    let mut errors = Vec::new();
    for _ in 0..10 {
        errors.push(writer.write(lines.as_bytes()).await.unwrap_err());
    }
    let partial = &errors[0];
    assert!(
        matches!(partial, WriteError::PartiallyWritten { status: 400, body }
            if body.contains("1 line(s) refused, the first is line 2: invalid column type")),
        "{partial:?}"
    );
    assert!(!partial.is_retriable());
    assert_eq!(
        receiver.lines(DB).len(),
        2,
        "the good lines of the partial write"
    );
    assert!(matches!(
        errors[1],
        WriteError::Malformed { status: 400, .. }
    ));
    for (error, code) in errors[2..5].iter().zip([401, 403, 404]) {
        assert!(
            matches!(error, WriteError::Refused { status, .. } if *status == code),
            "{error:?}"
        );
        assert!(error.is_retriable());
    }
    assert!(matches!(errors[5], WriteError::TooLarge));
    assert!(matches!(
        errors[6],
        WriteError::PartiallyWritten { status: 422, .. }
    ));
    for (error, code, after) in [
        (&errors[7], 429, Some(7)),
        (&errors[8], 500, None),
        (&errors[9], 503, Some(3)),
    ] {
        assert!(error.is_retriable(), "{error:?}");
        assert_eq!(error.status(), Some(code));
        assert_eq!(error.retry_after(), after.map(Duration::from_secs));
    }
    writer.write(lines.as_bytes()).await.unwrap();
    assert_eq!(receiver.lines(DB).len(), 5);
    for write in receiver.writes() {
        assert_eq!(
            write.lines.len(),
            3,
            "every request carried the whole batch"
        );
    }
    assert_no_violations(&receiver);
}

// ---------------------------------------------------------------------------------------
// A real primary and a real agent through the receiver

#[test]
fn receiver_gets_every_point_of_a_real_agent_exactly_once_in_a_365d_database() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_v3(dir.path(), port, &receiver.url(), &[]);
    let mut agent = start_agent(dir.path(), "v3-a", &url, "1s");
    eventually("5 cpu points of v3-a", Duration::from_secs(40), || {
        let cpu = receiver
            .lines(DB)
            .iter()
            .filter(|l| l.starts_with("cpu,") && l.contains("node=v3-a"))
            .count();
        (cpu >= 5).then_some(())
    });
    agent.stop_cleanly(Duration::from_secs(15));
    let text = settled_metrics(&url);
    let written = metric(&text, "pivitals_points_written_total");
    let lines = receiver.lines(DB);
    assert_eq!(
        lines.len() as u64,
        written,
        "the receiver holds what the primary wrote"
    );
    assert_eq!(
        written,
        metric(&text, "pivitals_points_received_total"),
        "nothing rejected"
    );
    let mut unique = lines.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), lines.len(), "no point written twice");
    assert!(lines.iter().all(|l| l.contains("node=v3-a")), "{lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("node_status,")),
        "the goodbye is recorded"
    );

    assert_eq!(receiver.retention(DB), Some(Some(RETENTION)));
    let paths = request_paths(&receiver);
    assert_eq!(paths[0], "GET /api/v3/configure/database");
    assert_eq!(paths[1], "POST /api/v3/configure/database");
    assert!(
        paths[2..].iter().all(|p| p == "POST /api/v3/write_lp"),
        "{paths:?}"
    );
    assert_no_violations(&receiver);
    primary.stop_cleanly(Duration::from_secs(30));
    let log = primary.log();
    assert!(
        log.contains("created with a retention of 365 days"),
        "{log}"
    );
    assert!(!log.contains(TOKEN), "the token was logged");
}

#[test]
fn receiver_database_with_another_retention_is_warned_about_and_written_to() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    receiver.add_database(DB, Some(Duration::from_secs(7 * 86_400)));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary_on_v3(dir.path(), port, &receiver.url(), &[]);
    let _agent = start_agent(dir.path(), "v3-week", &url, "1s");
    eventually(
        "points in the 7-day database",
        Duration::from_secs(40),
        || (receiver.lines(DB).len() >= 5).then_some(()),
    );
    let log = primary.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("retention is"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning:\n{log}");
    let warning = warnings[0];
    for part in [
        "database \"pivitals\"",
        "retention is 7days",
        "not the configured 365d",
    ] {
        assert!(warning.contains(part), "{part:?} missing from {warning}");
    }
    assert_eq!(
        receiver.retention(DB),
        Some(Some(Duration::from_secs(7 * 86_400)))
    );
    assert!(
        !request_paths(&receiver).contains(&"POST /api/v3/configure/database".to_owned()),
        "an existing database is not created again"
    );
    assert_no_violations(&receiver);
}

#[test]
fn receiver_started_after_the_primary_gets_the_database_created_not_written_into_being() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    // Nothing answers at the InfluxDB URL yet: the start-up check gets no answer.
    let influx_port = free_port();
    let influx_url = format!("http://127.0.0.1:{influx_port}");
    let primary = start_primary_on_v3(dir.path(), port, &influx_url, &[]);
    let _agent = start_agent(dir.path(), "v3-late", &url, "1s");
    eventually("a held-back write", Duration::from_secs(30), || {
        primary
            .log()
            .contains("not writing before the database is checked")
            .then_some(())
    });
    let receiver = Influx3Receiver::start_on(influx_port, Some(TOKEN));
    eventually(
        "points after InfluxDB came up",
        Duration::from_secs(60),
        || (receiver.lines(DB).len() >= 3).then_some(()),
    );
    assert_eq!(receiver.retention(DB), Some(Some(RETENTION)));
    let paths = request_paths(&receiver);
    assert_eq!(
        paths[..2],
        [
            "GET /api/v3/configure/database",
            "POST /api/v3/configure/database"
        ]
    );
    assert_no_violations(&receiver);
}

#[test]
fn receiver_partial_write_is_dropped_and_counted_not_retried() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    receiver.script_writes([WriteAnswer::RefuseLines(vec![1])]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary_on_v3(dir.path(), port, &receiver.url(), &[]);
    let mut agent = start_agent(dir.path(), "v3-partial", &url, "1s");
    eventually("three writes", Duration::from_secs(40), || {
        (receiver.writes().len() >= 3).then_some(())
    });
    agent.stop_cleanly(Duration::from_secs(15));
    let text = settled_metrics(&url);
    let writes = receiver.writes();
    let first = &writes[0];
    assert_eq!(first.status, 400);
    let rejected = labelled(
        &text,
        "pivitals_points_rejected_total",
        "reason=\"partial_write\"",
    );
    assert_eq!(
        rejected,
        first.lines.len() as u64,
        "the batch's points are counted\n{text}"
    );
    assert!(
        writes[1..].iter().all(|w| w.lines != first.lines),
        "the partly written batch was sent again"
    );
    let stored = receiver.lines(DB);
    assert!(
        !stored.contains(&first.lines[0]),
        "the refused line was stored"
    );
    assert!(
        first.lines[1..].iter().all(|l| stored.contains(l)),
        "the good lines are kept"
    );
    let written = metric(&text, "pivitals_points_written_total");
    assert_eq!(stored.len() as u64, written + rejected - 1);
    let log = primary.log();
    assert!(
        log.contains("storage rejected a batch") && log.contains("the first is line 1"),
        "{log}"
    );
    assert_no_violations(&receiver);
}

#[test]
fn receiver_429_with_retry_after_and_500_are_retried_until_nothing_is_lost() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    receiver.script_writes([
        WriteAnswer::Status {
            status: 429,
            retry_after: Some(2),
            body: r#"{"error":"too many requests"}"#.into(),
        },
        WriteAnswer::Status {
            status: 500,
            retry_after: None,
            body: r#"{"error":"internal error"}"#.into(),
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let _primary = start_primary_on_v3(dir.path(), port, &receiver.url(), &[]);
    let mut agent = start_agent(dir.path(), "v3-busy", &url, "1s");
    eventually("the retries answered 204", Duration::from_secs(40), || {
        (receiver.writes().iter().filter(|w| w.status == 204).count() >= 2).then_some(())
    });
    agent.stop_cleanly(Duration::from_secs(15));
    let text = settled_metrics(&url);
    let writes = receiver.writes();
    assert_eq!((writes[0].status, writes[1].status), (429, 500));
    assert_eq!(
        writes[1].lines, writes[0].lines,
        "the same batch is sent again"
    );
    assert!(
        writes[1].at.duration_since(writes[0].at) >= Duration::from_millis(1900),
        "sent again before Retry-After: {:?}",
        writes[1].at.duration_since(writes[0].at)
    );
    assert_eq!(writes[2].lines, writes[0].lines, "and again after the 500");
    assert_eq!(writes[2].status, 204);
    let stored = receiver.lines(DB);
    assert_eq!(
        stored.len() as u64,
        metric(&text, "pivitals_points_written_total")
    );
    assert_eq!(
        stored.len() as u64,
        metric(&text, "pivitals_points_received_total")
    );
    assert_eq!(
        labelled(&text, "pivitals_write_errors_total", "status=\"429\""),
        1
    );
    assert_eq!(
        labelled(&text, "pivitals_write_errors_total", "status=\"500\""),
        1
    );
    assert_no_violations(&receiver);
}

#[test]
fn receiver_401_keeps_the_batch_and_logs_loudly_until_it_is_accepted() {
    let receiver = Influx3Receiver::start(Some(TOKEN));
    receiver.script_writes([WriteAnswer::Status {
        status: 401,
        retry_after: None,
        body: r#"{"error":"the request was not authenticated"}"#.into(),
    }]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary_on_v3(dir.path(), port, &receiver.url(), &[]);
    let _agent = start_agent(dir.path(), "v3-denied", &url, "1s");
    eventually("the 401", Duration::from_secs(30), || {
        receiver
            .writes()
            .first()
            .map(|w| w.status == 401)
            .filter(|x| *x)
    });
    let refused = receiver.writes()[0].lines.clone();
    eventually("the loud log line", Duration::from_secs(10), || {
        let log = primary.log();
        (log.contains("ERROR") && log.contains("storage refuses writes") && log.contains("401"))
            .then_some(())
    });
    // Retried slowly (every 30 s), never dropped: the refused batch lands.
    eventually("the refused batch written", Duration::from_secs(60), || {
        let stored = receiver.lines(DB);
        refused.iter().all(|l| stored.contains(l)).then_some(())
    });
    let text = metrics(&url);
    assert_eq!(
        text.lines()
            .filter(|l| l.starts_with("pivitals_points_rejected_total{"))
            .count(),
        0,
        "{text}"
    );
    assert_eq!(
        labelled(&text, "pivitals_write_errors_total", "status=\"401\""),
        1
    );
    assert_no_violations(&receiver);
}

// ---------------------------------------------------------------------------------------
// check-config

fn check_config(dir: &Path, env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = command(&workspace_binary("pivitals-primary"));
    cmd.current_dir(dir)
        .env("PIVITALS_DATA_DIR", dir.join("data"))
        .arg("check-config");
    for (key, value) in env {
        cmd.env(key, value);
    }
    cmd.output().expect("run pivitals-primary check-config")
}

#[test]
fn check_config_accepts_v3_and_names_the_missing_database_key() {
    let dir = tempfile::tempdir().unwrap();
    let v3 = [
        ("PIVITALS_INFLUX__API", "v3"),
        ("PIVITALS_INFLUX__URL", "http://influxdb3:8181"),
    ];
    let ok = check_config(dir.path(), &v3);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let with_token = check_config(
        dir.path(),
        &[
            v3[0],
            v3[1],
            ("PIVITALS_INFLUX__TOKEN", "apiv3_x"),
            ("PIVITALS_INFLUX__DATABASE", "home-vitals"),
        ],
    );
    assert!(
        with_token.status.success(),
        "{}",
        String::from_utf8_lossy(&with_token.stderr)
    );
    for (database, expected) in [
        (
            "",
            "PIVITALS_INFLUX__DATABASE is required when PIVITALS_INFLUX__API=v3",
        ),
        ("my vitals", "PIVITALS_INFLUX__DATABASE"),
    ] {
        let refused = check_config(
            dir.path(),
            &[v3[0], v3[1], ("PIVITALS_INFLUX__DATABASE", database)],
        );
        assert_eq!(refused.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains(expected), "{database:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    }
    // A settings file is checked key by key: a typo in [influx] is refused, named.
    let file = dir.path().join("primary.toml");
    std::fs::write(
        &file,
        "[influx]\napi = \"v3\"\nurl = \"http://influxdb3:8181\"\ndatabse = \"x\"\n",
    )
    .unwrap();
    let mut cmd = command(&workspace_binary("pivitals-primary"));
    cmd.current_dir(dir.path())
        .env("PIVITALS_DATA_DIR", dir.path().join("data"))
        .args(["check-config", "--config"])
        .arg(&file);
    let unknown = cmd.output().unwrap();
    assert_eq!(unknown.status.code(), Some(2), "unknown keys are refused");
    let stderr = String::from_utf8_lossy(&unknown.stderr);
    assert!(stderr.contains("influx.databse"), "{stderr}");
    assert!(!dir.path().join("data").exists());
}
