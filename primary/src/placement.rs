//! Placement: which node should run a job? A pure ranking of the live nodes by the headroom
//! they kept over a recent window, served as `GET /api/v1/placement` (`web/routes/placement.rs`).
//!
//! # The request
//!
//! | parameter | meaning | default |
//! | --- | --- | --- |
//! | `cpu`    | cores the job needs, e.g. `1.5` | none: CPU is not a criterion |
//! | `mem`    | memory the job needs: `512MiB`, `2GiB`, `500MB`, plain bytes ([`parse_size`]) | none |
//! | `disk`   | free space it needs on `mount`, same units | none |
//! | `mount`  | the mount point whose free space counts | `/` |
//! | `labels` | `key=value` pairs, comma separated; a node must carry every one | none |
//! | `window` | how far back headroom is measured: `90s`, `15m`, `1h` | `15m`, at most 1 h |
//!
//! All are optional: with none, every up node is ranked by its headroom. The window is at most
//! what the primary holds in memory ([`history::WINDOW_MS`], one hour); a bad value is a
//! [`RequestError`] that names its parameter.
//!
//! # The figures, per node (from [`Snapshot::of`])
//!
//! The window's figures come from the node's in-memory history (slot means, a minute wide or as
//! wide as the node's interval) and its newest sample:
//!
//! - **free cores** = cores × (1 − p95 / 100), where p95 is the 95th percentile (nearest rank:
//!   the ⌈0.95·n⌉-th smallest) of the CPU busy % of the window's slots. Cores are the newest
//!   sample's count, else the node's info. A node busy for more than 5 % of the window counts
//!   as busy: a job is not placed in a lull.
//! - **memory available**: the lowest over the window, total × (1 − the highest slot's memory
//!   use % / 100), lowered further by the newest sample's own peak (`used_bytes_max`) and its
//!   available bytes.
//! - **disk free**: the newest sample's `available_bytes` on `mount` (`df`'s Avail: what a
//!   non-root user can still write).
//! - **temperature headroom** = 80 °C − the hottest reading in the window: the highest slot
//!   mean of the hottest sensor and the newest sample's per-sensor peaks (`celsius_max`, the
//!   hottest 1-second reading of its interval). Older 1-second peaks are not kept in memory, so
//!   a spike that did not last into a slot's mean can be missed.
//! - **power**: the time of the newest sample that showed under-voltage or throttling
//!   ([`shows_power_trouble`](crate::nodes::table::shows_power_trouble)), kept per node in the
//!   live table; within the window it fails the node.
//!
//! # Fit, score and order
//!
//! An up node fits when every asked criterion holds: free cores ≥ `cpu`, memory available ≥
//! `mem`, disk free on `mount` ≥ `disk`, and always temperature below 80 °C and no
//! under-voltage or throttling in the window. Each failed criterion is one line in `reasons`.
//! A figure the node does not report fails only a criterion that was asked for (no sensor is
//! not a failure; no `mount` fails only `disk`).
//!
//! The **score** is the smallest of the node's headrooms left after the job, each normalised
//! to a share, so the tightest resource decides:
//!
//! - CPU: (free cores − `cpu`) / cores;
//! - memory: (available − `mem`) / total;
//! - disk: (free − `disk`) / (used + free), as `df` counts the mount;
//! - temperature: (80 − hottest) / 40, at most 1 (a node at 40 °C or cooler is not limited by
//!   its temperature; above that every degree counts).
//!
//! Figures the node does not report are left out of the minimum; a node with none scores
//! `null`. The score is rounded to thousandths; a fitting node's score is between 0 and 1, a
//! node that does not fit may score below 0 (how far it is short).
//!
//! Order: fitting nodes first, best score first; then up nodes that do not fit, best score
//! first; then nodes that are not up (late, down or stopped), listed with the one reason
//! `not up` and no figures (their last figures are stale), so a person sees the whole
//! matching cluster while a script takes the first fitting node. Ties go by name. Nodes whose
//! labels do not match are left out altogether: the labels choose the candidates.

use pivitals_common::{DiskVitals, Labels, validate};
use serde::{Deserialize, Serialize};

