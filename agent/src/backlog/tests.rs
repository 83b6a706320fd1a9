//! The backlog on disk: reopening, removal, torn and corrupt records, segment deletion, the
//! bound. A crash is simulated by leaking the handle (`mem::forget`: no sync at drop) and by
//! damaging the files the way a cut-short write or a bad card would.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use pivitals_common::VitalsPayload;

use super::record;
use super::segment::{self, MAGIC};
use super::{Backlog, Options};

fn sample(ts: i64) -> VitalsPayload {
    VitalsPayload {
        timestamp_ms: ts,
        uptime_seconds: Some(ts as u64 * 7),
        process_count: Some(100 + ts as u64),
        ..Default::default()
    }
}

fn timestamps(samples: &[VitalsPayload]) -> Vec<i64> {
    samples.iter().map(|s| s.timestamp_ms).collect()
}

fn open(dir: &Path, capacity: usize) -> Backlog {
    Backlog::open(dir, capacity).unwrap()
}

/// Every waiting sample's timestamp, oldest first.
fn waiting(backlog: &mut Backlog) -> Vec<i64> {
    let all = timestamps(&backlog.peek_batch(usize::MAX).samples);
    assert_eq!(all.len(), backlog.len());
    all
}

fn push_all(backlog: &mut Backlog, range: std::ops::RangeInclusive<i64>) {
    for ts in range {
        backlog.push(&sample(ts)).unwrap();
    }
}

/// The segment files, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    segment::list(dir)
        .unwrap()
        .into_iter()
        .map(|id| segment::path(dir, id))
        .collect()
}

/// `(offset, seq, is_head)` of every record in a segment file, which must be whole records.
fn records(path: &Path) -> Vec<(usize, u64, bool)> {
    let bytes = fs::read(path).unwrap();
    assert!(bytes.starts_with(MAGIC));
    let mut at = MAGIC.len();
    let mut found = Vec::new();
    while let Ok(record) = record::decode(&bytes[at..]) {
        found.push((at, record.seq, record.is_head()));
        at += record.size();
    }
    assert_eq!(at, bytes.len(), "{} ends in a whole record", path.display());
    found
}

/// The segment holding the sample with `seq`, and where that record starts.
fn find_sample(dir: &Path, seq: u64) -> (PathBuf, usize) {
    for path in segments(dir) {
        let scan = segment::scan(&fs::read(&path).unwrap());
        if let Some((_, at)) = scan.samples.into_iter().find(|(s, _)| *s == seq) {
            return (path, at as usize);
        }
    }
    panic!("no sample {seq} in {}", dir.display());
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    let mut file = OpenOptions::new().append(true).open(path).unwrap();
    file.write_all(bytes).unwrap();
}

fn overwrite(path: &Path, at: usize, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, at as u64).unwrap();
}

#[test]
fn samples_survive_a_reopen_in_order_with_their_content() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 100);
    push_all(&mut backlog, 1..=5);
    drop(backlog);

    let mut backlog = open(dir.path(), 100);
    assert_eq!(backlog.recovered().samples, 5);
    let batch = backlog.peek_batch(10);
    assert_eq!(batch.samples, (1..=5).map(sample).collect::<Vec<_>>());
    backlog.push(&sample(6)).unwrap();
    // A crash: nothing is synced at drop.
    std::mem::forget(backlog);

    let mut backlog = open(dir.path(), 100);
    assert_eq!(waiting(&mut backlog), [1, 2, 3, 4, 5, 6]);
    assert_eq!(backlog.recovered().corrupt, 0);
    assert_eq!(backlog.recovered().torn_bytes, 0);
    // Sequence numbers went on from the first run: 0..=4, then 5.
    find_sample(dir.path(), 5);
}

