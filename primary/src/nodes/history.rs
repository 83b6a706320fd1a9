//! The last hour of each node's summary in memory, for the dashboard's sparklines and charts.
//!
//! Every accepted sample (pushed, or taken by the self-monitor) is reduced to four numbers:
//! CPU %, memory %, the hottest sensor's °C and the fullest disk's %. Samples are downsampled
//! into fixed [`STEP_MS`] slots (one minute, aligned to the epoch): each slot keeps the mean of
//! the samples whose timestamp falls in it, so a one-second agent costs the same memory as a
//! one-minute one. A slot older than [`WINDOW_MS`] (one hour) before the newest accepted
//! wall-clock time is not shown.
//!
//! A slot is never narrower than the node's interval (rounded up to a multiple of a minute): a
//! node pushing every 5 minutes has 12 five-minute slots, not 60 mostly empty ones.
//!
//! Memory is fixed per node from its first sample on: a ring of slots of four 16-bit values
//! (hundredths, offset by 100 so −100.00 to 555.34 fit), 8 bytes a slot: 480 bytes for a node
//! at 60 s or faster, plus the running means of the slot being filled. A mean is kept exactly
//! while its slot is being filled; a sample arriving later for a finished slot (out of order)
//! joins its stored mean as if that were one sample.
//!
//! Why one-minute slots: agents push every 1 s to 24 h, and the primary holds every node's
//! hour at once (10,000 nodes within its memory goal). Sixty points an hour is what a card's
//! sparkline draws, the same step as the rollups' `1h` range, and the same detail for a node
//! at 10 s as at the default 60 s; 10 s slots cost six times as much (2,880 bytes a node,
//! 29 MB for 10,000). A slot's mean smooths a spike shorter than a minute: the ranged history
//! keeps each step's highest value, and InfluxDB every sample.
//!
//! This is a cache for display only: it starts empty when the primary starts and is never
//! written anywhere.

use pivitals_common::{DiskVitals, VitalsPayload};
use serde::Serialize;

/// The width of one slot for nodes pushing every minute or faster.
pub const STEP_MS: i64 = 60_000;
/// How much history a node keeps.
pub const WINDOW_MS: i64 = 3_600_000;
/// The most slots a node holds: one hour of one-minute slots.
pub const MAX_SLOTS: usize = (WINDOW_MS / STEP_MS) as usize;

/// The summary of one sample, as the dashboard charts it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Summary {
    pub cpu_percent: Option<f64>,
    pub mem_percent: Option<f64>,
    pub temp_celsius: Option<f64>,
    pub disk_percent: Option<f64>,
}

impl Summary {
    /// CPU and memory use, the hottest sensor and the fullest disk of a sample.
    pub fn of(sample: &VitalsPayload) -> Self {
        let percent =
            |part: u64, whole: u64| (whole > 0).then(|| part as f64 * 100.0 / whole as f64);
        Self {
            cpu_percent: sample.cpu.as_ref().map(|c| c.usage_percent),
            mem_percent: sample
                .memory
                .as_ref()
                .and_then(|m| percent(m.used_bytes, m.total_bytes)),
            temp_celsius: sample.hottest_celsius(),
            // As `df` shows it (and as InfluxDB gets it).
            disk_percent: sample
                .disks
                .iter()
                .filter_map(DiskVitals::used_percent)
                .reduce(f64::max),
        }
    }
}

/// One point of the history as the API answers it: the slot's start and its means.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct HistoryPoint {
    /// Start of the slot, ms since the epoch (a multiple of the node's step).
    pub ts_ms: i64,
    pub cpu_percent: Option<f64>,
    pub mem_percent: Option<f64>,
    pub temp_celsius: Option<f64>,
    pub disk_percent: Option<f64>,
}

/// A running mean that costs 8 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Mean {
    sum: f32,
    count: u32,
}

impl Mean {
    fn add(&mut self, value: Option<f64>) {
        if let Some(v) = value.filter(|v| v.is_finite()) {
            self.sum += v as f32;
            self.count = self.count.saturating_add(1);
        }
    }

    fn get(self) -> Option<f64> {
        (self.count > 0).then(|| f64::from(self.sum / self.count as f32))
    }

    /// A stored mean taken up again as one sample.
    fn seeded(stored: u16) -> Self {
        let mut mean = Self::default();
        mean.add(unpack(stored));
        mean
    }
}

