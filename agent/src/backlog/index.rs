//! The backlog's only memory: where each waiting sample is on disk, eight bytes per sample,
//! grouped by segment, oldest first. The samples themselves stay on disk.

use std::collections::VecDeque;

/// One segment's waiting samples.
#[derive(Debug)]
pub(crate) struct Segment {
    pub id: u64,
    /// What entry deltas count from.
    base_seq: u64,
    entries: VecDeque<Entry>,
    /// The highest sample ever written to the file, waiting or not: the segment may be deleted
    /// once a durable head is above it.
    pub last_seq: Option<u64>,
    /// Bytes of whole records in the file (for the last segment: where the next one goes).
    pub size: u64,
}

/// A sample's place: its sequence number (from the segment's base) and its offset.
#[derive(Debug, Clone, Copy)]
struct Entry {
    delta: u32,
    offset: u32,
}

impl Segment {
    pub fn new(id: u64, base_seq: u64, size: u64) -> Self {
        Self {
            id,
            base_seq,
            entries: VecDeque::new(),
            last_seq: None,
            size,
        }
    }

    /// Whether a sample `seq` can be added: above every sample so far, and near enough to the
    /// base for the entry's delta.
    pub fn fits(&self, seq: u64) -> bool {
        seq >= self.base_seq
            && seq - self.base_seq <= u64::from(u32::MAX)
            && self.last_seq.is_none_or(|last| seq > last)
    }

    /// Waiting samples as `(seq, offset)`, oldest first.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = (u64, u32)> + '_ {
        self.entries
            .iter()
            .map(|e| (self.base_seq + u64::from(e.delta), e.offset))
    }

    /// Where the `n`th waiting sample starts, if there is one.
    pub fn offset(&self, n: usize) -> Option<u32> {
        self.entries.get(n).map(|e| e.offset)
    }

    pub fn waiting(&self) -> usize {
        self.entries.len()
    }
}

/// Every segment's waiting samples, oldest segment first; the last segment is the one
/// written to.
#[derive(Debug, Default)]
pub(crate) struct Index {
    segments: VecDeque<Segment>,
    len: usize,
}

impl Index {
    /// Waiting samples.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn segments(&self) -> &VecDeque<Segment> {
        &self.segments
    }

    pub fn last(&self) -> Option<&Segment> {
        self.segments.back()
    }

    pub fn last_mut(&mut self) -> Option<&mut Segment> {
        self.segments.back_mut()
    }

    /// Starts a new last segment. The previous one is complete: its entries give back spare
    /// capacity.
    pub fn add_segment(&mut self, segment: Segment) {
        if let Some(previous) = self.segments.back_mut() {
            previous.entries.shrink_to_fit();
        }
        self.len += segment.entries.len();
        self.segments.push_back(segment);
    }

    /// Adds sample `seq` at `offset` to the last segment; false (and nothing added) if it does
    /// not [`fit`](Segment::fits) or there is no segment.
    pub fn push(&mut self, seq: u64, offset: u32) -> bool {
        let Some(segment) = self.segments.back_mut() else {
            return false;
        };
        if segment.last_seq.is_none() {
            segment.base_seq = seq;
        }
        if !segment.fits(seq) {
            return false;
        }
        segment.entries.push_back(Entry {
            delta: (seq - segment.base_seq) as u32,
            offset,
        });
        segment.last_seq = Some(seq);
        self.len += 1;
        true
    }

    /// The oldest waiting sample.
    pub fn oldest(&self) -> Option<u64> {
        self.segments
            .iter()
            .find_map(|s| s.entries().next())
            .map(|(seq, _)| seq)
    }

    /// Forgets every waiting sample below `seq`; returns how many.
    pub fn pop_below(&mut self, seq: u64) -> usize {
        let mut removed = 0;
        for segment in &mut self.segments {
            while let Some(entry) = segment.entries.front() {
                if segment.base_seq + u64::from(entry.delta) >= seq {
                    break;
                }
                segment.entries.pop_front();
                removed += 1;
            }
            if !segment.entries.is_empty() {
                break;
            }
        }
        self.len -= removed;
        removed
    }

    /// Forgets the waiting sample `seq` wherever it is; returns whether it was there.
    pub fn remove(&mut self, seq: u64) -> bool {
        for segment in &mut self.segments {
            let base = segment.base_seq;
            if let Some(at) = segment
                .entries
                .iter()
                .position(|e| base + u64::from(e.delta) == seq)
            {
                segment.entries.remove(at);
                self.len -= 1;
                return true;
            }
        }
        false
    }

    /// Takes segment `id` out of the index; returns whether it was there.
    pub fn remove_segment(&mut self, id: u64) -> bool {
        let Some(at) = self.segments.iter().position(|s| s.id == id) else {
            return false;
        };
        if let Some(segment) = self.segments.remove(at) {
            self.len -= segment.entries.len();
        }
        true
    }

    /// Heap memory the index holds, for the log and for tests.
    pub fn heap_bytes(&self) -> usize {
        self.segments.capacity() * size_of::<Segment>()
            + self
                .segments
                .iter()
                .map(|s| s.entries.capacity() * size_of::<Entry>())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(index: &Index) -> Vec<u64> {
        index
            .segments()
            .iter()
            .flat_map(|s| s.entries().map(|(seq, _)| seq).collect::<Vec<_>>())
            .collect()
    }

    #[test]
    fn entries_are_eight_bytes_and_pop_in_order() {
        assert_eq!(size_of::<Entry>(), 8);
        let mut index = Index::default();
        assert!(!index.push(0, 0), "no segment yet");
        index.add_segment(Segment::new(1, 0, 8));
        for seq in 0..3 {
            assert!(index.push(seq, 100 + seq as u32));
        }
        assert!(!index.push(2, 200), "a sequence number only grows");
        index.add_segment(Segment::new(2, 3, 8));
        for seq in 3..6 {
            assert!(index.push(seq, 100 + seq as u32));
        }
        assert_eq!(index.len(), 6);
        assert_eq!(index.oldest(), Some(0));
        assert_eq!(index.pop_below(4), 4);
        assert_eq!(seqs(&index), [4, 5]);
        assert!(index.remove(5));
        assert!(!index.remove(5));
        assert_eq!(index.len(), 1);
        assert!(index.remove_segment(1));
        assert!(!index.remove_segment(1));
        assert_eq!(index.len(), 1);
        assert_eq!(index.segments()[0].offset(0), Some(104));
    }
}