#[test]
fn removed_samples_stay_removed_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 100);
    push_all(&mut backlog, 1..=5);
    let batch = backlog.peek_batch(3);
    assert_eq!(timestamps(&batch.samples), [1, 2, 3]);
    assert_eq!(backlog.len(), 5, "peeking removes nothing");
    assert_eq!(backlog.remove_batch(&batch), 3);
    assert_eq!(backlog.remove_batch(&batch), 0, "a batch is removed once");
    // The removal is written at once (synced later): a crash of the process keeps it.
    std::mem::forget(backlog);

    let mut backlog = open(dir.path(), 100);
    assert_eq!(waiting(&mut backlog), [4, 5]);
    let batch = backlog.peek_batch(10);
    assert_eq!(backlog.remove_batch(&batch), 2);
    drop(backlog);

    let mut backlog = open(dir.path(), 100);
    assert!(backlog.is_empty());
    assert!(backlog.peek_batch(10).is_empty());
    // Everything was sent: only the new segment is left, and numbering goes on above.
    assert_eq!(segments(dir.path()).len(), 1);
    backlog.push(&sample(6)).unwrap();
    drop(backlog);
    find_sample(dir.path(), 5);
    assert_eq!(waiting(&mut open(dir.path(), 100)), [6]);
}

#[test]
fn a_torn_last_record_is_cut_off_and_nothing_before_it_is_lost() {
    let mut torn = Vec::new();
    record::encode(4, &serde_json::to_vec(&sample(5)).unwrap(), &mut torn);
    // Cut inside the length, inside the header, just after it, and one byte short.
    for cut in [2, 11, record::HEADER_LEN + 1, torn.len() - 1] {
        let dir = tempfile::tempdir().unwrap();
        let mut backlog = open(dir.path(), 100);
        push_all(&mut backlog, 1..=4);
        std::mem::forget(backlog);
        let last = segments(dir.path()).pop().unwrap();
        let whole = fs::metadata(&last).unwrap().len();
        append_bytes(&last, &torn[..cut]);

        let mut backlog = open(dir.path(), 100);
        assert_eq!(waiting(&mut backlog), [1, 2, 3, 4], "cut at {cut}");
        assert_eq!(backlog.recovered().torn_bytes, cut as u64);
        assert_eq!(backlog.recovered().corrupt, 0);
        assert_eq!(
            fs::metadata(&last).unwrap().len(),
            whole,
            "the tail is gone"
        );
        backlog.push(&sample(5)).unwrap();
        drop(backlog);

        let mut backlog = open(dir.path(), 100);
        assert_eq!(waiting(&mut backlog), [1, 2, 3, 4, 5]);
        assert_eq!(backlog.recovered().torn_bytes, 0, "repaired for good");
    }
}

#[test]
fn a_garbage_tail_is_cut_off_and_nothing_before_it_is_lost() {
    let pseudo_random: Vec<u8> = (0u32..300)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    for garbage in [
        vec![0u8; 4096],
        vec![0xab; 100],
        pseudo_random,
        b"{\"ti".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut backlog = open(dir.path(), 100);
        push_all(&mut backlog, 1..=3);
        std::mem::forget(backlog);
        let last = segments(dir.path()).pop().unwrap();
        append_bytes(&last, &garbage);

        let mut backlog = open(dir.path(), 100);
        assert_eq!(waiting(&mut backlog), [1, 2, 3]);
        assert_eq!(backlog.recovered().torn_bytes, garbage.len() as u64);
        records(&last);
    }
}

#[test]
fn a_corrupt_record_in_the_middle_is_skipped_and_counted() {
    // A flipped payload bit, a length beyond the limit, a length a little short, zeros.
    let damages: [(&str, usize, &[u8]); 4] = [
        ("payload", record::HEADER_LEN + 5, b"#"),
        ("length", 0, &[0xff, 0xff, 0xff, 0x7f]),
        ("short length", 0, &[3, 0, 0, 0]),
        ("zeros", 0, &[0; 40]),
    ];
    for (what, at, bytes) in damages {
        let dir = tempfile::tempdir().unwrap();
        let mut backlog = open(dir.path(), 100);
        push_all(&mut backlog, 1..=5);
        drop(backlog);
        let (path, record_at) = find_sample(dir.path(), 2);
        overwrite(&path, record_at + at, bytes);

        let mut backlog = open(dir.path(), 100);
        assert_eq!(waiting(&mut backlog), [1, 2, 4, 5], "{what}");
        assert_eq!(backlog.recovered().corrupt, 1, "{what}");
        assert_eq!(backlog.corrupt(), 1, "{what}");
        assert_eq!(backlog.recovered().torn_bytes, 0, "{what}");
        // Sending goes on past it.
        let batch = backlog.peek_batch(10);
        assert_eq!(backlog.remove_batch(&batch), 4);
    }
}

