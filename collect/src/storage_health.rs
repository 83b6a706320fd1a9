//! Wear of the storage Raspberry Pis die of: an eMMC's life time estimates, read once a minute
//! (wear changes slowly) and repeated from that reading in the samples between.
//!
//! | Field | Kernel file (under the collector's root) |
//! |---|---|
//! | `device` | the name of `sys/block/mmcblkN` (whole devices only: not partitions `mmcblkNpM`, not the boot areas `mmcblkNbootM`, not `mmcblkNrpmb`) |
//! | `emmc_life_time_a`, `emmc_life_time_b` | `sys/block/mmcblkN/device/life_time`: two hex bytes, `0x02 0x01` (EXT_CSD `DEVICE_LIFE_TIME_EST_TYP_A` and `_B`, written by the MMC core) |
//! | `emmc_pre_eol` | `sys/block/mmcblkN/device/pre_eol_info`: one hex byte, `0x01` (EXT_CSD `PRE_EOL_INFO`) |
//! | `nvme_percentage_used`, `nvme_available_spare`, `nvme_media_errors` | not collected (see below) |
//!
//! A value of 0 means "not defined" (an eMMC older than 5.0) and is left out. SD cards have
//! neither file (the kernel gives SD cards other attributes): an SD card is not reported,
//! and that is no warning. A device that has the files but cannot be read (a permission
//! error) is left out with a warning, once. Bytes written since boot per device are in the
//! disk I/O family (`/proc/diskstats`), not here.
//!
//! **NVMe is not collected.** sysfs has no SMART values (`/sys/class/nvme/nvmeN` holds the
//! model, serial and state; its hwmon only the temperature). The SMART / Health log (log
//! page 0x02) needs an admin passthrough ioctl (`NVME_IOCTL_ADMIN_CMD`) on `/dev/nvmeN`,
//! which the kernel allows only with `CAP_SYS_ADMIN` (unprivileged passthrough is limited to
//! some Identify commands); the shipped service runs as a dynamic user with no
//! capabilities and `PrivateDevices=yes`, so `/dev/nvme0` does not even exist for it. Issuing
//! hand-built admin commands to a disk from this crate (which has no `unsafe` and no `libc`)
//! for a path that cannot work where it is deployed is a risk without a benefit; when a host
//! has an NVMe controller this is logged once, at info level.

use std::path::Path;
use std::time::{Duration, Instant};

use pivitals_common::StorageHealthVitals;

use super::files::{ReadError, numbered_entries, read_parsed};
use super::warn_once::WarnOnce;

/// How long a reading is reported before the files are read again.
const READ_EVERY: Duration = Duration::from_secs(60);

/// What one look at the storage found: the devices with wear values, and the first file
/// that exists but could not be read.
#[derive(Debug, Default)]
struct Found {
    devices: Vec<StorageHealthVitals>,
    unreadable: Option<ReadError>,
    nvme: bool,
}

/// Reads storage wear once a minute and reports the last reading in every sample.
#[derive(Debug, Default)]
pub(crate) struct StorageHealthCollector {
    last: Option<(Instant, Vec<StorageHealthVitals>)>,
    warn: WarnOnce,
    nvme_logged: bool,
}

impl StorageHealthCollector {
    /// The wear of each device that tells it; empty on a host without eMMC.
    pub(crate) fn sample(&mut self, root: &Path) -> Vec<StorageHealthVitals> {
        self.sample_at(root, Instant::now())
    }

    fn sample_at(&mut self, root: &Path, now: Instant) -> Vec<StorageHealthVitals> {
        if let Some((read_at, devices)) = &self.last
            && now.saturating_duration_since(*read_at) < READ_EVERY
        {
            return devices.clone();
        }
        let found = read_storage_health(root);
        if let Some(error) = &found.unreadable {
            self.warn.warn("storage health", error);
        }
        if found.nvme && !self.nvme_logged {
            self.nvme_logged = true;
            tracing::info!(
                family = "storage health",
                "NVMe wear (SMART log) is not collected: it needs an admin ioctl as root"
            );
        }
        self.last = Some((now, found.devices.clone()));
        found.devices
    }
}

/// Reads the wear of every whole `mmcblkN` under `ROOT/sys/block` and notes NVMe
/// controllers under `ROOT/sys/class/nvme`.
fn read_storage_health(root: &Path) -> Found {
    let mut found = Found::default();
    let block = root.join("sys/block");
    let disks = match numbered_entries(&block, "mmcblk") {
        Ok(disks) => disks,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(source) => {
            found.unreadable = Some(ReadError::Io {
                path: block,
                source,
            });
            Vec::new()
        }
    };
    for (number, disk) in disks {
        let device = disk.join("device");
        let mut health = StorageHealthVitals {
            device: format!("mmcblk{number}"),
            ..Default::default()
        };
        if let Some((a, b)) = optional(
            read_parsed(&device.join("life_time"), parse_life_time),
            &mut found,
        ) {
            health.emmc_life_time_a = Some(a).filter(|v| *v != 0);
            health.emmc_life_time_b = Some(b).filter(|v| *v != 0);
        }
        health.emmc_pre_eol = optional(
            read_parsed(&device.join("pre_eol_info"), parse_hex_byte),
            &mut found,
        )
        .filter(|v| *v != 0);
        if health.emmc_life_time_a.is_some()
            || health.emmc_life_time_b.is_some()
            || health.emmc_pre_eol.is_some()
        {
            found.devices.push(health);
        }
    }
    found.nvme = numbered_entries(&root.join("sys/class/nvme"), "nvme")
        .is_ok_and(|controllers| !controllers.is_empty());
    found
}

