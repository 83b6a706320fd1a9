//! Mounted filesystems counted as `df` counts them: the mounts listed from
//! `ROOT/proc/self/mountinfo` (`ROOT/proc/mounts` when that is missing), each measured with
//! `statvfs` ([`crate::statvfs`]) of its mount point.
//!
//! What is reported for a filesystem ([`DiskVitals`]), with `statvfs` fields in block units of
//! `f_frsize`:
//! - `mount`, `device`, `fs_type`: mount point, source and type from the mount list, with the
//!   kernel's octal escapes (`\040` space, `\011` tab, `\012` newline, `\134` backslash)
//!   decoded;
//! - `total_bytes` = `f_blocks × f_frsize` (`df`'s "Size");
//! - `free_bytes` = `f_bfree × f_frsize`: free blocks, those reserved for root included;
//! - `available_bytes` = `f_bavail × f_frsize`: what an unprivileged user can still write
//!   (`df`'s "Avail");
//! - `used_bytes` = total − free (`df`'s "Used"): reserved blocks are not counted as used, so
//!   [`DiskVitals::used_percent`], used / (used + available) rounded up, is `df`'s "Use%";
//! - `inodes_total` = `f_files`, `inodes_free` = `f_ffree`, both left out when `f_files` is 0
//!   (vfat, btrfs: no fixed inode table, `df -i` shows `-`).
//!
//! Which mounts are reported, in mount order:
//! 1. of mounts stacked on the same mount point, the last one only: it hides the others, and
//!    `statvfs` of that path measures it;
//! 2. not of an ignored type ([`DEFAULT_IGNORED_FS_TYPES`] unless configured): kernel
//!    interfaces, memory-backed and layered filesystems;
//! 3. not at or under an ignored mount point ([`DEFAULT_IGNORED_MOUNTS`] unless configured),
//!    compared by path component: `/dev` leaves out `/dev/shm` but not `/devices`;
//! 4. each device once (bind mounts, a disk mounted twice, a container's `/etc/hosts`): the
//!    shortest mount point, the first among equals; devices are told apart by their
//!    `major:minor` number (by name from `/proc/mounts`, never merging `none` or nameless ones);
//! 5. not empty: a filesystem of 0 blocks (`statvfs` says so at each sample) is left out.
//!
//! The mount points are host paths: `statvfs` is taken on them as they are, not under the
//! collector's root, so a fixture tree's mount list names this host's paths.
//!
//! Sizes are read every sample (one `statvfs` a filesystem); the list of mounts only every
//! [`RELIST_EVERY`] samples: the kernel formats every mount's options for each read of the
//! mount list, a large share of a sample's cost, for a list that changes when a disk is
//! plugged in. A mount that cannot be measured (unmounted since it was listed, a FUSE mount of
//! another user) is left out of that sample.

use std::collections::HashMap;
use std::ffi::OsString;
use std::io;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use pivitals_common::DiskVitals;

use super::statvfs::{FsStats, statvfs};
use super::warn_once::WarnOnce;

/// The mounts are listed again every this many samples (a minute at a 1 s interval).
pub(crate) const RELIST_EVERY: u32 = 60;
/// Filesystem types that hold no user data: kernel interfaces, memory-backed and layered
/// filesystems, and FUSE daemons that only mirror other data.
pub(crate) const DEFAULT_IGNORED_FS_TYPES: &[&str] = &[
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

/// Mount points that hold no user data of their own, left out with everything under them.
pub(crate) const DEFAULT_IGNORED_MOUNTS: &[&str] = &[
    "/dev",
    "/proc",
    "/sys",
    "/run/credentials",
    "/var/lib/docker",
    "/var/lib/containers/storage",
];

/// One mounted filesystem as the mount list names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    /// Where it is mounted, decoded; bytes, as the kernel has them, since not every path is
    /// UTF-8.
    pub(crate) path: PathBuf,
    /// What is mounted: `/dev/sda1`, `server:/export`, `tmpfs`.
    pub(crate) device: String,
    pub(crate) fs_type: String,
    /// `major:minor` of the filesystem (mountinfo); unknown from `/proc/mounts`.
    pub(crate) device_number: Option<String>,
}

