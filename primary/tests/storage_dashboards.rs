//! The storage side's files, checked against what pivitals really writes and runs:
//!
//! - every query of every dashboard (the InfluxDB 2 template, the Chronograf dashboards, the
//!   Grafana dashboard: Flux; `influx/influxql/queries.influxql`: InfluxQL) names only
//!   measurements, fields and tags of `pivitals_common::line_protocol::SCHEMA`, and only
//!   variables its dashboard defines; a wrong name fails the check (tested below);
//! - the InfluxQL queries return rows from a real InfluxDB 1.x fed by a real agent and primary
//!   (the agent reads a Raspberry Pi's `/sys` files from a fixture tree, so temperature and
//!   throttling have data on any machine);
//! - `docker-compose config` accepts docker-compose.yml with `.env.example` as `.env`;
//! - every JSON and YAML file in influx/ and deploy/ parses, and the systemd units pass
//!   `systemd-analyze verify`.
//!
//! The Flux queries are checked statically only: no InfluxDB 2 (nor a Flux-enabled 1.8) runs
//! here. YAML is parsed with Python's `yaml` module (Debian `python3-yaml`), which keeps the
//! workspace free of a YAML crate.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use pivitals_common::line_protocol::{MeasurementSchema, SCHEMA};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::Value;
use support::{
    ENROLL, Proc, eventually, start_agent, start_primary_on_influx_v1, workspace_binary,
};

const DB: &str = "pivitals";
/// The node whose agent reads the Raspberry Pi fixture; the per-node InfluxQL queries use it.
const PI_NODE: &str = "sd-pi";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&read(path)).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("run {command:?}: {e}"))
}

/// Parses YAML files with Python's `yaml` module and returns each file's documents as JSON.
fn yaml_documents(paths: &[PathBuf]) -> Vec<Value> {
    const SCRIPT: &str = "import json, sys, yaml\n\
        out = []\n\
        for path in sys.argv[1:]:\n\
        \x20   with open(path) as f:\n\
        \x20       out.append(list(yaml.safe_load_all(f)))\n\
        json.dump(out, sys.stdout, default=str)\n";
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .args(paths)
        .output()
        .unwrap_or_else(|e| panic!("python3 is needed to parse YAML: {e}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("No module named 'yaml'"),
        "Python's yaml module is missing: apt-get install python3-yaml"
    );
    assert!(
        output.status.success(),
        "a YAML file does not parse:\n{stderr}"
    );
    let parsed: Value = serde_json::from_slice(&output.stdout).expect("JSON from python3");
    parsed.as_array().expect("one entry per file").clone()
}

/// Every file under `dir` (recursively), sorted.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

// ------------------------------------------------------------------------------------------
// What a query refers to, and whether pivitals writes it.

/// The names one query refers to.
#[derive(Debug, Default)]
struct Refs {
    measurements: BTreeSet<String>,
    fields: BTreeSet<String>,
    /// Must be a tag: `node` or a tag of one of the measurements (InfluxQL `GROUP BY`).
    tags: BTreeSet<String>,
    /// A tag or a field (Flux columns after a pivot, InfluxQL `WHERE`).
    columns: BTreeSet<String>,
    /// Names the query itself gives (InfluxQL `AS`), which outer queries may use.
    aliases: BTreeSet<String>,
    /// Things the check cannot read, such as a regular expression on `_measurement`.
    unreadable: Vec<String>,
}

/// Columns Flux adds to every table.
const FLUX_COLUMNS: &[&str] = &[
    "_measurement",
    "_field",
    "_value",
    "_time",
    "_start",
    "_stop",
];

fn is_field_of(schema: &MeasurementSchema, name: &str) -> bool {
    schema.fields.iter().any(|(field, _)| *field == name)
}

/// What is wrong with `refs` against `SCHEMA`; empty when everything is written by pivitals.
fn schema_errors(refs: &Refs) -> Vec<String> {
    let mut errors = refs.unreadable.clone();
    if refs.measurements.is_empty() {
        errors.push("names no measurement".to_owned());
    }
    let mut known = Vec::new();
    for name in &refs.measurements {
        match SCHEMA.iter().find(|m| m.name == name) {
            Some(schema) => known.push(schema),
            None => errors.push(format!("measurement {name:?} is not written by pivitals")),
        }
    }
    let measurements = &refs.measurements;
    let is_tag = |name: &str| name == "node" || known.iter().any(|m| m.tags.contains(&name));
    let is_field = |name: &str| known.iter().any(|m| is_field_of(m, name));
    for field in &refs.fields {
        if !is_field(field) && !refs.aliases.contains(field) {
            errors.push(format!(
                "field {field:?} is not a field of {measurements:?}"
            ));
        }
    }
    for tag in &refs.tags {
        if !is_tag(tag) && !refs.aliases.contains(tag) {
            errors.push(format!("tag {tag:?} is not a tag of {measurements:?}"));
        }
    }
    for column in &refs.columns {
        let known_column = FLUX_COLUMNS.contains(&column.as_str())
            || is_tag(column)
            || is_field(column)
            || refs.aliases.contains(column);
        if !known_column {
            errors.push(format!(
                "column {column:?} is neither a tag nor a field of {measurements:?}"
            ));
        }
    }
    errors
}

// ------------------------------------------------------------------------------------------
// Flux: the few patterns the dashboards use, read without a parser.

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The byte offsets where `needle` starts a name (not preceded by a name character or `.`).
fn name_starts<'a>(text: &'a str, needle: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.match_indices(needle)
        .map(|(at, _)| at)
        .filter(move |&at| {
            text[..at]
                .chars()
                .next_back()
                .is_none_or(|c| !is_ident_char(c) && c != '.')
        })
}

