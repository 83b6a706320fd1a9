//! The agent installer the primary serves: its script and the catalogue of agent binaries.
//!
//! # What is served
//!
//! - The script (`deploy/install.sh`, embedded at build time) with the primary's own URL in
//!   place of [`URL_PLACEHOLDER`]: [`render_script`]. The URL is `PIVITALS_PUBLIC_URL` when set,
//!   else the scheme the primary serves and the `Host` the request named; either way it passed
//!   [`check_public_url`], so it can sit between single quotes in a shell script.
//! - One agent binary per [`Arch`], from the directory `PIVITALS_AGENT_BINARIES`, where it is
//!   named `pivitals-agent-<arch>` (`pivitals-agent-armv6`). Other files are ignored.
//! - Optionally, beside a binary, `pivitals-agent-<arch>.sig`: the raw 64-byte Ed25519
//!   signature of that binary (what `openssl pkeyutl -sign -rawin` writes), served to agents
//!   whose `update_public_key` asks for one. The primary never holds the private key and does
//!   not check the signature itself.
//!
//! # The catalogue
//!
//! [`AgentBinaries::scan`] runs once, at start: it lists the directory and hashes (SHA-256)
//! each binary found. The hashes are what the installer checks its download against, so a
//! binary replaced while the primary runs is refused by every installer until the primary
//! restarts (and scans again): a half-copied file is never installed. A signature is read with
//! the hash, and so is also the one of the scan until a restart. The bytes themselves are
//! read from disk for each download, so the catalogue holds only paths, sizes and hashes.
//!
//! A configured directory that does not exist, or cannot be read, stops the start with
//! [`InstallError`], as does a `.sig` file that is not 64 bytes long; a directory holding no binary at all is accepted (and logged), and every
//! architecture then answers "no binary".

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pivitals_common::hex::to_hex;
use sha2::{Digest, Sha256};
use thiserror::Error;

/// The installer script as kept in `deploy/install.sh`.
pub const SCRIPT_TEMPLATE: &str = include_str!("../../deploy/install.sh");

/// The text of [`SCRIPT_TEMPLATE`] that [`render_script`] replaces with the primary's URL.
pub const URL_PLACEHOLDER: &str = "@PIVITALS_PRIMARY_URL@";

/// A file in the binaries directory is `pivitals-agent-<arch>`.
pub const BINARY_PREFIX: &str = "pivitals-agent-";

/// The machines the installer knows, by the name it asks the primary for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Arch {
    /// 64-bit PCs (`uname -m`: `x86_64`).
    X86_64,
    /// 64-bit ARM with a 64-bit userland: Raspberry Pi 3, 4, 5 on a 64-bit OS (`aarch64`).
    Aarch64,
    /// 32-bit ARMv7 hard-float: Pi 2, and Pi 3/4/5 on a 32-bit OS (`armv7l`).
    Armv7,
    /// 32-bit ARMv6 hard-float: Pi Zero and Pi 1 (`armv6l`).
    Armv6,
}

impl Arch {
    pub const ALL: [Arch; 4] = [Arch::X86_64, Arch::Aarch64, Arch::Armv7, Arch::Armv6];

    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Aarch64 => "aarch64",
            Arch::Armv7 => "armv7",
            Arch::Armv6 => "armv6",
        }
    }

    /// The file name this architecture's binary has in the directory.
    pub fn file_name(self) -> String {
        format!("{BINARY_PREFIX}{}", self.name())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An architecture name that is none of [`Arch::ALL`].
#[derive(Debug, Error, PartialEq, Eq)]
#[error("unknown architecture {0:?}; expected one of x86_64, aarch64, armv7, armv6")]
pub struct UnknownArch(pub String);

impl FromStr for Arch {
    type Err = UnknownArch;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|arch| arch.name() == text)
            .ok_or_else(|| UnknownArch(text.to_owned()))
    }
}

/// One binary of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentBinary {
    pub path: PathBuf,
    pub size: u64,
    /// Lower-case hex, as `sha256sum` prints it.
    pub sha256: String,
    /// The raw Ed25519 signature from `pivitals-agent-<arch>.sig`, when that file exists.
    pub signature: Option<Vec<u8>>,
}

