//! The enrollment token agents register with: from the configuration, or generated once and
//! kept in `DATA_DIR/enroll-token` (mode 0600). A stored token can be rotated (by the admin
//! API while the primary runs, or by `pivitals-primary token rotate` while it is stopped);
//! a configured one cannot, since the configuration would bring it back at the next start.
//! Rotation only changes who may register: registered nodes keep their own tokens.
//!
//! # Re-enrollment
//!
//! A registered name belongs to its node: another registration under it answers 409. A board
//! whose SD card was re-flashed has lost its node token, so with the default
//! [`ReenrollPolicy::Off`] it stays locked out until an admin deletes the node. With
//! [`ReenrollPolicy::SameHardware`] (`PIVITALS_REENROLL=same-hardware`) a registration with
//! the enrollment token and a known name takes the name back when [`same_hardware`] finds
//! the board the node registered from:
//!
//! 1. No identity on record (a node registered by an agent older than the field), or none in
//!    the request: unproven, refused. Nothing shows it is the same board.
//! 2. A serial on both sides: the serials decide, equal or not. A re-flash keeps the board's
//!    serial and replaces `/etc/machine-id`, so a re-flashed Pi matches by serial only, and
//!    a cloned card in another board (same machine-id, other serial) does not match.
//! 3. Otherwise the machine-id hashes must both be there and equal: the same installation
//!    (a PC whose DMI UUID the agent cannot read). A mismatch is reported as the board
//!    serial when one side has a serial, else as the machine-id.
//!
//! The serial is not a secret (a Pi's is in the node's info): with re-enrollment on, whoever
//! holds the enrollment token and knows a board's serial can take its name. Off by default.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::RwLock;

use pivitals_common::HardwareIdentity;
use serde::Deserialize;
use thiserror::Error;

use crate::nodes::token;

pub const FILE_NAME: &str = "enroll-token";

/// Where the token came from, so start-up can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Configured,
    Stored,
    Generated,
}

/// The live enrollment token; rotation replaces it for the next registration.
#[derive(Debug)]
pub struct EnrollToken {
    current: RwLock<String>,
    origin: Origin,
}

#[derive(Debug, Error)]
pub enum RotateError {
    #[error(
        "the enrollment token is set by PIVITALS_ENROLL_TOKEN, which wins over a rotated one; change it there and restart the primary"
    )]
    Configured,
    #[error("storing the new enrollment token: {0}")]
    Io(#[from] io::Error),
}

impl EnrollToken {
    pub fn new(token: String, origin: Origin) -> Self {
        Self {
            current: RwLock::new(token),
            origin,
        }
    }

    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// Whether `presented` is the current token (compared in constant time).
    pub fn matches(&self, presented: &str) -> bool {
        let current = self.current.read().unwrap_or_else(|e| e.into_inner());
        token::tokens_match(presented, &current)
    }

