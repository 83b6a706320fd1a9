//! Hostile requests against the real primary binary writing to a real InfluxDB 1.x while a
//! real agent pushes at 1 s: each one gets a JSON 4xx, InfluxDB holds nothing from any of
//! them, and the agent's points keep landing. Binaries start through testkit's harness.

use std::time::Duration;

use pivitals_common::VitalsPayload;
use pivitals_testkit::harness::{ENROLL, eventually, start_agent, start_primary_on_influx_v1};
use pivitals_testkit::samples::{now_ms, push_body, register_request, sample};
use pivitals_testkit::{InfluxV1, free_port, http};
use serde_json::{Value, json};

const DB: &str = "pivitals";
const ADMIN: &str = "hostile-test-admin-token-0001";

fn cpu_points(influx: &InfluxV1, node: &str) -> u64 {
    influx
        .count(
            DB,
            &format!("SELECT count(usage_percent) FROM cpu WHERE node = '{node}'"),
        )
        .unwrap_or(0)
}

fn json_request(method: &str, url: &str, token: Option<&str>, body: &[u8]) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Content-Type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth.as_str()));
    }
    let response = http::request(method, url, &headers, body)
        .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let body = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
    (response.status, body)
}

/// One hostile request: what it tries, method, path, bearer token, body, expected status.
type HostileCase<'a> = (&'a str, &'a str, String, Option<&'a str>, Vec<u8>, u16);

