//! Peaks that a push interval's mean hides. The fast vitals (CPU busy share and frequency,
//! the 1-minute load, used memory, each temperature sensor) are read every `sample_every`
//! (1 s by default) by [`crate::Collector::tick`]; each reading joins a running [`Stat`], and
//! the next sample reports every field's mean, min and max over its interval, then starts
//! afresh.
//!
//! The mean is the plain mean of the readings: with evenly spaced readings of CPU busy share
//! (each over the second before it), that is the busy share over the interval. Non-finite
//! readings are left out. A sensor that disappears during an interval is reported with what
//! was read of it; one that appears is reported from its first reading.

use std::collections::BTreeMap;

use pivitals_common::{CpuVitals, LoadAverage, MemoryVitals, SwapVitals, TemperatureVitals};

/// Mean, min and max of the readings of one field since the last sample.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Stat {
    count: u32,
    sum: f64,
    min: f64,
    max: f64,
}

impl Stat {
    pub(crate) fn add(&mut self, value: f64) {
        if !value.is_finite() {
            return;
        }
        if self.count == 0 {
            self.min = value;
            self.max = value;
        } else {
            self.min = self.min.min(value);
            self.max = self.max.max(value);
        }
        self.count += 1;
        self.sum += value;
    }

    pub(crate) fn mean(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / f64::from(self.count))
    }

    pub(crate) fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    pub(crate) fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }
}

/// Rounds to two decimals: the readings carry no more (sysinfo measures CPU in f32, sensors
/// in millidegrees), and InfluxDB need not store a mean's noise.
fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn whole(value: f64) -> u64 {
    // Means of byte counts and MHz: non-negative and far below 2^53.
    value.round().max(0.0) as u64
}

/// The readings of one tick.
#[derive(Debug, Default)]
pub(crate) struct Reading {
    pub(crate) cpu: Option<CpuVitals>,
    pub(crate) load: Option<LoadAverage>,
    pub(crate) memory: Option<MemoryVitals>,
    pub(crate) swap: Option<SwapVitals>,
    pub(crate) temperatures: Vec<TemperatureVitals>,
}

/// What the next sample reports of the fast vitals.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Summary {
    pub(crate) cpu: Option<CpuVitals>,
    pub(crate) load: Option<LoadAverage>,
    pub(crate) memory: Option<MemoryVitals>,
    pub(crate) swap: Option<SwapVitals>,
    pub(crate) temperatures: Vec<TemperatureVitals>,
}

/// The running statistics of one interval, and the newest reading for the fields that are
/// reported as they are (core count, memory total, the 5- and 15-minute loads, swap).
#[derive(Debug, Default)]
pub(crate) struct Peaks {
    cpu: Stat,
    frequency: Stat,
    load1: Stat,
    memory_used: Stat,
    temperatures: BTreeMap<String, Stat>,
    newest: Reading,
}

impl Peaks {
    /// No reading since the last summary.
    pub(crate) fn is_empty(&self) -> bool {
        self.newest.cpu.is_none()
            && self.newest.load.is_none()
            && self.newest.memory.is_none()
            && self.newest.temperatures.is_empty()
    }

    pub(crate) fn add(&mut self, reading: Reading) {
        if let Some(cpu) = &reading.cpu {
            self.cpu.add(cpu.usage_percent);
            if let Some(mhz) = cpu.frequency_mhz {
                self.frequency.add(mhz as f64);
            }
        }
        if let Some(load) = &reading.load {
            self.load1.add(load.one);
        }
        if let Some(memory) = &reading.memory {
            self.memory_used.add(memory.used_bytes as f64);
        }
        for temp in &reading.temperatures {
            self.temperatures
                .entry(temp.sensor.clone())
                .or_default()
                .add(temp.celsius);
        }
        // Keep the newest value of each family; a family missing from one reading keeps the
        // one before (a sensor read may fail once).
        let newest = &mut self.newest;
        newest.cpu = reading.cpu.or(newest.cpu.take());
        newest.load = reading.load.or(newest.load.take());
        newest.memory = reading.memory.or(newest.memory.take());
        newest.swap = reading.swap.or(newest.swap.take());
        if !reading.temperatures.is_empty() {
            newest.temperatures = reading.temperatures;
        }
    }

