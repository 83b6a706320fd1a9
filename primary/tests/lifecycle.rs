//! Node lifecycle with the real binaries: every status change lands in a real InfluxDB 1.x as
//! a `node_status` point, and a webhook receiver (a tokio listener in the test) gets the
//! `down` and recovery alerts, retried when it fails. A webhook that never answers delays
//! nothing. Binaries start through testkit's harness.

use std::sync::mpsc;
use std::time::Duration;

use pivitals_testkit::harness::{
    eventually, node_status, rows, start_agent, start_primary, start_primary_on_influx_v1,
};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DB: &str = "pivitals";

/// The (status, up) of a node's `node_status` points, oldest first.
fn statuses(influx: &InfluxV1, node: &str) -> Vec<(String, i64)> {
    let query = format!("SELECT status, up FROM node_status WHERE node = '{node}'");
    influx
        .query(DB, &query)
        .map(|answer| {
            rows(&answer)
                .iter()
                .map(|r| {
                    (
                        r[1].as_str().unwrap_or_default().to_owned(),
                        r[2].as_i64().unwrap_or(-1),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(s, up)| (s.to_string(), *up)).collect()
}

#[test]
fn status_changes_land_in_influxdb_as_node_status_points() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    // A webhook that accepts connections and never answers: alerts hang until their
    // time-out while everything else goes on.
    let black_hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(
        dir.path(),
        port,
        &influx,
        DB,
        &[
            (
                "PIVITALS_ALERT__WEBHOOK_URL",
                format!("http://{}/hook", black_hole.local_addr().unwrap()),
            ),
            ("PIVITALS_ALERT__TIMEOUT", "60s".into()),
        ],
    );
    let mut stopping = start_agent(dir.path(), "life-term", &url, "1s");
    let mut dying = start_agent(dir.path(), "life-kill", &url, "1s");
    for node in ["life-term", "life-kill"] {
        eventually(
            &format!("{node} recorded up"),
            Duration::from_secs(40),
            || (statuses(&influx, node) == pairs(&[("up", 1)])).then_some(()),
        );
    }

    // SIGTERM: the agent says goodbye; `stopped` with up=0.
    let status = stopping.terminate(Duration::from_secs(15));
    assert!(status.success(), "{}", stopping.log_tail());
    eventually(
        "life-term recorded stopped",
        Duration::from_secs(20),
        || (statuses(&influx, "life-term") == pairs(&[("up", 1), ("stopped", 0)])).then_some(()),
    );

    // SIGKILL: no goodbye; `late` after one missed push, `down` after three.
    dying.kill_hard();
    eventually(
        "life-kill recorded late, down",
        Duration::from_secs(30),
        || {
            (statuses(&influx, "life-kill") == pairs(&[("up", 1), ("late", 0), ("down", 0)]))
                .then_some(())
        },
    );
    // Back again (same credential): recorded `up`, although the alert for `down` still
    // hangs on the silent webhook.
    let _back = start_agent(dir.path(), "life-kill", &url, "1s");
    eventually(
        "life-kill recorded up again",
        Duration::from_secs(30),
        || {
            let expected = pairs(&[("up", 1), ("late", 0), ("down", 0), ("up", 1)]);
            (statuses(&influx, "life-kill") == expected).then_some(())
        },
    );
    assert_eq!(node_status(&url, "life-kill"), "up");

    // Tagged like the vitals, with one type per field.
    let stacks = influx
        .query(DB, "SHOW TAG VALUES FROM node_status WITH KEY = \"stack\"")
        .unwrap();
    assert_eq!(
        rows(&stacks),
        vec![vec![Value::from("stack"), Value::from("7")]]
    );
    let fields = influx
        .query(DB, "SHOW FIELD KEYS FROM node_status")
        .unwrap();
    assert_eq!(
        rows(&fields),
        vec![
            vec![Value::from("status"), Value::from("string")],
            vec![Value::from("up"), Value::from("integer")],
        ]
    );
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", primary.log_tail());
    let log = primary.log();
    assert!(
        log.lines().any(|l| l.contains("node status changed")
            && l.contains("life-kill")
            && l.contains("down")),
        "status changes are logged:\n{log}"
    );
}

/// A webhook receiver on a loopback port: each request's JSON body goes to the channel; the
/// first `fail_first` requests are answered 503, the rest 204.
fn webhook_receiver(fail_first: usize) -> (String, mpsc::Receiver<Value>) {
    let (tx, rx) = mpsc::channel();
    let (addr_tx, addr_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            let mut served = 0;
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let Some(body) = read_request(&mut socket).await else {
                    continue;
                };
                let answer = if served < fail_first {
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                } else {
                    "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n"
                };
                served += 1;
                let _ = socket.write_all(answer.as_bytes()).await;
                let _ = socket.shutdown().await;
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                if tx.send(value).is_err() {
                    return;
                }
            }
        });
    });
    let addr = addr_rx.recv().unwrap();
    (format!("http://{addr}/hook"), rx)
}

