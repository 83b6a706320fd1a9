//! `statvfs(3)` of a path, as a safe function (the other calls into libc are `getifaddrs` in
//! `identity.rs` and the NVMe admin ioctl in `nvme.rs`).
//!
//! On glibc this is `statvfs64`, whose counts are 64-bit on every target: the plain `statvfs` of
//! 32-bit Raspberry Pi OS (armhf) has 32-bit counts and fails with `EOVERFLOW` on a filesystem
//! with more than 2³² blocks or inodes (XFS and NFS report large inode counts). musl's
//! `statvfs` is 64-bit already.

use std::ffi::CString;
use std::io;
use std::mem::MaybeUninit;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

// Both the function and its buffer type are named `statvfs64` (`statvfs` on musl).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
use libc::statvfs as sys_statvfs;
#[cfg(all(target_os = "linux", target_env = "gnu"))]
use libc::statvfs64 as sys_statvfs;

/// What `statvfs` tells of a filesystem, counts in [`FsStats::fragment_size`] units for blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FsStats {
    /// `f_frsize`, the unit of the block counts (`f_bsize` when a filesystem leaves it 0, as
    /// `df` does).
    pub(crate) fragment_size: u64,
    /// `f_blocks`: the filesystem's size.
    pub(crate) blocks: u64,
    /// `f_bfree`: free blocks, those reserved for root included.
    pub(crate) blocks_free: u64,
    /// `f_bavail`: free blocks an unprivileged user may use.
    pub(crate) blocks_available: u64,
    /// `f_files`: inodes; 0 on filesystems without a fixed inode table (vfat, btrfs).
    pub(crate) files: u64,
    /// `f_ffree`: free inodes.
    pub(crate) files_free: u64,
}

/// `statvfs` of `path`: the filesystem mounted at, or holding, `path` on this host.
pub(crate) fn statvfs(path: &Path) -> io::Result<FsStats> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path holds a NUL byte"))?;
    let mut buf = MaybeUninit::<sys_statvfs>::zeroed();
    // SAFETY: `c_path` is a NUL-terminated string that outlives the call, and `buf` points to
    // writable memory of the buffer type this function fills; the call keeps neither pointer.
    let rc = unsafe { sys_statvfs(c_path.as_ptr(), buf.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the call succeeded, so it filled the buffer (which was zeroed before anyway).
    let buf = unsafe { buf.assume_init() };
    // `c_ulong` is 32 bits on armhf and 64 elsewhere; the counts are 64 bits everywhere.
    #[allow(clippy::useless_conversion)]
    let fragment_size = u64::from(if buf.f_frsize != 0 {
        buf.f_frsize
    } else {
        buf.f_bsize
    });
    Ok(FsStats {
        fragment_size,
        blocks: buf.f_blocks,
        blocks_free: buf.f_bfree,
        blocks_available: buf.f_bavail,
        files: buf.f_files,
        files_free: buf.f_ffree,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_filesystem_has_blocks() {
        let stats = statvfs(Path::new("/")).expect("statvfs of /");
        assert!(stats.fragment_size > 0, "{stats:?}");
        assert!(stats.blocks > 0, "{stats:?}");
        assert!(stats.blocks_free <= stats.blocks, "{stats:?}");
        assert!(stats.blocks_available <= stats.blocks_free, "{stats:?}");
        assert!(stats.files_free <= stats.files, "{stats:?}");
    }

    #[test]
    fn a_directory_reports_the_filesystem_holding_it() {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let of_dir = statvfs(dir.path()).expect("statvfs of a temp dir");
        let parent = dir.path().parent().expect("a temp dir has a parent");
        let of_parent = statvfs(parent).expect("statvfs of its parent");
        assert_eq!(of_dir.blocks, of_parent.blocks);
        assert_eq!(of_dir.fragment_size, of_parent.fragment_size);
    }

    #[test]
    fn a_missing_path_is_an_error_naming_the_cause() {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let error = statvfs(&dir.path().join("missing")).expect_err("nothing there");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
        let error = statvfs(Path::new("a\0b")).expect_err("a NUL byte");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }
}