impl Mount {
    /// The mount point as text, for the report.
    fn point(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }

    /// What tells this filesystem apart from others, when anything does: the device number,
    /// else the device name unless it is `none` or empty (those say nothing).
    fn identity(&self) -> Option<&str> {
        match &self.device_number {
            Some(number) => Some(number),
            None => (!self.device.is_empty() && self.device != "none").then_some(&self.device),
        }
    }
}

/// Decodes the kernel's octal escapes of a mount list field (`\040` for a space, `\011` tab,
/// `\012` newline, `\134` backslash); anything else is kept as it is.
pub(crate) fn unescape(field: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(field.len());
    let mut i = 0;
    while i < field.len() {
        if field[i] == b'\\'
            && let Some(&[a, b, c]) = field.get(i + 1..i + 4)
            && [a, b, c].iter().all(|d| (b'0'..=b'7').contains(d))
            && a <= b'3'
        {
            decoded.push((a - b'0') * 64 + (b - b'0') * 8 + (c - b'0'));
            i += 4;
        } else {
            decoded.push(field[i]);
            i += 1;
        }
    }
    decoded
}

fn text(field: &[u8]) -> String {
    String::from_utf8_lossy(&unescape(field)).into_owned()
}

fn path(field: &[u8]) -> PathBuf {
    PathBuf::from(OsString::from_vec(unescape(field)))
}

/// The mounts of a `/proc/self/mountinfo` (`proc(5)`): `36 35 98:0 /mnt1 /mnt2 rw,noatime
/// master:1 - ext3 /dev/root rw`; a line of another shape is skipped.
pub(crate) fn parse_mountinfo(content: &[u8]) -> Vec<Mount> {
    content
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let fields: Vec<&[u8]> = line.split(|b| *b == b' ').collect();
            // Optional fields (`shared:1`) come before the `-` separator; there may be none.
            let separator = 6 + fields.get(6..)?.iter().position(|f| *f == b"-")?;
            let fs_type = fields.get(separator + 1)?;
            let device = fields.get(separator + 2)?;
            Some(Mount {
                path: path(fields[4]),
                device: text(device),
                fs_type: text(fs_type),
                device_number: Some(text(fields[2])),
            })
        })
        .collect()
}

/// The mounts of a `/proc/mounts` (`fstab(5)` format): `/dev/sda1 /mnt/usb\040disk ext4 rw 0
/// 0`; a line of another shape is skipped.
pub(crate) fn parse_mounts(content: &[u8]) -> Vec<Mount> {
    content
        .split(|b| *b == b'\n')
        .filter_map(|line| {
            let mut fields = line.split(|b| *b == b' ').filter(|f| !f.is_empty());
            let device = fields.next()?;
            let point = fields.next()?;
            let fs_type = fields.next()?;
            Some(Mount {
                path: path(point),
                device: text(device),
                fs_type: text(fs_type),
                device_number: None,
            })
        })
        .collect()
}

/// Lists the mounts from `ROOT/proc/self/mountinfo`, or `ROOT/proc/mounts` when the kernel or
/// the tree has no mountinfo.
pub(crate) fn list_mounts(root: &Path) -> io::Result<Vec<Mount>> {
    let mountinfo = root.join("proc/self/mountinfo");
    match std::fs::read(&mountinfo) {
        Ok(content) => Ok(parse_mountinfo(&content)),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            let mounts = root.join("proc/mounts");
            let content = std::fs::read(&mounts).map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot read {}: {error}", mounts.display()),
                )
            })?;
            Ok(parse_mounts(&content))
        }
        Err(error) => Err(io::Error::new(
            error.kind(),
            format!("cannot read {}: {error}", mountinfo.display()),
        )),
    }
}

/// Whether `path` is `under` or inside it, component by component.
fn is_at_or_under(path: &Path, under: &str) -> bool {
    !under.is_empty() && path.starts_with(under)
}

