//! The admin side of the HTTP API, on a primary running in-process (testkit's harness):
//! deleting nodes, taken node names, and rotating the enrollment token (by API and by the
//! `token rotate` command).

use std::path::Path;
use std::time::Duration;

use pivitals_testkit::harness::{self, ADMIN, ENROLL, InProcessPrimary as Primary};
use pivitals_testkit::samples::{now_ms, push_body, sample};
use reqwest::StatusCode;

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
async fn the_admin_rotates_a_stored_enroll_token_and_nodes_keep_pushing() {
    use std::os::unix::fs::PermissionsExt;
    let primary = Primary::start_with(&[("PIVITALS_ENROLL_TOKEN", "")]).await;
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
    let primary = Primary::start_in(dir, &[("PIVITALS_ENROLL_TOKEN", "")]).await;
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
        let mut command = harness::command(Path::new(env!("CARGO_BIN_EXE_pivitals-primary")));
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
