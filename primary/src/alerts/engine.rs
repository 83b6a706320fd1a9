//! The alert engine: evaluates the [`Rules`] on each accepted sample and turns what it sees
//! into [`Event`]s. Pure: no clock, no task, no I/O; the caller feeds it samples and status
//! changes and delivers what it returns.
//!
//! **Series.** A rule is evaluated per series: per node, and per point of the rule's
//! measurement, told apart by the point's extra tags (a disk rule fires separately for each
//! mount of each node, a temperature rule for each sensor). The values are those the encoder
//! writes ([`visit_points`]): a rule sees what InfluxDB gets. A rule watches only the nodes
//! of its scope.
//!
//! **States** of a series, judged on sample timestamps:
//!
//! | state | on a sample where the condition holds | where it does not |
//! | --- | --- | --- |
//! | inactive (nothing kept) | pending since the sample; firing at once when `for` is 0 ([`EventKind::Firing`]) | nothing |
//! | pending (since) | firing once `for` has passed since `since` ([`EventKind::Firing`]) | inactive, silently: a blip shorter than `for` never notifies |
//! | firing (since, notified) | [`EventKind::Repeat`] when `repeat` has passed since the last notification | inactive ([`EventKind::Resolved`]) |
//!
//! **No data.** A pending or firing series missing from [`MISSING_SAMPLES`] fresh samples of
//! its node in a row (a mount unmounted, a sensor gone, the field absent, NaN, or the node out
//! of the rule's scope after its labels changed) ends: a firing one with
//! [`EventKind::ResolvedNoData`], a pending one silently. A node that goes down keeps its
//! series as they are: nothing resolves silently and nothing new is judged without samples.
//! When the node is stopped or deleted, [`Engine::node_gone`] ends all of its series the same
//! way.
//!
//! A pending series survives a gap in its node's samples (the node down or restarting): its
//! `for` counts from the first sample that met the condition, so a condition met before and
//! after the gap fires on the first sample after it once `for` has passed.
//!
//! **Node down** rules ([`Condition::NodeDown`]) are not judged on samples: the liveness
//! watcher calls [`Engine::node_down`] and [`Engine::node_up`] when it records the change.
//!
//! **Which samples count.** A sample not newer than the last one evaluated for its node (a
//! retried push) is ignored, and so is one more than [`MAX_SAMPLE_AGE_MS`] older than
//! `now_ms`: a backlog an agent sends after an outage describes the past, and paging about it
//! would be noise (InfluxDB still gets it). The flip side: an agent whose clock is more than
//! that far behind is never judged.
//!
//! **Durable when.** Nothing is: the engine lives in memory, and after a restart every series
//! starts inactive (a condition still holding fires again after its `for`).
//!
//! **What the engine does not know:** channels (it passes each rule's channel names on),
//! HTTP, message delivery and retries, storage, and the clock.
//!
//! **Cost.** Per sample: one lookup of the node, one visit of the sample's points, and per
//! point only the rules of its measurement (indices resolved once); a comparison per rule and
//! series in scope; a short scan of the node's pending and firing series. Nothing is allocated
//! unless a series starts pending or firing, or an event is returned.

use std::collections::HashMap;

use pivitals_common::line_protocol::{Point, SCHEMA, visit_points};
use pivitals_common::{Labels, VitalsPayload};

use super::event::{Event, EventKind};
use super::rules::{Comparison, Condition, Rule, Rules};

/// Fresh samples of a node without a series after which the series ends as "no data".
pub const MISSING_SAMPLES: u32 = 3;

/// Samples older than this (ms before `now_ms`) are not judged.
pub const MAX_SAMPLE_AGE_MS: i64 = 5 * 60 * 1000;

/// One rule's check of one measurement's field, resolved once.
#[derive(Debug, Clone, Copy)]
struct Check {
    rule: usize,
    field: usize,
    comparison: Comparison,
    threshold: f64,
    hold_ms: i64,
    repeat_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending { since_ms: i64 },
    Firing { since_ms: i64, notified_ms: i64 },
}

impl State {
    fn since_ms(self) -> i64 {
        match self {
            State::Pending { since_ms } | State::Firing { since_ms, .. } => since_ms,
        }
    }
}

