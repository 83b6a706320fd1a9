//! Limits of the agent ↔ primary API that both sides must agree on: how many samples, and how
//! many bytes, one request may carry.
//!
//! The primary refuses more than [`MAX_SAMPLES_PER_PUSH`] samples with 422 and a body over
//! [`MAX_BODY_BYTES`] with 413; the agent sends at most [`AGENT_BATCH`] samples per push (and
//! halves its batch on a 413), so a well-behaved agent is never refused for the count.

/// The most samples one `POST /api/v1/vitals` may carry; more answer 422.
pub const MAX_SAMPLES_PER_PUSH: usize = 1000;

/// The most samples the agent puts in one push: an agent catching up after an outage sends its
/// backlog in batches of this many. At most [`MAX_SAMPLES_PER_PUSH`] (checked at compile
/// time), so a batch is never refused for its count; one too large in bytes (a 413) makes the
/// agent halve its batch.
pub const AGENT_BATCH: usize = 500;

/// The largest request body the primary reads (1 MiB); a larger one answers 413.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The longest string of a node's info, in bytes: a hostname, an OS name, an address. The
/// primary refuses a longer one (422 naming the field).
pub const MAX_INFO_STRING_BYTES: usize = 256;

/// The most IPv4 (and, apart, IPv6) addresses one interface of a node's info may list; the
/// collector keeps the first ones, so a host with many prefixes is not refused.
pub const MAX_ADDRESSES_PER_INTERFACE: usize = 16;

const _: () = assert!(
    AGENT_BATCH <= MAX_SAMPLES_PER_PUSH,
    "the agent's batch must be accepted by the primary"
);
const _: () = assert!(AGENT_BATCH > 0);
