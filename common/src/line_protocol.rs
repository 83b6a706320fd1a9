//! Encoding a node's sample as InfluxDB line protocol: samples are written straight into the
//! output (the hot path of every push), the rarer points with the `influxdb-line-protocol`
//! crate's builder, whose output the sample encoder matches byte for byte.
//!
//! Rules the encoder keeps, whatever the input:
//! - every point carries the tag `node` and the node's labels; tags are sorted by key;
//! - each field has one type forever ([`SCHEMA`]): integers stay integers, floats stay floats,
//!   so InfluxDB never answers "field type conflict";
//! - NaN and ±infinity are left out; a line left with no field is not written;
//! - free-form tag values from the host (mount points, sensor and interface names) have control
//!   characters replaced by `_` (a newline would split the line and inject a point) and are cut
//!   to [`MAX_TAG_VALUE_LEN`] bytes; a trailing backslash becomes `_` too (line protocol
//!   cannot end a tag value with one, even escaped: the line would not parse); an empty one
//!   leaves the tag out;
//! - timestamps are nanoseconds since the epoch.
//!
//! What a sample's points hold is decided in one place, [`visit_points`]: the encoder writes
//! exactly the points it visits, and the alert rules read samples through it, so a rule sees
//! the values InfluxDB gets.
//!
//! Besides the samples ([`encode_sample`]), the primary records every change of a node's
//! status as one `node_status` point ([`encode_status`]) and every transition of an alert as
//! one `alert` point ([`encode_alert`]), and every target of an action that became final as
//! one `action` point ([`encode_action`]).

use std::borrow::Cow;

use influxdb_line_protocol::LineProtocolBuilder;
use influxdb_line_protocol::builder::AfterMeasurement;
use thiserror::Error;

use crate::vitals::{Labels, VitalsPayload};

pub const MAX_TAG_VALUE_LEN: usize = 256;

/// The type a field is written with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldType {
    Float,
    Integer,
    String,
}

/// One measurement as pivitals writes it.
#[derive(Debug, Clone, Copy)]
pub struct MeasurementSchema {
    pub name: &'static str,
    /// Tags besides `node` and the node's labels.
    pub tags: &'static [&'static str],
    pub fields: &'static [(&'static str, FieldType)],
}

use FieldType::{Float, Integer, String as Text};

/// Every measurement, tag and field pivitals writes. README's schema table mirrors it, and a
/// test checks that the encoder writes nothing outside it.
pub const SCHEMA: &[MeasurementSchema] = &[
    MeasurementSchema {
        name: "cpu",
        tags: &[],
        fields: &[
            ("usage_percent", Float),
            ("usage_percent_min", Float),
            ("usage_percent_max", Float),
            ("frequency_mhz", Integer),
            ("frequency_mhz_min", Integer),
            ("frequency_mhz_max", Integer),
            ("cores", Integer),
        ],
    },
    MeasurementSchema {
        name: "mem",
        tags: &[],
        fields: &[
            ("total_bytes", Integer),
            ("available_bytes", Integer),
            ("used_bytes", Integer),
            ("used_bytes_min", Integer),
            ("used_bytes_max", Integer),
            ("used_percent", Float),
            ("used_percent_min", Float),
            ("used_percent_max", Float),
        ],
    },
    MeasurementSchema {
        name: "swap",
        tags: &[],
        fields: &[
            ("total_bytes", Integer),
            ("used_bytes", Integer),
            ("used_percent", Float),
        ],
    },
    MeasurementSchema {
        name: "disk",
        tags: &["mount", "device", "fstype"],
        fields: &[
            ("total_bytes", Integer),
            ("used_bytes", Integer),
            ("free_bytes", Integer),
            ("available_bytes", Integer),
            ("used_percent", Float),
            ("inodes_total", Integer),
            ("inodes_used", Integer),
            ("inodes_free", Integer),
            ("inodes_used_percent", Float),
        ],
    },
    MeasurementSchema {
        name: "diskio",
        tags: &["device"],
        fields: &[
            ("reads", Integer),
            ("writes", Integer),
            ("read_bytes", Integer),
            ("written_bytes", Integer),
            ("io_time_ms", Integer),
            ("reads_per_second", Float),
            ("writes_per_second", Float),
            ("read_bytes_per_second", Float),
            ("write_bytes_per_second", Float),
            ("busy_percent", Float),
        ],
    },
    MeasurementSchema {
        name: "net",
        tags: &["interface"],
        fields: &[
            ("rx_bytes", Integer),
            ("tx_bytes", Integer),
            ("rx_errors", Integer),
            ("tx_errors", Integer),
            ("rx_packets", Integer),
            ("tx_packets", Integer),
            ("rx_dropped", Integer),
            ("tx_dropped", Integer),
            ("rx_bytes_per_second", Float),
            ("tx_bytes_per_second", Float),
            ("rx_packets_per_second", Float),
            ("tx_packets_per_second", Float),
            ("rx_errors_per_second", Float),
            ("tx_errors_per_second", Float),
            ("rx_dropped_per_second", Float),
            ("tx_dropped_per_second", Float),
        ],
    },
    MeasurementSchema {
        name: "temperature",
        tags: &["sensor"],
        fields: &[
            ("celsius", Float),
            ("celsius_min", Float),
            ("celsius_max", Float),
        ],
    },
    MeasurementSchema {
        name: "system",
        tags: &[],
        fields: &[
            ("load1", Float),
            ("load1_min", Float),
            ("load1_max", Float),
            ("load5", Float),
            ("load15", Float),
            ("uptime_seconds", Integer),
            ("processes", Integer),
            ("throttled_flags", Integer),
            ("under_voltage", Integer),
            ("frequency_capped", Integer),
            ("throttled", Integer),
            ("soft_temp_limit", Integer),
        ],
    },
    MeasurementSchema {
        name: "power",
        tags: &[],
        fields: &[
            ("under_voltage", Integer),
            ("under_voltage_seconds", Integer),
            ("under_voltage_events", Integer),
            ("under_voltage_since_boot", Integer),
            ("frequency_capped_since_boot", Integer),
            ("throttled_since_boot", Integer),
            ("soft_temp_limit_since_boot", Integer),
            ("fan_rpm", Integer),
            ("fan_pwm", Integer),
        ],
    },
    MeasurementSchema {
        name: "storage_health",
        tags: &["device"],
        fields: &[
            ("emmc_life_time_a", Integer),
            ("emmc_life_time_b", Integer),
            ("emmc_pre_eol", Integer),
            ("nvme_percentage_used", Integer),
            ("nvme_available_spare", Integer),
            ("nvme_media_errors", Integer),
        ],
    },
    MeasurementSchema {
        name: "node_status",
        tags: &[],
        fields: &[("status", Text), ("up", Integer)],
    },
    MeasurementSchema {
        name: "alert",
        tags: &["rule", "mount", "device", "fstype", "interface", "sensor"],
        fields: &[("state", Text), ("value", Float)],
    },
    MeasurementSchema {
        name: "action",
        tags: &["action"],
        fields: &[
            ("state", Text),
            ("exit_code", Integer),
            ("duration", Float),
            ("by", Text),
            ("id", Text),
        ],
    },
];

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("timestamp {0} ms is outside the range line protocol can carry")]
    TimestampOutOfRange(i64),
}

