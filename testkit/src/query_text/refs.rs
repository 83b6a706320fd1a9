//! What one query refers to ([`Refs`]), and what of it pivitals does not write.

use std::collections::BTreeSet;

use pivitals_common::line_protocol::{MeasurementSchema, SCHEMA};

/// The names one query refers to.
#[derive(Debug, Default)]
pub struct Refs {
    pub measurements: BTreeSet<String>,
    pub fields: BTreeSet<String>,
    /// Must be a tag: `node` or a tag of one of the measurements (InfluxQL `GROUP BY`).
    pub tags: BTreeSet<String>,
    /// A tag or a field (Flux columns after a pivot, InfluxQL `WHERE`).
    pub columns: BTreeSet<String>,
    /// Names the query itself gives (InfluxQL `AS`), which outer queries may use.
    pub aliases: BTreeSet<String>,
    /// Things the check cannot read, such as a regular expression on `_measurement`.
    pub unreadable: Vec<String>,
}

/// Columns Flux adds to every table.
pub const FLUX_COLUMNS: &[&str] = &[
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
pub fn schema_errors(refs: &Refs) -> Vec<String> {
    schema_errors_with_labels(refs, &[])
}

/// [`schema_errors`] where the node label keys `labels` (tags on every point of a labelled
/// node, such as `stack`) are tags of every measurement too.
pub fn schema_errors_with_labels(refs: &Refs, labels: &[&str]) -> Vec<String> {
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
    let is_tag = |name: &str| {
        name == "node" || labels.contains(&name) || known.iter().any(|m| m.tags.contains(&name))
    };
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
