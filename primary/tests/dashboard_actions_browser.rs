//! The dashboard's sign-in, action buttons and stack view in a real headless Chromium
//! (testkit's [`browser`](pivitals_testkit::browser) driver): a `pivitals-primary` binary with
//! an admin token and self-monitoring (its own host is the one node without a stack), and three
//! `pivitals-agent` binaries: `node-b` (`stack=1`), `node-c` and `node-a` (`stack=2`, positions
//! 1 and 2; `node-c` allows power actions). Every agent's settings file defines `hello`
//! (`echo hi`) and replaces the power commands with `echo`, so nothing here ever reboots.
//!
//! The page is signed in through its form (a wrong token first), a node's ping is run from its
//! card, the stack view shows the racks in order, and from stack 2's bar `hello` and a
//! confirmed `reboot` run: the results shown name exactly the two stack-2 nodes (`reboot`:
//! `accepted` where allowed, `refused` elsewhere), and the node's page lists them. Signing out
//! removes the buttons and the primary refuses the old cookie. Screenshots of the card view and
//! the stack view are saved in the test's directory and copied to
//! `target/dashboard-actions-cards.png` and `target/dashboard-actions-stacks.png`.

use std::path::Path;
use std::time::Duration;

use pivitals_testkit::actions::start_labelled_agent_with_actions;
use pivitals_testkit::browser::{Driver, Session, required, save_screenshot};
use pivitals_testkit::harness::{ADMIN, Proc, eventually, start_primary};
use pivitals_testkit::{free_port, http};
use serde_json::{Value, json};

/// Every wait is bounded by this.
const WITHIN: Duration = Duration::from_secs(30);

/// The agents' settings: power actions allowed or not, and harmless stand-ins for the power
/// commands either way (this test must never power anything off).
fn agent_settings(allow_power: bool) -> String {
    format!(
        r#"
[actions]
allow_power = {allow_power}
reboot_command = ["echo", "pretend reboot"]
shutdown_command = ["echo", "pretend shutdown"]

[actions.hello]
command = ["echo", "hi"]
"#
    )
}

/// The agents: name, `stack`, `position`, whether power actions are allowed.
const NODES: [(&str, &str, &str, bool); 3] = [
    ("node-b", "1", "1", false),
    ("node-c", "2", "1", true),
    ("node-a", "2", "2", false),
];

/// The agent binary as `node`, with its labels and [`agent_settings`]; once registered.
fn start_agent(dir: &Path, url: &str, node: (&str, &str, &str, bool)) -> Proc {
    let (name, stack, position, allow_power) = node;
    start_labelled_agent_with_actions(
        dir,
        name,
        &format!("stack={stack},position={position}"),
        url,
        &agent_settings(allow_power),
    )
}

/// Runs `script` (a function body) in the page until it answers something other than
/// `null` or `false`; that answer.
fn wait_for(session: &Session, what: &str, script: &str) -> Value {
    eventually(what, WITHIN, || {
        let value = session.eval(script);
        (!value.is_null() && value != json!(false)).then_some(value)
    })
}

/// The rows of the newest finished result of `action` in the bar that `bar` selects:
/// `[node, state, exit, output]`, sorted by node.
fn finished_rows(session: &Session, bar: &str, action: &str) -> Vec<Vec<String>> {
    let selector =
        serde_json::to_string(&format!("{bar} .action-result[data-action=\"{action}\"]")).unwrap();
    let script = format!(
        "const box = document.querySelector({selector}); \
         if (!box || box.dataset.state !== 'final') return null; \
         return [...box.querySelectorAll('tbody tr')].map(tr => \
           [tr.dataset.node, tr.dataset.state, tr.children[2].textContent, tr.children[3].textContent]);"
    );
    let value = wait_for(session, &format!("{action} finished in {bar}"), &script);
    let mut rows: Vec<Vec<String>> = serde_json::from_value(value).unwrap();
    rows.sort();
    rows
}

