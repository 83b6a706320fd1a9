//! Gzip compression of write bodies, done here because reqwest compresses no request bodies.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// Compresses `data` with gzip at a fast level (line protocol compresses about tenfold
/// either way, and the primary may run on a Raspberry Pi).
pub(crate) fn compress(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 8 + 64), Compression::fast());
    encoder.write_all(data)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use flate2::read::GzDecoder;

    #[test]
    fn round_trips() {
        let lines = b"cpu,node=pi1 usage=1 1\n".repeat(100);
        let packed = super::compress(&lines).unwrap();
        assert!(packed.len() < lines.len() / 5, "{} bytes", packed.len());
        let mut unpacked = Vec::new();
        GzDecoder::new(&packed[..])
            .read_to_end(&mut unpacked)
            .unwrap();
        assert_eq!(unpacked, lines);
    }
}