#[test]
fn damage_after_opening_is_skipped_when_the_batch_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 100);
    push_all(&mut backlog, 1..=4);
    // Sample 2 (seq 1) is damaged after the scan.
    let (path, at) = find_sample(dir.path(), 1);
    overwrite(&path, at + record::HEADER_LEN + 3, b"#");

    assert_eq!(timestamps(&backlog.peek_batch(10).samples), [1, 3, 4]);
    assert_eq!(backlog.corrupt(), 1);
    assert_eq!(backlog.len(), 3);
    let batch = backlog.peek_batch(1);
    assert_eq!(backlog.remove_batch(&batch), 1);
    // The oldest waiting sample (3, seq 2) is damaged now: a batch of one skips it rather than
    // coming back empty while a good sample waits.
    let (path, at) = find_sample(dir.path(), 2);
    overwrite(&path, at + record::HEADER_LEN + 3, b"#");
    assert_eq!(timestamps(&backlog.peek_batch(1).samples), [4]);
    assert_eq!(backlog.corrupt(), 2);
    assert_eq!(backlog.len(), 1);
}

#[test]
fn a_segment_is_deleted_only_once_everything_in_it_was_sent() {
    let dir = tempfile::tempdir().unwrap();
    // Tiny segments: every sample starts a new one.
    let options = Options {
        capacity: 100,
        segment_bytes: 1,
    };
    let mut backlog = Backlog::open_with(dir.path(), options).unwrap();
    push_all(&mut backlog, 1..=6);
    assert_eq!(
        segments(dir.path()).len(),
        6,
        "the empty first segment went"
    );
    let batch = backlog.peek_batch(4);
    assert_eq!(segments(dir.path()).len(), 6, "reading deletes nothing");
    assert_eq!(backlog.remove_batch(&batch), 4);

    let left = segments(dir.path());
    assert_eq!(left.len(), 2, "{left:?}");
    // The record that allowed the deletion is on disk, in the newest segment.
    let newest = records(left.last().unwrap());
    assert!(
        newest.iter().any(|(_, seq, head)| *head && *seq >= 4),
        "{newest:?}"
    );
    std::mem::forget(backlog);

    let mut backlog = Backlog::open_with(dir.path(), options).unwrap();
    assert_eq!(waiting(&mut backlog), [5, 6]);
    let batch = backlog.peek_batch(1);
    backlog.remove_batch(&batch);
    assert_eq!(segments(dir.path()).len(), 2, "5's segment went, 6's stays");
    assert_eq!(waiting(&mut backlog), [6]);
}

#[test]
fn batches_are_read_across_segments_oldest_first() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        capacity: 1000,
        segment_bytes: 300,
    };
    let mut backlog = Backlog::open_with(dir.path(), options).unwrap();
    push_all(&mut backlog, 1..=50);
    assert!(segments(dir.path()).len() > 10);
    drop(backlog);
    let mut backlog = Backlog::open_with(dir.path(), options).unwrap();
    // Sending in batches of 7 while new samples keep coming: the old ones go first.
    let mut sent = Vec::new();
    let mut new = 1001..=1005;
    while !backlog.is_empty() {
        let batch = backlog.peek_batch(7);
        assert!((1..=7).contains(&batch.len()), "{}", batch.len());
        sent.extend(timestamps(&batch.samples));
        backlog.remove_batch(&batch);
        if let Some(ts) = new.next() {
            backlog.push(&sample(ts)).unwrap();
        }
    }
    let expected: Vec<i64> = (1..=50).chain(1001..=1005).collect();
    assert_eq!(sent, expected);
    assert_eq!(segments(dir.path()).len(), 1, "sent segments went");
}

#[test]
fn segments_without_samples_do_not_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    for _ in 0..10 {
        drop(open(dir.path(), 100));
    }
    assert_eq!(segments(dir.path()).len(), 1);
    let mut backlog = open(dir.path(), 100);
    push_all(&mut backlog, 1..=3);
    drop(backlog);
    for _ in 0..5 {
        drop(open(dir.path(), 100));
    }
    assert_eq!(segments(dir.path()).len(), 2);
    assert_eq!(waiting(&mut open(dir.path(), 100)), [1, 2, 3]);
}