/// The mounts worth measuring (steps 1 to 4 of the module doc), in mount order.
pub(crate) fn kept_mounts(
    mounts: Vec<Mount>,
    ignore_fs_types: &[String],
    ignore_mounts: &[String],
) -> Vec<Mount> {
    // The last mount on a path hides the ones before it.
    let last_on_path: HashMap<PathBuf, usize> = mounts
        .iter()
        .enumerate()
        .map(|(index, mount)| (mount.path.clone(), index))
        .collect();
    let mut kept: Vec<Mount> = Vec::new();
    let mut by_identity: HashMap<String, usize> = HashMap::new();
    for (index, mount) in mounts.into_iter().enumerate() {
        if last_on_path.get(&mount.path) != Some(&index)
            || ignore_fs_types.contains(&mount.fs_type)
            || ignore_mounts
                .iter()
                .any(|ignored| is_at_or_under(&mount.path, ignored))
        {
            continue;
        }
        let identity = mount.identity().map(str::to_owned);
        match identity.as_ref().and_then(|id| by_identity.get(id)) {
            Some(&index) => {
                let shorter = mount.path.as_os_str().len() < kept[index].path.as_os_str().len();
                if shorter {
                    kept[index] = mount;
                }
            }
            None => {
                if let Some(identity) = identity {
                    by_identity.insert(identity, kept.len());
                }
                kept.push(mount);
            }
        }
    }
    kept
}

/// A mount's vitals from its `statvfs` (the numbers of the module doc); None for an empty
/// filesystem.
pub(crate) fn disk_vitals(mount: &Mount, stats: &FsStats) -> Option<DiskVitals> {
    let bytes = |blocks: u64| blocks.saturating_mul(stats.fragment_size);
    let total_bytes = bytes(stats.blocks);
    if total_bytes == 0 {
        return None;
    }
    let free_bytes = bytes(stats.blocks_free);
    let has_inodes = stats.files > 0;
    Some(DiskVitals {
        mount: mount.point(),
        device: mount.device.clone(),
        fs_type: mount.fs_type.clone(),
        total_bytes,
        used_bytes: total_bytes.saturating_sub(free_bytes),
        free_bytes: Some(free_bytes),
        available_bytes: Some(bytes(stats.blocks_available)),
        inodes_total: has_inodes.then_some(stats.files),
        inodes_free: has_inodes.then_some(stats.files_free),
    })
}

/// Samples the mounted filesystems; keeps the list of mounts between samples.
pub(crate) struct DiskCollector {
    mounts: Vec<Mount>,
    /// Samples taken since the mounts were last listed.
    since_listed: u32,
    /// Warns when the mounts cannot be listed or none is left.
    warn: WarnOnce,
    /// Warns when a listed mount cannot be measured.
    warn_statvfs: WarnOnce,
    /// Filesystem types and mount points left out ([`crate::Settings`]).
    ignore_fs_types: Vec<String>,
    ignore_mounts: Vec<String>,
}

impl DiskCollector {
    pub(crate) fn new(ignore_fs_types: Vec<String>, ignore_mounts: Vec<String>) -> Self {
        Self {
            mounts: Vec::new(),
            since_listed: RELIST_EVERY,
            warn: WarnOnce::default(),
            warn_statvfs: WarnOnce::default(),
            ignore_fs_types,
            ignore_mounts,
        }
    }