/// A pending or firing series.
#[derive(Debug, Clone)]
struct Series {
    rule: usize,
    tags: Vec<(&'static str, String)>,
    state: State,
    value: Option<f64>,
    /// Seen in the sample being evaluated.
    seen: bool,
    missed: u32,
}

impl Series {
    fn is(&self, rule: usize, point: &Point<'_>) -> bool {
        self.rule == rule
            && self
                .tags
                .iter()
                .map(|(k, v)| (*k, v.as_str()))
                .eq(point.tags())
    }
}

#[derive(Debug, Default)]
struct NodeState {
    last_ms: Option<i64>,
    series: Vec<Series>,
}

/// A pending or firing series, for the API.
#[derive(Debug, Clone, PartialEq)]
pub struct Active {
    pub rule: String,
    pub node: String,
    pub series: Vec<(&'static str, String)>,
    pub firing: bool,
    pub condition: Condition,
    /// The last value seen; `None` for node down.
    pub value: Option<f64>,
    /// When the condition began to hold, ms since the epoch.
    pub since_ms: i64,
}

/// Per-series alert state of every node.
#[derive(Debug)]
pub struct Engine {
    rules: Rules,
    /// The threshold checks of each measurement, by its index in [`SCHEMA`].
    checks: Vec<Vec<Check>>,
    nodes: HashMap<String, NodeState>,
    comparisons: u64,
}

impl Engine {
    pub fn new(rules: Rules) -> Self {
        let mut checks = vec![Vec::new(); SCHEMA.len()];
        for (index, rule) in rules.as_slice().iter().enumerate() {
            if let Condition::Threshold {
                metric,
                comparison,
                threshold,
            } = rule.condition
            {
                checks[metric.measurement_index()].push(Check {
                    rule: index,
                    field: metric.field_index(),
                    comparison,
                    threshold,
                    hold_ms: millis(rule.hold),
                    repeat_ms: rule.repeat.map(millis),
                });
            }
        }
        Self {
            rules,
            checks,
            nodes: HashMap::new(),
            comparisons: 0,
        }
    }

    pub fn rules(&self) -> &Rules {
        &self.rules
    }

    /// Comparisons made so far (a value against a threshold), a measure of the engine's work.
    pub fn comparisons(&self) -> u64 {
        self.comparisons
    }

    /// Evaluates every threshold rule in scope for `node` against `sample`; returns what
    /// changed (usually nothing).
    pub fn observe(
        &mut self,
        node: &str,
        labels: &Labels,
        sample: &VitalsPayload,
        now_ms: i64,
    ) -> Vec<Event> {
        let ts = sample.timestamp_ms;
        let Self {
            rules,
            checks,
            nodes,
            comparisons,
        } = self;
        let rules = rules.as_slice();
        if !nodes.contains_key(node) {
            nodes.insert(node.to_owned(), NodeState::default());
        }
        let Some(state) = nodes.get_mut(node) else {
            return Vec::new();
        };
        if state.last_ms.is_some_and(|last| ts <= last) {
            return Vec::new();
        }
        state.last_ms = Some(ts);
        if now_ms.saturating_sub(ts) > MAX_SAMPLE_AGE_MS {
            return Vec::new();
        }
        for series in &mut state.series {
            series.seen = false;
        }
        let mut events = Vec::new();
        visit_points(sample, |point| {
            for check in &checks[point.measurement_index()] {
                let rule = &rules[check.rule];
                if !rule.scope.matches(node, labels) {
                    continue;
                }
                let Some(value) = point.field(check.field) else {
                    continue;
                };
                let value = value.as_f64();
                *comparisons += 1;
                let holds = check.comparison.holds(value, check.threshold);
                let found = state.series.iter().position(|s| s.is(check.rule, &point));
                match (found, holds) {
                    (None, false) => {}
                    (None, true) => {
                        let state_now = if check.hold_ms == 0 {
                            State::Firing {
                                since_ms: ts,
                                notified_ms: ts,
                            }
                        } else {
                            State::Pending { since_ms: ts }
                        };
                        let series = Series {
                            rule: check.rule,
                            tags: point.tags().map(|(k, v)| (k, v.to_owned())).collect(),
                            state: state_now,
                            value: Some(value),
                            seen: true,
                            missed: 0,
                        };
                        if check.hold_ms == 0 {
                            events.push(event(rule, node, &series, EventKind::Firing, ts));
                        }
                        state.series.push(series);
                    }
                    (Some(i), true) => {
                        let series = &mut state.series[i];
                        series.seen = true;
                        series.missed = 0;
                        series.value = Some(value);
                        match series.state {
                            State::Pending { since_ms } if ts - since_ms >= check.hold_ms => {
                                series.state = State::Firing {
                                    since_ms,
                                    notified_ms: ts,
                                };
                                events.push(event(rule, node, series, EventKind::Firing, ts));
                            }
                            State::Firing {
                                since_ms,
                                notified_ms,
                            } if check.repeat_ms.is_some_and(|r| ts - notified_ms >= r) => {
                                series.state = State::Firing {
                                    since_ms,
                                    notified_ms: ts,
                                };
                                events.push(event(rule, node, series, EventKind::Repeat, ts));
                            }
                            _ => {}
                        }
                    }
                    (Some(i), false) => {
                        let mut series = state.series.swap_remove(i);
                        if let State::Firing { .. } = series.state {
                            series.value = Some(value);
                            events.push(event(rule, node, &series, EventKind::Resolved, ts));
                        }
                    }
                }
            }
        });
        state.series.retain_mut(|series| {
            let rule = &rules[series.rule];
            if series.seen || rule.condition == Condition::NodeDown {
                return true;
            }
            series.missed += 1;
            if series.missed < MISSING_SAMPLES {
                return true;
            }
            if let State::Firing { .. } = series.state {
                events.push(event(rule, node, series, EventKind::ResolvedNoData, ts));
            }
            false
        });
        events
    }

