//! The dashboard's ranged history and its ways of finding a board, in a real headless Chromium
//! driven through chromedriver ([`pivitals_testkit::browser`]).
//!
//! - On the embedded default (no InfluxDB): the primary binary, two agent binaries at one
//!   second and a node `old-pi` fed seven days of samples through `POST /api/v1/vitals` (every
//!   ten minutes, the last two hours every minute, with peaks). Every range (1 h … 30 d) is
//!   clicked on `old-pi`'s page: each of the nine charts draws points, a peak band and a mean
//!   line, as many points as the API answers. The grid is sorted, filtered and searched with
//!   real clicks and keys; the URL keeps the view through a reload and the back button; a
//!   390 px wide phone viewport scrolls no page sideways and shows one card per row; the
//!   colours follow `prefers-color-scheme` (emulated through the DevTools protocol); "Add a
//!   board" shows the install command only signed in (and nothing, signed in, on a primary
//!   without agent binaries, whose endpoint answers 404). Screenshots of the overview, the node
//!   page and the stack view, light and dark, go to `target/dashboard-*.png`.
//! - The same primary restarted on its data directory still draws `old-pi`'s 7 d chart
//!   (rollups survive), and `old-pi`'s card, of which the restarted primary has no sample,
//!   shows the newest point of its history instead of blanks.
//! - With a real InfluxDB 1.x behind the primary, each range is drawn once from InfluxDB.
//!
//! Chromium and chromedriver come from the Debian packages `chromium` and `chromium-driver`;
//! without them the tests fail saying so.

use std::path::Path;
use std::time::Duration;

use pivitals_common::{
    CpuVitals, DiskIoRates, DiskIoVitals, InterfaceInfo, LoadAverage, MemoryVitals, NetRates,
    NetVitals, NodeInfo, RegisterRequest, TemperatureVitals, VitalsPayload,
};
use pivitals_testkit::actions::{json_request, register};
use pivitals_testkit::browser::{Driver, Session, required, save_screenshot};
use pivitals_testkit::harness::{
    Proc, eventually, get_json, start_agent, start_agent_with, start_primary,
    start_primary_on_influx_v1,
};
use pivitals_testkit::history::{HISTORY_SERIES, push_samples, ranged_history};
use pivitals_testkit::samples::{now_ms, pi_sample};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::{Value, json};

const ADMIN: &str = "history-browser-admin-token-01";
const RANGES: [&str; 5] = ["1h", "6h", "24h", "7d", "30d"];
/// The address `old-pi` reports, found by the search.
const OLD_PI_IP: &str = "10.77.0.9";

/// One sample of `old-pi` at `ts`: CPU, memory, temperature and load with their peaks, the
/// disks of [`pi_sample`], one interface and one disk with rates. The CPU follows a daily wave
/// so the charts have a shape.
fn old_sample(ts: i64) -> VitalsPayload {
    let hours = ts as f64 / 3_600_000.0;
    let cpu = 30.0 + 25.0 * (hours * std::f64::consts::TAU / 24.0).sin();
    let mut sample = pi_sample(ts, cpu, 50.0 + cpu / 5.0);
    sample.cpu = Some(CpuVitals {
        usage_percent: cpu,
        usage_percent_min: Some(cpu / 2.0),
        usage_percent_max: Some((cpu + 35.0).min(100.0)),
        cores: 4,
        ..Default::default()
    });
    sample.memory = Some(MemoryVitals {
        total_bytes: 1000,
        available_bytes: 600,
        used_bytes: 400,
        used_bytes_min: Some(350),
        used_bytes_max: Some(700),
    });
    sample.temperatures = vec![TemperatureVitals {
        sensor: "cpu-thermal".into(),
        celsius: 50.0 + cpu / 5.0,
        celsius_min: Some(48.0 + cpu / 5.0),
        celsius_max: Some(58.0 + cpu / 5.0),
    }];
    sample.load = Some(LoadAverage {
        one: cpu / 25.0,
        five: cpu / 30.0,
        fifteen: cpu / 35.0,
        one_min: Some(cpu / 40.0),
        one_max: Some(cpu / 10.0),
    });
    sample.networks = vec![NetVitals {
        interface: "eth0".into(),
        rates: Some(NetRates {
            rx_bytes_per_second: 20_000.0 + cpu * 1000.0,
            tx_bytes_per_second: 5_000.0 + cpu * 300.0,
            ..Default::default()
        }),
        ..Default::default()
    }];
    sample.disk_io = vec![DiskIoVitals {
        device: "mmcblk0".into(),
        rates: Some(DiskIoRates {
            read_bytes_per_second: 4096.0 * cpu,
            write_bytes_per_second: 8192.0 * cpu,
            busy_percent: cpu / 10.0,
            ..Default::default()
        }),
        ..Default::default()
    }];
    sample
}

