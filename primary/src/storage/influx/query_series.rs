//! The nine series as InfluxDB holds them ([`SERIES_QUERIES`]: measurement, field, peak
//! fields, the tag to combine), the rows a query answers per tag and step, and how the tags of
//! a step make one point ([`combine`]). Shared by the InfluxQL and Flux queries.

use std::collections::BTreeMap;

use crate::history::{Point, Series};

/// How much of a query answer is read: 300 steps × 9 series × a few tags fit easily.
pub(crate) const HISTORY_BODY_LIMIT: usize = 32 * 1024 * 1024;

/// How one series is read from the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SeriesQuery {
    pub series: Series,
    pub measurement: &'static str,
    pub field: &'static str,
    pub min_field: Option<&'static str>,
    pub max_field: Option<&'static str>,
    /// The tag whose values are combined, for series over several sensors, mounts,
    /// interfaces or devices.
    pub tag: Option<(&'static str, Combine)>,
}

/// How the values of several tags make one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Combine {
    Highest,
    Sum,
}

/// The queries of the nine series, in [`Series::ALL`] order.
pub(crate) const SERIES_QUERIES: [SeriesQuery; 9] = {
    const fn q(
        series: Series,
        measurement: &'static str,
        field: &'static str,
        peaks: Option<(&'static str, &'static str)>,
        tag: Option<(&'static str, Combine)>,
    ) -> SeriesQuery {
        let (min_field, max_field) = match peaks {
            Some((min, max)) => (Some(min), Some(max)),
            None => (None, None),
        };
        SeriesQuery {
            series,
            measurement,
            field,
            min_field,
            max_field,
            tag,
        }
    }
    use Combine::{Highest, Sum};
    [
        q(
            Series::CpuPercent,
            "cpu",
            "usage_percent",
            Some(("usage_percent_min", "usage_percent_max")),
            None,
        ),
        q(
            Series::MemPercent,
            "mem",
            "used_percent",
            Some(("used_percent_min", "used_percent_max")),
            None,
        ),
        q(
            Series::TempCelsius,
            "temperature",
            "celsius",
            Some(("celsius_min", "celsius_max")),
            Some(("sensor", Highest)),
        ),
        q(
            Series::DiskPercent,
            "disk",
            "used_percent",
            None,
            Some(("mount", Highest)),
        ),
        q(
            Series::Load1,
            "system",
            "load1",
            Some(("load1_min", "load1_max")),
            None,
        ),
        q(
            Series::NetRxBytesPerSecond,
            "net",
            "rx_bytes_per_second",
            None,
            Some(("interface", Sum)),
        ),
        q(
            Series::NetTxBytesPerSecond,
            "net",
            "tx_bytes_per_second",
            None,
            Some(("interface", Sum)),
        ),
        q(
            Series::DiskReadBytesPerSecond,
            "diskio",
            "read_bytes_per_second",
            None,
            Some(("device", Sum)),
        ),
        q(
            Series::DiskWriteBytesPerSecond,
            "diskio",
            "write_bytes_per_second",
            None,
            Some(("device", Sum)),
        ),
    ]
};

/// One step of one tag of a series as the store answered it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TagStep {
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl TagStep {
    /// Folds in another answer for the same tag and step (another field's min or max).
    pub fn merge(&mut self, other: TagStep) {
        let pick = |a: Option<f64>, b: Option<f64>, f: fn(f64, f64) -> f64| match (a, b) {
            (Some(a), Some(b)) => Some(f(a, b)),
            (a, b) => a.or(b),
        };
        self.mean = self.mean.or(other.mean);
        self.min = pick(self.min, other.min, f64::min);
        self.max = pick(self.max, other.max, f64::max);
    }
}

/// What the store answered for one series: (tag value, step start ms) → values.
pub(crate) type SeriesRows = BTreeMap<(String, i64), TagStep>;

/// Combines the tags of each step into one point, ascending by time.
pub(crate) fn combine(query: &SeriesQuery, rows: &SeriesRows) -> Vec<Point> {
    let how = query.tag.map(|(_, how)| how).unwrap_or(Combine::Highest);
    let mut steps: BTreeMap<i64, TagStep> = BTreeMap::new();
    for ((_, ts_ms), step) in rows {
        if step.mean.is_none() && step.min.is_none() && step.max.is_none() {
            continue;
        }
        let into = steps.entry(*ts_ms).or_insert_with(|| TagStep {
            mean: None,
            min: None,
            max: None,
        });
        let join = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => Some(match how {
                Combine::Highest => a.max(b),
                Combine::Sum => a + b,
            }),
            (a, b) => a.or(b),
        };
        into.mean = join(into.mean, step.mean);
        into.min = join(into.min, step.min);
        into.max = join(into.max, step.max);
    }
    steps
        .into_iter()
        .map(|(ts_ms, s)| Point {
            ts_ms,
            mean: s.mean,
            min: s.min.or(s.mean),
            max: s.max.or(s.mean),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use pivitals_common::line_protocol::{FieldType, SCHEMA};

    use super::*;

    #[test]
    fn every_queried_field_and_tag_is_in_the_schema() {
        for (query, series) in SERIES_QUERIES.iter().zip(Series::ALL) {
            assert_eq!(query.series, series);
            let m = SCHEMA
                .iter()
                .find(|m| m.name == query.measurement)
                .unwrap_or_else(|| panic!("{}", query.measurement));
            for field in [Some(query.field), query.min_field, query.max_field]
                .into_iter()
                .flatten()
            {
                assert!(
                    m.fields
                        .iter()
                        .any(|(f, t)| *f == field && *t == FieldType::Float),
                    "{}.{field}",
                    m.name
                );
            }
            if let Some((tag, _)) = query.tag {
                assert!(m.tags.contains(&tag), "{}: {tag}", m.name);
            }
        }
    }

    #[test]
    fn tags_combine_as_the_highest_or_the_sum() {
        let step = |mean, min, max| TagStep {
            mean: Some(mean),
            min: Some(min),
            max: Some(max),
        };
        let mut rows = SeriesRows::new();
        rows.insert(("a".into(), 0), step(40.0, 30.0, 70.0));
        rows.insert(("b".into(), 0), step(50.0, 45.0, 55.0));
        rows.insert(("b".into(), 10_000), step(1.0, 1.0, 1.0));
        let temp = combine(&SERIES_QUERIES[2], &rows);
        assert_eq!(temp.len(), 2);
        assert_eq!(
            (temp[0].mean, temp[0].min, temp[0].max),
            (Some(50.0), Some(45.0), Some(70.0))
        );
        let rx = combine(&SERIES_QUERIES[5], &rows);
        assert_eq!(
            (rx[0].mean, rx[0].min, rx[0].max),
            (Some(90.0), Some(75.0), Some(125.0))
        );
    }
}