    /// Generates a new token, stores it in `data_dir` and uses it from now on; the old one
    /// stops working. Blocks on the file write.
    pub fn rotate(&self, data_dir: &Path) -> Result<String, RotateError> {
        if self.origin == Origin::Configured {
            return Err(RotateError::Configured);
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let token = rotate_file(data_dir)?;
        *current = token.clone();
        Ok(token)
    }
}

/// A configured token (for tests that build the state by hand).
impl From<&str> for EnrollToken {
    fn from(token: &str) -> Self {
        Self::new(token.to_owned(), Origin::Configured)
    }
}

/// Replaces the stored token with a new one and returns it.
pub fn rotate_file(data_dir: &Path) -> io::Result<String> {
    let token = token::generate_token().map_err(io::Error::other)?;
    store(data_dir, &token)?;
    Ok(token)
}

pub fn load_or_create(configured: Option<&str>, data_dir: &Path) -> io::Result<(String, Origin)> {
    if let Some(token) = configured {
        return Ok((token.trim().to_owned(), Origin::Configured));
    }
    let path = data_dir.join(FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => return Ok((text.trim().to_owned(), Origin::Stored)),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let token = rotate_file(data_dir)?;
    Ok((token, Origin::Generated))
}

/// Writes `token` to `DATA_DIR/enroll-token` (0600) through a temporary file and a rename,
/// so a crash leaves the old token or the new one, never half of one.
fn store(data_dir: &Path, token: &str) -> io::Result<()> {
    let path = data_dir.join(FILE_NAME);
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    if let Ok(dir) = fs::File::open(data_dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Whether a registration may take back a name that is registered already
/// (`PIVITALS_REENROLL`, `reenroll` in the settings file).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum ReenrollPolicy {
    /// A known name answers 409 until an admin deletes the node.
    #[default]
    Off,
    /// The board that registered the name takes it back ([`same_hardware`]).
    SameHardware,
}

impl TryFrom<String> for ReenrollPolicy {
    type Error = String;

    /// `off` or `same-hardware`; anything else is refused with the two values named.
    fn try_from(text: String) -> Result<Self, String> {
        match text.trim() {
            "off" => Ok(ReenrollPolicy::Off),
            "same-hardware" => Ok(ReenrollPolicy::SameHardware),
            other => Err(format!("expected off or same-hardware, got {other:?}")),
        }
    }
}

/// How a registration's hardware compares with the node's on record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwareMatch {
    /// The same board, proven by this part: the serials match, or without serials on both
    /// sides the machine-id hashes do.
    Same(HardwarePart),
    /// Another board: this part differs (or is missing from the request).
    Differs(HardwarePart),
    /// Nothing to compare: the node has no identity on record, or the request brings none.
    Unproven(Unproven),
}

/// The part of a [`HardwareIdentity`] that decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HardwarePart {
    Serial,
    MachineId,
}

impl HardwarePart {
    pub fn describe(self) -> &'static str {
        match self {
            HardwarePart::Serial => "board serial",
            HardwarePart::MachineId => "machine-id",
        }
    }
}

/// Why two identities cannot be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unproven {
    /// The node was registered without an identity (by an agent older than the field).
    NoneOnRecord,
    /// The registration carries no identity.
    NonePresented,
}

impl Unproven {
    pub fn describe(self) -> &'static str {
        match self {
            Unproven::NoneOnRecord => {
                "the node was registered without a hardware identity (by an older agent)"
            }
            Unproven::NonePresented => "the registration carries no hardware identity",
        }
    }
}