/// A double-quoted string at the start of `text` (after spaces): its content and the rest.
fn quoted(text: &str) -> Option<(&str, &str)> {
    let text = text.trim_start().strip_prefix('"')?;
    let end = text.find('"')?;
    Some((&text[..end], &text[end + 1..]))
}

/// The identifier at the start of `text`.
fn ident(text: &str) -> &str {
    let end = text.find(|c: char| !is_ident_char(c)).unwrap_or(text.len());
    &text[..end]
}

/// Every `r.name` / `r["name"]`, with the string it is compared to by `==` or `!=` if any.
fn record_members(query: &str) -> Vec<(String, Option<String>)> {
    let mut members = Vec::new();
    for at in name_starts(query, "r") {
        let after_r = &query[at + 1..];
        let (name, rest) = if let Some(rest) = after_r.strip_prefix('.') {
            let name = ident(rest);
            (name, &rest[name.len()..])
        } else if let Some(rest) = after_r.strip_prefix('[') {
            match quoted(rest) {
                Some((name, rest)) => (name, rest.trim_start().strip_prefix(']').unwrap_or(rest)),
                None => continue,
            }
        } else {
            continue;
        };
        if name.is_empty() {
            continue;
        }
        let rest = rest.trim_start();
        let compared = rest
            .strip_prefix("==")
            .or_else(|| rest.strip_prefix("!="))
            .and_then(quoted)
            .map(|(value, _)| value.to_owned());
        members.push((name.to_owned(), compared));
    }
    members
}

/// The string values of every `name: "value"` argument.
fn string_args(query: &str, name: &str) -> Vec<String> {
    let needle = format!("{name}:");
    name_starts(query, &needle)
        .filter_map(|at| quoted(&query[at + needle.len()..]).map(|(v, _)| v.to_owned()))
        .collect()
}

/// The strings of every `name: ["a", "b"]` argument (`columns: {…}` of rename() is not one).
fn list_args(query: &str, name: &str) -> Vec<String> {
    let needle = format!("{name}:");
    let mut values = Vec::new();
    for at in name_starts(query, &needle) {
        let Some(list) = query[at + needle.len()..].trim_start().strip_prefix('[') else {
            continue;
        };
        let list = &list[..list.find(']').unwrap_or(list.len())];
        let mut rest = list;
        while let Some((value, after)) = quoted(rest) {
            values.push(value.to_owned());
            rest = after.trim_start().trim_start_matches(',');
        }
    }
    values
}

/// The names a Flux query refers to.
fn flux_refs(query: &str) -> Refs {
    let mut refs = Refs::default();
    for (name, compared) in record_members(query) {
        match (name.as_str(), compared) {
            ("_measurement", Some(value)) => {
                refs.measurements.insert(value);
            }
            ("_field", Some(value)) => {
                refs.fields.insert(value);
            }
            ("_measurement" | "_field", None) => refs.unreadable.push(format!(
                "r.{name} is used without `== \"name\"`, so the schema check cannot read it"
            )),
            (name, _) => {
                refs.columns.insert(name.to_owned());
            }
        }
    }
    refs.measurements.extend(string_args(query, "measurement"));
    refs.fields.extend(string_args(query, "field"));
    refs.tags.extend(string_args(query, "tag"));
    refs.columns.extend(string_args(query, "column"));
    refs.columns.extend(list_args(query, "columns"));
    refs
}

/// The dashboard variables a query uses: Flux `v.name`, Grafana `${name}` and `$name`.
fn flux_variables(query: &str) -> BTreeSet<String> {
    let mut used: BTreeSet<String> = name_starts(query, "v.")
        .map(|at| ident(&query[at + 2..]).to_owned())
        .collect();
    for (at, _) in query.match_indices('$') {
        let rest = &query[at + 1..];
        let name = ident(rest.strip_prefix('{').unwrap_or(rest));
        if !name.is_empty() {
            used.insert(name.to_owned());
        }
    }
    used
}

/// Variables every Flux dashboard tool provides (Grafana also `defaultBucket`, `organization`).
const FLUX_BUILTIN_VARIABLES: &[&str] = &["timeRangeStart", "timeRangeStop", "windowPeriod"];

fn is_flux(text: &str) -> bool {
    text.contains("|>") || text.contains("from(bucket") || text.contains("measurementTagValues")
}

/// Every string in a JSON document with its path, e.g. `spec.charts[3].queries[0].query`.
fn json_strings(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
    match value {
        Value::String(text) => out.push((path.to_owned(), text.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                json_strings(item, &format!("{path}[{i}]"), out);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                json_strings(item, &path, out);
            }
        }
        _ => {}
    }
}

