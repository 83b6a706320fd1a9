//! The bytes of one spool record.
//!
//! ```text
//! version u8 | spooled_at_ms i64 LE | points u32 LE | node_len u16 LE | node | body
//! ```
//! - version 1: `body` is the lines themselves: newline-terminated line protocol to the end
//!   of the value.
//! - version 2: `body` is the lines as one LZ4 block, after their length (u32 LE).
//!
//! Records are written in version 2 unless the block would not be smaller (a lone status
//! point), and both versions are read, so a spool left by an earlier release is written out.
//!
//! # Why compressed
//! A push's lines repeat the node's tags and the timestamp on every line: one sample of a host
//! with a disk and four interfaces is 2,082 bytes of lines and 1,012 as a block, made in about
//! 1.4 µs and read back in 0.3. redb's pages are 4 KiB: a record of about 2 KB takes a page of
//! its own, one of about 1 KB shares it with three others, and the spool's cost (the insert,
//! the commit's writes and fsync, the delete) goes by pages.

use thiserror::Error;

/// Lines as they are.
const PLAIN: u8 = 1;
/// Lines as an LZ4 block.
const LZ4: u8 = 2;
const HEADER: usize = 1 + 8 + 4 + 2;
/// LZ4 cannot expand a block by more than this: a larger stated length is damage, refused
/// before anything is allocated for it.
const MAX_LZ4_RATIO: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub node: String,
    pub spooled_at_ms: i64,
    pub points: u32,
    pub lines: Vec<u8>,
}

/// What a record says about itself before its lines: read without decompressing them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub spooled_at_ms: i64,
    pub points: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("spool record too short ({0} bytes)")]
    Short(usize),
    #[error("spool record of unknown version {0}")]
    Version(u8),
    #[error("spool record node name is not UTF-8")]
    Node,
    #[error("spool record's compressed lines are damaged: {0}")]
    Compressed(String),
}

pub fn encode(node: &str, spooled_at_ms: i64, points: u32, lines: &[u8]) -> Vec<u8> {
    let node = &node.as_bytes()[..node.len().min(usize::from(u16::MAX))];
    let most = lz4_flex::block::get_maximum_output_size(lines.len());
    let mut out = Vec::with_capacity(HEADER + node.len() + 4 + most);
    out.push(LZ4);
    out.extend_from_slice(&spooled_at_ms.to_le_bytes());
    out.extend_from_slice(&points.to_le_bytes());
    out.extend_from_slice(&(node.len() as u16).to_le_bytes());
    out.extend_from_slice(node);
    let body = out.len();
    // Compressed straight into the record: no block of its own to copy.
    if let Ok(len) = u32::try_from(lines.len()) {
        out.extend_from_slice(&len.to_le_bytes());
        let block = out.len();
        out.resize(block + most, 0);
        if let Ok(size) = lz4_flex::block::compress_into(lines, &mut out[block..])
            && 4 + size < lines.len()
        {
            out.truncate(block + size);
            return out;
        }
    }
    out.truncate(body);
    out[0] = PLAIN;
    out.extend_from_slice(lines);
    out
}

/// The header alone, for the spool's figures: cheaper than [`decode`], which also reads the
/// lines.
pub fn header(bytes: &[u8]) -> Result<Header, RecordError> {
    split(bytes).map(|(header, _, _)| header)
}

pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let (header, node, body) = split(bytes)?;
    let node = std::str::from_utf8(node).map_err(|_| RecordError::Node)?;
    let lines = match bytes[0] {
        LZ4 => decompress(body)?,
        _ => body.to_vec(),
    };
    Ok(Record {
        node: node.to_owned(),
        spooled_at_ms: header.spooled_at_ms,
        points: header.points,
        lines,
    })
}

/// The header, the node's bytes and the body, once the version is known.
fn split(bytes: &[u8]) -> Result<(Header, &[u8], &[u8]), RecordError> {
    let short = || RecordError::Short(bytes.len());
    let (header, rest) = bytes.split_at_checked(HEADER).ok_or_else(short)?;
    if header[0] != PLAIN && header[0] != LZ4 {
        return Err(RecordError::Version(header[0]));
    }
    let spooled_at_ms = i64::from_le_bytes(header[1..9].try_into().map_err(|_| short())?);
    let points = u32::from_le_bytes(header[9..13].try_into().map_err(|_| short())?);
    let node_len = usize::from(u16::from_le_bytes(
        header[13..15].try_into().map_err(|_| short())?,
    ));
    let (node, body) = rest.split_at_checked(node_len).ok_or_else(short)?;
    Ok((
        Header {
            spooled_at_ms,
            points,
        },
        node,
        body,
    ))
}

