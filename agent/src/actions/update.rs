//! The built-in `update`: replace this agent's binary with the one the primary serves, then stop
//! with [`UPDATE_EXIT_CODE`] for systemd to start the new one.
//!
//! [`UpdateStart::install`] streams `{primary_url}{url}` into a temporary file next to the
//! executable (`.NAME.update`), hashing as it goes; a SHA-256 other than the request's, a
//! transfer that fails or a binary over [`MAX_BINARY`] removes the temporary file and answers
//! `failed`, the running binary untouched. A match is made durable (`fsync`), given mode 0755,
//! renamed over the executable (atomic: the path names the old or the new binary, never half
//! of one) and the directory is synced, so the rename survives a power cut. The answer is then
//! `accepted`; the caller reports it and exits.
//!
//! With `[actions] update_public_key` set, the binary must also carry a signature: the agent
//! first downloads `{url}.sig` (the raw 64-byte Ed25519 signature of the binary, at most
//! [`MAX_SIGNATURE`] bytes read) and, after the SHA-256 matched, verifies the downloaded file
//! with the key before the rename. A signature the primary does not serve, or one that does not
//! verify, answers `failed` the same way, the running binary untouched. The SHA-256 comes from
//! the primary; the key does not, so a primary that is not trusted cannot install a binary the
//! key's owner did not sign.

use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pivitals_common::actions::{ActionResult, ActionState, UpdateRequest};
use pivitals_common::hex::to_hex;
use reqwest::Url;
use sha2::{Digest, Sha256};

use crate::client::PrimaryClient;

pub use pivitals_common::actions::UPDATE_EXIT_CODE;

/// The longest a download of the new binary may take.
pub const DOWNLOAD_TIMEOUT: Duration = Duration::from_secs(300);
/// The largest binary accepted (an agent is a few MiB).
pub const MAX_BINARY: u64 = 256 * 1024 * 1024;
/// The most bytes read of a signature (an Ed25519 signature is 64).
pub const MAX_SIGNATURE: usize = 1024;

/// An allowed `update` whose binary differs from the running one, not yet downloaded.
#[derive(Debug)]
pub struct UpdateStart {
    pub(super) id: String,
    pub(super) request: UpdateRequest,
    pub(super) executable: PathBuf,
    /// `[actions] update_public_key`: the binary must be signed with it.
    pub(super) public_key: Option<[u8; 32]>,
    pub(super) started: Instant,
}

impl UpdateStart {
    /// Downloads, checks and installs the binary: `accepted` once it replaced the executable
    /// (the caller then reports it and exits with [`UPDATE_EXIT_CODE`]), `failed` otherwise
    /// with the executable untouched.
    pub async fn install(self, client: &PrimaryClient) -> ActionResult {
        let (state, message) = match self.replace(client).await {
            Ok(()) => (ActionState::Accepted, None),
            Err(message) => (ActionState::Failed, Some(message)),
        };
        ActionResult {
            id: self.id.clone(),
            state,
            exit_code: None,
            output: String::new(),
            truncated: false,
            duration_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            message,
        }
    }

    async fn replace(&self, client: &PrimaryClient) -> Result<(), String> {
        let url = binary_url(client.base(), &self.request.url)?;
        let dir = self.executable.parent().ok_or_else(|| {
            format!(
                "the executable {} has no directory",
                self.executable.display()
            )
        })?;
        let name = self
            .executable
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "pivitals-agent".into());
        let signature = match &self.public_key {
            Some(_) => {
                let sig_url = binary_url(client.base(), &format!("{}.sig", self.request.url))?;
                Some(download_signature(client, &sig_url).await?)
            }
            None => None,
        };
        let temp = dir.join(format!(".{name}.update"));
        let written = download_to(client, &url, &temp).await;
        let actual = match written {
            Ok(actual) => actual,
            Err(message) => {
                let _ = std::fs::remove_file(&temp);
                return Err(message);
            }
        };
        if !actual.eq_ignore_ascii_case(&self.request.sha256) {
            let _ = std::fs::remove_file(&temp);
            return Err(format!(
                "the binary downloaded from {url} has SHA-256 {actual}, not {}: refused, \
                 the running binary is untouched",
                self.request.sha256
            ));
        }
        if let (Some(key), Some(signature)) = (&self.public_key, &signature)
            && let Err(message) = verify_file(key, &temp, signature)
        {
            let _ = std::fs::remove_file(&temp);
            return Err(format!(
                "the binary downloaded from {url} {message}: refused, the running binary is \
                 untouched"
            ));
        }
        install_over(&temp, &self.executable, dir).map_err(|e| {
            let _ = std::fs::remove_file(&temp);
            format!(
                "cannot replace {} with the new binary: {e}",
                self.executable.display()
            )
        })
    }
}

/// `path` under the primary's URL; refused when it would lead anywhere else (an absolute URL,
/// `..`, a path from the root).
fn binary_url(base: &Url, path: &str) -> Result<Url, String> {
    let url = base
        .join(path)
        .map_err(|e| format!("the binary's url {path:?} is not a path: {e}"))?;
    let same_origin = url.origin() == base.origin() && url.path().starts_with(base.path());
    if path.contains("://") || path.starts_with('/') || !same_origin {
        return Err(format!(
            "the binary's url {path:?} is not under this node's primary {base}: refused"
        ));
    }
    Ok(url)
}

/// Why a download from the primary did not start.
enum Fetch {
    Failed(reqwest::Error),
    Answered(reqwest::StatusCode),
}

/// GETs `url` from the primary within [`DOWNLOAD_TIMEOUT`]; the response when it is 2xx.
async fn get(client: &PrimaryClient, url: &Url) -> Result<reqwest::Response, Fetch> {
    let response = client
        .http()
        .get(url.clone())
        .timeout(DOWNLOAD_TIMEOUT)
        .send()
        .await
        .map_err(Fetch::Failed)?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(Fetch::Answered(response.status()))
    }
}

