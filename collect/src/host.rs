//! Facts about the machine itself: hostname and architecture (from sysinfo), OS name and
//! version (`ROOT/etc/os-release`), kernel release (`ROOT/proc/sys/kernel/osrelease`) and a
//! Raspberry Pi's serial number (`ROOT/proc/device-tree/serial-number`).
//!
//! Read when the agent starts and every minute after, so a kernel or OS upgrade shows without
//! a restart of the agent: a handful of small files. A fact that cannot be read is empty (or
//! `None`), with one warning per fact for the life of the process; a file that does not exist
//! (no device tree on a PC) is expected and not warned about.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use sysinfo::System;

use crate::files::{ReadError, read_trimmed};

/// Hostname, OS, OS version, kernel, architecture and board serial of the host.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HostFacts {
    pub(crate) hostname: String,
    /// `NAME` of os-release, e.g. `Debian GNU/Linux` (Raspberry Pi OS names itself so too).
    pub(crate) os: String,
    /// `VERSION_ID` of os-release (e.g. `12`), else its `VERSION`; empty on a rolling release.
    pub(crate) os_version: String,
    /// The kernel release, as `uname -r` shows it, e.g. `6.6.51+rpt-rpi-v8`.
    pub(crate) kernel: String,
    pub(crate) arch: String,
    /// The SoC serial number of a Raspberry Pi, e.g. `10000000a1b2c3d4`.
    pub(crate) board_serial: Option<String>,
}

impl HostFacts {
    /// Reads the facts of the host whose `/` is `root`. The hostname and architecture are
    /// always the running host's (sysinfo).
    pub(crate) fn read(root: &Path) -> Self {
        static OS: AtomicBool = AtomicBool::new(false);
        static KERNEL: AtomicBool = AtomicBool::new(false);
        static SERIAL: AtomicBool = AtomicBool::new(false);
        let (os, os_version) = ok_or_warn(&OS, "os-release", read_os_release(root))
            .flatten()
            .unwrap_or_default();
        Self {
            hostname: System::host_name().unwrap_or_else(|error| {
                tracing::warn!("hostname unknown: {error}");
                String::new()
            }),
            os,
            os_version,
            kernel: ok_or_warn(&KERNEL, "kernel release", read_kernel(root))
                .flatten()
                .unwrap_or_default(),
            // The machine's architecture (`aarch64` on a Pi with a 32-bit userland too), or
            // the one this binary was built for.
            arch: System::cpu_arch(),
            board_serial: ok_or_warn(&SERIAL, "board serial", read_board_serial(root)).flatten(),
        }
    }
}

/// The value of `result`; on an error, None and a warning the first time `warned` is set.
pub(crate) fn ok_or_warn<T>(
    warned: &AtomicBool,
    fact: &'static str,
    result: Result<T, ReadError>,
) -> Option<T> {
    result
        .inspect_err(|error| {
            if !warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(fact, "{fact} unknown: {error}");
            }
        })
        .ok()
}

