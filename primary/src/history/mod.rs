//! Rollups: each node's history beyond the last hour, kept on disk so the dashboard can show
//! 1 h to 30 d on the embedded default (no InfluxDB).
//!
//! **What is kept.** For every accepted sample (pushed, or taken by the self-monitor) nine
//! [`Series`] (CPU %, memory %, the hottest sensor, the fullest disk, load1, network rx/tx
//! and disk read/write bytes per second summed over interfaces and disks) are reduced to a
//! reading: the sample's mean and its lowest and highest 1-second value where the agent
//! sends them (`*_min`, `*_max`), else the mean. Readings accumulate into buckets of two
//! [`Resolution`]s: 1 minute, kept 7 days, and 10 minutes, kept 90 days. A bucket holds per
//! series the count, the mean (weighted by count), the lowest min and the highest max.
//!
//! **Where and when.** Buckets live in `DATA_DIR/rollups.redb` (redb), one table per
//! resolution keyed by (node, bucket start). New readings go to buckets in memory
//! ("pending"): a reading to its minute only (to its ten minutes when it is older than the
//! minutes' keep), the ten-minute buckets being folded from the pending minutes when they are
//! written or answered, so a node pushing every minute holds one pending bucket. Once a
//! minute, [`WRITE_PAST_THE_MINUTE`] after it ([`WRITE_EVERY`], sooner when [`MAX_PENDING`]
//! buckets wait), one write transaction merges every pending bucket into its stored one (a
//! sample arriving late or out of order just merges into its bucket) and deletes the buckets
//! past their keep.
//! Answers read the stored buckets and add the pending ones, so the minute being filled is
//! shown.
//!
//! **What a crash loses.** At most the minute of readings not yet written (on SIGTERM they
//! are written before exit). This is display data only: the vitals themselves are durable in
//! the spool and then the archive or InfluxDB.
//!
//! **Who deletes.** The minute writer prunes by age; deleting a node deletes its buckets,
//! pending and stored, under the same lock as the writer, so a write in flight cannot bring
//! them back.
//!
//! **Bounds.** A bucket is [`BUCKET_BYTES`] (144) bytes of value plus its key (node name + 8
//! bytes); with redb's pages and free space the file measured about 260 bytes a bucket (the
//! `the_file_stays_near_260_bytes_a_bucket` test fills 90 days for three nodes). A node pushing at least once
//! a minute fills 10,080 one-minute and 12,960 ten-minute buckets: 23,040 buckets, about
//! 6 MB. Size ≈ nodes × 23,040 × 260 B: about 300 MB for 50 nodes, 12 GB for 2,000 (at that
//! size, configure InfluxDB). A node pushing every 10 minutes needs a tenth of the minute
//! buckets. Pending buckets in memory are bounded by [`MAX_PENDING`].
//!
//! **With InfluxDB configured** no rollups are kept: InfluxDB holds every sample for 365
//! days and answers the ranged history itself ([`crate::storage::influx`]); a second copy
//! would double the disk writes of a primary that is often a Pi on an SD card, and an answer
//! from a coarser fallback while InfluxDB is down would hide the outage the dashboard should
//! show (it answers 502 instead).
//!
//! Files: `series` (what a sample says per series), `bucket` (accumulators and their stored
//! form), `range` (ranges, windows of at most 300 steps, folding), `store` (redb), `rollups`
//! (the shared handle and its timer), `error`.

mod bucket;
mod error;
mod range;
mod rollups;
mod series;
mod store;

pub use bucket::{Accumulator, BUCKET_BYTES, Bucket};
pub use error::RollupError;
pub use range::{
    ALLOWED_RANGES, MAX_POINTS, MIN_STEP_MS, Point, Range, SeriesPoints, UnknownRange, Window, fold,
};
pub use rollups::{MAX_PENDING, Rollups, WRITE_EVERY, WRITE_PAST_THE_MINUTE};
pub use series::{Reading, SERIES_COUNT, Series, readings};
pub use store::{BucketKey, Resolution};
