//! The nine series the ranged history charts, and how one sample gives each a reading
//! (its mean over the agent's interval and, where the wire type has them, its 1-second peaks).

use pivitals_common::{DiskVitals, VitalsPayload};

/// One charted series. The order is the stored order (a bucket holds one accumulator per
/// series, in this order): append new series at the end only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Series {
    CpuPercent,
    MemPercent,
    TempCelsius,
    DiskPercent,
    Load1,
    NetRxBytesPerSecond,
    NetTxBytesPerSecond,
    DiskReadBytesPerSecond,
    DiskWriteBytesPerSecond,
}

/// How many series there are.
pub const SERIES_COUNT: usize = 9;

impl Series {
    /// Every series, in stored order.
    pub const ALL: [Series; SERIES_COUNT] = [
        Series::CpuPercent,
        Series::MemPercent,
        Series::TempCelsius,
        Series::DiskPercent,
        Series::Load1,
        Series::NetRxBytesPerSecond,
        Series::NetTxBytesPerSecond,
        Series::DiskReadBytesPerSecond,
        Series::DiskWriteBytesPerSecond,
    ];

    /// The series' name in the API answer.
    pub fn name(self) -> &'static str {
        match self {
            Series::CpuPercent => "cpu_percent",
            Series::MemPercent => "mem_percent",
            Series::TempCelsius => "temp_celsius",
            Series::DiskPercent => "disk_percent",
            Series::Load1 => "load1",
            Series::NetRxBytesPerSecond => "net_rx_bytes_per_second",
            Series::NetTxBytesPerSecond => "net_tx_bytes_per_second",
            Series::DiskReadBytesPerSecond => "disk_read_bytes_per_second",
            Series::DiskWriteBytesPerSecond => "disk_write_bytes_per_second",
        }
    }

    /// The series' position in [`Series::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// What one sample says about one series: its mean over the interval and the lowest and
/// highest value of the interval (the 1-second peaks where the agent sends them, else the
/// mean itself).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reading {
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Reading {
    fn of(mean: f64, min: Option<f64>, max: Option<f64>) -> Option<Reading> {
        mean.is_finite().then(|| Reading {
            mean,
            min: min.filter(|v| v.is_finite()).unwrap_or(mean).min(mean),
            max: max.filter(|v| v.is_finite()).unwrap_or(mean).max(mean),
        })
    }

    fn plain(mean: f64) -> Option<Reading> {
        Reading::of(mean, None, None)
    }
}

/// The readings of one sample, one slot per series in [`Series::ALL`] order; `None` where
/// the sample does not report the series.
pub fn readings(sample: &VitalsPayload) -> [Option<Reading>; SERIES_COUNT] {
    let mut out = [None; SERIES_COUNT];
    out[Series::CpuPercent.index()] = sample
        .cpu
        .as_ref()
        .and_then(|c| Reading::of(c.usage_percent, c.usage_percent_min, c.usage_percent_max));
    out[Series::MemPercent.index()] = sample.memory.as_ref().and_then(|m| {
        let share =
            |bytes: u64| (m.total_bytes > 0).then(|| bytes as f64 * 100.0 / m.total_bytes as f64);
        Reading::of(
            share(m.used_bytes)?,
            m.used_bytes_min.and_then(share),
            m.used_bytes_max.and_then(share),
        )
    });
    // The hottest sensor: the highest mean, the highest low and the highest peak of any
    // sensor (as a `max()` over the sensors in InfluxDB answers it).
    out[Series::TempCelsius.index()] = sample
        .temperatures
        .iter()
        .filter_map(|t| Reading::of(t.celsius, t.celsius_min, t.celsius_max))
        .reduce(|a, b| Reading {
            mean: a.mean.max(b.mean),
            min: a.min.max(b.min),
            max: a.max.max(b.max),
        });
    out[Series::DiskPercent.index()] = sample
        .disks
        .iter()
        .filter_map(DiskVitals::used_percent)
        .reduce(f64::max)
        .and_then(Reading::plain);
    out[Series::Load1.index()] = sample
        .load
        .as_ref()
        .and_then(|l| Reading::of(l.one, l.one_min, l.one_max));
    let rates = |pick: &dyn Fn(&pivitals_common::VitalsPayload) -> Vec<f64>| {
        let values = pick(sample);
        (!values.is_empty())
            .then(|| values.iter().sum::<f64>())
            .and_then(Reading::plain)
    };
    out[Series::NetRxBytesPerSecond.index()] = rates(&|s| {
        s.networks
            .iter()
            .filter_map(|n| n.rates.as_ref().map(|r| r.rx_bytes_per_second))
            .collect()
    });
    out[Series::NetTxBytesPerSecond.index()] = rates(&|s| {
        s.networks
            .iter()
            .filter_map(|n| n.rates.as_ref().map(|r| r.tx_bytes_per_second))
            .collect()
    });
    out[Series::DiskReadBytesPerSecond.index()] = rates(&|s| {
        s.disk_io
            .iter()
            .filter_map(|d| d.rates.as_ref().map(|r| r.read_bytes_per_second))
            .collect()
    });
    out[Series::DiskWriteBytesPerSecond.index()] = rates(&|s| {
        s.disk_io
            .iter()
            .filter_map(|d| d.rates.as_ref().map(|r| r.write_bytes_per_second))
            .collect()
    });
    out
}