    /// The interval's summary; starts the next interval.
    pub(crate) fn take(&mut self) -> Summary {
        let peaks = std::mem::take(self);
        let cpu = peaks.newest.cpu.map(|cpu| CpuVitals {
            usage_percent: peaks.cpu.mean().map_or(cpu.usage_percent, round2),
            usage_percent_min: peaks.cpu.min().map(round2),
            usage_percent_max: peaks.cpu.max().map(round2),
            frequency_mhz: peaks.frequency.mean().map(whole),
            frequency_mhz_min: peaks.frequency.min().map(whole),
            frequency_mhz_max: peaks.frequency.max().map(whole),
            cores: cpu.cores,
        });
        let load = peaks.newest.load.map(|load| LoadAverage {
            one: peaks.load1.mean().map_or(load.one, round2),
            one_min: peaks.load1.min(),
            one_max: peaks.load1.max(),
            ..load
        });
        let memory = peaks.newest.memory.map(|memory| MemoryVitals {
            used_bytes: peaks.memory_used.mean().map_or(memory.used_bytes, whole),
            used_bytes_min: peaks.memory_used.min().map(whole),
            used_bytes_max: peaks.memory_used.max().map(whole),
            ..memory
        });
        let mut temperatures: Vec<TemperatureVitals> = peaks
            .temperatures
            .iter()
            .filter_map(|(sensor, stat)| {
                Some(TemperatureVitals {
                    sensor: sensor.clone(),
                    celsius: round2(stat.mean()?),
                    celsius_min: stat.min(),
                    celsius_max: stat.max(),
                })
            })
            .collect();
        // In the order the collector lists sensors (thermal zones first), as before.
        let order = |sensor: &str| {
            peaks
                .newest
                .temperatures
                .iter()
                .position(|t| t.sensor == sensor)
                .unwrap_or(usize::MAX)
        };
        temperatures.sort_by_key(|t| order(&t.sensor));
        Summary {
            cpu,
            load,
            memory,
            swap: peaks.newest.swap,
            temperatures,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(cpu: f64, mhz: u64, load1: f64, used: u64, celsius: f64) -> Reading {
        Reading {
            cpu: Some(CpuVitals {
                usage_percent: cpu,
                frequency_mhz: Some(mhz),
                cores: 4,
                ..Default::default()
            }),
            load: Some(LoadAverage {
                one: load1,
                five: 0.5,
                fifteen: 0.25,
                ..Default::default()
            }),
            memory: Some(MemoryVitals {
                total_bytes: 1000,
                available_bytes: 1000 - used,
                used_bytes: used,
                ..Default::default()
            }),
            swap: None,
            temperatures: vec![TemperatureVitals {
                sensor: "cpu_thermal".into(),
                celsius,
                ..Default::default()
            }],
        }
    }

    #[test]
    fn a_three_second_burst_in_a_minute_shows_as_the_max_not_in_the_mean() {
        let mut peaks = Peaks::default();
        for second in 0..60 {
            let busy = (20..23).contains(&second);
            let cpu = if busy { 100.0 } else { 5.0 };
            let celsius = if busy { 71.0 } else { 50.0 };
            peaks.add(reading(cpu, 1500, 0.5, 400, celsius));
        }
        let summary = peaks.take();
        let cpu = summary.cpu.unwrap();
        assert_eq!(cpu.usage_percent_max, Some(100.0));
        assert_eq!(cpu.usage_percent_min, Some(5.0));
        assert_eq!(cpu.usage_percent, 9.75, "(57 × 5 + 3 × 100) / 60");
        let temp = &summary.temperatures[0];
        assert_eq!(
            (temp.celsius_min, temp.celsius_max),
            (Some(50.0), Some(71.0))
        );
        assert_eq!(temp.celsius, 51.05);
    }

    #[test]
    fn every_fast_field_gets_mean_min_and_max_and_the_rest_is_the_newest() {
        let mut peaks = Peaks::default();
        peaks.add(reading(10.0, 600, 0.25, 300, 40.0));
        peaks.add(reading(30.0, 1800, 1.25, 500, 60.0));
        let summary = peaks.take();
        assert_eq!(
            summary.cpu,
            Some(CpuVitals {
                usage_percent: 20.0,
                usage_percent_min: Some(10.0),
                usage_percent_max: Some(30.0),
                frequency_mhz: Some(1200),
                frequency_mhz_min: Some(600),
                frequency_mhz_max: Some(1800),
                cores: 4,
            })
        );
        assert_eq!(
            summary.load,
            Some(LoadAverage {
                one: 0.75,
                five: 0.5,
                fifteen: 0.25,
                one_min: Some(0.25),
                one_max: Some(1.25),
            })
        );
        assert_eq!(
            summary.memory,
            Some(MemoryVitals {
                total_bytes: 1000,
                available_bytes: 500,
                used_bytes: 400,
                used_bytes_min: Some(300),
                used_bytes_max: Some(500),
            })
        );
        assert_eq!(
            peaks.take(),
            Summary::default(),
            "the next interval starts empty"
        );
    }

    #[test]
    fn a_single_reading_is_its_own_mean_min_and_max() {
        let mut peaks = Peaks::default();
        peaks.add(reading(42.0, 1000, 1.0, 100, 45.5));
        let cpu = peaks.take().cpu.unwrap();
        assert_eq!(
            (
                cpu.usage_percent,
                cpu.usage_percent_min,
                cpu.usage_percent_max
            ),
            (42.0, Some(42.0), Some(42.0))
        );
    }

    #[test]
    fn non_finite_readings_and_missing_families_are_left_out() {
        let mut peaks = Peaks::default();
        peaks.add(reading(10.0, 1000, 1.0, 100, f64::NAN));
        peaks.add(Reading::default());
        peaks.add(reading(20.0, 1000, 1.0, 100, 50.0));
        let summary = peaks.take();
        assert_eq!(summary.cpu.unwrap().usage_percent, 15.0);
        let temp = &summary.temperatures[0];
        assert_eq!((temp.celsius, temp.celsius_min), (50.0, Some(50.0)));
    }
}
