//! Actions through the HTTP API, on a primary running in-process (testkit's harness): the
//! admin queues actions by names, labels or all; agents long-poll for them and post results;
//! tokens, selectors and expiry.

use std::time::{Duration, Instant};

use pivitals_common::actions::{ActionRequest, ActionResult, ActionState};
use pivitals_testkit::harness::{ADMIN, InProcessPrimary as Primary};
use pivitals_testkit::samples::register_request;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A primary with pi-01 (`stack=1`) and pi-02 (`stack=2`); their node tokens.
async fn cluster(extra: &[(&str, &str)]) -> (Primary, String, String) {
    let primary = Primary::start_with(extra).await;
    let mut tokens = Vec::new();
    for (name, stack) in [("pi-01", "1"), ("pi-02", "2")] {
        let mut request = register_request(name);
        request.labels = [("stack".to_string(), stack.to_string())].into();
        tokens.push(primary.register_as(&request).await);
    }
    let second = tokens.pop().unwrap();
    (primary, tokens.pop().unwrap(), second)
}

async fn post_action(primary: &Primary, token: &str, body: Value) -> (StatusCode, Value) {
    let request = primary
        .http
        .post(format!("{}/api/v1/actions", primary.url))
        .bearer_auth(token)
        .json(&body);
    primary.call(request).await
}