/// A stored value meaning "no sample reported this".
const NONE: u16 = u16::MAX;

/// Hundredths, offset by 100 (temperatures go below zero); out-of-range values are clamped.
fn pack(value: Option<f64>) -> u16 {
    value.map_or(NONE, |v| {
        ((v + 100.0) * 100.0)
            .round()
            .clamp(0.0, f64::from(NONE - 1)) as u16
    })
}

fn unpack(stored: u16) -> Option<f64> {
    (stored != NONE).then(|| (f64::from(stored) - 10_000.0) / 100.0)
}

/// Rounded to 0.01, as stored, so the API shows the same numbers before and after a slot is
/// finished (and no f32 noise such as 12.500000953674316).
fn hundredths(value: Option<f64>) -> Option<f64> {
    unpack(pack(value))
}

/// A finished slot: cpu, mem, temp, disk.
type Packed = [u16; 4];
const EMPTY: Packed = [NONE; 4];

/// The slot being filled, with exact running means.
#[derive(Debug, Clone, Copy)]
struct Open {
    /// `start_ms / STEP_MS`.
    index: i64,
    means: [Mean; 4],
}

impl Open {
    fn add(&mut self, s: &Summary) {
        let values = [s.cpu_percent, s.mem_percent, s.temp_celsius, s.disk_percent];
        for (mean, value) in self.means.iter_mut().zip(values) {
            mean.add(value);
        }
    }

    fn packed(&self) -> Packed {
        self.means.map(|m| pack(m.get()))
    }
}

/// One node's last hour: a ring of finished slots and the slot being filled.
#[derive(Debug, Clone)]
pub struct History {
    /// The width of a slot, a multiple of [`STEP_MS`].
    step_ms: i64,
    /// Finished slots; the slot of index `i` is at `i % len` while `newest - len < i <= newest`.
    /// Allocated at the first sample.
    ring: Option<Box<[Packed]>>,
    /// The index of the newest slot any sample fell in.
    newest: i64,
    open: Option<Open>,
}

impl Default for History {
    fn default() -> Self {
        Self::for_interval(0)
    }
}

impl History {
    /// An empty history for a node pushing every `interval_seconds`.
    pub fn for_interval(interval_seconds: u64) -> Self {
        let step = STEP_MS as u64;
        let steps = interval_seconds
            .saturating_mul(1000)
            .div_ceil(step)
            .clamp(1, (WINDOW_MS / STEP_MS) as u64) as i64;
        Self {
            step_ms: steps * STEP_MS,
            ring: None,
            newest: 0,
            open: None,
        }
    }

    /// The width of one slot.
    pub fn step_ms(&self) -> i64 {
        self.step_ms
    }

    /// How many slots cover the window.
    fn slots(&self) -> i64 {
        (WINDOW_MS / self.step_ms).max(1)
    }

    /// Adds a sample taken at `ts_ms`, with `now_ms` the primary's clock. Samples from before
    /// the window (a backlog delivered after a long outage) are not kept; samples out of
    /// order join their own slot.
    pub fn record(&mut self, ts_ms: i64, summary: &Summary, now_ms: i64) {
        let (step, slots) = (self.step_ms, self.slots());
        let index = ts_ms.div_euclid(step);
        let horizon = now_ms.saturating_sub(WINDOW_MS);
        if (index + 1) * step <= horizon {
            return;
        }
        let ring = self
            .ring
            .get_or_insert_with(|| vec![EMPTY; slots as usize].into_boxed_slice());
        if self.open.is_none() {
            self.newest = index;
        }
        if index > self.newest {
            // Slots skipped over (no sample fell in them) are emptied of what the ring held an
            // hour earlier.
            let from = self.newest.max(index - slots) + 1;
            for i in from..=index {
                ring[slot_of(i, slots)] = EMPTY;
            }
            self.newest = index;
        }
        if index <= self.newest - slots {
            return;
        }
        let open = match self.open.as_mut() {
            Some(open) if open.index == index => open,
            _ => {
                if let Some(done) = self.open.take()
                    && done.index > self.newest - slots
                {
                    ring[slot_of(done.index, slots)] = done.packed();
                }
                let stored = ring[slot_of(index, slots)];
                self.open.insert(Open {
                    index,
                    means: stored.map(Mean::seeded),
                })
            }
        };
        open.add(summary);
    }

