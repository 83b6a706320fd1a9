//! Alert rules end to end with the real binaries: a `pivitals-agent` at `PIVITALS_INTERVAL=1s`
//! reads a thermal zone from a fixture tree (`PIVITALS_ROOT`) that the test heats and cools,
//! and a `pivitals-primary` (embedded archive, no InfluxDB) judges its samples against a rule
//! from its settings file (`--config`). One test, in phases: a one-second blip that never
//! notifies, then a rule that fires, repeats and resolves, seen by a local receiver of the
//! generic webhook, by `GET /api/v1/alerts` and in the archive's `alert` lines.
//!
//! Notifications go to a *local receiver of pivitals' own generic webhook*
//! (`generic+http://127.0.0.1:PORT/hook`): a `std::net::TcpListener` thread in the test that
//! records the JSON bodies the primary posts (the format documented in
//! `primary/src/alerts/runtime.rs`).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, UNIX_EPOCH};

use pivitals_testkit::archive::archived;
use pivitals_testkit::free_port;
use pivitals_testkit::harness::binaries::start_primary_with_config;
use pivitals_testkit::harness::{eventually, get_json, node_status, start_agent_with};
use serde_json::{Value, json};

const NODE: &str = "e2e-hot";
/// Every wait is bounded by this.
const WITHIN: Duration = Duration::from_secs(30);

/// A local receiver of pivitals' own generic webhook: one thread accepting on
/// `127.0.0.1:PORT`, answering 200 to each `POST /hook` and keeping its JSON body.
#[derive(Clone)]
struct GenericWebhookReceiver {
    port: u16,
    bodies: Arc<Mutex<Vec<Value>>>,
}

impl GenericWebhookReceiver {
    fn start() -> GenericWebhookReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies: Arc<Mutex<Vec<Value>>> = Arc::default();
        let kept = Arc::clone(&bodies);
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                if let Some(body) = read_hook_request(stream) {
                    kept.lock().unwrap().push(body);
                }
            }
        });
        GenericWebhookReceiver { port, bodies }
    }

    fn url(&self) -> String {
        format!("generic+http://127.0.0.1:{}/hook", self.port)
    }

    /// The bodies about `NODE`'s sensor `cpu-thermal` (the agent may also report a hwmon
    /// sensor of this machine).
    fn bodies(&self) -> Vec<Value> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter(|b| ours(b))
            .cloned()
            .collect()
    }

    /// Waits (bounded) for a body with `"event": event`; all bodies so far.
    fn wait_for_event(&self, event: &str) -> Vec<Value> {
        eventually(
            &format!("a {event:?} notification; got {:#?}", self.bodies()),
            WITHIN,
            || {
                let bodies = self.bodies();
                bodies.iter().any(|b| b["event"] == event).then_some(bodies)
            },
        )
    }
}

/// Reads one `POST /hook` (headers, then `Content-Length` bytes of JSON), answers 200 and
/// closes; `None` (and a 400) for anything else.
fn read_hook_request(mut stream: TcpStream) -> Option<Value> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line).ok()?;
    let mut length = 0;
    let mut json = false;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().ok()?,
            "content-type" => json = value.trim().starts_with("application/json"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    let parsed = serde_json::from_slice::<Value>(&body).ok();
    let ok = request_line.starts_with("POST /hook HTTP/1.1") && json && parsed.is_some();
    let status = if ok { "200 OK" } else { "400 Bad Request" };
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    parsed.filter(|_| ok)
}

/// An alert (notification or API entry) of the rule `hot` on `NODE`'s `cpu-thermal`.
fn ours(alert: &Value) -> bool {
    alert["rule"] == "hot" && alert["node"] == NODE && alert["series"]["sensor"] == "cpu-thermal"
}

/// The settings file: no default rules, the receiver as channel `hook`, and the rule `hot`.
fn settings(receiver: &GenericWebhookReceiver) -> String {
    format!(
        r#"[alert]
default_rules = false

[alert.channels]
hook = "{}"

[[alert.rules]]
name = "hot"
metric = "temperature.celsius"
above = 80
for = "2s"
repeat = "3s"
"#,
        receiver.url()
    )
}

/// The agent's root: the host's `/proc` and `/sys/devices/system`, plus one thermal zone
/// `cpu-thermal` whose `temp` the test sets.
fn fixture_root(dir: &Path) -> PathBuf {
    let root = dir.join("root");
    let zone = root.join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
    set_temp(&root, 45_000);
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::fs::create_dir_all(root.join("sys/devices")).unwrap();
    std::os::unix::fs::symlink("/sys/devices/system", root.join("sys/devices/system")).unwrap();
    root
}

