//! The Flux dashboards (the InfluxDB 2 template, the Chronograf dashboards, the Grafana
//! dashboard) against what pivitals writes: each file has the shape its tool loads, every query
//! names only measurements, fields and tags of `pivitals_common::line_protocol::SCHEMA` and
//! only variables its dashboard defines, every measurement is on some dashboard, and a wrong
//! name fails the check. Checked statically (testkit's `query_text`): no InfluxDB 2 runs here.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use pivitals_common::line_protocol::SCHEMA;
use pivitals_testkit::query_text::{flux, schema_errors};
use pivitals_testkit::repo_files::{files_under, read, read_json, repo_root, yaml_documents};
use serde_json::Value;

/// Checks every Flux query in a dashboard file; returns the errors, each with its place.
fn check_flux_file(file: &Path, doc: &Value, variables: &BTreeSet<String>) -> (usize, Vec<String>) {
    let mut strings = Vec::new();
    flux::json_strings(doc, "", &mut strings);
    let mut checked = 0;
    let mut errors = Vec::new();
    for (path, query) in strings.iter().filter(|(_, text)| flux::is_flux(text)) {
        checked += 1;
        let place = format!("{} {path}", file.display());
        for error in schema_errors(&flux::refs(query)) {
            errors.push(format!("{place}: {error}"));
        }
        for variable in flux::variables(query) {
            if !variables.contains(&variable)
                && !flux::BUILTIN_VARIABLES.contains(&variable.as_str())
            {
                errors.push(format!("{place}: variable {variable:?} is not defined"));
            }
        }
    }
    (checked, errors)
}

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
        .filter(|p| p.extension().is_some_and(|e| e == "dashboard") && p.parent() == Some(&dir))
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
            if target["query"].as_str().is_none_or(|q| !flux::is_flux(q)) {
                errors.push(format!("panel {title}: no Flux query"));
            }
        }
    }
    (variables, count)
}

#[test]
fn every_flux_dashboard_query_names_only_what_pivitals_writes() {
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

    assert!(
        errors.is_empty(),
        "{} of {checked} Flux queries name what pivitals does not write:\n{}",
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
fn a_wrong_name_fails_the_flux_schema_check() {
    // A real query from the Grafana dashboard passes, and breaking any one name fails it.
    let (_, doc) = grafana_dashboard();
    let mut strings = Vec::new();
    flux::json_strings(&doc, "", &mut strings);
    let disk = strings
        .iter()
        .map(|(_, s)| s)
        .find(|s| {
            s.contains(r#"r._measurement == "disk""#) && s.contains("mount") && s.contains("r.node")
        })
        .expect("the node view's disk query");
    assert_eq!(schema_errors(&flux::refs(disk)), Vec::<String>::new());
    for (good, bad, named) in [
        (r#""disk""#, r#""disks""#, "disks"),
        (r#""used_percent""#, r#""used_pct""#, "used_pct"),
        (r#""mount""#, r#""mountpoint""#, "mountpoint"),
        ("r.node", "r.host", "host"),
    ] {
        let broken = disk.replace(good, bad);
        assert_ne!(&broken, disk, "{good} is not in the query");
        let errors = schema_errors(&flux::refs(&broken));
        assert!(
            errors.iter().any(|e| e.contains(named)),
            "breaking {good} into {bad} went unnoticed: {errors:?}"
        );
    }
    // A tag of another measurement is wrong too, and so is an unreadable filter.
    let sensor_on_cpu =
        r#"from(bucket: "b") |> filter(fn: (r) => r._measurement == "cpu" and r.sensor == "x")"#;
    assert!(!schema_errors(&flux::refs(sensor_on_cpu)).is_empty());
    let regex = r#"from(bucket: "b") |> filter(fn: (r) => r._measurement =~ /cp.*/)"#;
    assert!(!schema_errors(&flux::refs(regex)).is_empty());
    assert!(!schema_errors(&flux::refs(r#"from(bucket: "b") |> range(start: -1h)"#)).is_empty());
}
