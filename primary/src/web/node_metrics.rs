//! The whole cluster on one Prometheus endpoint: `GET /metrics/nodes` exposes every registered
//! node's newest accepted sample and the primary's judgement of its liveness, in the text
//! exposition format 0.0.4, so one scrape covers the cluster.
//!
//! **What a scrape shows.** For each node in the live table ([`Nodes`]): `pivitals_node_up`
//! (1 up, 0 late, down or stopped), `pivitals_node_state{state}` (one sample per status, 1 for
//! the node's status now, 0 for the others), the last push and sample times, the node's facts
//! (`pivitals_node_info`), and the vitals of [`LiveNode::latest`], the newest sample the
//! primary accepted (kept in memory whatever the storage does). A late, down or stopped node
//! keeps its last values, with `pivitals_node_up` 0; a deleted node is no longer in the table
//! and vanishes from the next scrape. A node that has not pushed since the primary started has
//! liveness but no vitals. Samples carry no timestamps: Prometheus stamps them with the scrape
//! time (the sample's own time is `pivitals_node_sample_timestamp_seconds`), so a stopped
//! node's series do not go stale behind its `up` 0.
//!
//! **Names.** `pivitals_` prefix, base units in the name (`_bytes`, `_seconds`, `_hertz`,
//! `_celsius`), shares as `_ratio` from 0 to 1 (never percent), counters as the kernel has them
//! (network and disk I/O since boot) are TYPE counter and end in `_total`, and the agent's
//! per-second rates are gauges named `_per_second`. Where node_exporter has the same figure the
//! name and labels follow it (`pivitals_filesystem_avail_bytes{mountpoint, device, fstype}`,
//! `pivitals_network_receive_bytes_total`, `pivitals_disk_read_bytes_total{device}`); the
//! network label is `interface`, as in pivitals' InfluxDB schema (node_exporter calls it
//! `device`).
//!
//! **Labels.** Every sample has `node` and the node's labels (`stack="2"`). Label values are
//! escaped as the format wants (backslash, quote, newline). Label names are made valid
//! (`[A-Za-z_][A-Za-z0-9_]*`, not starting with `__`), and a node label named like one this
//! endpoint sets itself, or like Prometheus' target labels `job` and `instance`, is renamed
//! `label_<name>` so that no sample has a label twice.
//!
//! **Format.** Each family is written once, HELP and TYPE first, its samples together (a
//! family without any sample is left out); NaN and infinities are left out.
//!
//! **Cost.** The route copies what it needs out of the table under the read lock (no `await`
//! while it is held) and renders after releasing it.

use std::fmt::Write;
use std::time::Instant;

use pivitals_common::{Labels, NodeInfo, VitalsPayload};

use crate::nodes::status::Status;
use crate::nodes::table::{LiveNode, Nodes};

/// The content type of the text exposition format 0.0.4.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What one node contributes to a scrape, copied out of the live table.
#[derive(Debug, Clone)]
pub struct NodeSnapshot {
    pub name: String,
    pub labels: Labels,
    pub status: Status,
    /// Wall-clock time of the last accepted push, ms since the epoch.
    pub last_seen_ms: Option<i64>,
    pub interval_seconds: u64,
    pub info: NodeInfo,
    pub latest: Option<VitalsPayload>,
}

impl NodeSnapshot {
    pub fn of(node: &LiveNode, now: Instant, started: Instant) -> Self {
        Self {
            name: node.record.name.clone(),
            labels: Labels::clone(&node.record.labels),
            status: node.status_at(now, started),
            last_seen_ms: node.last_seen_ms,
            interval_seconds: node.record.interval_seconds,
            info: node.record.info(),
            latest: node.latest(),
        }
    }
}

