//! The InfluxQL queries: the named ones of `influx/influxql/queries.influxql`, the Grafana
//! dashboard for an InfluxQL data source (`influx/grafana/dashboards-influxql/`) and the two
//! Chronograf InfluxQL dashboards (`influx/chronograf/influxql/`). Each query names only what
//! pivitals writes (`pivitals_common::line_protocol::SCHEMA` plus the node label `stack`, read
//! with testkit's `query_text`) and only variables its tool knows, and a wrong name fails the
//! check. One real InfluxDB 1.x, fed by real agents through a real primary, then runs every
//! query with its variables expanded the way Grafana and Chronograf expand them (Grafana's
//! multi-value regex `(a|b)` and its "All" value `.*`, Chronograf's quoted tag values), and each
//! must return series for the test's nodes and none for nodes outside the picked node and stack.
//! The agents: one reads a Raspberry Pi's `/sys` files from a fixture tree (temperature and
//! throttling on any machine), two more are labelled `stack=1` and `stack=2`, one has no stack.
//! What no agent can read here (a Pi's `power` and `storage_health`) is pushed through the same
//! primary by a node with [`pi_sample`]s; a rule on the Pi's warm sensor fires so `alert` has
//! points, and the admin runs an action so `action` has points. Also the setup script's 365-day
//! retention policy on a real InfluxDB 1.x.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use pivitals_common::line_protocol::SCHEMA;
use pivitals_testkit::harness::binaries::start_primary_with_config;
use pivitals_testkit::harness::{ADMIN, ENROLL, Proc, eventually, workspace_binary};
use pivitals_testkit::http::request;
use pivitals_testkit::query_text::{influxql, schema_errors, schema_errors_with_labels};
use pivitals_testkit::repo_files::{
    files_under, installed, read, read_json, repo_root, run, yaml_documents,
};
use pivitals_testkit::samples::{now_ms, pi_sample, push_body, register_request};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::Value;

const DB: &str = "pivitals";
/// The node whose agent reads the Raspberry Pi fixture; the per-node InfluxQL queries use it.
const PI_NODE: &str = "sd-pi";
/// The node whose samples the test pushes itself, with the Pi-only families.
const PUSHED_NODE: &str = "sd-pushed";

/// One named query of `influx/influxql/queries.influxql`.
#[derive(Debug, Clone)]
struct NamedQuery {
    name: String,
    text: String,
}

fn influxql_queries() -> Vec<NamedQuery> {
    let path = repo_root().join("influx/influxql/queries.influxql");
    let mut queries: Vec<NamedQuery> = Vec::new();
    let mut open = false;
    for line in read(&path).lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("-- name:") {
            assert!(!open, "{}: query before {name} has no `;`", path.display());
            queries.push(NamedQuery {
                name: name.trim().to_owned(),
                text: String::new(),
            });
            open = true;
        } else if line.is_empty() || line.starts_with("--") {
            continue;
        } else {
            let query = queries
                .last_mut()
                .filter(|_| open)
                .unwrap_or_else(|| panic!("{}: statement without a name: {line}", path.display()));
            if !query.text.is_empty() {
                query.text.push(' ');
            }
            query.text.push_str(line.trim_end_matches(';'));
            open = !line.ends_with(';');
        }
    }
    assert!(!open, "{}: the last query has no `;`", path.display());
    let names: BTreeSet<_> = queries.iter().map(|q| q.name.as_str()).collect();
    assert_eq!(names.len(), queries.len(), "query names repeat");
    assert!(queries.iter().all(|q| !q.text.is_empty()), "{queries:?}");
    queries
}

/// The Chronograf template variables the InfluxQL file uses, with the values the test runs.
const INFLUXQL_VARIABLES: &[(&str, &str)] = &[
    ("dashboardTime", "now() - 1h"),
    ("upperDashboardTime", "now() + 1m"),
    ("interval", "2s"),
    ("node", "'sd-pi'"),
];

fn substitute(statement: &str) -> String {
    let mut text = statement.to_owned();
    for (name, value) in INFLUXQL_VARIABLES {
        text = text.replace(&format!(":{name}:"), value);
    }
    text
}

