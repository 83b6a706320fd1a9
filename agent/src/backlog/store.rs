//! Samples waiting to be pushed: a bounded queue, oldest first, that drops the oldest when full.
//!
//! Design, so that a persistent version (a later issue: kept in `STATE_DIR`) can take the same
//! interface:
//! - every sample gets a sequence number when it is [`Backlog::push`]ed; numbers only grow;
//! - the sender takes a copy of the oldest samples with [`Backlog::peek_batch`] and, once the
//!   primary has acknowledged them (or refused them for good), removes them with
//!   [`Backlog::remove_batch`]. Nothing leaves the backlog before that, so a push that fails or
//!   is cancelled loses nothing;
//! - sampling goes on while a batch is in flight. If the backlog is full, [`Backlog::push`] drops
//!   the oldest sample even when it belongs to that batch; `remove_batch` works by sequence
//!   number, so it then removes only what is left of the batch and never a newer sample;
//! - [`Backlog::dropped`] counts samples lost to the bound, for the log and for tests.

use std::collections::VecDeque;

use pivitals_common::VitalsPayload;

/// Samples not yet acknowledged by the primary, oldest first.
#[derive(Debug)]
pub struct Backlog {
    samples: VecDeque<VitalsPayload>,
    capacity: usize,
    /// Sequence number of `samples[0]`.
    first_seq: u64,
    dropped: u64,
}

/// A copy of the oldest samples, to push; see [`Backlog::remove_batch`].
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub samples: Vec<VitalsPayload>,
    /// Sequence number just past the last sample of the batch.
    end_seq: u64,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
}

impl Backlog {
    /// A backlog that keeps at most `capacity` samples (at least one).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            samples: VecDeque::with_capacity(capacity.min(1024)),
            capacity,
            first_seq: 0,
            dropped: 0,
        }
    }

    /// Appends a sample; when the backlog is full the oldest sample is dropped first, and this
    /// returns true.
    pub fn push(&mut self, sample: VitalsPayload) -> bool {
        let full = self.samples.len() >= self.capacity;
        if full {
            self.samples.pop_front();
            self.first_seq += 1;
            self.dropped += 1;
        }
        self.samples.push_back(sample);
        full
    }

    /// A copy of the oldest `max` samples (fewer if the backlog holds fewer), oldest first.
    pub fn peek_batch(&self, max: usize) -> Batch {
        let samples: Vec<_> = self.samples.iter().take(max).cloned().collect();
        Batch {
            end_seq: self.first_seq + samples.len() as u64,
            samples,
        }
    }

    /// Removes what is still here of `batch` (everything older than its end); returns how many
    /// samples that removed.
    pub fn remove_batch(&mut self, batch: &Batch) -> usize {
        let count = batch
            .end_seq
            .saturating_sub(self.first_seq)
            .min(self.samples.len() as u64);
        self.samples.drain(..count as usize);
        self.first_seq += count;
        count as usize
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples dropped so far because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ts: i64) -> VitalsPayload {
        VitalsPayload {
            timestamp_ms: ts,
            ..Default::default()
        }
    }

    fn timestamps(samples: &[VitalsPayload]) -> Vec<i64> {
        samples.iter().map(|s| s.timestamp_ms).collect()
    }

    #[test]
    fn batches_are_oldest_first_and_bounded_in_size() {
        let mut backlog = Backlog::new(10);
        for ts in 1..=5 {
            assert!(!backlog.push(sample(ts)));
        }
        let batch = backlog.peek_batch(3);
        assert_eq!(timestamps(&batch.samples), [1, 2, 3]);
        assert_eq!(backlog.len(), 5, "peeking removes nothing");
        assert_eq!(backlog.remove_batch(&batch), 3);
        assert_eq!(timestamps(&backlog.peek_batch(10).samples), [4, 5]);
        assert_eq!(backlog.remove_batch(&batch), 0, "a batch is removed once");
        assert_eq!(backlog.len(), 2);
        assert!(Backlog::new(3).peek_batch(5).is_empty());
    }

    #[test]
    fn a_full_backlog_drops_the_oldest_and_counts() {
        let mut backlog = Backlog::new(3);
        let dropped: Vec<bool> = (1..=5).map(|ts| backlog.push(sample(ts))).collect();
        assert_eq!(dropped, [false, false, false, true, true]);
        assert_eq!(backlog.len(), 3);
        assert_eq!(backlog.dropped(), 2);
        assert_eq!(timestamps(&backlog.peek_batch(10).samples), [3, 4, 5]);
    }

    #[test]
    fn drops_during_an_in_flight_batch_never_remove_newer_samples() {
        let mut backlog = Backlog::new(4);
        for ts in 1..=4 {
            backlog.push(sample(ts));
        }
        let batch = backlog.peek_batch(3); // 1, 2, 3 in flight
        backlog.push(sample(5)); // drops 1
        backlog.push(sample(6)); // drops 2
        assert_eq!(
            backlog.remove_batch(&batch),
            1,
            "only 3 is left of the batch"
        );
        assert_eq!(timestamps(&backlog.peek_batch(10).samples), [4, 5, 6]);

        let batch = backlog.peek_batch(2); // 4, 5
        for ts in 7..=10 {
            backlog.push(sample(ts)); // 7 fits; 8, 9 and 10 drop 4, 5 and 6
        }
        assert_eq!(backlog.remove_batch(&batch), 0);
        assert_eq!(timestamps(&backlog.peek_batch(10).samples), [7, 8, 9, 10]);
        assert_eq!(backlog.dropped(), 5);
    }

    #[test]
    fn capacity_is_at_least_one() {
        let mut backlog = Backlog::new(0);
        backlog.push(sample(1));
        backlog.push(sample(2));
        assert_eq!(timestamps(&backlog.peek_batch(5).samples), [2]);
        assert_eq!(backlog.capacity(), 1);
    }
}
