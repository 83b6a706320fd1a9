//! Vitals as a person checks them, read back from a real InfluxDB 1.x fed by the real agent and
//! primary binaries: a short CPU burst inside a long push interval shows as the interval's max
//! and not in its mean, and the root filesystem's use is what `df` says on this machine.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pivitals_testkit::harness::{
    Proc, eventually, rows, start_agent_with, start_primary_on_influx_v1,
};
use pivitals_testkit::{InfluxV1, free_port};
use serde_json::Value;

const DB: &str = "pivitals";

/// A real InfluxDB 1.x, the primary writing to it and one agent `name` pushing every
/// `interval` from its first sample on (no start jitter); `extra` agent settings win. Hold the
/// returned values for as long as the processes must run.
fn start(
    name: &str,
    interval: &str,
    extra: &[(&str, String)],
) -> (InfluxV1, tempfile::TempDir, Vec<Proc>) {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);
    let mut settings = vec![("PIVITALS_START_JITTER", "false".to_owned())];
    settings.extend(extra.iter().cloned());
    let agent = start_agent_with(dir.path(), name, &url, interval, &settings);
    (influx, dir, vec![agent, primary])
}

/// Keeps every core busy for `how_long`.
fn burst_cpu(how_long: Duration) {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..cores)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let mut x = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                x
            })
        })
        .collect();
    std::thread::sleep(how_long);
    stop.store(true, Ordering::Relaxed);
    for spinner in spinners {
        let _ = spinner.join();
    }
}

fn float(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("{value} is no number"))
}

#[test]
fn a_three_second_cpu_burst_in_a_twenty_second_interval_is_its_max_not_its_mean() {
    let (influx, _dir, _procs) = start(
        "burst",
        "20s",
        &[("PIVITALS_SAMPLE_EVERY", "1s".to_owned())],
    );
    let count = "SELECT count(usage_percent) FROM cpu WHERE node = 'burst'";
    // The first sample lands a moment after the agent starts; the burst then falls well
    // inside the next 20 s interval.
    eventually("the first cpu point", Duration::from_secs(30), || {
        (influx.count(DB, count).ok()? >= 1).then_some(())
    });
    let first_seen = Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    burst_cpu(Duration::from_secs(3));
    eventually(
        "the cpu point after the burst",
        Duration::from_secs(40),
        || (influx.count(DB, count).ok()? >= 2).then_some(()),
    );
    assert!(
        first_seen.elapsed() >= Duration::from_secs(10),
        "the second sample came {:?} after the first: not one 20 s interval",
        first_seen.elapsed()
    );
    let answer = influx
        .query(
            DB,
            "SELECT usage_percent, usage_percent_min, usage_percent_max FROM cpu \
             WHERE node = 'burst' ORDER BY time DESC LIMIT 1",
        )
        .unwrap();
    let point = rows(&answer).pop().expect("a cpu point");
    let (mean, min, max) = (float(&point[1]), float(&point[2]), float(&point[3]));
    assert!(max >= 90.0, "max {max} should show the burst: {answer}");
    assert!(
        mean < max && mean < 60.0,
        "mean {mean} should be the interval's average, below its max {max}"
    );
    assert!(min <= mean, "min {min} above mean {mean}");
}

/// `df`'s figures of `/`: size, used and available bytes, use % (rounded up).
fn df_root() -> (u64, u64, u64, u64) {
    let out = Command::new("df")
        .args(["-B1", "--output=size,used,avail,pcent", "/"])
        .output()
        .expect("df runs");
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<u64> = text
        .lines()
        .nth(1)
        .expect("a line for /")
        .split_whitespace()
        .map(|f| f.trim_end_matches('%').parse().expect("a number"))
        .collect();
    (fields[0], fields[1], fields[2], fields[3])
}

#[test]
fn the_root_filesystem_in_influxdb_is_what_df_shows() {
    let (influx, _dir, _procs) = start("df-node", "1s", &[]);
    let query = "SELECT total_bytes, used_bytes, available_bytes, used_percent FROM disk \
                 WHERE node = 'df-node' AND mount = '/' ORDER BY time DESC LIMIT 1";
    let point = eventually("a disk point of /", Duration::from_secs(30), || {
        rows(&influx.query(DB, query).ok()?).pop()
    });
    let (size, used, avail, pcent) = df_root();
    let (ours_size, ours_used, ours_avail, ours_pcent) = (
        float(&point[1]),
        float(&point[2]),
        float(&point[3]),
        float(&point[4]),
    );
    let within = |ours: f64, theirs: u64, what: &str| {
        let theirs = theirs as f64;
        assert!(
            (ours - theirs).abs() <= theirs * 0.01,
            "{what}: InfluxDB {ours}, df {theirs}"
        );
    };
    assert_eq!(ours_size, size as f64, "size");
    within(ours_used, used, "used bytes");
    within(ours_avail, avail, "available bytes");
    // Files may be written between the agent's sample and `df`: one percent either way.
    assert!(
        (ours_pcent - pcent as f64).abs() <= 1.0,
        "use%: InfluxDB {ours_pcent}, df {pcent}"
    );
    println!("/: InfluxDB {ours_used} used, {ours_pcent} %; df {used} used, {pcent} %");
}