fn check_influxql(query: &NamedQuery) -> Vec<String> {
    let place = format!("influx/influxql/queries.influxql {}", query.name);
    let mut errors = Vec::new();
    match influxql::tokens(&query.text) {
        Ok(tokens) => {
            for token in tokens {
                if let influxql::Tok::Var(name) = token
                    && !INFLUXQL_VARIABLES.iter().any(|(known, _)| *known == name)
                {
                    errors.push(format!("{place}: unknown variable :{name}:"));
                }
            }
        }
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    match influxql::refs(&query.text) {
        Ok(refs) => errors.extend(
            schema_errors(&refs)
                .into_iter()
                .map(|e| format!("{place}: {e}")),
        ),
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    errors
}

#[test]
fn every_influxql_query_names_only_what_pivitals_writes() {
    let mut errors = Vec::new();
    let queries = influxql_queries();
    assert!(queries.len() >= 24, "{} InfluxQL queries", queries.len());
    for query in &queries {
        errors.extend(check_influxql(query));
    }
    let checked = queries.len();

    assert!(
        errors.is_empty(),
        "{} of {checked} InfluxQL queries name what pivitals does not write:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn a_wrong_name_fails_the_influxql_schema_check() {
    // A real query of the InfluxQL file passes, and breaking any one name fails it.
    let queries = influxql_queries();
    let disk = queries
        .iter()
        .find(|q| q.name == "node_disk")
        .expect("node_disk");
    assert_eq!(check_influxql(disk), Vec::<String>::new());
    for (good, bad, named) in [
        (r#"FROM "disk""#, r#"FROM "disks""#, "disks"),
        (r#"last("free_bytes")"#, r#"last("free")"#, "free"),
        (r#"GROUP BY "mount""#, r#"GROUP BY "path""#, "path"),
        (r#""node" = :node:"#, r#""host" = :node:"#, "host"),
        (":dashboardTime:", ":since:", "since"),
    ] {
        let broken = NamedQuery {
            name: disk.name.clone(),
            text: disk.text.replace(good, bad),
        };
        assert_ne!(broken.text, disk.text, "{good} is not in the query");
        let errors = check_influxql(&broken);
        assert!(
            errors.iter().any(|e| e.contains(named)),
            "breaking {good} into {bad} went unnoticed: {errors:?}"
        );
    }
}

/// A root for the agent's `/proc` and `/sys` reads: the host's own, plus the files a Raspberry
/// Pi has and this machine may not (a thermal zone and the firmware's throttling word).
fn raspberry_pi_root(dir: &Path) -> PathBuf {
    let root = dir.join("pi-root");
    let write = |path: &str, content: &str| {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    };
    write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
    write("sys/class/thermal/thermal_zone0/temp", "48312\n");
    // Under-voltage and throttled now, and both have occurred since boot.
    write(
        "sys/devices/platform/soc/soc:firmware/get_throttled",
        "0x50005\n",
    );
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    std::os::unix::fs::symlink("/sys/devices/system", root.join("sys/devices/system")).unwrap();
    // The host's disks, so `diskio` has data (whole disks are the names under /sys/block).
    std::os::unix::fs::symlink("/sys/block", root.join("sys/block")).unwrap();
    root
}

/// Registers [`PUSHED_NODE`] with the primary at `url` and pushes `count` one-second
/// [`pi_sample`]s ending now: the `power` and `storage_health` points no agent can write here
/// (this machine is no Raspberry Pi), written by the real primary like an agent's.
fn push_pi_samples(url: &str, count: i64) {
    let json = [("Content-Type", "application/json")];
    let body = serde_json::to_vec(&register_request(PUSHED_NODE)).unwrap();
    let enroll = format!("Bearer {ENROLL}");
    let headers = [json[0], ("Authorization", enroll.as_str())];
    let reply = request("POST", &format!("{url}/api/v1/register"), &headers, &body).unwrap();
    assert_eq!(reply.status, 200, "register: {}", reply.text());
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    let token = format!("Bearer {}", reply["node_token"].as_str().unwrap());

    let end = now_ms();
    let samples = (0..count)
        .map(|i| pi_sample(end - (count - 1 - i) * 1000, 20.0, 50.0))
        .collect();
    let body = serde_json::to_vec(&push_body(samples)).unwrap();
    let headers = [json[0], ("Authorization", token.as_str())];
    let reply = request("POST", &format!("{url}/api/v1/vitals"), &headers, &body).unwrap();
    assert_eq!(reply.status, 200, "push: {}", reply.text());
}

/// True when the answer has a row with a value besides its time.
fn has_rows(answer: &Value) -> bool {
    answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|result| result["series"].as_array().into_iter().flatten())
        .flat_map(|series| series["values"].as_array().into_iter().flatten())
        .any(|row| {
            row.as_array()
                .is_some_and(|r| r.iter().skip(1).any(|v| !v.is_null()))
        })
}

/// The node label the dashboards filter by: a tag on every point of a labelled node.
const LABEL_TAGS: &[&str] = &["stack"];
/// The agent labelled `stack=1` besides [`PI_NODE`] (also `stack=1`).
const STACK_ONE_NODE: &str = "sd-one";
/// The agent labelled `stack=2`; it also runs the action.
const STACK_TWO_NODE: &str = "sd-two";
/// The agent without a `stack` label: shown when the stack is "All".
const NO_STACK_NODE: &str = "sd-nostack";
/// Every node of the test with its `stack` label ([`PUSHED_NODE`] registers with `stack=1`).
const NODES: &[(&str, Option<&str>)] = &[
    (PI_NODE, Some("1")),
    (PUSHED_NODE, Some("1")),
    (STACK_ONE_NODE, Some("1")),
    (STACK_TWO_NODE, Some("2")),
    (NO_STACK_NODE, None),
];
/// The agents (every node but the pushed one): each has the vitals every machine has.
const AGENTS: &[&str] = &[PI_NODE, STACK_ONE_NODE, STACK_TWO_NODE, NO_STACK_NODE];

/// One query of a dashboard file, with its place (file and panel or cell).
#[derive(Debug, Clone)]
struct DashboardQuery {
    place: String,
    text: String,
}

fn grafana_influxql_dashboard() -> (PathBuf, Value) {
    let path = repo_root().join("influx/grafana/dashboards-influxql/pivitals-influxql.json");
    let doc = read_json(&path);
    (path, doc)
}

/// Every `targets[].query` of the Grafana dashboard (rows flattened).
fn grafana_queries(doc: &Value) -> Vec<DashboardQuery> {
    let mut panels = Vec::new();
    for panel in doc["panels"].as_array().expect("panels") {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    let mut queries = Vec::new();
    for panel in panels.into_iter().filter(|p| p["type"] != "row") {
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!targets.is_empty(), "panel {} has no query", panel["title"]);
        for target in targets {
            queries.push(DashboardQuery {
                place: format!("Grafana panel {} {}", panel["title"], target["refId"]),
                text: target["query"].as_str().unwrap_or_default().to_owned(),
            });
        }
    }
    queries
}

/// The Grafana dashboard's variables: name and `SHOW TAG VALUES` query.
fn grafana_variables(doc: &Value) -> Vec<(String, String)> {
    doc["templating"]["list"]
        .as_array()
        .expect("templating")
        .iter()
        .map(|v| {
            let name = v["name"].as_str().unwrap().to_owned();
            (name, v["query"].as_str().unwrap_or_default().to_owned())
        })
        .collect()
}

/// Grafana's own variables the queries may use besides the dashboard's.
const GRAFANA_BUILTINS: &[&str] = &[
    "timeFilter",
    "__interval",
    "__interval_ms",
    "__from",
    "__to",
];

/// The Grafana variables `text` uses: `$name` and `${name}` (`${name:format}` too).
fn grafana_variables_used(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        rest = &rest[at + 1..];
        let name = match rest.strip_prefix('{') {
            Some(braced) => braced[..braced.find('}').unwrap_or(braced.len())]
                .split(':')
                .next()
                .unwrap_or_default(),
            None => pivitals_testkit::query_text::names::ident(rest),
        };
        if !name.is_empty() {
            names.push(name.to_owned());
        }
    }
    names
}

/// A variable's value as picked in Grafana: "All" or some values.
#[derive(Debug, Clone, Copy)]
enum Pick {
    All,
    Only(&'static [&'static str]),
}

impl Pick {
    /// What Grafana's InfluxDB data source puts in a regex for a multi-value variable with
    /// "All": the custom all value `.*` as is, one value regex-escaped, several as `(a|b)`.
    fn grafana_regex(self) -> String {
        let escape = |value: &str| {
            value
                .chars()
                .flat_map(|c| {
                    let special = r"\^$*+?.()|[]{}/".contains(c);
                    special.then_some('\\').into_iter().chain([c])
                })
                .collect::<String>()
        };
        match self {
            Pick::All => ".*".to_owned(),
            Pick::Only([one]) => escape(one),
            Pick::Only(values) => format!(
                "({})",
                values
                    .iter()
                    .map(|v| escape(v))
                    .collect::<Vec<_>>()
                    .join("|")
            ),
        }
    }

    fn admits(self, value: Option<&str>) -> bool {
        match self {
            Pick::All => true,
            Pick::Only(values) => value.is_some_and(|v| values.contains(&v)),
        }
    }
}

/// The nodes a dashboard shows for these picks.
fn selected_nodes(node: Pick, stack: Pick) -> BTreeSet<&'static str> {
    NODES
        .iter()
        .filter(|(name, label)| node.admits(Some(name)) && stack.admits(*label))
        .map(|(name, _)| *name)
        .collect()
}

/// `text` as Grafana sends it: `$timeFilter` as the last hour in epoch milliseconds (plus a
/// minute of clock skew), `$__interval` 2s, `$node` and `$stack` as [`Pick::grafana_regex`].
fn grafana_expand(text: &str, node: Pick, stack: Pick) -> String {
    let to = now_ms() + 60_000;
    let from = to - 3_660_000;
    let mut text = text.replace(
        "$timeFilter",
        &format!("time >= {from}ms and time <= {to}ms"),
    );
    for (name, value) in [
        ("__interval_ms", "2000".to_owned()),
        ("__interval", "2s".to_owned()),
        ("__from", from.to_string()),
        ("__to", to.to_string()),
        ("node", node.grafana_regex()),
        ("stack", stack.grafana_regex()),
    ] {
        text = text
            .replace(&format!("${{{name}}}"), &value)
            .replace(&format!("${name}"), &value);
    }
    text
}

fn chronograf_influxql_dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("influx/chronograf/influxql");
    let dashboards: Vec<_> = files_under(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dashboard"))
        .map(|p| {
            let doc = read_json(&p);
            (p, doc)
        })
        .collect();
    assert_eq!(dashboards.len(), 2, "cluster and node in {}", dir.display());
    dashboards
}

/// Every cell query of a Chronograf dashboard; checks the InfluxQL cell shape on the way.
fn chronograf_queries(path: &Path, doc: &Value) -> Vec<DashboardQuery> {
    assert!(
        doc["id"].as_i64().is_some_and(|id| id < 0),
        "file ids are negative"
    );
    assert_eq!(doc["organization"], "default");
    let mut queries = Vec::new();
    let mut ids = BTreeSet::new();
    for cell in doc["cells"].as_array().expect("cells") {
        let name = &cell["name"];
        assert!(
            ids.insert(cell["i"].as_str().unwrap()),
            "cell {name}: id repeats"
        );
        let cell_queries = cell["queries"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(!cell_queries.is_empty(), "cell {name}: no query");
        for query in cell_queries {
            assert_eq!(query["type"], "influxql", "cell {name}");
            assert_eq!(
                query["query"], query["queryConfig"]["rawText"],
                "cell {name}"
            );
            assert_eq!(query["queryConfig"]["database"], DB, "cell {name}");
            queries.push(DashboardQuery {
                place: format!("{} cell {name}", path.display()),
                text: query["query"].as_str().unwrap().to_owned(),
            });
        }
    }
    queries
}

/// A Chronograf dashboard's tag-value variables: name (without colons) and its query as
/// Chronograf runs it (`:database:`, `:measurement:` and `:tagKey:` filled in, double-quoted).
fn chronograf_variables(doc: &Value) -> Vec<(String, String)> {
    let mut variables = Vec::new();
    for template in doc["templates"].as_array().expect("templates") {
        assert_eq!(template["type"], "tagValues", "{template}");
        let var = template["tempVar"].as_str().unwrap();
        let name = var.trim_matches(':').to_owned();
        let query = &template["query"];
        let text = query["influxql"]
            .as_str()
            .unwrap()
            .replace(
                ":database:",
                &format!("{:?}", query["db"].as_str().unwrap()),
            )
            .replace(
                ":measurement:",
                &format!("{:?}", query["measurement"].as_str().unwrap()),
            )
            .replace(
                ":tagKey:",
                &format!("{:?}", query["tagKey"].as_str().unwrap()),
            );
        variables.push((name, text));
    }
    variables
}

/// `text` as Chronograf sends it: the last hour, a 1500 ms interval, and each tag-value
/// variable in `picked` single-quoted.
fn chronograf_expand(text: &str, picked: &[(&str, &str)]) -> String {
    let mut text = text
        .replace(":dashboardTime:", "now() - 1h")
        .replace(":upperDashboardTime:", "now()")
        .replace(":interval:", "1500ms");
    for (name, value) in picked {
        text = text.replace(&format!(":{name}:"), &format!("'{value}'"));
    }
    text
}

/// Unknown variables and names pivitals does not write, in one query.
fn check_dashboard_query(
    query: &DashboardQuery,
    used: &[String],
    known: &[&str],
    expanded: &str,
) -> Vec<String> {
    let place = &query.place;
    let mut errors: Vec<String> = used
        .iter()
        .filter(|name| !known.contains(&name.as_str()))
        .map(|name| format!("{place}: unknown variable {name}"))
        .collect();
    match influxql::refs(expanded) {
        Ok(refs) => errors.extend(
            schema_errors_with_labels(&refs, LABEL_TAGS)
                .into_iter()
                .map(|e| format!("{place}: {e}")),
        ),
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    errors
}

fn chronograf_variables_used(text: &str) -> Vec<String> {
    influxql::tokens(text)
        .map(|tokens| {
            tokens
                .into_iter()
                .filter_map(|t| match t {
                    influxql::Tok::Var(name) => Some(name),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

const CHRONOGRAF_BUILTINS: &[&str] = &["dashboardTime", "upperDashboardTime", "interval"];

#[test]
fn every_grafana_and_chronograf_influxql_query_names_only_what_pivitals_writes() {
    let mut errors = Vec::new();
    let mut measurements_shown: Vec<BTreeSet<String>> = Vec::new();

    // Grafana: the provisioned InfluxQL data source, and every query filtered by node and stack.
    let provisioning =
        repo_root().join("influx/grafana/provisioning-influxql/datasources/influxdb-influxql.yaml");
    let source = &yaml_documents(&[provisioning])[0][0]["datasources"][0];
    assert_eq!(source["type"], "influxdb");
    assert_eq!(source["uid"], "pivitals-influxql");
    assert_eq!(source["jsonData"]["version"], "InfluxQL");
    assert_eq!(source["jsonData"]["dbName"], DB);
    let (_, doc) = grafana_influxql_dashboard();
    let variables = grafana_variables(&doc);
    let mut known: Vec<&str> = GRAFANA_BUILTINS.to_vec();
    known.extend(variables.iter().map(|(name, _)| name.as_str()));
    for variable in doc["templating"]["list"].as_array().unwrap() {
        assert_eq!(
            variable["datasource"]["uid"], "pivitals-influxql",
            "{variable}"
        );
        assert_eq!(variable["multi"], true, "{variable}");
        assert_eq!(variable["includeAll"], true, "{variable}");
        // Grafana's own "All" would be (a|b|…), which no series without the tag matches.
        assert_eq!(variable["allValue"], ".*", "{variable}");
    }
    assert_eq!(
        variables
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["stack", "node"]
    );
    let mut shown = BTreeSet::new();
    let queries = grafana_queries(&doc);
    assert!(queries.len() >= 30, "{} Grafana queries", queries.len());
    for panel in doc["panels"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["type"] != "row")
    {
        for target in panel["targets"].as_array().unwrap() {
            assert_eq!(target["rawQuery"], true, "{}", panel["title"]);
            assert_eq!(target["datasource"]["uid"], "pivitals-influxql");
            assert_eq!(panel["datasource"]["uid"], "pivitals-influxql");
        }
    }
    let variable_queries = variables.iter().map(|(name, text)| DashboardQuery {
        place: format!("Grafana variable {name}"),
        text: text.clone(),
    });
    for query in &queries
        .iter()
        .cloned()
        .chain(variable_queries)
        .collect::<Vec<_>>()
    {
        let is_variable = query.place.starts_with("Grafana variable");
        if !is_variable
            && !query
                .text
                .contains(r#""node" =~ /^$node$/ AND "stack" =~ /^$stack$/"#)
        {
            errors.push(format!("{}: not filtered by $node and $stack", query.place));
        }
        let expanded = grafana_expand(&query.text, Pick::Only(&["a-1", "b.2"]), Pick::All);
        errors.extend(check_dashboard_query(
            query,
            &grafana_variables_used(&query.text),
            &known,
            &expanded,
        ));
        if let Ok(refs) = influxql::refs(&expanded) {
            shown.extend(refs.measurements);
        }
    }
    measurements_shown.push(shown);

    // Chronograf: both dashboards, each query with the dashboard's own variables.
    let mut shown = BTreeSet::new();
    for (path, doc) in chronograf_influxql_dashboards() {
        let variables = chronograf_variables(&doc);
        let mut known: Vec<&str> = CHRONOGRAF_BUILTINS.to_vec();
        known.extend(variables.iter().map(|(name, _)| name.as_str()));
        let picked: Vec<(&str, &str)> = variables.iter().map(|(n, _)| (n.as_str(), "x")).collect();
        let queries = chronograf_queries(&path, &doc);
        assert!(
            queries.len() >= 12,
            "{} queries in {}",
            queries.len(),
            path.display()
        );
        for query in &queries {
            let filter = variables
                .iter()
                .any(|(name, _)| query.text.contains(&format!(r#""{name}" = :{name}:"#)));
            if !filter {
                errors.push(format!(
                    "{}: not filtered by the dashboard's variable",
                    query.place
                ));
            }
            let expanded = chronograf_expand(&query.text, &picked);
            errors.extend(check_dashboard_query(
                query,
                &chronograf_variables_used(&query.text),
                &known,
                &expanded,
            ));
            if let Ok(refs) = influxql::refs(&expanded) {
                shown.extend(refs.measurements);
            }
        }
        for (name, text) in &variables {
            let query = DashboardQuery {
                place: format!("{} variable {name}", path.display()),
                text: text.clone(),
            };
            errors.extend(check_dashboard_query(&query, &[], &[], text));
        }
    }
    measurements_shown.push(shown);

    for (tool, shown) in ["Grafana", "Chronograf"].iter().zip(&measurements_shown) {
        for measurement in SCHEMA {
            if !shown.contains(measurement.name) {
                errors.push(format!(
                    "the {tool} InfluxQL dashboards never show {}",
                    measurement.name
                ));
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

#[test]
fn a_wrong_name_or_variable_fails_the_dashboard_check() {
    let (_, doc) = grafana_influxql_dashboard();
    let queries = grafana_queries(&doc);
    let disk = queries
        .iter()
        .find(|q| q.text.contains(r#"FROM "disk""#) && q.text.contains(r#""mount""#))
        .expect("a disk query");
    let known: Vec<&str> = GRAFANA_BUILTINS
        .iter()
        .copied()
        .chain(["node", "stack"])
        .collect();
    let check = |text: &str| {
        let query = DashboardQuery {
            place: disk.place.clone(),
            text: text.to_owned(),
        };
        let expanded = grafana_expand(text, Pick::All, Pick::Only(&["1", "2"]));
        check_dashboard_query(&query, &grafana_variables_used(text), &known, &expanded)
    };
    assert_eq!(check(&disk.text), Vec::<String>::new());
    for (good, bad, named) in [
        (r#"FROM "disk""#, r#"FROM "disks""#, "disks"),
        (r#""used_percent""#, r#""used_pct""#, "used_pct"),
        (r#""mount""#, r#""path""#, "path"),
        (r#""stack" =~"#, r#""stacks" =~"#, "stacks"),
        ("$node", "$nodes", "nodes"),
        ("$__interval", "$__rate_interval", "__rate_interval"),
    ] {
        let broken = disk.text.replacen(good, bad, 1);
        assert_ne!(broken, disk.text, "{good} is not in the query");
        let errors = check(&broken);
        assert!(
            errors.iter().any(|e| e.contains(named)),
            "breaking {good} into {bad} went unnoticed: {errors:?}"
        );
    }
    // Grafana's escaping and multi-value form, which the runs below depend on.
    assert_eq!(Pick::Only(&["sd-pi"]).grafana_regex(), "sd-pi");
    assert_eq!(Pick::Only(&["a.b", "c"]).grafana_regex(), r"(a\.b|c)");
    assert_eq!(Pick::All.grafana_regex(), ".*");
}

/// The nodes an expanded query must show (when picked): what each node writes here.
fn nodes_with_data(text: &str) -> &'static [&'static str] {
    let from = |m: &str| text.contains(&format!(r#"FROM "{m}""#));
    if from("power") || from("storage_health") {
        &[PUSHED_NODE]
    } else if from("alert") {
        &[PI_NODE]
    } else if from("action") {
        &[PI_NODE, STACK_TWO_NODE]
    } else if from("temperature") {
        &[PI_NODE, PUSHED_NODE]
    } else if text.contains(r#""under_voltage""#) {
        // The throttling word: only the agent reading the fixture's get_throttled has it.
        &[PI_NODE]
    } else {
        AGENTS
    }
}

/// The `node` tags of the series with values in `answer`.
fn series_nodes(answer: &Value) -> BTreeSet<String> {
    answer["results"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|result| result["series"].as_array().into_iter().flatten())
        .filter(|series| has_rows(&serde_json::json!({"results": [{"series": [series]}]})))
        .filter_map(|series| series["tags"]["node"].as_str().map(str::to_owned))
        .collect()
}

/// The values of a `SHOW TAG VALUES` answer.
fn tag_values(answer: &Value) -> BTreeSet<String> {
    answer["results"][0]["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["values"].as_array().into_iter().flatten())
        .filter_map(|row| row[1].as_str().map(str::to_owned))
        .collect()
}

/// One expanded query and the nodes it may and must show.
#[derive(Debug)]
struct Run {
    /// The dashboard query's place.
    place: String,
    /// The picked variable values.
    pick: String,
    text: String,
    /// Grouped by node in its outer statement, so each series names its node.
    per_node: bool,
    /// No series of a node outside these.
    selected: BTreeSet<&'static str>,
    /// Series for each of these (and rows at all when the query is not per node).
    required: BTreeSet<&'static str>,
}

impl Run {
    fn new(place: &str, pick: String, text: String, selected: BTreeSet<&'static str>) -> Run {
        let required = nodes_with_data(&text)
            .iter()
            .copied()
            .filter(|n| selected.contains(n))
            .collect();
        let per_node = !text.contains("FROM (")
            && text
                .rsplit_once("GROUP BY")
                .is_some_and(|(_, by)| by.contains(r#""node""#));
        Run {
            place: place.to_owned(),
            pick,
            text,
            per_node,
            selected,
            required,
        }
    }

    /// Whether this run asks for data, not only for nothing outside the pick.
    fn demands_rows(&self) -> bool {
        !self.per_node || !self.required.is_empty()
    }

    /// Why the answer is not yet right, or `None`.
    fn judge(&self, influx: &InfluxV1) -> Option<String> {
        let answer = match influx.query(DB, &self.text) {
            Ok(answer) => answer,
            Err(e) => panic!("{}: InfluxDB refused {}: {e}", self.place, self.text),
        };
        if !self.per_node {
            return (!has_rows(&answer)).then(|| "no rows".to_owned());
        }
        let nodes = series_nodes(&answer);
        let outside: Vec<_> = nodes
            .iter()
            .filter(|n| !self.selected.contains(n.as_str()))
            .collect();
        assert!(
            outside.is_empty(),
            "{} ({}): series of {outside:?}, outside {:?}: {}",
            self.place,
            self.pick,
            self.selected,
            self.text
        );
        let missing: Vec<_> = self
            .required
            .iter()
            .filter(|n| !nodes.contains(**n))
            .collect();
        (!missing.is_empty()).then(|| format!("no series of {missing:?}"))
    }
}

/// Every query of both new dashboards, expanded for several picks of node and stack.
fn dashboard_runs() -> Vec<Run> {
    let mut runs = Vec::new();
    let (_, doc) = grafana_influxql_dashboard();
    let picks = [
        (Pick::All, Pick::All),
        (Pick::All, Pick::Only(&["1"])),
        (Pick::All, Pick::Only(&["2"])),
        (Pick::All, Pick::Only(&["1", "2"])),
        (Pick::Only(&[PI_NODE, STACK_TWO_NODE]), Pick::All),
        (Pick::Only(&[PUSHED_NODE]), Pick::Only(&["1"])),
    ];
    for query in grafana_queries(&doc) {
        for (node, stack) in picks {
            runs.push(Run::new(
                &query.place,
                format!("node {node:?}, stack {stack:?}"),
                grafana_expand(&query.text, node, stack),
                selected_nodes(node, stack),
            ));
        }
    }
    for (path, doc) in chronograf_influxql_dashboards() {
        let variables = chronograf_variables(&doc);
        for query in chronograf_queries(&path, &doc) {
            for (name, _) in &variables {
                let values: &[&'static str] = match name.as_str() {
                    "stack" => &["1", "2"],
                    "node" => &[PI_NODE, PUSHED_NODE, STACK_TWO_NODE],
                    other => panic!("unexpected Chronograf variable {other}"),
                };
                for value in values {
                    let selected = match name.as_str() {
                        "stack" => {
                            selected_nodes(Pick::All, Pick::Only(std::slice::from_ref(value)))
                        }
                        _ => selected_nodes(Pick::Only(std::slice::from_ref(value)), Pick::All),
                    };
                    runs.push(Run::new(
                        &query.place,
                        format!(":{name}: = '{value}'"),
                        chronograf_expand(&query.text, &[(name, value)]),
                        selected,
                    ));
                }
            }
        }
    }
    runs
}

/// An agent reporting every second as `name` with `labels`, reading `root` when given, whose
/// settings file defines the action `hello` (`echo hi`).
fn start_test_agent(dir: &Path, name: &str, url: &str, labels: &str, root: Option<&Path>) -> Proc {
    // One file per agent: rewriting a shared one could truncate it under a starting agent.
    let settings = dir.join(format!("{name}.toml"));
    std::fs::write(&settings, "[actions.hello]\ncommand = [\"echo\", \"hi\"]\n").unwrap();
    let mut env = vec![
        ("PIVITALS_PRIMARY_URL", url.to_owned()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", name.to_owned()),
        ("PIVITALS_INTERVAL", "1s".to_owned()),
        ("PIVITALS_START_JITTER", "false".to_owned()),
        ("PIVITALS_LABELS", labels.to_owned()),
        ("PIVITALS_STATE_DIR", dir.join(name).display().to_string()),
    ];
    if let Some(root) = root {
        env.push(("PIVITALS_ROOT", root.display().to_string()));
    }
    let args = ["--config".as_ref(), settings.as_os_str()];
    Proc::spawn_with_args(name, &workspace_binary("pivitals-agent"), &args, &env, dir)
}

/// The primary's settings: one rule that the Pi fixture's 48.3 °C sensor breaks at once.
const PRIMARY_SETTINGS: &str = r#"[alert]
default_rules = false

[[alert.rules]]
name = "warm"
metric = "temperature.celsius"
above = 45
"#;

/// Queues `hello` on the Pi node and the `stack=2` node and waits until both have run it.
fn run_hello_action(url: &str) {
    let auth = format!("Bearer {ADMIN}");
    let headers = [
        ("Content-Type", "application/json"),
        ("Authorization", auth.as_str()),
    ];
    let body = serde_json::json!({"action": "hello", "nodes": [PI_NODE, STACK_TWO_NODE]});
    let reply = request(
        "POST",
        &format!("{url}/api/v1/actions"),
        &headers,
        body.to_string().as_bytes(),
    )
    .unwrap();
    assert_eq!(reply.status, 202, "queue hello: {}", reply.text());
    let reply: Value = serde_json::from_slice(&reply.body).unwrap();
    let id = reply["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    loop {
        let reply = request("GET", &format!("{url}/api/v1/actions/{id}"), &headers, b"").unwrap();
        let body: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Null);
        let results = body["results"].as_array().map_or(&[][..], Vec::as_slice);
        if results.len() == 2 && results.iter().all(|r| r["state"] == "done") {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "hello not done on both nodes after 30 s: {} {body}",
            reply.status
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Runs `runs` until each is right, for at most `within`; panics naming the ones that are not.
fn run_until_right(influx: &InfluxV1, runs: &[Run], within: Duration, primary: &Proc) {
    let started = Instant::now();
    let mut pending: Vec<&Run> = runs.iter().collect();
    loop {
        let mut wrong = Vec::new();
        for run in pending {
            if let Some(why) = run.judge(influx) {
                wrong.push((run, why));
            }
        }
        if wrong.is_empty() {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{} queries not right after {within:?}:\n{}\nprimary log:\n{}",
            wrong.len(),
            wrong
                .iter()
                .take(20)
                .map(|(run, why)| format!("{} ({}): {why}\n  {}", run.place, run.pick, run.text))
                .collect::<Vec<_>>()
                .join("\n"),
            primary.log_tail()
        );
        pending = wrong.into_iter().map(|(run, _)| run).collect();
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn influxql_queries_and_dashboards_return_series_from_influxdb_1x_fed_by_real_agents() {
    let queries = influxql_queries();
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [
        ("PIVITALS_INFLUX__API", "v1".to_owned()),
        ("PIVITALS_INFLUX__URL", influx.url()),
        ("PIVITALS_INFLUX__DATABASE", DB.to_owned()),
        ("PIVITALS_SELF_MONITOR", "false".to_owned()),
        ("PIVITALS_ADMIN_TOKEN", ADMIN.to_owned()),
    ];
    let mut primary = start_primary_with_config(dir.path(), port, PRIMARY_SETTINGS, &env);
    let root = raspberry_pi_root(dir.path());
    let agents = [
        start_test_agent(
            dir.path(),
            PI_NODE,
            &url,
            "stack=1,role=worker",
            Some(&root),
        ),
        start_test_agent(dir.path(), STACK_ONE_NODE, &url, "stack=1", None),
        start_test_agent(
            dir.path(),
            STACK_TWO_NODE,
            &url,
            "stack=2,role=worker",
            None,
        ),
        start_test_agent(dir.path(), NO_STACK_NODE, &url, "role=worker", None),
    ];
    push_pi_samples(&url, 3);
    let started = Instant::now();

    // The database exists and the Pi node's samples arrive before any query is judged.
    let count = format!("SELECT count(usage_percent) FROM cpu WHERE node = '{PI_NODE}'");
    eventually(
        "3 cpu points of the Pi node",
        Duration::from_secs(40),
        || (influx.count(DB, &count).ok()? >= 3).then_some(()),
    );
    run_hello_action(&url);

    // The named queries of queries.influxql, for the Pi node.
    let named: Vec<Run> = queries
        .iter()
        .map(|q| {
            let everyone = NODES.iter().map(|(n, _)| *n).collect();
            let pick = format!(":node: = '{PI_NODE}'");
            let mut run = Run::new(&q.name, pick, substitute(&q.text), everyone);
            // Rows are enough here: several of these queries sum or count over nodes.
            run.per_node = false;
            run
        })
        .collect();
    run_until_right(&influx, &named, Duration::from_secs(60), &primary);

    let runs = dashboard_runs();
    assert!(runs.len() > 200, "{} dashboard runs", runs.len());
    run_until_right(&influx, &runs, Duration::from_secs(60), &primary);
    // Every query is asked for data in some run, not only for nothing outside the pick.
    let (_, doc) = grafana_influxql_dashboard();
    let mut places: Vec<String> = grafana_queries(&doc).into_iter().map(|q| q.place).collect();
    for (path, doc) in chronograf_influxql_dashboards() {
        places.extend(chronograf_queries(&path, &doc).into_iter().map(|q| q.place));
    }
    for place in places {
        assert!(
            runs.iter().any(|r| r.place == place && r.demands_rows()),
            "{place}: no run asks for its series"
        );
    }

    // The variables' own queries list the test's nodes and stacks.
    let everyone: BTreeSet<String> = NODES.iter().map(|(n, _)| (*n).to_owned()).collect();
    let stacks: BTreeSet<String> = ["1", "2"].map(String::from).into();
    for (name, text) in grafana_variables(&doc) {
        let all = tag_values(
            &influx
                .query(DB, &grafana_expand(&text, Pick::All, Pick::All))
                .unwrap(),
        );
        let two = grafana_expand(&text, Pick::All, Pick::Only(&["2"]));
        let two = tag_values(&influx.query(DB, &two).unwrap());
        match name.as_str() {
            "stack" => assert_eq!(all, stacks, "Grafana $stack"),
            "node" => {
                assert_eq!(all, everyone, "Grafana $node with stack All");
                assert_eq!(
                    two,
                    [STACK_TWO_NODE.to_owned()].into(),
                    "Grafana $node with stack 2"
                );
            }
            other => panic!("unexpected Grafana variable {other}"),
        }
    }
    for (_, doc) in chronograf_influxql_dashboards() {
        for (name, text) in chronograf_variables(&doc) {
            let values = tag_values(&influx.query(DB, &text).unwrap());
            let expected = if name == "stack" { &stacks } else { &everyone };
            assert_eq!(&values, expected, "Chronograf :{name}:");
        }
    }
    eprintln!(
        "{} dashboard runs right {:?} after the agents started",
        runs.len(),
        started.elapsed()
    );

    // The agents go first: their open action long-polls would hold the primary's graceful
    // shutdown until each poll's wait ends.
    drop(agents);
    let status = primary.terminate(Duration::from_secs(30));
    assert!(status.success(), "primary exit: {status}");
}

/// The 365-day policy on a database: (duration, default) from `SHOW RETENTION POLICIES`.
fn retention_policy(influx: &InfluxV1) -> (Value, Value) {
    let answer = influx
        .query(DB, "SHOW RETENTION POLICIES ON \"pivitals\"")
        .unwrap();
    let rows = answer["results"][0]["series"][0]["values"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r[0] == "pivitals_365d")
        .unwrap_or_else(|| panic!("no pivitals_365d in {answer}"));
    (
        row[1].clone(),
        row[row.as_array().unwrap().len() - 1].clone(),
    )
}

#[test]
fn influxdb1_setup_script_creates_and_repairs_the_365_day_policy() {
    assert!(
        installed("curl"),
        "the setup script needs curl: apt-get install curl"
    );
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let script = repo_root().join("influx/setup-influxdb1.sh");
    let setup = || {
        let output = run(Command::new("sh").arg(&script).arg(influx.url()).arg(DB));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    assert!(setup().contains("pivitals_365d"));
    assert_eq!(retention_policy(&influx), ("8760h0m0s".into(), true.into()));
    // Idempotent, and a policy shortened by hand comes back to 365 days.
    setup();
    influx
        .post_query(
            DB,
            "ALTER RETENTION POLICY \"pivitals_365d\" ON \"pivitals\" DURATION 30d",
        )
        .unwrap();
    assert_eq!(retention_policy(&influx).0, "720h0m0s");
    setup();
    assert_eq!(retention_policy(&influx), ("8760h0m0s".into(), true.into()));
}