    /// The liveness watcher recorded `node` down at `at_ms`: every node-down rule in scope
    /// fires (once, until [`Engine::node_up`] or [`Engine::node_gone`]).
    pub fn node_down(&mut self, node: &str, labels: &Labels, at_ms: i64) -> Vec<Event> {
        let rules = self.rules.as_slice();
        let state = self.nodes.entry(node.to_owned()).or_default();
        let mut events = Vec::new();
        for (index, rule) in rules.iter().enumerate() {
            if rule.condition != Condition::NodeDown
                || !rule.scope.matches(node, labels)
                || state.series.iter().any(|s| s.rule == index)
            {
                continue;
            }
            let series = Series {
                rule: index,
                tags: Vec::new(),
                state: State::Firing {
                    since_ms: at_ms,
                    notified_ms: at_ms,
                },
                value: None,
                seen: false,
                missed: 0,
            };
            events.push(event(rule, node, &series, EventKind::Firing, at_ms));
            state.series.push(series);
        }
        events
    }

    /// The liveness watcher recorded `node` up (or late) again after down: its node-down
    /// alerts resolve.
    pub fn node_up(&mut self, node: &str, at_ms: i64) -> Vec<Event> {
        let rules = self.rules.as_slice();
        let Some(state) = self.nodes.get_mut(node) else {
            return Vec::new();
        };
        let mut events = Vec::new();
        state.series.retain(|series| {
            let rule = &rules[series.rule];
            if rule.condition != Condition::NodeDown {
                return true;
            }
            events.push(event(rule, node, series, EventKind::Resolved, at_ms));
            false
        });
        events
    }

    /// `node` was stopped or deleted: every firing series of it resolves as "no data"
    /// (pending ones end silently) and the engine forgets the node.
    pub fn node_gone(&mut self, node: &str, now_ms: i64) -> Vec<Event> {
        let Some(state) = self.nodes.remove(node) else {
            return Vec::new();
        };
        let rules = self.rules.as_slice();
        state
            .series
            .iter()
            .filter(|s| matches!(s.state, State::Firing { .. }))
            .map(|s| event(&rules[s.rule], node, s, EventKind::ResolvedNoData, now_ms))
            .collect()
    }

    /// How many series are firing and how many pending, without copying them.
    pub fn counts(&self) -> (usize, usize) {
        let (mut firing, mut pending) = (0, 0);
        for series in self.nodes.values().flat_map(|state| &state.series) {
            match series.state {
                State::Firing { .. } => firing += 1,
                State::Pending { .. } => pending += 1,
            }
        }
        (firing, pending)
    }