/// Compares the identity `presented` by a registration with the node's `on_record`; the
/// rules are listed in this module's documentation.
pub fn same_hardware(
    on_record: Option<&HardwareIdentity>,
    presented: Option<&HardwareIdentity>,
) -> HardwareMatch {
    let Some(on_record) = on_record.filter(|h| !h.is_empty()) else {
        return HardwareMatch::Unproven(Unproven::NoneOnRecord);
    };
    let Some(presented) = presented.filter(|h| !h.is_empty()) else {
        return HardwareMatch::Unproven(Unproven::NonePresented);
    };
    if let (Some(kept), Some(given)) = (&on_record.serial, &presented.serial) {
        return if kept == given {
            HardwareMatch::Same(HardwarePart::Serial)
        } else {
            HardwareMatch::Differs(HardwarePart::Serial)
        };
    }
    match (&on_record.machine_id, &presented.machine_id) {
        (Some(kept), Some(given)) if kept == given => HardwareMatch::Same(HardwarePart::MachineId),
        // One side has a serial the other lacks, and no machine-id vouches for the board.
        _ if on_record.serial.is_some() || presented.serial.is_some() => {
            HardwareMatch::Differs(HardwarePart::Serial)
        }
        _ => HardwareMatch::Differs(HardwarePart::MachineId),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn identity(serial: Option<&str>, machine_id: Option<&str>) -> HardwareIdentity {
        HardwareIdentity {
            serial: serial.map(str::to_owned),
            machine_id: machine_id.map(str::to_owned),
        }
    }

    #[test]
    fn a_reflashed_board_matches_by_serial_although_its_machine_id_is_new() {
        let before = identity(Some("10000000a1b2c3d4"), Some("aa"));
        let reflashed = identity(Some("10000000a1b2c3d4"), Some("bb"));
        assert_eq!(
            same_hardware(Some(&before), Some(&reflashed)),
            HardwareMatch::Same(HardwarePart::Serial)
        );
    }

    #[test]
    fn serials_decide_when_both_sides_have_one_even_against_a_matching_machine_id() {
        let before = identity(Some("10000000a1b2c3d4"), Some("aa"));
        let cloned_card = identity(Some("10000000ffffeeee"), Some("aa"));
        assert_eq!(
            same_hardware(Some(&before), Some(&cloned_card)),
            HardwareMatch::Differs(HardwarePart::Serial)
        );
    }

    #[test]
    fn without_serials_on_both_sides_the_machine_id_decides() {
        let pc = identity(None, Some("aa"));
        let by_machine_id = HardwareMatch::Same(HardwarePart::MachineId);
        assert_eq!(same_hardware(Some(&pc), Some(&pc)), by_machine_id);
        assert_eq!(
            same_hardware(Some(&pc), Some(&identity(None, Some("bb")))),
            HardwareMatch::Differs(HardwarePart::MachineId)
        );
        // A serial on one side only: the same installation (machine-id) still vouches...
        let now_with_serial = identity(Some("4c4c4544-0031"), Some("aa"));
        assert_eq!(
            same_hardware(Some(&pc), Some(&now_with_serial)),
            by_machine_id
        );
        // ...but a serial that vanished and a new machine-id is another board.
        let serial_on_record = identity(Some("10000000a1b2c3d4"), Some("aa"));
        assert_eq!(
            same_hardware(Some(&serial_on_record), Some(&identity(None, Some("bb")))),
            HardwareMatch::Differs(HardwarePart::Serial)
        );
        assert_eq!(
            same_hardware(
                Some(&identity(None, Some("aa"))),
                Some(&identity(Some("x"), None))
            ),
            HardwareMatch::Differs(HardwarePart::Serial)
        );
    }

    #[test]
    fn nothing_on_record_or_nothing_presented_proves_nothing() {
        let board = identity(Some("10000000a1b2c3d4"), Some("aa"));
        let empty = HardwareIdentity::default();
        for on_record in [None, Some(&empty)] {
            assert_eq!(
                same_hardware(on_record, Some(&board)),
                HardwareMatch::Unproven(Unproven::NoneOnRecord)
            );
        }
        for presented in [None, Some(&empty)] {
            assert_eq!(
                same_hardware(Some(&board), presented),
                HardwareMatch::Unproven(Unproven::NonePresented)
            );
        }
    }

    #[test]
    fn the_policy_reads_from_settings_text() {
        #[derive(Deserialize)]
        struct Settings {
            reenroll: ReenrollPolicy,
        }
        let read = |text: &str| serde_json::from_str::<Settings>(text).map(|s| s.reenroll);
        assert_eq!(read(r#"{"reenroll": "off"}"#).unwrap(), ReenrollPolicy::Off);
        assert_eq!(
            read(r#"{"reenroll": "same-hardware"}"#).unwrap(),
            ReenrollPolicy::SameHardware
        );
        let err = read(r#"{"reenroll": "serial-only"}"#).unwrap_err();
        assert!(err.to_string().contains("off or same-hardware"), "{err}");
        assert_eq!(ReenrollPolicy::default(), ReenrollPolicy::Off);
    }

    #[test]
    fn generated_once_then_reused_with_owner_only_mode() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_create(None, dir.path()).unwrap();
        assert_eq!(origin, Origin::Generated);
        let (again, origin) = load_or_create(None, dir.path()).unwrap();
        assert_eq!((again.as_str(), origin), (first.as_str(), Origin::Stored));
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let (configured, origin) = load_or_create(Some("from-config-123456"), dir.path()).unwrap();
        assert_eq!(
            (configured.as_str(), origin),
            ("from-config-123456", Origin::Configured)
        );
    }

    #[test]
    fn rotation_replaces_a_stored_token_but_not_a_configured_one() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_create(None, dir.path()).unwrap();
        let live = EnrollToken::new(first.clone(), origin);
        let second = live.rotate(dir.path()).unwrap();
        assert_ne!(first, second);
        assert!(live.matches(&second) && !live.matches(&first));
        let (stored, _) = load_or_create(None, dir.path()).unwrap();
        assert_eq!(stored, second);
        let mode = fs::metadata(dir.path().join(FILE_NAME))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let configured = EnrollToken::from("from-config-123456");
        assert!(matches!(
            configured.rotate(dir.path()),
            Err(RotateError::Configured)
        ));
        assert!(configured.matches("from-config-123456"));
    }
}
