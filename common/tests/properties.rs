//! Property tests of the decoders and the encoder: whatever a sample holds (strings with
//! control characters, commas, spaces, `=`, quotes, backslashes, unicode; NaN and infinities;
//! huge counters), its line protocol parses back, with the same crate InfluxDB's clients use,
//! to exactly the points a model of the encoder's rules expects; and no JSON body, however
//! broken, makes the push decoder panic.

use std::collections::BTreeMap;

use influxdb_line_protocol::{FieldValue, parse_lines};
use pivitals_common::line_protocol::{MAX_TAG_VALUE_LEN, encode_sample};
use pivitals_common::{
    CpuVitals, DiskIoRates, DiskIoVitals, DiskVitals, Labels, LoadAverage, MemoryVitals, NetRates,
    NetVitals, PowerVitals, StorageHealthVitals, SwapVitals, TemperatureVitals, Throttling,
    VitalsPayload, VitalsPush, validate,
};
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

/// Characters that line protocol escapes or that could break a line, mixed with any char.
fn nasty_char() -> impl Strategy<Value = char> {
    prop_oneof![
        prop::sample::select(vec![
            ',', ' ', '=', '"', '\'', '\\', '\n', '\r', '\t', '\0', '#', 'é', '温', '🔥', '\u{7f}',
            '\u{85}', '\u{2028}', 'a', 'Z', '0', '-', '/',
        ]),
        any::<char>(),
    ]
}

fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        vec(nasty_char(), 0..12).prop_map(String::from_iter),
        // Long enough to be cut at MAX_TAG_VALUE_LEN, sometimes in the middle of a char.
        vec(nasty_char(), 100..300).prop_map(String::from_iter),
    ]
}

fn from_chars(first: &'static str, rest: &'static str, max: usize) -> BoxedStrategy<String> {
    let first: Vec<char> = first.chars().collect();
    let rest: Vec<char> = rest.chars().collect();
    (
        prop::sample::select(first),
        vec(prop::sample::select(rest), 0..max),
    )
        .prop_map(|(c, tail)| std::iter::once(c).chain(tail).collect())
        .boxed()
}

const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn node_name() -> BoxedStrategy<String> {
    from_chars(ALNUM, "abcXYZ019._-", 20)
}

fn labels() -> impl Strategy<Value = Labels> {
    let key = from_chars(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
        "abcXYZ019_",
        8,
    );
    let value = from_chars(ALNUM, "abcXYZ019._:/@+-", 10);
    btree_map(key, value, 0..4).prop_filter("valid labels", |l| validate::labels(l).is_ok())
}

fn float() -> impl Strategy<Value = f64> {
    prop_oneof![
        prop::sample::select(vec![
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
            -0.0,
            f64::MAX,
            f64::MIN_POSITIVE,
            1e-300,
        ]),
        any::<f64>(),
        -1000.0..1000.0f64,
    ]
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![
        prop::sample::select(vec![0, 1, i64::MAX as u64, i64::MAX as u64 + 1, u64::MAX]),
        any::<u64>(),
    ]
}

fn some_count() -> impl Strategy<Value = Option<u64>> {
    prop::option::of(count())
}

fn some_float() -> impl Strategy<Value = Option<f64>> {
    prop::option::of(float())
}

fn some_flag() -> impl Strategy<Value = Option<bool>> {
    prop::option::of(any::<bool>())
}