#[test]
fn hostile_requests_get_json_4xx_and_leave_nothing_in_influxdb_while_an_agent_lands() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(
        dir.path(),
        port,
        &influx,
        DB,
        &[("PIVITALS_ADMIN_TOKEN", ADMIN.into())],
    );
    let mut agent = start_agent(dir.path(), "real-node", &url, "1s");
    eventually("the agent's first points", Duration::from_secs(30), || {
        (cpu_points(&influx, "real-node") >= 2).then_some(())
    });

    // A registered probe whose every push is hostile: none may land.
    let register = |name: &str, labels: Value| {
        // Only the name and the labels are hostile: the host information stays empty.
        let mut body = serde_json::to_value(register_request(name)).unwrap();
        body["info"] = json!({});
        body["labels"] = labels;
        json_request(
            "POST",
            &format!("{url}/api/v1/register"),
            Some(ENROLL),
            body.to_string().as_bytes(),
        )
    };
    let (status, reply) = register("probe", json!({}));
    assert_eq!(status, 200, "{reply}");
    let probe = reply["node_token"].as_str().unwrap().to_owned();
    let agent_token = {
        let text = std::fs::read_to_string(dir.path().join("real-node/credential.json")).unwrap();
        let credential: Value = serde_json::from_str(&text).unwrap();
        credential["node_token"].as_str().unwrap().to_owned()
    };

    let vitals = format!("{url}/api/v1/vitals");
    let push = |samples: Vec<VitalsPayload>| push_body(samples).to_string().into_bytes();
    let raw = |samples: Value| json!({ "samples": samples }).to_string().into_bytes();
    let now = now_ms();
    let many_disks: Vec<Value> = (0..65)
        .map(|i| json!({"mount": format!("/m{i}"), "device": "d", "fs_type": "ext4", "total_bytes": 1, "used_bytes": 0}))
        .collect();
    let too_many_samples: Vec<VitalsPayload> = (0..1001)
        .map(|i| sample(now - 2_000_000 + i, 1.0))
        .collect();
    let deep = format!(
        "{{\"samples\": {}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let huge = vec![b' '; 1024 * 1024 + 1];
    let cases: Vec<HostileCase> = vec![
        (
            "push without token",
            "POST",
            vitals.clone(),
            None,
            push(vec![sample(now, 1.0)]),
            401,
        ),
        (
            "push with a wrong token",
            "POST",
            vitals.clone(),
            Some("not-a-token"),
            push(vec![sample(now, 1.0)]),
            401,
        ),
        (
            "push with the enroll token",
            "POST",
            vitals.clone(),
            Some(ENROLL),
            push(vec![sample(now, 1.0)]),
            401,
        ),
        (
            "push with the admin token",
            "POST",
            vitals.clone(),
            Some(ADMIN),
            push(vec![sample(now, 1.0)]),
            401,
        ),
        (
            "node token used for admin",
            "DELETE",
            format!("{url}/api/v1/nodes/real-node"),
            Some(&agent_token),
            vec![],
            401,
        ),
        (
            "enroll token used for admin",
            "DELETE",
            format!("{url}/api/v1/nodes/real-node"),
            Some(ENROLL),
            vec![],
            401,
        ),
        (
            "register with a node token",
            "POST",
            format!("{url}/api/v1/register"),
            Some(&probe),
            serde_json::to_vec(&register_request("x")).unwrap(),
            401,
        ),
        (
            "oversized body",
            "POST",
            vitals.clone(),
            Some(&probe),
            huge,
            413,
        ),
        (
            "deep JSON",
            "POST",
            vitals.clone(),
            Some(&probe),
            deep.into_bytes(),
            422,
        ),
        (
            "malformed JSON",
            "POST",
            vitals.clone(),
            Some(&probe),
            b"{\"samples\": [{".to_vec(),
            400,
        ),
        (
            "wrong types",
            "POST",
            vitals.clone(),
            Some(&probe),
            raw(json!([{"timestamp_ms": "now"}])),
            422,
        ),
        (
            "NaN as a string",
            "POST",
            vitals.clone(),
            Some(&probe),
            raw(json!([{"timestamp_ms": now, "cpu": {"usage_percent": "NaN"}}])),
            422,
        ),
        (
            "future timestamp",
            "POST",
            vitals.clone(),
            Some(&probe),
            push(vec![sample(now + 3_600_000, 1.0)]),
            422,
        ),
        (
            "timestamp beyond the retention",
            "POST",
            vitals.clone(),
            Some(&probe),
            push(vec![sample(now - 400 * 86_400_000, 1.0)]),
            422,
        ),
        (
            "too many samples",
            "POST",
            vitals.clone(),
            Some(&probe),
            push(too_many_samples),
            422,
        ),
        (
            "too many disks",
            "POST",
            vitals.clone(),
            Some(&probe),
            raw(json!([{"timestamp_ms": now, "disks": many_disks}])),
            422,
        ),
        (
            "one bad sample among good ones",
            "POST",
            vitals.clone(),
            Some(&probe),
            push(vec![sample(now - 1000, 1.0), sample(now + 86_400_000, 1.0)]),
            422,
        ),
    ];
    for (what, method, target, token, body, expected) in cases {
        let (status, reply) = json_request(method, &target, token, &body);
        println!("{what}: {status} {reply}");
        assert_eq!(status, expected, "{what}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{what}: no JSON error: {reply}"
        );
    }
    for (what, name, labels) in [
        (
            "newline in the node name",
            "evil\nmem,node=x used_bytes=1i",
            json!({}),
        ),
        ("comma and = in the node name", "evil,node=x", json!({})),
        (
            "injection in a label value",
            "labelled",
            json!({"role": "a\nmem,node=x used=1i"}),
        ),
        (
            "label shadowing the node tag",
            "shadow",
            json!({"node": "other"}),
        ),
    ] {
        let (status, reply) = register(name, labels);
        println!("{what}: {status} {reply}");
        assert_eq!(status, 422, "{what}: {reply}");
    }
    let (status, reply) = register("real-node", json!({}));
    println!("register a taken name: {status} {reply}");
    assert_eq!(status, 409, "taking over a node: {reply}");

    // The agent keeps landing points; nothing from the hostile requests is in InfluxDB.
    let before = cpu_points(&influx, "real-node");
    eventually(
        "the agent lands more points",
        Duration::from_secs(20),
        || (cpu_points(&influx, "real-node") >= before + 3).then_some(()),
    );
    let nodes = influx
        .query(DB, "SHOW TAG VALUES WITH KEY = \"node\"")
        .unwrap();
    let mut seen: Vec<String> = nodes["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|v| v.get(1).and_then(Value::as_str).map(str::to_owned))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen, ["real-node"], "InfluxDB holds points of other nodes");
    agent.stop_cleanly(Duration::from_secs(20));
    primary.stop_cleanly(Duration::from_secs(30));
}