/// A field value as the encoder writes it, of its field's type in [`SCHEMA`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Float(f64),
    Integer(i64),
}

impl Value {
    /// The value as a float, for comparisons (integers beyond 2^53 lose precision).
    pub fn as_f64(self) -> f64 {
        match self {
            Value::Float(f) => f,
            Value::Integer(i) => i as f64,
        }
    }

    fn is_finite(self) -> bool {
        match self {
            Value::Float(f) => f.is_finite(),
            Value::Integer(_) => true,
        }
    }
}

fn int(v: u64) -> Value {
    Value::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

fn flag(on: bool) -> Value {
    Value::Integer(i64::from(on))
}

fn percent(part: u64, whole: u64) -> Option<Value> {
    (whole > 0).then(|| Value::Float(part as f64 * 100.0 / whole as f64))
}

/// Cleans a free-form tag value from the host; `None` when nothing is left. Borrows the value
/// when it needs no change (the usual case), so visiting a sample rarely allocates.
fn clean_tag_value(raw: &str) -> Option<Cow<'_, str>> {
    if !raw.is_empty()
        && raw.len() <= MAX_TAG_VALUE_LEN
        && !raw.ends_with('\\')
        && !raw.chars().any(char::is_control)
    {
        return Some(Cow::Borrowed(raw));
    }
    let mut cleaned: String = raw
        .chars()
        .map(|c| if c.is_control() { '_' } else { c })
        .collect();
    if cleaned.len() > MAX_TAG_VALUE_LEN {
        let mut cut = MAX_TAG_VALUE_LEN;
        while !cleaned.is_char_boundary(cut) {
            cut -= 1;
        }
        cleaned.truncate(cut);
    }
    let kept = cleaned.trim_end_matches('\\').len();
    let trailing = cleaned.len() - kept;
    cleaned.truncate(kept);
    cleaned.extend(std::iter::repeat_n('_', trailing));
    (!cleaned.is_empty()).then_some(Cow::Owned(cleaned))
}

/// Indices of the measurements in [`SCHEMA`] (a test checks they agree).
const CPU: usize = 0;
const MEM: usize = 1;
const SWAP: usize = 2;
const DISK: usize = 3;
const DISKIO: usize = 4;
const NET: usize = 5;
const TEMPERATURE: usize = 6;
const SYSTEM: usize = 7;
const POWER: usize = 8;
const STORAGE_HEALTH: usize = 9;

/// One point of a sample exactly as the encoder writes it, without the `node` tag, the node's
/// labels and the timestamp (which every point of a sample shares): its measurement, its
/// extra tags (cleaned; absent ones left out) and its fields after the encoder's rules
/// (percentages computed, counters saturated, flags as 0/1, NaN and infinities left out).
///
/// Fields are addressed by their index in the measurement's [`MeasurementSchema::fields`],
/// so a reader can resolve a field name once and then look values up without comparing
/// strings.
#[derive(Debug, Clone, Copy)]
pub struct Point<'a> {
    measurement: usize,
    tags: &'a [(&'static str, Option<&'a str>)],
    /// One entry per schema field, in schema order; `None` where the sample has no value.
    fields: &'a [(&'static str, Option<Value>)],
}

impl<'a> Point<'a> {
    /// The measurement's index in [`SCHEMA`].
    pub fn measurement_index(&self) -> usize {
        self.measurement
    }

    pub fn measurement(&self) -> &'static str {
        SCHEMA[self.measurement].name
    }

    /// The extra tags written (`mount`, `device`, `fstype`, `interface`, `sensor`), in
    /// schema order; empty ones are left out, as in line protocol.
    pub fn tags(&self) -> impl Iterator<Item = (&'static str, &'a str)> + 'a {
        self.tags.iter().filter_map(|(k, v)| v.map(|v| (*k, v)))
    }

    /// The value written for the field at `index` in the measurement's schema, if any.
    pub fn field(&self, index: usize) -> Option<Value> {
        self.fields
            .get(index)
            .and_then(|(_, v)| *v)
            .filter(|v| v.is_finite())
    }

    /// The fields written, in schema order.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, Value)> + 'a {
        self.fields
            .iter()
            .filter_map(|(key, value)| value.map(|v| (*key, v)))
            .filter(|(_, value)| value.is_finite())
    }
}