    /// The points of the last hour before `now_ms` whose slot starts at or after `since_ms`.
    pub fn points(&self, since_ms: Option<i64>, now_ms: i64) -> Vec<HistoryPoint> {
        let Some(ring) = &self.ring else {
            return Vec::new();
        };
        let (step, slots) = (self.step_ms, self.slots());
        let horizon = now_ms.saturating_sub(WINDOW_MS);
        let from_ms = since_ms.map_or(horizon, |s| s.max(horizon));
        // The first slot that ends after `from_ms`.
        let first = (from_ms.div_euclid(step)).max(self.newest - slots + 1);
        (first..=self.newest)
            .filter_map(|index| {
                let packed = match self.open {
                    Some(open) if open.index == index => open.packed(),
                    _ => ring[slot_of(index, slots)],
                };
                (packed != EMPTY).then(|| {
                    let [cpu, mem, temp, disk] = packed.map(unpack);
                    HistoryPoint {
                        ts_ms: index * step,
                        cpu_percent: hundredths(cpu),
                        mem_percent: hundredths(mem),
                        temp_celsius: hundredths(temp),
                        disk_percent: hundredths(disk),
                    }
                })
            })
            .collect()
    }

    /// Slots holding a sample.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.points(None, (self.newest + 1) * self.step_ms).len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn slot_of(index: i64, slots: i64) -> usize {
    index.rem_euclid(slots) as usize
}

#[cfg(test)]
mod tests {
    use pivitals_common::{CpuVitals, DiskVitals, MemoryVitals, TemperatureVitals};

    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn summary(cpu: f64) -> Summary {
        Summary {
            cpu_percent: Some(cpu),
            ..Default::default()
        }
    }

