//! Alert rules end to end, on a primary running in-process (testkit's harness) with the
//! embedded archive as storage: pushes judged per series (pending, firing after `for`,
//! resolved, repeat, a blip that never notifies, one alert per mount), a deleted node's
//! alerts resolved as "no data", a dead channel that slows nothing and is counted,
//! `GET /api/v1/alerts` as its contract says, `alert` points in the archive, and a wrong rule
//! that stops the primary at start.
//!
//! Notifications go to a *local receiver of pivitals' own generic webhook*
//! (`generic+http://127.0.0.1:PORT/hook`): an HTTP server in the test that records the JSON
//! bodies the primary posts. That JSON is pivitals' own format (documented in
//! `primary/src/alerts/runtime.rs`):
//! `{"rule", "node", "labels", "series", "event" (firing | repeat | resolved |
//! resolved_no_data), "state" (firing | resolved | no_data), "metric", "comparison",
//! "threshold", "value", "since", "at", "title", "message"}`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode as AxumStatus;
use pivitals_common::{DiskVitals, TemperatureVitals, VitalsPayload};
use pivitals_primary::config::PrimaryConfig;
use pivitals_testkit::harness::{ADMIN, InProcessPrimary as Primary};
use pivitals_testkit::samples::{now_ms, pi_sample};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The local receiver of the generic webhook.
#[derive(Clone, Default)]
struct Receiver {
    bodies: Arc<Mutex<Vec<Value>>>,
    authority: String,
}

impl Receiver {
    async fn start() -> Receiver {
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(record))
            .with_state(Arc::clone(&bodies));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let authority = listener.local_addr().unwrap().to_string();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { bodies, authority }
    }

    fn url(&self) -> String {
        format!("generic+http://{}/hook", self.authority)
    }

    fn bodies(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// Waits up to 10 s for at least `n` bodies; all of them.
    async fn wait_for(&self, n: usize) -> Vec<Value> {
        self.wait_up_to(n, Duration::from_secs(10)).await
    }

    async fn wait_up_to(&self, n: usize, limit: Duration) -> Vec<Value> {
        let deadline = Instant::now() + limit;
        while self.bodies().len() < n && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let bodies = self.bodies();
        assert!(
            bodies.len() >= n,
            "{} of {n} notifications: {bodies:#?}",
            bodies.len()
        );
        bodies
    }
}

async fn record(
    State(bodies): State<Arc<Mutex<Vec<Value>>>>,
    Json(body): Json<Value>,
) -> AxumStatus {
    bodies.lock().unwrap().push(body);
    AxumStatus::OK
}

/// Settings with the defaults off, the receiver as channel `hook`, and `rules`.
fn settings(receiver: &Receiver, rules: &str) -> String {
    format!(
        "[alert]\ndefault_rules = false\n[alert.channels]\nhook = \"{}\"\n{rules}",
        receiver.url()
    )
}

const HOT: &str = r#"
[[alert.rules]]
name = "hot"
metric = "temperature.celsius"
above = 80
for = "3s"
"#;

