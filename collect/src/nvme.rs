//! An NVMe controller's SMART / Health Information log (log page 02h), read through the Linux
//! admin passthrough ioctl, as a safe function; `storage_health.rs` reports three of its
//! values.
//!
//! The command is what `nvme smart-log` and `smartctl` send: Get Log Page (admin opcode 02h)
//! for log identifier 02h, 512 bytes, namespace `0xFFFFFFFF` (the controller as a whole),
//! issued with `NVME_IOCTL_ADMIN_CMD` = `_IOWR('N', 0x41, struct nvme_passthru_cmd)`
//! (`linux/nvme_ioctl.h`) on the controller's character device `/dev/nvmeN`. The kernel runs
//! admin passthrough only for a caller with `CAP_SYS_ADMIN` (`nvme_cmd_allowed` in
//! `drivers/nvme/host/ioctl.c`; unprivileged passthrough is limited to some Identify
//! commands), and `/dev/nvmeN` is `root:root 0600` anyway: without root, opening or the ioctl
//! fails with `EACCES` or `EPERM`, and under systemd's `PrivateDevices=yes` the device is
//! missing (`ENOENT`).
//!
//! The values, from the NVMe Base Specification's SMART / Health Information log:
//!
//! | Bytes | Field | Reported as |
//! |---|---|---|
//! | 3 | Available Spare, % of the spare capacity left | `nvme_available_spare` |
//! | 5 | Percentage Used, % of the rated life used (may pass 100; 255 means 255 or more) | `nvme_percentage_used` |
//! | 160..176 | Media and Data Integrity Errors, a 128-bit little-endian count | `nvme_media_errors` (saturated to `u64`) |
//!
//! [`get_log_page`] is this crate's only NVMe `unsafe`.

use std::fs::{File, OpenOptions};
use std::io;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The SMART / Health log values this crate reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SmartHealth {
    /// Byte 3: spare capacity left, % (normalised to 100).
    pub(crate) available_spare: u64,
    /// Byte 5: share of the rated life used, % (may pass 100).
    pub(crate) percentage_used: u64,
    /// Bytes 160..176: media and data integrity errors over the controller's life.
    pub(crate) media_errors: u64,
}

/// Why a controller's SMART log was not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NvmeError {
    #[error("cannot open {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("the Get Log Page ioctl on {} failed: {source}", path.display())]
    Ioctl { path: PathBuf, source: io::Error },
    #[error("{} answered Get Log Page (SMART) with NVMe status {status:#x}", path.display())]
    Status { path: PathBuf, status: i32 },
}

impl NvmeError {
    /// The reader lacks the privilege or the device (no root, a dynamic user, `PrivateDevices`):
    /// expected where the agent is deployed, so logged at info level rather than warned.
    pub(crate) fn is_unprivileged(&self) -> bool {
        let (NvmeError::Open { source, .. } | NvmeError::Ioctl { source, .. }) = self else {
            return false;
        };
        matches!(
            source.raw_os_error(),
            Some(libc::ENOENT | libc::EACCES | libc::EPERM)
        )
    }
}

/// Reads the SMART / Health log of the controller whose character device is `device`
/// (`/dev/nvme0`).
pub(crate) fn read_smart_health(device: &Path) -> Result<SmartHealth, NvmeError> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(device)
        .map_err(|source| NvmeError::Open {
            path: device.to_owned(),
            source,
        })?;
    let mut log = LogBuffer([0; SMART_LOG_LEN]);
    match get_log_page(&file, LID_SMART_HEALTH, NSID_ALL, &mut log) {
        Ok(0) => Ok(parse_smart_log(&log.0)),
        Ok(status) => Err(NvmeError::Status {
            path: device.to_owned(),
            status,
        }),
        Err(source) => Err(NvmeError::Ioctl {
            path: device.to_owned(),
            source,
        }),
    }
}

/// The values of a SMART / Health Information log page at their offsets (see the module doc).
pub(crate) fn parse_smart_log(log: &[u8; SMART_LOG_LEN]) -> SmartHealth {
    let mut media_errors = [0; 16];
    media_errors.copy_from_slice(&log[160..176]);
    SmartHealth {
        available_spare: u64::from(log[3]),
        percentage_used: u64::from(log[5]),
        media_errors: u64::try_from(u128::from_le_bytes(media_errors)).unwrap_or(u64::MAX),
    }
}

