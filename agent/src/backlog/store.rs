//! The backlog handle: opening (scan, repair, bound), appending, reading batches, removing
//! what the primary answered for, and reclaiming segments. See the [module doc](super) for the
//! format and the durability rules this follows.

use std::fs::{self, DirBuilder, File};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};

use pivitals_common::VitalsPayload;
use tracing::{info, warn};

use super::index::{Index, Segment};
use super::record::{self, HEADER_LEN, MAX_PAYLOAD};
use super::segment::{self, MAGIC};

/// A new segment is started once the current one holds this many bytes.
pub const SEGMENT_BYTES: u64 = 1 << 20;
/// The largest segment size [`Options`] take (offsets are `u32`).
const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// How a backlog is opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Samples kept at most; the oldest are dropped beyond it. At least 1.
    pub capacity: usize,
    /// A new segment starts once the current one holds this many bytes; space comes back a
    /// segment at a time. At most 1 GiB.
    pub segment_bytes: u64,
}

impl Options {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            segment_bytes: SEGMENT_BYTES,
        }
    }
}

/// What [`Backlog::open`] found on disk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Samples waiting from before, after the repairs and the bound.
    pub samples: usize,
    /// Stretches skipped because they are not whole records (each at least one record).
    pub corrupt: u64,
    /// Bytes cut off the ends of segments: records torn by a crash or a power cut.
    pub torn_bytes: u64,
    /// The oldest samples dropped because more were waiting than the capacity allows.
    pub dropped: u64,
}

/// Samples not yet answered for by the primary, oldest first, on disk in a directory.
#[derive(Debug)]
pub struct Backlog {
    dir: PathBuf,
    capacity: usize,
    segment_bytes: u64,
    index: Index,
    /// The last segment, open for reading and writing.
    writer: File,
    /// A write to the last segment failed: whatever reached it, the next append starts a new
    /// segment rather than writing after it.
    broken: bool,
    /// The older segment read last, kept open for the next batch.
    reader: Option<(u64, File)>,
    /// Every sample below this has left the backlog (in memory).
    head: u64,
    /// The highest head record written to the last segment.
    written_head: u64,
    /// The highest head record known to be synced.
    durable_head: u64,
    /// Something was written to the last segment since its last sync.
    unsynced: bool,
    next_seq: u64,
    dropped: u64,
    corrupt: u64,
    recovered: Recovered,
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
    /// Opens (or creates) the backlog in `dir` keeping at most `capacity` samples.
    pub fn open(dir: &Path, capacity: usize) -> io::Result<Self> {
        Self::open_with(dir, Options::new(capacity))
    }

    /// Opens (or creates) the backlog in `dir`: creates the directory (mode 0700) if needed,
    /// scans every segment (checksums; torn tails cut off, corrupt records skipped, both
    /// logged), drops the oldest samples beyond the capacity, and starts a new segment.
    /// Errors are I/O errors on the directory or its files.
    pub fn open_with(dir: &Path, options: Options) -> io::Result<Self> {
        let capacity = options.capacity.max(1);
        let segment_bytes = options.segment_bytes.clamp(1, MAX_SEGMENT_BYTES);
        DirBuilder::new().recursive(true).mode(0o700).create(dir)?;

        let mut recovered = Recovered::default();
        let mut index = Index::default();
        let mut head = 0;
        let mut highest: Option<u64> = None;
        let mut last_id = None;
        for id in segment::list(dir)? {
            last_id = Some(id);
            let Some(scanned) = load_segment(dir, id, &mut recovered) else {
                continue;
            };
            head = head.max(scanned.scan.head.unwrap_or(0));
            index.add_segment(Segment::new(id, 0, scanned.scan.valid_end as u64));
            for (seq, offset) in scanned.scan.samples {
                if highest.is_some_and(|h| seq <= h) || !index.push(seq, offset) {
                    warn!(
                        "backlog segment {}: sample {seq} at byte {offset} is out of order; skipped",
                        scanned.path.display()
                    );
                    recovered.corrupt += 1;
                    continue;
                }
                highest = Some(seq);
            }
        }
        let next_seq = highest.map_or(head, |h| head.max(h + 1));
        index.pop_below(head);
        while index.len() > capacity {
            let Some(oldest) = index.oldest() else { break };
            head = oldest + 1;
            index.pop_below(head);
            recovered.dropped += 1;
        }
        if recovered.dropped > 0 {
            warn!(
                "the backlog held more than {capacity} samples (PIVITALS_BACKLOG_MAX): dropped the {} oldest",
                recovered.dropped
            );
        }
        recovered.samples = index.len();

        let id = last_id.map_or(0, |id| id + 1);
        let (writer, size) = segment::create(dir, id, head)?;
        index.add_segment(Segment::new(id, next_seq, size));
        let mut backlog = Self {
            dir: dir.to_owned(),
            capacity,
            segment_bytes,
            index,
            writer,
            broken: false,
            reader: None,
            head,
            written_head: head,
            durable_head: head,
            unsynced: false,
            next_seq,
            dropped: recovered.dropped,
            corrupt: recovered.corrupt,
            recovered,
        };
        backlog.reclaim();
        Ok(backlog)
    }