/// Checks every Flux query in a dashboard file; returns the errors, each with its place.
fn check_flux_file(file: &Path, doc: &Value, variables: &BTreeSet<String>) -> (usize, Vec<String>) {
    let mut strings = Vec::new();
    json_strings(doc, "", &mut strings);
    let mut checked = 0;
    let mut errors = Vec::new();
    for (path, query) in strings.iter().filter(|(_, text)| is_flux(text)) {
        checked += 1;
        let place = format!("{} {path}", file.display());
        for error in schema_errors(&flux_refs(query)) {
            errors.push(format!("{place}: {error}"));
        }
        for variable in flux_variables(query) {
            if !variables.contains(&variable)
                && !FLUX_BUILTIN_VARIABLES.contains(&variable.as_str())
            {
                errors.push(format!("{place}: variable {variable:?} is not defined"));
            }
        }
    }
    (checked, errors)
}

// ------------------------------------------------------------------------------------------
// InfluxQL: a tokenizer and the clauses the queries use.

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare or double-quoted identifier; `quoted` ones are never keywords.
    Ident {
        name: String,
        quoted: bool,
    },
    Str,
    Number,
    /// A Chronograf template variable, `:name:`.
    Var(String),
    Punct(char),
}

fn influxql_tokens(statement: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = statement.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let take_until = |i: usize, end: char| -> Result<(String, usize), String> {
            let start = i + 1;
            let len = chars[start..]
                .iter()
                .position(|&c| c == end)
                .ok_or_else(|| format!("unterminated {end} in {statement}"))?;
            Ok((chars[start..start + len].iter().collect(), start + len + 1))
        };
        if c.is_whitespace() {
            i += 1;
        } else if c == '"' {
            let (name, next) = take_until(i, '"')?;
            tokens.push(Tok::Ident { name, quoted: true });
            i = next;
        } else if c == '\'' {
            i = take_until(i, '\'')?.1;
            tokens.push(Tok::Str);
        } else if c == ':' && chars.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic()) {
            let (name, next) = take_until(i, ':')?;
            tokens.push(Tok::Var(name));
            i = next;
        } else if c.is_ascii_digit() {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
            tokens.push(Tok::Number);
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && is_ident_char(chars[i]) {
                i += 1;
            }
            let name = chars[start..i].iter().collect();
            tokens.push(Tok::Ident {
                name,
                quoted: false,
            });
        } else {
            tokens.push(Tok::Punct(c));
            i += 1;
        }
    }
    Ok(tokens)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Clause {
    None,
    Select,
    From,
    Where,
    GroupBy,
}

/// The names an InfluxQL statement refers to.
fn influxql_refs(statement: &str) -> Result<Refs, String> {
    const KEYWORDS: &[&str] = &[
        "and", "as", "asc", "by", "desc", "from", "group", "limit", "not", "offset", "or", "order",
        "select", "slimit", "soffset", "tz", "where",
    ];
    let tokens = influxql_tokens(statement)?;
    let mut refs = Refs::default();
    let mut clause = Clause::None;
    let mut i = 0;
    while i < tokens.len() {
        let Tok::Ident { name, quoted } = &tokens[i] else {
            i += 1;
            continue;
        };
        let lower = name.to_ascii_lowercase();
        let keyword = !quoted && KEYWORDS.contains(&lower.as_str());
        let next = tokens.get(i + 1);
        if keyword {
            clause = match lower.as_str() {
                "select" => Clause::Select,
                "from" => Clause::From,
                "where" => Clause::Where,
                "group" => Clause::GroupBy,
                "order" | "limit" | "offset" | "slimit" | "soffset" | "tz" => Clause::None,
                _ => clause,
            };
            i += 1;
            continue;
        }
        if next == Some(&Tok::Punct('(')) {
            // A function call; fill(), time() and now() take no names.
            if !quoted && matches!(lower.as_str(), "fill" | "time" | "now") {
                let mut depth = 0;
                i += 1;
                while i < tokens.len() {
                    match tokens[i] {
                        Tok::Punct('(') => depth += 1,
                        Tok::Punct(')') => depth -= 1,
                        _ => {}
                    }
                    i += 1;
                    if depth == 0 {
                        break;
                    }
                }
            } else {
                i += 1;
            }
            continue;
        }
        let after_as = i > 0
            && matches!(&tokens[i - 1], Tok::Ident { name, quoted: false } if name.eq_ignore_ascii_case("as"));
        if after_as {
            refs.aliases.insert(name.clone());
        } else if !quoted && lower == "time" {
            // WHERE time > …
        } else {
            match clause {
                Clause::Select => {
                    refs.fields.insert(name.clone());
                }
                Clause::From if next != Some(&Tok::Punct('.')) => {
                    refs.measurements.insert(name.clone());
                }
                Clause::Where => {
                    refs.columns.insert(name.clone());
                }
                Clause::GroupBy => {
                    refs.tags.insert(name.clone());
                }
                Clause::From | Clause::None => {}
            }
        }
        i += 1;
    }
    Ok(refs)
}

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
    match influxql_tokens(&query.text) {
        Ok(tokens) => {
            for token in tokens {
                if let Tok::Var(name) = token
                    && !INFLUXQL_VARIABLES.iter().any(|(known, _)| *known == name)
                {
                    errors.push(format!("{place}: unknown variable :{name}:"));
                }
            }
        }
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    match influxql_refs(&query.text) {
        Ok(refs) => errors.extend(
            schema_errors(&refs)
                .into_iter()
                .map(|e| format!("{place}: {e}")),
        ),
        Err(e) => errors.push(format!("{place}: {e}")),
    }
    errors
}

// ------------------------------------------------------------------------------------------
// The dashboard files.

