//! The dashboard in a real headless Chromium: the primary binary and two agent binaries at
//! one second, the page loaded once and watched through chromedriver's WebDriver API
//! ([`pivitals_testkit::browser`]). The page must list both nodes up, show a node killed
//! without a goodbye late and then down without being reloaded, draw a node's page, and
//! deregister a node with the admin token. The binaries start through testkit's harness. Screenshots are saved in the test's directory and copied to
//! `target/dashboard-screenshot.png` (and `target/dashboard-node-screenshot.png`).
//!
//! A second test starts the primary with a rule file (`--config`) whose rule fires at once on
//! its one agent, and checks in Chromium's DOM that the alert is listed above the grid, counted
//! on the node's card and listed on the node's page.
//!
//! Chromium and chromedriver come from the Debian packages `chromium` and `chromium-driver`;
//! without them the test fails saying so.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pivitals_common::VitalsPayload;
use pivitals_testkit::browser::{Driver, Session, chromium_switches, required, save_screenshot};
use pivitals_testkit::harness::{
    ENROLL, command, eventually, get_json, start_agent, start_primary, workspace_binary,
};
use pivitals_testkit::history::push_samples;
use pivitals_testkit::{free_port, http};
use serde_json::{Value, json};

const ADMIN: &str = "browser-test-admin-token-0001";

/// (node, data-status, badge text) of every card on the grid, in page order.
fn cards(session: &Session) -> Vec<(String, String, String)> {
    let value = session.eval(
        "return [...document.querySelectorAll('article.card')].map(c => \
         [c.dataset.node, c.dataset.status, c.querySelector('.badge').textContent.trim()])",
    );
    serde_json::from_value(value).unwrap_or_default()
}

fn card_of(session: &Session, node: &str) -> Option<(String, String)> {
    cards(session)
        .into_iter()
        .find(|(n, _, _)| n == node)
        .map(|(_, status, badge)| (status, badge))
}

/// The whole start tag in `html` that holds `needle`.
fn tag_with<'a>(html: &'a str, needle: &str) -> Option<&'a str> {
    let at = html.find(needle)?;
    let start = html[..at].rfind('<')?;
    let end = at + html[at..].find('>')?;
    Some(&html[start..=end])
}

/// The first `<element …>` start tag of `html` holding `needle`: a node's card, not an alert
/// above the grid that names the same node (a disk-full alert pends on a nearly full machine).
fn start_tag_of<'a>(html: &'a str, element: &str, needle: &str) -> Option<&'a str> {
    let opening = format!("<{element} ");
    html.match_indices(needle).find_map(|(at, _)| {
        let start = html[..at].rfind('<')?;
        let end = at + html[at..].find('>')?;
        let tag = &html[start..=end];
        tag.starts_with(&opening).then_some(tag)
    })
}

