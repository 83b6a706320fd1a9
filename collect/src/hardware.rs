//! The board's hardware identity ([`HardwareIdentity`]), sent with a registration so that a
//! re-flashed board can take its node name back on a primary that allows it.
//!
//! Read once, when the agent starts, under the collector's root (so fixture trees stand in for
//! a host):
//!
//! - serial, the first of: a Raspberry Pi's SoC serial `ROOT/proc/device-tree/serial-number`;
//!   the `Serial` line of `ROOT/proc/cpuinfo` (older Pi kernels and 32-bit userlands); the
//!   DMI product UUID `ROOT/sys/class/dmi/id/product_uuid` of a PC (readable by root only,
//!   so an agent running as its own user usually has none). Lower-cased; values that
//!   firmware writes when it has no serial (all zeros, all `f`) count as none.
//! - machine id: `ROOT/etc/machine-id`, sent only as a hash: hex SHA-256 of
//!   [`MACHINE_ID_CONTEXT`] followed by the ID. machine-id(5) asks applications not to expose
//!   the ID itself; the hash is stable for the installation and means nothing elsewhere.
//!
//! A file that does not exist, or cannot be read for want of permission, is expected and
//! leaves its part out silently; any other failure is warned about once.

use std::io;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use pivitals_common::HardwareIdentity;
use pivitals_common::hex::to_hex;
use sha2::{Digest, Sha256};

use crate::files::{ReadError, read_trimmed};
use crate::host::ok_or_warn;

/// Put in front of the machine ID before hashing, so the hash is pivitals' own.
pub const MACHINE_ID_CONTEXT: &str = "pivitals hardware identity v1\n";

/// Reads the identity of the host whose `/` is `root`; None when nothing identifies it.
pub fn read(root: &Path) -> Option<HardwareIdentity> {
    static SERIAL: AtomicBool = AtomicBool::new(false);
    static MACHINE_ID: AtomicBool = AtomicBool::new(false);
    let identity = HardwareIdentity {
        serial: ok_or_warn(&SERIAL, "hardware serial", read_serial(root)).flatten(),
        machine_id: ok_or_warn(&MACHINE_ID, "machine id", read_machine_id(root)).flatten(),
    };
    (!identity.is_empty()).then_some(identity)
}

/// The board serial: device tree, else `/proc/cpuinfo`, else DMI.
fn read_serial(root: &Path) -> Result<Option<String>, ReadError> {
    if let Some(serial) =
        optional(&root.join("proc/device-tree/serial-number"))?.and_then(|s| meaningful_serial(&s))
    {
        return Ok(Some(serial));
    }
    if let Some(serial) = optional(&root.join("proc/cpuinfo"))?
        .as_deref()
        .and_then(cpuinfo_serial)
    {
        return Ok(Some(serial));
    }
    Ok(optional(&root.join("sys/class/dmi/id/product_uuid"))?.and_then(|s| meaningful_serial(&s)))
}

/// The `Serial : 10000000a1b2c3d4` line of `/proc/cpuinfo`, as a Pi's kernel writes it.
fn cpuinfo_serial(cpuinfo: &str) -> Option<String> {
    cpuinfo.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key.trim() == "Serial")
            .then(|| meaningful_serial(value))
            .flatten()
    })
}

/// `value` trimmed and lower-cased, unless it is empty or only zeros or `f`s (with `-`
/// between), which firmware writes when the board has no serial, or not something the
/// primary takes (printable ASCII, at most [`HardwareIdentity::MAX_LEN`] bytes).
fn meaningful_serial(value: &str) -> Option<String> {
    let value = value
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_ascii_lowercase();
    let digits = || value.chars().filter(|c| *c != '-');
    let placeholder = digits().all(|c| c == '0') || digits().all(|c| c == 'f');
    // What the primary would refuse (422, which stops the agent) is better left out.
    let acceptable =
        value.len() <= HardwareIdentity::MAX_LEN && value.bytes().all(|b| b.is_ascii_graphic());
    (!value.is_empty() && !placeholder && acceptable).then_some(value)
}

