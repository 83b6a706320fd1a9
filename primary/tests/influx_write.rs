//! `InfluxWriter` against real servers: InfluxDB 1.x and VictoriaMetrics started by
//! pivitals-testkit, plus a stub of the InfluxDB 2 HTTP API (no InfluxDB 2 server is
//! packaged for this machine).

use std::collections::HashMap;
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pivitals_primary::storage::influx::{
    ContentEncoding, InfluxApi, InfluxConfig, InfluxWriter, RETENTION_SECONDS, RetentionOutcome,
    WriteError,
};
use pivitals_testkit::{InfluxV1, VictoriaMetrics, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as i128
}

fn v1_config(url: String) -> InfluxConfig {
    InfluxConfig {
        api: Some(InfluxApi::V1),
        url: Some(url),
        ..InfluxConfig::default()
    }
}

fn v2_config(url: String) -> InfluxConfig {
    InfluxConfig {
        api: Some(InfluxApi::V2),
        url: Some(url),
        org: Some("home".to_owned()),
        token: Some(TOKEN.to_owned()),
        ..InfluxConfig::default()
    }
}

const TOKEN: &str = "test-token-0123";

fn writer(cfg: &InfluxConfig) -> InfluxWriter {
    InfluxWriter::new(cfg, http()).expect("valid config")
}

/// `n` points of `cpu` for node `node`, one second apart ending now.
fn cpu_lines(node: &str, n: usize) -> String {
    let now = now_ns();
    (0..n)
        .map(|i| {
            let ts = now - (n - i) as i128 * 1_000_000_000;
            format!("cpu,node={node} usage={}.5,temp=41 {ts}\n", i + 10)
        })
        .collect()
}