/// Buttons of action bars the page shows.
fn visible_bars(session: &Session) -> u64 {
    session
        .eval("return [...document.querySelectorAll('.actions')].filter(b => !b.hidden && b.offsetParent !== null).length")
        .as_u64()
        .unwrap()
}

#[test]
fn an_admin_signs_in_runs_stack_actions_from_the_stack_view_and_signs_out() {
    required("chromium");
    required("chromedriver");
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary(
        dir.path(),
        port,
        &[
            ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
            ("PIVITALS_SELF_MONITOR", "true".to_owned()),
        ],
    );
    let agents: Vec<Proc> = NODES
        .iter()
        .map(|node| start_agent(dir.path(), &url, *node))
        .collect();
    let logs = || {
        let mut text = primary.log_tail();
        for agent in &agents {
            text.push_str(&agent.log_tail());
        }
        text
    };

    let driver = Driver::start(dir.path());
    let session = Session::new(&driver, &dir.path().join("profile"));
    session.go(&format!("{url}/"));
    let cards = wait_for(
        &session,
        "four cards, every node up",
        "const cards = [...document.querySelectorAll('article.card')]; \
         return cards.length === 4 && cards.every(c => c.dataset.status === 'up') \
           && cards.map(c => c.dataset.node);",
    );
    let own_host = cards
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .find(|n| !NODES.iter().any(|(name, ..)| name == n))
        .unwrap_or_else(|| panic!("the primary's own host among {cards}\n{}", logs()));
    assert_eq!(visible_bars(&session), 0, "no buttons before signing in");
    assert_eq!(
        session.eval("return document.getElementById('signin-form').hidden"),
        false
    );

    // A wrong token is refused in the form; the right one signs in.
    session.type_into("#signin-token", "not-the-admin-token");
    session.click("#signin-button");
    let error = wait_for(
        &session,
        "the refusal",
        "const e = document.getElementById('signin-error'); return e.hidden ? null : e.textContent",
    );
    assert!(
        error.as_str().unwrap().contains("401"),
        "{error}\n{}",
        logs()
    );
    session.type_into("#signin-token", ADMIN);
    session.click("#signin-button");
    wait_for(
        &session,
        "signed in",
        "return !document.getElementById('signed-in').hidden",
    );
    let cookie = session.send("GET", "/cookie/pivitals_session", &Value::Null);
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    let cookie_value = cookie["value"].as_str().unwrap().to_owned();
    let leaks = session.eval(&format!(
        "const t = '{ADMIN}'; return [document.documentElement.outerHTML.includes(t), \
         location.href.includes(t), localStorage.length, sessionStorage.length, \
         document.cookie.includes('pivitals_session'), document.getElementById('signin-token').value]"
    ));
    assert_eq!(
        leaks,
        json!([false, false, 0, 0, false, ""]),
        "the token is nowhere in the page, the URL or the storage; the cookie is HttpOnly"
    );
    assert_eq!(visible_bars(&session), 4, "one bar per card");

    // A node's ping from its card.
    session.click("article.card[data-node='node-b'] button[data-action='ping']");
    let rows = finished_rows(&session, "article.card[data-node='node-b']", "ping");
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0][..2], ["node-b", "done"], "{rows:?}\n{}", logs());
    let cards_shot = save_screenshot(
        &session.screenshot(),
        dir.path(),
        "dashboard-actions-cards.png",
    );
    eprintln!("card view screenshot: {}", cards_shot.display());

    // The stack view: racks in order, boards by position, the unstacked host last.
    session.click("#view-stacks");
    let racks = wait_for(
        &session,
        "the stack view",
        "if (location.hash !== '#stacks' || document.getElementById('stack-view').hidden) return null; \
         const racks = [...document.querySelectorAll('.rack')].map(r => [r.dataset.stack, \
           r.querySelector('h2').firstChild.textContent, \
           [...r.querySelectorAll('.board')].map(b => [b.dataset.node, b.dataset.status])]); \
         return racks.length === 3 && racks;",
    );
    assert_eq!(
        racks,
        json!([
            ["1", "stack 1", [["node-b", "up"]]],
            ["2", "stack 2", [["node-c", "up"], ["node-a", "up"]]],
            ["", "unstacked", [[own_host, "up"]]],
        ])
    );
    assert_eq!(
        session.eval("return document.querySelectorAll('.rack[data-stack=\"\"] .actions').length"),
        0,
        "the unstacked column has no stack buttons"
    );

    // `hello` on stack 2, typed into its bar.
    let stack2 = ".rack[data-stack='2']";
    session.type_into(&format!("{stack2} .run-name"), "hello");
    session.click(&format!("{stack2} button[data-action='run']"));
    let rows = finished_rows(&session, stack2, "hello");
    assert_eq!(
        rows,
        [
            ["node-a", "done", "0", "hi"].map(String::from).to_vec(),
            ["node-c", "done", "0", "hi"].map(String::from).to_vec(),
        ],
        "{}",
        logs()
    );

    // `reboot` on stack 2 asks first, naming both nodes, then reaches exactly them.
    session.click(&format!("{stack2} button[data-action='reboot']"));
    let dialog = wait_for(
        &session,
        "the confirmation",
        "const d = document.getElementById('action-confirm'); return d.open && \
         [document.getElementById('action-confirm-title').textContent, \
          [...document.querySelectorAll('#action-confirm-nodes li')].map(li => li.textContent)]",
    );
    assert_eq!(
        dialog,
        json!(["Reboot the 2 nodes of stack 2?", ["node-c", "node-a"]])
    );
    session.click("#action-confirm-ok");
    let rows = finished_rows(&session, stack2, "reboot");
    let states: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    assert_eq!(
        states,
        [("node-a", "refused"), ("node-c", "accepted")],
        "accepted only where allow_power is set: {rows:?}\n{}",
        logs()
    );
    assert!(
        rows[0][3].contains("PIVITALS_ACTIONS__ALLOW_POWER"),
        "the refusal says why: {rows:?}"
    );
    assert_eq!(
        session.eval(
            "return document.querySelectorAll('.rack[data-stack=\"1\"] .action-result').length"
        ),
        0,
        "nothing ran on stack 1"
    );
    let stacks_shot = save_screenshot(
        &session.screenshot(),
        dir.path(),
        "dashboard-actions-stacks.png",
    );
    eprintln!("stack view screenshot: {}", stacks_shot.display());

    // The node's page lists what it ran.
    session.go(&format!("{url}/#/nodes/node-c"));
    let history = wait_for(
        &session,
        "node-c's recent actions",
        "const items = [...document.querySelectorAll('.action-history li')]; \
         return items.length >= 2 && items.map(li => [li.dataset.action, li.dataset.state]);",
    );
    assert_eq!(
        history,
        json!([["reboot", "accepted"], ["hello", "done"]]),
        "newest first"
    );

    // Signing out removes the buttons and ends the session on the primary.
    session.go(&format!("{url}/#stacks"));
    wait_for(
        &session,
        "the stack view again, signed in",
        "return document.querySelectorAll('.rack .actions:not([hidden])').length === 2",
    );
    session.click("#signout-button");
    wait_for(
        &session,
        "signed out",
        "return !document.getElementById('signin-form').hidden",
    );
    assert_eq!(visible_bars(&session), 0, "the buttons are gone");
    assert_eq!(
        session.eval("return document.querySelectorAll('.action-result').length"),
        0,
        "and so are the results"
    );
    let cookie_header = format!("pivitals_session={cookie_value}");
    let response = http::request(
        "POST",
        &format!("{url}/api/v1/actions"),
        &[
            ("Content-Type", "application/json"),
            ("Cookie", &cookie_header),
            ("X-Pivitals-Session", "1"),
        ],
        json!({"action": "hello", "labels": {"stack": "2"}})
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(
        response.status,
        401,
        "the old cookie is refused: {}",
        response.text()
    );
}