fn influxdb2_template() -> (PathBuf, Value) {
    let path = repo_root().join("influx/influxdb2/pivitals.json");
    let doc = read_json(&path);
    (path, doc)
}

/// The InfluxDB 2 template: the shape `influx apply` validates (pkger's chart rules) and its
/// variables; returns the variable names it defines and the number of charts.
fn check_influxdb2_template(doc: &Value, errors: &mut Vec<String>) -> (BTreeSet<String>, usize) {
    let resources = doc.as_array().expect("a template is an array of resources");
    let mut variables = BTreeSet::new();
    let mut charts = 0;
    for resource in resources {
        assert_eq!(
            resource["apiVersion"], "influxdata.com/v2alpha1",
            "{resource}"
        );
        let meta_name = resource["metadata"]["name"].as_str().unwrap_or_default();
        assert!(
            !meta_name.is_empty()
                && meta_name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "metadata.name must be lower case, digits and dashes: {meta_name:?}"
        );
        let spec = &resource["spec"];
        match resource["kind"].as_str() {
            Some("Label") => {}
            Some("Variable") => {
                variables.insert(spec["name"].as_str().unwrap().to_owned());
                match spec["type"].as_str() {
                    Some("query") => assert_eq!(spec["language"], "flux", "{resource}"),
                    Some("constant") => assert!(spec["values"].is_array(), "{resource}"),
                    other => panic!("variable type {other:?}"),
                }
            }
            Some("Dashboard") => {
                for chart in spec["charts"].as_array().expect("charts") {
                    charts += 1;
                    let name = &chart["name"];
                    let kind = chart["kind"].as_str().unwrap_or_default();
                    let valid_kinds = ["Xy", "Single_Stat", "Table", "Gauge", "Markdown"];
                    if !valid_kinds.contains(&kind) {
                        errors.push(format!("chart {name}: kind {kind:?}"));
                    }
                    for key in ["width", "height"] {
                        if chart[key].as_u64().unwrap_or(0) == 0 {
                            errors.push(format!("chart {name}: {key} must be above 0"));
                        }
                    }
                    for color in chart["colors"].as_array().into_iter().flatten() {
                        if color["hex"].as_str().is_none_or(str::is_empty) {
                            errors.push(format!("chart {name}: a color without hex"));
                        }
                    }
                    if kind == "Xy" {
                        let geoms = ["line", "step", "stacked", "monotoneX", "bar"];
                        if !geoms.contains(&chart["geom"].as_str().unwrap_or_default()) {
                            errors.push(format!("chart {name}: geom {}", chart["geom"]));
                        }
                        let axes: Vec<_> = chart["axes"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|a| a["name"].as_str())
                            .collect();
                        if !axes.contains(&"x") || !axes.contains(&"y") {
                            errors.push(format!("chart {name}: needs axes x and y"));
                        }
                    }
                    let queries = chart["queries"].as_array().map_or(0, Vec::len);
                    if kind != "Markdown" && queries == 0 {
                        errors.push(format!("chart {name}: no query"));
                    }
                }
            }
            other => panic!("unexpected resource kind {other:?}"),
        }
    }
    (variables, charts)
}

fn chronograf_dashboards() -> Vec<(PathBuf, Value)> {
    let dir = repo_root().join("influx/chronograf");
    let dashboards: Vec<_> = files_under(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "dashboard"))
        .map(|p| {
            let doc = read_json(&p);
            (p, doc)
        })
        .collect();
    assert!(
        dashboards.len() >= 2,
        "no Chronograf dashboards in {}",
        dir.display()
    );
    dashboards
}

/// A Chronograf `.dashboard` resource as `filestore.Dashboards` loads it (the plain dashboard,
/// not the UI's `{meta, dashboard}` export, whose ID the file store cannot look up).
fn check_chronograf_dashboard(doc: &Value, errors: &mut Vec<String>) -> (BTreeSet<String>, usize) {
    let id = doc["id"].as_i64().expect("a numeric id");
    assert!(
        id < 0,
        "file dashboards take negative ids (UI ones count up from 1)"
    );
    assert_eq!(
        doc["organization"], "default",
        "the default organization sees it"
    );
    assert!(doc["name"].as_str().is_some_and(|n| !n.is_empty()));
    let mut variables = BTreeSet::new();
    for template in doc["templates"].as_array().expect("templates") {
        let var = template["tempVar"].as_str().unwrap();
        let name = var
            .strip_prefix(':')
            .and_then(|v| v.strip_suffix(':'))
            .unwrap_or_else(|| panic!("tempVar {var} is not :name:"));
        variables.insert(name.to_owned());
        if template["type"] == "flux" {
            assert!(template["query"]["flux"].is_string(), "{template}");
        }
    }
    let cells = doc["cells"].as_array().expect("cells");
    let mut ids = BTreeSet::new();
    for cell in cells {
        let name = &cell["name"];
        if !ids.insert(cell["i"].as_str().unwrap_or_default()) {
            errors.push(format!("cell {name}: id repeats"));
        }
        let queries = cell["queries"].as_array().map_or(&[][..], Vec::as_slice);
        if queries.is_empty() {
            errors.push(format!("cell {name}: no query"));
        }
        for query in queries {
            if query["type"] != "flux" {
                errors.push(format!("cell {name}: query type {}", query["type"]));
            }
            if query["query"] != query["queryConfig"]["rawText"] {
                errors.push(format!("cell {name}: query and rawText differ"));
            }
        }
    }
    (variables, cells.len())
}

