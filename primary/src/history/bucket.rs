//! [`Bucket`]: the mean, lowest, highest and count of each series over one time bucket, and
//! its fixed 144-byte stored form.

use super::series::{Reading, SERIES_COUNT};

/// Mean, min, max and count of one series over a bucket (or over a step of an answer).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Accumulator {
    pub count: u32,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
}

impl Accumulator {
    /// Adds one sample's reading.
    pub fn add(&mut self, reading: Reading) {
        self.merge(&Accumulator {
            count: 1,
            mean: reading.mean,
            min: reading.min,
            max: reading.max,
        });
    }

    /// Folds `other` in: means weighted by their counts, the lower min, the higher max.
    pub fn merge(&mut self, other: &Accumulator) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let total = u64::from(self.count) + u64::from(other.count);
        self.mean = (self.mean * f64::from(self.count) + other.mean * f64::from(other.count))
            / total as f64;
        self.count = u32::try_from(total).unwrap_or(u32::MAX);
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// Bytes of one series in a stored bucket: count (u32), mean, min, max (f32), little-endian.
const SERIES_BYTES: usize = 16;
/// Bytes of a stored bucket's value (the key, node name and start, comes on top).
pub const BUCKET_BYTES: usize = SERIES_BYTES * SERIES_COUNT;

/// One bucket of one node: an accumulator per series, in [`Series::ALL`](super::Series::ALL)
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Bucket(pub [Accumulator; SERIES_COUNT]);

impl Bucket {
    /// Adds one sample's readings.
    pub fn add(&mut self, readings: &[Option<Reading>; SERIES_COUNT]) {
        for (acc, reading) in self.0.iter_mut().zip(readings) {
            if let Some(reading) = reading {
                acc.add(*reading);
            }
        }
    }

    pub fn merge(&mut self, other: &Bucket) {
        for (acc, more) in self.0.iter_mut().zip(&other.0) {
            acc.merge(more);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(Accumulator::is_empty)
    }

    /// The stored form. Values are kept as f32: 7 significant digits, plenty for a chart.
    pub fn encode(&self) -> [u8; BUCKET_BYTES] {
        let mut out = [0u8; BUCKET_BYTES];
        for (chunk, acc) in out.chunks_exact_mut(SERIES_BYTES).zip(&self.0) {
            chunk[0..4].copy_from_slice(&acc.count.to_le_bytes());
            chunk[4..8].copy_from_slice(&(acc.mean as f32).to_le_bytes());
            chunk[8..12].copy_from_slice(&(acc.min as f32).to_le_bytes());
            chunk[12..16].copy_from_slice(&(acc.max as f32).to_le_bytes());
        }
        out
    }

    /// Reads a stored bucket; `None` when the bytes are not one (a damaged record is skipped,
    /// not fatal: this is display data).
    pub fn decode(bytes: &[u8]) -> Option<Bucket> {
        <&[u8; BUCKET_BYTES]>::try_from(bytes)
            .ok()
            .map(Bucket::unpack)
    }

    fn unpack(bytes: &[u8; BUCKET_BYTES]) -> Bucket {
        let mut bucket = Bucket::default();
        for (chunk, acc) in bytes.chunks_exact(SERIES_BYTES).zip(bucket.0.iter_mut()) {
            let word =
                |at: usize| -> [u8; 4] { [chunk[at], chunk[at + 1], chunk[at + 2], chunk[at + 3]] };
            let float = |at: usize| f64::from(f32::from_le_bytes(word(at)));
            *acc = Accumulator {
                count: u32::from_le_bytes(word(0)),
                mean: float(4),
                min: float(8),
                max: float(12),
            };
        }
        bucket
    }
}

/// A bucket in its stored form, as pending buckets wait for the minute's write: 144 bytes
/// instead of [`Bucket`]'s 288, and an answer shows the same values before and after the
/// write. Each sample added is one unpack and pack of nine series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Packed([u8; BUCKET_BYTES]);

impl Default for Packed {
    fn default() -> Self {
        Packed(Bucket::default().encode())
    }
}

impl Packed {
    pub fn bucket(&self) -> Bucket {
        Bucket::unpack(&self.0)
    }

    /// Adds one sample's readings.
    pub fn add(&mut self, readings: &[Option<Reading>; SERIES_COUNT]) {
        let mut bucket = self.bucket();
        bucket.add(readings);
        self.0 = bucket.encode();
    }

    pub fn merge(&mut self, other: &Packed) {
        let mut bucket = self.bucket();
        bucket.merge(&other.bucket());
        self.0 = bucket.encode();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(mean: f64, min: f64, max: f64) -> Option<Reading> {
        Some(Reading { mean, min, max })
    }

    #[test]
    fn means_are_weighted_and_peaks_kept() {
        let mut bucket = Bucket::default();
        let mut sample = [None; SERIES_COUNT];
        for (mean, min, max) in [(10.0, 5.0, 30.0), (20.0, 1.0, 90.0), (30.0, 30.0, 30.0)] {
            sample[0] = reading(mean, min, max);
            bucket.add(&sample);
        }
        let cpu = bucket.0[0];
        assert_eq!(
            (cpu.count, cpu.mean, cpu.min, cpu.max),
            (3, 20.0, 1.0, 90.0)
        );
        assert!(bucket.0[1].is_empty());

        let mut other = Bucket::default();
        sample[0] = reading(60.0, 60.0, 95.0);
        other.add(&sample);
        bucket.merge(&other);
        let cpu = bucket.0[0];
        assert_eq!((cpu.count, cpu.mean, cpu.max), (4, 30.0, 95.0));
    }

    #[test]
    fn the_stored_form_round_trips_and_refuses_other_sizes() {
        let mut bucket = Bucket::default();
        let mut sample = [None; SERIES_COUNT];
        sample[3] = reading(41.5, 40.0, 43.25);
        sample[8] = reading(1_048_576.0, 0.0, 8_388_608.0);
        bucket.add(&sample);
        bucket.add(&sample);
        let bytes = bucket.encode();
        assert_eq!(bytes.len(), 144);
        assert_eq!(Bucket::decode(&bytes), Some(bucket));
        assert_eq!(Bucket::decode(&bytes[1..]), None);
    }

    #[test]
    fn a_packed_bucket_holds_what_is_stored() {
        let mut packed = Packed::default();
        assert!(packed.bucket().is_empty());
        let mut sample = [None; SERIES_COUNT];
        sample[0] = reading(10.1, 5.0, 30.0);
        packed.add(&sample);
        sample[0] = reading(20.2, 1.0, 90.0);
        packed.add(&sample);
        let mut other = Packed::default();
        other.add(&sample);
        packed.merge(&other);
        let mut exact = Bucket::default();
        sample[0] = reading(10.1, 5.0, 30.0);
        exact.add(&sample);
        sample[0] = reading(20.2, 1.0, 90.0);
        exact.add(&sample);
        exact.add(&sample);
        assert_eq!(
            Bucket::decode(&packed.bucket().encode()),
            Some(packed.bucket())
        );
        let (cpu, want) = (packed.bucket().0[0], exact.0[0]);
        assert_eq!((cpu.count, cpu.min, cpu.max), (3, 1.0, 90.0));
        assert!(
            (cpu.mean - want.mean).abs() < 1e-5,
            "{} {}",
            cpu.mean,
            want.mean
        );
    }
}
