//! Reading small `/proc` and `/sys` files under a root directory, with errors that name the file.

use std::io;
use std::path::{Path, PathBuf};

/// Why a `/proc` or `/sys` file gave no value.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot parse {}: unexpected content {content:?}", path.display())]
    Parse { path: PathBuf, content: String },
}

impl ReadError {
    /// The file does not exist: on a host without that sensor this is expected, not a failure.
    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    pub(crate) fn parse(path: &Path, content: &str) -> Self {
        ReadError::Parse {
            path: path.to_owned(),
            content: content.chars().take(80).collect(),
        }
    }
}

/// Reads a whole file as text, lossily, with surrounding whitespace and NULs trimmed.
pub(crate) fn read_trimmed(path: &Path) -> Result<String, ReadError> {
    let bytes = std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(String::from_utf8_lossy(&bytes)
        .trim_matches(|c: char| c == '\0' || c.is_whitespace())
        .to_owned())
}

/// Reads a file and parses its trimmed content with `parse`.
pub(crate) fn read_parsed<T>(
    path: &Path,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T, ReadError> {
    let content = read_trimmed(path)?;
    parse(&content).ok_or_else(|| ReadError::parse(path, &content))
}

/// The entries of `dir` named `prefix` followed by a decimal number (`cpu3`, `hwmon0`),
/// sorted by that number. Entries are not required to be directories: `/sys/class/*`
/// entries are symlinks.
pub(crate) fn numbered_entries(dir: &Path, prefix: &str) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(number) = name.to_str().and_then(|n| parse_numbered(n, prefix)) else {
            continue;
        };
        found.push((number, entry.path()));
    }
    found.sort_by_key(|(number, _)| *number);
    Ok(found)
}

/// `cpu12` with prefix `cpu` → 12; anything else (`cpufreq`, `cpu`, `cpu-1`) → None.
fn parse_numbered(name: &str, prefix: &str) -> Option<u64> {
    let digits = name.strip_prefix(prefix)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    #[test]
    fn numbered_entries_keep_only_prefix_plus_digits_in_numeric_order() {
        let tree = Tree::empty();
        for name in [
            "cpu10", "cpu2", "cpufreq", "cpu", "cpu-1", "cpuidle", "cpu0",
        ] {
            tree.mkdir(&format!("cpus/{name}"));
        }
        let found = numbered_entries(&tree.path("cpus"), "cpu").expect("fixture dir is readable");
        let numbers: Vec<u64> = found.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [0, 2, 10]);
        assert!(found[2].1.ends_with("cpu10"));
    }

    #[test]
    fn read_trimmed_strips_nuls_and_newlines() {
        let tree = Tree::empty();
        tree.write("model", "Raspberry Pi 4 Model B Rev 1.4\0");
        tree.write("type", "cpu-thermal\n");
        assert_eq!(
            read_trimmed(&tree.path("model")).expect("fixture file is readable"),
            "Raspberry Pi 4 Model B Rev 1.4"
        );
        assert_eq!(
            read_trimmed(&tree.path("type")).expect("fixture file is readable"),
            "cpu-thermal"
        );
    }

    #[test]
    fn missing_files_are_told_apart_from_garbage() {
        let tree = Tree::empty();
        tree.write("garbage", "not a number\n");
        let missing = read_parsed(&tree.path("missing"), |s| s.parse::<u64>().ok());
        let garbage = read_parsed(&tree.path("garbage"), |s| s.parse::<u64>().ok());
        assert!(missing.as_ref().is_err_and(ReadError::is_not_found));
        let garbage = garbage.expect_err("garbage must not parse");
        assert!(!garbage.is_not_found());
        assert!(garbage.to_string().contains("not a number"), "{garbage}");
    }
}
