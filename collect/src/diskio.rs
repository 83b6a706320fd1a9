//! Block device I/O: counters of whole disks from `ROOT/proc/diskstats` and per-second rates
//! between samples.
//!
//! # Where each number comes from
//!
//! Each line of `/proc/diskstats` is `major minor name` followed by the device's counters
//! since boot: reads completed, reads merged, sectors read, ms reading, writes completed,
//! writes merged, sectors written, ms writing, I/Os in progress, `io_ticks` (ms the device was
//! busy), weighted ms. That makes 14 columns; kernels 4.18+ add four discard columns (18),
//! 5.5+ two flush columns (20). Any line of 14 or more columns is read; columns past the 14th
//! are not used. A line with fewer is a parse error, never zeroes.
//!
//! | field           | source                                                          |
//! |-----------------|-----------------------------------------------------------------|
//! | `reads`         | reads completed                                                 |
//! | `writes`        | writes completed                                                |
//! | `read_bytes`    | sectors read × 512                                              |
//! | `written_bytes` | sectors written × 512                                           |
//! | `io_time_ms`    | `io_ticks`                                                      |
//!
//! A diskstats sector is always 512 bytes, whatever the device's logical sector size (the
//! kernel counts in 512-byte units; `Documentation/admin-guide/iostats.rst`).
//!
//! `rates` holds reads, writes and both byte counts per second (increase since the previous
//! sample divided by the seconds between the two reads, on the monotonic clock), and
//! `busy_percent`: the increase of `io_ticks` as a share of the interval, at most 100, the
//! `%util` of `iostat -x`. The same rules as for network rates apply ([`crate::rates`]): none on
//! a device's first sample, none when any counter went down (reboot, device re-attached, or
//! `io_ticks` wrapping its 32 bits of milliseconds after 49.7 days busy: a wrap looks like a
//! restart and costs one interval's rates, not a false spike), none when no time passed;
//! devices that disappear are forgotten. A failed read leaves the baselines as they were.
//!
//! # Which devices
//!
//! Whole disks only, in the spirit of node_exporter's default (which drops partitions, RAM
//! disks and loop devices); Telegraf's `diskio` reports everything. Partitions would count each
//! I/O twice and virtual devices are not hardware:
//!
//! - a device is a whole disk when `ROOT/sys/block/NAME` exists (partitions live under their
//!   disk there): `mmcblk0`, `sda`, `nvme0n1`, `vda` are kept, `mmcblk0p1`, `sda1` are not;
//! - memory and file backed devices are dropped: `ram*`, `zram*` (compressed swap in RAM),
//!   `loop*` (snaps, images);
//! - stacked devices are dropped: `dm-*` (LVM, LUKS) and `md*` (software RAID) are views of
//!   disks already reported, so their I/O would be counted twice, and their names (`dm-0`) say
//!   nothing to a reader;
//! - an eMMC's hardware boot and RPMB partitions (`mmcblk0boot0`, `mmcblk0rpmb`), which the
//!   kernel lists as disks of their own, are dropped: they belong to `mmcblk0`;
//! - a device whose counters are all zero (never used: an empty card reader, `sr0`) is skipped.

use std::collections::HashSet;
use std::path::Path;
use std::time::Instant;

use pivitals_common::{DiskIoRates, DiskIoVitals};

use super::files::{ReadError, read_parsed};
use super::rates::{Baselines, Delta};
use super::warn_once::WarnOnce;

/// Bytes of one `/proc/diskstats` sector, on every device.
const SECTOR_BYTES: u64 = 512;

/// Every device line of `ROOT/proc/diskstats`, in the file's order, without rates.
fn read_diskstats(root: &Path) -> Result<Vec<DiskIoVitals>, ReadError> {
    read_parsed(&root.join("proc/diskstats"), parse_diskstats)
}

