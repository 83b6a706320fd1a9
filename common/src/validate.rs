//! What node names and labels may look like.
//!
//! Names and labels become InfluxDB tags and file names, so they are checked strictly at the
//! edge (the primary answers 422) instead of being escaped later:
//! - node name: `^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`;
//! - label key: `^[A-Za-z][A-Za-z0-9_]{0,31}$`, and not one of the tag keys pivitals writes
//!   itself ([`RESERVED_TAG_KEYS`]);
//! - label value: `^[A-Za-z0-9._:/@+-]{1,64}$`;
//! - at most [`MAX_LABELS`] labels.

use thiserror::Error;

use crate::vitals::Labels;

/// Tag keys the encoder writes; a label may not shadow them.
pub const RESERVED_TAG_KEYS: &[&str] = &[
    "node",
    "mount",
    "device",
    "fstype",
    "interface",
    "sensor",
    "time",
];
pub const MAX_LABELS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum InvalidName {
    #[error("node name {0:?} must match ^[A-Za-z0-9][A-Za-z0-9._-]{{0,62}}$")]
    NodeName(String),
    #[error("label key {0:?} must match ^[A-Za-z][A-Za-z0-9_]{{0,31}}$")]
    LabelKey(String),
    #[error("label key {0:?} is reserved for a tag pivitals writes itself")]
    ReservedLabelKey(String),
    #[error("label value {value:?} of {key:?} must match ^[A-Za-z0-9._:/@+-]{{1,64}}$")]
    LabelValue { key: String, value: String },
    #[error("at most {MAX_LABELS} labels are allowed, got {0}")]
    TooManyLabels(usize),
    #[error("label {0:?} is not of the form key=value")]
    LabelSyntax(String),
}

pub fn node_name(name: &str) -> Result<(), InvalidName> {
    let bytes = name.as_bytes();
    let ok = matches!(bytes.first(), Some(b) if b.is_ascii_alphanumeric())
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(InvalidName::NodeName(name.to_owned()))
    }
}

pub fn labels(labels: &Labels) -> Result<(), InvalidName> {
    if labels.len() > MAX_LABELS {
        return Err(InvalidName::TooManyLabels(labels.len()));
    }
    for (key, value) in labels {
        let key_ok = matches!(key.as_bytes().first(), Some(b) if b.is_ascii_alphabetic())
            && key.len() <= 32
            && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !key_ok {
            return Err(InvalidName::LabelKey(key.clone()));
        }
        if RESERVED_TAG_KEYS.contains(&key.as_str()) {
            return Err(InvalidName::ReservedLabelKey(key.clone()));
        }
        let value_ok = !value.is_empty()
            && value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._:/@+-".contains(&b));
        if !value_ok {
            return Err(InvalidName::LabelValue {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    Ok(())
}

/// Parses `stack=2,role=worker` (as given in `PIVITALS_LABELS`) and validates the result.
pub fn parse_labels(text: &str) -> Result<Labels, InvalidName> {
    let mut parsed = Labels::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| InvalidName::LabelSyntax(pair.to_owned()))?;
        parsed.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    labels(&parsed)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_names() {
        for good in ["pi-01", "a", "rack2.node_3", &"x".repeat(63)] {
            assert_eq!(node_name(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            "-pi",
            ".pi",
            "pi 01",
            "pi\n01",
            "pi,01",
            "pi=1",
            "π",
            &"x".repeat(64),
        ] {
            assert!(node_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn labels_from_the_environment() {
        let parsed = parse_labels("stack=2, role=worker").unwrap();
        assert_eq!(parsed.get("stack").map(String::as_str), Some("2"));
        assert_eq!(parsed.get("role").map(String::as_str), Some("worker"));
        assert!(parse_labels("").unwrap().is_empty());
    }

    #[test]
    fn hostile_labels_are_refused() {
        assert!(matches!(
            parse_labels("stack"),
            Err(InvalidName::LabelSyntax(_))
        ));
        assert!(matches!(
            parse_labels("node=x"),
            Err(InvalidName::ReservedLabelKey(_))
        ));
        assert!(matches!(
            parse_labels("1a=x"),
            Err(InvalidName::LabelKey(_))
        ));
        assert!(matches!(
            parse_labels("a=x y"),
            Err(InvalidName::LabelValue { .. })
        ));
        assert!(matches!(
            parse_labels("a=x\nb"),
            Err(InvalidName::LabelValue { .. })
        ));
        assert!(matches!(
            parse_labels("a="),
            Err(InvalidName::LabelValue { .. })
        ));
        let many: Vec<String> = (0..17).map(|i| format!("k{i}=v")).collect();
        assert!(matches!(
            parse_labels(&many.join(",")),
            Err(InvalidName::TooManyLabels(17))
        ));
    }
}