fn grafana_dashboard() -> (PathBuf, Value) {
    let path = repo_root().join("influx/grafana/dashboards/pivitals.json");
    let doc = read_json(&path);
    (path, doc)
}

/// The Grafana dashboard: panels (rows flattened) with queries on the provisioned data source.
fn check_grafana_dashboard(doc: &Value, errors: &mut Vec<String>) -> (BTreeSet<String>, usize) {
    let provisioning = repo_root().join("influx/grafana/provisioning/datasources/influxdb.yaml");
    let datasources = &yaml_documents(&[provisioning])[0][0]["datasources"];
    let source = &datasources[0];
    assert_eq!(source["type"], "influxdb");
    assert_eq!(source["jsonData"]["version"], "Flux");
    let uid = source["uid"].as_str().expect("a data source uid");

    let mut variables: BTreeSet<String> =
        ["defaultBucket", "organization"].map(String::from).into();
    for variable in doc["templating"]["list"].as_array().expect("templating") {
        variables.insert(variable["name"].as_str().unwrap().to_owned());
        if variable["type"] == "query" {
            assert_eq!(variable["datasource"]["uid"], uid, "{variable}");
        }
    }
    let mut panels = Vec::new();
    for panel in doc["panels"].as_array().expect("panels") {
        panels.push(panel);
        panels.extend(panel["panels"].as_array().into_iter().flatten());
    }
    let mut count = 0;
    let mut ids = BTreeSet::new();
    for panel in panels.into_iter().filter(|p| p["type"] != "row") {
        count += 1;
        let title = &panel["title"];
        if !ids.insert(panel["id"].as_u64().unwrap_or(0)) {
            errors.push(format!("panel {title}: id repeats"));
        }
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        if targets.is_empty() {
            errors.push(format!("panel {title}: no query"));
        }
        for target in targets {
            if target["datasource"]["uid"] != uid || panel["datasource"]["uid"] != uid {
                errors.push(format!("panel {title}: not on the data source {uid}"));
            }
            if target["query"].as_str().is_none_or(|q| !is_flux(q)) {
                errors.push(format!("panel {title}: no Flux query"));
            }
        }
    }
    (variables, count)
}

// ------------------------------------------------------------------------------------------
// Tests: the dashboards against the schema.

