//! The enrollment token agents register with: from the configuration, or generated once and
//! kept in `DATA_DIR/enroll-token` (mode 0600). A stored token can be rotated (by the admin
//! API while the primary runs, or by `pivitals-primary token rotate` while it is stopped);
//! a configured one cannot, since the configuration would bring it back at the next start.
//! Rotation only changes who may register: registered nodes keep their own tokens.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::RwLock;

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

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

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
