//! The enrollment token agents register with: from the configuration, or generated once and
//! kept in `DATA_DIR/enroll-token` (mode 0600).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::auth;

pub const FILE_NAME: &str = "enroll-token";

/// Where the token came from, so start-up can say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Configured,
    Stored,
    Generated,
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
    let token = auth::generate_token().map_err(io::Error::other)?;
    let tmp = data_dir.join(format!("{FILE_NAME}.tmp"));
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(token.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok((token, Origin::Generated))
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
}
