//! A primary's history as tests feed and read it over HTTP: pushing a node's samples (old
//! ones too; [`crate::actions::register`] registers the node) through `POST /api/v1/vitals`,
//! and asking `GET /api/v1/nodes/{name}/history?range=…` for the ranged answer.

use std::time::Duration;

use pivitals_common::VitalsPayload;
use serde_json::Value;

use crate::actions::json_request;
use crate::samples::push_body;

/// The series of a ranged history answer, in the order the contract lists them.
pub const HISTORY_SERIES: [&str; 9] = [
    "cpu_percent",
    "mem_percent",
    "temp_celsius",
    "disk_percent",
    "load1",
    "net_rx_bytes_per_second",
    "net_tx_bytes_per_second",
    "disk_read_bytes_per_second",
    "disk_write_bytes_per_second",
];

/// Bytes of samples a push carries at most: under the primary's 1 MiB body limit with room
/// for the rest of the body.
const PUSH_BYTES: usize = 960 * 1024;

/// Pushes a node may make at once before the primary's rate limit (a burst of ten, then one a
/// second for a 1 s node) wants them spaced.
const BURST: usize = 8;

/// Pushes `samples` (any number, any age) as the node of `token`, in pushes the primary
/// accepts: within its body limit and, after a burst, a little over a second apart.
pub fn push_samples(url: &str, token: &str, samples: &[VitalsPayload]) {
    for (i, batch) in batches_within(samples, PUSH_BYTES).into_iter().enumerate() {
        if i >= BURST {
            std::thread::sleep(Duration::from_millis(1100));
        }
        let (status, reply) = json_request(
            "POST",
            &format!("{url}/api/v1/vitals"),
            Some(token),
            &push_body(batch.to_vec()),
        );
        assert_eq!(status, 200, "{reply}");
    }
}

/// `samples` cut, in order, into runs whose JSON takes at most `bytes` (one sample each at
/// least).
fn batches_within(samples: &[VitalsPayload], bytes: usize) -> Vec<&[VitalsPayload]> {
    let mut batches = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, sample) in samples.iter().enumerate() {
        let one = serde_json::to_vec(sample).map_or(0, |json| json.len()) + 1;
        if i > start && size + one > bytes {
            batches.push(&samples[start..i]);
            (start, size) = (i, 0);
        }
        size += one;
    }
    if start < samples.len() {
        batches.push(&samples[start..]);
    }
    batches
}

/// `GET /api/v1/nodes/{node}/history?range={range}` without a token; the status and the
/// answer's JSON.
pub fn ranged_history(url: &str, node: &str, range: &str) -> (u16, Value) {
    json_request(
        "GET",
        &format!("{url}/api/v1/nodes/{node}/history?range={range}"),
        None,
        &Value::Null,
    )
}