use crate::nodes::history;
use crate::nodes::status::Status;
use crate::nodes::table::LiveNode;

/// The hottest a node may run and still take work, °C.
pub const TEMPERATURE_LIMIT_CELSIUS: f64 = 80.0;
/// Temperature headroom at which the temperature stops limiting the score.
const TEMPERATURE_FULL_HEADROOM: f64 = 40.0;
/// The percentile of CPU busy that counts.
const CPU_PERCENTILE: f64 = 0.95;
/// The window when none is asked.
pub const DEFAULT_WINDOW_SECONDS: u64 = 15 * 60;

/// The query as it arrives: every parameter as text, parsed by [`Request::parse`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub cpu: Option<String>,
    pub mem: Option<String>,
    pub disk: Option<String>,
    pub mount: Option<String>,
    pub labels: Option<String>,
    pub window: Option<String>,
}

/// A bad parameter; the message names it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    #[error("cpu: {0:?} is not a number of cores (e.g. 1.5)")]
    Cpu(String),
    #[error("{param}: {value:?} is not a size (e.g. 512MiB, 2GiB, 500MB or bytes)")]
    Size { param: &'static str, value: String },
    #[error("mount: {0:?} is not an absolute path")]
    Mount(String),
    #[error("labels: {0}")]
    Labels(String),
    #[error("window: {0:?} is not a duration from 1s to 1h (e.g. 15m)")]
    Window(String),
}

/// What the job needs, parsed from [`Params`]; echoed in the answer as `asked`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Request {
    pub cpu: Option<f64>,
    pub mem_bytes: Option<u64>,
    pub disk_bytes: Option<u64>,
    pub mount: String,
    pub labels: Labels,
    pub window_seconds: u64,
}

impl Default for Request {
    fn default() -> Self {
        Self {
            cpu: None,
            mem_bytes: None,
            disk_bytes: None,
            mount: "/".to_owned(),
            labels: Labels::new(),
            window_seconds: DEFAULT_WINDOW_SECONDS,
        }
    }
}

impl Request {
    pub fn parse(params: &Params) -> Result<Self, RequestError> {
        let cpu = params
            .cpu
            .as_deref()
            .map(|text| {
                text.trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|c| c.is_finite() && *c >= 0.0)
                    .ok_or_else(|| RequestError::Cpu(text.to_owned()))
            })
            .transpose()?;
        let size = |param: &'static str, value: &Option<String>| {
            value
                .as_deref()
                .map(|text| {
                    parse_size(text).ok_or_else(|| RequestError::Size {
                        param,
                        value: text.to_owned(),
                    })
                })
                .transpose()
        };
        let mount = match params.mount.as_deref() {
            None => "/".to_owned(),
            Some(m) if m.starts_with('/') => m.to_owned(),
            Some(m) => return Err(RequestError::Mount(m.to_owned())),
        };
        let labels = params
            .labels
            .as_deref()
            .map(validate::parse_labels)
            .transpose()
            .map_err(|e| RequestError::Labels(e.to_string()))?
            .unwrap_or_default();
        let window_seconds = match params.window.as_deref() {
            None => DEFAULT_WINDOW_SECONDS,
            Some(text) => humantime::parse_duration(text.trim())
                .ok()
                .filter(|w| {
                    w.as_millis() >= 1000
                        && w.as_millis() <= u128::from(history::WINDOW_MS.unsigned_abs())
                })
                .map(|w| w.as_secs())
                .ok_or_else(|| RequestError::Window(text.to_owned()))?,
        };
        Ok(Self {
            cpu,
            mem_bytes: size("mem", &params.mem)?,
            disk_bytes: size("disk", &params.disk)?,
            mount,
            labels,
            window_seconds,
        })
    }
}

/// A size in bytes: a number (fractions allowed) with an optional unit, `B`, `kB`, `MB`, `GB`,
/// `TB` (powers of 1000) or `KiB`, `MiB`, `GiB`, `TiB` (powers of 1024), in any case;
/// rounded down to whole bytes. None for anything else, negative or beyond `u64`.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let multiplier: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = (number * multiplier).floor();
    // `u64::MAX as f64` rounds up to 2^64, which does not fit: refuse it.
    (bytes.is_finite() && bytes >= 0.0 && bytes < u64::MAX as f64).then_some(bytes as u64)
}