#[derive(Debug, Error)]
pub enum InstallError {
    #[error("PIVITALS_AGENT_BINARIES {dir}: {source}")]
    Directory { dir: PathBuf, source: io::Error },
    #[error("PIVITALS_AGENT_BINARIES: hashing {path}: {source}")]
    Hashing { path: PathBuf, source: io::Error },
    #[error("PIVITALS_AGENT_BINARIES: the signature {path}: {reason}")]
    Signature { path: PathBuf, reason: String },
}

/// The length of a raw Ed25519 signature, the only length a `.sig` file may have.
pub const SIGNATURE_LEN: usize = 64;

/// The signature file beside the binary `file_name` in `dir`: `None` when there is none.
fn read_signature(dir: &Path, file_name: &str) -> Result<Option<Vec<u8>>, InstallError> {
    let path = dir.join(format!("{file_name}.sig"));
    let error = |reason: String| InstallError::Signature {
        path: path.clone(),
        reason,
    };
    let size = match std::fs::metadata(&path) {
        Ok(metadata) => metadata.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(error(e.to_string())),
    };
    if size != SIGNATURE_LEN as u64 {
        return Err(error(format!(
            "{size} bytes, not the {SIGNATURE_LEN} of a raw Ed25519 signature \
             (openssl pkeyutl -sign -rawin)"
        )));
    }
    let bytes = std::fs::read(&path).map_err(|e| error(e.to_string()))?;
    if bytes.len() != SIGNATURE_LEN {
        return Err(error(format!(
            "{} bytes, not the {SIGNATURE_LEN} of a raw Ed25519 signature",
            bytes.len()
        )));
    }
    Ok(Some(bytes))
}

/// The agent binaries found at start, by architecture.
#[derive(Debug, Clone, Default)]
pub struct AgentBinaries {
    dir: PathBuf,
    binaries: BTreeMap<Arch, AgentBinary>,
}

impl AgentBinaries {
    /// Lists `dir` and hashes every `pivitals-agent-<arch>` file in it. Blocks on the reads.
    pub fn scan(dir: &Path) -> Result<Self, InstallError> {
        let directory = |source| InstallError::Directory {
            dir: dir.to_owned(),
            source,
        };
        let mut binaries = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(directory)? {
            let entry = entry.map_err(directory)?;
            let name = entry.file_name();
            let Some(arch) = name
                .to_str()
                .and_then(|n| n.strip_prefix(BINARY_PREFIX))
                .and_then(|a| a.parse::<Arch>().ok())
            else {
                continue;
            };
            let path = entry.path();
            // A symlink to the build output is fine; follow it.
            if !std::fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                continue;
            }
            let (size, sha256) = hash_file(&path).map_err(|source| InstallError::Hashing {
                path: path.clone(),
                source,
            })?;
            let signature = read_signature(dir, &arch.file_name())?;
            binaries.insert(
                arch,
                AgentBinary {
                    path,
                    size,
                    sha256,
                    signature,
                },
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            binaries,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn get(&self, arch: Arch) -> Option<&AgentBinary> {
        self.binaries.get(&arch)
    }

    /// The architectures served, in [`Arch`] order.
    pub fn arches(&self) -> impl Iterator<Item = Arch> + '_ {
        self.binaries.keys().copied()
    }
}

/// The size and lower-case hex SHA-256 of the file at `path`.
pub fn hash_file(path: &Path) -> io::Result<(u64, String)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        size += read as u64;
        hasher.update(&buffer[..read]);
    }
    Ok((size, to_hex(&hasher.finalize())))
}

/// A URL the installer may be told to use: `http://` or `https://`, a host, no user, query
/// or fragment, and only characters that need no quoting in a shell script or a TOML string.
pub fn check_public_url(text: &str) -> Result<(), String> {
    let url = url::Url::parse(text).map_err(|e| e.to_string())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("expected an http:// or https:// URL with a host".into());
    }
    if !url.username().is_empty() || url.query().is_some() || url.fragment().is_some() {
        return Err("expected no user, query or fragment".into());
    }
    if !text.bytes().all(is_url_byte) {
        return Err("expected only letters, digits and - . _ : / [ ] ~ %".into());
    }
    Ok(())
}