/// The hash of `ROOT/etc/machine-id`; None without one, or while it is `uninitialized`
/// (systemd's first boot).
fn read_machine_id(root: &Path) -> Result<Option<String>, ReadError> {
    let Some(id) = optional(&root.join("etc/machine-id"))? else {
        return Ok(None);
    };
    if id == "uninitialized" {
        return Ok(None);
    }
    Ok(Some(hash_machine_id(&id)))
}

/// Hex SHA-256 of [`MACHINE_ID_CONTEXT`] and the lower-cased ID.
pub fn hash_machine_id(id: &str) -> String {
    let digest = Sha256::new()
        .chain_update(MACHINE_ID_CONTEXT)
        .chain_update(id.trim().to_ascii_lowercase())
        .finalize();
    to_hex(&digest)
}

/// A file's trimmed content; None when it is missing, unreadable for want of permission, or
/// empty.
fn optional(path: &Path) -> Result<Option<String>, ReadError> {
    match read_trimmed(path) {
        Ok(content) => Ok(Some(content).filter(|c| !c.is_empty())),
        Err(ReadError::Io { source, .. })
            if matches!(
                source.kind(),
                io::ErrorKind::NotFound | io::ErrorKind::PermissionDenied
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    const MACHINE_ID: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn a_pi_gives_its_device_tree_serial_and_a_hash_of_its_machine_id() {
        let tree = Tree::empty();
        tree.write("proc/device-tree/serial-number", "10000000A1B2C3D4\0");
        tree.write("proc/cpuinfo", "Serial\t\t: 00000000deadbeef\n");
        tree.write("etc/machine-id", format!("{MACHINE_ID}\n"));
        let identity = read(tree.root()).unwrap();
        assert_eq!(identity.serial.as_deref(), Some("10000000a1b2c3d4"));
        let hash = identity.machine_id.unwrap();
        assert_eq!(hash.len(), 64);
        assert!(!hash.contains(MACHINE_ID));
        assert_eq!(hash, hash_machine_id(MACHINE_ID.to_uppercase().as_str()));
        assert_ne!(hash, hash_machine_id("fedcba9876543210fedcba9876543210"));
    }

    #[test]
    fn cpuinfo_then_dmi_stand_in_for_a_missing_device_tree() {
        let tree = Tree::empty();
        tree.write(
            "proc/cpuinfo",
            "processor\t: 0\nHardware\t: BCM2835\nRevision\t: a02082\nSerial\t\t: 00000000a1b2c3d4\nModel\t\t: Raspberry Pi 3 Model B Rev 1.2\n",
        );
        tree.write(
            "sys/class/dmi/id/product_uuid",
            "4C4C4544-0031-3910-8052-B4C04F4E3732\n",
        );
        assert_eq!(
            read_serial(tree.root()).unwrap().as_deref(),
            Some("00000000a1b2c3d4")
        );
        tree.write(
            "proc/cpuinfo",
            "processor\t: 0\nSerial\t\t: 0000000000000000\n",
        );
        assert_eq!(
            read_serial(tree.root()).unwrap().as_deref(),
            Some("4c4c4544-0031-3910-8052-b4c04f4e3732")
        );
    }

    #[test]
    fn placeholders_and_an_uninitialized_machine_id_are_no_identity() {
        let tree = Tree::empty();
        assert_eq!(read(tree.root()), None);
        tree.write(
            "sys/class/dmi/id/product_uuid",
            "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF\n",
        );
        tree.write("proc/device-tree/serial-number", "\0");
        tree.write("etc/machine-id", "uninitialized\n");
        assert_eq!(read(tree.root()), None);
        tree.write(
            "sys/class/dmi/id/product_uuid",
            "00000000-0000-0000-0000-000000000000\n",
        );
        assert_eq!(read(tree.root()), None);
    }
}