    /// Every pending and firing series, by node, then rule (in rule order), then series.
    pub fn active(&self) -> Vec<Active> {
        let rules = self.rules.as_slice();
        let mut all: Vec<(usize, Active)> = self
            .nodes
            .iter()
            .flat_map(|(node, state)| {
                state.series.iter().map(move |s| {
                    let rule = &rules[s.rule];
                    let active = Active {
                        rule: rule.name.to_string(),
                        node: node.clone(),
                        series: s.tags.clone(),
                        firing: matches!(s.state, State::Firing { .. }),
                        condition: rule.condition,
                        value: s.value,
                        since_ms: s.state.since_ms(),
                    };
                    (s.rule, active)
                })
            })
            .collect();
        all.sort_by(|(ra, a), (rb, b)| (&a.node, ra, &a.series).cmp(&(&b.node, rb, &b.series)));
        all.into_iter().map(|(_, active)| active).collect()
    }
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn event(rule: &Rule, node: &str, series: &Series, kind: EventKind, at_ms: i64) -> Event {
    Event {
        rule: rule.name.clone(),
        node: node.to_owned(),
        series: series.tags.clone(),
        kind,
        condition: rule.condition,
        value: series.value,
        since_ms: series.state.since_ms(),
        at_ms,
        channels: rule.notify.clone(),
    }
}

#[cfg(test)]
mod tests {
    use pivitals_common::{DiskVitals, PowerVitals, TemperatureVitals, Throttling};

    use super::*;
    use crate::alerts::rules::{RuleConfig, load};

    const T0: i64 = 1_700_000_000_000;

    fn rules(configs: &[RuleConfig]) -> Rules {
        load(false, configs).unwrap()
    }

    fn above(name: &str, metric: &str, threshold: f64, hold: &str) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            metric: Some(metric.into()),
            above: Some(threshold),
            for_: Some(hold.into()),
            ..RuleConfig::default()
        }
    }