    /// Appends a sample; when the backlog is full the oldest sample is dropped first (in the
    /// same write), and this returns true.
    ///
    /// The write is synced, with everything before it, when other samples were already waiting
    /// (the primary is behind or away, so this one may wait long). A sample appended to an
    /// empty backlog is only written: it survives the agent being killed (it is in the kernel's
    /// page cache), it is pushed at once, and if that push fails the sender calls
    /// [`sync`](Self::sync). So a healthy agent never syncs, and what waits for the primary is
    /// synced.
    ///
    /// On an error the sample is not in the backlog and counts as [dropped](Self::dropped);
    /// the backlog stays usable (the next append starts a new segment).
    pub fn push(&mut self, sample: &VitalsPayload) -> io::Result<bool> {
        let result = self.append(sample);
        if result.is_err() {
            self.dropped += 1;
        }
        result
    }

    fn append(&mut self, sample: &VitalsPayload) -> io::Result<bool> {
        let payload = serde_json::to_vec(sample).map_err(io::Error::other)?;
        if payload.len() > MAX_PAYLOAD {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "a sample of {} bytes is larger than the backlog takes ({MAX_PAYLOAD})",
                    payload.len()
                ),
            ));
        }
        if self.needs_new_segment() {
            self.start_segment()?;
        }
        let mut bytes = Vec::with_capacity(2 * HEADER_LEN + payload.len());
        let sync = self.index.len() > 0;
        let mut dropped = false;
        while self.index.len() >= self.capacity {
            let Some(oldest) = self.index.oldest() else {
                break;
            };
            self.head = oldest + 1;
            self.index.pop_below(self.head);
            self.dropped += 1;
            dropped = true;
        }
        if dropped {
            record::encode_head(self.head, &mut bytes);
        }
        let seq = self.next_seq;
        let offset = self.current_size() + bytes.len() as u64;
        record::encode(seq, &payload, &mut bytes);
        self.write(&bytes)?;
        if dropped {
            self.written_head = self.head;
        }
        if sync {
            if let Err(e) = self.writer.sync_data() {
                // What the failed sync left is unknown: take the record back out, and write
                // the next one to a new segment.
                let _ = self.writer.set_len(offset);
                if let Some(last) = self.index.last_mut() {
                    last.size = offset;
                }
                self.broken = true;
                return Err(e);
            }
            self.unsynced = false;
            self.durable_head = self.written_head;
        }
        let added = self.index.push(seq, offset as u32);
        debug_assert!(added, "a new sample always fits the last segment");
        self.next_seq += 1;
        if dropped {
            self.reclaim();
        }
        Ok(dropped)
    }

    /// A copy of the oldest `max` samples (fewer if the backlog holds fewer), oldest first,
    /// read from disk. A sample that no longer reads back (damaged since the start, or an I/O
    /// error) is left out, counted as [corrupt](Self::corrupt) and logged.
    pub fn peek_batch(&mut self, max: usize) -> Batch {
        loop {
            let (batch, lost) = self.read_oldest(max);
            if lost == 0 || !batch.is_empty() || self.index.len() == 0 {
                return batch;
            }
        }
    }

    /// One try of [`Self::peek_batch`]; also returns how many samples were found unreadable
    /// (and removed from the index).
    fn read_oldest(&mut self, max: usize) -> (Batch, usize) {
        let mut samples = Vec::with_capacity(max.min(self.index.len()));
        let mut end_seq = self.head;
        let mut unreadable: Vec<u64> = Vec::new();
        let mut first_error: Option<String> = None;
        let mut position = 0;
        while samples.len() + unreadable.len() < max {
            let Some(part) = self.index.segments().get(position) else {
                break;
            };
            position += 1;
            let take = (max - samples.len() - unreadable.len()).min(part.waiting());
            if take == 0 {
                continue;
            }
            let wanted: Vec<(u64, u32)> = part.entries().take(take).collect();
            let start = u64::from(wanted[0].1);
            let end = part.offset(take).map_or(part.size, u64::from).max(start);
            let id = part.id;
            let bytes = self.read_range(id, start, end);
            for (seq, offset) in wanted {
                end_seq = seq + 1;
                let found = match &bytes {
                    Ok(bytes) => decode_sample(bytes, (u64::from(offset) - start) as usize, seq),
                    Err(e) => Err(e.to_string()),
                };
                match found {
                    Ok(sample) => samples.push(sample),
                    Err(why) => {
                        first_error.get_or_insert_with(|| {
                            format!("{}: {why}", segment::path(&self.dir, id).display())
                        });
                        unreadable.push(seq);
                    }
                }
            }
        }
        for seq in &unreadable {
            self.index.remove(*seq);
        }
        let lost = unreadable.len();
        if lost > 0 {
            self.corrupt += lost as u64;
            warn!(
                "{lost} samples in the backlog no longer read back and are skipped ({})",
                first_error.unwrap_or_default()
            );
        }
        (Batch { samples, end_seq }, lost)
    }

    fn read_range(&mut self, id: u64, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let mut bytes = vec![0; (end - start) as usize];
        let is_last = self.index.last().is_some_and(|s| s.id == id);
        if is_last {
            self.writer.read_exact_at(&mut bytes, start)?;
            return Ok(bytes);
        }
        if self.reader.as_ref().is_none_or(|(open, _)| *open != id) {
            self.reader = None;
            self.reader = Some((id, File::open(segment::path(&self.dir, id))?));
        }
        if let Some((_, file)) = &self.reader {
            file.read_exact_at(&mut bytes, start)?;
        }
        Ok(bytes)
    }

    /// Removes what is still here of `batch` (everything older than its end), now that the
    /// primary answered for it; returns how many samples that removed. The removal is written
    /// at once but synced lazily (see the module doc).
    pub fn remove_batch(&mut self, batch: &Batch) -> usize {
        if batch.end_seq <= self.head {
            return 0;
        }
        self.head = batch.end_seq;
        let removed = self.index.pop_below(self.head);
        if !self.broken {
            let mut bytes = Vec::with_capacity(HEADER_LEN);
            record::encode_head(self.head, &mut bytes);
            match self.write(&bytes) {
                Ok(()) => self.written_head = self.head,
                Err(e) => warn!(
                    "cannot record in the backlog that {removed} samples were sent: {e}; they may be sent again after a restart"
                ),
            }
        }
        self.reclaim();
        removed
    }

    /// Makes everything written so far durable: samples appended to an empty backlog and
    /// removals. Called by the sender when a push fails and when the agent stops; dropping
    /// the backlog does it too, logging a failure. Does nothing when nothing is unsynced.
    pub fn sync(&mut self) -> io::Result<()> {
        if self.unsynced {
            self.writer.sync_data()?;
            self.unsynced = false;
            self.durable_head = self.written_head;
        }
        Ok(())
    }

    /// Samples waiting.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.len() == 0
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Samples dropped since the backlog was opened: the oldest, because it was full, and new
    /// ones that could not be written.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Samples skipped since the backlog was opened because their bytes were damaged.
    pub fn corrupt(&self) -> u64 {
        self.corrupt
    }

    /// What opening found.
    pub fn recovered(&self) -> Recovered {
        self.recovered
    }

    /// The directory the backlog lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Heap memory of the index: eight bytes per waiting sample plus a little per segment.
    pub fn index_bytes(&self) -> usize {
        self.index.heap_bytes()
    }

    fn current_size(&self) -> u64 {
        self.index.last().map_or(0, |s| s.size)
    }

    fn needs_new_segment(&self) -> bool {
        let Some(last) = self.index.last() else {
            return true;
        };
        self.broken || last.size >= self.segment_bytes || !last.fits(self.next_seq)
    }

    /// Appends `bytes` to the last segment (not synced).
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let size = self.current_size();
        if let Err(e) = self.writer.write_all_at(bytes, size) {
            let _ = self.writer.set_len(size);
            self.broken = true;
            return Err(e);
        }
        if let Some(last) = self.index.last_mut() {
            last.size = size + bytes.len() as u64;
        }
        self.unsynced = true;
        Ok(())
    }

    /// Seals the last segment and starts a new one, which begins with the head record.
    fn start_segment(&mut self) -> io::Result<()> {
        if !self.broken {
            // Samples appended to an empty backlog and head records can be unsynced: the
            // samples must not be left behind unsynced in a segment no longer written.
            let _ = self.writer.sync_data();
        }
        let id = self.index.last().map_or(0, |s| s.id + 1);
        let (writer, size) = segment::create(&self.dir, id, self.head)?;
        self.writer = writer;
        self.broken = false;
        self.unsynced = false;
        self.written_head = self.head;
        self.durable_head = self.head;
        self.index
            .add_segment(Segment::new(id, self.next_seq, size));
        self.reclaim();
        Ok(())
    }

    /// Deletes the segments (never the last) whose samples have all left the backlog, once
    /// the head record saying so is durable in the last segment.
    fn reclaim(&mut self) {
        if deletable(&self.index, self.head).is_empty() {
            return;
        }
        if let Err(e) = self.sync() {
            warn!("cannot sync the backlog, so no sent segment is deleted yet: {e}");
            return;
        }
        for id in deletable(&self.index, self.durable_head) {
            self.index.remove_segment(id);
            if self.reader.as_ref().is_some_and(|(open, _)| *open == id) {
                self.reader = None;
            }
            let path = segment::path(&self.dir, id);
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => warn!(
                    "cannot delete the sent backlog segment {}: {e}",
                    path.display()
                ),
            }
        }
    }
}