/// The SMART / Health Information log is 512 bytes.
pub(crate) const SMART_LOG_LEN: usize = 512;
/// Log Identifier 02h: SMART / Health Information.
const LID_SMART_HEALTH: u8 = 0x02;
/// The namespace "all": the controller's log rather than one namespace's.
const NSID_ALL: u32 = 0xFFFF_FFFF;
/// Admin command opcode 02h: Get Log Page.
const OPCODE_GET_LOG_PAGE: u8 = 0x02;

/// `struct nvme_passthru_cmd` of `linux/nvme_ioctl.h` (`nvme_admin_cmd` is a `#define` of it).
#[repr(C)]
#[derive(Debug, Default)]
struct PassthruCmd {
    opcode: u8,
    flags: u8,
    rsvd1: u16,
    nsid: u32,
    cdw2: u32,
    cdw3: u32,
    metadata: u64,
    addr: u64,
    metadata_len: u32,
    data_len: u32,
    cdw10: u32,
    cdw11: u32,
    cdw12: u32,
    cdw13: u32,
    cdw14: u32,
    cdw15: u32,
    timeout_ms: u32,
    result: u32,
}

// The size is part of the ioctl number, and the kernel copies exactly this many bytes: the
// layout must be the C one on every target (every field sits at its natural alignment, so
// 32-bit ARM lays it out as 64-bit targets do).
const _: () = assert!(size_of::<PassthruCmd>() == 72);
const _: () = assert!(offset_of!(PassthruCmd, nsid) == 4);
const _: () = assert!(offset_of!(PassthruCmd, metadata) == 16);
const _: () = assert!(offset_of!(PassthruCmd, addr) == 24);
const _: () = assert!(offset_of!(PassthruCmd, data_len) == 36);
const _: () = assert!(offset_of!(PassthruCmd, cdw10) == 40);
const _: () = assert!(offset_of!(PassthruCmd, timeout_ms) == 64);
const _: () = assert!(offset_of!(PassthruCmd, result) == 68);

/// `_IOC(dir, type, nr, size)` of `asm-generic/ioctl.h` (x86, ARM, arm64, RISC-V): number in
/// bits 0–7, type 8–15, size 16–29, direction 30–31 (write 1, read 2).
const fn ioc(dir: u32, kind: u8, nr: u8, size: usize) -> u32 {
    assert!(size < 1 << 14, "the size field has 14 bits");
    (dir << 30) | ((size as u32) << 16) | ((kind as u32) << 8) | nr as u32
}

/// `_IOWR(type, nr, T)`: the caller writes the argument and the kernel writes it back.
const fn iowr(kind: u8, nr: u8, size: usize) -> u32 {
    const IOC_WRITE: u32 = 1;
    const IOC_READ: u32 = 2;
    ioc(IOC_READ | IOC_WRITE, kind, nr, size)
}

/// `NVME_IOCTL_ADMIN_CMD`: `_IOWR('N', 0x41, struct nvme_admin_cmd)` = `0xC0484E41`. (MIPS,
/// PowerPC and SPARC encode the direction in three bits from bit 29, read 2 and write 4:
/// `6 << 29` is the same `0xC0000000`, so the number is the same there too.)
const NVME_IOCTL_ADMIN_CMD: u32 = iowr(b'N', 0x41, size_of::<PassthruCmd>());

/// Get Log Page's command dword 10: the number of dwords to transfer minus one (NUMDL, the
/// low 16 bits of the 0's based count) in bits 16–31, the log identifier in bits 0–7.
const fn get_log_page_cdw10(lid: u8, len: usize) -> u32 {
    assert!(len >= 4 && len.is_multiple_of(4) && len / 4 <= 1 << 16);
    (((len / 4 - 1) as u32) << 16) | lid as u32
}

/// The log page's buffer: aligned so that it lies in one memory page (the kernel maps it for
/// the controller's DMA).
#[repr(C, align(512))]
struct LogBuffer([u8; SMART_LOG_LEN]);