/// Calls `visit` with each point that [`encode_sample`] writes for `sample`, in the order it
/// writes them: a point with no field left is not visited. This is the one place that decides
/// what a sample's points hold; the encoder and the alert rules both read samples through it.
/// It allocates only to clean a tag value that needs it.
pub fn visit_points(sample: &VitalsPayload, mut visit: impl FnMut(Point<'_>)) {
    if let Some(cpu) = &sample.cpu {
        emit(
            &mut visit,
            CPU,
            &[],
            &[
                ("usage_percent", Some(Value::Float(cpu.usage_percent))),
                ("usage_percent_min", cpu.usage_percent_min.map(Value::Float)),
                ("usage_percent_max", cpu.usage_percent_max.map(Value::Float)),
                ("frequency_mhz", cpu.frequency_mhz.map(int)),
                ("frequency_mhz_min", cpu.frequency_mhz_min.map(int)),
                ("frequency_mhz_max", cpu.frequency_mhz_max.map(int)),
                ("cores", (cpu.cores > 0).then(|| int(cpu.cores.into()))),
            ],
        );
    }
    if let Some(mem) = &sample.memory {
        let share = |used: Option<u64>| percent(used?, mem.total_bytes);
        emit(
            &mut visit,
            MEM,
            &[],
            &[
                ("total_bytes", Some(int(mem.total_bytes))),
                ("available_bytes", Some(int(mem.available_bytes))),
                ("used_bytes", Some(int(mem.used_bytes))),
                ("used_bytes_min", mem.used_bytes_min.map(int)),
                ("used_bytes_max", mem.used_bytes_max.map(int)),
                ("used_percent", share(Some(mem.used_bytes))),
                ("used_percent_min", share(mem.used_bytes_min)),
                ("used_percent_max", share(mem.used_bytes_max)),
            ],
        );
    }
    if let Some(swap) = &sample.swap {
        emit(
            &mut visit,
            SWAP,
            &[],
            &[
                ("total_bytes", Some(int(swap.total_bytes))),
                ("used_bytes", Some(int(swap.used_bytes))),
                ("used_percent", percent(swap.used_bytes, swap.total_bytes)),
            ],
        );
    }
    for disk in &sample.disks {
        let Some(mount) = clean_tag_value(&disk.mount) else {
            continue;
        };
        let device = clean_tag_value(&disk.device);
        let fstype = clean_tag_value(&disk.fs_type);
        let free = disk
            .free_bytes
            .unwrap_or_else(|| disk.total_bytes.saturating_sub(disk.used_bytes));
        emit(
            &mut visit,
            DISK,
            &[
                ("mount", Some(&*mount)),
                ("device", device.as_deref()),
                ("fstype", fstype.as_deref()),
            ],
            &[
                ("total_bytes", Some(int(disk.total_bytes))),
                ("used_bytes", Some(int(disk.used_bytes))),
                ("free_bytes", Some(int(free))),
                ("available_bytes", disk.available_bytes.map(int)),
                ("used_percent", disk.used_percent().map(Value::Float)),
                ("inodes_total", disk.inodes_total.map(int)),
                ("inodes_used", disk.inodes_used().map(int)),
                ("inodes_free", disk.inodes_free.map(int)),
                (
                    "inodes_used_percent",
                    disk.inodes_used_percent().map(Value::Float),
                ),
            ],
        );
    }
    for io in &sample.disk_io {
        let Some(device) = clean_tag_value(&io.device) else {
            continue;
        };
        let rates = io.rates.as_ref();
        let rate = |f: fn(&crate::vitals::DiskIoRates) -> f64| rates.map(|r| Value::Float(f(r)));
        emit(
            &mut visit,
            DISKIO,
            &[("device", Some(&*device))],
            &[
                ("reads", Some(int(io.reads))),
                ("writes", Some(int(io.writes))),
                ("read_bytes", Some(int(io.read_bytes))),
                ("written_bytes", Some(int(io.written_bytes))),
                ("io_time_ms", Some(int(io.io_time_ms))),
                ("reads_per_second", rate(|r| r.reads_per_second)),
                ("writes_per_second", rate(|r| r.writes_per_second)),
                ("read_bytes_per_second", rate(|r| r.read_bytes_per_second)),
                ("write_bytes_per_second", rate(|r| r.write_bytes_per_second)),
                ("busy_percent", rate(|r| r.busy_percent)),
            ],
        );
    }
    for net in &sample.networks {
        let Some(interface) = clean_tag_value(&net.interface) else {
            continue;
        };
        let rates = net.rates.as_ref();
        let rate = |f: fn(&crate::vitals::NetRates) -> f64| rates.map(|r| Value::Float(f(r)));
        emit(
            &mut visit,
            NET,
            &[("interface", Some(&*interface))],
            &[
                ("rx_bytes", Some(int(net.rx_bytes))),
                ("tx_bytes", Some(int(net.tx_bytes))),
                ("rx_errors", Some(int(net.rx_errors))),
                ("tx_errors", Some(int(net.tx_errors))),
                ("rx_packets", Some(int(net.rx_packets))),
                ("tx_packets", Some(int(net.tx_packets))),
                ("rx_dropped", Some(int(net.rx_dropped))),
                ("tx_dropped", Some(int(net.tx_dropped))),
                ("rx_bytes_per_second", rate(|r| r.rx_bytes_per_second)),
                ("tx_bytes_per_second", rate(|r| r.tx_bytes_per_second)),
                ("rx_packets_per_second", rate(|r| r.rx_packets_per_second)),
                ("tx_packets_per_second", rate(|r| r.tx_packets_per_second)),
                ("rx_errors_per_second", rate(|r| r.rx_errors_per_second)),
                ("tx_errors_per_second", rate(|r| r.tx_errors_per_second)),
                ("rx_dropped_per_second", rate(|r| r.rx_dropped_per_second)),
                ("tx_dropped_per_second", rate(|r| r.tx_dropped_per_second)),
            ],
        );
    }
    for temp in &sample.temperatures {
        let Some(sensor) = clean_tag_value(&temp.sensor) else {
            continue;
        };
        emit(
            &mut visit,
            TEMPERATURE,
            &[("sensor", Some(&*sensor))],
            &[
                ("celsius", Some(Value::Float(temp.celsius))),
                ("celsius_min", temp.celsius_min.map(Value::Float)),
                ("celsius_max", temp.celsius_max.map(Value::Float)),
            ],
        );
    }
    let load = sample.load.as_ref();
    let throttling = sample.throttling;
    emit(
        &mut visit,
        SYSTEM,
        &[],
        &[
            ("load1", load.map(|l| Value::Float(l.one))),
            ("load1_min", load.and_then(|l| l.one_min).map(Value::Float)),
            ("load1_max", load.and_then(|l| l.one_max).map(Value::Float)),
            ("load5", load.map(|l| Value::Float(l.five))),
            ("load15", load.map(|l| Value::Float(l.fifteen))),
            ("uptime_seconds", sample.uptime_seconds.map(int)),
            ("processes", sample.process_count.map(int)),
            ("throttled_flags", throttling.map(|t| int(t.raw.into()))),
            (
                "under_voltage",
                throttling.map(|t| flag(t.under_voltage_now())),
            ),
            (
                "frequency_capped",
                throttling.map(|t| flag(t.frequency_capped_now())),
            ),
            ("throttled", throttling.map(|t| flag(t.throttled_now()))),
            (
                "soft_temp_limit",
                throttling.map(|t| flag(t.soft_temperature_limit_now())),
            ),
        ],
    );
    if let Some(power) = &sample.power {
        emit(
            &mut visit,
            POWER,
            &[],
            &[
                ("under_voltage", power.under_voltage_now.map(flag)),
                (
                    "under_voltage_seconds",
                    power.under_voltage_seconds.map(int),
                ),
                ("under_voltage_events", power.under_voltage_events.map(int)),
                (
                    "under_voltage_since_boot",
                    power.under_voltage_since_boot.map(flag),
                ),
                (
                    "frequency_capped_since_boot",
                    power.frequency_capped_since_boot.map(flag),
                ),
                ("throttled_since_boot", power.throttled_since_boot.map(flag)),
                (
                    "soft_temp_limit_since_boot",
                    power.soft_temp_limit_since_boot.map(flag),
                ),
                ("fan_rpm", power.fan_rpm.map(int)),
                ("fan_pwm", power.fan_pwm.map(int)),
            ],
        );
    }
    for health in &sample.storage_health {
        let Some(device) = clean_tag_value(&health.device) else {
            continue;
        };
        emit(
            &mut visit,
            STORAGE_HEALTH,
            &[("device", Some(&*device))],
            &[
                ("emmc_life_time_a", health.emmc_life_time_a.map(int)),
                ("emmc_life_time_b", health.emmc_life_time_b.map(int)),
                ("emmc_pre_eol", health.emmc_pre_eol.map(int)),
                ("nvme_percentage_used", health.nvme_percentage_used.map(int)),
                ("nvme_available_spare", health.nvme_available_spare.map(int)),
                ("nvme_media_errors", health.nvme_media_errors.map(int)),
            ],
        );
    }
}

/// Visits one point unless no field is left to write.
fn emit(
    visit: &mut impl FnMut(Point<'_>),
    measurement: usize,
    tags: &[(&'static str, Option<&str>)],
    fields: &[(&'static str, Option<Value>)],
) {
    debug_assert!(
        fields
            .iter()
            .map(|(k, _)| *k)
            .eq(SCHEMA[measurement].fields.iter().map(|(k, _)| *k)),
        "fields of {} out of schema order",
        SCHEMA[measurement].name
    );
    let point = Point {
        measurement,
        tags,
        fields,
    };
    if point.fields().next().is_some() {
        visit(point);
    }
}

/// Encodes one sample of `node` (with its `labels`) onto `out`; returns how many points
/// (lines) were written. `node` and `labels` must have passed [`crate::validate`]. The points
/// are those of [`visit_points`].
pub fn encode_sample(
    node: &str,
    labels: &Labels,
    sample: &VitalsPayload,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let ts = nanos(sample.timestamp_ms)?;
    let mut lines = Lines {
        node,
        labels,
        ts,
        out,
        points: 0,
    };
    visit_points(sample, |point| lines.point(point));
    Ok(lines.points)
}

/// Encodes one change of `node`'s status as a `node_status` point onto `out`: the string field
/// `status` (`up`, `late`, `down`, `stopped`) and the integer field `up` (1 or 0), tagged like
/// the node's samples, at `ts_ms`. Returns the number of points written (1). `node` and
/// `labels` must have passed [`crate::validate`]; `status` is written as an escaped string.
pub fn encode_status(
    node: &str,
    labels: &Labels,
    status: &str,
    up: bool,
    ts_ms: i64,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let ts = nanos(ts_ms)?;
    *out = tagged_line(out, "node_status", node, labels, [])
        .field("status", status)
        .field("up", i64::from(up))
        .timestamp(ts)
        .close_line()
        .build();
    Ok(1)
}
/// Encodes one transition of an alert as an `alert` point onto `out`: tagged like the node's
/// samples plus `rule` and the alert's series tags (those [`visit_points`] gives the rule's
/// measurement: `mount`, `device`, `fstype`, `interface`, `sensor`; empty values are left
/// out), with the string field `state` (`firing`, `resolved`, `no_data`) and the float field
/// `value` (left out when `None` or not finite), at `ts_ms`. Returns the number of points
/// written (1). `node` and `labels` must have passed [`crate::validate`].
#[allow(clippy::too_many_arguments)]
pub fn encode_alert(
    node: &str,
    labels: &Labels,
    rule: &str,
    series: &[(&str, &str)],
    state: &str,
    value: Option<f64>,
    ts_ms: i64,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let ts = nanos(ts_ms)?;
    let rule = clean_tag_value(rule);
    let series: Vec<(&str, Cow<'_, str>)> = series
        .iter()
        .filter_map(|(k, v)| clean_tag_value(v).map(|v| (*k, v)))
        .collect();
    let extra = rule
        .as_deref()
        .map(|rule| ("rule", rule))
        .into_iter()
        .chain(series.iter().map(|(k, v)| (*k, &**v)));
    let builder = tagged_line(out, "alert", node, labels, extra).field("state", state);
    let builder = match value.filter(|v| v.is_finite()) {
        Some(v) => builder.field("value", v),
        None => builder,
    };
    *out = builder.timestamp(ts).close_line().build();
    Ok(1)
}

/// One target of an action that became final, as [`encode_action`] writes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ActionPoint<'a> {
    /// The action's name (a tag).
    pub action: &'a str,
    /// The final state: `done`, `failed`, `refused`, `accepted`, `timed_out` or `expired`.
    pub state: &'a str,
    /// The exit code the node reported, if it reported one.
    pub exit_code: Option<i32>,
    /// How long it ran, in seconds, when known.
    pub duration_seconds: Option<f64>,
    /// Who asked (`api`, `cli`, `dashboard`, ...).
    pub by: &'a str,
    /// The action's id, shared by its targets.
    pub id: &'a str,
}

/// Encodes one target of an action that became final as an `action` point onto `out`: tagged
/// like the node's samples plus `action`, with the string fields `state`, `by` and `id`, the
/// integer field `exit_code` (left out when `None`) and the float field `duration` in seconds
/// (left out when `None` or not finite), at `ts_ms` (when the target became final). Returns
/// the number of points written (1). `node` and `labels` must have passed [`crate::validate`].
pub fn encode_action(
    node: &str,
    labels: &Labels,
    point: &ActionPoint<'_>,
    ts_ms: i64,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    let ts = nanos(ts_ms)?;
    let action = clean_tag_value(point.action);
    let extra = action.as_deref().map(|action| ("action", action));
    let builder = tagged_line(out, "action", node, labels, extra).field("state", point.state);
    let builder = match point.exit_code {
        Some(code) => builder.field("exit_code", i64::from(code)),
        None => builder,
    };
    let builder = match point.duration_seconds.filter(|d| d.is_finite()) {
        Some(seconds) => builder.field("duration", seconds),
        None => builder,
    };
    *out = builder
        .field("by", point.by)
        .field("id", point.id)
        .timestamp(ts)
        .close_line()
        .build();
    Ok(1)
}

/// A timestamp in milliseconds as line protocol's nanoseconds.
fn nanos(ts_ms: i64) -> Result<i64, EncodeError> {
    ts_ms
        .checked_mul(1_000_000)
        .ok_or(EncodeError::TimestampOutOfRange(ts_ms))
}

/// Starts a line of `measurement` on the bytes of `out` (taken; the caller puts the built line
/// back), tagged with `node`, its `labels` and `extra`, sorted by key as InfluxDB prefers.
fn tagged_line<'a, 'k: 'a>(
    out: &mut Vec<u8>,
    measurement: &str,
    node: &'a str,
    labels: &'a Labels,
    extra: impl IntoIterator<Item = (&'k str, &'a str)>,
) -> LineProtocolBuilder<Vec<u8>, AfterMeasurement> {
    let mut tags: Vec<(&str, &str)> = Vec::with_capacity(1 + labels.len() + 3);
    tags.push(("node", node));
    tags.extend(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    tags.extend(
        extra
            .into_iter()
            .map(|(k, v)| -> (&'a str, &'a str) { (k, v) }),
    );
    tags.sort_unstable_by_key(|(key, _)| *key);
    let mut builder = LineProtocolBuilder::new_with(std::mem::take(out)).measurement(measurement);
    for (key, value) in tags {
        builder = builder.tag(key, value);
    }
    builder
}

/// Writes points that share a node, its labels and a timestamp.
struct Lines<'a> {
    node: &'a str,
    labels: &'a Labels,
    ts: i64,
    out: &'a mut Vec<u8>,
    points: usize,
}

impl Lines<'_> {
    /// Writes one point straight into `out`, byte for byte what the `influxdb-line-protocol`
    /// builder writes (a test compares them), without its per-character `core::fmt` calls
    /// and the tag list it allocates per line: this runs for every point of every push.
    fn point(&mut self, point: Point<'_>) {
        let mut fields = point.fields();
        let Some(first) = fields.next() else {
            return;
        };
        let out = &mut *self.out;
        push_escaped(out, point.measurement(), MEASUREMENT_SPECIAL);
        let extra = point.tags();
        let mut tags = SortedTags::default();
        tags.push(("node", self.node));
        for (key, value) in self.labels {
            tags.push((key.as_str(), value.as_str()));
        }
        for tag in extra {
            tags.push(tag);
        }
        for (key, value) in tags.sorted() {
            out.push(b',');
            push_escaped(out, key, TAG_SPECIAL);
            out.push(b'=');
            push_escaped(out, value, TAG_SPECIAL);
        }
        out.push(b' ');
        push_field(out, first);
        for field in fields {
            out.push(b',');
            push_field(out, field);
        }
        out.push(b' ');
        push_int(out, self.ts);
        out.push(b'\n');
        self.points += 1;
    }
}

/// Characters line protocol escapes with a backslash (besides the backslash itself) in a
/// measurement, and in tag keys, tag values and field keys.
const MEASUREMENT_SPECIAL: &[u8] = b", ";
const TAG_SPECIAL: &[u8] = b", =";

/// Appends `text` escaped as the builder escapes it: a backslash before every character of
/// `special` and before every backslash. All of them are ASCII, so bytes can be compared.
fn push_escaped(out: &mut Vec<u8>, text: &str, special: &[u8]) {
    let needs = |b: &u8| *b == b'\\' || special.contains(b);
    if !text.as_bytes().iter().any(needs) {
        out.extend_from_slice(text.as_bytes());
        return;
    }
    for b in text.as_bytes() {
        if needs(b) {
            out.push(b'\\');
        }
        out.push(*b);
    }
}

/// Appends `key=value`: an integer with the `i` suffix, a float as Rust displays it (the
/// shortest text that reads back to the same value), as the builder writes them.
fn push_field(out: &mut Vec<u8>, (key, value): (&str, Value)) {
    push_escaped(out, key, TAG_SPECIAL);
    out.push(b'=');
    match value {
        Value::Integer(i) => {
            push_int(out, i);
            out.push(b'i');
        }
        Value::Float(f) => {
            use std::io::Write;
            // Writing into a Vec cannot fail.
            let _ = write!(out, "{f}");
        }
    }
}

/// Appends the decimal digits of `value`.
fn push_int(out: &mut Vec<u8>, value: i64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    let mut rest = value.unsigned_abs();
    loop {
        start -= 1;
        digits[start] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if value < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[start..]);
}

/// The tags of one line, on the stack (the node, at most [`crate::validate::MAX_LABELS`]
/// labels and a point's few extra tags fit); more than that spill into a `Vec`.
#[derive(Default)]
struct SortedTags<'a> {
    inline: [(&'a str, &'a str); 24],
    len: usize,
    spilled: Vec<(&'a str, &'a str)>,
}

impl<'a> SortedTags<'a> {
    fn push(&mut self, tag: (&'a str, &'a str)) {
        if self.len < self.inline.len() {
            self.inline[self.len] = tag;
            self.len += 1;
        } else {
            self.spilled.push(tag);
        }
    }

    /// The tags sorted by key, as InfluxDB prefers.
    fn sorted(&mut self) -> impl Iterator<Item = (&'a str, &'a str)> + '_ {
        let tags: &mut [(&str, &str)] = if self.spilled.is_empty() {
            &mut self.inline[..self.len]
        } else {
            self.spilled.extend_from_slice(&self.inline[..self.len]);
            &mut self.spilled
        };
        tags.sort_unstable_by_key(|(key, _)| *key);
        tags.iter().copied()
    }
}

#[cfg(test)]
mod tests {
    use influxdb_line_protocol::{FieldValue, parse_lines};

    use super::*;
    use crate::vitals::*;

    const TS_MS: i64 = 1_700_000_000_123;

    fn labels() -> Labels {
        [("stack", "2"), ("role", "worker")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    fn encode(sample: &VitalsPayload) -> String {
        let mut out = Vec::new();
        encode_sample("pi-01", &labels(), sample, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    fn full_sample() -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: TS_MS,
            cpu: Some(CpuVitals {
                usage_percent: 12.5,
                frequency_mhz: Some(1500),
                cores: 4,
                ..Default::default()
            }),
            load: Some(LoadAverage {
                one: 0.5,
                five: 0.25,
                fifteen: 1.0,
                ..Default::default()
            }),
            memory: Some(MemoryVitals {
                total_bytes: 4000,
                available_bytes: 3000,
                used_bytes: 1000,
                ..Default::default()
            }),
            swap: Some(SwapVitals {
                total_bytes: 0,
                used_bytes: 0,
            }),
            disks: vec![DiskVitals {
                mount: "/mnt/usb disk,a=b".into(),
                device: "/dev/sda1".into(),
                fs_type: "ext4".into(),
                total_bytes: 200,
                used_bytes: 50,
                ..Default::default()
            }],
            networks: vec![NetVitals {
                interface: "eth0".into(),
                rx_bytes: 10,
                tx_bytes: 20,
                rx_errors: 0,
                tx_errors: 1,
                ..Default::default()
            }],
            temperatures: vec![TemperatureVitals {
                sensor: "cpu thermal,zone=0".into(),
                celsius: 48.312,
                ..Default::default()
            }],
            uptime_seconds: Some(3600),
            process_count: Some(123),
            throttling: Some(Throttling { raw: 0x50005 }),
            ..Default::default()
        }
    }

    #[test]
    fn the_sample_encoder_writes_what_the_crate_builder_writes() {
        // Labels that need every escape, so the direct writer is checked against the crate.
        let labels: Labels = [("a b", "x,y"), ("k=v", "back\\slash"), ("zone", "eu west")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        for sample in [full_sample(), sample_with_every_family()] {
            let mut direct = Vec::new();
            let written = encode_sample("pi 01", &labels, &sample, &mut direct).unwrap();
            let ts = nanos(sample.timestamp_ms).unwrap();
            let mut built = Vec::new();
            let mut points = 0;
            visit_points(&sample, |point| {
                let mut fields = point.fields();
                let Some((key, value)) = fields.next() else {
                    return;
                };
                let builder = tagged_line(
                    &mut built,
                    point.measurement(),
                    "pi 01",
                    &labels,
                    point.tags(),
                );
                let mut builder = match value {
                    Value::Float(f) => builder.field(key, f),
                    Value::Integer(i) => builder.field(key, i),
                };
                for (key, value) in fields {
                    builder = match value {
                        Value::Float(f) => builder.field(key, f),
                        Value::Integer(i) => builder.field(key, i),
                    };
                }
                built = builder.timestamp(ts).close_line().build();
                points += 1;
            });
            assert_eq!(written, points);
            assert_eq!(
                String::from_utf8(direct).unwrap(),
                String::from_utf8(built).unwrap()
            );
        }
    }

    #[test]
    fn push_int_writes_every_edge() {
        for value in [
            0,
            7,
            -7,
            10,
            -10,
            i64::MAX,
            i64::MIN,
            1_700_000_000_123_000_000,
        ] {
            let mut out = Vec::new();
            push_int(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
        }
    }

    #[test]
    fn exact_lines_of_a_full_sample() {
        let expected = [
            "cpu,node=pi-01,role=worker,stack=2 usage_percent=12.5,frequency_mhz=1500i,cores=4i 1700000000123000000",
            "mem,node=pi-01,role=worker,stack=2 total_bytes=4000i,available_bytes=3000i,used_bytes=1000i,used_percent=25 1700000000123000000",
            "swap,node=pi-01,role=worker,stack=2 total_bytes=0i,used_bytes=0i 1700000000123000000",
            r"disk,device=/dev/sda1,fstype=ext4,mount=/mnt/usb\ disk\,a\=b,node=pi-01,role=worker,stack=2 total_bytes=200i,used_bytes=50i,free_bytes=150i,used_percent=25 1700000000123000000",
            "net,interface=eth0,node=pi-01,role=worker,stack=2 rx_bytes=10i,tx_bytes=20i,rx_errors=0i,tx_errors=1i,rx_packets=0i,tx_packets=0i,rx_dropped=0i,tx_dropped=0i 1700000000123000000",
            r"temperature,node=pi-01,role=worker,sensor=cpu\ thermal\,zone\=0,stack=2 celsius=48.312 1700000000123000000",
            "system,node=pi-01,role=worker,stack=2 load1=0.5,load5=0.25,load15=1,uptime_seconds=3600i,processes=123i,throttled_flags=327685i,under_voltage=1i,frequency_capped=0i,throttled=1i,soft_temp_limit=0i 1700000000123000000",
            "",
        ]
        .join("\n");
        assert_eq!(encode(&full_sample()), expected);
    }

    /// What a current agent sends: peaks of the fast samples, `df`'s disk figures, rates, disk
    /// I/O, Pi power and storage wear.
    fn sample_with_every_family() -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: TS_MS,
            cpu: Some(CpuVitals {
                usage_percent: 22.5,
                usage_percent_min: Some(2.0),
                usage_percent_max: Some(100.0),
                frequency_mhz: Some(1200),
                frequency_mhz_min: Some(600),
                frequency_mhz_max: Some(1800),
                cores: 4,
            }),
            load: Some(LoadAverage {
                one: 0.5,
                five: 0.25,
                fifteen: 1.0,
                one_min: Some(0.25),
                one_max: Some(1.5),
            }),
            memory: Some(MemoryVitals {
                total_bytes: 4000,
                available_bytes: 3000,
                used_bytes: 1000,
                used_bytes_min: Some(800),
                used_bytes_max: Some(2000),
            }),
            // A root filesystem as `df` shows it: 5 % reserved for root, so used / total
            // (13.8 %) is not what `df` prints.
            disks: vec![DiskVitals {
                mount: "/".into(),
                device: "/dev/mmcblk0p2".into(),
                fs_type: "ext4".into(),
                total_bytes: 1000,
                used_bytes: 138,
                free_bytes: Some(862),
                available_bytes: Some(812),
                inodes_total: Some(64),
                inodes_free: Some(60),
            }],
            disk_io: vec![DiskIoVitals {
                device: "mmcblk0".into(),
                reads: 10,
                writes: 20,
                read_bytes: 5120,
                written_bytes: 10240,
                io_time_ms: 300,
                rates: Some(DiskIoRates {
                    reads_per_second: 0.5,
                    writes_per_second: 1.0,
                    read_bytes_per_second: 256.0,
                    write_bytes_per_second: 512.0,
                    busy_percent: 1.5,
                }),
            }],
            networks: vec![NetVitals {
                interface: "eth0".into(),
                rx_bytes: 10,
                tx_bytes: 20,
                rx_errors: 0,
                tx_errors: 1,
                rx_packets: 3,
                tx_packets: 4,
                rx_dropped: 5,
                tx_dropped: 6,
                rates: Some(NetRates {
                    rx_bytes_per_second: 100.0,
                    tx_bytes_per_second: 200.0,
                    rx_packets_per_second: 1.0,
                    tx_packets_per_second: 2.0,
                    rx_errors_per_second: 0.0,
                    tx_errors_per_second: 0.25,
                    rx_dropped_per_second: 0.5,
                    tx_dropped_per_second: 0.0,
                }),
            }],
            temperatures: vec![TemperatureVitals {
                sensor: "cpu_thermal".into(),
                celsius: 50.0,
                celsius_min: Some(45.5),
                celsius_max: Some(71.25),
            }],
            power: Some(PowerVitals {
                under_voltage_now: Some(false),
                under_voltage_seconds: Some(3),
                under_voltage_events: Some(2),
                under_voltage_since_boot: Some(true),
                frequency_capped_since_boot: Some(false),
                throttled_since_boot: Some(true),
                soft_temp_limit_since_boot: Some(false),
                fan_rpm: Some(2950),
                fan_pwm: Some(120),
            }),
            storage_health: vec![StorageHealthVitals {
                device: "mmcblk0".into(),
                emmc_life_time_a: Some(2),
                emmc_life_time_b: Some(1),
                emmc_pre_eol: Some(1),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn exact_lines_of_a_sample_with_every_family() {
        let expected = [
            "cpu,node=pi-01,role=worker,stack=2 usage_percent=22.5,usage_percent_min=2,usage_percent_max=100,frequency_mhz=1200i,frequency_mhz_min=600i,frequency_mhz_max=1800i,cores=4i 1700000000123000000",
            "mem,node=pi-01,role=worker,stack=2 total_bytes=4000i,available_bytes=3000i,used_bytes=1000i,used_bytes_min=800i,used_bytes_max=2000i,used_percent=25,used_percent_min=20,used_percent_max=50 1700000000123000000",
            // df: 138 × 100 / (138 + 812) = 14.53 → 15; inodes 4 of 64 = 6.25 → 7.
            "disk,device=/dev/mmcblk0p2,fstype=ext4,mount=/,node=pi-01,role=worker,stack=2 total_bytes=1000i,used_bytes=138i,free_bytes=862i,available_bytes=812i,used_percent=15,inodes_total=64i,inodes_used=4i,inodes_free=60i,inodes_used_percent=7 1700000000123000000",
            "diskio,device=mmcblk0,node=pi-01,role=worker,stack=2 reads=10i,writes=20i,read_bytes=5120i,written_bytes=10240i,io_time_ms=300i,reads_per_second=0.5,writes_per_second=1,read_bytes_per_second=256,write_bytes_per_second=512,busy_percent=1.5 1700000000123000000",
            "net,interface=eth0,node=pi-01,role=worker,stack=2 rx_bytes=10i,tx_bytes=20i,rx_errors=0i,tx_errors=1i,rx_packets=3i,tx_packets=4i,rx_dropped=5i,tx_dropped=6i,rx_bytes_per_second=100,tx_bytes_per_second=200,rx_packets_per_second=1,tx_packets_per_second=2,rx_errors_per_second=0,tx_errors_per_second=0.25,rx_dropped_per_second=0.5,tx_dropped_per_second=0 1700000000123000000",
            "temperature,node=pi-01,role=worker,sensor=cpu_thermal,stack=2 celsius=50,celsius_min=45.5,celsius_max=71.25 1700000000123000000",
            "system,node=pi-01,role=worker,stack=2 load1=0.5,load1_min=0.25,load1_max=1.5,load5=0.25,load15=1 1700000000123000000",
            "power,node=pi-01,role=worker,stack=2 under_voltage=0i,under_voltage_seconds=3i,under_voltage_events=2i,under_voltage_since_boot=1i,frequency_capped_since_boot=0i,throttled_since_boot=1i,soft_temp_limit_since_boot=0i,fan_rpm=2950i,fan_pwm=120i 1700000000123000000",
            "storage_health,device=mmcblk0,node=pi-01,role=worker,stack=2 emmc_life_time_a=2i,emmc_life_time_b=1i,emmc_pre_eol=1i 1700000000123000000",
            "",
        ]
        .join("\n");
        assert_eq!(encode(&sample_with_every_family()), expected);
    }

    #[test]
    fn escaped_names_parse_back_with_the_same_crate() {
        let text = encode(&full_sample());
        let parsed: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 7);
        let disk = &parsed[3];
        assert_eq!(disk.series.measurement.as_str(), "disk");
        assert_eq!(
            disk.tag_value("mount").unwrap().as_str(),
            "/mnt/usb disk,a=b"
        );
        assert_eq!(disk.tag_value("node").unwrap().as_str(), "pi-01");
        let temp = &parsed[5];
        assert_eq!(
            temp.tag_value("sensor").unwrap().as_str(),
            "cpu thermal,zone=0"
        );
        assert_eq!(temp.field_value("celsius"), Some(&FieldValue::F64(48.312)));
        for line in &parsed {
            assert_eq!(line.timestamp, Some(1_700_000_000_123_000_000));
            assert_eq!(line.tag_value("stack").unwrap().as_str(), "2");
        }
    }

    #[test]
    fn non_finite_values_never_reach_the_output() {
        let mut sample = full_sample();
        sample.cpu.as_mut().unwrap().usage_percent = f64::NAN;
        sample.load = Some(LoadAverage {
            one: f64::INFINITY,
            five: f64::NEG_INFINITY,
            fifteen: 0.75,
            ..Default::default()
        });
        sample.temperatures[0].celsius = f64::NAN;
        let text = encode(&sample);
        assert!(!text.contains("NaN") && !text.contains("inf"), "{text}");
        assert!(
            !text.contains("temperature"),
            "a line with no field is left out"
        );
        assert!(text.contains("cpu,node=pi-01,role=worker,stack=2 frequency_mhz=1500i,cores=4i "));
        assert!(text.contains(" load15=0.75,"));
        assert!(parse_lines(&text).all(|l| l.is_ok()));
    }

    #[test]
    fn a_newline_in_a_host_name_cannot_inject_a_point() {
        let mut sample = VitalsPayload {
            timestamp_ms: TS_MS,
            ..Default::default()
        };
        sample.temperatures.push(TemperatureVitals {
            sensor: "evil\nmem,node=other used_bytes=1i".into(),
            celsius: 40.0,
            ..Default::default()
        });
        sample.disks.push(DiskVitals {
            mount: String::new(),
            total_bytes: 1,
            ..Default::default()
        });
        let text = encode(&sample);
        assert_eq!(
            text.lines().count(),
            1,
            "an empty mount leaves its line out: {text}"
        );
        let line = parse_lines(&text).next().unwrap().unwrap();
        assert_eq!(
            line.tag_value("sensor").unwrap().as_str(),
            "evil_mem,node=other used_bytes=1i"
        );
    }

    #[test]
    fn field_types_do_not_flip_between_samples() {
        // Whole-number floats and zero counters keep their types.
        let mut sample = full_sample();
        sample.cpu.as_mut().unwrap().usage_percent = 100.0;
        sample.temperatures[0].celsius = 48.0;
        let text = encode(&sample);
        let parsed: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            parsed[0].field_value("usage_percent"),
            Some(&FieldValue::F64(100.0))
        );
        assert_eq!(
            parsed[5].field_value("celsius"),
            Some(&FieldValue::F64(48.0))
        );
    }

    #[test]
    fn every_written_field_is_in_the_schema_with_its_type() {
        check_schema(&encode(&full_sample()));
    }

    fn check_schema(text: &str) {
        for line in parse_lines(text) {
            let line = line.unwrap();
            let measurement = line.series.measurement.as_str();
            let schema = SCHEMA
                .iter()
                .find(|m| m.name == measurement)
                .unwrap_or_else(|| panic!("{measurement} not in SCHEMA"));
            for (key, value) in &line.field_set {
                let (_, ty) = schema
                    .fields
                    .iter()
                    .find(|(name, _)| *name == key.as_str())
                    .unwrap_or_else(|| panic!("{measurement}.{key} not in SCHEMA"));
                let written = match value {
                    FieldValue::F64(_) => FieldType::Float,
                    FieldValue::I64(_) => FieldType::Integer,
                    _ => FieldType::String,
                };
                assert_eq!(*ty, written, "{measurement}.{key}");
            }
            for (key, _) in line.series.tag_set.iter().flatten() {
                let key = key.as_str();
                assert!(
                    key == "node" || labels().contains_key(key) || schema.tags.contains(&key),
                    "{measurement} tag {key} not in SCHEMA"
                );
            }
        }
    }

    #[test]
    fn exact_line_of_a_status_change() {
        let mut out = Vec::new();
        let points = encode_status("pi-01", &labels(), "down", false, TS_MS, &mut out).unwrap();
        assert_eq!(points, 1);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "node_status,node=pi-01,role=worker,stack=2 status=\"down\",up=0i 1700000000123000000\n"
        );
        let mut out = b"cpu,node=pi-01 cores=4i 1\n".to_vec();
        encode_status("pi-01", &Labels::new(), "up", true, TS_MS, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "cpu,node=pi-01 cores=4i 1\nnode_status,node=pi-01 status=\"up\",up=1i 1700000000123000000\n",
            "appends to what is there"
        );
    }

    #[test]
    fn status_points_parse_back_and_follow_the_schema() {
        let mut out = Vec::new();
        for (status, up) in [
            ("up", true),
            ("late", false),
            ("down", false),
            ("stopped", false),
        ] {
            encode_status("pi-01", &labels(), status, up, TS_MS, &mut out).unwrap();
        }
        let text = String::from_utf8(out).unwrap();
        let parsed: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 4);
        assert_eq!(
            parsed[2].field_value("status"),
            Some(&FieldValue::String("down".into()))
        );
        assert_eq!(parsed[0].field_value("up"), Some(&FieldValue::I64(1)));
        assert_eq!(parsed[3].field_value("up"), Some(&FieldValue::I64(0)));
        check_schema(&text);
        let mut out = Vec::new();
        assert_eq!(
            encode_status("n", &Labels::new(), "up", true, i64::MIN, &mut out),
            Err(EncodeError::TimestampOutOfRange(i64::MIN))
        );
    }

    #[test]
    fn alert_points_parse_back_and_follow_the_schema() {
        let mut out = Vec::new();
        let series = [
            ("mount", "/mnt/usb disk"),
            ("device", "/dev/sda1"),
            ("fstype", ""),
        ];
        encode_alert(
            "pi-01",
            &labels(),
            "disk full",
            &series,
            "firing",
            Some(93.5),
            TS_MS,
            &mut out,
        )
        .unwrap();
        let points = encode_alert(
            "pi-01",
            &Labels::new(),
            "node down",
            &[],
            "resolved",
            None,
            TS_MS,
            &mut out,
        )
        .unwrap();
        assert_eq!(points, 1);
        encode_alert(
            "pi-01",
            &Labels::new(),
            "hot",
            &[("sensor", "cpu")],
            "no_data",
            Some(f64::NAN),
            TS_MS,
            &mut out,
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"alert,device=/dev/sda1,mount=/mnt/usb\ disk,node=pi-01,role=worker,rule=disk\ full,stack=2 state="firing",value=93.5 1700000000123000000"#
        );
        assert_eq!(
            text.lines().nth(1).unwrap(),
            r#"alert,node=pi-01,rule=node\ down state="resolved" 1700000000123000000"#
        );
        let parsed: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[2].field_value("state"),
            Some(&FieldValue::String("no_data".into()))
        );
        assert_eq!(parsed[2].field_value("value"), None, "NaN is left out");
        check_schema(&text);
        assert_eq!(
            encode_alert(
                "n",
                &Labels::new(),
                "r",
                &[],
                "firing",
                None,
                i64::MIN,
                &mut Vec::new()
            ),
            Err(EncodeError::TimestampOutOfRange(i64::MIN))
        );
    }

    #[test]
    fn action_points_parse_back_and_follow_the_schema() {
        let mut out = Vec::new();
        let done = ActionPoint {
            action: "apt-upgrade",
            state: "done",
            exit_code: Some(0),
            duration_seconds: Some(1.25),
            by: "api",
            id: "00ab",
        };
        let points = encode_action("pi-01", &labels(), &done, TS_MS, &mut out).unwrap();
        assert_eq!(points, 1);
        let expired = ActionPoint {
            action: "hello",
            state: "expired",
            exit_code: None,
            duration_seconds: None,
            by: "the \"ops\" desk, room 2",
            id: "00cd",
        };
        encode_action("pi-02", &Labels::new(), &expired, TS_MS, &mut out).unwrap();
        let odd = ActionPoint {
            duration_seconds: Some(f64::INFINITY),
            exit_code: Some(-1),
            state: "failed",
            ..done
        };
        encode_action("pi-03", &Labels::new(), &odd, TS_MS, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text.lines().next().unwrap(),
            r#"action,action=apt-upgrade,node=pi-01,role=worker,stack=2 state="done",exit_code=0i,duration=1.25,by="api",id="00ab" 1700000000123000000"#
        );
        let parsed: Vec<_> = parse_lines(&text).collect::<Result<_, _>>().unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[1].field_value("state"),
            Some(&FieldValue::String("expired".into()))
        );
        assert_eq!(parsed[1].field_value("exit_code"), None);
        assert_eq!(parsed[1].field_value("duration"), None);
        assert_eq!(
            parsed[1].field_value("by"),
            Some(&FieldValue::String(r#"the "ops" desk, room 2"#.into()))
        );
        assert_eq!(
            parsed[2].field_value("exit_code"),
            Some(&FieldValue::I64(-1))
        );
        assert_eq!(
            parsed[2].field_value("duration"),
            None,
            "infinity is left out"
        );
        check_schema(&text);
        assert_eq!(
            encode_action("n", &Labels::new(), &done, i64::MIN, &mut Vec::new()),
            Err(EncodeError::TimestampOutOfRange(i64::MIN))
        );
    }

    #[test]
    fn a_tag_value_ending_in_a_backslash_still_parses() {
        let sample = VitalsPayload {
            timestamp_ms: TS_MS,
            disks: vec![DiskVitals {
                mount: r"C:\".into(),
                device: r"a\b\".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let text = encode(&sample);
        let line = parse_lines(&text).next().unwrap().unwrap();
        let tags: Vec<(String, String)> = line
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(tags.contains(&("mount".into(), "C:_".into())), "{tags:?}");
        assert!(
            tags.contains(&("device".into(), r"a\b_".into())),
            "{tags:?}"
        );
    }

    #[test]
    fn huge_u64_counters_saturate_instead_of_wrapping() {
        let sample = VitalsPayload {
            timestamp_ms: TS_MS,
            networks: vec![NetVitals {
                interface: "eth0".into(),
                rx_bytes: u64::MAX,
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(encode(&sample).contains(&format!("rx_bytes={}i", i64::MAX)));
    }

    #[test]
    fn timestamps_beyond_nanosecond_range_are_an_error() {
        let sample = VitalsPayload {
            timestamp_ms: i64::MAX,
            ..Default::default()
        };
        let mut out = Vec::new();
        assert_eq!(
            encode_sample("n", &Labels::new(), &sample, &mut out),
            Err(EncodeError::TimestampOutOfRange(i64::MAX))
        );
    }

    #[test]
    fn measurement_indices_name_their_schema_entries() {
        for (index, name) in [
            (CPU, "cpu"),
            (MEM, "mem"),
            (SWAP, "swap"),
            (DISK, "disk"),
            (DISKIO, "diskio"),
            (NET, "net"),
            (TEMPERATURE, "temperature"),
            (SYSTEM, "system"),
            (POWER, "power"),
            (STORAGE_HEALTH, "storage_health"),
        ] {
            assert_eq!(SCHEMA[index].name, name);
        }
    }

    #[test]
    fn the_visitor_sees_what_the_encoder_writes() {
        let sample = sample_with_every_family();
        let mut visited = Vec::new();
        visit_points(&sample, |point| {
            let schema = &SCHEMA[point.measurement_index()];
            assert_eq!(schema.name, point.measurement());
            for (key, _) in point.tags() {
                assert!(schema.tags.contains(&key), "{key}");
            }
            for (index, (name, _)) in schema.fields.iter().enumerate() {
                let by_name = point.fields().find(|(key, _)| key == name).map(|(_, v)| v);
                assert_eq!(point.field(index), by_name, "{}.{name}", schema.name);
            }
            visited.push((
                point.measurement(),
                point
                    .tags()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>(),
                point.fields().count(),
            ));
        });
        let text = encode(&sample);
        assert_eq!(visited.len(), text.lines().count());
        for ((measurement, tags, fields), line) in visited.iter().zip(parse_lines(&text)) {
            let line = line.unwrap();
            assert_eq!(line.series.measurement.as_str(), *measurement);
            assert_eq!(line.field_set.len(), *fields);
            for tag in tags {
                let (k, v) = tag.split_once('=').unwrap();
                assert_eq!(line.tag_value(k).unwrap().as_str(), v);
            }
        }
        let mut disk = None;
        visit_points(&sample, |point| {
            if point.measurement() == "disk" {
                disk = point.field(4);
            }
        });
        assert_eq!(disk, Some(Value::Float(15.0)), "df's rounded-up percent");
    }

    #[test]
    fn the_visitor_leaves_out_what_the_encoder_leaves_out() {
        let mut sample = full_sample();
        sample.temperatures[0].celsius = f64::NAN;
        sample.cpu.as_mut().unwrap().usage_percent = f64::INFINITY;
        let mut measurements = Vec::new();
        visit_points(&sample, |point| {
            if point.measurement() == "cpu" {
                assert_eq!(point.field(0), None, "infinity is not a value");
                assert_eq!(point.field(3), Some(Value::Integer(1500)));
                assert_eq!(point.field(99), None);
            }
            measurements.push(point.measurement());
        });
        assert!(!measurements.contains(&"temperature"));
        assert_eq!(measurements.len(), encode(&sample).lines().count());
    }

    #[test]
    fn clean_tag_values_are_borrowed() {
        assert!(matches!(
            clean_tag_value("/mnt/usb disk"),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(clean_tag_value(r"a\b"), Some(Cow::Borrowed(_))));
        assert!(matches!(clean_tag_value("a\nb"), Some(Cow::Owned(_))));
        assert!(matches!(clean_tag_value("C:\\"), Some(Cow::Owned(_))));
        assert_eq!(clean_tag_value(""), None);
    }
}
