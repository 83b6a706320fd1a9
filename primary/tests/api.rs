//! The HTTP API of a primary running in-process on a loopback port, with the embedded archive
//! as storage: registration, pushes, node views, and every hostile request answered with a
//! JSON 4xx that leaves nothing in storage.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pivitals_common::{
    CpuVitals, MemoryVitals, NodeInfo, RegisterReply, RegisterRequest, VitalsPayload, VitalsPush,
};
use pivitals_primary::config::PrimaryConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ENROLL: &str = "enroll-token-for-tests-0001";
const ADMIN: &str = "admin-token-for-tests-00001";

struct Primary {
    url: String,
    data_dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    _dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Primary {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir).await
    }

    async fn start_in(dir: tempfile::TempDir) -> Self {
        Self::start_with(dir, &[]).await
    }

    async fn start_with(dir: tempfile::TempDir, extra: &[(&str, &str)]) -> Self {
        pivitals_primary::install_crypto_provider();
        let data_dir = dir.path().to_owned();
        // Later pairs win; an empty value leaves the variable unset.
        let env: std::collections::BTreeMap<String, String> = [
            ("PIVITALS_DATA_DIR", data_dir.to_str().unwrap()),
            ("PIVITALS_ENROLL_TOKEN", ENROLL),
            ("PIVITALS_ADMIN_TOKEN", ADMIN),
            ("PIVITALS_SELF_MONITOR", "false"),
            ("PIVITALS_BATCH__FLUSH_INTERVAL", "100ms"),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let env = env.into_iter().filter(|(_, v)| !v.is_empty());
        let config = PrimaryConfig::load(None, env).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(pivitals_primary::run(listener, config, async {
            let _ = stopped.await;
        }));
        Self {
            url,
            data_dir,
            stop: Some(stop),
            task,
            _dir: dir,
            http: reqwest::Client::new(),
        }
    }

    async fn stop(mut self) -> tempfile::TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.task).await.unwrap().unwrap();
        self._dir
    }

    async fn register(&self, name: &str) -> String {
        let response = self
            .http
            .post(format!("{}/api/v1/register", self.url))
            .bearer_auth(ENROLL)
            .json(&register_request(name))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let reply: RegisterReply = response.json().await.unwrap();
        assert_eq!(reply.node_name, name);
        reply.node_token
    }

    async fn register_with(&self, enroll: &str, name: &str) -> (StatusCode, Value) {
        self.call(
            self.http
                .post(format!("{}/api/v1/register", self.url))
                .bearer_auth(enroll)
                .json(&register_request(name)),
        )
        .await
    }

    async fn push(&self, token: &str, body: &Value) -> (StatusCode, Value) {
        self.call(
            self.http
                .post(format!("{}/api/v1/vitals", self.url))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    async fn call(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"))
        };
        (status, body)
    }
}

