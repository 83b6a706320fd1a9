//! Wear of the storage Raspberry Pis die of: an eMMC's life time estimates and an NVMe
//! drive's SMART values, read once a minute (wear changes slowly) and repeated from that
//! reading in the samples between.
//!
//! | Field | Source (under the collector's root) |
//! |---|---|
//! | `device` | the name of `sys/block/mmcblkN` (whole devices only: not partitions `mmcblkNpM`, not the boot areas `mmcblkNbootM`, not `mmcblkNrpmb`), or of `sys/class/nvme/nvmeN` |
//! | `emmc_life_time_a`, `emmc_life_time_b` | `sys/block/mmcblkN/device/life_time`: two hex bytes, `0x02 0x01` (EXT_CSD `DEVICE_LIFE_TIME_EST_TYP_A` and `_B`, written by the MMC core) |
//! | `emmc_pre_eol` | `sys/block/mmcblkN/device/pre_eol_info`: one hex byte, `0x01` (EXT_CSD `PRE_EOL_INFO`) |
//! | `nvme_available_spare` | byte 3 of the SMART / Health log of `/dev/nvmeN` (%) |
//! | `nvme_percentage_used` | byte 5 of that log (%, may pass 100) |
//! | `nvme_media_errors` | bytes 160..176 of that log (128-bit little-endian, saturated to `u64`) |
//!
//! A value of 0 means "not defined" (an eMMC older than 5.0) and is left out. SD cards have
//! neither file (the kernel gives SD cards other attributes): an SD card is not reported,
//! and that is no warning. A device that has the files but cannot be read (a permission
//! error) is left out with a warning, once. Bytes written since boot per device are in the
//! disk I/O family (`/proc/diskstats`), not here.
//!
//! **NVMe needs `CAP_SYS_ADMIN`.** sysfs has no SMART values (`/sys/class/nvme/nvmeN` holds
//! the model, serial and state; its hwmon only the temperature), so for each controller
//! `sys/class/nvme/nvmeN` the SMART / Health Information log (log page 02h, 512 bytes,
//! namespace `0xFFFFFFFF`) is read from its character device `/dev/nvmeN` (opened read-only)
//! with the admin passthrough ioctl `NVME_IOCTL_ADMIN_CMD` (see `nvme.rs`). Only under the
//! root `/`: a fixture tree has no devices. The kernel runs admin passthrough only for a
//! caller with `CAP_SYS_ADMIN`, and `/dev/nvmeN` is (by default) `root:root 0600`, so the agent reads
//! these fields when it runs as root. For the systemd unit that would take all of:
//! `PrivateDevices=no` (the private `/dev` has no `nvmeN`), `CAP_SYS_ADMIN` in both
//! `CapabilityBoundingSet=` and `AmbientCapabilities=` (the ioctl), and a way to open the
//! root-only device (`CAP_DAC_OVERRIDE` as well, or `User=root` instead of
//! `DynamicUser=yes`); `CAP_SYS_ADMIN` is close to full root, far more than a metrics agent
//! otherwise needs. The shipped unit runs as a dynamic user with empty capability sets and
//! `PrivateDevices=yes`, so there `/dev/nvme0` does not exist and the NVMe fields stay
//! absent. That (a missing device, `EACCES` or `EPERM`) is not an error: the fields are left
//! out and the reason is logged once, at info level. Any other failure (the controller
//! refusing the command, an I/O error) leaves them out with a warning, once. A controller
//! whose log cannot be read is not reported.

use std::path::Path;
use std::time::{Duration, Instant};

use pivitals_common::StorageHealthVitals;

use super::files::{ReadError, numbered_entries, read_parsed};
use super::nvme::{self, NvmeError};
use super::warn_once::WarnOnce;

/// How long a reading is reported before the files are read again.
const READ_EVERY: Duration = Duration::from_secs(60);

/// What one look at the storage found: the devices with wear values, the first file that
/// exists but could not be read, and the first NVMe controller whose SMART log was not read.
#[derive(Debug, Default)]
struct Found {
    devices: Vec<StorageHealthVitals>,
    unreadable: Option<ReadError>,
    nvme_unread: Option<NvmeError>,
}

/// Reads storage wear once a minute and reports the last reading in every sample.
#[derive(Debug, Default)]
pub(crate) struct StorageHealthCollector {
    last: Option<(Instant, Vec<StorageHealthVitals>)>,
    warn: WarnOnce,
    /// For NVMe failures other than a missing privilege or device.
    nvme_warn: WarnOnce,
    /// Whether the missing privilege or device has been logged (at info level).
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
        // The controllers' devices are this host's: only under the root `/`.
        let devices = (root == Path::new("/")).then(|| Path::new("/dev"));
        let found = read_storage_health(root, devices);
        if let Some(error) = &found.unreadable {
            self.warn.warn("storage health", error);
        }
        if let Some(error) = &found.nvme_unread {
            self.log_nvme(error);
        }
        self.last = Some((now, found.devices.clone()));
        found.devices
    }

    /// Logs why a controller's SMART log was not read: once at info level for a missing
    /// privilege or device (expected without root), once as a warning for anything else.
    /// Returns whether it logged.
    fn log_nvme(&mut self, error: &NvmeError) -> bool {
        if !error.is_unprivileged() {
            return self.nvme_warn.warn("storage health (NVMe)", error);
        }
        if self.nvme_logged {
            return false;
        }
        self.nvme_logged = true;
        tracing::info!(
            family = "storage health",
            "NVMe wear (SMART log) not collected: {error}; reading it needs root \
             (CAP_SYS_ADMIN and access to the device)"
        );
        true
    }
}

