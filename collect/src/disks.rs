//! Mounted filesystems with their size and use, from sysinfo (`/proc/mounts` and `statvfs`),
//! keeping real filesystems only and each device once.
//!
//! Sizes are read every sample (one `statvfs` a filesystem); the list of mounts only every
//! [`RELIST_EVERY`] samples: the kernel formats every mount's options for each read of
//! `/proc/mounts`, a large share of a sample's cost, for a list that changes when a disk is
//! plugged in.

use std::collections::HashMap;

use pivitals_common::DiskVitals;
use sysinfo::{DiskRefreshKind, Disks};

use super::warn_once::WarnOnce;

/// The mounts are listed again every this many samples (a minute at a 1 s interval).
pub(crate) const RELIST_EVERY: u32 = 60;

/// Filesystem types that hold no user data: kernel interfaces, memory-backed and layered
/// filesystems, and FUSE daemons that only mirror other data.
const PSEUDO_FS_TYPES: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "overlay",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tmpfs",
    "tracefs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.snapfuse",
    "fuse.xdg-document-portal",
];

/// Whether a filesystem type stores real data (ext4, vfat, btrfs, nfs, fuse.sshfs, …).
pub(crate) fn is_real_fs_type(fs_type: &str) -> bool {
    !PSEUDO_FS_TYPES.contains(&fs_type)
}

/// Keeps the real filesystems of `mounts` (in mount order): drops pseudo filesystems and
/// empty ones, and of a device mounted more than once (bind mounts, containers) keeps the
/// shortest mount point, the first among equals.
pub(crate) fn real_filesystems(mounts: Vec<DiskVitals>) -> Vec<DiskVitals> {
    let mut kept: Vec<DiskVitals> = Vec::new();
    let mut by_device: HashMap<String, usize> = HashMap::new();
    for disk in mounts {
        if !is_real_fs_type(&disk.fs_type) || disk.total_bytes == 0 {
            continue;
        }
        // `none` and empty names say nothing about the device: never merge those.
        let shared_device = !disk.device.is_empty() && disk.device != "none";
        match by_device.get(&disk.device) {
            Some(&index) if shared_device => {
                if disk.mount.len() < kept[index].mount.len() {
                    kept[index] = disk;
                }
            }
            _ => {
                by_device.insert(disk.device.clone(), kept.len());
                kept.push(disk);
            }
        }
    }
    kept
}

/// Samples the mounted filesystems; keeps the sysinfo list between samples.
pub(crate) struct DiskCollector {
    disks: Option<Disks>,
    /// Samples taken since the mounts were last listed.
    since_listed: u32,
    warn: WarnOnce,
}

impl DiskCollector {
    pub(crate) fn new() -> Self {
        let mut warn = WarnOnce::default();
        let disks = warn.ok("disks", Disks::new());
        Self {
            disks,
            since_listed: RELIST_EVERY,
            warn,
        }
    }