/// Issues Get Log Page for `lid` of namespace `nsid` into `log` on the controller `file`:
/// Ok(0) on success, Ok(status) when the controller refused the command (its NVMe status),
/// Err for a refused ioctl (its errno).
fn get_log_page(file: &File, lid: u8, nsid: u32, log: &mut LogBuffer) -> io::Result<i32> {
    let mut cmd = PassthruCmd {
        opcode: OPCODE_GET_LOG_PAGE,
        nsid,
        addr: log.0.as_mut_ptr().expose_provenance() as u64,
        data_len: SMART_LOG_LEN as u32,
        cdw10: get_log_page_cdw10(lid, SMART_LOG_LEN),
        ..PassthruCmd::default()
    };
    // SAFETY: `file` is an open descriptor for the call's duration. The request number is
    // `_IOWR('N', 0x41, struct nvme_passthru_cmd)` and `cmd` is that struct (its size and
    // offsets asserted above), borrowed mutably so the kernel may write `result` back. Its
    // only pointer, `addr`, is `log`'s buffer, borrowed mutably for the call, and `data_len`
    // is that buffer's length, so the kernel writes at most into it; `metadata` is null
    // with length 0. The kernel keeps neither pointer after the call returns.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), NVME_IOCTL_ADMIN_CMD as _, &mut cmd) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_number_and_command_match_the_kernel_headers() {
        assert_eq!(size_of::<PassthruCmd>(), 72);
        assert_eq!(NVME_IOCTL_ADMIN_CMD, 0xC048_4E41);
        // NUMDL 127 (128 dwords = 512 bytes) above LID 02h.
        assert_eq!(
            get_log_page_cdw10(LID_SMART_HEALTH, SMART_LOG_LEN),
            0x007F_0002
        );
        assert_eq!(std::mem::align_of::<LogBuffer>(), 512);
    }

    #[test]
    fn a_smart_log_gives_spare_wear_and_media_errors() {
        let mut log = [0u8; SMART_LOG_LEN];
        log[0] = 0x00; // critical warning
        log[1..3].copy_from_slice(&318u16.to_le_bytes()); // composite temperature, kelvin
        log[3] = 97; // available spare
        log[4] = 10; // available spare threshold
        log[5] = 4; // percentage used
        log[32..48].copy_from_slice(&123_456u128.to_le_bytes()); // data units read
        log[160..176].copy_from_slice(&258u128.to_le_bytes()); // media errors
        log[176..192].copy_from_slice(&7u128.to_le_bytes()); // error log entries
        assert_eq!(
            parse_smart_log(&log),
            SmartHealth {
                available_spare: 97,
                percentage_used: 4,
                media_errors: 258,
            }
        );

        // Past 100 % of its rated life, and more errors than 64 bits hold.
        log[5] = 255;
        log[160..176].copy_from_slice(&(u128::from(u64::MAX) + 1).to_le_bytes());
        let worn = parse_smart_log(&log);
        assert_eq!(worn.percentage_used, 255);
        assert_eq!(worn.media_errors, u64::MAX);
    }

    #[test]
    fn a_missing_device_is_an_unprivileged_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let error = read_smart_health(&dir.path().join("nvme0")).expect_err("no device there");
        assert!(matches!(error, NvmeError::Open { .. }), "{error}");
        assert!(error.is_unprivileged(), "{error}");

        // This machine's own controller device, when it has none (or cannot open it).
        if let Err(error) = read_smart_health(Path::new("/dev/nvme0")) {
            println!("{error}");
        }
    }

    #[test]
    fn a_file_that_is_no_nvme_device_refuses_the_ioctl_with_a_warning() {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        let path = dir.path().join("nvme0");
        std::fs::write(&path, b"").expect("a temp file can be written");
        let error = read_smart_health(&path).expect_err("a regular file has no such ioctl");
        assert!(matches!(error, NvmeError::Ioctl { .. }), "{error}");
        assert!(!error.is_unprivileged(), "{error}");
    }

    #[test]
    fn only_permission_and_missing_device_errors_are_expected() {
        let path = PathBuf::from("/dev/nvme0");
        for (errno, expected) in [
            (libc::EACCES, true),
            (libc::EPERM, true),
            (libc::ENOENT, true),
            (libc::ENOTTY, false),
            (libc::EIO, false),
        ] {
            let error = NvmeError::Ioctl {
                path: path.clone(),
                source: io::Error::from_raw_os_error(errno),
            };
            assert_eq!(error.is_unprivileged(), expected, "{error}");
        }
        let status = NvmeError::Status { path, status: 0x2 };
        assert!(!status.is_unprivileged());
    }
}
