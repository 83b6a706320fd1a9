//! Property tests of the decoders and the encoder: whatever a sample holds (strings with
//! control characters, commas, spaces, `=`, quotes, backslashes, unicode; NaN and infinities;
//! huge counters), its line protocol parses back, with the same crate InfluxDB's clients use,
//! to exactly the points a model of the encoder's rules expects; and no JSON body, however
//! broken, makes the push decoder panic.

use std::collections::BTreeMap;

use influxdb_line_protocol::{FieldValue, parse_lines};
use pivitals_common::line_protocol::{MAX_TAG_VALUE_LEN, encode_sample};
use pivitals_common::{
    CpuVitals, DiskVitals, Labels, LoadAverage, MemoryVitals, NetVitals, SwapVitals,
    TemperatureVitals, Throttling, VitalsPayload, VitalsPush, validate,
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

fn payload() -> impl Strategy<Value = VitalsPayload> {
    let cpu = (float(), prop::option::of(count()), any::<u32>()).prop_map(|(u, f, c)| CpuVitals {
        usage_percent: u,
        frequency_mhz: f,
        cores: c,
    });
    let load = (float(), float(), float()).prop_map(|(one, five, fifteen)| LoadAverage {
        one,
        five,
        fifteen,
    });
    let memory = (count(), count(), count()).prop_map(|(t, a, u)| MemoryVitals {
        total_bytes: t,
        available_bytes: a,
        used_bytes: u,
    });
    let swap = (count(), count()).prop_map(|(t, u)| SwapVitals {
        total_bytes: t,
        used_bytes: u,
    });
    let disk = (
        nasty_string(),
        nasty_string(),
        nasty_string(),
        count(),
        count(),
    )
        .prop_map(|(mount, device, fs_type, t, u)| DiskVitals {
            mount,
            device,
            fs_type,
            total_bytes: t,
            used_bytes: u,
        });
    let net = (nasty_string(), count(), count(), count(), count()).prop_map(
        |(interface, rx, tx, rxe, txe)| NetVitals {
            interface,
            rx_bytes: rx,
            tx_bytes: tx,
            rx_errors: rxe,
            tx_errors: txe,
        },
    );
    let temp = (nasty_string(), float())
        .prop_map(|(sensor, celsius)| TemperatureVitals { sensor, celsius });
    let families = (
        prop::option::of(cpu),
        prop::option::of(load),
        prop::option::of(memory),
        prop::option::of(swap),
        vec(disk, 0..4),
        vec(net, 0..4),
        vec(temp, 0..4),
    );
    let rest = (
        -9_223_372_036_854i64..=9_223_372_036_854i64,
        prop::option::of(count()),
        prop::option::of(count()),
        prop::option::of(any::<u32>().prop_map(|raw| Throttling { raw })),
    );
    (families, rest).prop_map(
        |((cpu, load, memory, swap, disks, networks, temperatures), (ts, up, procs, thr))| {
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
    if let Some(cpu) = &s.cpu {
        point(
            "cpu",
            vec![],
            vec![
                ("usage_percent", float(cpu.usage_percent)),
                ("frequency_mhz", cpu.frequency_mhz.and_then(int)),
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
                ("used_percent", percent(m.used_bytes, m.total_bytes)),
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
                    int(d.total_bytes.saturating_sub(d.used_bytes)),
                ),
                ("used_percent", percent(d.used_bytes, d.total_bytes)),
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
            vec![("celsius", float(t.celsius))],
        );
    }
    let flag = |on: bool| Some(Expected::Integer(i64::from(on)));
    let load = s.load.as_ref();
    let thr = s.throttling;
    point(
        "system",
        vec![],
        vec![
            ("load1", load.and_then(|l| float(l.one))),
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
    points
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
        let mut bytes = serde_json::to_vec(&VitalsPush { samples: vec![sample] }).unwrap();
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
