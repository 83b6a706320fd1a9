//! The ranges a chart can ask for ([`Range`]), the [`Window`] of steps that answers one (at
//! most [`MAX_POINTS`] steps), and folding rollup buckets into those steps ([`fold`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::ser::{SerializeMap, SerializeTuple};
use serde::{Serialize, Serializer};

use super::bucket::{Accumulator, Bucket};
use super::series::{SERIES_COUNT, Series};

/// The most points a series of an answer holds.
pub const MAX_POINTS: i64 = 300;
/// The narrowest step: samples are rarely closer than this, and InfluxDB's answers stay small.
pub const MIN_STEP_MS: i64 = 10_000;

/// A range a chart can show, ending now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    Hour,
    SixHours,
    Day,
    Week,
    Month,
}

/// The accepted `range` values, as error messages list them.
pub const ALLOWED_RANGES: &str = "1h, 6h, 24h, 7d, 30d";

impl Range {
    pub fn duration_ms(self) -> i64 {
        const HOUR: i64 = 3_600_000;
        match self {
            Range::Hour => HOUR,
            Range::SixHours => 6 * HOUR,
            Range::Day => 24 * HOUR,
            Range::Week => 7 * 24 * HOUR,
            Range::Month => 30 * 24 * HOUR,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Range::Hour => "1h",
            Range::SixHours => "6h",
            Range::Day => "24h",
            Range::Week => "7d",
            Range::Month => "30d",
        }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A `range` value that is none of [`ALLOWED_RANGES`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("range {0:?} is not one of {ALLOWED_RANGES}")]
pub struct UnknownRange(pub String);

impl FromStr for Range {
    type Err = UnknownRange;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "1h" => Range::Hour,
            "6h" => Range::SixHours,
            "24h" => Range::Day,
            "7d" => Range::Week,
            "30d" => Range::Month,
            _ => return Err(UnknownRange(text.to_owned())),
        })
    }
}

/// The steps that answer a range: `from_ms` (the first step's start, a multiple of
/// `step_ms`) to `to_ms` (now), at most [`MAX_POINTS`] steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub range: Range,
    pub from_ms: i64,
    pub to_ms: i64,
    pub step_ms: i64,
}

impl Window {
    /// The window of `range` ending at `now_ms`, its step the range / [`MAX_POINTS`] rounded
    /// up to a whole second, at least [`MIN_STEP_MS`], and a multiple of `unit_ms` (the rollup
    /// resolution; 1000 for InfluxDB).
    pub fn new(range: Range, now_ms: i64, unit_ms: i64) -> Window {
        let unit_ms = unit_ms.max(1000);
        let seconds = ceil_div(range.duration_ms() / MAX_POINTS, 1000) * 1000;
        let step_ms = ceil_div(seconds.max(MIN_STEP_MS), unit_ms) * unit_ms;
        let last = now_ms.div_euclid(step_ms);
        let first = (now_ms - range.duration_ms())
            .div_euclid(step_ms)
            .max(last - (MAX_POINTS - 1));
        Window {
            range,
            from_ms: first * step_ms,
            to_ms: now_ms,
            step_ms,
        }
    }

    /// The start of the step `ts_ms` falls in.
    pub fn step_of(&self, ts_ms: i64) -> i64 {
        ts_ms.div_euclid(self.step_ms) * self.step_ms
    }

    pub fn contains(&self, ts_ms: i64) -> bool {
        ts_ms >= self.from_ms && ts_ms <= self.to_ms
    }
}

/// `a / b` rounded up, for positive `b`.
fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

/// One point of a series: a step's start and its mean, lowest and highest value. Serialized
/// as `[ts_ms, mean, min, max]`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub ts_ms: i64,
    pub mean: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Point {
    fn of(ts_ms: i64, acc: &Accumulator) -> Point {
        // Rounded so f32 storage noise (12.500000953674316) does not show.
        let round = |v: f64| v.is_finite().then(|| (v * 1000.0).round() / 1000.0);
        Point {
            ts_ms,
            mean: round(acc.mean),
            min: round(acc.min),
            max: round(acc.max),
        }
    }
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut tuple = serializer.serialize_tuple(4)?;
        tuple.serialize_element(&self.ts_ms)?;
        tuple.serialize_element(&self.mean)?;
        tuple.serialize_element(&self.min)?;
        tuple.serialize_element(&self.max)?;
        tuple.end()
    }
}

/// The points of every series, ascending by time; a step without samples has no point, and
/// a series the store has nothing of is an empty list. Serialized as an object keyed by
/// [`Series::name`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SeriesPoints(pub [Vec<Point>; SERIES_COUNT]);

impl SeriesPoints {
    pub fn get(&self, series: Series) -> &[Point] {
        &self.0[series.index()]
    }

    pub fn get_mut(&mut self, series: Series) -> &mut Vec<Point> {
        &mut self.0[series.index()]
    }

    /// Keeps each series ascending and within [`MAX_POINTS`] (the newest ones).
    pub fn normalise(&mut self) {
        for points in &mut self.0 {
            points.sort_by_key(|p| p.ts_ms);
            points.dedup_by_key(|p| p.ts_ms);
            let excess = points.len().saturating_sub(MAX_POINTS as usize);
            points.drain(..excess);
        }
    }
}