#[test]
fn a_segment_cut_short_at_creation_is_removed_and_strangers_are_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 100);
    push_all(&mut backlog, 1..=2);
    drop(backlog);
    let ids = segment::list(dir.path()).unwrap();
    let next = ids.last().unwrap() + 1;
    fs::write(segment::path(dir.path(), next), &MAGIC[..3]).unwrap();
    fs::write(segment::path(dir.path(), next + 1), b"not a segment at all").unwrap();
    fs::write(dir.path().join("notes.txt"), b"left alone").unwrap();
    // A segment that cannot be read (here: a directory) is left for the next start.
    fs::create_dir(segment::path(dir.path(), next + 2)).unwrap();

    let mut backlog = open(dir.path(), 100);
    assert_eq!(waiting(&mut backlog), [1, 2]);
    assert!(!segment::path(dir.path(), next).exists());
    assert!(
        segment::path(dir.path(), next + 1)
            .with_extension("corrupt")
            .exists()
    );
    assert!(dir.path().join("notes.txt").exists());
    assert!(segment::path(dir.path(), next + 2).is_dir());
    backlog.push(&sample(3)).unwrap();
    drop(backlog);
    assert_eq!(waiting(&mut open(dir.path(), 100)), [1, 2, 3]);
}

#[test]
fn a_full_backlog_drops_the_oldest_durably_and_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 3);
    let dropped: Vec<bool> = (1..=5)
        .map(|ts| backlog.push(&sample(ts)).unwrap())
        .collect();
    assert_eq!(dropped, [false, false, false, true, true]);
    assert_eq!(backlog.len(), 3);
    assert_eq!(backlog.dropped(), 2);
    assert_eq!(waiting(&mut backlog), [3, 4, 5]);
    std::mem::forget(backlog);

    // The drops were synced with the samples that caused them: they stay dropped.
    let mut backlog = open(dir.path(), 3);
    assert_eq!(waiting(&mut backlog), [3, 4, 5]);
    assert_eq!(backlog.dropped(), 0, "counted per run");
    drop(backlog);

    // A lower bound at the next start drops the oldest beyond it.
    let mut backlog = open(dir.path(), 2);
    assert_eq!(waiting(&mut backlog), [4, 5]);
    assert_eq!(backlog.recovered().dropped, 1);
    assert_eq!(backlog.dropped(), 1);
    drop(backlog);
    assert_eq!(waiting(&mut open(dir.path(), 10)), [4, 5]);
}

#[test]
fn drops_during_an_in_flight_batch_never_remove_newer_samples() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 4);
    push_all(&mut backlog, 1..=4);
    let batch = backlog.peek_batch(3); // 1, 2, 3 in flight
    backlog.push(&sample(5)).unwrap(); // drops 1
    backlog.push(&sample(6)).unwrap(); // drops 2
    assert_eq!(
        backlog.remove_batch(&batch),
        1,
        "only 3 is left of the batch"
    );
    assert_eq!(waiting(&mut backlog), [4, 5, 6]);

    let batch = backlog.peek_batch(2); // 4, 5
    push_all(&mut backlog, 7..=10); // 7 fits; 8, 9 and 10 drop 4, 5 and 6
    assert_eq!(backlog.remove_batch(&batch), 0);
    assert_eq!(waiting(&mut backlog), [7, 8, 9, 10]);
    assert_eq!(backlog.dropped(), 5);
    drop(backlog);
    assert_eq!(waiting(&mut open(dir.path(), 4)), [7, 8, 9, 10]);
}

#[test]
fn capacity_is_at_least_one() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 0);
    push_all(&mut backlog, 1..=2);
    assert_eq!(waiting(&mut backlog), [2]);
    assert_eq!(backlog.capacity(), 1);
}

#[test]
fn the_index_takes_about_eight_bytes_a_sample() {
    let dir = tempfile::tempdir().unwrap();
    let mut backlog = open(dir.path(), 10_000);
    push_all(&mut backlog, 1..=1000);
    drop(backlog);
    // Reopened, the index is built at its exact size.
    let backlog = open(dir.path(), 10_000);
    assert_eq!(backlog.len(), 1000);
    let bytes = backlog.index_bytes();
    assert!((8000..12_000).contains(&bytes), "{bytes} bytes");
}