/// A file's trimmed content; None when it does not exist or is empty.
fn read_optional(path: &Path) -> Result<Option<String>, ReadError> {
    match read_trimmed(path) {
        Ok(content) => Ok(Some(content).filter(|c| !c.is_empty())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The OS name and version from `ROOT/etc/os-release`, else `ROOT/usr/lib/os-release` (where
/// the first is missing, as os-release(5) says); None when neither exists.
pub(crate) fn read_os_release(root: &Path) -> Result<Option<(String, String)>, ReadError> {
    for path in ["etc/os-release", "usr/lib/os-release"] {
        if let Some(content) = read_optional(&root.join(path))? {
            return Ok(Some(parse_os_release(&content)));
        }
    }
    Ok(None)
}

/// `NAME` (os-release(5)'s default `Linux` when missing) and `VERSION_ID`, else `VERSION`.
fn parse_os_release(content: &str) -> (String, String) {
    let mut name = None;
    let mut version_id = None;
    let mut version = None;
    for line in content.lines() {
        let Some((key, value)) = line.trim().split_once('=') else {
            continue;
        };
        let slot = match key {
            "NAME" => &mut name,
            "VERSION_ID" => &mut version_id,
            "VERSION" => &mut version,
            _ => continue,
        };
        *slot = Some(unquote(value)).filter(|v| !v.is_empty());
    }
    (
        name.unwrap_or_else(|| "Linux".to_owned()),
        version_id.or(version).unwrap_or_default(),
    )
}

/// A shell-style value: `"Debian GNU/Linux"` or `'x'` without the quotes, `\"`, `\\`, `\$`
/// and `` \` `` unescaped inside double quotes.
fn unquote(value: &str) -> String {
    let value = value.trim();
    if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
        return inner.to_owned();
    }
    let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) else {
        return value.to_owned();
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ ('"' | '\\' | '$' | '`'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// The kernel release from `ROOT/proc/sys/kernel/osrelease`.
pub(crate) fn read_kernel(root: &Path) -> Result<Option<String>, ReadError> {
    read_optional(&root.join("proc/sys/kernel/osrelease"))
}

/// A Raspberry Pi's serial from `ROOT/proc/device-tree/serial-number` (NUL-terminated); None
/// on hosts without one.
pub(crate) fn read_board_serial(root: &Path) -> Result<Option<String>, ReadError> {
    read_optional(&root.join("proc/device-tree/serial-number"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    #[test]
    fn reads_a_pi4s_os_kernel_and_serial() {
        let tree = Tree::empty();
        tree.write(
            "etc/os-release",
            "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n\
             VERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nVERSION_CODENAME=bookworm\nID=debian\n",
        );
        tree.write("proc/sys/kernel/osrelease", "6.6.51+rpt-rpi-v8\n");
        tree.write("proc/device-tree/serial-number", "10000000a1b2c3d4\0");
        let facts = HostFacts::read(tree.root());
        assert_eq!(facts.os, "Debian GNU/Linux");
        assert_eq!(facts.os_version, "12");
        assert_eq!(facts.kernel, "6.6.51+rpt-rpi-v8");
        assert_eq!(facts.board_serial.as_deref(), Some("10000000a1b2c3d4"));
    }

    #[test]
    fn a_tree_without_the_files_has_empty_facts() {
        let tree = Tree::empty();
        let facts = HostFacts::read(tree.root());
        assert_eq!(
            (
                facts.os.as_str(),
                facts.os_version.as_str(),
                facts.kernel.as_str()
            ),
            ("", "", "")
        );
        assert_eq!(facts.board_serial, None);
        assert_eq!(read_os_release(tree.root()).unwrap(), None);
    }

    #[test]
    fn os_release_falls_back_to_usr_lib_and_version() {
        let tree = Tree::empty();
        tree.write(
            "usr/lib/os-release",
            "# comment\nNAME='Alpine Linux'\nVERSION=\"3.20 \\\"edge\\\"\"\n",
        );
        assert_eq!(
            read_os_release(tree.root()).unwrap(),
            Some(("Alpine Linux".to_owned(), "3.20 \"edge\"".to_owned()))
        );
        assert_eq!(
            parse_os_release("ID=arch\nBUILD_ID=rolling\n"),
            ("Linux".to_owned(), String::new())
        );
    }

    #[test]
    fn this_linux_host_has_a_name_os_kernel_and_arch() {
        let facts = HostFacts::read(Path::new("/"));
        assert!(!facts.hostname.is_empty(), "{facts:?}");
        assert!(!facts.os.is_empty(), "{facts:?}");
        assert!(!facts.arch.is_empty(), "{facts:?}");
        let uname = std::process::Command::new("uname")
            .arg("-r")
            .output()
            .expect("uname runs");
        assert_eq!(facts.kernel, String::from_utf8_lossy(&uname.stdout).trim());
    }
}