/// Reads one request's head and its `Content-Length` body.
async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Vec<u8>> {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_ascii_lowercase();
            assert!(head.starts_with("post /hook "), "{head}");
            assert!(head.contains("content-type: application/json"), "{head}");
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while data.len() < end + 4 + length {
                let read = socket.read(&mut buf).await.ok()?;
                if read == 0 {
                    return None;
                }
                data.extend_from_slice(&buf[..read]);
            }
            return Some(data[end + 4..end + 4 + length].to_vec());
        }
        let read = socket.read(&mut buf).await.ok()?;
        if read == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..read]);
    }
}

#[test]
fn the_webhook_gets_down_and_recovery_and_a_failed_post_is_retried() {
    let (hook, alerts) = webhook_receiver(1);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_SELF_MONITOR", "false".into()),
            ("PIVITALS_ALERT__WEBHOOK_URL", hook),
        ],
    );
    let mut agent = start_agent(dir.path(), "hook-a", &url, "1s");
    eventually("hook-a up", Duration::from_secs(30), || {
        let answer = pivitals_testkit::http::get(&format!("{url}/api/v1/nodes/hook-a")).ok()?;
        (answer.status == 200 && answer.text().contains("\"status\":\"up\"")).then_some(())
    });
    // Going up, and late, are not alerts.
    agent.kill_hard();
    let next = |what: &str| {
        alerts
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no {what} alert"))
    };
    let refused = next("down");
    let down = next("retried down");
    assert_eq!(refused, down, "the retry sends the same alert");
    assert_eq!(down["node"], "hook-a", "{down}");
    assert_eq!(down["status"], "down", "{down}");
    assert_eq!(down["previous"], "late", "{down}");
    assert_eq!(down["labels"], json!({"stack": "7", "role": "worker"}));
    let at = down["at"].as_str().unwrap();
    assert!(
        at.ends_with('Z') && at.len() == 24,
        "RFC 3339 with ms: {at}"
    );

    let _agent = start_agent(dir.path(), "hook-a", &url, "1s");
    let recovered = next("recovery");
    assert_eq!(recovered["node"], "hook-a", "{recovered}");
    assert_eq!(recovered["status"], "up", "{recovered}");
    assert_eq!(recovered["previous"], "down", "{recovered}");
    assert!(recovered["at"].as_str().unwrap() > at, "{recovered}");
    assert!(
        alerts.recv_timeout(Duration::from_secs(3)).is_err(),
        "nothing else is alerted"
    );
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", primary.log_tail());
    assert!(
        primary.log().contains("alert delivered"),
        "{}",
        primary.log_tail()
    );
}

/// What the primary last saw of a node survives its restart for display: `last_seen` and the
/// newest sample come back (its status is judged from the new start).
#[test]
fn a_restarted_primary_shows_each_nodes_last_known_state() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let node_url = format!("{url}/api/v1/nodes/lk-a");
    let node = || -> Option<Value> {
        let answer = pivitals_testkit::http::get(&node_url).ok()?;
        (answer.status == 200).then(|| serde_json::from_slice(&answer.body).ok())?
    };
    let mut primary = start_primary(dir.path(), port, &[]);
    let mut agent = start_agent(dir.path(), "lk-a", &url, "1s");
    let before = eventually("a sample of lk-a", Duration::from_secs(20), || {
        node().filter(|n| !n["latest"].is_null() && !n["last_seen"].is_null())
    });
    agent.stop_cleanly(Duration::from_secs(10));
    let seen = eventually("lk-a stopped", Duration::from_secs(10), || {
        node().filter(|n| n["status"] == "stopped")
    });
    primary.stop_cleanly(Duration::from_secs(30));

    let primary = start_primary(dir.path(), port, &[]);
    let after = node().expect("lk-a is still registered");
    assert_eq!(after["last_seen"], seen["last_seen"], "{after}");
    assert_eq!(
        after["latest"]["timestamp_ms"], seen["latest"]["timestamp_ms"],
        "{after}"
    );
    assert!(after["latest"]["cpu"].is_object(), "{after}");
    assert!(before["latest"]["timestamp_ms"].as_i64() <= after["latest"]["timestamp_ms"].as_i64());
    drop(primary);
}