fn payload() -> impl Strategy<Value = VitalsPayload> {
    let cpu = (
        (float(), some_float(), some_float()),
        (some_count(), some_count(), some_count()),
        any::<u32>(),
    )
        .prop_map(|((u, umin, umax), (f, fmin, fmax), c)| CpuVitals {
            usage_percent: u,
            usage_percent_min: umin,
            usage_percent_max: umax,
            frequency_mhz: f,
            frequency_mhz_min: fmin,
            frequency_mhz_max: fmax,
            cores: c,
        });
    let load = (float(), float(), float(), some_float(), some_float()).prop_map(
        |(one, five, fifteen, one_min, one_max)| LoadAverage {
            one,
            five,
            fifteen,
            one_min,
            one_max,
        },
    );
    let memory = (count(), count(), count(), some_count(), some_count()).prop_map(
        |(t, a, u, umin, umax)| MemoryVitals {
            total_bytes: t,
            available_bytes: a,
            used_bytes: u,
            used_bytes_min: umin,
            used_bytes_max: umax,
        },
    );
    let swap = (count(), count()).prop_map(|(t, u)| SwapVitals {
        total_bytes: t,
        used_bytes: u,
    });
    let disk = (
        (nasty_string(), nasty_string(), nasty_string()),
        (count(), count(), some_count(), some_count()),
        (some_count(), some_count()),
    )
        .prop_map(
            |((mount, device, fs_type), (t, u, free, avail), (itotal, ifree))| DiskVitals {
                mount,
                device,
                fs_type,
                total_bytes: t,
                used_bytes: u,
                free_bytes: free,
                available_bytes: avail,
                inodes_total: itotal,
                inodes_free: ifree,
            },
        );
    let disk_io = (
        nasty_string(),
        (count(), count(), count(), count(), count()),
        prop::option::of((float(), float(), float(), float(), float())),
    )
        .prop_map(|(device, (r, w, rb, wb, t), rates)| DiskIoVitals {
            device,
            reads: r,
            writes: w,
            read_bytes: rb,
            written_bytes: wb,
            io_time_ms: t,
            rates: rates.map(|(a, b, c, d, e)| DiskIoRates {
                reads_per_second: a,
                writes_per_second: b,
                read_bytes_per_second: c,
                write_bytes_per_second: d,
                busy_percent: e,
            }),
        });
    let net = (
        nasty_string(),
        (count(), count(), count(), count()),
        (count(), count(), count(), count()),
        prop::option::of(vec(float(), 8)),
    )
        .prop_map(
            |(interface, (rx, tx, rxe, txe), (rxp, txp, rxd, txd), rates)| NetVitals {
                interface,
                rx_bytes: rx,
                tx_bytes: tx,
                rx_errors: rxe,
                tx_errors: txe,
                rx_packets: rxp,
                tx_packets: txp,
                rx_dropped: rxd,
                tx_dropped: txd,
                rates: rates.map(|r| NetRates {
                    rx_bytes_per_second: r[0],
                    tx_bytes_per_second: r[1],
                    rx_packets_per_second: r[2],
                    tx_packets_per_second: r[3],
                    rx_errors_per_second: r[4],
                    tx_errors_per_second: r[5],
                    rx_dropped_per_second: r[6],
                    tx_dropped_per_second: r[7],
                }),
            },
        );
    let temp = (nasty_string(), float(), some_float(), some_float()).prop_map(
        |(sensor, celsius, celsius_min, celsius_max)| TemperatureVitals {
            sensor,
            celsius,
            celsius_min,
            celsius_max,
        },
    );
    let power = (
        (some_flag(), some_count(), some_count()),
        (some_flag(), some_flag(), some_flag(), some_flag()),
        (some_count(), some_count()),
    )
        .prop_map(
            |((now, secs, events), (uv, cap, thr, soft), (rpm, pwm))| PowerVitals {
                under_voltage_now: now,
                under_voltage_seconds: secs,
                under_voltage_events: events,
                under_voltage_since_boot: uv,
                frequency_capped_since_boot: cap,
                throttled_since_boot: thr,
                soft_temp_limit_since_boot: soft,
                fan_rpm: rpm,
                fan_pwm: pwm,
            },
        );
    let health = (
        nasty_string(),
        (some_count(), some_count(), some_count()),
        (some_count(), some_count(), some_count()),
    )
        .prop_map(
            |(device, (a, b, eol), (used, spare, errors))| StorageHealthVitals {
                device,
                emmc_life_time_a: a,
                emmc_life_time_b: b,
                emmc_pre_eol: eol,
                nvme_percentage_used: used,
                nvme_available_spare: spare,
                nvme_media_errors: errors,
            },
        );
    let families = (
        prop::option::of(cpu),
        prop::option::of(load),
        prop::option::of(memory),
        prop::option::of(swap),
        vec(disk, 0..4),
        vec(net, 0..4),
        vec(temp, 0..4),
    );
    let pi_families = (
        vec(disk_io, 0..3),
        prop::option::of(power),
        vec(health, 0..3),
    );
    let rest = (
        -9_223_372_036_854i64..=9_223_372_036_854i64,
        prop::option::of(count()),
        prop::option::of(count()),
        prop::option::of(any::<u32>().prop_map(|raw| Throttling { raw })),
    );
    (families, pi_families, rest).prop_map(
        |(
            (cpu, load, memory, swap, disks, networks, temperatures),
            (disk_io, power, storage_health),
            (ts, up, procs, thr),
        )| {
            VitalsPayload {
                timestamp_ms: ts,
                cpu,
                load,
                memory,
                swap,
                disks,
                networks,
                temperatures,
                uptime_seconds: up,
                process_count: procs,
                throttling: thr,
                disk_io,
                power,
                storage_health,
            }
        },
    )
}