/// Parses `/proc/diskstats` (see the module doc). `None` if a line has fewer than 14 columns
/// or a counter is not a number.
fn parse_diskstats(content: &str) -> Option<Vec<DiskIoVitals>> {
    let mut devices = Vec::new();
    for line in content.lines() {
        let columns: Vec<&str> = line.split_whitespace().collect();
        if columns.len() < 14 {
            return None;
        }
        let counter = |index: usize| columns[index].parse::<u64>().ok();
        devices.push(DiskIoVitals {
            device: columns[2].to_owned(),
            reads: counter(3)?,
            read_bytes: counter(5)?.saturating_mul(SECTOR_BYTES),
            writes: counter(7)?,
            written_bytes: counter(9)?.saturating_mul(SECTOR_BYTES),
            io_time_ms: counter(12)?,
            rates: None,
        });
    }
    Some(devices)
}

/// The names under `ROOT/sys/block`: whole disks, virtual ones included.
fn whole_disks(root: &Path) -> Result<HashSet<String>, ReadError> {
    let dir = root.join("sys/block");
    let io = |source| ReadError::Io {
        path: dir.clone(),
        source,
    };
    let mut names = HashSet::new();
    for entry in std::fs::read_dir(&dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        names.insert(entry.file_name().to_string_lossy().into_owned());
    }
    Ok(names)
}

/// Whether a whole disk named `name` is memory backed, file backed, stacked on other disks, or
/// a hardware partition of an eMMC (see the module doc).
fn is_virtual(name: &str) -> bool {
    let memory_or_stacked = ["ram", "zram", "loop", "dm-", "md"]
        .iter()
        .any(|prefix| name.starts_with(prefix));
    let emmc_part = name.starts_with("mmcblk") && (name.contains("boot") || name.ends_with("rpmb"));
    memory_or_stacked || emmc_part
}

fn never_used(d: &DiskIoVitals) -> bool {
    counters(d).1 == [0; 5]
}

/// A device's counters in the order [`rates_of`] reads them back.
fn counters(d: &DiskIoVitals) -> (&str, [u64; 5]) {
    (
        &d.device,
        [
            d.reads,
            d.writes,
            d.read_bytes,
            d.written_bytes,
            d.io_time_ms,
        ],
    )
}

fn rates_of(delta: &Delta<5>) -> DiskIoRates {
    DiskIoRates {
        reads_per_second: delta.per_second(0),
        writes_per_second: delta.per_second(1),
        read_bytes_per_second: delta.per_second(2),
        write_bytes_per_second: delta.per_second(3),
        busy_percent: delta.percent_of_interval(4),
    }
}

/// Samples the I/O of every whole disk with rates since its previous sample, warning once when
/// it cannot read them.
#[derive(Debug, Default)]
pub(crate) struct DiskIoCollector {
    warn: WarnOnce,
    baselines: Baselines<5>,
}

impl DiskIoCollector {
    /// Every whole disk that has seen I/O, sorted by name.
    pub(crate) fn sample(&mut self, root: &Path) -> Vec<DiskIoVitals> {
        self.sample_at(root, Instant::now())
    }

