//! Durations in settings are written as people write them (`10s`, `5m`, `1h 30m`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserializes a human-readable duration; the error names the text and the expected form.
pub fn duration<'de, D: Deserializer<'de>>(de: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(de)?;
    humantime::parse_duration(text.trim())
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a duration like 10s: {e}")))
}