/// What the ranking needs of one node, taken from the live table under its lock.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub node: String,
    pub labels: Labels,
    pub status: Status,
    pub cores: Option<u32>,
    /// CPU busy % of each slot in the window.
    pub cpu_percent: Vec<f64>,
    /// Total memory, bytes.
    pub mem_total_bytes: Option<u64>,
    /// The lowest memory available in the window, bytes.
    pub mem_available_bytes: Option<u64>,
    /// The newest sample's filesystems.
    pub disks: Vec<DiskVitals>,
    /// The hottest reading in the window, °C.
    pub hottest_celsius: Option<f64>,
    /// The newest sample in the window that showed under-voltage or throttling, ms.
    pub power_trouble_ms: Option<i64>,
}

impl Snapshot {
    /// The figures of `node` over the `window_ms` before `now_ms`.
    pub fn of(node: &LiveNode, status: Status, now_ms: i64, window_ms: i64) -> Self {
        let from_ms = now_ms.saturating_sub(window_ms);
        let points = node.history.points(Some(from_ms), now_ms);
        let newest = node
            .latest()
            .filter(|sample| sample.timestamp_ms >= from_ms);
        let latest = newest.as_ref();
        let info = node.record.info();
        let finite = |v: Option<f64>| v.filter(|v| v.is_finite());
        let cores = latest
            .and_then(|s| s.cpu.as_ref())
            .map(|cpu| cpu.cores)
            .filter(|c| *c > 0)
            .or(Some(info.cpu_cores).filter(|c| *c > 0));
        let mut cpu_percent: Vec<f64> = points
            .iter()
            .filter_map(|p| finite(p.cpu_percent))
            .collect();
        if cpu_percent.is_empty()
            && let Some(cpu) = latest.and_then(|s| s.cpu.as_ref())
        {
            cpu_percent.push(cpu.usage_percent);
        }
        let memory = latest.and_then(|s| s.memory.as_ref());
        let mem_total_bytes = memory
            .map(|m| m.total_bytes)
            .or(Some(info.memory_total_bytes))
            .filter(|t| *t > 0);
        let peak_mem_percent = points
            .iter()
            .filter_map(|p| finite(p.mem_percent))
            .reduce(f64::max);
        let mem_available_bytes = [
            memory.map(|m| m.available_bytes),
            memory.and_then(|m| Some(m.total_bytes.saturating_sub(m.used_bytes_max?))),
            mem_total_bytes
                .zip(peak_mem_percent)
                .map(|(total, percent)| available_at(total, percent)),
        ]
        .into_iter()
        .flatten()
        .min();
        let latest_peak = latest.and_then(|s| {
            s.temperatures
                .iter()
                .map(|t| t.celsius_max.unwrap_or(t.celsius))
                .filter(|c| c.is_finite())
                .reduce(f64::max)
        });
        let hottest_celsius = points
            .iter()
            .filter_map(|p| finite(p.temp_celsius))
            .chain(latest_peak)
            .reduce(f64::max);
        Self {
            node: node.record.name.clone(),
            labels: Labels::clone(&node.record.labels),
            status,
            cores,
            cpu_percent,
            mem_total_bytes,
            mem_available_bytes,
            disks: latest.map(|s| s.disks.clone()).unwrap_or_default(),
            hottest_celsius,
            power_trouble_ms: node.power_trouble_ms.filter(|ms| *ms >= from_ms),
        }
    }
}

/// Bytes available when `used_percent` of `total` is in use.
fn available_at(total: u64, used_percent: f64) -> u64 {
    let share = (1.0 - used_percent / 100.0).clamp(0.0, 1.0);
    // In range: a share of a u64. Rounded, not floored: 1000 × (1 − 0.8) is 199.99… in f64.
    (total as f64 * share).round() as u64
}

/// The `percentile` (0–1) of `values` by nearest rank: the ⌈p·n⌉-th smallest. None when empty.
pub fn percentile(values: &[f64], percentile: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_by(f64::total_cmp);
    // In range: at most the length, a small count.
    let rank = (percentile.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.saturating_sub(1)).copied()
}

