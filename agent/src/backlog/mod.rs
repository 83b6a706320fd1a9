//! Samples waiting for the primary, kept on disk in `STATE_DIR/backlog/` so that they survive
//! a restart or a crash of the agent, and, once the primary has failed to take them, a power
//! cut: an append-only log, bounded, sent oldest first.
//!
//! # Interface
//! - every sample gets a sequence number (`seq`, u64) when it is [`Backlog::push`]ed; numbers
//!   only grow, across restarts too;
//! - the sender reads a copy of the oldest samples with [`Backlog::peek_batch`] and, once the
//!   primary has accepted them (or refused them for good), removes them with
//!   [`Backlog::remove_batch`]. Nothing leaves the backlog before that, so a push that fails or
//!   is cancelled loses nothing, and a sample keeps the timestamp it was taken with;
//! - sampling goes on while a batch is in flight. If the backlog is full, [`Backlog::push`] drops
//!   the oldest sample even when it belongs to that batch; `remove_batch` works by sequence
//!   number, so it then removes only what is left of the batch and never a newer sample;
//! - [`Backlog::dropped`] counts samples lost to the bound (or to a failed write),
//!   [`Backlog::corrupt`] samples lost to damaged bytes, for the log and for tests.
//!
//! # Files
//! `backlog/` (mode 0700) holds *segments* named `{id:020}.seg` (ids grow by one; the name
//! sorts as the number), mode 0600. A segment is the 8 bytes `PIVBLOG1` followed by records,
//! each `[len u32 LE][crc32 u32 LE][seq u64 LE][payload]` (`record.rs`):
//! - `len` is the payload's length, at most 1 MiB; the CRC-32 (IEEE) covers `seq` and the
//!   payload;
//! - a **sample record** carries the sample's JSON (`VitalsPayload` as serde writes it; never
//!   empty) under its `seq`. Sample seqs grow within a segment and from one segment to the next;
//! - a **head record** has an empty payload; its `seq` is the *head*: every sample below it has
//!   left the backlog (the primary answered for it, or it was dropped). The head at open is the
//!   highest head record found; every segment starts with one.
//!
//! Only the agent touches the directory, through this module, one process at a time (not
//! enforced: two agents must not share a state directory):
//! - [`Backlog::open`] creates the directory, and starts a new segment at every start (so it
//!   never writes after a tail a crash may have torn);
//! - an append starts a new segment when the last one has reached 1 MiB ([`SEGMENT_BYTES`]);
//! - a segment is deleted when it is not the last one and all of its samples are below a head
//!   that is synced in the last segment (so the deletion can never lose the record saying it was
//!   allowed: the mistake behind Vector's disk-buffer crash loops was deleting data before the
//!   ledger was synced);
//! - at open, a segment shorter than the magic (its creation was cut short) is removed, and a
//!   file named like a segment that does not start with the magic is renamed `*.corrupt`; one
//!   that cannot be read is logged and left for the next start. Other files are ignored.
//!   Deleting the directory while the agent is stopped drops the backlog.
//!
//! # What is durable when
//! | event | on disk |
//! | --- | --- |
//! | [`push`](Backlog::push) to an empty backlog returns | the sample record, written (in the kernel's page cache: it survives the agent being killed, `kill -9` included) but not synced. The sender pushes it at once; if the primary does not take it, the sender calls [`sync`](Backlog::sync) before it waits. A healthy agent (every push answered at once) never syncs, which also spares an SD card one write a sample |
//! | [`push`](Backlog::push) to a backlog already holding samples returns | the sample record (and, if the backlog was full, the head record dropping the oldest, in the same write), synced with `fdatasync` together with everything written before it: while the primary is behind or away, every waiting sample is durable |
//! | [`sync`](Backlog::sync) returns | everything written so far: samples and head records. Called by the sender whenever the primary did not take what is waiting (a failed push or registration, before the sender waits), at stop, and on drop |
//! | [`remove_batch`](Backlog::remove_batch) | a 16-byte head record, written but not synced; the next synced append, a failed push, a new segment, a deletion or [`sync`](Backlog::sync) makes it durable. A crash before that only means the samples are sent again, which the primary's storage absorbs (same series and timestamp) |
//! | a new segment | the previous segment synced, then the magic and a head record, synced, and the directory synced, before anything is appended |
//! | a segment deleted | only after the head covering it is synced; the unlink itself is not synced (a segment that comes back after a power cut holds only samples below the head and is deleted again) |
//! | open repairs | a torn tail cut off and synced before the segment is used |
//!
//! So a power cut (not a crash of the agent: the page cache survives that) can lose only
//! samples appended to an empty backlog whose push was still in flight: the primary may or may
//! not have them, as with any sample taken just before a power cut.
//!
//! Nothing rewrites the log: space comes back a whole segment at a time. On disk the backlog
//! takes its waiting samples plus at most about two segments of sent ones (2 MiB).
//!
//! # Torn and corrupt records
//! Opening reads every segment and checks every record's length and checksum:
//! - bytes after the last whole record of a segment, where no plausible record follows (a
//!   record cut short by a crash or a power cut mid-append, or garbage after it), are a *torn
//!   tail*: cut off, logged with their size, counted in [`Recovered::torn_bytes`]. Everything
//!   before them is kept. Only a power cut tears a record (a killed process leaves its writes
//!   whole), and only an unsynced one: a sample whose push was in flight, which the primary may
//!   have taken;
//! - a stretch that is not a record but is followed by one (damage on the card, or an unsynced
//!   tail whose blocks reached the disk out of order) is skipped up to the next *plausible*
//!   record (it decodes, and its payload is empty or starts with `{`), logged with its byte
//!   range, and counted in [`Recovered::corrupt`]. Nothing else is lost;
//! - a sample that passed the scan but does not read back later (an I/O error, changed since) is
//!   skipped when a batch is read, counted in [`Backlog::corrupt`] and logged.
//!
//! After opening, the next `seq` is above every sample found and at least the head, so a
//! number is never given to two samples that could both reach the primary (a torn sample's
//! number is given again, but that sample was cut off, and nothing on disk refers to its number).
//!
//! # Bound and memory
//! At most `capacity` samples wait (`PIVITALS_BACKLOG_MAX`, by default 24 hours of samples);
//! an append to a full backlog first drops the oldest (a head record in the same write), and
//! opening drops the oldest beyond a capacity that was lowered. Memory holds only an index:
//! per waiting sample its seq (as a `u32` from its segment's base) and its offset, 8 bytes (a
//! full day at a 1 s interval, 86,400 samples, is 675 KiB), plus the batch being sent. Batches
//! are read from disk with one read per segment they touch. All I/O is synchronous and small;
//! it runs on the agent's one thread.

mod index;
mod record;
mod segment;
mod store;

pub use store::{Backlog, Batch, Options, Recovered, SEGMENT_BYTES};

#[cfg(test)]
mod tests;
