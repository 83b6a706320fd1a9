//! The embedded default storage: line protocol appended to daily files
//! `DATA_DIR/archive/YYYY-MM-DD.lp` (UTC), each append synced to disk; files older than the
//! retention are removed. A user can load them later with `influx write --file`.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

pub struct Archive {
    dir: PathBuf,
    retention: Duration,
    /// The day whose prune already ran, so pruning happens once a day.
    pruned_on: Mutex<Option<String>>,
}

/// `YYYY-MM-DD` of a time, in UTC.
fn day_of(time: SystemTime) -> String {
    let mut text = humantime::format_rfc3339_seconds(time).to_string();
    text.truncate(10);
    text
}

impl Archive {
    pub fn open(dir: &Path, retention_days: u32) -> io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            retention: Duration::from_secs(u64::from(retention_days) * 86_400),
            pruned_on: Mutex::new(None),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends newline-terminated lines to today's file and syncs it.
    pub fn append(&self, lines: &[u8]) -> io::Result<()> {
        let now = SystemTime::now();
        let today = day_of(now);
        let path = self.dir.join(format!("{today}.lp"));
        let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
        file.write_all(lines)?;
        file.sync_data()?;
        let mut pruned_on = self.pruned_on.lock().unwrap_or_else(|e| e.into_inner());
        if pruned_on.as_deref() != Some(today.as_str()) {
            self.prune(now)?;
            *pruned_on = Some(today);
        }
        Ok(())
    }

    /// Removes daily files whose day is older than the retention; returns how many.
    pub fn prune(&self, now: SystemTime) -> io::Result<usize> {
        let oldest_kept = day_of(
            now.checked_sub(self.retention)
                .unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let mut removed = 0;
        for entry in fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(day) = name.to_str().and_then(|n| n.strip_suffix(".lp")) else {
                continue;
            };
            // Only files this archive writes: YYYY-MM-DD.lp.
            let is_day = day.len() == 10
                && day.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                });
            if is_day && day < oldest_kept.as_str() {
                fs::remove_file(self.dir.join(&name))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_to_todays_file() {
        let dir = tempfile::tempdir().unwrap();
        let archive = Archive::open(dir.path(), 365).unwrap();
        archive.append(b"cpu,node=a usage_percent=1 1\n").unwrap();
        archive.append(b"cpu,node=a usage_percent=2 2\n").unwrap();
        let today = day_of(SystemTime::now());
        let text = fs::read_to_string(dir.path().join(format!("{today}.lp"))).unwrap();
        assert_eq!(
            text,
            "cpu,node=a usage_percent=1 1\ncpu,node=a usage_percent=2 2\n"
        );
    }

    #[test]
    fn prunes_only_day_files_older_than_the_retention() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "2024-01-01.lp",
            "2025-06-01.lp",
            "2025-06-02.lp",
            "notes.lp",
            "x.txt",
        ] {
            fs::write(dir.path().join(name), "x").unwrap();
        }
        let archive = Archive::open(dir.path(), 365).unwrap();
        // 2026-06-02T00:00:00Z: 365 days earlier is 2025-06-02.
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_358_400);
        assert_eq!(day_of(now), "2026-06-02");
        assert_eq!(archive.prune(now).unwrap(), 2);
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["2025-06-02.lp", "notes.lp", "x.txt"]);
    }
}