fn register_request(name: &str) -> RegisterRequest {
    RegisterRequest {
        node_name: name.into(),
        info: NodeInfo {
            hostname: name.into(),
            board_model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            ..Default::default()
        },
        labels: [("stack".to_string(), "1".to_string())].into(),
        interval_seconds: 1,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn sample(ts: i64, cpu: f64) -> VitalsPayload {
    VitalsPayload {
        timestamp_ms: ts,
        cpu: Some(CpuVitals {
            usage_percent: cpu,
            frequency_mhz: None,
            cores: 4,
        }),
        memory: Some(MemoryVitals {
            total_bytes: 100,
            available_bytes: 60,
            used_bytes: 40,
        }),
        ..Default::default()
    }
}

fn push_body(samples: Vec<VitalsPayload>) -> Value {
    serde_json::to_value(VitalsPush { samples }).unwrap()
}

/// Every vitals line in the archive files, after the flusher wrote them (the `node_status`
/// points liveness writes on its own schedule are left out).
fn archived_lines(data_dir: &Path) -> Vec<String> {
    let mut lines = Vec::new();
    if let Ok(entries) = std::fs::read_dir(data_dir.join("archive")) {
        for entry in entries {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            lines.extend(
                text.lines()
                    .filter(|l| !l.starts_with("node_status,"))
                    .map(str::to_owned),
            );
        }
    }
    lines
}

/// The value of an unlabelled metric in Prometheus text.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}

async fn wait_for_lines(data_dir: &Path, at_least: usize) -> Vec<String> {
    for _ in 0..100 {
        let lines = archived_lines(data_dir);
        if lines.len() >= at_least {
            return lines;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    archived_lines(data_dir)
}

#[tokio::test]
async fn registered_node_pushes_and_is_listed_up_with_its_latest_sample() {
    let primary = Primary::start().await;
    let token = primary.register("pi-01").await;
    let ts = now_ms();
    let (status, body) = primary
        .push(
            &token,
            &push_body(vec![sample(ts - 1000, 10.0), sample(ts, 20.0)]),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"accepted": 2, "points": 4}));

    let (status, nodes) = primary
        .call(primary.http.get(format!("{}/api/v1/nodes", primary.url)))
        .await;
    assert_eq!(status, StatusCode::OK);
    let node = &nodes[0];
    assert_eq!(node["name"], "pi-01");
    assert_eq!(node["status"], "up");
    assert_eq!(node["labels"], json!({"stack": "1"}));
    assert_eq!(
        node["info"]["board_model"],
        "Raspberry Pi 4 Model B Rev 1.4"
    );
    assert_eq!(node["latest"]["timestamp_ms"], ts);
    assert_eq!(node["latest"]["cpu"]["usage_percent"], 20.0);
    assert!(node["last_seen"].as_str().unwrap().ends_with('Z'));

    let lines = wait_for_lines(&primary.data_dir, 4).await;
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("node=pi-01") && l.contains("stack=1"))
    );
    assert!(lines.contains(&format!(
        "cpu,node=pi-01,stack=1 usage_percent=20,cores=4i {}",
        ts * 1_000_000
    )));

    let (status, one) = primary
        .call(
            primary
                .http
                .get(format!("{}/api/v1/nodes/pi-01", primary.url)),
        )
        .await;
    assert_eq!((status, &one["name"]), (StatusCode::OK, &json!("pi-01")));
    primary.stop().await;
}

/// Sends one raw HTTP/1.1 request asking to keep the connection, reads the answer, and says
/// whether the primary then closed the connection (true) or kept it open.
async fn closes_after(url: &str, request: String) -> (String, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(url.trim_start_matches("http://"))
        .await
        .unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_millis(500), stream.read(&mut chunk)).await {
            Ok(Ok(0)) => return (String::from_utf8_lossy(&answer).into_owned(), true),
            Ok(Ok(n)) => answer.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("reading the answer: {e}"),
            // Nothing more within 0.5 s after the answer: the connection is kept open.
            Err(_) => return (String::from_utf8_lossy(&answer).into_owned(), false),
        }
    }
}

