//! The collector's network and disk I/O numbers checked against the kernel files of this
//! machine (`/proc/net/dev`, `/proc/diskstats`), read here by a parser of the test's own.
//!
//! Counters move while the test runs, so each check reads the kernel, samples, and reads the
//! kernel again: a sampled counter must lie between the two reads. Rates are checked with
//! traffic the test makes itself, on loopback only.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Instant;

use pivitals_collect::Collector;

/// `/proc/net/dev` as name → rx bytes, packets, errs, drop, tx bytes, packets, errs, drop.
fn kernel_net_dev() -> HashMap<String, [u64; 8]> {
    let text = std::fs::read_to_string("/proc/net/dev").expect("/proc/net/dev is readable");
    text.lines()
        .skip(2)
        .map(|line| {
            let (name, rest) = line.split_once(':').expect("name: counters");
            let c: Vec<u64> = rest
                .split_whitespace()
                .map(|n| n.parse().expect("a counter"))
                .collect();
            (
                name.trim().to_owned(),
                [c[0], c[1], c[2], c[3], c[8], c[9], c[10], c[11]],
            )
        })
        .collect()
}

/// `/proc/diskstats` as name → reads, writes, read bytes, written bytes, io_ticks.
fn kernel_diskstats() -> HashMap<String, [u64; 5]> {
    let text = std::fs::read_to_string("/proc/diskstats").expect("/proc/diskstats is readable");
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let n = |i: usize| f[i].parse::<u64>().expect("a counter");
            (f[2].to_owned(), [n(3), n(7), n(5) * 512, n(9) * 512, n(12)])
        })
        .collect()
}

/// Whole disks (in `/sys/block`) that are hardware and have seen I/O: what the collector
/// should report.
fn expected_disks(kernel: &HashMap<String, [u64; 5]>) -> Vec<String> {
    let virtual_prefixes = ["loop", "ram", "zram", "dm-", "md"];
    let mut names: Vec<String> = kernel
        .iter()
        .filter(|(name, counters)| {
            std::path::Path::new("/sys/block").join(name).exists()
                && !virtual_prefixes.iter().any(|p| name.starts_with(p))
                && !(name.starts_with("mmcblk")
                    && (name.contains("boot") || name.ends_with("rpmb")))
                && counters.iter().any(|c| *c > 0)
        })
        .map(|(name, _)| name.clone())
        .collect();
    names.sort();
    names
}

fn assert_between<const N: usize>(
    what: &str,
    before: &[u64; N],
    sampled: &[u64; N],
    after: &[u64; N],
) {
    for i in 0..N {
        assert!(
            before[i] <= sampled[i] && sampled[i] <= after[i],
            "{what} counter {i}: kernel said {} then {}, the sample {}",
            before[i],
            after[i],
            sampled[i]
        );
    }
}

#[test]
fn counters_are_what_the_kernel_files_say() {
    let mut collector = Collector::new("/");
    let net_before = kernel_net_dev();
    let disk_before = kernel_diskstats();
    let sample = collector.sample();
    let net_after = kernel_net_dev();
    let disk_after = kernel_diskstats();

    let mut seen: Vec<&str> = Vec::new();
    for n in &sample.networks {
        let sampled = [
            n.rx_bytes,
            n.rx_packets,
            n.rx_errors,
            n.rx_dropped,
            n.tx_bytes,
            n.tx_packets,
            n.tx_errors,
            n.tx_dropped,
        ];
        let (Some(before), Some(after)) =
            (net_before.get(&n.interface), net_after.get(&n.interface))
        else {
            panic!("{} is not in /proc/net/dev", n.interface);
        };
        assert_between(&n.interface, before, &sampled, after);
        assert_eq!(n.rates, None, "{}: first sample", n.interface);
        seen.push(&n.interface);
    }
    for name in net_before.keys().filter(|k| net_after.contains_key(*k)) {
        assert!(
            seen.contains(&name.as_str()),
            "{name} missing from {seen:?}"
        );
    }
    assert!(seen.contains(&"lo"), "{seen:?}");

    let expected = expected_disks(&disk_after);
    let reported: Vec<&str> = sample.disk_io.iter().map(|d| d.device.as_str()).collect();
    assert_eq!(reported, expected, "whole hardware disks that saw I/O");
    for d in &sample.disk_io {
        let sampled = [
            d.reads,
            d.writes,
            d.read_bytes,
            d.written_bytes,
            d.io_time_ms,
        ];
        assert_between(
            &d.device,
            &disk_before[&d.device],
            &sampled,
            &disk_after[&d.device],
        );
        assert_eq!(d.rates, None, "{}: first sample", d.device);
    }
    println!("interfaces {seen:?}, disks {reported:?}");
}

#[test]
fn loopback_traffic_shows_in_the_rates() {
    const BYTES: usize = 8 << 20;
    let mut collector = Collector::new("/");
    let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
    let address = listener.local_addr().expect("bound address");

    let start = Instant::now();
    let first = collector.sample();
    let receiver = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().expect("a connection");
        let mut received = Vec::new();
        stream.read_to_end(&mut received).expect("the bytes");
        received.len()
    });
    let mut sender = TcpStream::connect(address).expect("connect over loopback");
    sender.write_all(&vec![0x5a; BYTES]).expect("send");
    drop(sender);
    assert_eq!(receiver.join().expect("receiver"), BYTES);
    let second = collector.sample();
    let elapsed = start.elapsed().as_secs_f64();

    let lo = |sample: &pivitals_common::VitalsPayload| {
        sample
            .networks
            .iter()
            .find(|n| n.interface == "lo")
            .cloned()
            .expect("lo")
    };
    let (lo1, lo2) = (lo(&first), lo(&second));
    assert_eq!(lo1.rates, None, "first sample");
    assert!(lo2.rx_bytes - lo1.rx_bytes >= BYTES as u64);
    let rates = lo2.rates.expect("second sample has rates");
    // The collector's interval lies inside ours, so rate × our elapsed time bounds its
    // increase from above, and that increase holds at least what we sent.
    assert!(
        rates.rx_bytes_per_second * elapsed >= BYTES as f64,
        "{} B/s over at most {elapsed} s",
        rates.rx_bytes_per_second
    );
    assert!(rates.tx_bytes_per_second * elapsed >= BYTES as f64);
    assert!(rates.rx_packets_per_second > 0.0 && rates.tx_packets_per_second > 0.0);

    for d in &second.disk_io {
        if first.disk_io.iter().any(|f| f.device == d.device) {
            let rates = d.rates.as_ref().expect("a disk's second sample has rates");
            assert!((0.0..=100.0).contains(&rates.busy_percent), "{d:?}");
            assert!(rates.reads_per_second >= 0.0 && rates.write_bytes_per_second >= 0.0);
        }
    }
}