#[test]
fn the_dashboard_shows_the_cluster_live_in_a_real_browser() {
    let chromium = required("chromium");
    required("chromedriver");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.into()),
            ("PIVITALS_SELF_MONITOR", "true".into()),
            ("PIVITALS_SELF_INTERVAL", "1s".into()),
        ],
    );
    let mut agents = [
        start_agent(dir.path(), "web-a", &url, "1s"),
        start_agent(dir.path(), "web-b", &url, "1s"),
    ];
    eventually("both agents up", Duration::from_secs(30), || {
        let nodes = get_json(&format!("{url}/api/v1/nodes"));
        let up = |name: &str| {
            nodes
                .as_array()?
                .iter()
                .find(|n| n["name"] == name && n["status"] == "up" && !n["latest"].is_null())
        };
        (up("web-a").is_some() && up("web-b").is_some()).then_some(())
    });

    // The hour is kept in one-minute slots: web-a's two minutes before this one, pushed late
    // with its own token as an agent's backlog would be, give its sparkline three points
    // once the page loads (it then asks only for what is newer).
    let credential: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("web-a/credential.json")).unwrap(),
    )
    .unwrap();
    let latest: VitalsPayload =
        serde_json::from_value(get_json(&format!("{url}/api/v1/nodes/web-a"))["latest"].clone())
            .unwrap();
    let backlog: Vec<VitalsPayload> = [120_000, 60_000]
        .iter()
        .map(|ago| VitalsPayload {
            timestamp_ms: latest.timestamp_ms - ago,
            ..latest.clone()
        })
        .collect();
    push_samples(&url, credential["node_token"].as_str().unwrap(), &backlog);
    // One load with Chromium's own switches: after the scripts ran, the DOM lists both up.
    let dump = Command::new(&chromium)
        .args(chromium_switches(&dir.path().join("dump-profile")))
        .args([
            "--virtual-time-budget=5000",
            "--dump-dom",
            &format!("{url}/"),
        ])
        .stderr(Stdio::null())
        .output()
        .expect("run chromium --dump-dom");
    let dom = String::from_utf8_lossy(&dump.stdout);
    for node in ["web-a", "web-b"] {
        let card = start_tag_of(&dom, "article", &format!("data-node=\"{node}\""))
            .unwrap_or_else(|| panic!("{node} not on the page:\n{dom}"));
        assert!(card.contains("data-status=\"up\""), "{card}");
    }

    // The live page, loaded once.
    let driver = Driver::start(dir.path());
    let session = Session::new(&driver, &dir.path().join("profile"));
    session.go(&format!("{url}/"));
    eventually("both nodes up on the page", Duration::from_secs(20), || {
        let up = |n: &str| card_of(&session, n) == Some(("up".into(), "Up".into()));
        (up("web-a") && up("web-b")).then_some(())
    });
    let grouped = session.eval(
        "return [...document.querySelectorAll('.group > h2')].map(h => h.firstChild.textContent)",
    );
    assert_eq!(
        grouped,
        json!(["stack 7", "ungrouped"]),
        "agents carry stack=7; the primary's own host has no stack"
    );
    // Each card shows its node's address: the API's `primary_ipv4` (this machine's, as the
    // agents run here) and the MAC of the default route's interface.
    let nodes = get_json(&format!("{url}/api/v1/nodes"));
    let web_a = nodes
        .as_array()
        .and_then(|n| n.iter().find(|n| n["name"] == "web-a"))
        .expect("web-a listed")
        .clone();
    let ipv4 = web_a["primary_ipv4"]
        .as_str()
        .expect("the agent reports this machine's IPv4 address")
        .to_owned();
    let shown = eventually(
        "web-a's address on its card",
        Duration::from_secs(10),
        || {
            let shown = session.eval(
            "const c = document.querySelector('article[data-node=\"web-a\"] .addr'); \
             return c ? [c.querySelector('.ip')?.textContent, c.querySelector('.mac')?.textContent ?? null] : null",
        );
            (!shown.is_null()).then_some(shown)
        },
    );
    let default = &web_a["info"]["default_interface"];
    let mac = web_a["info"]["interfaces"]
        .as_array()
        .and_then(|i| i.iter().find(|i| &i["name"] == default))
        .map(|i| {
            format!(
                "{} {}",
                i["name"].as_str().unwrap(),
                i["mac"].as_str().unwrap()
            )
        });
    assert_eq!(shown, json!([ipv4, mac]), "card vs /api/v1/nodes: {web_a}");
    eventually("sparklines of three slots", Duration::from_secs(60), || {
        let vertices = session.eval(
            "const p = document.querySelector('article[data-node=\"web-a\"] .spark svg path'); \
             return p ? p.getAttribute('d').split(/[ML]/).length - 1 : 0",
        );
        (vertices.as_u64()? >= 3).then_some(())
    });
    // Watch web-b's card from inside the page, so no state the page shows is missed, and mark
    // the document to prove later that it was never reloaded.
    session.eval(
        "window.seen = []; window.loadedOnce = true; \
         const watch = () => { const c = document.querySelector('article[data-node=\"web-b\"]'); \
           const s = c && c.dataset.status; if (s && s !== window.seen[window.seen.length - 1]) window.seen.push(s); }; \
         new MutationObserver(watch).observe(document.body, {subtree: true, attributes: true, childList: true}); watch();",
    );

    // SIGKILL: no goodbye. The page shows web-b late, then down, by itself.
    agents[1].kill_hard();
    let killed = Instant::now();
    eventually("web-b late on the page", Duration::from_secs(15), || {
        (card_of(&session, "web-b")? == ("late".into(), "Late".into())).then_some(())
    });
    eventually("web-b down on the page", Duration::from_secs(15), || {
        (card_of(&session, "web-b")? == ("down".into(), "Down".into())).then_some(())
    });
    let took = killed.elapsed();
    assert_eq!(
        session.eval("return [window.loadedOnce === true, window.seen]"),
        json!([true, ["up", "late", "down"]]),
        "the page was reloaded, or skipped a state"
    );
    assert_eq!(card_of(&session, "web-a"), Some(("up".into(), "Up".into())));
    let announced = session.eval("return document.getElementById('announcer').textContent");
    let announced = announced.as_str().unwrap_or_default();
    assert!(
        announced.contains("web-b is now Late (was Up).")
            && announced.contains("web-b is now Down (was Late)."),
        "status changes go to the aria-live region: {announced:?}"
    );
    let summary = session.eval("return document.getElementById('summary').textContent");
    assert!(
        summary.as_str().unwrap_or_default().contains("1 down"),
        "{summary}"
    );
    let shot = save_screenshot(
        &session.screenshot(),
        dir.path(),
        "dashboard-screenshot.png",
    );
    eprintln!(
        "dashboard screenshot (web-b down {took:?} after SIGKILL): {}",
        shot.display()
    );

    // A node's page, reached with a real click on its card.
    session.click("article[data-node=\"web-a\"] h3 a");
    eventually(
        "web-a's page with its charts",
        Duration::from_secs(15),
        || {
            let lines = session.eval(
                "const v = document.getElementById('node-view'); \
             return v.hidden ? 0 : v.querySelectorAll('.charts path.line').length",
            );
            (lines.as_u64()? >= 3).then_some(())
        },
    );
    let page = session.eval(
        "const v = document.getElementById('node-view'); return { \
           title: v.querySelector('h2').textContent, \
           hash: location.hash, \
           charts: [...v.querySelectorAll('.charts svg[role=img]')].map(s => s.getAttribute('aria-label')), \
           facts: [...v.querySelectorAll('.facts dt')].map(d => d.textContent), \
           disks: v.querySelectorAll('.panel[aria-label=Disks] tbody tr').length, \
           nets: v.querySelectorAll('.panel[aria-label=\"Network interfaces\"] tbody tr').length, \
           addrs: [...v.querySelectorAll('.panel[aria-label=Addresses] tbody li')].map(l => l.textContent), \
           labels: [...v.querySelectorAll('.chips li')].map(l => l.textContent) }",
    );
    assert_eq!(page["hash"], "#/nodes/web-a", "{page}");
    assert!(
        page["title"].as_str().unwrap().starts_with("web-a"),
        "{page}"
    );
    let charts = page["charts"].as_array().unwrap();
    assert_eq!(
        charts.len(),
        9,
        "one chart per series of the ranged history: {page}"
    );
    assert!(
        charts[0]
            .as_str()
            .unwrap()
            .starts_with("CPU use over the last"),
        "{page}"
    );
    for fact in ["Board", "Operating system", "Kernel", "Cores", "RAM"] {
        assert!(
            page["facts"].as_array().unwrap().contains(&json!(fact)),
            "{fact}: {page}"
        );
    }
    assert!(page["disks"].as_u64().unwrap() >= 1, "{page}");
    assert!(page["nets"].as_u64().unwrap() >= 1, "{page}");
    assert!(
        page["addrs"].as_array().unwrap().contains(&json!(ipv4)),
        "the Addresses panel lists {ipv4}: {page}"
    );
    assert_eq!(page["labels"], json!(["role=worker", "stack=7"]), "{page}");
    save_screenshot(
        &session.screenshot(),
        dir.path(),
        "dashboard-node-screenshot.png",
    );

    // Deregistering needs the admin token: a wrong one shows the primary's JSON error.
    session.go(&format!("{url}/#/nodes/web-b"));
    eventually("web-b's page", Duration::from_secs(15), || {
        let text = session
            .eval("return document.querySelector('#node-view .admin button')?.textContent ?? null");
        (text.as_str()? == "Deregister web-b…").then_some(())
    });
    session.click("#node-view .admin button");
    assert_eq!(
        session.eval("return document.getElementById('confirm').open"),
        json!(true),
        "a confirmation dialog opens"
    );
    session.type_into("#admin-token", "not-the-admin-token");
    session.click("#confirm-ok");
    let error = eventually("the refusal shown", Duration::from_secs(10), || {
        let text = session.eval(
            "const e = document.getElementById('confirm-error'); return e.hidden ? null : e.textContent",
        );
        text.as_str().map(str::to_owned)
    });
    assert!(
        error.contains("401") && error.contains("{\"error\":\"wrong admin token\"}"),
        "{error}"
    );
    assert_eq!(
        get_json(&format!("{url}/api/v1/nodes/web-b"))["name"],
        "web-b",
        "nothing was removed"
    );
    // The right token removes it; the page goes back to the grid without it.
    session.type_into("#admin-token", ADMIN);
    session.click("#confirm-ok");
    eventually("web-b gone from the page", Duration::from_secs(10), || {
        let gone = card_of(&session, "web-b").is_none() && card_of(&session, "web-a").is_some();
        let hash = session.eval("return location.hash");
        (gone && hash == "#/").then_some(())
    });
    assert_eq!(
        session.eval("return [document.getElementById('confirm').open, sessionStorage.getItem('pivitals.adminToken')]"),
        json!([false, ADMIN])
    );
    let response = http::get(&format!("{url}/api/v1/nodes/web-b")).unwrap();
    assert_eq!(response.status, 404, "{}", response.text());

    drop(session);
    drop(driver);
    let status = agents[0].terminate(Duration::from_secs(15));
    assert!(status.success(), "{}", agents[0].log_tail());
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "{}", primary.log_tail());
}