/// Every node of the table, judged at `now`.
pub fn snapshot(nodes: &Nodes, now: Instant, started: Instant) -> Vec<NodeSnapshot> {
    nodes
        .iter()
        .map(|node| NodeSnapshot::of(node, now, started))
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// One metric family as the exposition declares it.
#[derive(Debug)]
struct Def {
    name: &'static str,
    kind: Kind,
    help: &'static str,
}

/// Declares the families, in the order they are written: `Family::X` indexes `DEFS`.
macro_rules! families {
    ($($id:ident: $name:literal $kind:ident $help:literal;)*) => {
        #[derive(Debug, Clone, Copy)]
        enum Family { $($id),* }
        const DEFS: &[Def] = &[$(Def { name: $name, kind: Kind::$kind, help: $help }),*];
    };
}

families! {
    NodeUp: "pivitals_node_up" Gauge
        "1 when the primary judges the node up (pushing on time), 0 when late, down or stopped.";
    NodeState: "pivitals_node_state" Gauge
        "The node's status as the primary judges it: 1 for the status it has (up, late, down, stopped), 0 for the others.";
    NodeLastSeen: "pivitals_node_last_seen_timestamp_seconds" Gauge
        "When the primary last accepted a push of the node (seconds since the epoch); absent before its first push since the primary started.";
    NodeSampleTime: "pivitals_node_sample_timestamp_seconds" Gauge
        "When the node took the sample whose vitals are shown (seconds since the epoch).";
    NodeInterval: "pivitals_node_interval_seconds" Gauge
        "How often the node pushes.";
    Info: "pivitals_node_info" Gauge
        "Facts the node reported, as labels; always 1.";
    CpuUsage: "pivitals_cpu_usage_ratio" Gauge
        "Busy share of all cores (0-1), mean over the node's interval.";
    CpuUsageMin: "pivitals_cpu_usage_min_ratio" Gauge
        "Lowest busy share (0-1) of one fast sample in the interval.";
    CpuUsageMax: "pivitals_cpu_usage_max_ratio" Gauge
        "Highest busy share (0-1) of one fast sample in the interval.";
    CpuFrequency: "pivitals_cpu_frequency_hertz" Gauge
        "CPU frequency averaged over cores, mean over the interval.";
    CpuFrequencyMin: "pivitals_cpu_frequency_min_hertz" Gauge
        "Lowest CPU frequency of one fast sample in the interval.";
    CpuFrequencyMax: "pivitals_cpu_frequency_max_hertz" Gauge
        "Highest CPU frequency of one fast sample in the interval.";
    CpuCores: "pivitals_cpu_cores" Gauge
        "Logical cores.";
    Load1: "pivitals_load1" Gauge
        "1-minute load average, mean over the interval.";
    Load1Min: "pivitals_load1_min" Gauge
        "Lowest 1-minute load of one fast sample in the interval.";
    Load1Max: "pivitals_load1_max" Gauge
        "Highest 1-minute load of one fast sample in the interval.";
    Load5: "pivitals_load5" Gauge
        "5-minute load average.";
    Load15: "pivitals_load15" Gauge
        "15-minute load average.";
    MemTotal: "pivitals_memory_total_bytes" Gauge
        "Total memory.";
    MemAvailable: "pivitals_memory_available_bytes" Gauge
        "Memory available to start new programs without swapping (MemAvailable).";
    MemUsed: "pivitals_memory_used_bytes" Gauge
        "Used memory (total - available), mean over the interval.";
    MemUsedMin: "pivitals_memory_used_min_bytes" Gauge
        "Lowest used memory of one fast sample in the interval.";
    MemUsedMax: "pivitals_memory_used_max_bytes" Gauge
        "Highest used memory of one fast sample in the interval.";
    SwapTotal: "pivitals_swap_total_bytes" Gauge
        "Total swap.";
    SwapUsed: "pivitals_swap_used_bytes" Gauge
        "Used swap.";
    FsSize: "pivitals_filesystem_size_bytes" Gauge
        "Filesystem size (f_blocks x f_frsize).";
    FsUsed: "pivitals_filesystem_used_bytes" Gauge
        "Filesystem space used (size - free, df's Used).";
    FsFree: "pivitals_filesystem_free_bytes" Gauge
        "Filesystem free space, the blocks reserved for root included.";
    FsAvail: "pivitals_filesystem_avail_bytes" Gauge
        "Filesystem space available to unprivileged users (df's Avail).";
    FsUsedRatio: "pivitals_filesystem_used_ratio" Gauge
        "Filesystem use as df shows it (used / (used + avail)), 0-1.";
    FsFiles: "pivitals_filesystem_files" Gauge
        "Filesystem inodes.";
    FsFilesFree: "pivitals_filesystem_files_free" Gauge
        "Filesystem free inodes.";
    NetRxBytes: "pivitals_network_receive_bytes_total" Counter
        "Bytes received by the interface since boot (/proc/net/dev).";
    NetTxBytes: "pivitals_network_transmit_bytes_total" Counter
        "Bytes sent by the interface since boot.";
    NetRxPackets: "pivitals_network_receive_packets_total" Counter
        "Packets received since boot.";
    NetTxPackets: "pivitals_network_transmit_packets_total" Counter
        "Packets sent since boot.";
    NetRxErrs: "pivitals_network_receive_errs_total" Counter
        "Receive errors since boot.";
    NetTxErrs: "pivitals_network_transmit_errs_total" Counter
        "Transmit errors since boot.";
    NetRxDrop: "pivitals_network_receive_drop_total" Counter
        "Received packets dropped since boot.";
    NetTxDrop: "pivitals_network_transmit_drop_total" Counter
        "Packets to send dropped since boot.";
    NetRxBytesRate: "pivitals_network_receive_bytes_per_second" Gauge
        "Bytes received per second over the node's last interval (the agent's rate).";
    NetTxBytesRate: "pivitals_network_transmit_bytes_per_second" Gauge
        "Bytes sent per second over the node's last interval.";
    NetRxPacketsRate: "pivitals_network_receive_packets_per_second" Gauge
        "Packets received per second over the last interval.";
    NetTxPacketsRate: "pivitals_network_transmit_packets_per_second" Gauge
        "Packets sent per second over the last interval.";
    NetRxErrsRate: "pivitals_network_receive_errs_per_second" Gauge
        "Receive errors per second over the last interval.";
    NetTxErrsRate: "pivitals_network_transmit_errs_per_second" Gauge
        "Transmit errors per second over the last interval.";
    NetRxDropRate: "pivitals_network_receive_drop_per_second" Gauge
        "Received packets dropped per second over the last interval.";
    NetTxDropRate: "pivitals_network_transmit_drop_per_second" Gauge
        "Packets to send dropped per second over the last interval.";
    DiskReads: "pivitals_disk_reads_completed_total" Counter
        "Reads completed by the block device since boot (/proc/diskstats).";
    DiskWrites: "pivitals_disk_writes_completed_total" Counter
        "Writes completed since boot.";
    DiskReadBytes: "pivitals_disk_read_bytes_total" Counter
        "Bytes read since boot.";
    DiskWrittenBytes: "pivitals_disk_written_bytes_total" Counter
        "Bytes written since boot.";
    DiskIoTime: "pivitals_disk_io_time_seconds_total" Counter
        "Time the device was busy since boot.";
    DiskReadsRate: "pivitals_disk_reads_per_second" Gauge
        "Reads completed per second over the node's last interval.";
    DiskWritesRate: "pivitals_disk_writes_per_second" Gauge
        "Writes completed per second over the last interval.";
    DiskReadBytesRate: "pivitals_disk_read_bytes_per_second" Gauge
        "Bytes read per second over the last interval.";
    DiskWrittenBytesRate: "pivitals_disk_written_bytes_per_second" Gauge
        "Bytes written per second over the last interval.";
    DiskBusy: "pivitals_disk_busy_ratio" Gauge
        "Share of the last interval the device was busy, 0-1.";
    Temperature: "pivitals_temperature_celsius" Gauge
        "Sensor temperature, mean over the interval.";
    TemperatureMin: "pivitals_temperature_min_celsius" Gauge
        "Lowest reading of one fast sample in the interval.";
    TemperatureMax: "pivitals_temperature_max_celsius" Gauge
        "Highest reading of one fast sample in the interval.";
    Uptime: "pivitals_uptime_seconds" Gauge
        "Time since the node booted.";
    Processes: "pivitals_processes" Gauge
        "Processes running on the node.";
    PiThrottled: "pivitals_pi_throttled" Gauge
        "Raspberry Pi firmware state (get_throttled): 1 when the condition holds now or has occurred since boot, by condition.";
    PiUnderVoltageSeconds: "pivitals_pi_under_voltage_seconds" Gauge
        "Seconds of the node's last interval in which under-voltage was seen.";
    PiUnderVoltageEvents: "pivitals_pi_under_voltage_events" Gauge
        "Times under-voltage began during the node's last interval.";
    FanSpeed: "pivitals_fan_speed_rpm" Gauge
        "Fan speed (hwmon fan1_input).";
    FanPwm: "pivitals_fan_pwm" Gauge
        "Fan drive (hwmon pwm1), 0-255.";
    EmmcLifeTime: "pivitals_storage_emmc_life_time_estimate" Gauge
        "eMMC life time estimate by type (a, b): 1 means 0-10 % of the rated life used, 10 means 90-100 %, 11 past it.";
    EmmcPreEol: "pivitals_storage_emmc_pre_eol" Gauge
        "eMMC pre-EOL information: 1 normal, 2 warning, 3 urgent.";
    NvmeUsed: "pivitals_storage_nvme_used_ratio" Gauge
        "NVMe share of rated life used (may pass 1).";
    NvmeSpare: "pivitals_storage_nvme_available_spare_ratio" Gauge
        "NVMe spare capacity left, 0-1.";
    NvmeMediaErrors: "pivitals_storage_nvme_media_errors_total" Counter
        "NVMe media and data integrity errors over the device's life.";
}

/// Label names this endpoint sets itself, and Prometheus' target labels: a node label with
/// one of these names is written as `label_<name>`.
const RESERVED_LABELS: &[&str] = &[
    "node",
    "state",
    "mountpoint",
    "device",
    "fstype",
    "interface",
    "sensor",
    "condition",
    "type",
    "hostname",
    "os",
    "os_version",
    "kernel",
    "arch",
    "board_model",
    "agent_version",
    "job",
    "instance",
];

/// A number as the text format writes it.
trait Number: Copy {
    /// False for NaN and infinities, which the schema never has and which are left out.
    fn is_finite(self) -> bool;
    fn write_to(self, out: &mut String);
}

impl Number for u64 {
    fn is_finite(self) -> bool {
        true
    }
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Number for f64 {
    fn is_finite(self) -> bool {
        f64::is_finite(self)
    }
    fn write_to(self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

/// The families being written: one text buffer each, joined in declaration order at the end.
struct Exposition {
    bodies: Vec<String>,
}

impl Exposition {
    fn new() -> Self {
        Self {
            bodies: vec![String::new(); DEFS.len()],
        }
    }

    /// Adds one sample of `family` with the node's label text (`node="a",stack="2"`) and
    /// `extra` labels; a value that is not finite is left out.
    fn add<N: Number>(&mut self, family: Family, node: &str, extra: &[(&str, &str)], value: N) {
        if !value.is_finite() {
            return;
        }
        let out = &mut self.bodies[family as usize];
        out.push_str(DEFS[family as usize].name);
        out.push('{');
        out.push_str(node);
        for (name, value) in extra {
            out.push(',');
            out.push_str(name);
            out.push_str("=\"");
            escape_label_value_into(out, value);
            out.push('"');
        }
        out.push_str("} ");
        value.write_to(out);
        out.push('\n');
    }

    fn add_opt<N: Number>(
        &mut self,
        family: Family,
        node: &str,
        extra: &[(&str, &str)],
        v: Option<N>,
    ) {
        if let Some(value) = v {
            self.add(family, node, extra, value);
        }
    }

    fn finish(self) -> String {
        let size = self.bodies.iter().map(String::len).sum::<usize>() + 200 * DEFS.len();
        let mut out = String::with_capacity(size);
        for (def, body) in DEFS.iter().zip(self.bodies) {
            if body.is_empty() {
                continue;
            }
            let _ = writeln!(out, "# HELP {} {}", def.name, escape_help(def.help));
            let _ = writeln!(out, "# TYPE {} {}", def.name, def.kind.as_str());
            out.push_str(&body);
        }
        out
    }
}

/// The exposition of every node in `nodes`.
pub fn render(nodes: &[NodeSnapshot]) -> String {
    let mut exposition = Exposition::new();
    for node in nodes {
        render_node(&mut exposition, node);
    }
    exposition.finish()
}

fn render_node(x: &mut Exposition, node: &NodeSnapshot) {
    let labels = node_label_text(&node.name, &node.labels);
    let l = labels.as_str();
    x.add(Family::NodeUp, l, &[], u64::from(node.status == Status::Up));
    for status in Status::ALL {
        let value = u64::from(node.status == status);
        x.add(Family::NodeState, l, &[("state", status.as_str())], value);
    }
    let seconds = |ms: i64| ms as f64 / 1000.0;
    x.add_opt(Family::NodeLastSeen, l, &[], node.last_seen_ms.map(seconds));
    x.add(Family::NodeInterval, l, &[], node.interval_seconds);
    let info = &node.info;
    x.add(
        Family::Info,
        l,
        &[
            ("hostname", &info.hostname),
            ("os", &info.os),
            ("os_version", &info.os_version),
            ("kernel", &info.kernel),
            ("arch", &info.arch),
            ("board_model", info.board_model.as_deref().unwrap_or("")),
            ("agent_version", &info.agent_version),
        ],
        1u64,
    );
    if let Some(sample) = &node.latest {
        x.add(Family::NodeSampleTime, l, &[], seconds(sample.timestamp_ms));
        render_vitals(x, l, sample);
    }
}

fn render_vitals(x: &mut Exposition, l: &str, s: &VitalsPayload) {
    let ratio = |percent: f64| percent / 100.0;
    let hertz = |mhz: u64| mhz.saturating_mul(1_000_000);
    if let Some(cpu) = &s.cpu {
        x.add(Family::CpuUsage, l, &[], ratio(cpu.usage_percent));
        x.add_opt(
            Family::CpuUsageMin,
            l,
            &[],
            cpu.usage_percent_min.map(ratio),
        );
        x.add_opt(
            Family::CpuUsageMax,
            l,
            &[],
            cpu.usage_percent_max.map(ratio),
        );
        x.add_opt(Family::CpuFrequency, l, &[], cpu.frequency_mhz.map(hertz));
        x.add_opt(
            Family::CpuFrequencyMin,
            l,
            &[],
            cpu.frequency_mhz_min.map(hertz),
        );
        x.add_opt(
            Family::CpuFrequencyMax,
            l,
            &[],
            cpu.frequency_mhz_max.map(hertz),
        );
        x.add(Family::CpuCores, l, &[], u64::from(cpu.cores));
    }
    if let Some(load) = &s.load {
        x.add(Family::Load1, l, &[], load.one);
        x.add_opt(Family::Load1Min, l, &[], load.one_min);
        x.add_opt(Family::Load1Max, l, &[], load.one_max);
        x.add(Family::Load5, l, &[], load.five);
        x.add(Family::Load15, l, &[], load.fifteen);
    }
    if let Some(mem) = &s.memory {
        x.add(Family::MemTotal, l, &[], mem.total_bytes);
        x.add(Family::MemAvailable, l, &[], mem.available_bytes);
        x.add(Family::MemUsed, l, &[], mem.used_bytes);
        x.add_opt(Family::MemUsedMin, l, &[], mem.used_bytes_min);
        x.add_opt(Family::MemUsedMax, l, &[], mem.used_bytes_max);
    }
    if let Some(swap) = &s.swap {
        x.add(Family::SwapTotal, l, &[], swap.total_bytes);
        x.add(Family::SwapUsed, l, &[], swap.used_bytes);
    }
    for disk in &s.disks {
        let fs = [
            ("mountpoint", disk.mount.as_str()),
            ("device", disk.device.as_str()),
            ("fstype", disk.fs_type.as_str()),
        ];
        x.add(Family::FsSize, l, &fs, disk.total_bytes);
        x.add(Family::FsUsed, l, &fs, disk.used_bytes);
        x.add_opt(Family::FsFree, l, &fs, disk.free_bytes);
        x.add_opt(Family::FsAvail, l, &fs, disk.available_bytes);
        x.add_opt(Family::FsUsedRatio, l, &fs, disk.used_percent().map(ratio));
        x.add_opt(Family::FsFiles, l, &fs, disk.inodes_total);
        x.add_opt(Family::FsFilesFree, l, &fs, disk.inodes_free);
    }
    for net in &s.networks {
        let i = [("interface", net.interface.as_str())];
        x.add(Family::NetRxBytes, l, &i, net.rx_bytes);
        x.add(Family::NetTxBytes, l, &i, net.tx_bytes);
        x.add(Family::NetRxPackets, l, &i, net.rx_packets);
        x.add(Family::NetTxPackets, l, &i, net.tx_packets);
        x.add(Family::NetRxErrs, l, &i, net.rx_errors);
        x.add(Family::NetTxErrs, l, &i, net.tx_errors);
        x.add(Family::NetRxDrop, l, &i, net.rx_dropped);
        x.add(Family::NetTxDrop, l, &i, net.tx_dropped);
        if let Some(r) = &net.rates {
            x.add(Family::NetRxBytesRate, l, &i, r.rx_bytes_per_second);
            x.add(Family::NetTxBytesRate, l, &i, r.tx_bytes_per_second);
            x.add(Family::NetRxPacketsRate, l, &i, r.rx_packets_per_second);
            x.add(Family::NetTxPacketsRate, l, &i, r.tx_packets_per_second);
            x.add(Family::NetRxErrsRate, l, &i, r.rx_errors_per_second);
            x.add(Family::NetTxErrsRate, l, &i, r.tx_errors_per_second);
            x.add(Family::NetRxDropRate, l, &i, r.rx_dropped_per_second);
            x.add(Family::NetTxDropRate, l, &i, r.tx_dropped_per_second);
        }
    }
    for io in &s.disk_io {
        let d = [("device", io.device.as_str())];
        x.add(Family::DiskReads, l, &d, io.reads);
        x.add(Family::DiskWrites, l, &d, io.writes);
        x.add(Family::DiskReadBytes, l, &d, io.read_bytes);
        x.add(Family::DiskWrittenBytes, l, &d, io.written_bytes);
        x.add(Family::DiskIoTime, l, &d, io.io_time_ms as f64 / 1000.0);
        if let Some(r) = &io.rates {
            x.add(Family::DiskReadsRate, l, &d, r.reads_per_second);
            x.add(Family::DiskWritesRate, l, &d, r.writes_per_second);
            x.add(Family::DiskReadBytesRate, l, &d, r.read_bytes_per_second);
            x.add(
                Family::DiskWrittenBytesRate,
                l,
                &d,
                r.write_bytes_per_second,
            );
            x.add(Family::DiskBusy, l, &d, ratio(r.busy_percent));
        }
    }
    for t in &s.temperatures {
        let sensor = [("sensor", t.sensor.as_str())];
        x.add(Family::Temperature, l, &sensor, t.celsius);
        x.add_opt(Family::TemperatureMin, l, &sensor, t.celsius_min);
        x.add_opt(Family::TemperatureMax, l, &sensor, t.celsius_max);
    }
    x.add_opt(Family::Uptime, l, &[], s.uptime_seconds);
    x.add_opt(Family::Processes, l, &[], s.process_count);
    if let Some(t) = s.throttling {
        for (condition, holds) in [
            ("under_voltage_now", t.under_voltage_now()),
            ("frequency_capped_now", t.frequency_capped_now()),
            ("throttled_now", t.throttled_now()),
            ("soft_temperature_limit_now", t.soft_temperature_limit_now()),
            ("under_voltage_since_boot", t.under_voltage_occurred()),
            ("frequency_capped_since_boot", t.frequency_capped_occurred()),
            ("throttled_since_boot", t.throttled_occurred()),
            (
                "soft_temperature_limit_since_boot",
                t.soft_temperature_limit_occurred(),
            ),
        ] {
            let c = [("condition", condition)];
            x.add(Family::PiThrottled, l, &c, u64::from(holds));
        }
    }
    if let Some(power) = &s.power {
        x.add_opt(
            Family::PiUnderVoltageSeconds,
            l,
            &[],
            power.under_voltage_seconds,
        );
        x.add_opt(
            Family::PiUnderVoltageEvents,
            l,
            &[],
            power.under_voltage_events,
        );
        x.add_opt(Family::FanSpeed, l, &[], power.fan_rpm);
        x.add_opt(Family::FanPwm, l, &[], power.fan_pwm);
    }
    for h in &s.storage_health {
        let d = [("device", h.device.as_str())];
        let a = [("device", h.device.as_str()), ("type", "a")];
        let b = [("device", h.device.as_str()), ("type", "b")];
        x.add_opt(Family::EmmcLifeTime, l, &a, h.emmc_life_time_a);
        x.add_opt(Family::EmmcLifeTime, l, &b, h.emmc_life_time_b);
        x.add_opt(Family::EmmcPreEol, l, &d, h.emmc_pre_eol);
        let share = |percent: u64| percent as f64 / 100.0;
        x.add_opt(Family::NvmeUsed, l, &d, h.nvme_percentage_used.map(share));
        x.add_opt(Family::NvmeSpare, l, &d, h.nvme_available_spare.map(share));
        x.add_opt(Family::NvmeMediaErrors, l, &d, h.nvme_media_errors);
    }
}

/// `node="NAME"` and the node's labels, names made valid and values escaped: the label text
/// every sample of the node starts with.
fn node_label_text(name: &str, labels: &Labels) -> String {
    let mut out = String::with_capacity(16 + name.len() + labels.len() * 24);
    out.push_str("node=\"");
    escape_label_value_into(&mut out, name);
    out.push('"');
    let mut written: Vec<String> = Vec::with_capacity(labels.len());
    for (key, value) in labels {
        let key = label_name(key);
        // Two keys that became one name: the first (in key order) is kept.
        if written.contains(&key) {
            continue;
        }
        out.push(',');
        out.push_str(&key);
        out.push_str("=\"");
        escape_label_value_into(&mut out, value);
        out.push('"');
        written.push(key);
    }
    out
}

/// A node label's key as a Prometheus label name that clashes with none this endpoint sets.
fn label_name(key: &str) -> String {
    let mut name: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert(0, '_');
    }
    if name.starts_with("__") || RESERVED_LABELS.contains(&name.as_str()) {
        name.insert_str(0, "label_");
    }
    name
}

/// Escapes a label value as the text format wants: backslash, double quote and line feed.
fn escape_label_value_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Escapes a HELP text: backslash and line feed.
fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashSet};

    use pivitals_common::{
        CpuVitals, DiskIoRates, DiskIoVitals, DiskVitals, MemoryVitals, NetRates, NetVitals,
        PowerVitals, StorageHealthVitals, TemperatureVitals, Throttling,
    };

    use super::*;

    fn node(name: &str, status: Status, labels: &[(&str, &str)]) -> NodeSnapshot {
        NodeSnapshot {
            name: name.to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            status,
            last_seen_ms: Some(1_700_000_000_500),
            interval_seconds: 10,
            info: NodeInfo {
                hostname: "pi-1".into(),
                os: "Debian \"bookworm\"".into(),
                ..NodeInfo::default()
            },
            latest: Some(full_sample()),
        }
    }

    /// A sample with every family, so every family appears.
    fn full_sample() -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: 1_700_000_000_000,
            cpu: Some(CpuVitals {
                usage_percent: 25.0,
                usage_percent_min: Some(5.0),
                usage_percent_max: Some(90.0),
                frequency_mhz: Some(1500),
                frequency_mhz_min: Some(600),
                frequency_mhz_max: Some(1800),
                cores: 4,
            }),
            load: Some(pivitals_common::LoadAverage {
                one: 0.5,
                five: 0.25,
                fifteen: 0.125,
                one_min: Some(0.1),
                one_max: Some(1.0),
            }),
            memory: Some(MemoryVitals {
                total_bytes: 8_000_000_000,
                available_bytes: 6_000_000_000,
                used_bytes: 2_000_000_000,
                used_bytes_min: Some(1_900_000_000),
                used_bytes_max: Some(2_100_000_000),
            }),
            swap: Some(pivitals_common::SwapVitals {
                total_bytes: 100,
                used_bytes: 0,
            }),
            disks: vec![DiskVitals {
                mount: "/mnt/usb disk".into(),
                device: "/dev/sda1".into(),
                fs_type: "ext4".into(),
                total_bytes: 1000,
                used_bytes: 500,
                free_bytes: Some(500),
                available_bytes: Some(450),
                inodes_total: Some(100),
                inodes_free: Some(90),
            }],
            networks: vec![NetVitals {
                interface: "eth0".into(),
                rx_bytes: 10,
                tx_bytes: 20,
                rates: Some(NetRates {
                    rx_bytes_per_second: 1.5,
                    ..NetRates::default()
                }),
                ..NetVitals::default()
            }],
            temperatures: vec![TemperatureVitals {
                sensor: "cpu-thermal".into(),
                celsius: 48.5,
                celsius_min: Some(47.0),
                celsius_max: Some(50.0),
            }],
            uptime_seconds: Some(3600),
            process_count: Some(120),
            throttling: Some(Throttling { raw: 0x50005 }),
            disk_io: vec![DiskIoVitals {
                device: "mmcblk0".into(),
                io_time_ms: 1500,
                rates: Some(DiskIoRates {
                    busy_percent: 50.0,
                    ..DiskIoRates::default()
                }),
                ..DiskIoVitals::default()
            }],
            power: Some(PowerVitals {
                under_voltage_seconds: Some(3),
                under_voltage_events: Some(1),
                fan_rpm: Some(2000),
                fan_pwm: Some(128),
                ..PowerVitals::default()
            }),
            storage_health: vec![StorageHealthVitals {
                device: "mmcblk0".into(),
                emmc_life_time_a: Some(2),
                emmc_life_time_b: Some(1),
                emmc_pre_eol: Some(1),
                nvme_percentage_used: Some(3),
                nvme_available_spare: Some(100),
                nvme_media_errors: Some(0),
            }],
        }
    }

    /// The metric name of a sample line.
    fn sample_name(line: &str) -> &str {
        line.split(['{', ' ']).next().unwrap()
    }

    #[test]
    fn every_family_is_declared_once_with_its_samples_together() {
        let nodes = [
            node("a", Status::Up, &[("stack", "1")]),
            node("b", Status::Stopped, &[("stack", "2")]),
        ];
        let text = render(&nodes);
        let mut typed = HashSet::new();
        let mut helped = HashSet::new();
        let mut current: Option<(String, String)> = None;
        let mut seen_samples = HashSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                let name = rest.split(' ').next().unwrap();
                assert!(helped.insert(name.to_owned()), "HELP twice: {name}");
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(typed.insert(name.to_owned()), "TYPE twice: {name}");
                assert!(helped.contains(name), "TYPE before HELP: {name}");
                current = Some((name.to_owned(), kind.to_owned()));
            } else {
                let (family, kind) = current.as_ref().expect("a sample before any TYPE");
                assert_eq!(sample_name(line), family, "sample outside its family");
                assert!(
                    seen_samples.insert(line.rsplit_once(' ').unwrap().0.to_owned()),
                    "duplicate series: {line}"
                );
                let counter = family.ends_with("_total");
                assert_eq!(counter, kind == "counter", "{family} is {kind}");
            }
        }
        // The full sample fills every family.
        let declared: BTreeSet<&str> = DEFS.iter().map(|d| d.name).collect();
        let written: BTreeSet<&str> = typed.iter().map(String::as_str).collect();
        assert_eq!(declared, written);
    }

    #[test]
    fn names_follow_prometheus_conventions() {
        let units = [
            "_bytes",
            "_seconds",
            "_hertz",
            "_celsius",
            "_ratio",
            "_per_second",
        ];
        for def in DEFS {
            let name = def.name;
            assert!(name.starts_with("pivitals_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(!name.contains("percent"), "{name}: shares are ratios");
            assert!(
                !(name.contains("_bytes") || name.contains("_seconds"))
                    || units.iter().any(|u| name.ends_with(u))
                    || name.ends_with("_total"),
                "{name}: the unit goes last"
            );
            assert_eq!(
                def.kind == Kind::Counter,
                name.ends_with("_total"),
                "{name}"
            );
        }
    }

    #[test]
    fn label_values_and_names_are_escaped_and_made_valid() {
        let mut n = node(
            "a",
            Status::Late,
            &[
                ("stack", "x\\y\"z\nw"),
                ("state", "mine"),
                ("job", "j"),
                ("9lives", "cat"),
                ("a-b", "1"),
                ("a_b", "2"),
            ],
        );
        n.latest = None;
        let text = render(&[n]);
        let up = text
            .lines()
            .find(|l| l.starts_with("pivitals_node_up{"))
            .unwrap();
        assert_eq!(
            up,
            "pivitals_node_up{node=\"a\",_9lives=\"cat\",a_b=\"1\",label_job=\"j\",\
             stack=\"x\\\\y\\\"z\\nw\",label_state=\"mine\"} 0"
        );
        assert!(text.contains("os=\"Debian \\\"bookworm\\\"\""), "{text}");
        assert!(text.contains(",state=\"late\"} 1"), "{text}");
        assert!(text.contains(",state=\"up\"} 0"), "{text}");
        assert!(
            !text.contains("pivitals_cpu_usage_ratio"),
            "no vitals without a sample"
        );
    }

    #[test]
    fn values_are_in_base_units_and_non_finite_ones_are_left_out() {
        let mut n = node("a", Status::Up, &[]);
        if let Some(sample) = n.latest.as_mut() {
            sample.temperatures[0].celsius_max = Some(f64::NAN);
            sample.temperatures[0].celsius_min = Some(f64::INFINITY);
        }
        let text = render(&[n]);
        for line in [
            "pivitals_node_up{node=\"a\"} 1",
            "pivitals_node_last_seen_timestamp_seconds{node=\"a\"} 1700000000.5",
            "pivitals_node_sample_timestamp_seconds{node=\"a\"} 1700000000",
            "pivitals_cpu_usage_ratio{node=\"a\"} 0.25",
            "pivitals_cpu_frequency_hertz{node=\"a\"} 1500000000",
            "pivitals_memory_used_bytes{node=\"a\"} 2000000000",
            "pivitals_filesystem_avail_bytes{node=\"a\",mountpoint=\"/mnt/usb disk\",device=\"/dev/sda1\",fstype=\"ext4\"} 450",
            "pivitals_filesystem_used_ratio{node=\"a\",mountpoint=\"/mnt/usb disk\",device=\"/dev/sda1\",fstype=\"ext4\"} 0.53",
            "pivitals_network_receive_bytes_total{node=\"a\",interface=\"eth0\"} 10",
            "pivitals_network_receive_bytes_per_second{node=\"a\",interface=\"eth0\"} 1.5",
            "pivitals_disk_io_time_seconds_total{node=\"a\",device=\"mmcblk0\"} 1.5",
            "pivitals_disk_busy_ratio{node=\"a\",device=\"mmcblk0\"} 0.5",
            "pivitals_temperature_celsius{node=\"a\",sensor=\"cpu-thermal\"} 48.5",
            "pivitals_pi_throttled{node=\"a\",condition=\"under_voltage_now\"} 1",
            "pivitals_pi_throttled{node=\"a\",condition=\"frequency_capped_now\"} 0",
            "pivitals_storage_emmc_life_time_estimate{node=\"a\",device=\"mmcblk0\",type=\"b\"} 1",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        assert!(!text.contains("pivitals_temperature_max_celsius{"), "NaN");
        assert!(
            !text.contains("pivitals_temperature_min_celsius{"),
            "infinity"
        );
        assert!(
            text.lines()
                .all(|l| !l.ends_with("NaN") && !l.ends_with("inf")),
            "{text}"
        );
    }

    /// `a_{b,c}_d` as `a_b_d`, `a_c_d` (every brace group, left to right).
    fn expand(name: &str) -> Vec<String> {
        let Some((head, rest)) = name.split_once('{') else {
            return vec![name.to_owned()];
        };
        let (choices, tail) = rest.split_once('}').unwrap();
        choices
            .split(',')
            .flat_map(|choice| expand(&format!("{head}{choice}{tail}")))
            .collect()
    }

    #[test]
    fn the_readme_lists_every_family_with_its_type() {
        let readme =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
        let section = readme
            .split("\n### Prometheus\n")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("README has a Prometheus section");
        let mut documented = BTreeSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `pivitals_")) {
            let cells: Vec<&str> = row.split('|').map(str::trim).collect();
            let (names, kind) = (cells[1], cells[2]);
            for name in names.split(", ") {
                for name in expand(name.trim_matches('`')) {
                    let def = DEFS.iter().find(|d| d.name == name);
                    let def = def.unwrap_or_else(|| panic!("README lists {name}, not written"));
                    assert_eq!(def.kind.as_str(), kind, "{name}");
                    documented.insert(def.name);
                }
            }
        }
        let written: BTreeSet<&str> = DEFS.iter().map(|d| d.name).collect();
        assert_eq!(documented, written, "README's Prometheus table");
    }

    #[test]
    fn no_nodes_no_families() {
        assert_eq!(render(&[]), "");
    }
}
