//! One record's bytes: `[len u32 LE][crc32 u32 LE][seq u64 LE][payload]`, and finding the
//! records in a segment's bytes again, past torn or corrupt ones.
//!
//! `len` is the payload's length; the CRC-32 (IEEE, as zlib and Ethernet) covers `seq` and the
//! payload. A *sample* record carries the sample's JSON as payload (never empty: at least
//! `{}`); a *head* record has an empty payload, and its `seq` says that every sample with a
//! smaller sequence number has left the backlog.

/// Bytes before the payload: `len`, `crc`, `seq`.
pub(crate) const HEADER_LEN: usize = 16;
/// The largest payload a record may carry; the primary refuses larger pushes anyway (1 MiB).
pub(crate) const MAX_PAYLOAD: usize = 1 << 20;

/// A record read back from bytes that passed the checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub seq: u64,
    /// Empty for a head record.
    pub payload: &'a [u8],
}

impl Record<'_> {
    pub fn is_head(&self) -> bool {
        self.payload.is_empty()
    }

    /// Bytes the record takes, header included.
    pub fn size(&self) -> usize {
        HEADER_LEN + self.payload.len()
    }
}

/// Why the bytes at some offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid {
    /// The bytes end before the header or the payload does.
    Short,
    /// `len` is above [`MAX_PAYLOAD`].
    Length,
    /// The checksum does not match `seq` and the payload.
    Checksum,
}

/// Appends a sample record (`payload` must not be empty) or, with an empty payload, a head
/// record to `out`.
pub(crate) fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    debug_assert!(payload.len() <= MAX_PAYLOAD);
    out.reserve(HEADER_LEN + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// Appends a head record: every sample below `head` has left the backlog.
pub(crate) fn encode_head(head: u64, out: &mut Vec<u8>) {
    encode(head, &[], out);
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&seq.to_le_bytes());
    hasher.update(payload);
    hasher.finalize()
}

/// The record at the start of `bytes`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record<'_>, Invalid> {
    let Some(header) = bytes.get(..HEADER_LEN) else {
        return Err(Invalid::Short);
    };
    let len = u32::from_le_bytes(header[0..4].try_into().unwrap_or_default()) as usize;
    let crc = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
    let seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
    if len > MAX_PAYLOAD {
        return Err(Invalid::Length);
    }
    let Some(payload) = bytes.get(HEADER_LEN..HEADER_LEN + len) else {
        return Err(Invalid::Short);
    };
    if checksum(seq, payload) != crc {
        return Err(Invalid::Checksum);
    }
    Ok(Record { seq, payload })
}

/// The first offset after `from` where a plausible record starts, to go on after a corrupt
/// one. Plausible: it decodes, and its payload is empty (a head record) or starts with `{` (a
/// sample's JSON object). `None`: nothing valid follows, so everything from `from` on is a torn
/// or garbage tail.
///
/// Cheap checks come first (length within the bytes left, first payload byte), so the
/// checksum is computed at few offsets even in a long stretch of garbage.
pub(crate) fn resync(bytes: &[u8], from: usize) -> Option<usize> {
    let last_start = bytes.len().checked_sub(HEADER_LEN)?;
    (from + 1..=last_start).find(|&at| {
        let rest = &bytes[at..];
        let len = u32::from_le_bytes(rest[0..4].try_into().unwrap_or_default()) as usize;
        if len > MAX_PAYLOAD || len > rest.len() - HEADER_LEN {
            return false;
        }
        if len > 0 && rest[HEADER_LEN] != b'{' {
            return false;
        }
        decode(rest).is_ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back() {
        let mut bytes = Vec::new();
        encode(7, b"{\"a\":1}", &mut bytes);
        encode_head(8, &mut bytes);
        assert_eq!(bytes.len(), 2 * HEADER_LEN + 7);
        let first = decode(&bytes).unwrap();
        assert_eq!(
            first,
            Record {
                seq: 7,
                payload: b"{\"a\":1}"
            }
        );
        assert!(!first.is_head());
        let second = decode(&bytes[first.size()..]).unwrap();
        assert_eq!(second.seq, 8);
        assert!(second.is_head());
    }

    #[test]
    fn damage_is_detected() {
        let mut bytes = Vec::new();
        encode(1, b"{\"cpu\":12.5}", &mut bytes);
        for cut in 0..bytes.len() {
            assert_eq!(decode(&bytes[..cut]), Err(Invalid::Short), "cut at {cut}");
        }
        for at in 4..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0x10;
            assert_eq!(decode(&flipped), Err(Invalid::Checksum), "bit flip at {at}");
        }
        let mut long = bytes.clone();
        long[0..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&long), Err(Invalid::Length));
        // Zeros, as a torn write on power loss may leave, are not a record either.
        assert_eq!(decode(&[0; 64]), Err(Invalid::Checksum));
    }

    #[test]
    fn resync_finds_the_next_record_after_garbage() {
        let mut bytes = Vec::new();
        encode(1, b"{\"n\":1}", &mut bytes);
        let second = bytes.len();
        encode(2, b"{\"n\":2}", &mut bytes);
        let third = bytes.len();
        encode_head(3, &mut bytes);
        // The second record's length is damaged: decoding it fails, resync finds the third.
        bytes[second] = 0xff;
        assert!(decode(&bytes[second..]).is_err());
        assert_eq!(resync(&bytes, second), Some(third));
        // Nothing valid after the last record: a tail.
        assert_eq!(resync(&bytes, third), None);
        assert_eq!(resync(&[0xab; 100], 0), None);
        assert_eq!(resync(&[], 0), None);
    }
}