fn decompress(body: &[u8]) -> Result<Vec<u8>, RecordError> {
    let damaged = RecordError::Compressed;
    let (len, block) = body
        .split_at_checked(4)
        .ok_or_else(|| damaged("no length".into()))?;
    let len = u32::from_le_bytes(len.try_into().map_err(|_| damaged("no length".into()))?);
    let len = len as usize;
    if len > block.len().saturating_mul(MAX_LZ4_RATIO) {
        return Err(damaged(format!(
            "{len} bytes stated for a block of {}",
            block.len()
        )));
    }
    let lines = lz4_flex::block::decompress(block, len).map_err(|e| damaged(e.to_string()))?;
    if lines.len() != len {
        return Err(damaged(format!(
            "{} bytes where {len} were stated",
            lines.len()
        )));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of one push as the encoder writes them: tags and timestamp on every line.
    fn push_lines() -> Vec<u8> {
        let mut lines = String::new();
        for (measurement, fields) in [
            ("cpu", "usage_percent=12.5,cores=4i"),
            ("mem", "total_bytes=4096000000i,used_bytes=1024000000i"),
            ("disk", "total_bytes=64000000000i,used_bytes=12000000000i"),
            ("net", "rx_bytes=123456789i,tx_bytes=98765432i"),
            ("system", "load1=0.5,uptime_seconds=86400i"),
        ] {
            lines.push_str(&format!(
                "{measurement},node=pi-01,stack=rack-a {fields} 1700000000000000000\n"
            ));
        }
        lines.into_bytes()
    }

    #[test]
    fn round_trip_compressed() {
        let lines = push_lines();
        let bytes = encode("pi-01", 1_700_000_000_000, 5, &lines);
        assert_eq!(bytes[0], LZ4);
        assert!(bytes.len() < lines.len(), "{} bytes", bytes.len());
        let record = decode(&bytes).unwrap();
        assert_eq!(record.node, "pi-01");
        assert_eq!(record.spooled_at_ms, 1_700_000_000_000);
        assert_eq!(record.points, 5);
        assert_eq!(record.lines, lines);
        assert_eq!(
            header(&bytes).unwrap(),
            Header {
                spooled_at_ms: 1_700_000_000_000,
                points: 5
            }
        );
    }

    #[test]
    fn lines_that_do_not_shrink_are_kept_as_they_are() {
        let lines = b"node_status,node=pi-01 up=1i 1\n";
        let bytes = encode("pi-01", 7, 1, lines);
        assert_eq!(bytes[0], PLAIN);
        assert_eq!(decode(&bytes).unwrap().lines, lines);
    }

    #[test]
    fn records_of_the_first_version_are_read() {
        // Version 1 as an earlier release wrote it.
        let mut bytes = vec![1];
        bytes.extend_from_slice(&1_700_000_000_000i64.to_le_bytes());
        bytes.extend_from_slice(&7u32.to_le_bytes());
        bytes.extend_from_slice(&5u16.to_le_bytes());
        bytes.extend_from_slice(b"pi-01");
        bytes.extend_from_slice(b"cpu,node=pi-01 usage_percent=1 1\n");
        let record = decode(&bytes).unwrap();
        assert_eq!(record.node, "pi-01");
        assert_eq!(record.points, 7);
        assert_eq!(record.lines, b"cpu,node=pi-01 usage_percent=1 1\n");
    }

    #[test]
    fn damaged_records_are_errors_not_panics() {
        let bytes = encode("pi-01", 1, 1, b"x\n");
        assert_eq!(decode(&bytes[..10]), Err(RecordError::Short(10)));
        assert_eq!(decode(&bytes[..16]), Err(RecordError::Short(16)));
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert_eq!(decode(&wrong), Err(RecordError::Version(9)));
        assert_eq!(decode(&[]), Err(RecordError::Short(0)));
    }

    #[test]
    fn damaged_compressed_lines_are_errors_and_allocate_nothing_huge() {
        let bytes = encode("pi-01", 1, 5, &push_lines());
        let body = HEADER + "pi-01".len();
        // A stated length no block could expand to.
        let mut huge = bytes.clone();
        huge[body..body + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(decode(&huge), Err(RecordError::Compressed(_))));
        // A block cut short.
        assert!(matches!(
            decode(&bytes[..bytes.len() - 3]),
            Err(RecordError::Compressed(_))
        ));
        // No room for the length.
        assert!(matches!(
            decode(&bytes[..body + 2]),
            Err(RecordError::Compressed(_))
        ));
        // The header is still readable without the lines.
        assert_eq!(header(&huge).unwrap().points, 5);
    }
}