impl Serialize for SeriesPoints {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(SERIES_COUNT))?;
        for series in Series::ALL {
            map.serialize_entry(series.name(), self.get(series))?;
        }
        map.end()
    }
}

/// Folds buckets (start ms, bucket) into the window's steps.
pub fn fold(window: &Window, buckets: impl IntoIterator<Item = (i64, Bucket)>) -> SeriesPoints {
    let mut steps: BTreeMap<i64, Bucket> = BTreeMap::new();
    for (start_ms, bucket) in buckets {
        if window.contains(start_ms) {
            steps
                .entry(window.step_of(start_ms))
                .or_default()
                .merge(&bucket);
        }
    }
    let mut out = SeriesPoints::default();
    for (ts_ms, bucket) in &steps {
        for (points, acc) in out.0.iter_mut().zip(&bucket.0) {
            if !acc.is_empty() {
                points.push(Point::of(*ts_ms, acc));
            }
        }
    }
    out.normalise();
    out
}

#[cfg(test)]
mod tests {
    use super::super::series::Reading;
    use super::*;

    const NOW: i64 = 1_780_000_123_456;

    #[test]
    fn ranges_parse_and_others_are_refused_by_name() {
        for name in ["1h", "6h", "24h", "7d", "30d"] {
            assert_eq!(name.parse::<Range>().unwrap().name(), name);
        }
        let err = "2d".parse::<Range>().unwrap_err().to_string();
        assert!(
            err.contains("\"2d\"") && err.contains(ALLOWED_RANGES),
            "{err}"
        );
    }

    #[test]
    fn steps_are_whole_seconds_multiples_of_the_unit_and_at_most_300() {
        for (range, unit, step_s) in [
            (Range::Hour, 1000, 12),
            (Range::Hour, 60_000, 60),
            (Range::Day, 1000, 288),
            (Range::Day, 60_000, 300),
            (Range::Week, 1000, 2016),
            (Range::Week, 600_000, 2400),
            (Range::Month, 600_000, 9000),
        ] {
            let w = Window::new(range, NOW, unit);
            assert_eq!(w.step_ms, step_s * 1000, "{range} {unit}");
            assert_eq!(w.from_ms % w.step_ms, 0);
            let steps = (w.step_of(w.to_ms) - w.from_ms) / w.step_ms + 1;
            assert!(steps <= MAX_POINTS, "{range}: {steps}");
            assert!(w.from_ms <= NOW - range.duration_ms() + w.step_ms);
        }
    }

    fn bucket(cpu: f64, peak: f64) -> Bucket {
        let mut b = Bucket::default();
        let mut r = [None; SERIES_COUNT];
        r[0] = Some(Reading {
            mean: cpu,
            min: cpu,
            max: peak,
        });
        b.add(&r);
        b
    }

    #[test]
    fn buckets_fold_into_steps_with_peaks_and_gaps() {
        // Five-minute steps of one-minute buckets.
        let w = Window::new(Range::Day, NOW, 60_000);
        let t = w.from_ms;
        let points = fold(
            &w,
            [
                (t, bucket(10.0, 10.0)),
                (t + 60_000, bucket(30.0, 99.0)),
                // A gap, then a step of its own.
                (t + 300_000, bucket(5.0, 6.0)),
                // Before the window: not shown.
                (t - 60_000, bucket(50.0, 50.0)),
            ],
        );
        let cpu = points.get(Series::CpuPercent);
        assert_eq!(cpu.len(), 2, "{cpu:?}");
        assert_eq!(cpu[0].ts_ms, t);
        assert_eq!(cpu[0].mean, Some(20.0));
        assert_eq!(cpu[0].min, Some(10.0));
        assert_eq!(cpu[0].max, Some(99.0));
        assert_eq!(cpu[1].ts_ms, t + 300_000);
        assert!(points.get(Series::Load1).is_empty());
        let json = serde_json::to_value(&points).unwrap();
        assert_eq!(
            json["cpu_percent"][0],
            serde_json::json!([t, 20.0, 10.0, 99.0])
        );
        assert_eq!(json["disk_write_bytes_per_second"], serde_json::json!([]));
    }

    #[test]
    fn a_series_never_holds_more_than_300_points() {
        let w = Window::new(Range::Month, NOW, 600_000);
        let buckets = (0..5000).map(|i| (w.from_ms - 3_000_000 + i * 600_000, bucket(1.0, 1.0)));
        let points = fold(&w, buckets);
        let cpu = points.get(Series::CpuPercent);
        assert!(cpu.len() <= 300 && cpu.len() > 280, "{}", cpu.len());
        assert!(cpu.windows(2).all(|p| p[0].ts_ms < p[1].ts_ms));
        let mut many = SeriesPoints::default();
        *many.get_mut(Series::Load1) = (0..400)
            .rev()
            .map(|i| Point {
                ts_ms: i,
                mean: None,
                min: None,
                max: None,
            })
            .collect();
        many.normalise();
        assert_eq!(many.get(Series::Load1).len(), 300);
        assert_eq!(many.get(Series::Load1)[0].ts_ms, 100, "the newest are kept");
    }
}
