//! Registration, pushes and the node views of the HTTP API, on a primary running in-process
//! (testkit's harness) with the embedded archive as storage: what a push stores, how a goodbye
//! and a restart show, what health and metrics say, and which connections are kept open.

use std::time::Duration;

use pivitals_common::RegisterReply;
use pivitals_testkit::harness::{ENROLL, InProcessPrimary as Primary, metric};
use pivitals_testkit::samples::{now_ms, push_body, register_request, sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

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

    let lines = primary.wait_for_vitals(4).await;
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
    let primary = Primary::start_in(dir, &[]).await;
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
async fn health_and_metrics_describe_the_pipeline() {
    let primary = Primary::start().await;
    let token = primary.register("pi-05").await;
    primary
        .push(&token, &push_body(vec![sample(now_ms(), 1.0)]))
        .await;
    primary.wait_for_vitals(2).await;
    let (status, health) = primary
        .call(primary.http.get(format!("{}/healthz", primary.url)))
        .await;
    assert_eq!((status, &health["status"]), (StatusCode::OK, &json!("ok")));
    // The flusher counts a write once the archive append returned: wait for the count.
    let mut text = String::new();
    for _ in 0..100 {
        text = primary.metrics().await;
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
