//! What tests send a primary: registrations and vitals payloads, built from the wire types of
//! `pivitals_common` so a renamed field breaks the build, not the test's meaning.

use pivitals_common::{
    CpuVitals, DiskVitals, MemoryVitals, NodeInfo, PowerVitals, RegisterRequest,
    StorageHealthVitals, TemperatureVitals, VitalsPayload, VitalsPush,
};
use serde_json::Value;

/// Milliseconds since the Unix epoch, as samples are stamped.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A Raspberry Pi 4 (4 cores, 8 GiB) named `name`, labelled `stack=1`, pushing every second.
pub fn register_request(name: &str) -> RegisterRequest {
    RegisterRequest {
        node_name: name.into(),
        info: NodeInfo {
            hostname: name.into(),
            board_model: Some("Raspberry Pi 4 Model B Rev 1.4".into()),
            cpu_cores: 4,
            memory_total_bytes: 8 << 30,
            ..Default::default()
        },
        labels: [("stack".to_string(), "1".to_string())].into(),
        interval_seconds: 1,
        hardware: None,
    }
}

/// A sample with only CPU (`cpu` percent, 4 cores) and memory (40 of 100 bytes used): two
/// points in storage.
pub fn sample(ts: i64, cpu: f64) -> VitalsPayload {
    VitalsPayload {
        timestamp_ms: ts,
        cpu: Some(CpuVitals {
            usage_percent: cpu,
            frequency_mhz: None,
            cores: 4,
            ..Default::default()
        }),
        memory: Some(MemoryVitals {
            total_bytes: 100,
            available_bytes: 60,
            used_bytes: 40,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A sample with what the dashboard draws: CPU at 2.4 GHz, memory 25 % used, two disks (40 %
/// and 70 % full), two sensors (`celsius` and ten degrees less), an uptime of 3 d 4 h, and
/// what only a Raspberry Pi has: an under-voltage (2 events, 3 s) in the interval, a fan at
/// 3000 rpm, and an eMMC 10–20 % worn.
pub fn pi_sample(ts: i64, cpu: f64, celsius: f64) -> VitalsPayload {
    VitalsPayload {
        timestamp_ms: ts,
        cpu: Some(CpuVitals {
            usage_percent: cpu,
            frequency_mhz: Some(2400),
            cores: 4,
            ..Default::default()
        }),
        memory: Some(MemoryVitals {
            total_bytes: 1000,
            available_bytes: 750,
            used_bytes: 250,
            ..Default::default()
        }),
        disks: vec![
            DiskVitals {
                mount: "/".into(),
                device: "/dev/mmcblk0p2".into(),
                fs_type: "ext4".into(),
                total_bytes: 100,
                used_bytes: 40,
                ..Default::default()
            },
            DiskVitals {
                mount: "/mnt/ssd".into(),
                device: "/dev/sda1".into(),
                fs_type: "ext4".into(),
                total_bytes: 100,
                used_bytes: 70,
                ..Default::default()
            },
        ],
        temperatures: vec![
            TemperatureVitals {
                sensor: "cpu-thermal".into(),
                celsius,
                ..Default::default()
            },
            TemperatureVitals {
                sensor: "rp1_adc".into(),
                celsius: celsius - 10.0,
                ..Default::default()
            },
        ],
        uptime_seconds: Some(3 * 86_400 + 4 * 3600),
        power: Some(PowerVitals {
            under_voltage_now: Some(false),
            under_voltage_seconds: Some(3),
            under_voltage_events: Some(2),
            under_voltage_since_boot: Some(true),
            fan_rpm: Some(3000),
            fan_pwm: Some(120),
            ..Default::default()
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

/// The JSON body of `POST /api/v1/vitals`.
pub fn push_body(samples: Vec<VitalsPayload>) -> Value {
    serde_json::to_value(VitalsPush {
        samples,
        ..Default::default()
    })
    .expect("a push serializes")
}