/// The value; None for a missing file (an SD card); None and noted for any other error.
fn optional<T>(read: Result<T, ReadError>, found: &mut Found) -> Option<T> {
    match read {
        Ok(value) => Some(value),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            found.unreadable.get_or_insert(e);
            None
        }
    }
}

/// `0x02 0x01` → (2, 1).
fn parse_life_time(content: &str) -> Option<(u64, u64)> {
    let mut values = content.split_whitespace().map(parse_hex_byte);
    let (Some(Some(a)), Some(Some(b)), None) = (values.next(), values.next(), values.next()) else {
        return None;
    };
    Some((a, b))
}

/// `0x01` → 1.
fn parse_hex_byte(content: &str) -> Option<u64> {
    let hex = content.strip_prefix("0x")?;
    u8::from_str_radix(hex, 16).ok().map(u64::from)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use crate::test_fixtures::Tree;

    const CARD: &str = "sys/devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001";

    #[test]
    fn a_cm4s_emmc_tells_its_wear_and_its_sd_card_nothing() {
        let tree = Tree::cm4_emmc();
        let found = read_storage_health(tree.root());
        assert!(found.unreadable.is_none(), "{:?}", found.unreadable);
        assert_eq!(
            found.devices,
            [StorageHealthVitals {
                device: "mmcblk0".to_owned(),
                emmc_life_time_a: Some(2),
                emmc_life_time_b: Some(1),
                emmc_pre_eol: Some(1),
                ..Default::default()
            }]
        );
        assert!(!found.nvme);
    }

    #[test]
    fn sd_cards_of_pis_and_an_x86_machine_have_nothing_and_no_warning() {
        for tree in [
            Tree::pi3(),
            Tree::pi4(),
            Tree::pi5(),
            Tree::x86(),
            Tree::empty(),
        ] {
            let found = read_storage_health(tree.root());
            assert!(found.unreadable.is_none(), "{:?}", found.unreadable);
            assert_eq!(found.devices, []);
            let mut collector = StorageHealthCollector::default();
            assert_eq!(collector.sample(tree.root()), []);
            assert!(
                collector.warn.warn("storage health", &"first"),
                "no warning before"
            );
        }
        assert!(read_storage_health(Tree::x86().root()).nvme);
    }

    #[test]
    fn undefined_estimates_are_left_out() {
        let tree = Tree::cm4_emmc();
        tree.write(&format!("{CARD}/life_time"), "0x00 0x00\n");
        tree.write(&format!("{CARD}/pre_eol_info"), "0x00\n");
        assert_eq!(read_storage_health(tree.root()).devices, []);
        tree.write(&format!("{CARD}/life_time"), "0x0b 0x00\n");
        let devices = read_storage_health(tree.root()).devices;
        assert_eq!(devices[0].emmc_life_time_a, Some(11));
        assert_eq!(devices[0].emmc_life_time_b, None);
    }

    #[test]
    fn an_unreadable_or_garbled_file_is_left_out_with_one_warning() {
        let tree = Tree::cm4_emmc();
        tree.write(&format!("{CARD}/life_time"), "worn\n");
        let mut collector = StorageHealthCollector::default();
        let devices = collector.sample(tree.root());
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0].emmc_life_time_a, None);
        assert_eq!(devices[0].emmc_pre_eol, Some(1));
        assert!(
            !collector.warn.warn("storage health", &"again"),
            "already warned"
        );

        // Without root: a file that exists but cannot be opened (root reads it anyway).
        let pre_eol = tree.path(&format!("{CARD}/pre_eol_info"));
        std::fs::set_permissions(&pre_eol, std::fs::Permissions::from_mode(0o000))
            .expect("fixture permissions can be set");
        let found = read_storage_health(tree.root());
        if std::fs::read(&pre_eol).is_err() {
            assert!(found.unreadable.is_some());
            assert_eq!(found.devices, []);
        }
    }

    #[test]
    fn wear_is_read_once_a_minute() {
        let tree = Tree::cm4_emmc();
        let mut collector = StorageHealthCollector::default();
        let start = Instant::now();
        let first = collector.sample_at(tree.root(), start);
        tree.write(&format!("{CARD}/life_time"), "0x03 0x01\n");
        assert_eq!(
            collector.sample_at(tree.root(), start + Duration::from_secs(59)),
            first
        );
        let later = collector.sample_at(tree.root(), start + Duration::from_secs(60));
        assert_eq!(later[0].emmc_life_time_a, Some(3));
    }

    #[test]
    fn hex_values_parse() {
        assert_eq!(parse_life_time("0x01 0x02"), Some((1, 2)));
        assert_eq!(parse_life_time("0x01"), None);
        assert_eq!(parse_life_time("0x01 0x02 0x03"), None);
        assert_eq!(parse_hex_byte("0x0B"), Some(11));
        assert_eq!(parse_hex_byte("1"), None);
    }
}