#[cfg(test)]
mod tests {
    use pivitals_common::{CpuVitals, MemoryVitals, NetRates, NetVitals, TemperatureVitals};

    use super::*;

    #[test]
    fn names_follow_the_stored_order() {
        for (i, s) in Series::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        assert_eq!(Series::ALL[8].name(), "disk_write_bytes_per_second");
    }

    #[test]
    fn a_sample_gives_peaks_where_it_has_them_and_sums_rates() {
        let sample = VitalsPayload {
            cpu: Some(CpuVitals {
                usage_percent: 20.0,
                usage_percent_min: Some(5.0),
                usage_percent_max: Some(97.0),
                ..Default::default()
            }),
            memory: Some(MemoryVitals {
                total_bytes: 1000,
                used_bytes: 250,
                used_bytes_max: Some(500),
                ..Default::default()
            }),
            temperatures: vec![
                TemperatureVitals {
                    sensor: "a".into(),
                    celsius: 40.0,
                    celsius_max: Some(70.0),
                    ..Default::default()
                },
                TemperatureVitals {
                    sensor: "b".into(),
                    celsius: 50.0,
                    ..Default::default()
                },
            ],
            networks: vec![
                NetVitals {
                    rates: Some(NetRates {
                        rx_bytes_per_second: 100.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                NetVitals {
                    rates: Some(NetRates {
                        rx_bytes_per_second: 50.0,
                        ..Default::default()
                    }),
                    ..Default::default()
                },
                NetVitals::default(),
            ],
            ..Default::default()
        };
        let r = readings(&sample);
        let cpu = r[Series::CpuPercent.index()].unwrap();
        assert_eq!((cpu.mean, cpu.min, cpu.max), (20.0, 5.0, 97.0));
        let mem = r[Series::MemPercent.index()].unwrap();
        assert_eq!((mem.mean, mem.min, mem.max), (25.0, 25.0, 50.0));
        let temp = r[Series::TempCelsius.index()].unwrap();
        assert_eq!((temp.mean, temp.min, temp.max), (50.0, 50.0, 70.0));
        let rx = r[Series::NetRxBytesPerSecond.index()].unwrap();
        assert_eq!(rx.mean, 150.0);
        assert_eq!(r[Series::NetTxBytesPerSecond.index()].unwrap().mean, 0.0);
        assert_eq!(r[Series::DiskPercent.index()], None);
        assert_eq!(r[Series::Load1.index()], None);
        assert_eq!(r[Series::DiskReadBytesPerSecond.index()], None);
    }
}