    #[test]
    fn a_sample_is_summarised_by_its_hottest_sensor_and_fullest_disk() {
        let sample = VitalsPayload {
            timestamp_ms: T0,
            cpu: Some(CpuVitals {
                usage_percent: 12.5,
                ..Default::default()
            }),
            memory: Some(MemoryVitals {
                total_bytes: 400,
                available_bytes: 300,
                used_bytes: 100,
                ..Default::default()
            }),
            disks: vec![
                DiskVitals {
                    total_bytes: 100,
                    used_bytes: 20,
                    ..Default::default()
                },
                DiskVitals {
                    total_bytes: 100,
                    used_bytes: 90,
                    ..Default::default()
                },
                DiskVitals::default(),
            ],
            temperatures: vec![
                TemperatureVitals {
                    sensor: "a".into(),
                    celsius: 41.0,
                    ..Default::default()
                },
                TemperatureVitals {
                    sensor: "b".into(),
                    celsius: 55.5,
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        assert_eq!(
            Summary::of(&sample),
            Summary {
                cpu_percent: Some(12.5),
                mem_percent: Some(25.0),
                temp_celsius: Some(55.5),
                disk_percent: Some(90.0),
            }
        );
        assert_eq!(Summary::of(&VitalsPayload::default()), Summary::default());
    }

    #[test]
    fn one_second_samples_share_one_minute_slots_as_a_mean() {
        let mut history = History::default();
        let start = T0.div_euclid(STEP_MS) * STEP_MS;
        for i in 0..120 {
            history.record(start + i * 1000, &summary(i as f64), start + i * 1000);
        }
        let points = history.points(None, start + 120_000);
        assert_eq!(points.len(), 2);
        assert_eq!(points[0].ts_ms, start);
        assert_eq!(points[0].cpu_percent, Some(29.5), "mean of 0..=59");
        assert_eq!(points[1].cpu_percent, Some(89.5), "mean of 60..=119");
        assert_eq!(points[0].mem_percent, None, "never reported");
    }

    #[test]
    fn memory_is_bounded_to_an_hour_of_slots_whatever_the_rate() {
        let mut history = History::default();
        // Two hours of one-second samples.
        for i in 0..7200 {
            let ts = T0 + i * 1000;
            history.record(ts, &summary(1.0), ts);
            assert!(history.len() <= MAX_SLOTS);
        }
        assert_eq!(history.len(), MAX_SLOTS);
        assert_eq!(
            history.ring.as_ref().map(|r| r.len()),
            Some(MAX_SLOTS),
            "one fixed allocation"
        );
        let now = T0 + 7200 * 1000;
        let points = history.points(None, now);
        assert!(points.iter().all(|p| p.ts_ms + STEP_MS > now - WINDOW_MS));
        assert!(
            points
                .windows(2)
                .all(|w| w[1].ts_ms - w[0].ts_ms == STEP_MS)
        );
    }

    #[test]
    fn old_and_out_of_order_samples() {
        let mut history = History::default();
        let now = T0.div_euclid(STEP_MS) * STEP_MS + 2 * WINDOW_MS;
        history.record(T0, &summary(1.0), now);
        assert!(history.is_empty(), "older than the window");
        let half = STEP_MS / 2;
        history.record(now - half, &summary(50.0), now);
        history.record(now - 2 * STEP_MS - half, &summary(10.0), now);
        history.record(now - STEP_MS - half, &summary(20.0), now);
        // Its slot (with 10) was finished when 20 opened another: the stored mean counts once.
        history.record(now - 2 * STEP_MS - half - 500, &summary(30.0), now);
        let cpu: Vec<_> = history
            .points(None, now)
            .iter()
            .map(|p| p.cpu_percent)
            .collect();
        assert_eq!(cpu, [Some(20.0), Some(20.0), Some(50.0)]);
    }

    #[test]
    fn since_answers_the_slots_that_may_have_changed() {
        let mut history = History::default();
        for i in 0..6 {
            let ts = T0 + i * STEP_MS;
            history.record(ts, &summary(i as f64), ts);
        }
        let now = T0 + 6 * STEP_MS;
        assert_eq!(history.points(Some(T0 + 4 * STEP_MS), now).len(), 2);
        assert_eq!(history.points(Some(T0 + 4 * STEP_MS + 1), now).len(), 2);
        assert_eq!(history.points(Some(now), now).len(), 0);
        assert_eq!(history.points(Some(0), now).len(), 6);
        // An hour later, without new samples, nothing is left to show.
        assert!(history.points(None, now + WINDOW_MS + STEP_MS).is_empty());
    }

    #[test]
    fn stored_values_keep_hundredths_below_zero_and_clamp_the_impossible() {
        for v in [-40.25, 0.0, 12.34, 99.99, 100.0, 85.5] {
            assert_eq!(unpack(pack(Some(v))), Some(v));
        }
        assert_eq!(unpack(pack(None)), None);
        assert_eq!(unpack(pack(Some(-500.0))), Some(-100.0));
        assert_eq!(unpack(pack(Some(1e9))), Some(555.34));
    }

    #[test]
    fn slots_are_as_wide_as_the_interval_so_slow_nodes_hold_less() {
        for (interval, step_s, slots) in [
            (1, 60, 60),
            (10, 60, 60),
            (60, 60, 60),
            (90, 120, 30),
            (300, 300, 12),
        ] {
            let mut history = History::for_interval(interval);
            assert_eq!(history.step_ms(), step_s * 1000, "interval {interval}");
            // Two hours of samples at the interval.
            let end = T0 + 7_200_000;
            let mut ts = T0;
            while ts < end {
                history.record(ts, &summary(1.0), ts);
                ts += interval as i64 * 1000;
            }
            assert_eq!(history.ring.as_ref().map(|r| r.len()), Some(slots));
            let points = history.points(None, end);
            assert!(
                points.len() >= slots - 1 && points.len() <= slots,
                "{interval}: {}",
                points.len()
            );
            assert!(points.iter().all(|p| p.ts_ms % (step_s * 1000) == 0));
        }
        let daily = History::for_interval(86_400);
        assert_eq!(daily.step_ms(), WINDOW_MS, "one slot covers the window");
    }

    #[test]
    fn a_gap_longer_than_the_ring_leaves_nothing_of_before() {
        let mut history = History::default();
        history.record(T0, &summary(7.0), T0);
        // Exactly one ring later: the same ring position, a different slot.
        let later = T0 + MAX_SLOTS as i64 * STEP_MS;
        history.record(later + STEP_MS, &summary(9.0), later + STEP_MS);
        let points = history.points(None, later + STEP_MS);
        assert_eq!(points.len(), 1, "{points:?}");
        assert_eq!(points[0].cpu_percent, Some(9.0));
    }

    #[test]
    fn non_finite_values_are_left_out() {
        let mut history = History::default();
        history.record(T0, &summary(f64::NAN), T0);
        history.record(T0 + 1, &summary(3.0), T0);
        assert_eq!(history.points(None, T0)[0].cpu_percent, Some(3.0));
    }
}
