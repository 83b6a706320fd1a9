//! `GET /api/v1/placement` end to end: a real `pivitals-primary` and three real
//! `pivitals-agent`s at `PIVITALS_INTERVAL=1s`, each reading its own fixture root
//! (`PIVITALS_ROOT`): the host's `/proc` entries except `stat` and `meminfo`, which the test
//! writes. A thread advances the busy agent's CPU counters at 95 % busy and keeps its memory
//! low, while the idle agents' counters advance at 2 % busy with most memory available. The
//! busy node must not fit `cpu=1`, the idle ones must, labels must filter, a stopped node is
//! listed last as "not up", a node whose Pi throttling word shows throttling does not fit
//! until that is older than the window, and the README's `jq` pipeline must pick an idle node.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use pivitals_testkit::free_port;
use pivitals_testkit::harness::binaries::start_primary;
use pivitals_testkit::harness::{Proc, eventually, get_json, node_status, start_agent_with};
use serde_json::Value;

const BUSY: &str = "pl-busy";
const IDLE_A: &str = "pl-idle-a";
const IDLE_B: &str = "pl-idle-b";
const CORES: u64 = 4;
const GIB: u64 = 1 << 30;
/// Every wait is bounded by this.
const WITHIN: Duration = Duration::from_secs(40);

/// How an agent's fixture `/proc/stat` and `/proc/meminfo` evolve.
#[derive(Clone, Copy)]
struct Load {
    /// Busy clock ticks out of every 100, per core.
    busy_per_100: u64,
    mem_available_bytes: u64,
}

const BUSY_LOAD: Load = Load {
    busy_per_100: 95,
    mem_available_bytes: 200 << 20,
};
const IDLE_LOAD: Load = Load {
    busy_per_100: 2,
    mem_available_bytes: 3 * GIB + GIB / 2,
};

/// The agent's root: `proc/` holds a symlink to each of the host's non-process `/proc`
/// entries (`self` resolves to the reading agent) except `stat` and `meminfo`, which
/// [`write_proc`] writes; `sys/` the host's CPU and block devices, one thermal zone at 45 °C
/// and a Pi's throttling word, clear.
fn fixture_root(dir: &Path, name: &str) -> PathBuf {
    let root = dir.join(format!("{name}-root"));
    let proc_dir = root.join("proc");
    std::fs::create_dir_all(&proc_dir).unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().map_while(Result::ok) {
        let file_name = entry.file_name();
        let entry_name = file_name.to_string_lossy();
        let is_process = entry_name.chars().all(|c| c.is_ascii_digit());
        if is_process || entry_name == "stat" || entry_name == "meminfo" {
            continue;
        }
        std::os::unix::fs::symlink(entry.path(), proc_dir.join(&*entry_name)).unwrap();
    }
    let zone = root.join("sys/class/thermal/thermal_zone0");
    std::fs::create_dir_all(&zone).unwrap();
    std::fs::write(zone.join("type"), "cpu-thermal\n").unwrap();
    std::fs::write(zone.join("temp"), "45000\n").unwrap();
    let firmware = root.join(GET_THROTTLED);
    std::fs::create_dir_all(firmware.parent().unwrap()).unwrap();
    set_throttled(&root, "0x0");
    std::os::unix::fs::symlink("/sys/devices/system", root.join("sys/devices/system")).unwrap();
    std::os::unix::fs::symlink("/sys/block", root.join("sys/block")).unwrap();
    root
}

/// A Raspberry Pi's throttling word (`vcgencmd get_throttled`).
const GET_THROTTLED: &str = "sys/devices/platform/soc/soc:firmware/get_throttled";

fn set_throttled(root: &Path, word: &str) {
    write_atomically(&root.join(GET_THROTTLED), &format!("{word}\n")).unwrap();
}

/// Writes `file` atomically, so the agent never reads half of it.
fn write_atomically(path: &Path, content: &str) -> std::io::Result<()> {
    let next = path.with_extension("next");
    std::fs::write(&next, content)?;
    std::fs::rename(next, path)
}