    fn temps(ts: i64, readings: &[(&str, f64)]) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: ts,
            temperatures: readings
                .iter()
                .map(|(sensor, celsius)| TemperatureVitals {
                    sensor: (*sensor).into(),
                    celsius: *celsius,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn disks(ts: i64, used: &[(&str, u64)]) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: ts,
            disks: used
                .iter()
                .map(|(mount, percent)| DiskVitals {
                    mount: (*mount).into(),
                    device: "/dev/sda1".into(),
                    fs_type: "ext4".into(),
                    total_bytes: 100,
                    used_bytes: *percent,
                    available_bytes: Some(100 - percent),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    fn none() -> Labels {
        Labels::new()
    }

    /// Feeds one sample a second from `T0`; returns every event as (second, kind, message).
    fn run(
        engine: &mut Engine,
        node: &str,
        samples: impl IntoIterator<Item = VitalsPayload>,
    ) -> Vec<(i64, EventKind, String)> {
        let mut out = Vec::new();
        for sample in samples {
            let ts = sample.timestamp_ms;
            for e in engine.observe(node, &none(), &sample, ts) {
                out.push(((ts - T0) / 1000, e.kind, e.message()));
            }
        }
        out
    }

    #[test]
    fn fires_per_sensor_and_names_it() {
        let mut engine = Engine::new(rules(&[above("hot", "temperature.celsius", 80.0, "2m")]));
        let events = run(
            &mut engine,
            "pi-07",
            (0..=120).map(|s| temps(T0 + s * 1000, &[("cpu_thermal", 82.1), ("rp1_adc", 50.0)])),
        );
        assert_eq!(
            events,
            [(
                120,
                EventKind::Firing,
                "pi-07 hot: temperature cpu_thermal 82.1 °C > 80 for 2m".to_owned()
            )]
        );
        let events = run(
            &mut engine,
            "pi-07",
            (121..=241).map(|s| temps(T0 + s * 1000, &[("cpu_thermal", 82.1), ("rp1_adc", 81.0)])),
        );
        assert_eq!(
            events,
            [(
                241,
                EventKind::Firing,
                "pi-07 hot: temperature rp1_adc 81 °C > 80 for 2m".to_owned()
            )],
            "each sensor is its own series"
        );
        let active = engine.active();
        assert_eq!(active.len(), 2);
        assert!(active.iter().all(|a| a.firing));
        assert_eq!(active[0].series, [("sensor", "cpu_thermal".to_owned())]);
        assert_eq!(active[0].since_ms, T0);
        assert_eq!(active[1].since_ms, T0 + 121_000);
    }

    #[test]
    fn fires_per_mount_and_resolves() {
        let mut engine = Engine::new(rules(&[above(
            "disk full",
            "disk.used_percent",
            90.0,
            "0s",
        )]));
        let events = run(
            &mut engine,
            "pi-01",
            [
                disks(T0, &[("/", 50), ("/mnt/usb", 95), ("/boot", 91)]),
                disks(T0 + 1000, &[("/", 50), ("/mnt/usb", 96), ("/boot", 91)]),
                disks(T0 + 2000, &[("/", 50), ("/mnt/usb", 80), ("/boot", 91)]),
            ],
        );
        assert_eq!(
            events,
            [
                (
                    0,
                    EventKind::Firing,
                    "pi-01 disk full: disk /mnt/usb used 95 % > 90".to_owned()
                ),
                (
                    0,
                    EventKind::Firing,
                    "pi-01 disk full: disk /boot used 91 % > 90".to_owned()
                ),
                (
                    2,
                    EventKind::Resolved,
                    "pi-01 disk full resolved: disk /mnt/usb used 80 %, was > 90 for 2s".to_owned()
                ),
            ]
        );
        let active = engine.active();
        assert_eq!(active.len(), 1);
        assert_eq!(
            active[0].series,
            [
                ("mount", "/boot".to_owned()),
                ("device", "/dev/sda1".to_owned()),
                ("fstype", "ext4".to_owned())
            ]
        );
    }

    #[test]
    fn a_blip_shorter_than_for_never_notifies() {
        let mut engine = Engine::new(rules(&[above("hot", "temperature.celsius", 80.0, "5s")]));
        let reading = |s: i64| if (10..12).contains(&s) { 85.0 } else { 60.0 };
        let events = run(
            &mut engine,
            "pi-01",
            (0..30).map(|s| temps(T0 + s * 1000, &[("cpu", reading(s))])),
        );
        assert_eq!(events, [], "a 2 s blip on 1 s samples");
        assert!(engine.active().is_empty(), "the pending series ended");

        let reading = |s: i64| if (40..46).contains(&s) { 85.0 } else { 60.0 };
        let events = run(
            &mut engine,
            "pi-01",
            (30..60).map(|s| temps(T0 + s * 1000, &[("cpu", reading(s))])),
        );
        let kinds: Vec<(i64, EventKind)> = events.iter().map(|(s, k, _)| (*s, *k)).collect();
        assert_eq!(
            kinds,
            [(45, EventKind::Firing), (46, EventKind::Resolved)],
            "held for 5 s: fires"
        );
    }

    #[test]
    fn pending_is_visible_but_silent() {
        let mut engine = Engine::new(rules(&[above("hot", "temperature.celsius", 80.0, "1m")]));
        assert_eq!(run(&mut engine, "pi-01", [temps(T0, &[("cpu", 90.0)])]), []);
        let active = engine.active();
        assert_eq!(active.len(), 1);
        assert!(!active[0].firing);
        assert_eq!(active[0].value, Some(90.0));
    }

    #[test]
    fn repeat_notifies_again_while_firing() {
        let mut engine = Engine::new(rules(&[RuleConfig {
            repeat: Some("1m".into()),
            ..above("hot", "temperature.celsius", 80.0, "0s")
        }]));
        let events = run(
            &mut engine,
            "pi-01",
            (0..=150).map(|s| temps(T0 + s * 1000, &[("cpu", 85.0)])),
        );
        let kinds: Vec<(i64, EventKind)> = events.iter().map(|(s, k, _)| (*s, *k)).collect();
        assert_eq!(
            kinds,
            [
                (0, EventKind::Firing),
                (60, EventKind::Repeat),
                (120, EventKind::Repeat)
            ]
        );
        assert_eq!(
            events[2].2,
            "pi-01 hot still firing: temperature cpu 85 °C > 80 for 2m"
        );
        let mut once = Engine::new(rules(&[above("hot", "temperature.celsius", 80.0, "0s")]));
        let events = run(
            &mut once,
            "pi-01",
            (0..=150).map(|s| temps(T0 + s * 1000, &[("cpu", 85.0)])),
        );
        assert_eq!(events.len(), 1, "repeat is off by default");
    }

    #[test]
    fn below_comparisons() {
        let mut engine = Engine::new(rules(&[RuleConfig {
            name: "low memory".into(),
            metric: Some("mem.available_bytes".into()),
            below: Some(100.0 * 1024.0 * 1024.0),
            ..RuleConfig::default()
        }]));
        let mem = |ts: i64, available: u64| VitalsPayload {
            timestamp_ms: ts,
            memory: Some(pivitals_common::MemoryVitals {
                total_bytes: 1 << 30,
                available_bytes: available,
                used_bytes: (1 << 30) - available,
                ..Default::default()
            }),
            ..Default::default()
        };
        let events = run(
            &mut engine,
            "pi-01",
            [
                mem(T0, 200 << 20),
                mem(T0 + 1000, 100 << 20),
                mem(T0 + 2000, 50 << 20),
                mem(T0 + 3000, 300 << 20),
            ],
        );
        assert_eq!(
            events,
            [
                (
                    2,
                    EventKind::Firing,
                    "pi-01 low memory: mem available 50 MiB < 100 MiB".to_owned()
                ),
                (
                    3,
                    EventKind::Resolved,
                    "pi-01 low memory resolved: mem available 300 MiB, was < 100 MiB for 1s"
                        .to_owned()
                ),
            ],
            "exactly at the threshold does not fire"
        );
    }

    #[test]
    fn a_series_that_stops_appearing_resolves_as_no_data() {
        let mut engine = Engine::new(rules(&[
            above("disk full", "disk.used_percent", 90.0, "0s"),
            above("late", "disk.used_percent", 90.0, "1h"),
        ]));
        let mut samples = vec![disks(T0, &[("/", 50), ("/mnt/usb", 95)])];
        for s in 1..=i64::from(MISSING_SAMPLES) {
            samples.push(disks(T0 + s * 1000, &[("/", 50)]));
        }
        let events = run(&mut engine, "pi-01", samples);
        assert_eq!(
            events,
            [
                (0, EventKind::Firing, "pi-01 disk full: disk /mnt/usb used 95 % > 90".to_owned()),
                (
                    3,
                    EventKind::ResolvedNoData,
                    "pi-01 disk full resolved (no data): disk /mnt/usb used last 95 % > 90, was firing for 3s"
                        .to_owned()
                ),
            ],
            "after {MISSING_SAMPLES} samples without it; the pending one ends silently"
        );
        assert!(engine.active().is_empty());
    }

    #[test]
    fn node_gone_resolves_firing_series_and_drops_pending_ones() {
        let mut engine = Engine::new(rules(&[
            above("hot", "temperature.celsius", 80.0, "0s"),
            above("hot later", "temperature.celsius", 80.0, "10m"),
        ]));
        run(&mut engine, "pi-01", [temps(T0, &[("cpu", 90.0)])]);
        run(&mut engine, "pi-02", [temps(T0, &[("cpu", 90.0)])]);
        assert_eq!(engine.active().len(), 4);
        let events = engine.node_gone("pi-01", T0 + 600_000);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, EventKind::ResolvedNoData);
        assert_eq!(&*events[0].rule, "hot");
        assert_eq!(events[0].at_ms, T0 + 600_000);
        assert_eq!(
            events[0].message(),
            "pi-01 hot resolved (no data): temperature cpu last 90 °C > 80, was firing for 10m"
        );
        let left: Vec<String> = engine.active().into_iter().map(|a| a.node).collect();
        assert_eq!(left, ["pi-02", "pi-02"]);
        assert_eq!(engine.node_gone("pi-01", T0), []);
    }

    #[test]
    fn a_node_that_goes_silent_keeps_its_alerts_firing() {
        let mut engine = Engine::new(rules(&[above("hot", "temperature.celsius", 80.0, "0s")]));
        run(&mut engine, "pi-01", [temps(T0, &[("cpu", 90.0)])]);
        let events = engine.node_down("pi-01", &none(), T0 + 60_000);
        assert_eq!(events, [], "no node-down rule configured");
        assert_eq!(engine.active().len(), 1, "nothing resolves silently");
    }

    #[test]
    fn node_down_is_fed_by_the_liveness_watcher() {
        let mut engine = Engine::new(load(true, &[]).unwrap());
        let labels: Labels = [("stack".into(), "2".into())].into();
        let down = engine.node_down("pi-03", &labels, T0);
        assert_eq!(down.len(), 1);
        assert_eq!(down[0].message(), "pi-03 node down: status down");
        assert_eq!(engine.node_down("pi-03", &labels, T0 + 5000), [], "once");
        // Samples do not resolve it, nor count it missing.
        for s in 1..=5 {
            let sample = temps(T0 + s * 1000, &[("cpu", 40.0)]);
            assert_eq!(engine.observe("pi-03", &labels, &sample, T0 + s * 1000), []);
        }
        let up = engine.node_up("pi-03", T0 + 720_000);
        assert_eq!(up.len(), 1);
        assert_eq!(
            up[0].message(),
            "pi-03 node down resolved: up again after 12m"
        );
        assert_eq!(engine.node_up("pi-03", T0 + 720_000), []);
        engine.node_down("pi-03", &labels, T0 + 800_000);
        let gone = engine.node_gone("pi-03", T0 + 900_000);
        assert_eq!(gone[0].kind, EventKind::ResolvedNoData);
    }

    #[test]
    fn scope_by_node_name_and_labels() {
        let mut engine = Engine::new(rules(&[
            RuleConfig {
                node: Some("pi-01".into()),
                ..above("one node", "temperature.celsius", 80.0, "0s")
            },
            RuleConfig {
                labels: [("stack".into(), "2".into())].into(),
                ..above("stack 2", "temperature.celsius", 80.0, "0s")
            },
        ]));
        let stack2: Labels = [("stack".into(), "2".into())].into();
        let stack3: Labels = [("stack".into(), "3".into())].into();
        let hot = |ts| temps(ts, &[("cpu", 90.0)]);
        let fired = |events: Vec<Event>| -> Vec<String> {
            events.iter().map(|e| e.rule.to_string()).collect()
        };
        assert_eq!(
            fired(engine.observe("pi-01", &stack3, &hot(T0), T0)),
            ["one node"]
        );
        assert_eq!(
            fired(engine.observe("pi-02", &stack2, &hot(T0), T0)),
            ["stack 2"]
        );
        assert_eq!(
            fired(engine.observe("pi-03", &stack3, &hot(T0), T0)),
            Vec::<String>::new()
        );
        assert_eq!(
            fired(engine.observe("pi-01", &stack2, &hot(T0 + 1000), T0 + 1000)),
            ["stack 2"],
            "labels changed: now in scope"
        );
    }

    #[test]
    fn events_carry_the_rule_channels_and_threshold() {
        let mut engine = Engine::new(rules(&[RuleConfig {
            notify: vec!["phone".into()],
            ..above("hot", "temperature.celsius", 80.0, "0s")
        }]));
        let events = engine.observe("pi-01", &none(), &temps(T0, &[("cpu", 90.0)]), T0);
        let e = &events[0];
        assert_eq!(&*e.channels, ["phone".to_owned()]);
        assert_eq!(e.threshold(), Some(80.0));
        assert_eq!(e.comparison(), Some(Comparison::Above));
        assert_eq!(e.value, Some(90.0));
        assert_eq!((e.since_ms, e.at_ms), (T0, T0));
    }

    #[test]
    fn retried_and_stale_samples_are_not_judged() {
        let mut engine = Engine::new(rules(&[above("hot", "temperature.celsius", 80.0, "0s")]));
        let hot = temps(T0, &[("cpu", 90.0)]);
        assert_eq!(engine.observe("pi-01", &none(), &hot, T0).len(), 1);
        let cool = temps(T0, &[("cpu", 20.0)]);
        assert_eq!(
            engine.observe("pi-01", &none(), &cool, T0),
            [],
            "same timestamp"
        );
        assert_eq!(engine.active().len(), 1);
        let old = temps(T0 + 1000, &[("cpu", 90.0)]);
        let now = T0 + 1000 + MAX_SAMPLE_AGE_MS + 1;
        assert_eq!(engine.observe("pi-02", &none(), &old, now), [], "a backlog");
        assert_eq!(engine.active().len(), 1);
    }

    #[test]
    fn under_voltage_and_throttling_defaults() {
        let mut engine = Engine::new(load(true, &[]).unwrap());
        let sample = |ts: i64, events: u64, raw: u32| VitalsPayload {
            timestamp_ms: ts,
            power: Some(PowerVitals {
                under_voltage_events: Some(events),
                ..Default::default()
            }),
            throttling: Some(Throttling { raw }),
            ..Default::default()
        };
        let events = run(
            &mut engine,
            "pi-01",
            [
                sample(T0, 0, 0),
                sample(T0 + 1000, 2, 0x4),
                sample(T0 + 2000, 0, 0),
            ],
        );
        let lines: Vec<&str> = events.iter().map(|(_, _, m)| m.as_str()).collect();
        assert_eq!(
            lines,
            [
                "pi-01 throttled: system throttled 1 > 0",
                "pi-01 under-voltage: power under_voltage_events 2 > 0",
                "pi-01 throttled resolved: system throttled 0, was > 0 for 1s",
                "pi-01 under-voltage resolved: power under_voltage_events 0, was > 0 for 1s",
            ]
        );
    }

    /// Not timed: counts the engine's work. Ten rules over one sample with every family make
    /// one comparison per rule and point carrying its field, and allocate nothing while
    /// nothing fires.
    #[test]
    fn ten_rules_over_a_full_sample_make_the_expected_comparisons() {
        let configs = [
            above("disk", "disk.used_percent", 90.0, "5m"),
            above("inodes", "disk.inodes_used_percent", 90.0, "5m"),
            above("hot", "temperature.celsius", 80.0, "2m"),
            above("hot peak", "temperature.celsius_max", 85.0, "0s"),
            above("cpu", "cpu.usage_percent", 95.0, "10m"),
            above("mem", "mem.used_percent", 95.0, "5m"),
            above("uv", "power.under_voltage_events", 0.0, "0s"),
            above("throttled", "system.throttled", 0.0, "0s"),
            above("load", "system.load1", 8.0, "5m"),
            above("rx errors", "net.rx_errors_per_second", 1.0, "1m"),
        ];
        let mut engine = Engine::new(rules(&configs));
        let sample = VitalsPayload {
            timestamp_ms: T0,
            cpu: Some(pivitals_common::CpuVitals {
                usage_percent: 10.0,
                cores: 4,
                ..Default::default()
            }),
            memory: Some(pivitals_common::MemoryVitals {
                total_bytes: 100,
                available_bytes: 50,
                used_bytes: 50,
                ..Default::default()
            }),
            load: Some(pivitals_common::LoadAverage {
                one: 0.5,
                ..Default::default()
            }),
            throttling: Some(Throttling { raw: 0 }),
            power: Some(PowerVitals {
                under_voltage_events: Some(0),
                ..Default::default()
            }),
            networks: vec![
                pivitals_common::NetVitals {
                    interface: "eth0".into(),
                    rates: Some(Default::default()),
                    ..Default::default()
                },
                pivitals_common::NetVitals {
                    interface: "wlan0".into(),
                    rates: None,
                    ..Default::default()
                },
            ],
            temperatures: vec![
                TemperatureVitals {
                    sensor: "cpu_thermal".into(),
                    celsius: 50.0,
                    celsius_max: Some(55.0),
                    ..Default::default()
                },
                TemperatureVitals {
                    sensor: "rp1_adc".into(),
                    celsius: 45.0,
                    ..Default::default()
                },
            ],
            ..disks(T0, &[("/", 50), ("/boot", 20), ("/mnt/usb", 10)])
        };
        let events = engine.observe("pi-01", &none(), &sample, T0);
        assert_eq!(events, []);
        // disk: 3 mounts × used_percent (inodes unknown: no comparison); temperature: 2
        // sensors × celsius + 1 celsius_max; cpu 1; mem 1; power 1; system: throttled and
        // load1; net: eth0 has rates, wlan0 not.
        assert_eq!(engine.comparisons(), 3 + 2 + 1 + 1 + 1 + 1 + 2 + 1);
        assert!(engine.nodes["pi-01"].series.is_empty(), "nothing kept");
        assert_eq!(
            engine.nodes["pi-01"].series.capacity(),
            0,
            "nothing allocated"
        );
    }
}