/// Reads the wear of every whole `mmcblkN` under `ROOT/sys/block` and, when `nvme_devices`
/// is given (`/dev` for the root `/`), the SMART log of each controller under
/// `ROOT/sys/class/nvme` from its device there.
fn read_storage_health(root: &Path, nvme_devices: Option<&Path>) -> Found {
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
    if let Some(dev) = nvme_devices {
        read_nvme(root, dev, &mut found);
    }
    found
}

/// Reads the SMART log of each controller `ROOT/sys/class/nvme/nvmeN` from `DEV/nvmeN`.
fn read_nvme(root: &Path, dev: &Path, found: &mut Found) {
    // No class directory: no NVMe driver, no controllers.
    let controllers = numbered_entries(&root.join("sys/class/nvme"), "nvme").unwrap_or_default();
    for (number, _) in controllers {
        let name = format!("nvme{number}");
        match nvme::read_smart_health(&dev.join(&name)) {
            Ok(smart) => found.devices.push(StorageHealthVitals {
                device: name,
                nvme_percentage_used: Some(smart.percentage_used),
                nvme_available_spare: Some(smart.available_spare),
                nvme_media_errors: Some(smart.media_errors),
                ..Default::default()
            }),
            Err(error) => {
                found.nvme_unread.get_or_insert(error);
            }
        }
    }
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
        let found = read_storage_health(tree.root(), None);
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
        assert!(found.nvme_unread.is_none());
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
            let found = read_storage_health(tree.root(), None);
            assert!(found.unreadable.is_none(), "{:?}", found.unreadable);
            assert!(found.nvme_unread.is_none(), "a fixture tree has no devices");
            assert_eq!(found.devices, []);
            let mut collector = StorageHealthCollector::default();
            assert_eq!(collector.sample(tree.root()), []);
            assert!(
                collector.warn.warn("storage health", &"first"),
                "no warning before"
            );
        }
    }

    #[test]
    fn an_nvme_controller_without_its_device_has_no_fields() {
        // The x86 tree lists `sys/class/nvme/nvme0`; its device is missing, as under
        // `PrivateDevices=yes`.
        let tree = Tree::x86();
        let dev = tempfile::tempdir().expect("a temp dir can be created");
        let found = read_storage_health(tree.root(), Some(dev.path()));
        assert_eq!(found.devices, []);
        assert!(found.unreadable.is_none(), "{:?}", found.unreadable);
        let error = found.nvme_unread.expect("nvme0 was tried");
        assert!(error.is_unprivileged(), "{error}");
        assert!(error.to_string().contains("nvme0"), "{error}");

        // This machine (no NVMe here, or not as root): no NVMe fields, no panic.
        let mut collector = StorageHealthCollector::default();
        let devices = collector.sample(Path::new("/"));
        if !Path::new("/dev/nvme0").exists() {
            assert!(
                devices.iter().all(|d| d.nvme_media_errors.is_none()),
                "{devices:?}"
            );
            let found = read_storage_health(Path::new("/"), Some(Path::new("/dev")));
            assert!(found.devices.iter().all(|d| !d.device.starts_with("nvme")));
            assert!(
                found
                    .nvme_unread
                    .as_ref()
                    .is_none_or(NvmeError::is_unprivileged)
            );
        }
    }

    #[test]
    fn a_missing_privilege_is_logged_once_at_info_and_other_failures_warn_once() {
        let tree = Tree::x86();
        let dev = tempfile::tempdir().expect("a temp dir can be created");
        let mut collector = StorageHealthCollector::default();
        let missing = read_storage_health(tree.root(), Some(dev.path()))
            .nvme_unread
            .expect("nvme0 was tried");
        assert!(collector.log_nvme(&missing));
        assert!(!collector.log_nvme(&missing), "logged once");

        // A regular file where the device should be: the ioctl fails (ENOTTY), a warning.
        std::fs::write(dev.path().join("nvme0"), b"").expect("a temp file can be written");
        let refused = read_storage_health(tree.root(), Some(dev.path()))
            .nvme_unread
            .expect("nvme0 was tried");
        assert!(!refused.is_unprivileged(), "{refused}");
        assert!(
            collector.log_nvme(&refused),
            "the info did not use up the warning"
        );
        assert!(!collector.log_nvme(&refused), "warned once");
    }

    #[test]
    fn undefined_estimates_are_left_out() {
        let tree = Tree::cm4_emmc();
        tree.write(&format!("{CARD}/life_time"), "0x00 0x00\n");
        tree.write(&format!("{CARD}/pre_eol_info"), "0x00\n");
        assert_eq!(read_storage_health(tree.root(), None).devices, []);
        tree.write(&format!("{CARD}/life_time"), "0x0b 0x00\n");
        let devices = read_storage_health(tree.root(), None).devices;
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
        let found = read_storage_health(tree.root(), None);
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