/// The answer: the request as understood and every matching node, best first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ranking {
    pub window_seconds: u64,
    pub asked: Request,
    pub nodes: Vec<Placement>,
}

/// One node's place in the ranking.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Placement {
    pub node: String,
    pub status: Status,
    pub fits: bool,
    pub score: Option<f64>,
    pub free_cores: Option<f64>,
    pub mem_available_bytes: Option<u64>,
    pub disk_free_bytes: Option<u64>,
    pub temp_headroom_celsius: Option<f64>,
    /// Each failed criterion, in words; empty when the node fits.
    pub reasons: Vec<String>,
}

/// Ranks the nodes among `snapshots` whose labels match, as the module doc describes.
pub fn rank(snapshots: &[Snapshot], request: &Request) -> Ranking {
    let mut nodes: Vec<Placement> = snapshots
        .iter()
        .filter(|s| {
            request
                .labels
                .iter()
                .all(|(key, value)| s.labels.get(key) == Some(value))
        })
        .map(|s| judge(s, request))
        .collect();
    nodes.sort_by(|a, b| {
        let group = |p: &Placement| match (p.fits, p.status) {
            (true, _) => 0,
            (false, Status::Up) => 1,
            (false, _) => 2,
        };
        group(a)
            .cmp(&group(b))
            .then_with(|| {
                let score = |p: &Placement| p.score.unwrap_or(f64::NEG_INFINITY);
                score(b).total_cmp(&score(a))
            })
            .then_with(|| a.node.cmp(&b.node))
    });
    Ranking {
        window_seconds: request.window_seconds,
        asked: request.clone(),
        nodes,
    }
}