/// A field value as the model expects it back.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expected {
    Float(u64),
    Integer(i64),
}

type Tags = BTreeMap<String, String>;
type Fields = BTreeMap<String, Expected>;

#[derive(Debug, PartialEq)]
struct Point {
    measurement: String,
    tags: Tags,
    fields: Fields,
}

/// The encoder's rules, written independently of it (see the `line_protocol` module doc).
fn model(node: &str, labels: &Labels, s: &VitalsPayload) -> Vec<Point> {
    let int = |v: u64| Some(Expected::Integer(i64::try_from(v).unwrap_or(i64::MAX)));
    let float = |v: f64| v.is_finite().then(|| Expected::Float(v.to_bits()));
    let percent = |part: u64, whole: u64| {
        (whole > 0)
            .then(|| part as f64 * 100.0 / whole as f64)
            .and_then(float)
    };
    let clean = |raw: &str| {
        let mut text: String = raw
            .chars()
            .map(|c| if c.is_control() { '_' } else { c })
            .collect();
        while text.len() > MAX_TAG_VALUE_LEN {
            text.pop();
        }
        let mut trailing = 0;
        while text.ends_with('\\') {
            text.pop();
            trailing += 1;
        }
        text.push_str(&"_".repeat(trailing));
        (!text.is_empty()).then_some(text)
    };
    let flag = |on: bool| Some(Expected::Integer(i64::from(on)));
    let mut points = Vec::new();
    let mut point = |measurement: &str,
                     extra: Vec<(&str, Option<String>)>,
                     fields: Vec<(&str, Option<Expected>)>| {
        let fields: Fields = fields
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
        if fields.is_empty() {
            return;
        }
        let mut tags: Tags = labels.clone();
        tags.insert("node".into(), node.into());
        for (k, v) in extra {
            if let Some(v) = v {
                tags.insert(k.into(), v);
            }
        }
        points.push(Point {
            measurement: measurement.into(),
            tags,
            fields,
        });
    };
    let rate = |n: &NetVitals, f: fn(&NetRates) -> f64| n.rates.as_ref().and_then(|r| float(f(r)));
    if let Some(cpu) = &s.cpu {
        point(
            "cpu",
            vec![],
            vec![
                ("usage_percent", float(cpu.usage_percent)),
                ("usage_percent_min", cpu.usage_percent_min.and_then(float)),
                ("usage_percent_max", cpu.usage_percent_max.and_then(float)),
                ("frequency_mhz", cpu.frequency_mhz.and_then(int)),
                ("frequency_mhz_min", cpu.frequency_mhz_min.and_then(int)),
                ("frequency_mhz_max", cpu.frequency_mhz_max.and_then(int)),
                (
                    "cores",
                    (cpu.cores > 0).then(|| int(cpu.cores.into())).flatten(),
                ),
            ],
        );
    }
    if let Some(m) = &s.memory {
        point(
            "mem",
            vec![],
            vec![
                ("total_bytes", int(m.total_bytes)),
                ("available_bytes", int(m.available_bytes)),
                ("used_bytes", int(m.used_bytes)),
                ("used_bytes_min", m.used_bytes_min.and_then(int)),
                ("used_bytes_max", m.used_bytes_max.and_then(int)),
                ("used_percent", percent(m.used_bytes, m.total_bytes)),
                (
                    "used_percent_min",
                    m.used_bytes_min.and_then(|u| percent(u, m.total_bytes)),
                ),
                (
                    "used_percent_max",
                    m.used_bytes_max.and_then(|u| percent(u, m.total_bytes)),
                ),
            ],
        );
    }
    if let Some(w) = &s.swap {
        point(
            "swap",
            vec![],
            vec![
                ("total_bytes", int(w.total_bytes)),
                ("used_bytes", int(w.used_bytes)),
                ("used_percent", percent(w.used_bytes, w.total_bytes)),
            ],
        );
    }
    for d in &s.disks {
        let Some(mount) = clean(&d.mount) else {
            continue;
        };
        point(
            "disk",
            vec![
                ("mount", Some(mount)),
                ("device", clean(&d.device)),
                ("fstype", clean(&d.fs_type)),
            ],
            vec![
                ("total_bytes", int(d.total_bytes)),
                ("used_bytes", int(d.used_bytes)),
                (
                    "free_bytes",
                    int(d
                        .free_bytes
                        .unwrap_or(d.total_bytes.saturating_sub(d.used_bytes))),
                ),
                ("available_bytes", d.available_bytes.and_then(int)),
                (
                    "used_percent",
                    match d.available_bytes {
                        Some(avail) => {
                            df_percent(d.used_bytes, d.used_bytes as u128 + avail as u128)
                        }
                        None => percent(d.used_bytes, d.total_bytes),
                    },
                ),
                ("inodes_total", d.inodes_total.and_then(int)),
                (
                    "inodes_used",
                    d.inodes_total
                        .zip(d.inodes_free)
                        .and_then(|(t, f)| int(t.saturating_sub(f))),
                ),
                ("inodes_free", d.inodes_free.and_then(int)),
                (
                    "inodes_used_percent",
                    d.inodes_total
                        .zip(d.inodes_free)
                        .filter(|(t, _)| *t > 0)
                        .and_then(|(t, f)| df_percent(t.saturating_sub(f), t as u128)),
                ),
            ],
        );
    }
    for io in &s.disk_io {
        let Some(device) = clean(&io.device) else {
            continue;
        };
        let r = io.rates.as_ref();
        point(
            "diskio",
            vec![("device", Some(device))],
            vec![
                ("reads", int(io.reads)),
                ("writes", int(io.writes)),
                ("read_bytes", int(io.read_bytes)),
                ("written_bytes", int(io.written_bytes)),
                ("io_time_ms", int(io.io_time_ms)),
                (
                    "reads_per_second",
                    r.and_then(|r| float(r.reads_per_second)),
                ),
                (
                    "writes_per_second",
                    r.and_then(|r| float(r.writes_per_second)),
                ),
                (
                    "read_bytes_per_second",
                    r.and_then(|r| float(r.read_bytes_per_second)),
                ),
                (
                    "write_bytes_per_second",
                    r.and_then(|r| float(r.write_bytes_per_second)),
                ),
                ("busy_percent", r.and_then(|r| float(r.busy_percent))),
            ],
        );
    }
    for n in &s.networks {
        let Some(interface) = clean(&n.interface) else {
            continue;
        };
        point(
            "net",
            vec![("interface", Some(interface))],
            vec![
                ("rx_bytes", int(n.rx_bytes)),
                ("tx_bytes", int(n.tx_bytes)),
                ("rx_errors", int(n.rx_errors)),
                ("tx_errors", int(n.tx_errors)),
                ("rx_packets", int(n.rx_packets)),
                ("tx_packets", int(n.tx_packets)),
                ("rx_dropped", int(n.rx_dropped)),
                ("tx_dropped", int(n.tx_dropped)),
                ("rx_bytes_per_second", rate(n, |r| r.rx_bytes_per_second)),
                ("tx_bytes_per_second", rate(n, |r| r.tx_bytes_per_second)),
                (
                    "rx_packets_per_second",
                    rate(n, |r| r.rx_packets_per_second),
                ),
                (
                    "tx_packets_per_second",
                    rate(n, |r| r.tx_packets_per_second),
                ),
                ("rx_errors_per_second", rate(n, |r| r.rx_errors_per_second)),
                ("tx_errors_per_second", rate(n, |r| r.tx_errors_per_second)),
                (
                    "rx_dropped_per_second",
                    rate(n, |r| r.rx_dropped_per_second),
                ),
                (
                    "tx_dropped_per_second",
                    rate(n, |r| r.tx_dropped_per_second),
                ),
            ],
        );
    }
    for t in &s.temperatures {
        let Some(sensor) = clean(&t.sensor) else {
            continue;
        };
        point(
            "temperature",
            vec![("sensor", Some(sensor))],
            vec![
                ("celsius", float(t.celsius)),
                ("celsius_min", t.celsius_min.and_then(float)),
                ("celsius_max", t.celsius_max.and_then(float)),
            ],
        );
    }
    let load = s.load.as_ref();
    let thr = s.throttling;
    point(
        "system",
        vec![],
        vec![
            ("load1", load.and_then(|l| float(l.one))),
            ("load1_min", load.and_then(|l| l.one_min).and_then(float)),
            ("load1_max", load.and_then(|l| l.one_max).and_then(float)),
            ("load5", load.and_then(|l| float(l.five))),
            ("load15", load.and_then(|l| float(l.fifteen))),
            ("uptime_seconds", s.uptime_seconds.and_then(int)),
            ("processes", s.process_count.and_then(int)),
            ("throttled_flags", thr.and_then(|t| int(t.raw.into()))),
            (
                "under_voltage",
                thr.and_then(|t| flag(t.under_voltage_now())),
            ),
            (
                "frequency_capped",
                thr.and_then(|t| flag(t.frequency_capped_now())),
            ),
            ("throttled", thr.and_then(|t| flag(t.throttled_now()))),
            (
                "soft_temp_limit",
                thr.and_then(|t| flag(t.soft_temperature_limit_now())),
            ),
        ],
    );
    if let Some(p) = &s.power {
        point(
            "power",
            vec![],
            vec![
                ("under_voltage", p.under_voltage_now.and_then(flag)),
                (
                    "under_voltage_seconds",
                    p.under_voltage_seconds.and_then(int),
                ),
                ("under_voltage_events", p.under_voltage_events.and_then(int)),
                (
                    "under_voltage_since_boot",
                    p.under_voltage_since_boot.and_then(flag),
                ),
                (
                    "frequency_capped_since_boot",
                    p.frequency_capped_since_boot.and_then(flag),
                ),
                (
                    "throttled_since_boot",
                    p.throttled_since_boot.and_then(flag),
                ),
                (
                    "soft_temp_limit_since_boot",
                    p.soft_temp_limit_since_boot.and_then(flag),
                ),
                ("fan_rpm", p.fan_rpm.and_then(int)),
                ("fan_pwm", p.fan_pwm.and_then(int)),
            ],
        );
    }
    for h in &s.storage_health {
        let Some(device) = clean(&h.device) else {
            continue;
        };
        point(
            "storage_health",
            vec![("device", Some(device))],
            vec![
                ("emmc_life_time_a", h.emmc_life_time_a.and_then(int)),
                ("emmc_life_time_b", h.emmc_life_time_b.and_then(int)),
                ("emmc_pre_eol", h.emmc_pre_eol.and_then(int)),
                ("nvme_percentage_used", h.nvme_percentage_used.and_then(int)),
                ("nvme_available_spare", h.nvme_available_spare.and_then(int)),
                ("nvme_media_errors", h.nvme_media_errors.and_then(int)),
            ],
        );
    }
    points
}

