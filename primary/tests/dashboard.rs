//! What the dashboard page is served and reads: its embedded files (router tests with
//! `oneshot`, no socket), and the JSON it polls (node list, history, settings) plus the
//! `node_status` points, on a primary running in-process (testkit's harness) with the archive
//! as storage.

use axum::body::Body;
use axum::http::{Request, StatusCode as Code, header};
use pivitals_testkit::harness::{InProcessPrimary, router_state};
use pivitals_testkit::samples::{now_ms, pi_sample, register_request};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tower::ServiceExt;

async fn get(app: axum::Router, path: &str) -> (Code, Option<String>, Vec<u8>) {
    let response = app
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (status, content_type, body.to_vec())
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn the_page_and_its_files_are_served_with_their_types_and_nothing_external() {
    let dir = tempfile::tempdir().unwrap();
    let app = pivitals_primary::app(router_state(dir.path(), &[]));

    let response = app
        .clone()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), Code::OK);
    let headers = response.headers();
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );

    let (_, _, page) = get(app.clone(), "/").await;
    let page = String::from_utf8(page).unwrap();
    assert!(page.starts_with("<!doctype html>"));
    assert!(
        page.contains("<meta name=\"viewport\""),
        "readable on a phone"
    );
    assert!(
        page.contains("aria-live=\"polite\""),
        "status changes are announced"
    );
    for (path, content_type) in [
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
        ("/assets/icon.png", "image/png"),
    ] {
        assert!(
            page.contains(&format!("\"{path}\"")),
            "the page loads {path}"
        );
        let (status, served_type, body) = get(app.clone(), path).await;
        assert_eq!(status, Code::OK, "{path}");
        assert_eq!(served_type.as_deref(), Some(content_type), "{path}");
        assert!(!body.is_empty());
    }
    // Nothing on the page may come from elsewhere: no URL with a scheme in any file.
    for path in ["/", "/assets/app.js", "/assets/app.css", "/assets/icon.png"] {
        let (_, _, body) = get(app.clone(), path).await;
        for needle in ["http://", "https://", "@import", "url("] {
            assert!(!contains(&body, needle), "{path} contains {needle}");
        }
    }
    let (_, _, script) = get(app.clone(), "/assets/app.js").await;
    let script = String::from_utf8(script).unwrap();
    for api in ["/api/v1/nodes", "/history", "/api/v1/dashboard", "'DELETE'"] {
        assert!(script.contains(api), "the script uses {api}");
    }
    assert!(
        script.contains("sessionStorage"),
        "the admin token stays in the tab"
    );

    let (status, content_type, body) = get(app.clone(), "/assets/nope.js").await;
    assert_eq!(status, Code::NOT_FOUND);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("nope.js"),
        "{body}"
    );
}

#[tokio::test]
async fn the_settings_name_the_grouping_label() {
    let dir = tempfile::tempdir().unwrap();
    let app = pivitals_primary::app(router_state(
        dir.path(),
        &[("PIVITALS_DASHBOARD__GROUP_BY", "rack")],
    ));
    let (status, content_type, body) = get(app, "/api/v1/dashboard").await;
    assert_eq!(status, Code::OK);
    assert_eq!(content_type.as_deref(), Some("application/json"));
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["group_by"], "rack");
    assert_eq!(body["refresh_seconds"], 1);
    assert_eq!(
        body["history"],
        json!({"step_seconds": 60, "window_seconds": 3600})
    );
}

/// A primary in-process (testkit's harness) with a registered node `name`.
async fn primary_with_node(
    name: &str,
    labels: &[(&str, &str)],
    interval_seconds: u64,
) -> (InProcessPrimary, String) {
    let primary = InProcessPrimary::start().await;
    let mut request = register_request(name);
    request.labels = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    request.interval_seconds = interval_seconds;
    let token = primary.register_as(&request).await;
    (primary, token)
}

