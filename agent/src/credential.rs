//! The node credential: the name and token the primary gave at registration, kept in
//! `STATE_DIR/credential.json` so a restart does not register again.
//!
//! The file is JSON `{"node_name": "...", "node_token": "..."}`, mode 0600 in a directory the
//! agent creates with mode 0700. It is written atomically: a temporary file (created 0600) is
//! written and fsynced, renamed over the old one, and the directory is fsynced, so a crash or a
//! power cut leaves either the old credential or the new one, never half of one.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use pivitals_common::Secret;
use serde::{Deserialize, Serialize};

pub const FILE_NAME: &str = "credential.json";
const TMP_NAME: &str = "credential.json.tmp";

/// Who this node is to the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub node_name: String,
    pub node_token: Secret,
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    node_name: String,
    node_token: String,
}

/// The credential file in `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

/// Creates `dir` (mode 0700) if it does not exist yet.
pub fn prepare_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// The stored credential; `Ok(None)` when there is none. A file that is not a credential is an
/// error of kind [`io::ErrorKind::InvalidData`].
pub fn load(dir: &Path) -> io::Result<Option<Credential>> {
    let text = match fs::read_to_string(path(dir)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let on_disk: OnDisk =
        serde_json::from_str(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    Ok(Some(Credential {
        node_name: on_disk.node_name,
        node_token: Secret::new(on_disk.node_token),
    }))
}

/// Replaces the stored credential atomically.
pub fn store(dir: &Path, credential: &Credential) -> io::Result<()> {
    let body = serde_json::to_vec_pretty(&OnDisk {
        node_name: credential.node_name.clone(),
        node_token: credential.node_token.expose().to_owned(),
    })?;
    let tmp = dir.join(TMP_NAME);
    // A leftover temporary file would keep its old mode; start from a new one.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(&body)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path(dir))?;
    File::open(dir)?.sync_all()
}

/// Forgets the stored credential (the primary no longer accepts it).
pub fn remove(dir: &Path) -> io::Result<()> {
    match fs::remove_file(path(dir)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn credential(token: &str) -> Credential {
        Credential {
            node_name: "pi-01".into(),
            node_token: Secret::new(token),
        }
    }

    #[test]
    fn stored_credential_reads_back_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/nested");
        prepare_dir(&state).unwrap();
        assert_eq!(
            fs::metadata(&state).unwrap().permissions().mode() & 0o777,
            0o700
        );
        assert_eq!(load(&state).unwrap(), None);

        store(&state, &credential("first")).unwrap();
        store(&state, &credential("second")).unwrap();
        assert_eq!(load(&state).unwrap(), Some(credential("second")));
        let mode = fs::metadata(path(&state)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(!state.join(TMP_NAME).exists());

        remove(&state).unwrap();
        remove(&state).unwrap();
        assert_eq!(load(&state).unwrap(), None);
    }

    #[test]
    fn a_leftover_temporary_file_does_not_keep_its_mode() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join(TMP_NAME);
        fs::write(&tmp, "junk").unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o644)).unwrap();
        store(dir.path(), &credential("t")).unwrap();
        let mode = fs::metadata(path(dir.path())).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn a_corrupt_file_is_invalid_data() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(path(dir.path()), "{not json").unwrap();
        assert_eq!(
            load(dir.path()).unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
    }
}