    /// Measures the mounts listed under `root` (listing them again every [`RELIST_EVERY`]
    /// samples); when they cannot be listed, the previous list is kept.
    pub(crate) fn sample(&mut self, root: &Path) -> Vec<DiskVitals> {
        if self.since_listed >= RELIST_EVERY {
            if let Some(mounts) = self.warn.ok("disks", list_mounts(root)) {
                self.mounts = kept_mounts(mounts, &self.ignore_fs_types, &self.ignore_mounts);
            }
            self.since_listed = 0;
        }
        self.since_listed += 1;
        let disks: Vec<DiskVitals> = self
            .mounts
            .iter()
            .filter_map(|mount| match statvfs(&mount.path) {
                Ok(stats) => disk_vitals(mount, &stats),
                Err(error) => {
                    let reason = format!("cannot statvfs {}: {error}", mount.path.display());
                    self.warn_statvfs.warn("disks", &reason);
                    None
                }
            })
            .collect();
        if disks.is_empty() {
            self.warn.warn("disks", &"no real filesystem is mounted");
        }
        disks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;

    /// What a Raspberry Pi 4 running Docker shows (trimmed), with a USB disk whose label has a
    /// space, a second mount of `/dev/shm`, and a bind mount of the SD card.
    const PI_MOUNTINFO: &str = "\
21 1 179:2 / / rw,noatime shared:1 - ext4 /dev/root rw
22 21 0:5 / /dev rw,relatime shared:2 - devtmpfs udev rw,size=1827976k,mode=755
23 22 0:20 / /dev/shm rw,nosuid,nodev shared:3 - tmpfs tmpfs rw
24 21 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
25 21 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:6 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:7 - cgroup2 cgroup2 rw
27 21 0:24 / /run rw,nosuid,nodev,noexec,relatime shared:4 - tmpfs tmpfs rw,size=789060k,mode=755
28 21 179:1 / /boot/firmware rw,relatime shared:15 - vfat /dev/mmcblk0p1 rw,fmask=0022
29 21 8:1 / /mnt/usb\\040disk rw,relatime shared:16 - ext4 /dev/sda1 rw
30 21 0:30 / /devices rw,relatime shared:17 - ext4 /dev/sdb1 rw
31 21 0:31 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/x
32 21 7:0 / /snap/core/1 ro,nodev,relatime shared:18 - squashfs /dev/loop0 ro
33 21 179:2 /srv/share /export/share rw,noatime shared:1 - ext4 /dev/root rw
34 22 0:32 / /dev/shm rw,nosuid,nodev - tmpfs tmpfs rw
35 21 0:33 / /mnt/remote rw,nosuid,nodev,relatime - fuse.sshfs user@host:/data rw,user_id=1000
36 21 0:34 / /mnt/tab\\011new\\012back\\134slash rw - ext4 /dev/sdc1 rw
";

    fn defaults() -> (Vec<String>, Vec<String>) {
        let settings = Settings::default();
        (settings.disk_ignore_fs_types, settings.disk_ignore_mounts)
    }

    fn kept_with_defaults(mounts: Vec<Mount>) -> Vec<Mount> {
        let (types, points) = defaults();
        kept_mounts(mounts, &types, &points)
    }

    fn points(mounts: &[Mount]) -> Vec<String> {
        mounts.iter().map(Mount::point).collect()
    }

    /// A mount as `/proc/mounts` lists it: no device number.
    fn mount(device: &str, point: &str, fs_type: &str) -> Mount {
        Mount {
            path: PathBuf::from(point),
            device: device.to_owned(),
            fs_type: fs_type.to_owned(),
            device_number: None,
        }
    }

    #[test]
    fn octal_escapes_are_decoded_and_anything_else_is_kept() {
        assert_eq!(unescape(b"/mnt/usb\\040disk"), b"/mnt/usb disk");
        assert_eq!(unescape(b"a\\011b\\012c\\134d"), b"a\tb\nc\\d");
        assert_eq!(unescape(b"\\040\\040"), b"  ");
        // Not three octal digits, or above \377: not an escape.
        assert_eq!(unescape(b"a\\09b\\4000\\12"), b"a\\09b\\4000\\12");
        assert_eq!(unescape(b"trailing\\"), b"trailing\\");
        // Bytes that are not UTF-8 stay bytes.
        assert_eq!(unescape(b"caf\\351"), b"caf\xe9");
    }

    #[test]
    fn mountinfo_lines_give_point_device_type_and_number() {
        let mounts = parse_mountinfo(PI_MOUNTINFO.as_bytes());
        assert_eq!(mounts.len(), 16);
        assert_eq!(
            mounts[0],
            Mount {
                path: PathBuf::from("/"),
                device: "/dev/root".to_owned(),
                fs_type: "ext4".to_owned(),
                device_number: Some("179:2".to_owned()),
            }
        );
        assert_eq!(mounts[8].point(), "/mnt/usb disk");
        assert_eq!(mounts[8].device, "/dev/sda1");
        // No optional field before the separator.
        assert_eq!(mounts[10].fs_type, "overlay");
        assert_eq!(mounts[14].device, "user@host:/data");
        assert_eq!(mounts[15].point(), "/mnt/tab\tnew\nback\\slash");
    }

    #[test]
    fn malformed_mountinfo_lines_are_skipped() {
        let content = "garbage\n\n1 2 3:4 / /x rw shared:1 ext4 /dev/sda1 rw\n\
                       21 1 179:2 / / rw - ext4 /dev/root rw\n21 1 179:2 / /y rw -\n";
        assert_eq!(points(&parse_mountinfo(content.as_bytes())), ["/"]);
    }

    #[test]
    fn proc_mounts_lines_give_point_device_and_type() {
        let content = "/dev/root / ext4 rw,noatime 0 0\n\
                       /dev/sda1 /mnt/usb\\040disk ext4 rw 0 0\n\
                       short line\n";
        let mounts = parse_mounts(content.as_bytes());
        assert_eq!(
            mounts,
            [
                mount("/dev/root", "/", "ext4"),
                mount("/dev/sda1", "/mnt/usb disk", "ext4")
            ]
        );
    }

    #[test]
    fn a_pi_keeps_its_sd_card_partitions_and_disks_only() {
        let kept = kept_with_defaults(parse_mountinfo(PI_MOUNTINFO.as_bytes()));
        assert_eq!(
            points(&kept),
            [
                "/",
                "/boot/firmware",
                "/mnt/usb disk",
                "/devices",
                "/mnt/remote",
                "/mnt/tab\tnew\nback\\slash",
            ]
        );
    }

    #[test]
    fn from_proc_mounts_too() {
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
        assert_eq!(
            points(&kept_with_defaults(mounts)),
            ["/", "/boot/firmware", "/mnt/usb disk", "/mnt/remote"]
        );
    }

    #[test]
    fn ignored_mounts_are_compared_by_path_component() {
        let mounts = vec![
            mount("/dev/sda1", "/dev", "ext4"),
            mount("/dev/sda2", "/dev/shm", "ext4"),
            mount("/dev/sda3", "/devices", "ext4"),
            mount("/dev/sda4", "/mnt/backup", "ext4"),
            mount("/dev/sda5", "/mnt/backup/daily", "ext4"),
            mount("/dev/sda6", "/mnt/backups", "ext4"),
            mount("/dev/sda7", "/var/lib/docker", "ext4"),
        ];
        let ignored = ["/dev".to_owned(), "/mnt/backup/".to_owned(), String::new()];
        assert_eq!(
            points(&kept_mounts(mounts.clone(), &[], &ignored)),
            ["/devices", "/mnt/backups", "/var/lib/docker"]
        );
        assert_eq!(
            points(&kept_mounts(mounts, &[], &["/".to_owned()])),
            Vec::<String>::new()
        );
    }

    #[test]
    fn ignored_types_are_configurable() {
        let mounts = parse_mountinfo(PI_MOUNTINFO.as_bytes());
        let kept = kept_mounts(mounts.clone(), &[], &[]);
        assert!(points(&kept).contains(&"/run".to_owned()), "{kept:?}");
        let kept = kept_mounts(mounts, &["ext4".to_owned(), "tmpfs".to_owned()], &[]);
        assert_eq!(
            kept.iter().map(|m| m.fs_type.as_str()).collect::<Vec<_>>(),
            [
                "devtmpfs",
                "proc",
                "sysfs",
                "cgroup2",
                "vfat",
                "overlay",
                "squashfs",
                "fuse.sshfs"
            ]
        );
    }

    #[test]
    fn a_device_mounted_twice_is_kept_once_at_its_shortest_mount() {
        let mounts = vec![
            mount("/dev/sda1", "/srv/data", "ext4"),
            mount("/dev/vda", "/etc/hosts", "ext4"),
            mount("/dev/vda", "/", "ext4"),
            mount("/dev/vda", "/etc/hostname", "ext4"),
            mount("/dev/sda1", "/srv/other/data", "ext4"),
            mount("/dev/sdb1", "/a", "ext4"),
            mount("/dev/sdb1", "/b", "ext4"),
        ];
        let kept: Vec<_> = kept_with_defaults(mounts)
            .into_iter()
            .map(|m| (m.device.clone(), m.point()))
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
    fn devices_are_told_apart_by_number_when_known() {
        let numbered = |device: &str, point: &str, number: &str| Mount {
            device_number: Some(number.to_owned()),
            ..mount(device, point, "zfs")
        };
        let mounts = vec![
            numbered("pool/a", "/mnt/a", "0:40"),
            numbered("pool/a", "/mnt/a2", "0:41"),
            numbered("pool/b", "/b", "0:40"),
        ];
        assert_eq!(points(&kept_with_defaults(mounts)), ["/b", "/mnt/a2"]);
    }

    #[test]
    fn anonymous_devices_are_never_merged() {
        let mounts = vec![
            mount("none", "/mnt/a", "zfs"),
            mount("none", "/mnt/b", "zfs"),
            mount("", "/mnt/c", "zfs"),
            mount("", "/mnt/d", "zfs"),
        ];
        assert_eq!(
            points(&kept_with_defaults(mounts)),
            ["/mnt/a", "/mnt/b", "/mnt/c", "/mnt/d"]
        );
    }

    #[test]
    fn of_mounts_stacked_on_one_path_the_last_is_kept() {
        let mounts = vec![
            mount("/dev/sda1", "/mnt/usb", "ext4"),
            mount("/dev/sdb1", "/mnt/usb", "ext4"),
            mount("/dev/sdc1", "/mnt/ram", "ext4"),
            mount("tmpfs", "/mnt/ram", "tmpfs"),
        ];
        let kept = kept_with_defaults(mounts);
        assert_eq!(
            kept.iter().map(|m| m.device.as_str()).collect::<Vec<_>>(),
            ["/dev/sdb1"],
            "the hidden ext4 under the tmpfs is not measured either"
        );
    }

    fn stats(blocks: u64, free: u64, available: u64, files: u64, files_free: u64) -> FsStats {
        FsStats {
            fragment_size: 4096,
            blocks,
            blocks_free: free,
            blocks_available: available,
            files,
            files_free,
        }
    }

    #[test]
    fn used_is_total_minus_free_and_reserved_blocks_are_not_used() {
        // A 32 GB card, 3.4 GB written, 5 % reserved for root: `df` shows 12 %, not 16 %.
        let disk = disk_vitals(
            &mount("/dev/root", "/", "ext4"),
            &stats(7_812_500, 6_982_422, 6_591_797, 1_954_064, 1_840_000),
        )
        .expect("not empty");
        assert_eq!(disk.total_bytes, 7_812_500 * 4096);
        assert_eq!(disk.used_bytes, (7_812_500 - 6_982_422) * 4096);
        assert_eq!(disk.free_bytes, Some(6_982_422 * 4096));
        assert_eq!(disk.available_bytes, Some(6_591_797 * 4096));
        assert_eq!(disk.used_percent(), Some(12.0));
        assert_eq!(disk.inodes_total, Some(1_954_064));
        assert_eq!(disk.inodes_free, Some(1_840_000));
        assert_eq!(disk.inodes_used_percent(), Some(6.0));
        assert_eq!(
            (disk.mount.as_str(), disk.device.as_str()),
            ("/", "/dev/root")
        );
    }

    #[test]
    fn filesystems_without_inodes_and_empty_ones() {
        let vfat = mount("/dev/mmcblk0p1", "/boot/firmware", "vfat");
        let disk = disk_vitals(&vfat, &stats(130_000, 100_000, 100_000, 0, 0)).expect("not empty");
        assert_eq!((disk.inodes_total, disk.inodes_free), (None, None));
        assert_eq!(disk.inodes_used_percent(), None);
        assert_eq!(disk_vitals(&vfat, &stats(0, 0, 0, 0, 0)), None);
    }

    #[test]
    fn a_tree_lists_its_mounts_and_they_are_measured_on_this_host() {
        let tree = tempfile::tempdir().expect("a temp dir can be created");
        let data = tempfile::tempdir().expect("a temp dir can be created");
        let escaped = data.path().to_str().expect("UTF-8").replace(' ', "\\040");
        std::fs::create_dir_all(tree.path().join("proc/self")).expect("mkdir");
        std::fs::write(
            tree.path().join("proc/self/mountinfo"),
            format!(
                "1 0 254:0 / / rw - ext4 /dev/vda rw\n\
                 2 1 0:99 / {escaped} rw - ext4 /dev/data rw\n\
                 3 1 0:98 / /does/not/exist rw - ext4 /dev/gone rw\n\
                 4 1 0:97 / /run rw - tmpfs tmpfs rw\n"
            ),
        )
        .expect("write mountinfo");
        let (types, points) = defaults();
        let disks = DiskCollector::new(types, points).sample(tree.path());
        let mounts: Vec<&str> = disks.iter().map(|d| d.mount.as_str()).collect();
        assert_eq!(mounts, ["/", data.path().to_str().expect("UTF-8")]);
        let root = statvfs(Path::new("/")).expect("statvfs of /");
        assert_eq!(disks[0].total_bytes, root.blocks * root.fragment_size);
        assert_eq!(disks[0].device, "/dev/vda");
        let data_fs = statvfs(data.path()).expect("statvfs of a temp dir");
        assert_eq!(disks[1].total_bytes, data_fs.blocks * data_fs.fragment_size);
    }

    #[test]
    fn proc_mounts_is_read_when_there_is_no_mountinfo() {
        let tree = tempfile::tempdir().expect("a temp dir can be created");
        let error = list_mounts(tree.path()).expect_err("nothing to read");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        assert!(error.to_string().contains("proc/mounts"), "{error}");
        std::fs::create_dir_all(tree.path().join("proc")).expect("mkdir");
        std::fs::write(tree.path().join("proc/mounts"), "/dev/vda / ext4 rw 0 0\n")
            .expect("write mounts");
        let mounts = list_mounts(tree.path()).expect("listed");
        assert_eq!(mounts, [mount("/dev/vda", "/", "ext4")]);
    }

    #[test]
    fn samples_this_machines_disks() {
        let (types, points) = defaults();
        let disks = DiskCollector::new(types.clone(), points).sample(Path::new("/"));
        assert!(!disks.is_empty(), "this machine has a root filesystem");
        for disk in &disks {
            assert!(!types.contains(&disk.fs_type), "{disk:?}");
            assert!(disk.total_bytes > 0, "{disk:?}");
            let free = disk.free_bytes.expect("free");
            assert_eq!(disk.used_bytes, disk.total_bytes - free, "{disk:?}");
            assert!(disk.available_bytes.expect("available") <= free, "{disk:?}");
        }
    }

    #[test]
    fn the_mounts_are_listed_at_the_first_sample_and_then_once_in_a_while() {
        let (types, points) = defaults();
        let mut collector = DiskCollector::new(types, points);
        let root = Path::new("/");
        let first = collector.sample(root);
        assert!(!first.is_empty(), "listed at the first sample");
        assert_eq!(collector.since_listed, 1);
        for _ in 1..RELIST_EVERY {
            let mounts: Vec<String> = collector
                .sample(root)
                .into_iter()
                .map(|d| d.mount)
                .collect();
            let expected: Vec<&str> = first.iter().map(|d| d.mount.as_str()).collect();
            assert_eq!(mounts, expected, "sizes refreshed on the same list");
        }
        assert_eq!(collector.since_listed, RELIST_EVERY);
        collector.sample(root);
        assert_eq!(collector.since_listed, 1, "listed again");
    }

    #[test]
    fn a_list_that_cannot_be_read_keeps_the_previous_one() {
        let (types, points) = defaults();
        let mut collector = DiskCollector::new(types, points);
        let first = collector.sample(Path::new("/"));
        collector.since_listed = RELIST_EVERY;
        let empty = tempfile::tempdir().expect("a temp dir can be created");
        let again = collector.sample(empty.path());
        assert_eq!(
            again.iter().map(|d| &d.mount).collect::<Vec<_>>(),
            first.iter().map(|d| &d.mount).collect::<Vec<_>>()
        );
    }
}