impl Drop for Backlog {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            warn!("cannot sync the backlog: {e}; sent samples may be sent again after a restart");
        }
    }
}

/// The segments (never the last) that hold no sample at or above `head`.
fn deletable(index: &Index, head: u64) -> Vec<u64> {
    let segments = index.segments();
    segments
        .iter()
        .take(segments.len().saturating_sub(1))
        .filter(|s| s.last_seq.is_none_or(|last| last < head))
        .map(|s| s.id)
        .collect()
}

/// The sample record `seq` at `at` in `bytes`.
fn decode_sample(bytes: &[u8], at: usize, seq: u64) -> Result<VitalsPayload, String> {
    let found = bytes
        .get(at..)
        .ok_or("beyond the end")
        .and_then(|rest| record::decode(rest).map_err(|_| "not a whole record"))?;
    if found.seq != seq || found.is_head() {
        return Err(format!("sample {seq} is not where the index says"));
    }
    serde_json::from_slice(found.payload).map_err(|e| format!("sample {seq}: {e}"))
}

/// A segment read and checked at open.
struct Loaded {
    path: PathBuf,
    scan: segment::Scan,
}

/// Reads and scans segment `id`, repairing it: a torn tail is cut off (and the cut synced), a
/// segment torn while it was created is removed, a file that is not a segment is renamed
/// `*.corrupt`. Returns `None` for the last two and for a segment that cannot be read, which is
/// logged and left alone (this start goes on without it; the next one tries again). A repair
/// that fails is logged too: the segment is only read from now on, so its tail does no harm.
fn load_segment(dir: &Path, id: u64, recovered: &mut Recovered) -> Option<Loaded> {
    let path = segment::path(dir, id);
    let bytes = match fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) => {
            warn!(
                "cannot read the backlog segment {}: {e}; its samples wait for the next start",
                path.display()
            );
            return None;
        }
    };
    if bytes.len() < MAGIC.len() && MAGIC.starts_with(&bytes) {
        info!(
            "removing the backlog segment {}: its creation was cut short",
            path.display()
        );
        if let Err(e) = fs::remove_file(&path) {
            warn!("cannot remove {}: {e}", path.display());
        }
        return None;
    }
    if !bytes.starts_with(MAGIC) || u32::try_from(bytes.len()).is_err() {
        let aside = path.with_extension("corrupt");
        warn!(
            "{} is not a backlog segment; renaming it to {}",
            path.display(),
            aside.display()
        );
        if let Err(e) = fs::rename(&path, &aside) {
            warn!("cannot rename {}: {e}", path.display());
        }
        return None;
    }
    let scan = segment::scan(&bytes);
    for stretch in &scan.corrupt {
        warn!(
            "backlog segment {}: bytes {}..{} are not a whole record (damaged on disk?); skipped",
            path.display(),
            stretch.start,
            stretch.end
        );
    }
    recovered.corrupt += scan.corrupt.len() as u64;
    let torn = bytes.len() - scan.valid_end;
    if torn > 0 {
        warn!(
            "backlog segment {}: the last {torn} bytes are not a whole record (a write cut short by a crash or power cut); cutting them off",
            path.display()
        );
        let cut = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .and_then(|file| {
                file.set_len(scan.valid_end as u64)?;
                file.sync_all()
            });
        if let Err(e) = cut {
            warn!("cannot cut the tail off {}: {e}", path.display());
        }
        recovered.torn_bytes += torn as u64;
    }
    Some(Loaded { path, scan })
}