fn is_url_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.' | b'_' | b':' | b'/' | b'[' | b']' | b'~' | b'%'
        )
}

/// The URL of a primary reached as `host` (a request's `Host` header, `primary.lan:7070`)
/// over `scheme`; None when `host` holds anything but a host name or address and a port.
pub fn url_from_host(scheme: &str, host: &str) -> Option<String> {
    let plain = !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']'));
    let url = format!("{scheme}://{host}");
    (plain && check_public_url(&url).is_ok()).then_some(url)
}

/// The script with `primary_url` (which passed [`check_public_url`]) filled in; a trailing
/// `/` is dropped, since the script appends paths.
pub fn render_script(primary_url: &str) -> String {
    SCRIPT_TEMPLATE.replace(URL_PLACEHOLDER, primary_url.trim_end_matches('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_hashes_the_binaries_named_by_arch_and_ignores_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pivitals-agent-armv6"), b"abc").unwrap();
        std::fs::write(dir.path().join("pivitals-agent-sparc"), b"x").unwrap();
        std::fs::write(dir.path().join("README"), b"x").unwrap();
        let binaries = AgentBinaries::scan(dir.path()).unwrap();
        assert_eq!(binaries.arches().collect::<Vec<_>>(), vec![Arch::Armv6]);
        let armv6 = binaries.get(Arch::Armv6).unwrap();
        assert_eq!(armv6.size, 3);
        // sha256("abc"), as sha256sum prints it.
        assert_eq!(
            armv6.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(binaries.get(Arch::X86_64).is_none());
        assert_eq!(armv6.signature, None);
    }

    #[test]
    fn a_signature_beside_a_binary_is_read_and_must_be_64_bytes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pivitals-agent-armv6"), b"abc").unwrap();
        std::fs::write(dir.path().join("pivitals-agent-armv6.sig"), [7u8; 64]).unwrap();
        // A signature without its binary is ignored.
        std::fs::write(dir.path().join("pivitals-agent-armv7.sig"), b"short").unwrap();
        let binaries = AgentBinaries::scan(dir.path()).unwrap();
        assert_eq!(binaries.arches().collect::<Vec<_>>(), vec![Arch::Armv6]);
        assert_eq!(
            binaries.get(Arch::Armv6).unwrap().signature.as_deref(),
            Some(&[7u8; 64][..])
        );
        std::fs::write(dir.path().join("pivitals-agent-armv6.sig"), [7u8; 65]).unwrap();
        let err = AgentBinaries::scan(dir.path()).unwrap_err().to_string();
        assert!(
            err.starts_with("PIVITALS_AGENT_BINARIES")
                && err.contains("pivitals-agent-armv6.sig")
                && err.contains("65 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        let err = AgentBinaries::scan(&dir.path().join("absent")).unwrap_err();
        assert!(
            err.to_string().starts_with("PIVITALS_AGENT_BINARIES"),
            "{err}"
        );
    }

    #[test]
    fn urls_that_could_break_out_of_the_script_are_refused() {
        assert!(check_public_url("http://primary.lan:7070").is_ok());
        assert!(check_public_url("https://[fd00::1]:7070/").is_ok());
        for bad in [
            "ftp://primary.lan",
            "http://primary.lan/'$(reboot)'",
            "http://user@primary.lan",
            "http://primary.lan/?a=b",
            "primary.lan:7070",
        ] {
            assert!(check_public_url(bad).is_err(), "{bad}");
        }
        assert_eq!(
            url_from_host("http", "10.0.0.2:7070").as_deref(),
            Some("http://10.0.0.2:7070")
        );
        assert_eq!(url_from_host("http", "a.lan;reboot"), None);
        assert_eq!(url_from_host("http", "a.lan/x"), None);
    }

    #[test]
    fn the_script_gets_the_url_without_a_trailing_slash() {
        let script = render_script("http://primary.lan:7070/");
        assert!(script.starts_with("#!/bin/sh"));
        assert!(script.contains("PRIMARY_URL='http://primary.lan:7070'"));
        assert!(!script.contains(URL_PLACEHOLDER));
    }
}