/// `proc/stat` after `step` steps of 100 ticks per core at `load`, and `proc/meminfo`.
fn write_proc(root: &Path, load: Load, step: u64) -> std::io::Result<()> {
    // Booted 1000 steps ago at 50 % busy: the agent's first reading (since boot) shows about
    // 50 % on every node, so a node judged busy or idle was judged on the readings after it,
    // between which the collector measures the test's load.
    let busy = 1000 * 50 + step * load.busy_per_100;
    let idle = 1000 * 50 + step * (100 - load.busy_per_100);
    let mut stat = format!("cpu  {} 0 0 {} 0 0 0 0 0 0\n", busy * CORES, idle * CORES);
    for core in 0..CORES {
        stat.push_str(&format!("cpu{core} {busy} 0 0 {idle} 0 0 0 0 0 0\n"));
    }
    stat.push_str("intr 0\nctxt 0\nbtime 1700000000\nprocesses 1\n");
    write_atomically(&root.join("proc/stat"), &stat)?;
    let kib = |bytes: u64| bytes / 1024;
    let meminfo = format!(
        "MemTotal:       {} kB\nMemFree:        {} kB\nMemAvailable:   {} kB\n\
         SwapTotal:            0 kB\nSwapFree:             0 kB\n",
        kib(4 * GIB),
        kib(load.mem_available_bytes / 2),
        kib(load.mem_available_bytes),
    );
    write_atomically(&root.join("proc/meminfo"), &meminfo)
}