fn judge(node: &Snapshot, request: &Request) -> Placement {
    if node.status != Status::Up {
        return Placement {
            node: node.node.clone(),
            status: node.status,
            fits: false,
            score: None,
            free_cores: None,
            mem_available_bytes: None,
            disk_free_bytes: None,
            temp_headroom_celsius: None,
            reasons: vec!["not up".to_owned()],
        };
    }
    let mut reasons = Vec::new();
    let mut shares: Vec<f64> = Vec::new();

    let busy_p95 = percentile(&node.cpu_percent, CPU_PERCENTILE);
    let free_cores = node
        .cores
        .zip(busy_p95)
        .map(|(cores, busy)| f64::from(cores) * (1.0 - busy.clamp(0.0, 100.0) / 100.0));
    let asked_cpu = request.cpu.unwrap_or(0.0);
    match (node.cores.zip(free_cores), busy_p95) {
        (Some((cores, free)), Some(busy)) => {
            shares.push((free - asked_cpu) / f64::from(cores));
            if free < asked_cpu {
                reasons.push(format!(
                    "cpu: {free:.2} of {cores} cores free at the 95th percentile of busy \
                     ({busy:.1} %), {asked_cpu} asked"
                ));
            }
        }
        _ if request.cpu.is_some() => {
            reasons.push("cpu: no CPU figures in the window".to_owned());
        }
        _ => {}
    }

    let asked_mem = request.mem_bytes.unwrap_or(0);
    match (node.mem_available_bytes, node.mem_total_bytes) {
        (Some(available), Some(total)) => {
            shares.push((available as f64 - asked_mem as f64) / total as f64);
            if available < asked_mem {
                reasons.push(format!(
                    "mem: {available} bytes available at the window's lowest, {asked_mem} asked"
                ));
            }
        }
        _ if request.mem_bytes.is_some() => {
            reasons.push("mem: no memory figures in the window".to_owned());
        }
        _ => {}
    }

    let asked_disk = request.disk_bytes.unwrap_or(0);
    let disk = node.disks.iter().find(|d| d.mount == request.mount);
    let disk_free_bytes = disk.map(|d| {
        d.available_bytes
            .unwrap_or_else(|| d.total_bytes.saturating_sub(d.used_bytes))
    });
    match disk.zip(disk_free_bytes) {
        Some((disk, free)) => {
            let size = disk.used_bytes.saturating_add(free);
            if size > 0 {
                shares.push((free as f64 - asked_disk as f64) / size as f64);
            }
            if free < asked_disk {
                reasons.push(format!(
                    "disk: {free} bytes free on {}, {asked_disk} asked",
                    request.mount
                ));
            }
        }
        None if request.disk_bytes.is_some() => {
            reasons.push(format!("disk: no filesystem mounted at {}", request.mount));
        }
        None => {}
    }

    let temp_headroom = node
        .hottest_celsius
        .map(|hottest| TEMPERATURE_LIMIT_CELSIUS - hottest);
    if let (Some(headroom), Some(hottest)) = (temp_headroom, node.hottest_celsius) {
        shares.push((headroom / TEMPERATURE_FULL_HEADROOM).min(1.0));
        if headroom <= 0.0 {
            reasons.push(format!(
                "temperature: {hottest:.1} °C in the window, at or above \
                 {TEMPERATURE_LIMIT_CELSIUS} °C"
            ));
        }
    }

    if let Some(ms) = node.power_trouble_ms {
        let at = crate::clock::rfc3339(ms).unwrap_or_else(|| format!("{ms} ms"));
        reasons.push(format!(
            "power: under-voltage or throttling in the window (last at {at})"
        ));
    }

    let score = shares
        .into_iter()
        .reduce(f64::min)
        .map(|s| (s * 1000.0).round() / 1000.0);
    Placement {
        node: node.node.clone(),
        status: node.status,
        fits: reasons.is_empty(),
        score,
        free_cores: free_cores.map(|f| (f * 100.0).round() / 100.0),
        mem_available_bytes: node.mem_available_bytes,
        disk_free_bytes,
        temp_headroom_celsius: temp_headroom.map(|h| (h * 10.0).round() / 10.0),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use pivitals_common::{CpuVitals, MemoryVitals, TemperatureVitals, VitalsPayload};

    use super::*;
    use crate::nodes::history::Summary;
    use crate::nodes::packed::Packed;
    use crate::nodes::registry::NodeRecord;
    use crate::nodes::table::Newest;

    const GIB: u64 = 1 << 30;

    /// An idle, cool, up node with 4 cores, 4 GiB of which 3 available, 20 of 32 GB free.
    fn idle(name: &str) -> Snapshot {
        Snapshot {
            node: name.to_owned(),
            labels: Labels::from([("stack".to_owned(), "2".to_owned())]),
            status: Status::Up,
            cores: Some(4),
            cpu_percent: vec![5.0; 6],
            mem_total_bytes: Some(4 * GIB),
            mem_available_bytes: Some(3 * GIB),
            disks: vec![DiskVitals {
                mount: "/".to_owned(),
                total_bytes: 32_000_000_000,
                used_bytes: 12_000_000_000,
                available_bytes: Some(20_000_000_000),
                ..Default::default()
            }],
            hottest_celsius: Some(45.0),
            power_trouble_ms: None,
        }
    }

    fn asking(cpu: f64, mem: u64, disk: u64) -> Request {
        Request {
            cpu: Some(cpu),
            mem_bytes: Some(mem),
            disk_bytes: Some(disk),
            ..Request::default()
        }
    }

    fn one(snapshot: Snapshot, request: &Request) -> Placement {
        let ranking = rank(&[snapshot], request);
        assert_eq!(ranking.nodes.len(), 1);
        ranking.nodes[0].clone()
    }

    #[test]
    fn p95_is_the_nearest_rank() {
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&hundred, 0.95), Some(95.0));
        // Six slots: ⌈5.7⌉ = 6, the busiest.
        assert_eq!(
            percentile(&[1.0, 90.0, 2.0, 3.0, 4.0, 5.0], 0.95),
            Some(90.0)
        );
        // Twenty-one slots, one spike: ⌈19.95⌉ = 20th, not the spike.
        let mut mostly_idle = vec![2.0; 20];
        mostly_idle.push(100.0);
        assert_eq!(percentile(&mostly_idle, 0.95), Some(2.0));
        assert_eq!(percentile(&[], 0.95), None);
        assert_eq!(percentile(&[f64::NAN, 7.0], 0.95), Some(7.0));
    }

    #[test]
    fn an_idle_node_fits_with_its_figures() {
        let placed = one(idle("a"), &asking(1.5, 512 << 20, 2 * GIB));
        assert!(placed.fits, "{placed:?}");
        assert!(placed.reasons.is_empty());
        assert_eq!(placed.free_cores, Some(3.8));
        assert_eq!(placed.mem_available_bytes, Some(3 * GIB));
        assert_eq!(placed.disk_free_bytes, Some(20_000_000_000));
        assert_eq!(placed.temp_headroom_celsius, Some(35.0));
        // Shares: cpu (3.8 − 1.5) / 4 = 0.575, mem (3 − 0.5) / 4 = 0.625,
        // disk (20 − 2.147) / 32 ≈ 0.558, temperature 35 / 40 = 0.875: disk decides.
        assert_eq!(placed.score, Some(0.558));
    }

    #[test]
    fn each_criterion_fails_alone_and_says_why() {
        /// Makes an idle node fail one criterion.
        type Spoil = fn(&mut Snapshot);
        let request = asking(1.0, GIB, GIB);
        let cases: [(&str, Spoil); 8] = [
            ("cpu:", |s| s.cpu_percent = vec![80.0; 20]),
            ("mem:", |s| s.mem_available_bytes = Some(GIB - 1)),
            ("disk:", |s| s.disks[0].available_bytes = Some(GIB / 2)),
            ("disk: no filesystem", |s| s.disks.clear()),
            ("temperature:", |s| s.hottest_celsius = Some(80.0)),
            ("power:", |s| s.power_trouble_ms = Some(1)),
            ("cpu: no CPU", |s| s.cpu_percent.clear()),
            ("mem: no memory", |s| s.mem_total_bytes = None),
        ];
        for (reason, spoil) in cases {
            let mut node = idle("a");
            spoil(&mut node);
            let placed = one(node, &request);
            assert!(!placed.fits, "{reason}");
            assert_eq!(placed.reasons.len(), 1, "{reason}: {:?}", placed.reasons);
            assert!(
                placed.reasons[0].starts_with(reason),
                "{reason}: {:?}",
                placed.reasons
            );
        }
    }

    #[test]
    fn a_spike_shorter_than_a_twentieth_of_the_window_does_not_count_but_steady_load_does() {
        let mut spiky = idle("a");
        spiky.cpu_percent = vec![2.0; 90];
        spiky.cpu_percent.extend([100.0; 4]);
        assert_eq!(one(spiky, &asking(3.0, 0, 0)).free_cores, Some(3.92));
        let mut busy = idle("a");
        busy.cpu_percent = vec![95.0; 90];
        let placed = one(busy, &asking(1.0, 0, 0));
        assert_eq!(placed.free_cores, Some(0.2));
        assert!(!placed.fits);
    }

    #[test]
    fn unreported_figures_fail_only_what_was_asked() {
        let mut bare = idle("a");
        bare.hottest_celsius = None;
        bare.disks.clear();
        let placed = one(bare.clone(), &asking(1.0, GIB, 0).with_no_disk());
        assert!(placed.fits, "{placed:?}");
        assert_eq!(placed.temp_headroom_celsius, None);
        assert_eq!(placed.disk_free_bytes, None);
        bare.cpu_percent.clear();
        bare.mem_total_bytes = None;
        let placed = one(bare, &Request::default());
        assert!(placed.fits);
        assert_eq!(placed.score, None, "nothing to measure");
    }

    impl Request {
        fn with_no_disk(mut self) -> Self {
            self.disk_bytes = None;
            self
        }
    }

    #[test]
    fn fitting_nodes_come_first_best_first_then_misfits_then_nodes_not_up() {
        let mut warm = idle("warm");
        warm.hottest_celsius = Some(70.0); // temperature share 0.25
        let mut busy = idle("busy");
        busy.cpu_percent = vec![97.0; 10];
        let mut hot = idle("hot");
        hot.hottest_celsius = Some(85.0);
        let mut down = idle("down");
        down.status = Status::Down;
        let mut late = idle("late");
        late.status = Status::Late;
        let cool = idle("cool");
        let also_cool = idle("also-cool");
        let ranking = rank(
            &[down, busy, warm, late, hot, cool, also_cool],
            &asking(1.0, 0, 0),
        );
        let order: Vec<&str> = ranking.nodes.iter().map(|p| p.node.as_str()).collect();
        assert_eq!(
            order,
            ["also-cool", "cool", "warm", "hot", "busy", "down", "late"]
        );
        let fits: Vec<bool> = ranking.nodes.iter().map(|p| p.fits).collect();
        assert_eq!(fits, [true, true, true, false, false, false, false]);
        let down = &ranking.nodes[5];
        assert_eq!(down.reasons, ["not up"]);
        assert_eq!((down.score, down.free_cores), (None, None));
        assert!(ranking.nodes[3].score < ranking.nodes[2].score);
        // Misfits by how far short they are: 5 °C too hot (−0.125) before 0.88 cores short
        // of 4 (−0.22).
        assert!(ranking.nodes[4].score < ranking.nodes[3].score);
    }

    #[test]
    fn every_label_must_match_and_others_are_left_out() {
        let mut other_stack = idle("b");
        other_stack
            .labels
            .insert("stack".to_owned(), "3".to_owned());
        let mut worker = idle("c");
        worker.labels.insert("role".to_owned(), "worker".to_owned());
        let nodes = [idle("a"), other_stack, worker];
        let names = |labels: &str| -> Vec<String> {
            let request = Request::parse(&Params {
                labels: Some(labels.to_owned()),
                ..Params::default()
            })
            .unwrap();
            rank(&nodes, &request)
                .nodes
                .into_iter()
                .map(|p| p.node)
                .collect()
        };
        assert_eq!(names("stack=2"), ["a", "c"]);
        assert_eq!(names("stack=2,role=worker"), ["c"]);
        assert_eq!(names("stack=3"), ["b"]);
        assert!(names("stack=9").is_empty());
        assert_eq!(names("").len(), 3);
    }

    #[test]
    fn sizes_in_every_unit() {
        for (text, bytes) in [
            ("512MiB", 512 << 20),
            ("2GiB", 2 << 30),
            ("500MB", 500_000_000),
            ("1.5GiB", 3 << 29),
            ("1024", 1024),
            ("0", 0),
            ("10 kB", 10_000),
            ("7b", 7),
            ("1TiB", 1 << 40),
            ("2gb", 2_000_000_000),
        ] {
            assert_eq!(parse_size(text), Some(bytes), "{text}");
        }
        for bad in [
            "",
            "MiB",
            "-1GiB",
            "1.2.3",
            "5 parsecs",
            "1e3",
            "99999999999TiB",
        ] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn bad_parameters_are_named() {
        let params = |f: fn(&mut Params)| {
            let mut p = Params::default();
            f(&mut p);
            Request::parse(&p).unwrap_err().to_string()
        };
        assert!(params(|p| p.cpu = Some("lots".into())).starts_with("cpu:"));
        assert!(params(|p| p.cpu = Some("-1".into())).starts_with("cpu:"));
        assert!(params(|p| p.mem = Some("1 GiBs".into())).starts_with("mem:"));
        assert!(params(|p| p.disk = Some("x".into())).starts_with("disk:"));
        assert!(params(|p| p.mount = Some("data".into())).starts_with("mount:"));
        assert!(params(|p| p.labels = Some("stack".into())).starts_with("labels:"));
        assert!(params(|p| p.window = Some("2h".into())).starts_with("window:"));
        assert!(params(|p| p.window = Some("0s".into())).starts_with("window:"));
        assert!(params(|p| p.window = Some("soon".into())).starts_with("window:"));
    }

    #[test]
    fn without_parameters_the_defaults_hold() {
        let request = Request::parse(&Params::default()).unwrap();
        assert_eq!(request, Request::default());
        assert_eq!(request.window_seconds, 900);
        assert_eq!(request.mount, "/");
        let full = Request::parse(&Params {
            cpu: Some("1.5".into()),
            mem: Some("512MiB".into()),
            disk: Some("2GiB".into()),
            mount: Some("/data".into()),
            labels: Some("stack=2".into()),
            window: Some("1h".into()),
        })
        .unwrap();
        assert_eq!(full.cpu, Some(1.5));
        assert_eq!(full.mem_bytes, Some(512 << 20));
        assert_eq!(full.disk_bytes, Some(2 << 30));
        assert_eq!(full.window_seconds, 3600);
    }

    const T0: i64 = 1_700_000_000_000;

    fn live_node() -> LiveNode {
        let record = NodeRecord {
            name: "n".to_owned(),
            labels: Default::default(),
            token_hash: None,
            info: Packed::pack(&pivitals_common::NodeInfo {
                cpu_cores: 8,
                memory_total_bytes: 1000,
                ..Default::default()
            })
            .unwrap(),
            interval_seconds: 1,
            registered_at_ms: T0,
            hardware: None,
        };
        LiveNode::new(record)
    }

    fn sample(ts: i64, cpu: f64, used: u64, celsius: f64) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: ts,
            cpu: Some(CpuVitals {
                usage_percent: cpu,
                cores: 4,
                ..Default::default()
            }),
            memory: Some(MemoryVitals {
                total_bytes: 1000,
                available_bytes: 1000 - used,
                used_bytes: used,
                used_bytes_max: Some(used + 50),
                ..Default::default()
            }),
            temperatures: vec![TemperatureVitals {
                sensor: "cpu".to_owned(),
                celsius,
                celsius_max: Some(celsius + 3.0),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn a_snapshot_reads_the_window_of_history_and_the_newest_sample() {
        let mut node = live_node();
        // Ten minutes of one-second samples: busy and full the first five, then idle.
        for i in 0..600 {
            let ts = T0 + i * 1000;
            let (cpu, used, celsius) = if i < 300 {
                (90.0, 800, 70.0)
            } else {
                (10.0, 200, 50.0)
            };
            node.history
                .record(ts, &Summary::of(&sample(ts, cpu, used, celsius)), ts);
        }
        let now = T0 + 600_000;
        node.keep_newest(Newest::of(&sample(now - 1000, 10.0, 200, 50.0)).unwrap());
        node.power_trouble_ms = Some(T0 + 60_000);

        let last_minute = Snapshot::of(&node, Status::Up, now, 60_000);
        assert_eq!(last_minute.cores, Some(4), "the sample's count wins");
        assert!(last_minute.cpu_percent.iter().all(|c| *c == 10.0));
        assert_eq!(
            last_minute.mem_available_bytes,
            Some(750),
            "the sample's peak"
        );
        assert_eq!(last_minute.hottest_celsius, Some(53.0), "the sample's peak");
        assert_eq!(last_minute.power_trouble_ms, None, "before the window");

        let all = Snapshot::of(&node, Status::Up, now, 15 * 60_000);
        assert_eq!(percentile(&all.cpu_percent, 0.95), Some(90.0));
        assert_eq!(all.mem_available_bytes, Some(200), "80 % used at the peak");
        assert_eq!(all.hottest_celsius, Some(70.0));
        assert_eq!(all.power_trouble_ms, Some(T0 + 60_000));

        // A node never seen: the info's counts, no figures.
        let empty = Snapshot::of(&live_node(), Status::Down, now, 60_000);
        assert_eq!(empty.cores, Some(8));
        assert!(empty.cpu_percent.is_empty());
        assert_eq!(empty.mem_available_bytes, None);
    }

    #[test]
    fn the_answer_has_the_documented_fields() {
        let ranking = rank(&[idle("a")], &asking(1.0, 1, 1));
        let json = serde_json::to_value(&ranking).unwrap();
        for key in ["window_seconds", "asked", "nodes"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        for key in [
            "node",
            "status",
            "fits",
            "score",
            "free_cores",
            "mem_available_bytes",
            "disk_free_bytes",
            "temp_headroom_celsius",
            "reasons",
        ] {
            assert!(json["nodes"][0].get(key).is_some(), "{key}");
        }
        assert_eq!(json["asked"]["cpu"], 1.0);
        assert_eq!(json["nodes"][0]["status"], "up");
    }
}
