//! The HTTP API's limits and refusals, on a primary running in-process (testkit's harness):
//! every hostile request answered with a JSON 4xx that stores nothing, a full spool (503),
//! rate limits (429), caps on nodes and per-sample lists, and slow clients cut off.

use std::time::Duration;

use pivitals_testkit::harness::{ENROLL, InProcessPrimary as Primary, metric};
use pivitals_testkit::samples::{now_ms, push_body, register_request, sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

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
        primary.archived_vitals().is_empty(),
        "hostile requests stored points"
    );

    // The legitimate node still lands its points.
    let (status, _) = primary.push(&token, &good).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(primary.wait_for_vitals(2).await.len(), 2);
    primary.stop().await;
}

#[tokio::test]
async fn a_full_spool_answers_503_with_retry_after_and_keeps_what_it_holds() {
    // InfluxDB is configured but unreachable, so nothing leaves the 1 MiB spool.
    let closed_port = pivitals_testkit::free_port();
    let influx_url = format!("http://127.0.0.1:{closed_port}");
    let primary = Primary::start_with(&[
        ("PIVITALS_INFLUX__API", "v1"),
        ("PIVITALS_INFLUX__URL", &influx_url),
        ("PIVITALS_SPOOL__MAX_BYTES", "1048576"),
        ("PIVITALS_LIMITS__PUSH_BURST", "100000"),
    ])
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
    let metrics = primary.metrics().await;
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
    let primary = Primary::start_with(&[
        ("PIVITALS_LIMITS__PUSH_BURST", "3"),
        ("PIVITALS_LIMITS__PUSH_REFILL", "1h"),
    ])
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
    let metrics = primary.metrics().await;
    assert!(
        metrics.contains("pivitals_pushes_total{result=\"rate_limited\"} 1"),
        "{metrics}"
    );
    primary.stop().await;
}

#[tokio::test]
async fn caps_on_nodes_disks_interfaces_and_sensors_say_which() {
    let primary = Primary::start_with(&[
        ("PIVITALS_LIMITS__MAX_NODES", "2"),
        ("PIVITALS_LIMITS__MAX_DISKS", "2"),
        ("PIVITALS_LIMITS__MAX_INTERFACES", "1"),
        ("PIVITALS_LIMITS__MAX_SENSORS", "1"),
    ])
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
    assert!(primary.archived_vitals().is_empty());
    primary.stop().await;
}

#[tokio::test]
async fn a_client_that_never_finishes_its_body_is_answered_408_and_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = Primary::start_with(&[("PIVITALS_LIMITS__REQUEST_TIMEOUT", "300ms")]).await;
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
    let primary = Primary::start_with(&[("PIVITALS_LIMITS__HEADER_TIMEOUT", "300ms")]).await;
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