fn raw_post(path: &str, token: &str, body: &Value) -> String {
    let body = body.to_string();
    format!(
        "POST {path} HTTP/1.1\r\nhost: pivitals\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn nodes_pushing_rarely_are_told_to_close_the_connection_and_frequent_ones_keep_it() {
    let primary = Primary::start().await;
    let mut rare = register_request("pi-rare");
    rare.interval_seconds = 60;
    let body = serde_json::to_value(&rare).unwrap();
    let (answer, closed) =
        closes_after(&primary.url, raw_post("/api/v1/register", ENROLL, &body)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(
        closed,
        "a node pushing every 60 s does not keep its connection"
    );
    let reply: RegisterReply =
        serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();

    let push = push_body(vec![sample(now_ms(), 3.0)]);
    let (answer, closed) = closes_after(
        &primary.url,
        raw_post("/api/v1/vitals", &reply.node_token, &push),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(closed, "{answer}");

    let frequent = primary.register("pi-frequent").await;
    let (answer, closed) =
        closes_after(&primary.url, raw_post("/api/v1/vitals", &frequent, &push)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        !answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(!closed, "a node pushing every second keeps its connection");
    primary.stop().await;
}

#[tokio::test]
async fn goodbye_marks_the_node_stopped_and_a_new_push_brings_it_back() {
    let primary = Primary::start().await;
    let token = primary.register("pi-02").await;
    let goodbye = primary.http.post(format!("{}/api/v1/goodbye", primary.url));
    let (status, _) = primary
        .call(
            goodbye
                .bearer_auth(&token)
                .json(&json!({"reason": "SIGTERM"})),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let node_url = format!("{}/api/v1/nodes/pi-02", primary.url);
    let (_, node) = primary.call(primary.http.get(&node_url)).await;
    assert_eq!(node["status"], "stopped");
    let (status, _) = primary
        .push(&token, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, node) = primary.call(primary.http.get(&node_url)).await;
    assert_eq!(node["status"], "up");
    primary.stop().await;
}

#[tokio::test]
async fn registry_and_tokens_survive_a_restart() {
    let primary = Primary::start().await;
    let token = primary.register("pi-03").await;
    let dir = primary.stop().await;
    let primary = Primary::start_in(dir).await;
    let (status, body) = primary
        .push(&token, &push_body(vec![sample(now_ms(), 5.0)]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, nodes) = primary
        .call(primary.http.get(format!("{}/api/v1/nodes", primary.url)))
        .await;
    assert_eq!(nodes.as_array().unwrap().len(), 1);
    assert_eq!(nodes[0]["labels"], json!({"stack": "1"}));
    primary.stop().await;
}

#[tokio::test]
async fn admin_deletes_a_node_and_its_token_stops_working() {
    let primary = Primary::start().await;
    let token = primary.register("pi-04").await;
    let url = format!("{}/api/v1/nodes/pi-04", primary.url);
    let (status, body) = primary.call(primary.http.delete(&url)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = primary
        .call(primary.http.delete(&url).bearer_auth(&token))
        .await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "a node token is no admin token: {body}"
    );
    let (status, _) = primary
        .call(primary.http.delete(&url).bearer_auth(ADMIN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = primary
        .push(&token, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = primary.call(primary.http.get(&url)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().unwrap().contains("pi-04"));
    primary.stop().await;
}

#[tokio::test]
async fn hostile_requests_get_json_errors_and_store_nothing() {
    let primary = Primary::start().await;
    let token = primary.register("victim").await;
    let register = || {
        primary
            .http
            .post(format!("{}/api/v1/register", primary.url))
    };
    let vitals = || primary.http.post(format!("{}/api/v1/vitals", primary.url));
    let good = push_body(vec![sample(now_ms(), 1.0)]);
    let with_name = |name: &str| {
        let mut r = serde_json::to_value(register_request("x")).unwrap();
        r["node_name"] = json!(name);
        r
    };
    let bad_label = {
        let mut r = serde_json::to_value(register_request("ok")).unwrap();
        r["labels"] = json!({"role": "a\nb"});
        r
    };
    let future = push_body(vec![sample(now_ms() + 3_600_000, 1.0)]);
    let ancient = push_body(vec![sample(1_000, 1.0)]);
    let huge = "x".repeat(1024 * 1024 + 1);
    // Nesting where a sample should be: refused at the first wrong type, without recursing.
    let deep = format!("{{\"samples\": {}{}}}", "[".repeat(5000), "]".repeat(5000));

    let cases: Vec<(&str, reqwest::RequestBuilder, StatusCode)> = vec![
        (
            "push without token",
            vitals().json(&good),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "push with wrong token",
            vitals().bearer_auth("nope").json(&good),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "push with enroll token",
            vitals().bearer_auth(ENROLL).json(&good),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "register without token",
            register().json(&register_request("x")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "register with node token",
            register().bearer_auth(&token).json(&register_request("x")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "newline in node name",
            register().bearer_auth(ENROLL).json(&with_name("a\nb")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "comma in node name",
            register().bearer_auth(ENROLL).json(&with_name("a,b=c")),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "injection in label",
            register().bearer_auth(ENROLL).json(&bad_label),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "malformed JSON",
            vitals()
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body("{\"samples\": ["),
            StatusCode::BAD_REQUEST,
        ),
        (
            "deep JSON",
            vitals()
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(deep),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "wrong types",
            vitals()
                .bearer_auth(&token)
                .json(&json!({"samples": [{"timestamp_ms": "soon"}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "NaN as a string",
            vitals()
                .bearer_auth(&token)
                .json(&json!({"samples": [{"timestamp_ms": 1, "cpu": {"usage_percent": "NaN"}}]})),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "future timestamp",
            vitals().bearer_auth(&token).json(&future),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "timestamp beyond retention",
            vitals().bearer_auth(&token).json(&ancient),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            "oversized body",
            vitals()
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(huge),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "not JSON content type",
            vitals().bearer_auth(&token).body("{}"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "unknown endpoint",
            primary.http.get(format!("{}/api/v1/nope", primary.url)),
            StatusCode::NOT_FOUND,
        ),
        (
            "wrong method",
            primary.http.get(format!("{}/api/v1/vitals", primary.url)),
            StatusCode::METHOD_NOT_ALLOWED,
        ),
    ];
    for (name, request, expected) in cases {
        let (status, body) = primary.call(request).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{name}: error body {body}"
        );
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        archived_lines(&primary.data_dir).is_empty(),
        "hostile requests stored points"
    );

    // The legitimate node still lands its points.
    let (status, _) = primary.push(&token, &good).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(wait_for_lines(&primary.data_dir, 2).await.len(), 2);
    primary.stop().await;
}

#[tokio::test]
async fn health_and_metrics_describe_the_pipeline() {
    let primary = Primary::start().await;
    let token = primary.register("pi-05").await;
    primary
        .push(&token, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    wait_for_lines(&primary.data_dir, 2).await;
    let (status, health) = primary
        .call(primary.http.get(format!("{}/healthz", primary.url)))
        .await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
    // The flusher counts a write once the archive append returned: wait for the count.
    let mut text = String::new();
    for _ in 0..100 {
        text = primary
            .http
            .get(format!("{}/metrics", primary.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metric(&text, "pivitals_points_written_total") >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for expected in [
        "pivitals_pushes_total{result=\"accepted\"} 1",
        "pivitals_nodes{status=\"up\"} 1",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
    // Two vitals points, and possibly the node's first `node_status` point.
    let received = metric(&text, "pivitals_points_received_total");
    assert!((2..=3).contains(&received), "{text}");
    assert!(
        metric(&text, "pivitals_points_written_total") >= 2,
        "{text}"
    );
    primary.stop().await;
}

#[tokio::test]
async fn a_full_spool_answers_503_with_retry_after_and_keeps_what_it_holds() {
    // InfluxDB is configured but unreachable, so nothing leaves the 1 MiB spool.
    let closed_port = pivitals_testkit::free_port();
    let influx_url = format!("http://127.0.0.1:{closed_port}");
    let primary = Primary::start_with(
        tempfile::tempdir().unwrap(),
        &[
            ("PIVITALS_INFLUX__API", "v1"),
            ("PIVITALS_INFLUX__URL", &influx_url),
            ("PIVITALS_SPOOL__MAX_BYTES", "1048576"),
            ("PIVITALS_LIMITS__PUSH_BURST", "100000"),
        ],
    )
    .await;
    let token = primary.register("pi-full").await;
    let mut accepted = 0;
    let (status, body, retry_after) = loop {
        let samples: Vec<_> = (0..200).map(|i| sample(now_ms() - 1000 + i, 1.0)).collect();
        let response = primary
            .http
            .post(format!("{}/api/v1/vitals", primary.url))
            .bearer_auth(&token)
            .json(&push_body(samples))
            .send()
            .await
            .unwrap();
        if response.status() != StatusCode::OK {
            let status = response.status();
            let retry_after = response.headers().get("retry-after").cloned();
            let body: Value = response.json().await.unwrap();
            break (status, body, retry_after);
        }
        accepted += 1;
        assert!(accepted < 1000, "the spool never filled");
    };
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("spool is full"),
        "{body}"
    );
    assert!(retry_after.is_some(), "no Retry-After");
    let metrics = primary
        .http
        .get(format!("{}/metrics", primary.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let spooled = 400 * accepted;
    // The pushes' points, and possibly the node's first `node_status` point.
    let held = metric(&metrics, "pivitals_spool_points");
    assert!(
        (spooled..=spooled + 1).contains(&held),
        "{held} spooled, {spooled} pushed"
    );
    assert!(
        metrics.contains("pivitals_write_errors_total{status=\"network\"}"),
        "{metrics}"
    );
    primary.stop().await;
}

#[tokio::test]
async fn pushes_beyond_the_burst_answer_429_with_retry_after_and_other_nodes_go_on() {
    let primary = Primary::start_with(
        tempfile::tempdir().unwrap(),
        &[
            ("PIVITALS_LIMITS__PUSH_BURST", "3"),
            ("PIVITALS_LIMITS__PUSH_REFILL", "1h"),
        ],
    )
    .await;
    let noisy = primary.register("pi-noisy").await;
    let quiet = primary.register("pi-quiet").await;
    for _ in 0..3 {
        let (status, body) = primary
            .push(&noisy, &push_body(vec![sample(now_ms(), 1.0)]))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let response = primary
        .http
        .post(format!("{}/api/v1/vitals", primary.url))
        .bearer_auth(&noisy)
        .json(&push_body(vec![sample(now_ms(), 1.0)]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3500..=3600).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("pi-noisy"),
        "{body}"
    );
    // Requests are counted, not samples: the other node pushes a full batch.
    let (status, body) = primary
        .push(
            &quiet,
            &push_body((0..500).map(|i| sample(now_ms() - i, 1.0)).collect()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["accepted"], 500);
    let metrics = primary
        .http
        .get(format!("{}/metrics", primary.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("pivitals_pushes_total{result=\"rate_limited\"} 1"),
        "{metrics}"
    );
    primary.stop().await;
}

#[tokio::test]
async fn a_taken_node_name_answers_409_until_the_admin_deletes_the_node() {
    let primary = Primary::start().await;
    let first = primary.register("pi-05").await;
    let (status, body) = primary.register_with(ENROLL, "pi-05").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let message = body["error"].as_str().unwrap();
    assert!(
        message.contains("already registered") && message.contains("DELETE"),
        "{message}"
    );
    let (status, body) = primary
        .push(&first, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first agent keeps its name: {body}"
    );
    let url = format!("{}/api/v1/nodes/pi-05", primary.url);
    let (status, _) = primary
        .call(primary.http.delete(&url).bearer_auth(ADMIN))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let second = primary.register("pi-05").await;
    let (status, _) = primary
        .push(&first, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = primary
        .push(&second, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    primary.stop().await;
}

#[tokio::test]
async fn caps_on_nodes_disks_interfaces_and_sensors_say_which() {
    let primary = Primary::start_with(
        tempfile::tempdir().unwrap(),
        &[
            ("PIVITALS_LIMITS__MAX_NODES", "2"),
            ("PIVITALS_LIMITS__MAX_DISKS", "2"),
            ("PIVITALS_LIMITS__MAX_INTERFACES", "1"),
            ("PIVITALS_LIMITS__MAX_SENSORS", "1"),
        ],
    )
    .await;
    let token = primary.register("pi-cap-1").await;
    primary.register("pi-cap-2").await;
    let response = primary
        .http
        .post(format!("{}/api/v1/register", primary.url))
        .bearer_auth(ENROLL)
        .json(&register_request("pi-cap-3"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("PIVITALS_LIMITS__MAX_NODES"),
        "{body}"
    );
    let mut disks = sample(now_ms(), 1.0);
    disks.disks = vec![Default::default(); 3];
    let mut nets = sample(now_ms(), 1.0);
    nets.networks = vec![Default::default(); 2];
    let mut temps = sample(now_ms(), 1.0);
    temps.temperatures = vec![Default::default(); 2];
    for (bad, expected) in [
        (disks, "sample 1: disks: at most 2 per sample, got 3"),
        (nets, "sample 1: networks: at most 1 per sample, got 2"),
        (temps, "sample 1: temperatures: at most 1 per sample, got 2"),
    ] {
        let (status, body) = primary
            .push(&token, &push_body(vec![sample(now_ms(), 1.0), bad]))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"], expected);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(archived_lines(&primary.data_dir).is_empty());
    primary.stop().await;
}

#[tokio::test]
async fn the_admin_rotates_a_stored_enroll_token_and_nodes_keep_pushing() {
    use std::os::unix::fs::PermissionsExt;
    let primary = Primary::start_with(
        tempfile::tempdir().unwrap(),
        &[("PIVITALS_ENROLL_TOKEN", "")],
    )
    .await;
    let file = primary.data_dir.join("enroll-token");
    let mut old = String::new();
    for _ in 0..100 {
        old = std::fs::read_to_string(&file).unwrap_or_default();
        if !old.trim().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let old = old.trim().to_owned();
    let (status, body) = primary.register_with(&old, "pi-rot").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let node_token = body["node_token"].as_str().unwrap().to_owned();
    let rotate = || {
        primary
            .http
            .post(format!("{}/api/v1/admin/enroll-token/rotate", primary.url))
    };
    for token in [&node_token, &old] {
        let (status, body) = primary.call(rotate().bearer_auth(token)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    let (status, body) = primary.call(rotate()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = primary.call(rotate().bearer_auth(ADMIN)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let new = body["enroll_token"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), new);
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let (status, body) = primary.register_with(&old, "pi-late").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = primary.register_with(&new, "pi-late").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = primary
        .push(&node_token, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "registered nodes keep working: {body}"
    );
    // The new token survives a restart.
    let dir = primary.stop().await;
    let primary = Primary::start_with(dir, &[("PIVITALS_ENROLL_TOKEN", "")]).await;
    let (status, body) = primary.register_with(&new, "pi-after").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    primary.stop().await;
}

#[tokio::test]
async fn rotating_a_configured_enroll_token_answers_409() {
    let primary = Primary::start().await;
    let (status, body) = primary
        .call(
            primary
                .http
                .post(format!("{}/api/v1/admin/enroll-token/rotate", primary.url))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("PIVITALS_ENROLL_TOKEN"),
        "{body}"
    );
    let (status, body) = primary.register_with(ENROLL, "pi-still").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    primary.stop().await;
}

#[test]
fn the_token_rotate_command_replaces_the_stored_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("enroll-token");
    std::fs::write(&file, "old-token-0123456789\n").unwrap();
    let command = || {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_pivitals-primary"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("PIVITALS_")) {
            command.env_remove(key);
        }
        command
            .args(["token", "rotate"])
            .env("PIVITALS_DATA_DIR", dir.path());
        command
    };
    let output = command().output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let stored = std::fs::read_to_string(&file).unwrap();
    let stored = stored.trim();
    assert_eq!(stored.len(), 64);
    assert!(String::from_utf8_lossy(&output.stdout).contains(stored));
    let output = command()
        .env("PIVITALS_ENROLL_TOKEN", "configured-token-0123456789")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("PIVITALS_ENROLL_TOKEN"),
        "{output:?}"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), stored);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_is_answered_408_and_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = Primary::start_with(
        tempfile::tempdir().unwrap(),
        &[("PIVITALS_LIMITS__REQUEST_TIMEOUT", "300ms")],
    )
    .await;
    let token = primary.register("pi-slow").await;
    let address = primary.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /api/v1/vitals HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"samples\": ["
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer))
        .await
        .expect("the primary kept the connection open")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));
    primary.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = Primary::start_with(
        tempfile::tempdir().unwrap(),
        &[("PIVITALS_LIMITS__HEADER_TIMEOUT", "300ms")],
    )
    .await;
    let address = primary.url.trim_start_matches("http://").to_owned();
    // Trickles a header line, then stops; and a connection that sends nothing at all.
    let mut trickling = tokio::net::TcpStream::connect(&address).await.unwrap();
    let mut silent = tokio::net::TcpStream::connect(&address).await.unwrap();
    let started = std::time::Instant::now();
    for chunk in [
        "POST /api/v1/vitals HTTP/1.1\r\n",
        "Host: pi\r\n",
        "X-Slow: 1",
    ] {
        trickling.write_all(chunk.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for stream in [&mut trickling, &mut silent] {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("the primary kept a connection without headers open");
        // Closed: an end of stream, or a reset.
        assert!(read.is_err() || !String::from_utf8_lossy(&rest).contains("200 OK"));
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // Meanwhile the primary serves others.
    let (status, _) = primary
        .call(primary.http.get(format!("{}/healthz", primary.url)))
        .await;
    assert_eq!(status, StatusCode::OK);
    primary.stop().await;
}