/// Streams `url` into `temp` (created 0700, truncated), hashing as it goes; the hex SHA-256.
async fn download_to(client: &PrimaryClient, url: &Url, temp: &Path) -> Result<String, String> {
    let mut response = get(client, url).await.map_err(|e| match e {
        Fetch::Failed(e) => format!("cannot download {url}: {e}"),
        Fetch::Answered(status) => format!("downloading {url}: the primary answered {status}"),
    })?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o700)
        .open(temp)
        .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("downloading {url}: {e}"))?
    {
        size += chunk.len() as u64;
        if size > MAX_BINARY {
            return Err(format!(
                "the binary at {url} is larger than {MAX_BINARY} bytes: refused"
            ));
        }
        hasher.update(&chunk);
        file.write_all(&chunk)
            .map_err(|e| format!("cannot write {}: {e}", temp.display()))?;
    }
    Ok(to_hex(&hasher.finalize()))
}

/// The signature at `url` (`{binary}.sig`); an error saying the update is refused without it.
async fn download_signature(client: &PrimaryClient, url: &Url) -> Result<Vec<u8>, String> {
    let refused = "refused (this node's update_public_key asks for a signature), the running \
                   binary is untouched";
    let mut response = get(client, url).await.map_err(|e| match e {
        Fetch::Failed(e) => format!("cannot download the signature {url}: {e}: {refused}"),
        Fetch::Answered(status) => {
            format!("no signature: the primary answered {status} for {url}: {refused}")
        }
    })?;
    let mut signature = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("downloading the signature {url}: {e}: {refused}"))?
    {
        signature.extend_from_slice(&chunk);
        if signature.len() > MAX_SIGNATURE {
            return Err(format!(
                "the signature at {url} is larger than {MAX_SIGNATURE} bytes: {refused}"
            ));
        }
    }
    Ok(signature)
}

/// Checks the file at `path` against its Ed25519 `signature` by `public_key`; the error reads
/// after "the binary …".
fn verify_file(public_key: &[u8; 32], path: &Path, signature: &[u8]) -> Result<(), String> {
    let binary = std::fs::read(path).map_err(|e| format!("cannot be read back: {e}"))?;
    verify(public_key, &binary, signature)
}

/// Checks `binary` against its Ed25519 `signature` by `public_key`.
fn verify(public_key: &[u8; 32], binary: &[u8], signature: &[u8]) -> Result<(), String> {
    if signature.len() != 64 {
        return Err(format!(
            "has a signature of {} bytes, not the 64 of an Ed25519 signature",
            signature.len()
        ));
    }
    ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public_key)
        .verify(binary, signature)
        .map_err(|_| "is not signed by this node's update_public_key".to_owned())
}

/// Makes `temp` durable with mode 0755, renames it over `executable` and syncs `dir`.
fn install_over(temp: &Path, executable: &Path, dir: &Path) -> io::Result<()> {
    let file = std::fs::File::open(temp)?;
    file.sync_all()?;
    // Explicitly: the service's UMask=0077 would leave the new file 0700.
    std::fs::set_permissions(temp, std::fs::Permissions::from_mode(0o755))?;
    std::fs::rename(temp, executable)?;
    std::fs::File::open(dir)?.sync_all()
}

/// The SHA-256 of the file at `path`, in lower-case hex.
pub fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher)?;
    Ok(to_hex(&hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_comes_only_from_the_nodes_primary() {
        let base = Url::parse("https://primary.example:7070/pv/").unwrap();
        assert_eq!(
            binary_url(&base, "agent/aarch64").unwrap().as_str(),
            "https://primary.example:7070/pv/agent/aarch64"
        );
        for bad in [
            "https://elsewhere.example/agent/aarch64",
            "//elsewhere.example/agent",
            "/agent/aarch64",
            "../agent/aarch64",
        ] {
            let error = binary_url(&base, bad).unwrap_err();
            assert!(error.contains("refused"), "{bad}: {error}");
        }
    }

    #[test]
    fn a_signature_verifies_only_the_binary_it_was_made_for() {
        use ring::signature::{Ed25519KeyPair, KeyPair};
        let rng = ring::rand::SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
        let key: [u8; 32] = pair.public_key().as_ref().try_into().unwrap();
        let signature = pair.sign(b"the new binary");
        assert_eq!(verify(&key, b"the new binary", signature.as_ref()), Ok(()));
        let other = verify(&key, b"another binary", signature.as_ref()).unwrap_err();
        assert!(other.contains("not signed"), "{other}");
        let short = verify(&key, b"the new binary", &signature.as_ref()[..63]).unwrap_err();
        assert!(short.contains("63 bytes"), "{short}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("binary");
        std::fs::write(&file, b"the new binary").unwrap();
        assert_eq!(verify_file(&key, &file, signature.as_ref()), Ok(()));
    }

    #[test]
    fn installing_replaces_the_executable_with_mode_0755() {
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("pivitals-agent");
        std::fs::write(&exe, b"old").unwrap();
        let temp = dir.path().join(".pivitals-agent.update");
        std::fs::write(&temp, b"new").unwrap();
        install_over(&temp, &exe, dir.path()).unwrap();
        assert_eq!(std::fs::read(&exe).unwrap(), b"new");
        assert!(!temp.exists());
        let mode = std::fs::metadata(&exe).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o755);
        assert_eq!(
            sha256_of(&exe).unwrap(),
            "11507a0e2f5e69d5dfa40a62a1bd7b6ee57e6bcd85c67c9b8431b36fff21c437"
        );
    }
}