#[test]
fn every_dashboard_query_names_only_what_pivitals_writes() {
    let mut errors = Vec::new();
    let mut checked = 0;

    let (path, doc) = influxdb2_template();
    let (variables, charts) = check_influxdb2_template(&doc, &mut errors);
    assert!(charts >= 15, "{charts} charts in {}", path.display());
    let (n, file_errors) = check_flux_file(&path, &doc, &variables);
    assert!(
        n > charts,
        "not every chart has a Flux query: {n} queries, {charts} charts"
    );
    checked += n;
    errors.extend(file_errors);

    for (path, doc) in chronograf_dashboards() {
        let (variables, cells) = check_chronograf_dashboard(&doc, &mut errors);
        let (n, file_errors) = check_flux_file(&path, &doc, &variables);
        // Each cell holds its query twice (query and queryConfig.rawText).
        assert!(
            n >= 2 * cells,
            "{}: {n} queries for {cells} cells",
            path.display()
        );
        checked += n;
        errors.extend(file_errors);
    }

    let (path, doc) = grafana_dashboard();
    let (variables, panels) = check_grafana_dashboard(&doc, &mut errors);
    assert!(panels >= 15, "{panels} panels in {}", path.display());
    let (n, file_errors) = check_flux_file(&path, &doc, &variables);
    assert!(n >= panels, "{n} queries for {panels} panels");
    checked += n;
    errors.extend(file_errors);

    let queries = influxql_queries();
    assert!(queries.len() >= 15, "{} InfluxQL queries", queries.len());
    for query in &queries {
        errors.extend(check_influxql(query));
    }
    checked += queries.len();

    assert!(
        errors.is_empty(),
        "{} of {checked} queries name what pivitals does not write:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

#[test]
fn every_measurement_is_on_some_dashboard_and_availability_comes_from_node_status() {
    // Not a dead schema either: each measurement appears in each tool's dashboards.
    let mut texts = vec![read(&influxdb2_template().0), read(&grafana_dashboard().0)];
    texts.push(
        chronograf_dashboards()
            .iter()
            .map(|(p, _)| read(p))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    for (tool, text) in ["InfluxDB 2", "Grafana", "Chronograf"].iter().zip(&texts) {
        for measurement in SCHEMA {
            let reference = format!(r#"_measurement == \"{}\""#, measurement.name);
            assert!(
                text.contains(&reference),
                "the {tool} dashboards never show {}",
                measurement.name
            );
        }
        assert!(
            text.contains(r#"_measurement == \"node_status\" and r._field == \"up\""#),
            "{tool}: no availability from node_status"
        );
    }
    let influxql = read(&repo_root().join("influx/influxql/queries.influxql"));
    assert!(influxql.contains(r#"FROM "node_status""#));
}

#[test]
fn a_wrong_name_fails_the_schema_check() {
    // A real query from the Grafana dashboard passes, and breaking any one name fails it.
    let (_, doc) = grafana_dashboard();
    let mut strings = Vec::new();
    json_strings(&doc, "", &mut strings);
    let disk = strings
        .iter()
        .map(|(_, s)| s)
        .find(|s| {
            s.contains(r#"r._measurement == "disk""#) && s.contains("mount") && s.contains("r.node")
        })
        .expect("the node view's disk query");
    assert_eq!(schema_errors(&flux_refs(disk)), Vec::<String>::new());
    for (good, bad, named) in [
        (r#""disk""#, r#""disks""#, "disks"),
        (r#""used_percent""#, r#""used_pct""#, "used_pct"),
        (r#""mount""#, r#""mountpoint""#, "mountpoint"),
        ("r.node", "r.host", "host"),
    ] {
        let broken = disk.replace(good, bad);
        assert_ne!(&broken, disk, "{good} is not in the query");
        let errors = schema_errors(&flux_refs(&broken));
        assert!(
            errors.iter().any(|e| e.contains(named)),
            "breaking {good} into {bad} went unnoticed: {errors:?}"
        );
    }
    // A tag of another measurement is wrong too, and so is an unreadable filter.
    let sensor_on_cpu =
        r#"from(bucket: "b") |> filter(fn: (r) => r._measurement == "cpu" and r.sensor == "x")"#;
    assert!(!schema_errors(&flux_refs(sensor_on_cpu)).is_empty());
    let regex = r#"from(bucket: "b") |> filter(fn: (r) => r._measurement =~ /cp.*/)"#;
    assert!(!schema_errors(&flux_refs(regex)).is_empty());
    assert!(!schema_errors(&flux_refs(r#"from(bucket: "b") |> range(start: -1h)"#)).is_empty());

    // The same for InfluxQL.
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

// ------------------------------------------------------------------------------------------
// Test: the InfluxQL queries against a real InfluxDB 1.x.

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
    root
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

#[test]
fn influxql_queries_return_rows_from_influxdb_1x_fed_by_a_real_agent() {
    let queries = influxql_queries();
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);
    let root = raspberry_pi_root(dir.path());
    let pi_env = [
        ("PIVITALS_PRIMARY_URL", url.clone()),
        ("PIVITALS_ENROLL_TOKEN", ENROLL.to_owned()),
        ("PIVITALS_NODE_NAME", PI_NODE.to_owned()),
        ("PIVITALS_INTERVAL", "1s".to_owned()),
        ("PIVITALS_LABELS", "stack=1,role=worker".to_owned()),
        (
            "PIVITALS_STATE_DIR",
            dir.path().join(PI_NODE).display().to_string(),
        ),
        ("PIVITALS_ROOT", root.display().to_string()),
    ];
    let _pi = Proc::spawn(
        PI_NODE,
        &workspace_binary("pivitals-agent"),
        &pi_env,
        dir.path(),
    );
    let _plain = start_agent(dir.path(), "sd-plain", &url, "1s");

    // The database exists and the Pi node's samples arrive before any query is judged.
    let count = format!("SELECT count(usage_percent) FROM cpu WHERE node = '{PI_NODE}'");
    eventually(
        "3 cpu points of the Pi node",
        Duration::from_secs(40),
        || (influx.count(DB, &count).ok()? >= 3).then_some(()),
    );

    let started = Instant::now();
    let mut pending: Vec<&NamedQuery> = queries.iter().collect();
    loop {
        let mut still = Vec::new();
        for query in pending {
            let text = substitute(&query.text);
            let answer = influx
                .query(DB, &text)
                .unwrap_or_else(|e| panic!("{}: InfluxDB refused {text}: {e}", query.name));
            if !has_rows(&answer) {
                still.push(query);
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no rows after 60 s from: {}\nprimary log:\n{}",
            pending
                .iter()
                .map(|q| format!("{} ({})", q.name, substitute(&q.text)))
                .collect::<Vec<_>>()
                .join("\n"),
            primary.log_tail()
        );
        std::thread::sleep(Duration::from_secs(1));
    }
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

// ------------------------------------------------------------------------------------------
// Tests: docker-compose, files that must parse, systemd units, Ansible, Dockerfile.

/// `docker-compose ARGS` with the repository's compose file and `env_file` as its `.env`.
fn docker_compose(env_file: &Path, args: &[&str]) -> Output {
    assert!(
        installed("docker-compose"),
        "docker-compose is not installed: apt-get install docker-compose (scripts/test.sh does)"
    );
    let compose = repo_root().join("docker-compose.yml");
    let mut command = Command::new("docker-compose");
    command
        .current_dir(repo_root())
        .arg("--env-file")
        .arg(env_file)
        .arg("-f")
        .arg(&compose)
        .args(args);
    for (key, _) in std::env::vars() {
        // Only the env file decides (a developer's shell may export INFLUXDB_TOKEN).
        if key.starts_with("INFLUXDB_")
            || key.starts_with("GRAFANA_")
            || key.starts_with("PIVITALS_")
        {
            command.env_remove(key);
        }
    }
    run(&mut command)
}

/// The value of `KEY=value` in an env file.
fn env_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

#[test]
fn docker_compose_config_is_valid_with_the_example_env() {
    let root = repo_root();
    let example = read(&root.join(".env.example"));
    let dir = tempfile::tempdir().unwrap();
    let env = dir.path().join(".env");
    std::fs::write(&env, &example).unwrap();
    let profiles = ["--profile", "grafana", "--profile", "pivitals"];

    let quiet = docker_compose(&env, &[&profiles[..], &["config", "-q"]].concat());
    assert!(
        quiet.status.success(),
        "docker-compose config -q: {}",
        String::from_utf8_lossy(&quiet.stderr)
    );
    let full = docker_compose(&env, &[&profiles[..], &["config"]].concat());
    assert!(full.status.success());
    let resolved = dir.path().join("resolved.yml");
    std::fs::write(&resolved, &full.stdout).unwrap();
    let config = yaml_documents(&[resolved])[0][0].clone();
    let services = &config["services"];
    let token = env_value(&example, "INFLUXDB_TOKEN").expect("INFLUXDB_TOKEN in .env.example");

    let influxdb = &services["influxdb"];
    assert_eq!(influxdb["image"], "influxdb:2");
    let init = &influxdb["environment"];
    assert_eq!(init["DOCKER_INFLUXDB_INIT_MODE"], "setup");
    assert_eq!(init["DOCKER_INFLUXDB_INIT_RETENTION"], "365d");
    assert_eq!(init["DOCKER_INFLUXDB_INIT_BUCKET"], "node_vitals");
    assert_eq!(init["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"], token.as_str());
    assert!(influxdb["healthcheck"]["test"].is_array(), "{influxdb}");

    let chronograf = &services["chronograf"]["environment"];
    assert_eq!(chronograf["INFLUXDB_URL"], "http://influxdb:8086");
    assert_eq!(chronograf["INFLUXDB_TYPE"], "influx-v2");
    assert_eq!(chronograf["INFLUXDB_ORG"], init["DOCKER_INFLUXDB_INIT_ORG"]);
    assert_eq!(chronograf["INFLUXDB_TOKEN"], token.as_str());

    assert_eq!(
        services["grafana"]["profiles"],
        serde_json::json!(["grafana"])
    );
    let primary = &services["primary"];
    assert_eq!(primary["profiles"], serde_json::json!(["pivitals"]));
    assert_eq!(
        primary["environment"]["PIVITALS_INFLUX__URL"],
        "http://influxdb:8086"
    );
    assert_eq!(
        primary["environment"]["PIVITALS_INFLUX__TOKEN"],
        token.as_str()
    );
    assert_eq!(
        primary["environment"]["PIVITALS_INFLUX__BUCKET"],
        "node_vitals"
    );

    // Every bind-mounted host path exists (compose itself does not check).
    let mut binds = 0;
    for (name, service) in services.as_object().unwrap() {
        for volume in service["volumes"].as_array().into_iter().flatten() {
            let source = match volume {
                Value::String(short) => short.split(':').next().unwrap().to_owned(),
                long => long["source"].as_str().unwrap_or_default().to_owned(),
            };
            if source.starts_with('/') {
                binds += 1;
                assert!(
                    Path::new(&source).exists(),
                    "{name} mounts missing {source}"
                );
            }
        }
    }
    assert!(binds >= 5, "{binds} bind mounts");
    let init_script = root.join("influx/influxdb2/init/10-pivitals-dashboards.sh");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&init_script)
        .unwrap()
        .permissions()
        .mode();
    assert!(
        mode & 0o111 != 0,
        "the influxdb image runs only executable init scripts"
    );

    // Every ${VAR} of the compose file is documented in .env.example, and .env is ignored.
    let compose = read(&root.join("docker-compose.yml"));
    for (at, _) in compose.match_indices("${") {
        let name = ident(&compose[at + 2..]);
        assert!(
            env_value(&example, name).is_some(),
            ".env.example does not document {name}"
        );
    }
    assert!(
        read(&root.join(".gitignore"))
            .lines()
            .any(|l| l.trim() == ".env")
    );

    // Without the secrets the compose file refuses to start rather than use empty ones.
    let empty = dir.path().join("empty.env");
    std::fs::write(&empty, "").unwrap();
    let refused = docker_compose(&empty, &["config", "-q"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("INFLUXDB_"), "{stderr}");
}

#[test]
fn every_json_and_yaml_file_parses() {
    let root = repo_root();
    let mut files = files_under(&root.join("influx"));
    files.extend(files_under(&root.join("deploy")));
    let (mut json, mut yaml) = (0, Vec::new());
    for path in files {
        match path.extension().and_then(|e| e.to_str()) {
            Some("json" | "dashboard") => {
                read_json(&path);
                json += 1;
            }
            Some("yml" | "yaml") => yaml.push(path),
            _ => {}
        }
    }
    yaml.push(root.join("docker-compose.yml"));
    let documents = yaml_documents(&yaml);
    for (path, docs) in yaml.iter().zip(&documents) {
        let docs = docs.as_array().unwrap();
        assert!(
            !docs.is_empty() && docs.iter().all(|d| !d.is_null()),
            "{} is empty",
            path.display()
        );
    }
    assert!(json >= 4, "{json} JSON files");
    assert!(yaml.len() >= 5, "{} YAML files", yaml.len());
}

/// The `Key=Value` settings of a unit file, in order, with their section.
fn unit_settings(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut settings = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            assert!(
                ["Unit", "Service", "Install"].contains(&name),
                "line {}: section [{name}]",
                number + 1
            );
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not Key=Value: {line}", number + 1));
        assert!(
            !section.is_empty()
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "line {}: {line}",
            number + 1
        );
        settings.push((section.clone(), key.to_owned(), value.to_owned()));
    }
    settings
}

#[test]
fn systemd_units_are_hardened_and_pass_systemd_analyze_verify() {
    let dir = repo_root().join("deploy/systemd");
    let verify = installed("systemd-analyze");
    let temp = tempfile::tempdir().unwrap();
    for (unit, binary, state) in [
        ("pivitals-agent.service", "pivitals-agent", "pivitals-agent"),
        ("pivitals-primary.service", "pivitals-primary", "pivitals"),
    ] {
        let text = read(&dir.join(unit));
        let settings = unit_settings(&text);
        let get = |key: &str| -> Vec<&str> {
            settings
                .iter()
                .filter(|(_, k, _)| k == key)
                .map(|(_, _, v)| v.as_str())
                .collect()
        };
        let env_file = if binary == "pivitals-agent" {
            "agent"
        } else {
            "primary"
        };
        for (key, value) in [
            ("ExecStart", format!("/usr/local/bin/{binary}")),
            ("Restart", "on-failure".to_owned()),
            ("StateDirectory", state.to_owned()),
            ("EnvironmentFile", format!("/etc/pivitals/{env_file}.env")),
            ("DynamicUser", "yes".to_owned()),
            ("NoNewPrivileges", "yes".to_owned()),
            ("ProtectSystem", "strict".to_owned()),
            ("ProtectHome", "read-only".to_owned()),
            ("PrivateTmp", "yes".to_owned()),
            ("WantedBy", "multi-user.target".to_owned()),
        ] {
            assert_eq!(get(key), vec![value.as_str()], "{unit}: {key}");
        }
        // The agent must still see every process in /proc, the network and /sys.
        for forbidden in [
            "ProtectProc",
            "ProcSubset",
            "PrivateNetwork",
            "InaccessiblePaths",
        ] {
            assert!(
                get(forbidden).is_empty(),
                "{unit}: {forbidden} hides what it reads"
            );
        }
        assert!(dir.join(format!("{env_file}.env.example")).is_file());

        if verify {
            // verify checks that ExecStart is executable: point it at the built binary.
            let copy = temp.path().join(unit);
            let real = workspace_binary(binary);
            std::fs::write(
                &copy,
                text.replace(
                    &format!("ExecStart=/usr/local/bin/{binary}"),
                    &format!("ExecStart={}", real.display()),
                ),
            )
            .unwrap();
            let output = run(Command::new("systemd-analyze").arg("verify").arg(&copy));
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                output.status.success() && stderr.trim().is_empty(),
                "systemd-analyze verify {unit}:\n{stderr}"
            );
        }
    }
    if !verify {
        eprintln!(
            "systemd-analyze is not installed: the units' syntax and settings were checked by \
             this test only"
        );
    }
}

#[test]
fn ansible_playbook_installs_the_agent_the_repository_ships() {
    let dir = repo_root().join("deploy/ansible");
    let docs = yaml_documents(&[dir.join("playbook.yml"), dir.join("inventory.example.yml")]);
    let play = &docs[0][0][0];
    assert_eq!(play["hosts"], "pivitals_agents");
    assert_eq!(play["become"], true);
    let tasks = play["tasks"].as_array().expect("tasks");
    let text = read(&dir.join("playbook.yml"));
    assert!(text.contains("deploy/systemd/pivitals-agent.service"));
    assert!(tasks.iter().any(
        |t| t["ansible.builtin.template"]["src"] == "templates/agent.env.j2"
            && t["ansible.builtin.template"]["mode"] == "0600"
    ));
    assert!(
        tasks
            .iter()
            .any(|t| t["ansible.builtin.systemd"]["name"] == "pivitals-agent")
    );
    let template = read(&dir.join("templates/agent.env.j2"));
    for key in [
        "PIVITALS_PRIMARY_URL",
        "PIVITALS_ENROLL_TOKEN",
        "PIVITALS_LABELS",
    ] {
        assert!(
            template.contains(&format!("{key}=")),
            "agent.env.j2 sets no {key}"
        );
    }
    for target in [
        "aarch64-unknown-linux-gnu",
        "armv7-unknown-linux-gnueabihf",
        "arm-unknown-linux-gnueabihf",
    ] {
        assert!(text.contains(target), "no binary for {target}");
    }
    let inventory = &docs[1][0]["pivitals_agents"];
    assert!(inventory["vars"]["pivitals_primary_url"].is_string());
    assert!(inventory["children"]["stack1"]["vars"]["pivitals_labels"]["stack"].is_string());
    if installed("ansible-playbook") {
        let output = run(Command::new("ansible-playbook")
            .arg("--syntax-check")
            .arg("-i")
            .arg(dir.join("inventory.example.yml"))
            .arg(dir.join("playbook.yml")));
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn dockerfile_builds_the_primary_to_run_as_a_non_root_user() {
    let root = repo_root();
    let dockerfile = read(&root.join("Dockerfile"));
    for needle in [
        "cargo build --release --locked -p pivitals-primary",
        "FROM debian:bookworm-slim",
        "USER pivitals",
        "VOLUME [\"/data\"]",
        "EXPOSE 7070",
        "PIVITALS_DATA_DIR=/data",
    ] {
        assert!(dockerfile.contains(needle), "Dockerfile lacks {needle}");
    }
    let ignore = read(&root.join(".dockerignore"));
    assert!(ignore.lines().any(|l| l.trim() == "target/"));
}