#[tokio::test]
async fn the_node_list_and_history_carry_what_the_page_draws() {
    let (primary, token) =
        primary_with_node("pi-hist", &[("stack", "2"), ("role", "worker")], 1).await;
    // Thirty one-second samples ending now: one or two one-minute slots.
    let end = now_ms();
    let samples: Vec<_> = (0..30)
        .map(|i| pi_sample(end - (29 - i) * 1000, i as f64, 40.0 + i as f64 / 10.0))
        .collect();
    primary.push_ok(&token, samples.clone()).await;

    let (status, nodes) = primary.get("/api/v1/nodes").await;
    assert_eq!(status, StatusCode::OK);
    let node = &nodes[0];
    for field in ["name", "status", "last_seen", "labels", "info", "latest"] {
        assert!(!node[field].is_null(), "{field} missing from {node}");
    }
    assert_eq!(node["status"], "up");
    assert_eq!(node["labels"], json!({"stack": "2", "role": "worker"}));
    assert_eq!(node["info"]["cpu_cores"], 4);
    assert_eq!(node["latest"]["timestamp_ms"], end);
    assert_eq!(node["latest"]["disks"].as_array().unwrap().len(), 2);
    assert_eq!(node["latest"]["uptime_seconds"], 3 * 86_400 + 4 * 3600);

    let (status, history) = primary.get("/api/v1/nodes/pi-hist/history").await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["node"], "pi-hist");
    assert_eq!(history["step_seconds"], 60);
    assert_eq!(history["window_seconds"], 3600);
    assert_eq!(history["interval_seconds"], 1);
    let points = history["points"].as_array().unwrap();
    assert!((1..=2).contains(&points.len()), "{history}");
    let mut cpu_sum = 0.0;
    let mut count = 0;
    for (i, p) in points.iter().enumerate() {
        let ts = p["ts_ms"].as_i64().unwrap();
        assert_eq!(ts % 60_000, 0, "slots start on the minute: {p}");
        if i > 0 {
            assert_eq!(ts - points[i - 1]["ts_ms"].as_i64().unwrap(), 60_000);
        }
        assert_eq!(p["mem_percent"], 25.0, "{p}");
        assert_eq!(p["disk_percent"], 70.0, "the fullest disk: {p}");
        let temp = p["temp_celsius"].as_f64().unwrap();
        assert!((40.0..43.0).contains(&temp), "the hottest sensor: {p}");
        // Each slot holds the mean of its samples; weighting by the slot's sample count
        // gives back the mean of all thirty.
        let in_slot = samples
            .iter()
            .filter(|s| s.timestamp_ms.div_euclid(60_000) * 60_000 == ts)
            .count();
        cpu_sum += p["cpu_percent"].as_f64().unwrap() * in_slot as f64;
        count += in_slot;
    }
    assert_eq!(count, 30);
    assert!((cpu_sum / 30.0 - 14.5).abs() < 0.1, "{history}");

    // Polling for news: only the slots from `since_ms` on, the last one possibly still filling.
    let newest = points.last().unwrap()["ts_ms"].as_i64().unwrap();
    let (_, news) = primary
        .get(&format!("/api/v1/nodes/pi-hist/history?since_ms={newest}"))
        .await;
    assert_eq!(news["points"].as_array().unwrap().len(), 1, "{news}");

    for (path, expected) in [
        ("/api/v1/nodes/nobody/history", StatusCode::NOT_FOUND),
        (
            "/api/v1/nodes/pi-hist/history?since_ms=soon",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let (status, body) = primary.get(path).await;
        assert_eq!(status, expected, "{path}: {body}");
        assert!(
            body["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{body}"
        );
    }
    primary.stop().await;
}

#[tokio::test]
async fn status_changes_become_node_status_points_through_the_spool() {
    // A one-minute interval: the node stays up between the steps of the test.
    let (primary, token) = primary_with_node("pi-life", &[("stack", "3")], 60).await;
    primary
        .push_ok(&token, vec![pi_sample(now_ms(), 5.0, 45.0)])
        .await;
    // The first push is recorded as `up` once two checks agree.
    let lines = primary.wait_for("node_status", "status=\"up\"").await;
    assert_eq!(lines.len(), 1, "{lines:#?}");
    let line = &lines[0];
    assert!(
        line.starts_with("node_status,node=pi-life,stack=3 status=\"up\",up=1i "),
        "{line}"
    );
    let ts_ns: i64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((ts_ns / 1_000_000 - now_ms()).abs() < 10_000, "{line}");

    // A goodbye is recorded as `stopped`, with up=0.
    let response = primary
        .http
        .post(format!("{}/api/v1/goodbye", primary.url))
        .bearer_auth(&token)
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let lines = primary
        .wait_for("node_status", "status=\"stopped\",up=0i")
        .await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    // Coming back is a change too.
    primary
        .push_ok(&token, vec![pi_sample(now_ms(), 5.0, 45.0)])
        .await;
    let lines = primary
        .wait_for_lines("node_status", |lines| lines.len() >= 3)
        .await
        .unwrap_or_else(|lines| lines);
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert!(lines[2].contains("status=\"up\",up=1i"), "{lines:#?}");
    primary.stop().await;
}