fn start_influx() -> InfluxV1 {
    InfluxV1::start().unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------
// InfluxDB 1.x (real server)

#[tokio::test]
async fn v1_ensure_retention_creates_database_and_default_365d_policy() {
    let influx = start_influx();
    let writer = writer(&v1_config(influx.url()));

    assert_eq!(writer.ensure_retention().await, RetentionOutcome::Created);

    let answer = influx
        .query("pivitals", "SHOW RETENTION POLICIES ON \"pivitals\"")
        .unwrap();
    let series = &answer["results"][0]["series"][0];
    let columns: Vec<&str> = series["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let at = |name: &str| columns.iter().position(|c| *c == name).unwrap();
    let policy = series["values"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row[at("name")] == "pivitals_365d")
        .unwrap_or_else(|| panic!("no pivitals_365d in {answer}"));
    assert_eq!(policy[at("duration")], "8760h0m0s", "{answer}");
    assert_eq!(policy[at("default")], true, "{answer}");

    assert_eq!(writer.ensure_retention().await, RetentionOutcome::AlreadyOk);
}

#[tokio::test]
async fn v1_existing_policy_with_another_duration_is_reported_and_kept() {
    let influx = start_influx();
    influx.create_database("pivitals").unwrap();
    influx
        .post_query(
            "pivitals",
            "CREATE RETENTION POLICY \"pivitals_365d\" ON \"pivitals\" DURATION 30d REPLICATION 1",
        )
        .unwrap();
    let writer = writer(&v1_config(influx.url()));

    let outcome = writer.ensure_retention().await;

    assert_eq!(
        outcome,
        RetentionOutcome::Differs {
            found: "30days".to_owned()
        }
    );
    let answer = influx
        .query("pivitals", "SHOW RETENTION POLICIES ON \"pivitals\"")
        .unwrap();
    assert!(answer.to_string().contains("720h0m0s"), "{answer}");
}

#[tokio::test]
async fn v1_write_lands() {
    let influx = start_influx();
    let writer = writer(&v1_config(influx.url()));
    writer.ensure_retention().await;

    writer.write(cpu_lines("pi-a", 3).as_bytes()).await.unwrap();

    let count = influx
        .count(
            "pivitals",
            "SELECT count(usage) FROM \"pivitals\".\"pivitals_365d\".\"cpu\" WHERE node = 'pi-a'",
        )
        .unwrap();
    assert_eq!(count, 3);
}

#[tokio::test]
async fn v1_empty_batch_sends_nothing() {
    // No server at all: an empty batch must not even try.
    let writer = writer(&v1_config(format!("http://127.0.0.1:{}", free_port())));
    writer.write(b"").await.unwrap();
    writer.write(b"\n \n").await.unwrap();
}

#[tokio::test]
async fn v1_point_older_than_retention_is_partially_written() {
    let influx = start_influx();
    let writer = writer(&v1_config(influx.url()));
    writer.ensure_retention().await;
    let two_years_ago = now_ns() - 2 * 365 * 86_400 * 1_000_000_000;
    let batch = format!(
        "{}cpu,node=pi-old usage=1 {two_years_ago}\n",
        cpu_lines("pi-b", 2)
    );

    let error = writer.write(batch.as_bytes()).await.unwrap_err();

    match &error {
        WriteError::PartiallyWritten { status, body } => {
            assert_eq!(*status, 400);
            assert!(body.contains("partial write"), "{body}");
            assert!(body.contains("dropped=1"), "{body}");
        }
        other => panic!("expected PartiallyWritten, got {other:?}"),
    }
    assert!(!error.is_retriable());
    let count = influx
        .count(
            "pivitals",
            "SELECT count(usage) FROM \"pivitals\".\"pivitals_365d\".\"cpu\"",
        )
        .unwrap();
    assert_eq!(count, 2, "the two recent points are written");
}

#[tokio::test]
async fn v1_missing_database_is_refused_with_404() {
    let influx = start_influx();
    let writer = writer(&v1_config(influx.url()));

    let error = writer
        .write(cpu_lines("pi-c", 1).as_bytes())
        .await
        .unwrap_err();

    assert!(
        matches!(error, WriteError::Refused { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.is_retriable(), "refused batches are kept and retried");
}

#[tokio::test]
async fn v1_missing_retention_policy_is_refused() {
    let influx = start_influx();
    influx.create_database("pivitals").unwrap();
    let writer = writer(&v1_config(influx.url()));

    let error = writer
        .write(cpu_lines("pi-d", 1).as_bytes())
        .await
        .unwrap_err();

    match &error {
        WriteError::Refused { status: 500, body } => {
            assert!(body.contains("retention policy not found"), "{body}")
        }
        other => panic!("expected Refused 500, got {other:?}"),
    }
}

#[tokio::test]
async fn v1_garbage_is_malformed() {
    let influx = start_influx();
    let writer = writer(&v1_config(influx.url()));
    writer.ensure_retention().await;

    let error = writer
        .write(b"this is not line protocol\n")
        .await
        .unwrap_err();

    match &error {
        WriteError::Malformed { status: 400, body } => {
            assert!(body.contains("unable to parse"), "{body}")
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(!error.is_retriable());
}

#[tokio::test]
async fn v1_with_auth_uses_basic_auth_and_refuses_a_wrong_password() {
    let influx =
        InfluxV1::start_with_auth("admin", "correct horse").unwrap_or_else(|e| panic!("{e}"));
    let good = InfluxConfig {
        username: Some("admin".to_owned()),
        password: Some("correct horse".to_owned()),
        ..v1_config(influx.url())
    };
    let writer = writer(&good);
    assert_eq!(writer.ensure_retention().await, RetentionOutcome::Created);
    writer.write(cpu_lines("pi-e", 2).as_bytes()).await.unwrap();
    assert_eq!(
        influx
            .count(
                "pivitals",
                "SELECT count(usage) FROM \"pivitals\".\"pivitals_365d\".\"cpu\""
            )
            .unwrap(),
        2
    );

    let bad = InfluxConfig {
        password: Some("wrong".to_owned()),
        ..good
    };
    let bad_writer = self::writer(&bad);
    let error = bad_writer
        .write(cpu_lines("pi-e", 1).as_bytes())
        .await
        .unwrap_err();
    assert!(
        matches!(error, WriteError::Refused { status: 401, .. }),
        "{error:?}"
    );
    assert!(
        matches!(
            bad_writer.ensure_retention().await,
            RetentionOutcome::Unverified { .. }
        ),
        "a wrong password cannot verify anything"
    );
}

// ---------------------------------------------------------------------------------------
// VictoriaMetrics (real server): the v2 write path, and no bucket API

#[tokio::test]
async fn v2_write_with_gzip_lands_in_victoria_metrics() {
    let vm = VictoriaMetrics::start().unwrap_or_else(|e| panic!("{e}"));
    let writer = writer(&InfluxConfig {
        content_encoding: ContentEncoding::Gzip,
        ..v2_config(vm.url())
    });
    let ts = now_ns() - 5_000_000_000;
    let lines = format!("cpu,node=pi-vm usage=12.5,temp=41 {ts}\nmem,node=pi-vm used=1024i {ts}\n");

    writer.write(lines.as_bytes()).await.unwrap();

    let series = vm.export_eventually(r#"{node="pi-vm"}"#, 3).unwrap();
    let mut names: Vec<&str> = series
        .iter()
        .map(|s| s["metric"]["__name__"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["cpu_temp", "cpu_usage", "mem_used"], "{series:?}");
    let usage = series
        .iter()
        .find(|s| s["metric"]["__name__"] == "cpu_usage")
        .unwrap();
    assert_eq!(usage["values"], json!([12.5]));
    assert_eq!(
        usage["timestamps"],
        json!([(ts / 1_000_000) as i64]),
        "ns precision kept"
    );
}

#[tokio::test]
async fn victoria_metrics_has_no_bucket_api_so_retention_is_unverified() {
    let vm = VictoriaMetrics::start().unwrap_or_else(|e| panic!("{e}"));

    let outcome = writer(&v2_config(vm.url())).ensure_retention().await;
    match &outcome {
        RetentionOutcome::Unverified { reason } => {
            assert!(reason.contains("/api/v2/orgs"), "{reason}");
            assert!(reason.contains("400"), "{reason}");
        }
        other => panic!("expected Unverified, got {other:?}"),
    }

    // VictoriaMetrics answers every InfluxQL query with its database list.
    let outcome = writer(&v1_config(vm.url())).ensure_retention().await;
    assert!(
        matches!(outcome, RetentionOutcome::Unverified { .. }),
        "{outcome:?}"
    );
}

// ---------------------------------------------------------------------------------------
// InfluxDB 2 stub: no InfluxDB 2 server exists on this machine (Debian packages only 1.x),
// so these tests emulate its orgs, buckets and write endpoints with a tiny HTTP server.

/// One request as the stub saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: HashMap<String, String>,
    headers: HashMap<String, String>,
    body: Vec<u8>,
}

impl Seen {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("request body is JSON")
    }
}

/// What the stub answers.
struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Reply {
    fn new(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    async fn start(handler: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Handler = Arc::new(handler);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_one(socket, handler.clone(), log.clone()));
            }
        });
        Stub { url, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// Reads one HTTP/1.1 request, answers it and closes the connection.
async fn serve_one(
    mut socket: tokio::net::TcpStream,
    handler: Handler,
    log: Arc<Mutex<Vec<Seen>>>,
) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        raw.extend_from_slice(&buf[..n]);
        if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
    };
    let head = String::from_utf8_lossy(&raw[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or("").split(' ');
    let method = request_line.next().unwrap_or("").to_owned();
    let target = request_line.next().unwrap_or("").to_owned();
    let headers: HashMap<String, String> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = raw[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            break;
        }
        body.extend_from_slice(&buf[..n]);
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let seen = Seen {
        method,
        path: path.to_owned(),
        query: url::form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect(),
        headers,
        body,
    };
    log.lock().unwrap().push(seen.clone());
    let reply = handler(&seen);
    tokio::time::sleep(reply.delay).await;
    let mut answer = format!(
        "HTTP/1.1 {} Stub\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n",
        reply.status,
        reply.body.len()
    );
    for (name, value) in &reply.headers {
        answer.push_str(&format!("{name}: {value}\r\n"));
    }
    answer.push_str("\r\n");
    answer.push_str(&reply.body);
    let _ = socket.write_all(answer.as_bytes()).await;
    let _ = socket.shutdown().await;
}

const ORG_ID: &str = "0a1b2c3d4e5f6a7b";

/// How the emulated InfluxDB 2 answers a look-up of a bucket that does not exist.
#[derive(Clone, Copy, Debug)]
enum MissingBucket {
    NotFound404,
    EmptyList200,
}

/// Emulates InfluxDB 2's `/api/v2/orgs` and `/api/v2/buckets` for org `home`, with the
/// bucket's expire rule in `bucket` (`None`: no bucket yet). Wrong tokens get 401.
fn influxdb2(bucket: Arc<Mutex<Option<u64>>>, missing: MissingBucket) -> impl Fn(&Seen) -> Reply {
    move |seen| {
        if seen.headers.get("authorization").map(String::as_str)
            != Some(format!("Token {TOKEN}").as_str())
        {
            return Reply::new(
                401,
                r#"{"code":"unauthorized","message":"unauthorized access"}"#,
            );
        }
        match (seen.method.as_str(), seen.path.as_str()) {
            ("GET", "/api/v2/orgs") => {
                let orgs = if seen.query.get("org").map(String::as_str) == Some("home") {
                    json!([{"id": ORG_ID, "name": "home"}])
                } else {
                    json!([])
                };
                Reply::new(200, json!({ "orgs": orgs }).to_string())
            }
            ("GET", "/api/v2/buckets") => {
                assert_eq!(seen.query.get("orgID").map(String::as_str), Some(ORG_ID));
                let name = seen.query.get("name").cloned().unwrap_or_default();
                match *bucket.lock().unwrap() {
                    Some(every) => Reply::new(
                        200,
                        json!({"buckets": [{
                            "id": "b0b0b0b0b0b0b0b0", "orgID": ORG_ID, "name": name, "type": "user",
                            "retentionRules": [{"type": "expire", "everySeconds": every,
                                                "shardGroupDurationSeconds": 86400}]
                        }]})
                        .to_string(),
                    ),
                    None => match missing {
                        MissingBucket::NotFound404 => Reply::new(
                            404,
                            json!({"code": "not found", "message": format!("bucket \"{name}\" not found")})
                                .to_string(),
                        ),
                        MissingBucket::EmptyList200 => Reply::new(200, r#"{"buckets":[]}"#),
                    },
                }
            }
            ("POST", "/api/v2/buckets") => {
                let request = seen.json();
                let every = request["retentionRules"][0]["everySeconds"]
                    .as_u64()
                    .unwrap_or(0);
                *bucket.lock().unwrap() = Some(every);
                Reply::new(
                    201,
                    json!({"id": "b0b0b0b0b0b0b0b0", "name": request["name"]}).to_string(),
                )
            }
            _ => Reply::new(404, r#"{"code":"not found","message":"path not found"}"#),
        }
    }
}

#[tokio::test]
async fn stub_v2_missing_bucket_is_created_with_365_days() {
    for missing in [MissingBucket::NotFound404, MissingBucket::EmptyList200] {
        let bucket = Arc::new(Mutex::new(None));
        let stub = Stub::start(influxdb2(bucket.clone(), missing)).await;
        let writer = writer(&v2_config(stub.url.clone()));

        assert_eq!(
            writer.ensure_retention().await,
            RetentionOutcome::Created,
            "{missing:?}"
        );

        let seen = stub.seen();
        let create = seen
            .iter()
            .find(|s| s.method == "POST" && s.path == "/api/v2/buckets")
            .unwrap_or_else(|| panic!("no bucket was created: {seen:?}"));
        let body = create.json();
        assert_eq!(body["orgID"], ORG_ID);
        assert_eq!(body["name"], "node_vitals");
        assert_eq!(
            body["retentionRules"],
            json!([{"type": "expire", "everySeconds": 31_536_000}])
        );
        assert_eq!(RETENTION_SECONDS, 31_536_000);
        assert_eq!(
            seen.iter()
                .find(|s| s.path == "/api/v2/orgs")
                .unwrap()
                .query["org"],
            "home"
        );

        // The next start-up finds it.
        assert_eq!(writer.ensure_retention().await, RetentionOutcome::AlreadyOk);
    }
}

#[tokio::test]
async fn stub_v2_bucket_with_30_days_differs_and_is_left_alone() {
    let bucket = Arc::new(Mutex::new(Some(30 * 86_400)));
    let stub = Stub::start(influxdb2(bucket.clone(), MissingBucket::NotFound404)).await;

    let outcome = writer(&v2_config(stub.url.clone()))
        .ensure_retention()
        .await;

    assert_eq!(
        outcome,
        RetentionOutcome::Differs {
            found: "30days".to_owned()
        }
    );
    assert!(
        stub.seen().iter().all(|s| s.method == "GET"),
        "nothing changed"
    );
    assert_eq!(*bucket.lock().unwrap(), Some(30 * 86_400));
}

#[tokio::test]
async fn stub_v2_infinite_bucket_differs() {
    let stub = Stub::start(influxdb2(
        Arc::new(Mutex::new(Some(0))),
        MissingBucket::NotFound404,
    ))
    .await;
    let outcome = writer(&v2_config(stub.url.clone()))
        .ensure_retention()
        .await;
    assert_eq!(
        outcome,
        RetentionOutcome::Differs {
            found: "infinite".to_owned()
        }
    );
}

#[tokio::test]
async fn stub_v2_bad_token_or_unknown_org_is_unverified() {
    let stub = Stub::start(influxdb2(
        Arc::new(Mutex::new(None)),
        MissingBucket::NotFound404,
    ))
    .await;

    let bad_token = InfluxConfig {
        token: Some("wrong".to_owned()),
        ..v2_config(stub.url.clone())
    };
    match writer(&bad_token).ensure_retention().await {
        RetentionOutcome::Unverified { reason } => {
            assert!(reason.contains("401"), "{reason}");
            assert!(!reason.contains("wrong"), "no token in reasons: {reason}");
        }
        other => panic!("expected Unverified, got {other:?}"),
    }

    let unknown_org = InfluxConfig {
        org: Some("elsewhere".to_owned()),
        ..v2_config(stub.url.clone())
    };
    match writer(&unknown_org).ensure_retention().await {
        RetentionOutcome::Unverified { reason } => {
            assert!(reason.contains("elsewhere"), "{reason}")
        }
        other => panic!("expected Unverified, got {other:?}"),
    }
    assert!(
        stub.seen().iter().all(|s| s.method == "GET"),
        "no bucket is created without a known org"
    );
}

#[tokio::test]
async fn stub_v2_write_sends_plain_lines_by_default() {
    let stub = Stub::start(|_| Reply::new(204, "")).await;
    let lines = cpu_lines("pi-s", 2);

    writer(&v2_config(stub.url.clone()))
        .write(lines.as_bytes())
        .await
        .unwrap();

    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].headers.get("content-encoding"), None);
    assert_eq!(seen[0].body, lines.as_bytes());
}

#[tokio::test]
async fn stub_v2_write_sends_gzip_token_and_query() {
    let stub = Stub::start(|_| Reply::new(204, "")).await;
    let lines = cpu_lines("pi-s", 2);

    writer(&InfluxConfig {
        content_encoding: ContentEncoding::Gzip,
        ..v2_config(stub.url.clone())
    })
    .write(lines.as_bytes())
    .await
    .unwrap();

    let seen = stub.seen();
    assert_eq!(seen.len(), 1);
    let write = &seen[0];
    assert_eq!(
        (write.method.as_str(), write.path.as_str()),
        ("POST", "/api/v2/write")
    );
    assert_eq!(write.query["org"], "home");
    assert_eq!(write.query["bucket"], "node_vitals");
    assert_eq!(write.query["precision"], "ns");
    assert_eq!(write.headers["authorization"], format!("Token {TOKEN}"));
    assert_eq!(write.headers["content-encoding"], "gzip");
    let mut unpacked = String::new();
    flate2::read::GzDecoder::new(&write.body[..])
        .read_to_string(&mut unpacked)
        .unwrap();
    assert_eq!(unpacked, lines);
}

#[tokio::test]
async fn stub_v2_write_answers_are_classified() {
    let stub = Stub::start(|seen| {
        // The test picks the answer through the bucket name.
        match seen.query.get("bucket").map(String::as_str) {
            Some("busy") => Reply {
                headers: vec![("Retry-After", "7".to_owned())],
                ..Reply::new(503, r#"{"code":"unavailable","message":"busy"}"#)
            },
            Some("limited") => Reply {
                headers: vec![("Retry-After", "30".to_owned())],
                ..Reply::new(429, r#"{"code":"too many requests"}"#)
            },
            Some("large") => Reply::new(413, r#"{"code":"request too large"}"#),
            Some("partial") => Reply::new(
                422,
                r#"{"code":"unprocessable entity","message":"partial write"}"#,
            ),
            Some("bad") => Reply::new(400, r#"{"code":"invalid","message":"unable to parse"}"#),
            Some("token") => Reply::new(401, r#"{"code":"unauthorized"}"#),
            Some("gone") => Reply::new(404, r#"{"code":"not found","message":"bucket not found"}"#),
            _ => Reply::new(500, "internal error"),
        }
    })
    .await;
    let write_to = |bucket: &str| {
        let writer = writer(&InfluxConfig {
            bucket: bucket.to_owned(),
            ..v2_config(stub.url.clone())
        });
        async move { writer.write(b"m v=1 1").await.unwrap_err() }
    };

    let busy = write_to("busy").await;
    assert!(
        matches!(
            busy,
            WriteError::Transient {
                status: Some(503),
                ..
            }
        ),
        "{busy:?}"
    );
    assert_eq!(busy.retry_after(), Some(Duration::from_secs(7)));
    assert!(busy.is_retriable());
    let limited = write_to("limited").await;
    assert_eq!(limited.retry_after(), Some(Duration::from_secs(30)));
    assert!(matches!(write_to("large").await, WriteError::TooLarge));
    assert!(matches!(
        write_to("partial").await,
        WriteError::PartiallyWritten { status: 422, .. }
    ));
    assert!(matches!(
        write_to("bad").await,
        WriteError::Malformed { status: 400, .. }
    ));
    assert!(matches!(
        write_to("token").await,
        WriteError::Refused { status: 401, .. }
    ));
    assert!(matches!(
        write_to("gone").await,
        WriteError::Refused { status: 404, .. }
    ));
    let server_error = write_to("other").await;
    assert!(
        matches!(
            server_error,
            WriteError::Transient {
                status: Some(500),
                retry_after: None,
                ..
            }
        ),
        "{server_error:?}"
    );
}

#[tokio::test]
async fn no_answer_is_transient() {
    let stub = Stub::start(|_| Reply {
        delay: Duration::from_secs(5),
        ..Reply::new(204, "")
    })
    .await;
    let slow = InfluxConfig {
        timeout: "200ms".to_owned(),
        ..v2_config(stub.url.clone())
    };
    let error = writer(&slow).write(b"m v=1 1").await.unwrap_err();
    match &error {
        WriteError::Transient {
            status: None,
            detail,
            ..
        } => {
            assert!(detail.contains("timed out"), "{detail}")
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert!(error.is_retriable());

    let nobody = writer(&v1_config(format!("http://127.0.0.1:{}", free_port())));
    let error = nobody.write(b"m v=1 1").await.unwrap_err();
    assert!(
        matches!(&error, WriteError::Transient { status: None, detail, .. } if detail.contains("connect")),
        "{error:?}"
    );
    assert!(matches!(
        nobody.ensure_retention().await,
        RetentionOutcome::Unverified { .. }
    ));
}

#[test]
fn describe_names_the_target_without_secrets() {
    let v1 = InfluxWriter::new(
        &InfluxConfig {
            username: Some("writer".to_owned()),
            password: Some("hunter2".to_owned()),
            ..v1_config("http://127.0.0.1:8086".to_owned())
        },
        http(),
    )
    .unwrap();
    assert_eq!(
        v1.describe(),
        "InfluxDB v1 http://127.0.0.1:8086 db=pivitals rp=pivitals_365d"
    );
    assert!(!format!("{v1:?}").contains("hunter2"));

    let v2 = writer(&v2_config("https://influx.example:8086/".to_owned()));
    assert_eq!(
        v2.describe(),
        "InfluxDB v2 https://influx.example:8086 org=home bucket=node_vitals"
    );
    assert!(!format!("{v2:?}").contains(TOKEN));

    let none = InfluxWriter::new(&InfluxConfig::default(), http()).unwrap_err();
    assert!(none.to_string().contains("PIVITALS_INFLUX__API"), "{none}");
}
