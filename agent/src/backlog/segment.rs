//! Segment files: `backlog/{id:020}.seg`, the magic `PIVBLOG1` followed by records. Naming,
//! creating (durably), listing, and scanning a segment's bytes back into records.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::record;

/// The first bytes of every segment; the digit is the format's version.
pub(crate) const MAGIC: &[u8; 8] = b"PIVBLOG1";
const EXTENSION: &str = ".seg";
/// Digits in a segment's name: ids sort by name as by number.
const ID_DIGITS: usize = 20;

/// The segment file with `id` in `dir`.
pub(crate) fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:0ID_DIGITS$}{EXTENSION}"))
}

fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(EXTENSION)?;
    if digits.len() != ID_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The ids of the segments in `dir`, oldest first. Other files are not looked at.
pub(crate) fn list(dir: &Path) -> io::Result<Vec<u64>> {
    let mut ids = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(id) = entry.file_name().to_str().and_then(parse_name) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Creates segment `id` holding the magic and a head record for `head`, makes both it and its
/// directory entry durable, and returns it open for reading and writing, with its size.
pub(crate) fn create(dir: &Path, id: u64, head: u64) -> io::Result<(File, u64)> {
    let path = path(dir, id);
    let mut bytes = MAGIC.to_vec();
    record::encode_head(head, &mut bytes);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    let written = file
        .write_all(&bytes)
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_dir(dir));
    match written {
        Ok(()) => Ok((file, bytes.len() as u64)),
        Err(e) => {
            drop(file);
            let _ = fs::remove_file(&path);
            Err(e)
        }
    }
}

/// Makes the directory's entries (created, renamed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a segment's bytes hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Scan {
    /// Sample records as `(seq, offset)`, in file order.
    pub samples: Vec<(u64, u32)>,
    /// The highest head record.
    pub head: Option<u64>,
    /// Stretches between whole records that are not records: skipped.
    pub corrupt: Vec<Range<usize>>,
    /// Where the last whole record ends; anything after it is a torn or garbage tail.
    pub valid_end: usize,
}

/// Reads the records of a segment's bytes (which start with [`MAGIC`]; the caller checked).
/// A stretch that does not decode is skipped up to the next plausible record
/// ([`record::resync`]); when none follows, it is the tail, left out of `valid_end`.
pub(crate) fn scan(bytes: &[u8]) -> Scan {
    debug_assert!(bytes.starts_with(MAGIC));
    debug_assert!(u32::try_from(bytes.len()).is_ok());
    let mut scan = Scan {
        valid_end: MAGIC.len(),
        ..Scan::default()
    };
    let mut at = MAGIC.len();
    while at < bytes.len() {
        match record::decode(&bytes[at..]) {
            Ok(found) => {
                if found.is_head() {
                    scan.head = scan.head.max(Some(found.seq));
                } else {
                    scan.samples.push((found.seq, at as u32));
                }
                at += found.size();
                scan.valid_end = at;
            }
            Err(_) => match record::resync(bytes, at) {
                Some(next) => {
                    scan.corrupt.push(at..next);
                    at = next;
                }
                None => break,
            },
        }
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_sort_as_ids() {
        let dir = Path::new("/state/backlog");
        assert_eq!(
            path(dir, 42),
            Path::new("/state/backlog/00000000000000000042.seg")
        );
        assert_eq!(parse_name("00000000000000000042.seg"), Some(42));
        for other in [
            "42.seg",
            "00000000000000000042.seg.tmp",
            "0000000000000000004x.seg",
        ] {
            assert_eq!(parse_name(other), None, "{other}");
        }
    }

    #[test]
    fn scan_finds_samples_heads_corruption_and_the_tail() {
        let mut bytes = MAGIC.to_vec();
        record::encode_head(3, &mut bytes);
        let first = bytes.len();
        record::encode(3, b"{\"n\":3}", &mut bytes);
        let second = bytes.len();
        record::encode(4, b"{\"n\":4}", &mut bytes);
        let third = bytes.len();
        record::encode(5, b"{\"n\":5}", &mut bytes);
        record::encode_head(5, &mut bytes);
        let end = bytes.len();
        bytes[second + HEADER_OFFSET_OF_PAYLOAD] ^= 0x01;
        bytes.extend_from_slice(&[0xff; 10]);

        let scan = scan(&bytes);
        assert_eq!(
            scan.samples,
            [(3, first as u32), (5, third as u32)],
            "sample 4 is corrupt"
        );
        assert_eq!(scan.head, Some(5));
        assert_eq!(
            scan.corrupt,
            vec![Range {
                start: second,
                end: third
            }]
        );
        assert_eq!(scan.valid_end, end, "the garbage tail is not counted in");
    }

    const HEADER_OFFSET_OF_PAYLOAD: usize = record::HEADER_LEN + 2;

    #[test]
    fn created_segments_hold_the_magic_and_the_head() {
        let dir = tempfile::tempdir().unwrap();
        let (_file, size) = create(dir.path(), 7, 12).unwrap();
        let bytes = fs::read(path(dir.path(), 7)).unwrap();
        assert_eq!(size, bytes.len() as u64);
        let scan = scan(&bytes);
        assert_eq!(scan.head, Some(12));
        assert!(scan.samples.is_empty());
        assert!(
            create(dir.path(), 7, 12).is_err(),
            "a segment is never reused"
        );
        assert_eq!(list(dir.path()).unwrap(), [7]);
    }
}
