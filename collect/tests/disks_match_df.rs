//! The disks a collector reports match what `df` (GNU coreutils) shows on this machine: size,
//! used and use% for every mount both list, and the inode counts of `df -i`.

use std::collections::HashMap;
use std::process::Command;

use pivitals_collect::Collector;
use pivitals_common::DiskVitals;

/// One `df` row: (size, used, available, use%) or, for `df -i`, (inodes, used, free, use%);
/// None where `df` shows `-`.
#[derive(Debug, Clone, Copy)]
struct Row {
    total: Option<u64>,
    used: Option<u64>,
    percent: Option<u64>,
}

/// Runs `df` with `args`, whose last output column is the mount point, so that mount points
/// with spaces parse: the first four columns are numbers, the rest of the line is the target.
fn df(args: &[&str]) -> HashMap<String, Row> {
    let output = Command::new("df")
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|error| panic!("`df` must run on this machine (coreutils): {error}"));
    // df exits 1 when it could not read some filesystem (a FUSE mount of another user) and
    // still prints the others: keep those, say why.
    if !output.status.success() {
        eprintln!(
            "df {args:?}: {}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8(output.stdout).expect("df prints text with LC_ALL=C");
    let number = |field: &str| field.trim_end_matches('%').parse::<u64>().ok();
    let rows: HashMap<String, Row> = stdout
        .lines()
        .skip(1)
        .filter_map(|line| {
            let mut rest = line.trim_start();
            let mut fields = Vec::new();
            for _ in 0..4 {
                let end = rest.find(char::is_whitespace)?;
                fields.push(&rest[..end]);
                rest = rest[end..].trim_start();
            }
            let row = Row {
                total: number(fields[0]),
                used: number(fields[1]),
                percent: number(fields[3]),
            };
            Some((rest.to_owned(), row))
        })
        .collect();
    assert!(
        !rows.is_empty(),
        "df {args:?} listed nothing:\n{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    rows
}

/// `df`'s sizes in bytes and its inode counts, by mount point.
fn read_df() -> (HashMap<String, Row>, HashMap<String, Row>) {
    let sizes = df(&["-B1", "--output=size,used,avail,pcent,target"]);
    // The inode columns need no `-i` (GNU df refuses `-i` with `--output`).
    let inodes = df(&["--output=itotal,iused,iavail,ipcent,target"]);
    (sizes, inodes)
}

/// Whether two readings of a used count agree: within 1 % (the criterion), and a
/// little more for almost empty filesystems, which a single write moves by more than 1 %.
fn close(ours: u64, df: u64, slack: u64) -> bool {
    ours.abs_diff(df) <= (df / 100).max(slack)
}

/// What differs between our disks and `df`'s rows, one line each; also the number of mounts
/// both list.
fn mismatches(
    disks: &[DiskVitals],
    (sizes, inodes): &(HashMap<String, Row>, HashMap<String, Row>),
) -> (Vec<String>, usize) {
    let mut found = Vec::new();
    let mut compared = 0;
    for disk in disks {
        let Some(df) = sizes.get(&disk.mount) else {
            continue;
        };
        compared += 1;
        let ours_percent = disk.used_percent().map(|p| p as u64);
        println!(
            "{}: ours size {} used {} use% {:?} | df size {:?} used {:?} use% {:?}",
            disk.mount,
            disk.total_bytes,
            disk.used_bytes,
            ours_percent,
            df.total,
            df.used,
            df.percent
        );
        if Some(disk.total_bytes) != df.total {
            found.push(format!(
                "{}: size {} vs df {:?}",
                disk.mount, disk.total_bytes, df.total
            ));
        }
        if !df
            .used
            .is_some_and(|used| close(disk.used_bytes, used, 1 << 20))
        {
            found.push(format!(
                "{}: used {} vs df {:?}",
                disk.mount, disk.used_bytes, df.used
            ));
        }
        if ours_percent != df.percent {
            found.push(format!(
                "{}: use% {ours_percent:?} vs df {:?}",
                disk.mount, df.percent
            ));
        }
        let Some(df) = inodes.get(&disk.mount) else {
            found.push(format!("{}: not in df -i", disk.mount));
            continue;
        };
        // df shows 0 inodes (and use% `-`) where the filesystem has no inode table.
        let df_total = df.total.filter(|total| *total > 0);
        let ours_percent = disk.inodes_used_percent().map(|p| p as u64);
        println!(
            "{}: ours inodes {:?} used {:?} use% {:?} | df inodes {:?} used {:?} use% {:?}",
            disk.mount,
            disk.inodes_total,
            disk.inodes_used(),
            ours_percent,
            df_total,
            df.used,
            df.percent
        );
        if disk.inodes_total != df_total {
            found.push(format!(
                "{}: inodes {:?} vs df {df_total:?}",
                disk.mount, disk.inodes_total
            ));
        }
        if df_total.is_some() {
            let used_close = disk
                .inodes_used()
                .zip(df.used)
                .is_some_and(|(ours, df)| close(ours, df, 100));
            if !used_close {
                found.push(format!(
                    "{}: inodes used {:?} vs df {:?}",
                    disk.mount,
                    disk.inodes_used(),
                    df.used
                ));
            }
            if ours_percent != df.percent {
                found.push(format!(
                    "{}: inodes use% {ours_percent:?} vs df {:?}",
                    disk.mount, df.percent
                ));
            }
        }
    }
    (found, compared)
}

#[test]
fn disk_size_used_and_use_percent_match_df() {
    let mut collector = Collector::new("/");
    let disks = collector.sample().disks;
    let (found, compared) = mismatches(&disks, &read_df());
    assert!(
        compared > 0,
        "no mount is listed by both: ours {disks:#?}, df {:#?}",
        read_df().0
    );
    if found.is_empty() {
        return;
    }
    // Files are written while the test runs (other tests, builds on the same disk): between
    // our `statvfs` and df's the used count moves, and near a whole percent the use% may step
    // across it. One more pair of readings, taken as close together, must then agree.
    eprintln!("first reading differs from df, reading again: {found:#?}");
    let disks = collector.sample().disks;
    let (found, _) = mismatches(&disks, &read_df());
    assert!(found.is_empty(), "ours differs from df: {found:#?}");
}