/// Registers `old-pi` (labelled `stack=1,role=archive`, at [`OLD_PI_IP`]) and pushes seven
/// days of its samples: every ten minutes, the last two hours every minute, the newest (CPU
/// at 100 %, first when sorted by CPU however busy this machine is) a minute ago.
fn feed_old_pi(url: &str) {
    let request = RegisterRequest {
        node_name: "old-pi".into(),
        info: NodeInfo {
            hostname: "old-pi".into(),
            os: "Debian GNU/Linux".into(),
            os_version: "12".into(),
            kernel: "6.6.31+rpt-rpi-v8".into(),
            board_model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            cpu_cores: 4,
            memory_total_bytes: 8 << 30,
            default_interface: Some("eth0".into()),
            interfaces: vec![InterfaceInfo {
                name: "eth0".into(),
                mac: Some("dc:a6:32:01:02:03".into()),
                ipv4: vec![OLD_PI_IP.into()],
                ipv6: vec![],
            }],
            ..Default::default()
        },
        labels: [("stack", "1"), ("role", "archive")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        interval_seconds: 1,
        hardware: None,
    };
    let token = register(url, &request);
    let now = now_ms();
    let minute = 60_000;
    let week = 7 * 24 * 60 * minute;
    let mut stamps: Vec<i64> = (1..week / (10 * minute))
        .map(|i| now - week + i * 10 * minute)
        .filter(|ts| *ts < now - 2 * 60 * minute)
        .collect();
    stamps.extend((1..=120).map(|i| now - (121 - i) * minute));
    let mut samples: Vec<VitalsPayload> = stamps.into_iter().map(old_sample).collect();
    if let Some(cpu) = samples.last_mut().and_then(|s| s.cpu.as_mut()) {
        cpu.usage_percent = 100.0;
        cpu.usage_percent_max = Some(100.0);
    }
    push_samples(url, &token, &samples);
}

/// `GET /api/v1/nodes/{node}/history?range={range}`, which must answer the ranged contract.
fn ranged(url: &str, node: &str, range: &str) -> Value {
    let (status, body) = ranged_history(url, node, range);
    assert_eq!(status, 200, "{range}: {body}");
    assert!(
        body["series"].is_object(),
        "the primary answers ?range={range} without `series` (no ranged history): {body}"
    );
    body
}

/// Points of `series` with a mean.
fn points(body: &Value, series: &str) -> usize {
    body["series"][series]
        .as_array()
        .map_or(0, |p| p.iter().filter(|p| p[1].is_number()).count())
}

/// Waits until `script` (a function body) answers something other than null or false.
fn wait_for(session: &Session, what: &str, script: &str) -> Value {
    eventually(what, Duration::from_secs(30), || {
        let value = session.eval(script);
        (!value.is_null() && value != json!(false)).then_some(value)
    })
}

/// Each chart of the node page: [series, points drawn, bands, mean lines, aria-label].
const CHARTS: &str = "const v = document.getElementById('node-view'); \
    if (v.hidden) return null; \
    return [...v.querySelectorAll('.charts svg[data-series]')].map(s => [s.dataset.series, \
      Number(s.dataset.points), s.querySelectorAll('path.band').length, \
      s.querySelectorAll('path.line').length, s.getAttribute('aria-label')])";

/// Opens `range` on the node page with a real click and waits until the page draws it: the
/// nine charts, the link marked current and the range in the URL.
fn click_range(session: &Session, range: &str) -> Vec<(String, u64, u64, u64, String)> {
    wait_for(
        session,
        "the range links",
        "return document.querySelector('#node-view .ranges a') !== null",
    );
    session.click(&format!(".ranges a[data-range=\"{range}\"]"));
    let words = match range {
        "1h" => "hour",
        "6h" => "6 hours",
        "24h" => "24 hours",
        "7d" => "7 days",
        _ => "30 days",
    };
    let script = format!(
        "const current = document.querySelector('.ranges a[aria-current=true]'); \
         if (!current || current.dataset.range !== '{range}') return null; \
         const charts = (() => {{ {CHARTS} }})(); \
         if (!charts || charts.length !== 9) return null; \
         if (!charts.every(c => c[4].includes('{words}'))) return null; \
         return [location.hash, charts];"
    );
    let answer = wait_for(session, &format!("the {range} charts"), &script);
    let hash = answer[0].as_str().unwrap();
    if range == "1h" {
        assert!(!hash.contains("range="), "the default range: {hash}");
    } else {
        assert!(hash.ends_with(&format!("?range={range}")), "{hash}");
    }
    serde_json::from_value(answer[1].clone()).unwrap()
}

/// Every range on `node`'s page, each checked against the API: each series the API has points
/// for is drawn with about as many points (the page and this test ask a moment apart), a band
/// and a mean line.
fn drive_every_range(session: &Session, url: &str, node: &str, want_every_series: bool) {
    for range in RANGES {
        let charts = click_range(session, range);
        let body = ranged(url, node, range);
        assert_eq!(
            charts.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(),
            HISTORY_SERIES,
            "{range}"
        );
        for (series, drawn, bands, lines, label) in &charts {
            let answered = points(&body, series) as u64;
            if want_every_series {
                assert!(answered >= 1, "{node} {range} {series}: no points answered");
            }
            if answered == 0 {
                continue;
            }
            assert!(
                drawn.abs_diff(answered) <= 2 && *drawn >= 1,
                "{node} {range} {series}: {drawn} drawn, {answered} answered ({label})"
            );
            assert!(
                *bands >= 1 && *lines >= 1,
                "{node} {range} {series}: {bands} bands, {lines} lines"
            );
        }
    }
}

/// The node of every card shown, in page order.
fn shown_cards(session: &Session) -> Vec<String> {
    let value = session.eval(
        "return [...document.querySelectorAll('#groups article.card')].map(c => c.dataset.node)",
    );
    serde_json::from_value(value).unwrap()
}

fn wait_for_cards(session: &Session, what: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let shown = shown_cards(session);
        if shown == want {
            return;
        }
        if std::time::Instant::now() > deadline {
            panic!(
                "{what}: {shown:?} shown at {} with search {}",
                hash(session),
                session.eval("return document.getElementById('search').value")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn pick(session: &Session, select: &str, value: &str) {
    session.click(&format!("#{select} option[value=\"{value}\"]"));
}

fn hash(session: &Session) -> String {
    session
        .eval("return location.hash")
        .as_str()
        .unwrap()
        .to_owned()
}

/// The page is no wider than the viewport: nothing scrolls sideways.
fn assert_no_sideways_scroll(session: &Session, page: &str) {
    let widths = session.eval(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth]",
    );
    let scroll = widths[0].as_u64().unwrap();
    let client = widths[1].as_u64().unwrap();
    assert!(
        scroll <= client && client <= 390,
        "{page} at 390 px: {widths}"
    );
}

/// Background colours of the page, the header and the first rack (the stack view is built
/// once the grid has drawn, hidden or not), as computed, and whether the page sees dark.
fn colours(session: &Session) -> Value {
    session.eval(
        "const bg = (el) => el ? getComputedStyle(el).backgroundColor : null; \
         return [bg(document.body), bg(document.querySelector('header.top')), bg(document.querySelector('.rack')), \
           matchMedia('(prefers-color-scheme: dark)').matches]",
    )
}

fn sign_in(session: &Session) {
    session.type_into("#signin-token", ADMIN);
    session.click("#signin-button");
    wait_for(
        session,
        "signed in",
        "return !document.getElementById('signed-in').hidden",
    );
}

/// Ends a test: the browser first, then the primary, which must exit cleanly.
fn close(session: Session, driver: Driver, mut primary: Proc) {
    drop(session);
    drop(driver);
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", primary.log_tail());
}

/// `GET /api/v1/admin/install-command` with the admin token: the status and the answer.
fn install_command(url: &str) -> (u16, Value) {
    json_request(
        "GET",
        &format!("{url}/api/v1/admin/install-command"),
        Some(ADMIN),
        &Value::Null,
    )
}

fn shoot(session: &Session, dir: &Path, name: &str) {
    let png = session.screenshot();
    let path = save_screenshot(&png, dir, name);
    eprintln!("screenshot: {} ({} bytes)", path.display(), png.len());
}

/// A primary on the embedded default with `web-a` (stack 7) and `web-b` (stack 8, role db)
/// pushing every second and `old-pi` fed a week; waits until `old-pi`'s week is in the
/// ranged history.
fn start_cluster(dir: &Path, port: u16, extra: &[(&str, String)]) -> (Proc, Vec<Proc>) {
    let url = format!("http://127.0.0.1:{port}");
    let mut settings = vec![
        ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
    ];
    settings.extend(extra.iter().cloned());
    let primary = start_primary(dir, port, &settings);
    let agents = vec![
        start_agent(dir, "web-a", &url, "1s"),
        start_agent_with(
            dir,
            "web-b",
            &url,
            "1s",
            &[("PIVITALS_LABELS", "stack=8,role=db".into())],
        ),
    ];
    feed_old_pi(&url);
    wait_for_week(&url);
    (primary, agents)
}

fn wait_for_week(url: &str) {
    eventually(
        "old-pi's week in the ranged history",
        Duration::from_secs(60),
        || {
            let body = ranged(url, "old-pi", "7d");
            (points(&body, "cpu_percent") >= 100).then_some(())
        },
    );
}

#[test]
fn every_range_sort_filter_search_phone_and_dark_mode_in_a_real_browser() {
    required("chromium");
    required("chromedriver");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    // An agent "binary" to serve makes the primary offer the install command.
    let binaries = dir.path().join("agent-binaries");
    std::fs::create_dir_all(&binaries).unwrap();
    std::fs::write(binaries.join("pivitals-agent-aarch64"), b"an agent").unwrap();
    let (primary, _agents) = start_cluster(
        dir.path(),
        port,
        &[("PIVITALS_AGENT_BINARIES", binaries.display().to_string())],
    );
    eventually("both agents up", Duration::from_secs(30), || {
        let nodes = get_json(&format!("{url}/api/v1/nodes"));
        let up = nodes
            .as_array()?
            .iter()
            .filter(|n| n["status"] == "up")
            .count();
        (up == 2).then_some(())
    });
    let driver = Driver::start(dir.path());
    let session = Session::new(&driver, &dir.path().join("profile"));
    session.viewport(1280, 800, false);
    session.color_scheme("light");

    // old-pi's page: every range, every series, points and peaks.
    session.go(&format!("{url}/#/nodes/old-pi"));
    drive_every_range(&session, &url, "old-pi", true);
    // The back button steps back through the ranges.
    session.eval("history.back()");
    wait_for(
        &session,
        "back to 7 d",
        "return location.hash === '#/nodes/old-pi?range=7d' && \
         document.querySelector('.ranges a[aria-current=true]')?.dataset.range === '7d'",
    );
    let page = session.eval(
        "const v = document.getElementById('node-view'); return { \
           facts: [...v.querySelectorAll('.facts dt')].map(d => d.textContent), \
           values: [...v.querySelectorAll('.facts dd')].map(d => d.textContent), \
           disks: v.querySelectorAll('.panel[aria-label=Disks] tbody tr').length, \
           nets: v.querySelectorAll('.panel[aria-label=\"Network interfaces\"] tbody tr').length, \
           temps: v.querySelectorAll('.panel[aria-label=Temperatures] tbody tr').length, \
           alerts: !!v.querySelector('.panel[aria-label=Alerts]') }",
    );
    for fact in [
        "IPv4 address",
        "MAC address",
        "Board",
        "Operating system",
        "Kernel",
        "Power",
    ] {
        assert!(
            page["facts"].as_array().unwrap().contains(&json!(fact)),
            "{fact}: {page}"
        );
    }
    assert!(
        page["values"]
            .as_array()
            .unwrap()
            .contains(&json!(OLD_PI_IP)),
        "{page}"
    );
    assert_eq!(
        (&page["disks"], &page["nets"], &page["temps"]),
        (&json!(2), &json!(1), &json!(1)),
        "{page}"
    );
    assert_eq!(page["alerts"], true, "{page}");
    shoot(&session, dir.path(), "dashboard-node-light.png");
    session.color_scheme("dark");
    wait_for(
        &session,
        "dark colours",
        "return getComputedStyle(document.body).backgroundColor === 'rgb(13, 17, 23)'",
    );
    shoot(&session, dir.path(), "dashboard-node-dark.png");
    session.color_scheme("light");

    // A real agent's page draws what the API has for each range.
    session.go(&format!("{url}/#/nodes/web-a"));
    wait_for(
        &session,
        "web-a's page",
        "return document.querySelector('#node-view .ranges') !== null",
    );
    drive_every_range(&session, &url, "web-a", false);

    // The grid: sort by CPU (old-pi's last known 100 % first), the page's own values in order.
    session.go(&format!("{url}/#/"));
    wait_for_cards(&session, "three cards", &["old-pi", "web-a", "web-b"]);
    let old_card = session.eval(
        "const c = document.querySelector('article[data-node=\"old-pi\"]'); \
         return [c.dataset.status, c.querySelector('.meta').textContent, \
           c.querySelector('[data-rate=net]').textContent, c.querySelector('[data-rate=io]').textContent]",
    );
    assert_ne!(old_card[0], "up", "{old_card}");
    assert!(
        old_card[1].as_str().unwrap().contains("Last known values")
            && old_card[1].as_str().unwrap().contains("Last seen"),
        "an offline card says what it shows: {old_card}"
    );
    assert!(
        old_card[2].as_str().unwrap().contains("/s in")
            && old_card[3].as_str().unwrap().contains("/s read"),
        "rates on the card: {old_card}"
    );
    pick(&session, "sort", "cpu");
    wait_for(
        &session,
        "sorted by CPU",
        "return location.hash === '#/?sort=cpu' && \
         document.querySelector('#groups article.card')?.dataset.node === 'old-pi'",
    );
    let cpu = session.eval(
        "return [...document.querySelectorAll('#groups article.card')].map(c => \
           parseFloat(c.querySelector('.metrics dd.value').textContent))",
    );
    let cpu: Vec<f64> = serde_json::from_value(cpu).unwrap();
    assert!(
        cpu.windows(2).all(|w| w[0] >= w[1]),
        "busiest first: {cpu:?}"
    );
    assert_eq!(cpu[0], 100.0);

    // Filter by status: old-pi is the only one not up.
    pick(&session, "status-filter", "not-up");
    wait_for_cards(&session, "only old-pi not up", &["old-pi"]);
    assert_eq!(hash(&session), "#/?sort=cpu&status=not-up");
    pick(&session, "status-filter", "");
    wait_for(
        &session,
        "three again",
        "return document.querySelectorAll('#groups article.card').length === 3",
    );
    // Search by address.
    session.type_into("#search", OLD_PI_IP);
    wait_for_cards(&session, "old-pi found by its address", &["old-pi"]);
    // Emptied as the field's own clear button does (WebDriver's clear fires no input event).
    session.eval(
        "const s = document.getElementById('search'); s.value = ''; s.dispatchEvent(new Event('input'));",
    );
    // Filter by label, then search by name within it: the bookmark.
    pick(&session, "sort", "name");
    pick(&session, "label-filter", "stack=7");
    wait_for_cards(&session, "stack 7 only", &["web-a"]);
    pick(&session, "label-filter", "");
    wait_for_cards(&session, "all again", &["old-pi", "web-a", "web-b"]);
    pick(&session, "label-filter", "role=db");
    wait_for_cards(&session, "role=db only", &["web-b"]);
    pick(&session, "sort", "seen");
    session.type_into("#search", "web");
    wait_for(
        &session,
        "the view in the URL",
        "return location.hash === '#/?sort=seen&label=role%3Ddb&q=web'",
    );
    let bookmark = hash(&session);
    // A reload (a new document, as when the bookmark is opened) restores the view.
    session.eval("window.beforeReload = true; location.reload();");
    wait_for(
        &session,
        "a new document",
        "return window.beforeReload === undefined && document.querySelectorAll('#groups article.card').length > 0",
    );
    wait_for_cards(&session, "the bookmarked view restored", &["web-b"]);
    assert_eq!(hash(&session), bookmark);
    assert_eq!(
        session.eval(
            "return ['search', 'sort', 'status-filter', 'label-filter'].map(id => document.getElementById(id).value)"
        ),
        json!(["web", "seen", "", "role=db"])
    );
    // The back button from another view returns to it.
    session.click("#view-stacks");
    wait_for(
        &session,
        "the stack view",
        "return location.hash.startsWith('#stacks') && !document.getElementById('stack-view').hidden",
    );
    session.eval("history.back()");
    wait_for_cards(&session, "back to the bookmarked view", &["web-b"]);
    assert_eq!(hash(&session), bookmark);

    // Screenshots of the overview and the stack view, light and dark.
    // The overview sorted by CPU: one row of cards across the groups.
    session.go(&format!("{url}/#/?sort=cpu"));
    wait_for(
        &session,
        "the overview",
        "return document.querySelectorAll('#groups article.card').length === 3",
    );
    let light = colours(&session);
    shoot(&session, dir.path(), "dashboard-overview-light.png");
    session.color_scheme("dark");
    wait_for(
        &session,
        "dark overview",
        "return matchMedia('(prefers-color-scheme: dark)').matches",
    );
    let dark = colours(&session);
    assert_eq!(
        light,
        json!([
            "rgb(244, 246, 248)",
            "rgb(255, 255, 255)",
            "rgb(216, 222, 228)",
            false
        ])
    );
    assert_eq!(
        dark,
        json!([
            "rgb(13, 17, 23)",
            "rgb(22, 27, 34)",
            "rgb(45, 51, 59)",
            true
        ])
    );
    shoot(&session, dir.path(), "dashboard-overview-dark.png");
    session.go(&format!("{url}/#stacks"));
    wait_for(
        &session,
        "the stack view",
        "return document.querySelectorAll('.rack article.board').length === 3",
    );
    assert_eq!(colours(&session)[2], "rgb(45, 51, 59)", "a dark rack");
    shoot(&session, dir.path(), "dashboard-stacks-dark.png");
    session.color_scheme("light");
    wait_for(
        &session,
        "a light rack",
        "return getComputedStyle(document.querySelector('.rack')).backgroundColor === 'rgb(216, 222, 228)'",
    );
    shoot(&session, dir.path(), "dashboard-stacks-light.png");

    // A phone: 390 px wide, nothing scrolls sideways, one card per row.
    session.viewport(390, 844, true);
    for (page, ready) in [
        (
            "#/",
            "return document.querySelectorAll('#groups article.card').length === 3",
        ),
        (
            "#/nodes/old-pi?range=7d",
            "return document.querySelectorAll('#node-view .charts svg').length === 9",
        ),
        (
            "#stacks",
            "return document.querySelectorAll('.rack').length >= 2",
        ),
    ] {
        session.go(&format!("{url}/{page}"));
        wait_for(&session, page, ready);
        assert_no_sideways_scroll(&session, page);
    }
    session.go(&format!("{url}/#/"));
    wait_for(
        &session,
        "cards",
        "return document.querySelectorAll('#groups article.card').length === 3",
    );
    let lefts = session.eval(
        "return [...new Set([...document.querySelectorAll('#groups article.card')].map(c => Math.round(c.getBoundingClientRect().left)))]",
    );
    assert_eq!(
        lefts.as_array().unwrap().len(),
        1,
        "one card per row: {lefts}"
    );
    session.viewport(1280, 800, false);

    // Add a board: only signed in; the command as the primary answers it, kept nowhere else.
    assert_eq!(
        session.eval("return document.getElementById('add-board').hidden"),
        json!(true)
    );
    sign_in(&session);
    let (status, install) = install_command(&url);
    assert_eq!(status, 200, "{install}");
    let command = install["command"].as_str().unwrap().to_owned();
    assert!(command.contains("--token "), "{command}");
    let shown = wait_for(
        &session,
        "the install command",
        "const b = document.getElementById('add-board'); \
         return b.hidden ? null : document.getElementById('install-command').textContent",
    );
    assert_eq!(shown, json!(command));
    let kept = session.eval(
        "return location.href + JSON.stringify(localStorage) + JSON.stringify(sessionStorage)",
    );
    assert!(
        !kept.as_str().unwrap().contains("--token"),
        "not in the URL or storage: {kept}"
    );
    session.click("#signout-button");
    wait_for(
        &session,
        "hidden and dropped at sign-out",
        "return document.getElementById('add-board').hidden && \
         document.getElementById('install-command').textContent === ''",
    );

    close(session, driver, primary);
}

#[test]
fn the_seven_day_chart_survives_a_restart_of_the_primary() {
    required("chromium");
    required("chromedriver");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (mut primary, mut agents) = start_cluster(dir.path(), port, &[]);
    let before = points(&ranged(&url, "old-pi", "7d"), "cpu_percent");
    for agent in &mut agents {
        agent.terminate(Duration::from_secs(15));
    }
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", primary.log_tail());

    let primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.into()),
            ("PIVITALS_SELF_MONITOR", "false".into()),
        ],
    );
    let after = points(&ranged(&url, "old-pi", "7d"), "cpu_percent");
    assert!(
        after + 2 >= before,
        "{before} points before the restart, {after} after"
    );
    let driver = Driver::start(dir.path());
    let session = Session::new(&driver, &dir.path().join("profile"));
    session.go(&format!("{url}/#/nodes/old-pi?range=7d"));
    let drawn = wait_for(
        &session,
        "the 7 d chart after the restart",
        "const s = document.querySelector('#node-view svg[data-series=cpu_percent]'); \
         return s && s.getAttribute('aria-label').includes('7 days') ? \
           [Number(s.dataset.points), s.querySelectorAll('path.band').length] : null",
    );
    let drawn: (usize, usize) = serde_json::from_value(drawn).unwrap();
    assert!(
        drawn.0 + 2 >= before && drawn.0 >= 100 && drawn.1 >= 1,
        "{drawn:?} drawn, {before} before the restart"
    );
    // Its card, offline since before the restart, shows its last known values (the primary
    // kept its newest sample and last push across the clean restart) instead of blanks.
    session.go(&format!("{url}/#/"));
    let card = wait_for(
        &session,
        "old-pi's card with its last known values",
        "const c = document.querySelector('article[data-node=\"old-pi\"]'); \
         const meta = c && c.querySelector('.meta').textContent; \
         return meta && meta.includes('Last known values') ? \
           [meta, c.querySelector('.metrics dd.value').textContent] : null",
    );
    let meta = card[0].as_str().unwrap();
    assert!(
        meta.contains("Last seen") && !meta.contains("not since"),
        "the last push is kept too: {card}"
    );
    assert_eq!(card[1], "100\u{a0}%", "the last CPU pushed: {card}");
    eprintln!("old-pi's card after the restart: {meta}");
    // This primary serves no agent binaries: its install command answers 404, and signed in
    // the page offers no "Add a board".
    sign_in(&session);
    let (status, install) = install_command(&url);
    assert_eq!(status, 404, "{install}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        session.eval("return document.getElementById('add-board').hidden"),
        json!(true)
    );
    close(session, driver, primary);
}

#[test]
fn every_range_is_drawn_from_a_real_influxdb_1() {
    required("chromium");
    required("chromedriver");
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary_on_influx_v1(dir.path(), port, &influx, "pivitals", &[]);
    let _agent = start_agent(dir.path(), "web-a", &url, "1s");
    feed_old_pi(&url);
    eventually("old-pi's week in InfluxDB", Duration::from_secs(60), || {
        let body = ranged(&url, "old-pi", "7d");
        assert_eq!(body["source"], "influxdb", "{body}");
        (points(&body, "cpu_percent") >= 100).then_some(())
    });
    let driver = Driver::start(dir.path());
    let session = Session::new(&driver, &dir.path().join("profile"));
    session.go(&format!("{url}/#/nodes/old-pi"));
    drive_every_range(&session, &url, "old-pi", true);
    let source = session.eval("return document.querySelector('#node-view .source').textContent");
    assert!(
        source.as_str().unwrap().starts_with("From InfluxDB"),
        "{source}"
    );
    close(session, driver, primary);
}