/// Writes the zone's `temp` (millidegrees) atomically, so the agent never reads half a file
/// (a zone it cannot read would drop the series from a sample).
fn set_temp(root: &Path, millidegrees: u32) {
    let zone = root.join("sys/class/thermal/thermal_zone0");
    let next = zone.join("temp.next");
    std::fs::write(&next, format!("{millidegrees}\n")).unwrap();
    std::fs::rename(next, zone.join("temp")).unwrap();
}

/// `GET /api/v1/alerts`, each list narrowed to [`ours`].
fn alerts(url: &str) -> Value {
    let body = get_json(&format!("{url}/api/v1/alerts"));
    let mut narrowed = serde_json::Map::new();
    for list in ["firing", "pending", "resolved"] {
        let ours: Vec<Value> = body[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list} list in {body}"))
            .iter()
            .filter(|a| ours(a))
            .cloned()
            .collect();
        narrowed.insert(list.to_owned(), Value::Array(ours));
    }
    Value::Object(narrowed)
}

/// Milliseconds since the epoch of an RFC 3339 field.
fn ms(field: &Value) -> i64 {
    let text = field
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {field}"));
    let time = humantime::parse_rfc3339(text).unwrap_or_else(|e| panic!("{text}: {e}"));
    time.duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Whole seconds from `since` to `at`, as the one-line message shows them under a minute.
fn held(alert: &Value) -> String {
    format!("{}s", (ms(&alert["at"]) - ms(&alert["since"])) / 1000)
}

#[test]
fn a_real_agent_heated_then_cooled_fires_repeats_and_resolves_but_a_blip_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let root = fixture_root(dir.path());
    let receiver = GenericWebhookReceiver::start();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_with_config(
        dir.path(),
        port,
        &settings(&receiver),
        // Only the agent's samples are judged, not this machine's own sensors.
        &[("PIVITALS_SELF_MONITOR", "false".to_owned())],
    );
    let mut agent = start_agent_with(
        dir.path(),
        NODE,
        &url,
        "1s",
        &[
            ("PIVITALS_START_JITTER", "false".to_owned()),
            ("PIVITALS_ROOT", root.display().to_string()),
        ],
    );
    let logs = |what: &str| {
        format!(
            "{what}\nprimary:\n{}\nagent:\n{}",
            primary.log_tail(),
            agent.log_tail()
        )
    };

    // The agent pushes, and its sensor reads 45 °C.
    eventually("the agent's node is up at 45 °C", WITHIN, || {
        let nodes = get_json(&format!("{url}/api/v1/nodes"));
        let node = nodes
            .as_array()?
            .iter()
            .find(|n| n["name"] == NODE)?
            .clone();
        let temps = node["latest"]["temperatures"].as_array()?.clone();
        let ours = temps.iter().find(|t| t["sensor"] == "cpu-thermal")?;
        (node_status(&url, NODE) == "up" && ours["celsius"] == 45.0).then_some(())
    });

    // Phase 1: a 1 s blip to 85 °C, shorter than `for = "2s"`. The rule goes pending (the
    // primary saw the hot sample), then the sensor cools before it has held for 2 s.
    let blip = Instant::now();
    set_temp(&root, 85_000);
    eventually("the blip makes the rule pending", WITHIN, || {
        (alerts(&url)["pending"].as_array()?.len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_secs(1).saturating_sub(blip.elapsed()));
    set_temp(&root, 45_000);
    eventually("the blip's pending alert clears", WITHIN, || {
        (alerts(&url)["pending"].as_array()?.is_empty()).then_some(())
    });
    // Longer than `for` with cool samples: nothing may come of the blip.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        receiver.bodies(),
        Vec::<Value>::new(),
        "{}",
        logs("the blip notified")
    );
    assert_eq!(
        alerts(&url),
        json!({"firing": [], "pending": [], "resolved": []}),
        "a blip is never firing nor resolved"
    );
    assert_eq!(
        archived(&dir.path().join("primary"), "alert"),
        Vec::<String>::new()
    );

    // Phase 2: heated to 85 °C for good: firing once it held 2 s.
    set_temp(&root, 85_000);
    let bodies = receiver.wait_for_event("firing");
    let firing = bodies[0].clone();
    assert_eq!(
        firing["event"], "firing",
        "the first notification: {bodies:#?}"
    );
    let since = firing["since"].clone();
    assert_eq!(
        firing,
        json!({
            "rule": "hot", "node": NODE, "labels": {"stack": "7", "role": "worker"},
            "series": {"sensor": "cpu-thermal"}, "event": "firing", "state": "firing",
            "metric": "temperature.celsius", "comparison": "above", "threshold": 80.0,
            "value": 85.0, "since": since, "at": firing["at"], "title": format!("{NODE} hot"),
            "message": format!("{NODE} hot: temperature cpu-thermal 85 °C > 80 for {}", held(&firing)),
        })
    );
    let held_ms = ms(&firing["at"]) - ms(&since);
    assert!(
        (2000..3500).contains(&held_ms),
        "fired after {held_ms} ms of heat, for = 2s"
    );

    let api = alerts(&url);
    assert_eq!(api["firing"].as_array().unwrap().len(), 1, "{api}");
    let listed = &api["firing"][0];
    assert_eq!(listed["state"], "firing");
    assert_eq!(listed["since"], since);
    assert_eq!(listed["value"], 85.0);
    assert_eq!(listed["resolved_at"], Value::Null);
    assert_eq!(api["pending"], json!([]));

    // Still hot: a repeat about 3 s (of sample time) after the firing notification.
    let bodies = receiver.wait_for_event("repeat");
    let repeat = bodies[1].clone();
    assert_eq!(
        repeat["event"], "repeat",
        "the second notification: {bodies:#?}"
    );
    assert_eq!(repeat["state"], "firing");
    assert_eq!(repeat["since"], since);
    assert_eq!(repeat["title"], format!("{NODE} hot still firing"));
    assert_eq!(
        repeat["message"],
        format!(
            "{NODE} hot still firing: temperature cpu-thermal 85 °C > 80 for {}",
            held(&repeat)
        )
    );
    let gap = ms(&repeat["at"]) - ms(&firing["at"]);
    assert!(
        (3000..5000).contains(&gap),
        "repeat {gap} ms after firing, repeat = 3s"
    );

    // Phase 3: cooled to 45 °C: resolved.
    set_temp(&root, 45_000);
    let bodies = receiver.wait_for_event("resolved");
    let resolved = bodies.last().unwrap().clone();
    assert_eq!(resolved["event"], "resolved", "{bodies:#?}");
    assert_eq!(resolved["state"], "resolved");
    assert_eq!(resolved["value"], 45.0);
    assert_eq!(resolved["since"], since);
    assert_eq!(resolved["title"], format!("{NODE} hot resolved"));
    assert_eq!(
        resolved["message"],
        format!(
            "{NODE} hot resolved: temperature cpu-thermal 45 °C, was > 80 for {}",
            held(&resolved)
        )
    );
    // Firing, then only repeats (one, unless a slow machine delayed the cooling), then resolved.
    let events: Vec<&Value> = bodies.iter().map(|b| &b["event"]).collect();
    assert!(
        events[1..events.len() - 1].iter().all(|e| *e == "repeat"),
        "{events:?}"
    );

    let api = alerts(&url);
    assert_eq!(api["firing"], json!([]), "{api}");
    assert_eq!(api["pending"], json!([]), "{api}");
    assert_eq!(api["resolved"].as_array().unwrap().len(), 1, "{api}");
    let gone = &api["resolved"][0];
    assert_eq!(gone["state"], "resolved");
    assert_eq!(gone["since"], since);
    assert_eq!(gone["value"], 45.0);
    assert_eq!(gone["resolved_at"], resolved["at"]);

    // The archive holds the two transitions (a repeat is none), tagged with the node.
    let ns = |alert: &Value| (ms(&alert["at"]) * 1_000_000).to_string();
    let expected = [
        format!(
            "alert,node={NODE},role=worker,rule=hot,sensor=cpu-thermal,stack=7 state=\"firing\",value=85 {}",
            ns(&firing)
        ),
        format!(
            "alert,node={NODE},role=worker,rule=hot,sensor=cpu-thermal,stack=7 state=\"resolved\",value=45 {}",
            ns(&resolved)
        ),
    ];
    let data_dir = dir.path().join("primary");
    let lines = eventually(
        "the firing and resolved alert lines in the archive",
        WITHIN,
        || {
            let lines = archived(&data_dir, "alert");
            (lines.len() >= 2).then_some(lines)
        },
    );
    assert_eq!(lines, expected);

    agent.stop_cleanly(WITHIN);
    primary.stop_cleanly(WITHIN);
}
