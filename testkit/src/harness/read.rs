//! Waiting for a condition, and reading what a primary (or InfluxDB) answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Polls `check` every 200 ms until it gives `Some`, or panics after `within` with `what`.
pub fn eventually<T>(what: &str, within: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `GET` a JSON document; anything but 200 fails the test.
pub fn get_json(url: &str) -> Value {
    let response = crate::http::get(url).unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status, 200, "GET {url}: {}", response.text());
    serde_json::from_str(&response.text()).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The status the primary at `primary_url` reports for `node`.
pub fn node_status(primary_url: &str, node: &str) -> String {
    let node = get_json(&format!("{primary_url}/api/v1/nodes/{node}"));
    node["status"].as_str().unwrap_or_default().to_owned()
}

/// The value of an unlabelled metric in Prometheus text; a missing one fails the test.
pub fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} missing from\n{text}"))
}

/// The `key=value` fields of the last line of `log` that contains `message` (the agent and
/// the primary log in that form); a missing line fails the test.
pub fn log_fields(log: &str, message: &str) -> HashMap<String, String> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(message))
        .unwrap_or_else(|| panic!("no {message:?} in the log:\n{log}"));
    line.split_whitespace()
        .filter_map(|token| token.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// The rows of the first series of an InfluxQL answer.
pub fn rows(answer: &Value) -> Vec<Vec<Value>> {
    answer["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| r.as_array().cloned().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn metric_reads_an_unlabelled_value_only() {
        let text = "# HELP x\npivitals_a{l=\"1\"} 5\npivitals_a 7\npivitals_ab 9\n";
        assert_eq!(metric(text, "pivitals_a"), 7);
    }

    #[test]
    fn log_fields_of_the_last_matching_line() {
        let log = "a stopped sent=1\nnoise x=2\na stopped sent=3 dropped=0\n";
        let fields = log_fields(log, "stopped");
        assert_eq!(
            (fields["sent"].as_str(), fields["dropped"].as_str()),
            ("3", "0")
        );
    }

    #[test]
    fn rows_of_the_first_series() {
        let answer = json!({"results": [{"series": [{"values": [["t", 1], ["u", 2]]}]}]});
        assert_eq!(
            rows(&answer),
            vec![vec![json!("t"), json!(1)], vec![json!("u"), json!(2)]]
        );
        assert!(rows(&json!({"results": [{}]})).is_empty());
    }
}
