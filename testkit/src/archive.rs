//! The primary's archive as tests read it: the line-protocol files (`*.lp`) under
//! `<data dir>/archive`, filtered by measurement.

use std::path::Path;

/// The `measurement` lines of every archive file of the primary whose data are in `data_dir`;
/// none while it has written no file.
pub fn archived(data_dir: &Path, measurement: &str) -> Vec<String> {
    let prefix = format!("{measurement},");
    let Ok(entries) = std::fs::read_dir(data_dir.join("archive")) else {
        return Vec::new();
    };
    let mut lines = Vec::new();
    for entry in entries.map_while(Result::ok) {
        if entry.path().extension().is_some_and(|e| e == "lp") {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            lines.extend(
                text.lines()
                    .filter(|l| l.starts_with(&prefix))
                    .map(str::to_owned),
            );
        }
    }
    lines
}