/// Advances every root's counters ten times a second until `stop` is set (or the roots are
/// gone: a failed test removed its directory).
fn drive(roots: Vec<(PathBuf, Load)>, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut step = 0;
        while !stop.load(Ordering::Relaxed) {
            step += 1;
            for (root, load) in &roots {
                if write_proc(root, *load, step).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

fn placement(url: &str, query: &str) -> Value {
    get_json(&format!("{url}/api/v1/placement?{query}"))
}

fn names(ranking: &Value) -> Vec<String> {
    ranking["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {ranking}"))
        .iter()
        .map(|n| n["node"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn entry<'a>(ranking: &'a Value, node: &str) -> &'a Value {
    ranking["nodes"]
        .as_array()
        .and_then(|nodes| nodes.iter().find(|n| n["node"] == node))
        .unwrap_or_else(|| panic!("{node} missing from {ranking:#}"))
}

/// The README's pipeline, `jq -r '[.nodes[] | select(.fits)][0].node'`, run on `body`; with
/// no `jq` installed, the same selection in `python3`.
fn best_by_readme_pipeline(body: &str) -> String {
    let jq_found = Command::new("jq")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut command = if jq_found {
        let mut jq = Command::new("jq");
        jq.args(["-r", "[.nodes[] | select(.fits)][0].node"]);
        jq
    } else {
        let mut python = Command::new("python3");
        python.args([
            "-c",
            "import json,sys; print([n for n in json.load(sys.stdin)['nodes'] if n['fits']][0]['node'])",
        ]);
        python
    };
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn start(dir: &Path, name: &str, url: &str, root: &Path, labels: &str) -> Proc {
    start_agent_with(
        dir,
        name,
        url,
        "1s",
        &[
            ("PIVITALS_START_JITTER", "false".to_owned()),
            ("PIVITALS_ROOT", root.display().to_string()),
            ("PIVITALS_LABELS", labels.to_owned()),
        ],
    )
}

#[test]
fn a_busy_agent_ranks_last_and_does_not_fit_while_idle_agents_do() {
    let dir = tempfile::tempdir().unwrap();
    let roots: Vec<(PathBuf, Load)> = [(BUSY, BUSY_LOAD), (IDLE_A, IDLE_LOAD), (IDLE_B, IDLE_LOAD)]
        .into_iter()
        .map(|(name, load)| {
            let root = fixture_root(dir.path(), name);
            write_proc(&root, load, 0).unwrap();
            (root, load)
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let driver = drive(roots.clone(), Arc::clone(&stop));

    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let primary = start_primary(
        dir.path(),
        port,
        // Only the agents are ranked, not this machine.
        &[("PIVITALS_SELF_MONITOR", "false".to_owned())],
    );
    let mut agents = vec![
        start(dir.path(), BUSY, &url, &roots[0].0, "stack=2,role=worker"),
        start(dir.path(), IDLE_A, &url, &roots[1].0, "stack=2,role=worker"),
        start(dir.path(), IDLE_B, &url, &roots[2].0, "stack=3,role=worker"),
    ];
    let logs = |agents: &[Proc]| {
        let mut text = format!("primary:\n{}", primary.log_tail());
        for agent in agents {
            text.push_str(&format!("\n{}:\n{}", agent.name, agent.log_tail()));
        }
        text
    };

    // Some one-second samples of each: the busy node does not fit one core.
    let query = "cpu=1&mem=512MiB&window=1m";
    let ranking = eventually(
        &format!("the busy node judged on CPU and memory\n{}", logs(&agents)),
        WITHIN,
        || {
            let ranking = placement(&url, query);
            if ranking["nodes"].as_array()?.len() < 3 {
                return None;
            }
            let up = [BUSY, IDLE_A, IDLE_B]
                .iter()
                .all(|n| entry(&ranking, n)["status"] == "up");
            let busy = entry(&ranking, BUSY);
            // 4 cores at 95 % busy: 0.2 free once a slot holds only readings of the load
            // (the first slot's mean also holds the first reading, about 50 %).
            let judged = up
                && busy["free_cores"].as_f64()? <= 0.25
                && busy["fits"] == false
                && busy["reasons"].as_array()?.len() == 2
                && entry(&ranking, IDLE_A)["fits"] == true
                && entry(&ranking, IDLE_B)["fits"] == true;
            judged.then_some(ranking)
        },
    );
    assert_eq!(ranking["window_seconds"], 60);
    assert_eq!(ranking["asked"]["cpu"], 1.0);
    assert_eq!(ranking["asked"]["mem_bytes"], 512 << 20);
    assert_eq!(ranking["asked"]["mount"], "/");
    assert_eq!(names(&ranking)[2], BUSY, "{ranking:#}");
    let busy = entry(&ranking, BUSY);
    let reasons: Vec<&str> = busy["reasons"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(reasons[0].starts_with("cpu:"), "{reasons:?}");
    assert!(reasons[1].starts_with("mem:"), "{reasons:?}");
    let free_cores = busy["free_cores"].as_f64().unwrap();
    assert!(
        (0.15..=0.25).contains(&free_cores),
        "4 cores at 95 %: {busy}"
    );
    assert!(
        busy["mem_available_bytes"].as_u64().unwrap() <= 200 << 20,
        "{busy}"
    );
    // The agents measured the load between readings: the newest samples show it.
    for (node, low, high) in [(BUSY, 90.0, 99.0), (IDLE_A, 0.0, 5.0), (IDLE_B, 0.0, 5.0)] {
        let cpu = &get_json(&format!("{url}/api/v1/nodes/{node}"))["latest"]["cpu"];
        let usage = cpu["usage_percent"].as_f64().unwrap();
        assert!((low..=high).contains(&usage), "{node}: {cpu}");
        assert_eq!(cpu["cores"], CORES, "{node}: {cpu}");
    }
    for idle in [IDLE_A, IDLE_B] {
        let idle = entry(&ranking, idle);
        assert_eq!(idle["reasons"], serde_json::json!([]), "{idle}");
        // At most the first slot's mean holds the first reading's 50 %.
        assert!(idle["free_cores"].as_f64().unwrap() >= 1.9, "{idle}");
        assert!(
            idle["mem_available_bytes"].as_u64().unwrap() >= 3 * GIB,
            "{idle}"
        );
        // 45 °C in the fixture's zone (or hotter, if this machine has hwmon sensors).
        assert!(
            idle["temp_headroom_celsius"].as_f64().unwrap() <= 35.0,
            "{idle}"
        );
        assert!(idle["disk_free_bytes"].as_u64().unwrap() > 0, "{idle}");
        let score = idle["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score), "{idle}");
    }

    // The README's pipeline picks an idle node.
    let body = pivitals_testkit::http::get(&format!("{url}/api/v1/placement?{query}"))
        .unwrap()
        .text();
    let best = best_by_readme_pipeline(&body);
    assert!(best == IDLE_A || best == IDLE_B, "picked {best:?}");

    // With nothing asked every up node is ranked by headroom, the tightest share deciding. The
    // busy node's CPU and memory shares are below the idle nodes'; its disk (this machine's
    // `/`) and temperature (the fixture's) are theirs. So it never scores above an idle node,
    // and ranks last unless this machine's disk is fuller still: all three then score the
    // disk's share and go by name.
    let unasked = placement(&url, "window=1m");
    assert_eq!(names(&unasked).len(), 3, "{unasked:#}");
    let score = |ranking: &Value, node: &str| {
        let placed = entry(ranking, node);
        assert_eq!(placed["fits"], true, "nothing asked: {ranking:#}");
        placed["score"].as_f64().unwrap()
    };
    let busy_cpu_share = entry(&unasked, BUSY)["free_cores"].as_f64().unwrap() / CORES as f64;
    assert!(
        score(&unasked, BUSY) <= busy_cpu_share + 0.01,
        "{unasked:#}"
    );
    for idle in [IDLE_A, IDLE_B] {
        assert!(
            score(&unasked, BUSY) <= score(&unasked, idle),
            "{unasked:#}"
        );
        if score(&unasked, BUSY) < score(&unasked, idle) {
            assert_eq!(names(&unasked)[2], BUSY, "{unasked:#}");
        }
    }
    // With no filesystem at `mount` the disk leaves the minimum: the busy node ranks last
    // whatever this machine's disk holds.
    let diskless = placement(&url, "window=1m&mount=/pivitals-no-such-mount");
    assert_eq!(names(&diskless)[2], BUSY, "{diskless:#}");
    assert!(score(&diskless, BUSY) < score(&diskless, IDLE_A));

    // Labels choose the candidates.
    let stack2 = placement(&url, "cpu=1&window=1m&labels=stack=2");
    assert_eq!(names(&stack2), [IDLE_A, BUSY], "{stack2:#}");
    let stack3 = placement(&url, "cpu=1&window=1m&labels=stack=3,role=worker");
    assert_eq!(names(&stack3), [IDLE_B], "{stack3:#}");
    assert!(names(&placement(&url, "labels=stack=9")).is_empty());

    // Disk: a size this machine has free fits, one it cannot have does not.
    let small_disk = placement(&url, "disk=1MiB&window=1m");
    assert_eq!(entry(&small_disk, IDLE_A)["fits"], true, "{small_disk:#}");
    let huge_disk = placement(&url, "disk=1000TiB&window=1m");
    let idle_a = entry(&huge_disk, IDLE_A);
    assert_eq!(idle_a["fits"], false);
    assert!(
        idle_a["reasons"][0].as_str().unwrap().starts_with("disk:"),
        "{idle_a}"
    );
    let elsewhere = placement(&url, "disk=1MiB&mount=/no/such/mount&window=1m");
    assert!(
        entry(&elsewhere, IDLE_A)["reasons"][0]
            .as_str()
            .unwrap()
            .contains("no filesystem mounted at /no/such/mount")
    );

    // Bad parameters answer 400 with JSON naming them.
    for (query, param) in [
        ("mem=lots", "mem"),
        ("cpu=-1", "cpu"),
        ("window=2h", "window"),
        ("labels=stack", "labels"),
        ("disk=1e3", "disk"),
    ] {
        let answer =
            pivitals_testkit::http::get(&format!("{url}/api/v1/placement?{query}")).unwrap();
        assert_eq!(answer.status, 400, "{query}: {}", answer.text());
        let body: Value = serde_json::from_str(&answer.text()).unwrap();
        let error = body["error"].as_str().unwrap_or_default();
        assert!(error.starts_with(&format!("{param}:")), "{query}: {body}");
    }
    let unknown =
        pivitals_testkit::http::get(&format!("{url}/api/v1/placement?memory=1GiB")).unwrap();
    assert_eq!(unknown.status, 400, "{}", unknown.text());
    assert!(unknown.text().contains("memory"), "{}", unknown.text());

    // A stopped node is listed last, as not up.
    agents[2].stop_cleanly(Duration::from_secs(10));
    eventually("the stopped agent's node is stopped", WITHIN, || {
        (node_status(&url, IDLE_B) == "stopped").then_some(())
    });
    let after_stop = placement(&url, query);
    assert_eq!(names(&after_stop), [IDLE_A, BUSY, IDLE_B], "{after_stop:#}");
    let stopped = entry(&after_stop, IDLE_B);
    assert_eq!(stopped["status"], "stopped");
    assert_eq!(stopped["fits"], false);
    assert_eq!(stopped["reasons"], serde_json::json!(["not up"]));

    // Under-voltage and throttling now (0x5) fail a node for as long as the window holds
    // them; the sticky "since boot" bits alone (0x50000) do not.
    set_throttled(&roots[1].0, "0x50005");
    let throttled = eventually("the throttled node judged", WITHIN, || {
        let ranking = placement(&url, query);
        (entry(&ranking, IDLE_A)["fits"] == false).then_some(ranking)
    });
    let idle_a = entry(&throttled, IDLE_A);
    assert_eq!(idle_a["reasons"].as_array().unwrap().len(), 1, "{idle_a}");
    assert!(
        idle_a["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("power: under-voltage or throttling in the window"),
        "{idle_a}"
    );
    set_throttled(&roots[1].0, "0x50000");
    eventually(
        "the node fits again once the trouble is older than the window",
        WITHIN,
        || (entry(&placement(&url, "cpu=1&window=2s"), IDLE_A)["fits"] == true).then_some(()),
    );
    let remembered = placement(&url, query);
    assert_eq!(entry(&remembered, IDLE_A)["fits"], false, "{remembered:#}");

    stop.store(true, Ordering::Relaxed);
    driver.join().unwrap();
}
