//! Nothing accepted is lost: the real binaries at `PIVITALS_INTERVAL=1s` against a real
//! InfluxDB 1.x while InfluxDB goes away, the primary is killed with `kill -9`, or an agent is
//! restarted while the primary is down. Each test compares, per node, the samples the agent
//! says the primary acknowledged with the distinct timestamps InfluxDB holds, and checks that
//! no two consecutive samples are further apart than the interval plus jitter. Binaries start
//! through testkit's harness.

use std::path::Path;
use std::time::Duration;

use pivitals_testkit::harness::{
    Proc, eventually, log_fields, start_agent, start_primary_on_influx_v1,
};
use pivitals_testkit::samples::now_ms;
use pivitals_testkit::{InfluxV1, free_port};

const DB: &str = "pivitals";
/// Interval (1 s) plus scheduling jitter: a larger gap means a lost sample.
const MAX_GAP_MS: i64 = 1900;

/// The `sent`, `rejected` and `dropped` counts an agent logs when it stops.
fn agent_summary(agent: &Proc) -> (u64, u64, u64) {
    let fields = log_fields(&agent.log(), "pivitals-agent stopped");
    let count = |key: &str| {
        fields
            .get(key)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{}: no {key} in {fields:?}", agent.name))
    };
    (count("sent"), count("rejected"), count("dropped"))
}

fn stored_timestamps(influx: &InfluxV1, node: &str) -> Vec<i64> {
    let mut ts = influx
        .timestamps_ms(
            DB,
            &format!("SELECT usage_percent FROM cpu WHERE node = '{node}'"),
        )
        .unwrap_or_default();
    ts.dedup();
    ts
}

/// Stops the agents with SIGTERM (last push, goodbye) and asserts, per node, that InfluxDB
/// holds exactly the samples the primary acknowledged, without a gap.
fn assert_nothing_lost(influx: &InfluxV1, agents: &mut [Proc]) {
    for agent in agents.iter_mut() {
        let status = agent.terminate(Duration::from_secs(20));
        assert!(
            status.success(),
            "{} exit {status}:\n{}",
            agent.name,
            agent.log_tail()
        );
    }
    for agent in agents.iter() {
        let (sent, rejected, dropped) = agent_summary(agent);
        assert!(
            !agent.log().contains("are lost"),
            "{}:\n{}",
            agent.name,
            agent.log_tail()
        );
        assert_eq!(
            (rejected, dropped),
            (0, 0),
            "{}: samples refused or dropped",
            agent.name
        );
        let stored = eventually(
            &format!("{}: {sent} samples in InfluxDB", agent.name),
            Duration::from_secs(90),
            || {
                let ts = stored_timestamps(influx, &agent.name);
                (ts.len() as u64 >= sent).then_some(ts)
            },
        );
        println!(
            "{}: acknowledged {sent}, stored {}",
            agent.name,
            stored.len()
        );
        assert_eq!(
            stored.len() as u64,
            sent,
            "{}: stored more than acknowledged",
            agent.name
        );
        let worst = stored.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        println!("{}: largest gap between samples {worst} ms", agent.name);
        assert!(worst <= MAX_GAP_MS, "{}: a gap of {worst} ms", agent.name);
    }
}

fn start_agents(dir: &Path, url: &str, names: &[&str]) -> Vec<Proc> {
    names
        .iter()
        .map(|n| start_agent(dir, n, url, "1s"))
        .collect()
}

#[test]
fn influxdb_down_for_20_seconds_loses_no_sample() {
    let mut influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);
    let mut agents = start_agents(dir.path(), &url, &["dur-influx-a", "dur-influx-b"]);

    eventually("first points", Duration::from_secs(30), || {
        (stored_timestamps(&influx, "dur-influx-a").len() >= 3).then_some(())
    });
    influx.kill();
    std::thread::sleep(Duration::from_secs(20));
    influx.restart().unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(Duration::from_secs(3));

    assert_nothing_lost(&influx, &mut agents);
    primary.stop_cleanly(Duration::from_secs(30));
}

#[test]
fn primary_killed_with_kill_9_and_restarted_loses_no_sample() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let slow_flush = [("PIVITALS_BATCH__FLUSH_INTERVAL", "5s".to_owned())];
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &slow_flush);
    let mut agents = start_agents(dir.path(), &url, &["dur-kill-a", "dur-kill-b"]);

    eventually("first points", Duration::from_secs(30), || {
        (stored_timestamps(&influx, "dur-kill-a").len() >= 3).then_some(())
    });
    // With a 5 s flush interval the kill finds points spooled but not yet written.
    std::thread::sleep(Duration::from_secs(3));
    primary.kill_hard();
    std::thread::sleep(Duration::from_secs(6));
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &slow_flush);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        primary
            .log()
            .contains("spool holds points from before the restart"),
        "the kill found nothing spooled, so it proved nothing:\n{}",
        primary.log_tail()
    );

    assert_nothing_lost(&influx, &mut agents);
    primary.stop_cleanly(Duration::from_secs(30));
}

#[test]
fn agent_killed_and_restarted_while_the_primary_is_down_delivers_its_backlog() {
    let influx = InfluxV1::start().unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let node = "dur-agent";
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);
    let mut agent = start_agent(dir.path(), node, &url, "1s");
    eventually("first points", Duration::from_secs(30), || {
        (stored_timestamps(&influx, node).len() >= 3).then_some(())
    });

    // The primary goes away; the agent samples into its backlog for a while, then crashes.
    primary.stop_cleanly(Duration::from_secs(30));
    let primary_down_at = now_ms();
    std::thread::sleep(Duration::from_secs(6));
    let killed_at = now_ms();
    agent.kill_hard();
    std::thread::sleep(Duration::from_millis(1500));
    let mut agent = start_agent(dir.path(), node, &url, "1s");
    let restarted_at = now_ms();
    std::thread::sleep(Duration::from_secs(4));
    let mut primary = start_primary_on_influx_v1(dir.path(), port, &influx, DB, &[]);

    let stored = eventually("the backlog in InfluxDB", Duration::from_secs(90), || {
        let ts = stored_timestamps(&influx, node);
        (ts.last().copied().unwrap_or(0) > restarted_at + 5_000).then_some(ts)
    });
    let before_kill: Vec<i64> = stored.iter().copied().filter(|t| *t <= killed_at).collect();
    let after_restart: Vec<i64> = stored
        .iter()
        .copied()
        .filter(|t| *t >= restarted_at - 1000)
        .collect();
    let sampled_while_down = before_kill.iter().filter(|t| **t > primary_down_at).count();
    println!(
        "{node}: {} samples stored, {sampled_while_down} of them taken while the primary was down before the crash",
        stored.len()
    );
    assert!(
        sampled_while_down >= 5,
        "the backlog taken while the primary was down is missing"
    );
    for (what, run) in [
        ("before the crash", &before_kill),
        ("after the restart", &after_restart),
    ] {
        let worst = run.windows(2).map(|w| w[1] - w[0]).max().unwrap_or(0);
        assert!(worst <= MAX_GAP_MS, "{node} {what}: a gap of {worst} ms");
    }
    let last_before = before_kill.last().copied().unwrap_or(0);
    assert!(
        killed_at - last_before <= MAX_GAP_MS,
        "the samples of the last {} ms before the crash are missing",
        killed_at - last_before
    );
    agent.stop_cleanly(Duration::from_secs(20));
    primary.stop_cleanly(Duration::from_secs(30));
}
