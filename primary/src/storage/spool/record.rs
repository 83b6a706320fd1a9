//! The bytes of one spool record.
//!
//! ```text
//! version u8 (= 1) | spooled_at_ms i64 LE | points u32 LE | node_len u16 LE | node | lines
//! ```
//! `lines` is newline-terminated line protocol and runs to the end of the value.

use thiserror::Error;

const VERSION: u8 = 1;
const HEADER: usize = 1 + 8 + 4 + 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub node: String,
    pub spooled_at_ms: i64,
    pub points: u32,
    pub lines: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RecordError {
    #[error("spool record too short ({0} bytes)")]
    Short(usize),
    #[error("spool record of unknown version {0}")]
    Version(u8),
    #[error("spool record node name is not UTF-8")]
    Node,
}

pub fn encode(node: &str, spooled_at_ms: i64, points: u32, lines: &[u8]) -> Vec<u8> {
    let node = &node.as_bytes()[..node.len().min(usize::from(u16::MAX))];
    let mut out = Vec::with_capacity(HEADER + node.len() + lines.len());
    out.push(VERSION);
    out.extend_from_slice(&spooled_at_ms.to_le_bytes());
    out.extend_from_slice(&points.to_le_bytes());
    out.extend_from_slice(&(node.len() as u16).to_le_bytes());
    out.extend_from_slice(node);
    out.extend_from_slice(lines);
    out
}

pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
    let short = || RecordError::Short(bytes.len());
    let (header, rest) = bytes.split_at_checked(HEADER).ok_or_else(short)?;
    if header[0] != VERSION {
        return Err(RecordError::Version(header[0]));
    }
    let spooled_at_ms = i64::from_le_bytes(header[1..9].try_into().map_err(|_| short())?);
    let points = u32::from_le_bytes(header[9..13].try_into().map_err(|_| short())?);
    let node_len = usize::from(u16::from_le_bytes(
        header[13..15].try_into().map_err(|_| short())?,
    ));
    let (node, lines) = rest.split_at_checked(node_len).ok_or_else(short)?;
    let node = std::str::from_utf8(node).map_err(|_| RecordError::Node)?;
    Ok(Record {
        node: node.to_owned(),
        spooled_at_ms,
        points,
        lines: lines.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let bytes = encode(
            "pi-01",
            1_700_000_000_000,
            7,
            b"cpu,node=pi-01 usage_percent=1 1\n",
        );
        let record = decode(&bytes).unwrap();
        assert_eq!(record.node, "pi-01");
        assert_eq!(record.spooled_at_ms, 1_700_000_000_000);
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
}