fn temp(ts: i64, celsius: f64) -> VitalsPayload {
    VitalsPayload {
        timestamp_ms: ts,
        temperatures: vec![TemperatureVitals {
            sensor: "cpu-thermal".into(),
            celsius,
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn rfc3339(ms: i64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms as u64)).to_string()
}

async fn alerts(primary: &Primary) -> Value {
    let (status, body) = primary.get("/api/v1/alerts").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_hot_sensor_is_pending_then_firing_after_for_then_resolved() {
    let receiver = Receiver::start().await;
    let primary = Primary::start_with_settings(&settings(&receiver, HOT), &[]).await;
    let token = primary.register("pi-01").await;
    let t0 = now_ms() - 20_000;

    primary.push_ok(&token, vec![temp(t0, 85.0)]).await;
    let body = alerts(&primary).await;
    assert_eq!(
        body,
        json!({
            "firing": [],
            "pending": [{
                "rule": "hot", "node": "pi-01", "series": {"sensor": "cpu-thermal"},
                "state": "pending", "metric": "temperature.celsius", "comparison": "above",
                "threshold": 80.0, "value": 85.0, "since": rfc3339(t0), "resolved_at": null,
                "message": body["pending"][0]["message"],
            }],
            "resolved": [],
        })
    );
    assert!(
        body["pending"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("pi-01 hot: temperature cpu-thermal 85 °C > 80")
    );

    primary
        .push_ok(&token, vec![temp(t0 + 1000, 86.0), temp(t0 + 2000, 86.0)])
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        receiver.bodies().is_empty(),
        "nothing before `for` has passed"
    );

    primary.push_ok(&token, vec![temp(t0 + 3000, 87.0)]).await;
    let firing = receiver.wait_for(1).await.remove(0);
    assert_eq!(firing["event"], "firing");
    assert_eq!(firing["state"], "firing");
    assert_eq!(firing["series"], json!({"sensor": "cpu-thermal"}));
    assert_eq!(firing["value"], 87.0);
    assert_eq!(firing["since"], rfc3339(t0));
    assert_eq!(
        firing["message"],
        "pi-01 hot: temperature cpu-thermal 87 °C > 80 for 3s"
    );
    let body = alerts(&primary).await;
    assert_eq!(body["pending"], json!([]));
    assert_eq!(body["firing"][0]["state"], "firing");
    assert_eq!(body["firing"][0]["since"], rfc3339(t0));
    assert_eq!(body["firing"][0]["value"], 87.0);

    primary.push_ok(&token, vec![temp(t0 + 4000, 50.0)]).await;
    let resolved = receiver.wait_for(2).await.remove(1);
    assert_eq!(resolved["event"], "resolved");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(
        resolved["message"],
        "pi-01 hot resolved: temperature cpu-thermal 50 °C, was > 80 for 4s"
    );
    let body = alerts(&primary).await;
    assert_eq!(body["firing"], json!([]));
    let gone = &body["resolved"][0];
    assert_eq!(gone["state"], "resolved");
    assert_eq!(gone["resolved_at"], rfc3339(t0 + 4000));
    assert_eq!(gone["value"], 50.0);
    assert_eq!(gone["since"], rfc3339(t0));

    let lines = primary
        .wait_for_lines("alert", |lines| lines.len() >= 2)
        .await
        .unwrap_or_else(|lines| panic!("alert lines: {lines:?}"));
    let ns = |ms: i64| (ms * 1_000_000).to_string();
    assert!(
        lines.iter().any(|l| l.starts_with(
            "alert,node=pi-01,rule=hot,sensor=cpu-thermal,stack=1 state=\"firing\",value=87 "
        ) && l.ends_with(&ns(t0 + 3000))),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "alert,node=pi-01,rule=hot,sensor=cpu-thermal,stack=1 state=\"resolved\",value=50 "
        ) && l.ends_with(&ns(t0 + 4000))),
        "{lines:?}"
    );

    let metrics = primary.metrics().await;
    for line in [
        "pivitals_alert_notifications_total{channel=\"hook\",service=\"generic\",result=\"sent\"} 2",
        "pivitals_alerts{state=\"firing\"} 0",
        "pivitals_alerts{state=\"pending\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    primary.stop().await;
}

#[tokio::test]
async fn a_blip_shorter_than_for_never_notifies() {
    let receiver = Receiver::start().await;
    let rule = HOT.replace("\"3s\"", "\"5s\"");
    let primary = Primary::start_with_settings(&settings(&receiver, &rule), &[]).await;
    let token = primary.register("pi-01").await;
    let t0 = now_ms() - 20_000;
    primary
        .push_ok(
            &token,
            vec![temp(t0, 90.0), temp(t0 + 1000, 90.0), temp(t0 + 2000, 40.0)],
        )
        .await;
    for i in 3..8 {
        primary
            .push_ok(&token, vec![temp(t0 + i * 1000, 40.0)])
            .await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.bodies().is_empty(), "{:?}", receiver.bodies());
    assert_eq!(
        alerts(&primary).await,
        json!({"firing": [], "pending": [], "resolved": []})
    );
    assert!(primary.archived("alert").is_empty());
    primary.stop().await;
}

#[tokio::test]
async fn each_mount_fires_on_its_own() {
    let receiver = Receiver::start().await;
    let rules = r#"
[[alert.rules]]
name = "disk full"
metric = "disk.used_percent"
above = 90
"#;
    let primary = Primary::start_with_settings(&settings(&receiver, rules), &[]).await;
    let token = primary.register("pi-01").await;
    let disk = |mount: &str, device: &str, used: u64| DiskVitals {
        mount: mount.into(),
        device: device.into(),
        fs_type: "ext4".into(),
        total_bytes: 100,
        used_bytes: used,
        ..Default::default()
    };
    let sample = VitalsPayload {
        timestamp_ms: now_ms() - 1000,
        disks: vec![
            disk("/", "/dev/mmcblk0p2", 95),
            disk("/mnt/ssd", "/dev/sda1", 97),
            disk("/boot", "/dev/mmcblk0p1", 20),
        ],
        ..Default::default()
    };
    primary.push_ok(&token, vec![sample]).await;
    let mut bodies = receiver.wait_for(2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.bodies().len(),
        2,
        "one notification per full mount"
    );
    bodies.sort_by_key(|b| b["series"]["mount"].as_str().unwrap().to_owned());
    assert_eq!(
        bodies[0]["series"],
        json!({"mount": "/", "device": "/dev/mmcblk0p2", "fstype": "ext4"})
    );
    assert_eq!(
        bodies[0]["message"],
        "pi-01 disk full: disk / used 95 % > 90"
    );
    assert_eq!(bodies[1]["series"]["mount"], "/mnt/ssd");
    assert_eq!(
        bodies[1]["message"],
        "pi-01 disk full: disk /mnt/ssd used 97 % > 90"
    );
    let body = alerts(&primary).await;
    assert_eq!(body["firing"].as_array().unwrap().len(), 2);
    let metrics = primary.metrics().await;
    assert!(
        metrics.contains("pivitals_alerts{state=\"firing\"} 2"),
        "{metrics}"
    );
    primary.stop().await;
}

#[tokio::test]
async fn repeat_notifies_again_while_firing() {
    let receiver = Receiver::start().await;
    let rules = r#"
[[alert.rules]]
name = "hot"
metric = "temperature.celsius"
above = 80
repeat = "2s"
"#;
    let primary = Primary::start_with_settings(&settings(&receiver, rules), &[]).await;
    let token = primary.register("pi-01").await;
    let t0 = now_ms() - 20_000;
    for i in 0..3 {
        primary
            .push_ok(&token, vec![temp(t0 + i * 1000, 85.0)])
            .await;
    }
    let bodies = receiver.wait_for(2).await;
    assert_eq!(bodies[0]["event"], "firing");
    assert_eq!(bodies[1]["event"], "repeat");
    assert_eq!(bodies[1]["state"], "firing");
    assert!(
        bodies[1]["title"]
            .as_str()
            .unwrap()
            .contains("still firing"),
        "{}",
        bodies[1]
    );
    // Repeats are not transitions: one `alert` point.
    primary
        .wait_for_lines("alert", |l| !l.is_empty())
        .await
        .unwrap_or_else(|lines| panic!("alert lines: {lines:?}"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(primary.archived("alert").len(), 1);
    primary.stop().await;
}

#[tokio::test]
async fn deleting_a_node_resolves_its_alerts_as_no_data() {
    let receiver = Receiver::start().await;
    let rule = HOT.replace("\"3s\"", "\"0s\"");
    let primary = Primary::start_with_settings(&settings(&receiver, &rule), &[]).await;
    let token = primary.register("pi-01").await;
    primary
        .push_ok(&token, vec![temp(now_ms() - 1000, 85.0)])
        .await;
    receiver.wait_for(1).await;
    let (status, _) = primary
        .call(
            primary
                .http
                .delete(format!("{}/api/v1/nodes/pi-01", primary.url))
                .bearer_auth(ADMIN),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = receiver.wait_for(2).await.remove(1);
    assert_eq!(gone["event"], "resolved_no_data");
    assert_eq!(gone["state"], "no_data");
    assert!(
        gone["message"]
            .as_str()
            .unwrap()
            .starts_with("pi-01 hot resolved (no data): "),
        "{gone}"
    );
    let body = alerts(&primary).await;
    assert_eq!(body["firing"], json!([]));
    assert_eq!(body["resolved"][0]["state"], "no_data");
    assert_eq!(body["resolved"][0]["value"], 85.0);
    primary.wait_for("alert", "state=\"no_data\"").await;
    primary.stop().await;
}

#[tokio::test]
async fn a_dead_channel_slows_nothing_and_is_counted() {
    let receiver = Receiver::start().await;
    let dead_port = pivitals_testkit::free_port();
    let settings = format!(
        "[alert]\ndefault_rules = false\n[alert.channels]\nhook = \"{}\"\ndead = \"generic+http://127.0.0.1:{dead_port}/hook\"\n{}",
        receiver.url(),
        HOT.replace("\"3s\"", "\"0s\"")
    );
    let primary = Primary::start_with_settings(&settings, &[]).await;
    let token = primary.register("pi-01").await;
    let t0 = now_ms() - 20_000;
    let started = Instant::now();
    for i in 0..6 {
        let celsius = if i % 2 == 0 { 85.0 } else { 40.0 };
        primary
            .push_ok(&token, vec![temp(t0 + i * 1000, celsius)])
            .await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "pushes took {:?}",
        started.elapsed()
    );
    receiver.wait_for(6).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let failed = "pivitals_alert_notifications_total{channel=\"dead\",service=\"generic\",result=\"failed\"}";
    loop {
        let metrics = primary.metrics().await;
        let count = metrics
            .lines()
            .find_map(|l| l.strip_prefix(failed)?.trim().parse::<u64>().ok())
            .unwrap_or(0);
        if count >= 1 {
            assert!(
                metrics.contains(
                    "pivitals_alert_notifications_total{channel=\"hook\",service=\"generic\",result=\"sent\"} 6"
                ),
                "{metrics}"
            );
            break;
        }
        assert!(Instant::now() < deadline, "no failure counted:\n{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    primary.stop().await;
}

#[tokio::test]
async fn default_rules_notify_the_urls_of_the_notify_setting() {
    let receiver = Receiver::start().await;
    let primary = Primary::start_with(&[("PIVITALS_ALERT__NOTIFY", &receiver.url())]).await;
    let token = primary.register("pi-01").await;
    // pi_sample reports two under-voltage events in its interval.
    primary
        .push_ok(&token, vec![pi_sample(now_ms() - 1000, 10.0, 50.0)])
        .await;
    let body = receiver.wait_for(1).await.remove(0);
    assert_eq!(body["rule"], "under-voltage");
    assert_eq!(body["metric"], "power.under_voltage_events");
    let metrics = primary.metrics().await;
    assert!(
        metrics.contains(
            "pivitals_alert_notifications_total{channel=\"notify-1\",service=\"generic\",result=\"sent\"} 1"
        ),
        "{metrics}"
    );
    primary.stop().await;
}

#[tokio::test]
async fn a_node_down_fires_when_liveness_records_it_and_resolves_when_it_is_back() {
    let receiver = Receiver::start().await;
    let rules = "[[alert.rules]]\nname = \"node down\"\nmetric = \"node_status\"\n";
    let primary = Primary::start_with_settings(&settings(&receiver, rules), &[]).await;
    let token = primary.register("pi-01").await;
    primary.push_ok(&token, vec![temp(now_ms(), 40.0)]).await;
    // One-second interval: down after three missed pushes and two checks that agree.
    let down = receiver
        .wait_up_to(1, Duration::from_secs(20))
        .await
        .remove(0);
    assert_eq!(down["rule"], "node down");
    assert_eq!(down["event"], "firing");
    assert_eq!(down["metric"], Value::Null);
    assert_eq!(down["message"], "pi-01 node down: status down");
    let body = alerts(&primary).await;
    assert_eq!(body["firing"][0]["rule"], "node down");
    assert_eq!(body["firing"][0]["series"], json!({}));
    assert_eq!(body["firing"][0]["value"], Value::Null);
    primary.push_ok(&token, vec![temp(now_ms(), 40.0)]).await;
    let up = receiver
        .wait_up_to(2, Duration::from_secs(20))
        .await
        .remove(1);
    assert_eq!(up["event"], "resolved");
    assert!(
        up["message"]
            .as_str()
            .unwrap()
            .starts_with("pi-01 node down resolved: up again after "),
        "{up}"
    );
    primary.wait_for("alert", "rule=node\\ down").await;
    primary.stop().await;
}

#[test]
fn a_wrong_rule_stops_the_primary_at_start_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("primary.toml");
    let load = |text: &str, env: &[(&str, &str)]| {
        std::fs::write(&file, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        PrimaryConfig::load(Some(&file), env)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let text = load(
        "[[alert.rules]]\nname = \"hot\"\nmetric = \"temperature.celsus\"\nabove = 80\n",
        &[],
    );
    assert_eq!(
        text,
        r#"configuration: alert rule "hot": key metric: no field "celsus" in measurement temperature (fields: celsius, celsius_min, celsius_max)"#
    );
    let text = load(
        "[[alert.rules]]\nname = \"hot\"\nmetric = \"temperature.celsius\"\nabove = 80\nnotify = [\"phone\"]\n",
        &[("PIVITALS_ALERT__NOTIFY", "ntfy://ntfy.sh/pi")],
    );
    assert_eq!(
        text,
        r#"configuration: alert rule "hot": key notify: no channel "phone" (channels: notify-1)"#
    );
    let text = load(
        "[[alert.rules]]\nname = \"hot\"\nmetric = \"temperature.celsius\"\nabove = 80\nfor = \"soon\"\n",
        &[],
    );
    assert!(
        text.starts_with(r#"configuration: alert rule "hot": key for: "#),
        "{text}"
    );
    let text = load("[alert.channels]\nphone = \"ntfy:/x\"\n", &[]);
    assert!(
        text.contains("phone") || text.contains("channels"),
        "{text}"
    );
    for text in [
        load("[[alert.rules]]\nname = \"hot\"\nabov = 80\n", &[]),
        load("[alert]\nnotfy = \"x\"\n", &[]),
    ] {
        assert!(!text.contains('\n'), "{text}");
        assert!(text.contains("abov") || text.contains("notfy"), "{text}");
    }
}