    /// Like [`DiskIoCollector::sample`], with the counters taken as read at `now`.
    pub(crate) fn sample_at(&mut self, root: &Path, now: Instant) -> Vec<DiskIoVitals> {
        let read = read_diskstats(root).and_then(|devices| Ok((devices, whole_disks(root)?)));
        let Some((devices, disks)) = self.warn.ok("disk_io", read) else {
            return Vec::new();
        };
        let mut devices: Vec<DiskIoVitals> = devices
            .into_iter()
            .filter(|d| disks.contains(&d.device) && !is_virtual(&d.device) && !never_used(d))
            .collect();
        devices.sort_by(|a, b| a.device.cmp(&b.device));
        self.baselines
            .advance(now, devices, counters)
            .into_iter()
            .map(|(device, delta)| DiskIoVitals {
                rates: delta.as_ref().map(rates_of),
                ..device
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::test_fixtures::Tree;

    /// A Raspberry Pi 4 on kernel 6.1 (20 columns) booting from an SD card, with a USB SSD
    /// (`sda`), an NVMe drive on a PCIe adapter, an eMMC boot partition and the usual virtual
    /// devices.
    const PI4_DISKSTATS_20: &str = "\
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   7       0 loop0 56 0 2238 35 0 0 0 0 0 100 35 0 0 0 0 0 0
 179       0 mmcblk0 12345 6789 1234567 45678 23456 34567 2345678 567890 0 234560 613568 0 0 0 0 1234 5678
 179       1 mmcblk0p1 234 1234 12345 456 1 0 1 0 0 500 456 0 0 0 0 0 0
 179       2 mmcblk0p2 12000 5555 1222000 45000 23455 34567 2345677 567890 0 234000 613000 0 0 0 0 0 0
 179      32 mmcblk0boot0 10 0 80 3 0 0 0 0 0 10 3 0 0 0 0 0 0
   8       0 sda 3000 100 480000 2000 500 200 80000 1000 0 2500 3000 0 0 0 0 0 0
   8       1 sda1 2900 100 470000 1900 500 200 80000 1000 0 2400 2900 0 0 0 0 0 0
 259       0 nvme0n1 4000 0 640000 800 6000 0 960000 1200 0 1500 2000 12 0 2048 1 100 50
 259       1 nvme0n1p1 3900 0 630000 790 6000 0 960000 1200 0 1450 1990 12 0 2048 1 0 0
 254       0 zram0 90 0 720 1 200 0 1600 2 0 20 3 0 0 0 0 0 0
 253       0 dm-0 100 0 800 1 0 0 0 0 0 5 1 0 0 0 0 0 0
   8      16 sdb 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
";

    /// The same Pi on kernel 4.14 (14 columns).
    const PI4_DISKSTATS_14: &str = "\
   1       0 ram0 0 0 0 0 0 0 0 0 0 0 0
   7       0 loop0 56 0 2238 35 0 0 0 0 0 100 35
 179       0 mmcblk0 12345 6789 1234567 45678 23456 34567 2345678 567890 0 234560 613568
 179       1 mmcblk0p1 234 1234 12345 456 1 0 1 0 0 500 456
 179       2 mmcblk0p2 12000 5555 1222000 45000 23455 34567 2345677 567890 0 234000 613000
";

    fn pi4(diskstats: &str) -> Tree {
        let tree = Tree::empty();
        for disk in [
            "ram0",
            "loop0",
            "mmcblk0",
            "mmcblk0boot0",
            "sda",
            "sdb",
            "nvme0n1",
            "zram0",
            "dm-0",
        ] {
            tree.mkdir(&format!("sys/block/{disk}"));
        }
        tree.write("proc/diskstats", diskstats);
        tree
    }

    fn names(devices: &[DiskIoVitals]) -> Vec<&str> {
        devices.iter().map(|d| d.device.as_str()).collect()
    }

    #[test]
    fn reports_whole_physical_disks_only() {
        let tree = pi4(PI4_DISKSTATS_20);
        let devices = DiskIoCollector::default().sample(tree.root());
        assert_eq!(names(&devices), ["mmcblk0", "nvme0n1", "sda"]);
    }

    #[test]
    fn counters_come_from_their_columns_with_sectors_of_512_bytes() {
        for diskstats in [PI4_DISKSTATS_20, PI4_DISKSTATS_14] {
            let tree = pi4(diskstats);
            let devices = DiskIoCollector::default().sample(tree.root());
            assert_eq!(
                devices[0],
                DiskIoVitals {
                    device: "mmcblk0".to_owned(),
                    reads: 12345,
                    writes: 23456,
                    read_bytes: 1_234_567 * 512,
                    written_bytes: 2_345_678 * 512,
                    io_time_ms: 234_560,
                    rates: None,
                }
            );
        }
    }

    #[test]
    fn eighteen_columns_are_read_and_thirteen_are_an_error() {
        let tree = pi4(" 179 0 mmcblk0 1 0 8 0 2 0 16 0 0 3 0 0 0 0 0\n");
        let devices = DiskIoCollector::default().sample(tree.root());
        assert_eq!(
            [
                devices[0].reads,
                devices[0].read_bytes,
                devices[0].io_time_ms
            ],
            [1, 4096, 3]
        );
        tree.write("proc/diskstats", " 179 0 mmcblk0 1 0 8 0 2 0 16 0 0 3\n");
        assert!(read_diskstats(tree.root()).is_err_and(|e| !e.is_not_found()));
        assert!(DiskIoCollector::default().sample(tree.root()).is_empty());
    }

    #[test]
    fn rates_and_busy_share_over_the_interval() {
        let tree = pi4(PI4_DISKSTATS_14);
        let mut collector = DiskIoCollector::default();
        let t0 = Instant::now();
        let first = collector.sample_at(tree.root(), t0);
        assert_eq!(first[0].rates, None, "first sample");
        // Over 5 s: 100 reads of 8 sectors, 50 writes of 16 sectors, busy 1.25 s.
        tree.write(
            "proc/diskstats",
            " 179 0 mmcblk0 12445 6789 1235367 45778 23506 34567 2346478 567990 0 235810 613700\n",
        );
        let second = collector.sample_at(tree.root(), t0 + Duration::from_secs(5));
        assert_eq!(
            second[0].rates,
            Some(DiskIoRates {
                reads_per_second: 20.0,
                writes_per_second: 10.0,
                read_bytes_per_second: 800.0 * 512.0 / 5.0,
                write_bytes_per_second: 800.0 * 512.0 / 5.0,
                busy_percent: 25.0,
            })
        );
        // io_ticks may run a little ahead of our clock: the share is capped.
        tree.write(
            "proc/diskstats",
            " 179 0 mmcblk0 12445 6789 1235367 45778 23506 34567 2346478 567990 0 236900 613700\n",
        );
        let third = collector.sample_at(tree.root(), t0 + Duration::from_secs(6));
        let rates = third[0].rates.as_ref().expect("rates");
        assert_eq!(rates.busy_percent, 100.0);
        assert_eq!(rates.reads_per_second, 0.0);
    }

    #[test]
    fn after_a_reboot_there_are_no_rates_then_the_new_counters_are_the_baseline() {
        let tree = pi4(PI4_DISKSTATS_14);
        let mut collector = DiskIoCollector::default();
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        collector.sample_at(tree.root(), t0);
        tree.write(
            "proc/diskstats",
            " 179 0 mmcblk0 10 0 80 1 5 0 40 1 0 7 2\n",
        );
        let reset = collector.sample_at(tree.root(), t0 + s);
        assert_eq!(reset[0].rates, None, "no spike, no negative rate");
        assert_eq!(reset[0].reads, 10);
        tree.write(
            "proc/diskstats",
            " 179 0 mmcblk0 20 0 160 1 5 0 40 1 0 507 2\n",
        );
        let after = collector.sample_at(tree.root(), t0 + 2 * s);
        let rates = after[0].rates.as_ref().expect("rates again");
        assert_eq!(rates.reads_per_second, 10.0);
        assert_eq!(rates.busy_percent, 50.0);
        assert_eq!(
            collector.sample_at(tree.root(), t0 + 2 * s)[0].rates,
            None,
            "no time passed"
        );
    }

    #[test]
    fn without_diskstats_or_sys_block_nothing_is_reported() {
        let tree = Tree::empty();
        assert!(DiskIoCollector::default().sample(tree.root()).is_empty());
        tree.write("proc/diskstats", PI4_DISKSTATS_20);
        assert!(DiskIoCollector::default().sample(tree.root()).is_empty());
    }

    #[test]
    fn virtual_and_emmc_hardware_partitions_are_told_from_disks() {
        for name in [
            "loop7",
            "ram15",
            "zram0",
            "dm-3",
            "md127",
            "mmcblk0boot1",
            "mmcblk0rpmb",
        ] {
            assert!(is_virtual(name), "{name}");
        }
        for name in ["mmcblk0", "mmcblk1", "sda", "nvme0n1", "vda", "xvda", "hda"] {
            assert!(!is_virtual(name), "{name}");
        }
    }
}