/// Queues `body` with the admin token, asserts 202; the id and the targets.
async fn queue(primary: &Primary, body: Value) -> (String, Vec<String>) {
    let (status, reply) = post_action(primary, ADMIN, body).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{reply}");
    let targets = reply["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    (reply["id"].as_str().unwrap().to_owned(), targets)
}

async fn poll(primary: &Primary, token: &str, wait: &str) -> (StatusCode, Value) {
    let request = primary
        .http
        .get(format!("{}/api/v1/agent/actions?wait={wait}", primary.url))
        .bearer_auth(token);
    primary.call(request).await
}

async fn post_result(primary: &Primary, token: &str, result: &ActionResult) -> (StatusCode, Value) {
    let request = primary
        .http
        .post(format!(
            "{}/api/v1/agent/actions/{}",
            primary.url, result.id
        ))
        .bearer_auth(token)
        .json(result);
    primary.call(request).await
}

async fn show(primary: &Primary, id: &str) -> Value {
    let request = primary
        .http
        .get(format!("{}/api/v1/actions/{id}", primary.url))
        .bearer_auth(ADMIN);
    let (status, body) = primary.call(request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The state of `node` in action `id`.
async fn state_of(primary: &Primary, id: &str, node: &str) -> Value {
    let body = show(primary, id).await;
    body["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["node"] == node)
        .unwrap_or_else(|| panic!("{node} not in {body}"))
        .clone()
}

fn done(id: &str) -> ActionResult {
    ActionResult {
        id: id.into(),
        state: ActionState::Done,
        exit_code: Some(0),
        output: "hello from pi-01\n".into(),
        truncated: false,
        duration_ms: 12,
        message: None,
    }
}

#[tokio::test]
async fn actions_target_nodes_by_names_labels_and_all() {
    let (primary, _, _) = cluster(&[]).await;
    let (_, targets) = queue(
        &primary,
        json!({"action": "hello", "nodes": ["pi-02", "pi-01", "pi-02"]}),
    )
    .await;
    assert_eq!(targets, ["pi-01", "pi-02"]);
    let (_, targets) = queue(
        &primary,
        json!({"action": "reboot", "labels": {"stack": "2"}}),
    )
    .await;
    assert_eq!(targets, ["pi-02"]);
    let (id, targets) = queue(&primary, json!({"action": "ping", "all": true})).await;
    assert_eq!(targets, ["pi-01", "pi-02"]);
    let body = show(&primary, &id).await;
    assert_eq!(body["action"], "ping");
    for result in body["results"].as_array().unwrap() {
        assert_eq!(result["state"], "queued", "{body}");
        assert!(
            result["queued_at"].as_str().unwrap().ends_with('Z'),
            "{body}"
        );
        assert_eq!(result["sent_at"], Value::Null);
    }

    let request = primary
        .http
        .get(format!("{}/api/v1/actions?node=pi-01", primary.url))
        .bearer_auth(ADMIN);
    let (status, listed) = primary.call(request).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    let names: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ping", "hello"], "newest first, only pi-01's");
    primary.stop().await;
}

#[tokio::test]
async fn only_the_admin_token_starts_or_reads_actions() {
    let (primary, node_token, _) = cluster(&[]).await;
    let body = json!({"action": "hello", "all": true});
    let (status, reply) = post_action(&primary, "not-a-token-at-all", body.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    let (status, reply) = primary
        .call(
            primary
                .http
                .post(format!("{}/api/v1/actions", primary.url))
                .json(&body),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{reply}");
    let (status, reply) = post_action(&primary, &node_token, body.clone()).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "a node token is told apart: {reply}"
    );
    let (id, _) = queue(&primary, body).await;
    for path in [
        "/api/v1/actions".to_owned(),
        format!("/api/v1/actions/{id}"),
    ] {
        let url = format!("{}{path}", primary.url);
        let (status, _) = primary.call(primary.http.get(&url)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        let (status, _) = primary
            .call(primary.http.get(&url).bearer_auth(&node_token))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}");
    }
    let (status, _) = poll(&primary, ADMIN, "1s").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the agent side takes node tokens"
    );
    primary.stop().await;
}

#[tokio::test]
async fn bad_selectors_and_names_answer_422() {
    let (primary, _, _) = cluster(&[]).await;
    let cases = [
        (
            json!({"action": "hello", "nodes": ["pi-01", "pi-09", "pi-77"]}),
            "pi-09, pi-77",
        ),
        (
            json!({"action": "hello", "labels": {"stack": "9"}}),
            "no node",
        ),
        (json!({"action": "hello", "nodes": []}), "no node"),
        (json!({"action": "hello"}), "exactly one"),
        (
            json!({"action": "hello", "all": true, "nodes": ["pi-01"]}),
            "exactly one",
        ),
        (json!({"action": "Hello!", "all": true}), "Hello!"),
        (json!({"action": "a".repeat(65), "all": true}), "must match"),
    ];
    for (body, says) in cases {
        let (status, reply) = post_action(&primary, ADMIN, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    let request = primary
        .http
        .get(format!("{}/api/v1/actions/0123456789abcdef", primary.url))
        .bearer_auth(ADMIN);
    let (status, _) = primary.call(request).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    primary.stop().await;
}

#[tokio::test]
async fn a_waiting_agent_gets_its_action_at_once_and_an_idle_one_204() {
    let (primary, first, second) = cluster(&[]).await;
    let url = primary.url.clone();
    let waiting = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(format!("{url}/api/v1/agent/actions?wait=25s"))
            .bearer_auth(&first)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (
            status,
            response.json::<Vec<ActionRequest>>().await.unwrap(),
            Instant::now(),
        )
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let posted = Instant::now();
    let (id, _) = queue(&primary, json!({"action": "hello", "nodes": ["pi-01"]})).await;
    let (status, actions, answered) = waiting.await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        answered - posted < Duration::from_secs(2),
        "{:?}",
        answered - posted
    );
    assert_eq!(
        actions,
        [ActionRequest {
            id: id.clone(),
            action: "hello".into(),
            update: None,
        }]
    );
    assert_eq!(state_of(&primary, &id, "pi-01").await["state"], "sent");

    let started = Instant::now();
    let (status, body) = poll(&primary, &second, "1s").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "{waited:?}"
    );

    for bad in ["soon", "31s"] {
        let (status, body) = poll(&primary, &second, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    primary.stop().await;
}

#[tokio::test]
async fn a_result_shows_and_only_the_targeted_node_may_post_it() {
    let (primary, first, second) = cluster(&[]).await;
    let (id, _) = queue(&primary, json!({"action": "hello", "nodes": ["pi-01"]})).await;
    let (status, taken) = poll(&primary, &first, "1s").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(taken[0]["id"], id.as_str());

    let (status, body) = post_result(&primary, &second, &done(&id)).await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "another node's action: {body}"
    );
    let (status, body) = post_result(&primary, &first, &done("0123456789abcdef")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = post_result(&primary, &first, &done(&id)).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = post_result(&primary, &first, &done(&id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "already final: {body}");

    let result = state_of(&primary, &id, "pi-01").await;
    assert_eq!(result["state"], "done", "{result}");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["output"], "hello from pi-01\n");
    assert_eq!(result["duration_ms"], 12);
    assert_eq!(result["truncated"], false);
    for time in ["queued_at", "sent_at", "finished_at"] {
        assert!(result[time].is_string(), "{time}: {result}");
    }
    primary.stop().await;
}

#[tokio::test]
async fn actions_not_taken_or_not_answered_expire() {
    let (primary, first, second) = cluster(&[("PIVITALS_ACTIONS__EXPIRE_AFTER", "1s")]).await;
    let (id, _) = queue(&primary, json!({"action": "hello", "all": true})).await;
    let (status, _) = poll(&primary, &first, "1s").await;
    assert_eq!(status, StatusCode::OK, "pi-01 takes it, never answers");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    for node in ["pi-01", "pi-02"] {
        let result = state_of(&primary, &id, node).await;
        assert_eq!(result["state"], "expired", "{result}");
        assert!(result["finished_at"].is_string(), "{result}");
    }
    let (status, body) = poll(&primary, &second, "100ms").await;
    assert_eq!(
        status,
        StatusCode::NO_CONTENT,
        "an expired action is not sent: {body}"
    );
    let (status, body) = post_result(&primary, &first, &done(&id)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    primary.stop().await;
}

#[tokio::test]
async fn who_asked_is_kept_api_by_default_and_checked() {
    let (primary, _, _) = cluster(&[]).await;
    let (unsaid, _) = queue(&primary, json!({"action": "hello", "all": true})).await;
    let (said, _) = queue(
        &primary,
        json!({"action": "hello", "nodes": ["pi-01"], "by": "dashboard"}),
    )
    .await;
    assert_eq!(show(&primary, &unsaid).await["by"], "api");
    assert_eq!(show(&primary, &said).await["by"], "dashboard");
    let request = primary
        .http
        .get(format!("{}/api/v1/actions?node=pi-01", primary.url))
        .bearer_auth(ADMIN);
    let (status, listed) = primary.call(request).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed[0]["by"], "dashboard", "newest first: {listed}");
    assert_eq!(listed[1]["by"], "api", "{listed}");

    for by in [
        json!(""),
        json!("x".repeat(65)),
        json!("two\nlines"),
        json!(7),
    ] {
        let body = json!({"action": "hello", "all": true, "by": by});
        let (status, reply) = post_action(&primary, ADMIN, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {reply}");
        let message = reply["error"].as_str().unwrap();
        assert!(message.contains("by"), "{body}: {message}");
    }
    let (status, reply) = post_action(
        &primary,
        ADMIN,
        json!({"action": "hello", "all": true, "by": "x".repeat(64)}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "64 bytes are fine: {reply}");
    primary.stop().await;
}