/// A primary binary started with `--config FILE` (the harness passes settings as variables
/// only, and rules need a file); killed on drop.
struct ConfiguredPrimary {
    child: Child,
    log: PathBuf,
}

impl ConfiguredPrimary {
    fn start(dir: &Path, port: u16, config: &Path) -> ConfiguredPrimary {
        let log = dir.join("primary.log");
        let out = std::fs::File::create(&log).unwrap();
        let child = command(&workspace_binary("pivitals-primary"))
            .arg("--config")
            .arg(config)
            .env("PIVITALS_LOG", "info")
            .env("PIVITALS_LISTEN", format!("127.0.0.1:{port}"))
            .env("PIVITALS_DATA_DIR", dir.join("primary"))
            .env("PIVITALS_ENROLL_TOKEN", ENROLL)
            .env("PIVITALS_SELF_MONITOR", "false")
            .env("PIVITALS_BATCH__FLUSH_INTERVAL", "500ms")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("spawn pivitals-primary");
        let mut primary = ConfiguredPrimary { child, log };
        eventually("the primary answers", Duration::from_secs(30), || {
            if let Ok(Some(status)) = primary.child.try_wait() {
                panic!("primary exited with {status}:\n{}", primary.log());
            }
            let health = http::get(&format!("http://127.0.0.1:{port}/healthz"));
            (health.map(|r| r.status) == Ok(200)).then_some(())
        });
        primary
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ConfiguredPrimary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The page's DOM after its scripts ran for five seconds of virtual time.
fn dump_dom(chromium: &Path, profile: &Path, url: &str) -> String {
    let dump = Command::new(chromium)
        .args(chromium_switches(profile))
        .args(["--virtual-time-budget=5000", "--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .expect("run chromium --dump-dom");
    String::from_utf8_lossy(&dump.stdout).into_owned()
}

/// The element that opens with the start tag holding `needle`, up to its first `</tag>` (good
/// enough for elements that hold none of their own kind).
fn element_with<'a>(html: &'a str, needle: &str, tag: &str) -> Option<&'a str> {
    let at = html.find(needle)?;
    let start = html[..at].rfind('<')?;
    let end = start + html[start..].find(&format!("</{tag}>"))?;
    Some(&html[start..end])
}

#[test]
fn a_firing_alert_shows_above_the_grid_on_its_card_and_on_its_page() {
    let chromium = required("chromium");
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("alerts.toml");
    std::fs::write(
        &rules,
        r#"
[alert]
default_rules = false

[[alert.rules]]
name = "busy"
metric = "cpu.usage_percent"
above = -1
for = "0s"
node = "alert-a"
"#,
    )
    .unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = ConfiguredPrimary::start(dir.path(), port, &rules);
    let _agent = start_agent(dir.path(), "alert-a", &url, "1s");
    let message = eventually(
        "the rule firing in /api/v1/alerts",
        Duration::from_secs(30),
        || {
            let response = http::get(&format!("{url}/api/v1/alerts")).ok()?;
            assert_ne!(
                response.status,
                404,
                "GET /api/v1/alerts is missing:\n{}",
                primary.log()
            );
            let alerts: Value = serde_json::from_slice(&response.body).ok()?;
            let firing = alerts["firing"].as_array()?;
            let alert = firing
                .iter()
                .find(|a| a["node"] == "alert-a" && a["rule"] == "busy")?;
            alert["message"].as_str().map(str::to_owned)
        },
    );
    assert!(message.starts_with("alert-a busy: cpu"), "{message}");

    let dom = dump_dom(
        &chromium,
        &dir.path().join("grid-profile"),
        &format!("{url}/"),
    );
    let list = element_with(&dom, "id=\"alerts\"", "section")
        .unwrap_or_else(|| panic!("no alert list on the page:\n{dom}"));
    assert!(
        !tag_with(list, "id=\"alerts\"").unwrap().contains("hidden"),
        "the list is shown while an alert fires: {list}"
    );
    let item = tag_with(list, "data-node=\"alert-a\"")
        .unwrap_or_else(|| panic!("alert-a's alert not listed: {list}"));
    assert!(
        item.contains("data-rule=\"busy\"") && item.contains("data-state=\"firing\""),
        "{item}"
    );
    assert!(list.contains("alert-a busy: cpu"), "the message: {list}");
    let card = element_with(&dom, "data-node=\"alert-a\" aria-labelledby", "article")
        .unwrap_or_else(|| panic!("alert-a's card not on the page:\n{dom}"));
    let bell = tag_with(card, "class=\"alert-count\"")
        .unwrap_or_else(|| panic!("no alert count on the card: {card}"));
    assert!(!bell.contains("hidden"), "the count is shown: {bell}");
    assert!(bell.contains("data-count=\"1\""), "{bell}");
    assert!(
        bell.contains("title=\"alert-a busy: cpu"),
        "the first message is the count's title: {bell}"
    );

    let dom = dump_dom(
        &chromium,
        &dir.path().join("node-profile"),
        &format!("{url}/#/nodes/alert-a"),
    );
    let panel = element_with(&dom, "aria-label=\"Alerts\"", "section")
        .unwrap_or_else(|| panic!("no Alerts panel on the node page:\n{dom}"));
    assert!(
        !tag_with(panel, "aria-label=\"Alerts\"")
            .unwrap()
            .contains("hidden"),
        "{panel}"
    );
    assert!(
        panel.contains("data-state=\"firing\"") && panel.contains("alert-a busy: cpu"),
        "{panel}"
    );
}