    pub(crate) fn sample(&mut self) -> Vec<DiskVitals> {
        let Some(disks) = self.disks.as_mut() else {
            return Vec::new();
        };
        // Sizes only: no disk kind probing, no I/O counters.
        let sizes = DiskRefreshKind::nothing().with_storage();
        if self.since_listed >= RELIST_EVERY {
            disks.refresh_specifics(true, sizes);
            self.since_listed = 0;
        } else {
            for disk in disks.iter_mut() {
                disk.refresh_specifics(sizes);
            }
        }
        self.since_listed += 1;
        let mounts = disks
            .iter()
            .map(|disk| DiskVitals {
                mount: disk.mount_point().to_string_lossy().into_owned(),
                device: disk.name().to_string_lossy().into_owned(),
                fs_type: disk.file_system().to_string_lossy().into_owned(),
                total_bytes: disk.total_space(),
                // sysinfo knows what is available to users; blocks reserved for root count as used.
                used_bytes: disk.total_space().saturating_sub(disk.available_space()),
            })
            .collect();
        let real = real_filesystems(mounts);
        if real.is_empty() {
            self.warn.warn("disks", &"no real filesystem is mounted");
        }
        real
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(device: &str, mount: &str, fs_type: &str) -> DiskVitals {
        DiskVitals {
            mount: mount.to_owned(),
            device: device.to_owned(),
            fs_type: fs_type.to_owned(),
            total_bytes: 32_000_000_000,
            used_bytes: 4_000_000_000,
        }
    }

    #[test]
    fn a_pi_keeps_its_sd_card_partitions_and_usb_disk_only() {
        let mounts = vec![
            mount("/dev/root", "/", "ext4"),
            mount("devtmpfs", "/dev", "devtmpfs"),
            mount("proc", "/proc", "proc"),
            mount("sysfs", "/sys", "sysfs"),
            mount("tmpfs", "/run", "tmpfs"),
            mount("cgroup2", "/sys/fs/cgroup", "cgroup2"),
            mount("/dev/mmcblk0p1", "/boot/firmware", "vfat"),
            mount("/dev/sda1", "/mnt/usb disk", "ext4"),
            mount("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay"),
            mount("/dev/loop0", "/snap/core/1", "squashfs"),
            mount("lxcfs", "/var/lib/lxcfs", "fuse.lxcfs"),
            mount("nsfs", "/run/docker/netns/x", "nsfs"),
            mount("user@host:/data", "/mnt/remote", "fuse.sshfs"),
        ];
        let kept: Vec<_> = real_filesystems(mounts)
            .into_iter()
            .map(|d| d.mount)
            .collect();
        assert_eq!(
            kept,
            ["/", "/boot/firmware", "/mnt/usb disk", "/mnt/remote"]
        );
    }

    #[test]
    fn a_device_mounted_twice_is_kept_once_at_its_shortest_mount() {
        let mounts = vec![
            mount("/dev/sda1", "/srv/data", "ext4"),
            mount("/dev/vda", "/etc/hosts", "ext4"),
            mount("/dev/vda", "/", "ext4"),
            mount("/dev/vda", "/etc/hostname", "ext4"),
            mount("/dev/sda1", "/var/lib/docker/volumes/x", "ext4"),
            mount("/dev/sdb1", "/a", "ext4"),
            mount("/dev/sdb1", "/b", "ext4"),
        ];
        let kept: Vec<_> = real_filesystems(mounts)
            .into_iter()
            .map(|d| (d.device, d.mount))
            .collect();
        let expected = [
            ("/dev/sda1", "/srv/data"),
            ("/dev/vda", "/"),
            ("/dev/sdb1", "/a"),
        ];
        let expected: Vec<_> = expected
            .iter()
            .map(|(d, m)| (d.to_string(), m.to_string()))
            .collect();
        assert_eq!(kept, expected);
    }

    #[test]
    fn empty_filesystems_and_anonymous_devices() {
        let mut empty = mount("/dev/sdc1", "/mnt/empty", "ext4");
        empty.total_bytes = 0;
        let mounts = vec![
            empty,
            mount("none", "/mnt/a", "zfs"),
            mount("none", "/mnt/b", "zfs"),
        ];
        let kept: Vec<_> = real_filesystems(mounts)
            .into_iter()
            .map(|d| d.mount)
            .collect();
        assert_eq!(kept, ["/mnt/a", "/mnt/b"]);
    }

    #[test]
    fn samples_this_machines_disks() {
        let disks = DiskCollector::new().sample();
        assert!(!disks.is_empty(), "this machine has a root filesystem");
        for disk in &disks {
            assert!(is_real_fs_type(&disk.fs_type), "{disk:?}");
            assert!(disk.used_bytes <= disk.total_bytes, "{disk:?}");
        }
    }

    #[test]
    fn the_mounts_are_listed_at_the_first_sample_and_then_once_in_a_while() {
        let mut collector = DiskCollector::new();
        let first = collector.sample();
        assert!(!first.is_empty(), "listed at the first sample");
        assert_eq!(collector.since_listed, 1);
        for _ in 1..RELIST_EVERY {
            let mounts: Vec<String> = collector.sample().into_iter().map(|d| d.mount).collect();
            let expected: Vec<&str> = first.iter().map(|d| d.mount.as_str()).collect();
            assert_eq!(mounts, expected, "sizes refreshed on the same list");
        }
        assert_eq!(collector.since_listed, RELIST_EVERY);
        collector.sample();
        assert_eq!(collector.since_listed, 1, "listed again");
    }
}
