//! Flux: the few patterns the dashboards use, read without a parser.

use std::collections::BTreeSet;

use serde_json::Value;

use super::names::{ident, name_starts, quoted};
use super::refs::Refs;

/// Every `r.name` / `r["name"]`, with the string it is compared to by `==` or `!=` if any.
pub fn record_members(query: &str) -> Vec<(String, Option<String>)> {
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
pub fn string_args(query: &str, name: &str) -> Vec<String> {
    let needle = format!("{name}:");
    name_starts(query, &needle)
        .filter_map(|at| quoted(&query[at + needle.len()..]).map(|(v, _)| v.to_owned()))
        .collect()
}

/// The strings of every `name: ["a", "b"]` argument (`columns: {…}` of rename() is not one).
pub fn list_args(query: &str, name: &str) -> Vec<String> {
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
pub fn refs(query: &str) -> Refs {
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
pub fn variables(query: &str) -> BTreeSet<String> {
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
pub const BUILTIN_VARIABLES: &[&str] = &["timeRangeStart", "timeRangeStop", "windowPeriod"];

pub fn is_flux(text: &str) -> bool {
    text.contains("|>") || text.contains("from(bucket") || text.contains("measurementTagValues")
}

/// Every string in a JSON document with its path, e.g. `spec.charts[3].queries[0].query`.
pub fn json_strings(value: &Value, path: &str, out: &mut Vec<(String, String)>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_measurements_fields_columns_and_variables() {
        let query = r#"from(bucket: v.bucket) |> filter(fn: (r) => r._measurement == "disk" and r._field == "used_percent" and r["mount"] == "/") |> keep(columns: ["_time", "node"])"#;
        let refs = refs(query);
        assert_eq!(refs.measurements, BTreeSet::from(["disk".to_owned()]));
        assert_eq!(refs.fields, BTreeSet::from(["used_percent".to_owned()]));
        assert!(refs.columns.contains("mount") && refs.columns.contains("node"));
        assert_eq!(variables(query), BTreeSet::from(["bucket".to_owned()]));
        assert!(is_flux(query));
    }
}