/// `df`'s percentage: `part` of `whole`, rounded up to a whole number.
fn df_percent(part: u64, whole: u128) -> Option<Expected> {
    if whole == 0 {
        return None;
    }
    let scaled = u128::from(part) * 100;
    let mut value = scaled / whole;
    if scaled % whole != 0 {
        value += 1;
    }
    Some(Expected::Float((value as f64).to_bits()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_sample_parses_back_to_exactly_the_expected_points(
        node in node_name(),
        labels in labels(),
        sample in payload(),
    ) {
        prop_assume!(validate::node_name(&node).is_ok());
        let mut out = Vec::new();
        let written = encode_sample(&node, &labels, &sample, &mut out).unwrap();
        let text = String::from_utf8(out).expect("line protocol is UTF-8");
        let mut parsed = Vec::new();
        for line in parse_lines(&text) {
            let line = line.map_err(|e| TestCaseError::fail(format!("{e}: {text}")))?;
            prop_assert_eq!(line.timestamp, Some(sample.timestamp_ms * 1_000_000));
            let tags: Tags = line
                .series
                .tag_set
                .iter()
                .flatten()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let mut fields = Fields::new();
            for (k, v) in &line.field_set {
                let value = match v {
                    FieldValue::F64(f) => {
                        prop_assert!(f.is_finite(), "{} = {}", k, f);
                        Expected::Float(f.to_bits())
                    }
                    FieldValue::I64(i) => Expected::Integer(*i),
                    other => return Err(TestCaseError::fail(format!("{k} = {other:?}"))),
                };
                fields.insert(k.to_string(), value);
            }
            parsed.push(Point {
                measurement: line.series.measurement.to_string(),
                tags,
                fields,
            });
        }
        let expected = model(&node, &labels, &sample);
        prop_assert_eq!(written, expected.len());
        prop_assert_eq!(parsed, expected);
    }

    #[test]
    fn timestamps_out_of_nanosecond_range_are_an_error_not_a_wrap(ts in any::<i64>()) {
        let sample = VitalsPayload { timestamp_ms: ts, uptime_seconds: Some(1), ..Default::default() };
        let mut out = Vec::new();
        let result = encode_sample("pi", &Labels::new(), &sample, &mut out);
        prop_assert_eq!(result.is_ok(), ts.checked_mul(1_000_000).is_some());
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_push_decoder(bytes in vec(any::<u8>(), 0..512)) {
        let _ = serde_json::from_slice::<VitalsPush>(&bytes);
    }

    #[test]
    fn mangled_pushes_decode_or_error_without_panicking(
        sample in payload(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), 0..3u8), 1..8),
    ) {
        let mut bytes = serde_json::to_vec(&VitalsPush { samples: vec![sample], ..Default::default() }).unwrap();
        for (at, byte, kind) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => bytes[i] = byte,
                _ if i < bytes.len() => {
                    bytes.remove(i);
                }
                _ => {}
            }
        }
        if let Ok(push) = serde_json::from_slice::<VitalsPush>(&bytes) {
            // Whatever decodes can be encoded without panicking.
            for sample in &push.samples {
                let _ = encode_sample("pi", &Labels::new(), sample, &mut Vec::new());
            }
        }
    }
}
