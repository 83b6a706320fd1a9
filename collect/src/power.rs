//! A Raspberry Pi's power supply and cooling over one interval, as a person can act on them:
//! is it under-voltage now, for how long and how often during the interval, what has happened
//! since boot, and how fast the fan turns.
//!
//! | Field | Kernel file (under the collector's root) |
//! |---|---|
//! | `under_voltage_now` | `sys/class/hwmon/hwmonN/in0_lcrit_alarm` of the hwmon named `rpi_volt` (driver `raspberrypi-hwmon`); without it, bit 0x1 of `sys/devices/platform/soc/soc:firmware/get_throttled` |
//! | `under_voltage_seconds`, `under_voltage_events` | the same file, polled by [`PowerCollector::poll`] on every tick |
//! | `under_voltage_since_boot` (0x10000), `frequency_capped_since_boot` (0x20000), `throttled_since_boot` (0x40000), `soft_temp_limit_since_boot` (0x80000) | the sticky bits of `get_throttled` (hex); kernels up to 6.6 only |
//! | `fan_rpm`, `fan_pwm` | `fan1_input` (RPM) and `pwm1` (0–255) of the hwmon named `pwmfan` (driver `pwm-fan`: a Pi 5's Active Cooler at `/sys/devices/platform/cooling_fan`) |
//!
//! **What the files mean.** `raspberrypi-hwmon` asks the firmware for the throttling word
//! every 2 s, clearing its sticky bits each time, and shows the under-voltage sticky bit as
//! `in0_lcrit_alarm`: 1 means "under-voltage at some moment of the last poll period". It
//! clears itself, so a sample every minute would miss most events: hence the poll on every
//! tick. `get_throttled` was removed from Raspberry Pi kernels in March 2025 (raspberrypi/linux
//! pull request 6697); where it is gone, the since-boot fields are absent.
//!
//! **Counting.** Each poll that reads under-voltage adds the time since the previous poll
//! (the poll period, 1 s by default, up to the interval when `sample_every` is set so; the
//! first poll counts one second) to the interval's under-voltage time, which is reported in
//! whole seconds, rounded. An event is a poll reading under-voltage after one that did not
//! (or after none): an under-voltage that lasts across a sample counts once, in the interval
//! where it began. [`PowerCollector::power`] reports the counts and starts a new interval;
//! without a poll since the last sample they are absent rather than zero.
//!
//! **Cost.** The hwmon directories are found by name once a minute (their numbers change
//! between boots); a poll reads one small file.
//!
//! **Not collected.** The Pi 5's PMIC rails (`EXT5V_V` and the other `vcgencmd
//! pmic_read_adc` readings) come from the firmware through the VideoCore mailbox
//! (`/dev/vcio`); no kernel driver exposes them in sysfs, so there is no file to read. The
//! RP1 ADC hwmon (`rp1_adc`) measures other things. A Pi 4's PoE HAT fan (`rpipoefan`) has no
//! tachometer and is not reported.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pivitals_common::PowerVitals;

use super::files::{ReadError, read_parsed};
use super::pi::{GET_THROTTLED, find_hwmon, parse_alarm, parse_throttled};
use super::warn_once::WarnOnce;

/// How long found hwmon directories are trusted before they are looked for again.
const FIND_FILES_EVERY: Duration = Duration::from_secs(60);

/// The period counted for the first poll, which has no previous one: the default tick.
const FIRST_POLL_PERIOD: Duration = Duration::from_secs(1);

/// The sticky bits of the firmware's throttling word.
const UNDER_VOLTAGE_SINCE_BOOT: u32 = 0x1_0000;
const FREQUENCY_CAPPED_SINCE_BOOT: u32 = 0x2_0000;
const THROTTLED_SINCE_BOOT: u32 = 0x4_0000;
const SOFT_TEMP_LIMIT_SINCE_BOOT: u32 = 0x8_0000;

/// Polls under-voltage on every tick and reports the interval at every sample; warns once
/// when a file exists but cannot be read or parsed.
#[derive(Debug, Default)]
pub(crate) struct PowerCollector {
    /// The files found, and when they were looked for.
    files: Option<(Instant, PowerFiles)>,
    last_poll: Option<Instant>,
    /// What the previous poll read, to count an event only when under-voltage begins.
    was_under_voltage: bool,
    /// Counted since the last sample; None until a poll reads the under-voltage file.
    interval: Option<Interval>,
    warn: WarnOnce,
}

#[derive(Debug, Default)]
struct Interval {
    under_voltage: Duration,
    events: u64,
}

/// The power files of one host.
#[derive(Debug, Clone, Default, PartialEq)]
struct PowerFiles {
    under_voltage: Option<UnderVoltageFile>,
    get_throttled: Option<PathBuf>,
    /// The `pwmfan` hwmon directory.
    fan: Option<PathBuf>,
}

/// Where "under-voltage now" is read.
#[derive(Debug, Clone, PartialEq)]
enum UnderVoltageFile {
    /// `in0_lcrit_alarm` of `rpi_volt`: `0` or `1`.
    Alarm(PathBuf),
    /// `get_throttled`: bit 0x1 of the word.
    Throttled(PathBuf),
}

impl UnderVoltageFile {
    fn read(&self) -> Result<bool, ReadError> {
        match self {
            Self::Alarm(path) => read_parsed(path, parse_alarm),
            Self::Throttled(path) => read_parsed(path, parse_throttled).map(|raw| raw & 0x1 != 0),
        }
    }
}

/// Looks for the power files under `root`; a host without them has none, which is no error.
fn find_power_files(root: &Path) -> Result<PowerFiles, ReadError> {
    let get_throttled = Some(root.join(GET_THROTTLED)).filter(|path| path.is_file());
    let alarm = find_hwmon(root, "rpi_volt")?
        .map(|hwmon| hwmon.join("in0_lcrit_alarm"))
        .filter(|path| path.is_file());
    let under_voltage = match (alarm, &get_throttled) {
        (Some(alarm), _) => Some(UnderVoltageFile::Alarm(alarm)),
        (None, Some(path)) => Some(UnderVoltageFile::Throttled(path.clone())),
        (None, None) => None,
    };
    Ok(PowerFiles {
        under_voltage,
        get_throttled,
        fan: find_hwmon(root, "pwmfan")?,
    })
}

/// A decimal count such as `2953`.
fn parse_count(content: &str) -> Option<u64> {
    content.parse().ok()
}

impl PowerCollector {
    /// Reads under-voltage once (one small file) and counts it for the time since the
    /// previous poll; call on every tick, at `now`.
    pub(crate) fn poll(&mut self, root: &Path, now: Instant) {
        let period = self.last_poll.map_or(FIRST_POLL_PERIOD, |last| {
            now.saturating_duration_since(last)
        });
        self.last_poll = Some(now);
        let Some(reading) = self
            .files(root, now)
            .under_voltage
            .as_ref()
            .map(UnderVoltageFile::read)
        else {
            return;
        };
        let Some(under_voltage) = self.field(reading) else {
            return;
        };
        let interval = self.interval.get_or_insert_with(Interval::default);
        if under_voltage {
            interval.under_voltage += period;
            if !self.was_under_voltage {
                interval.events += 1;
            }
        }
        self.was_under_voltage = under_voltage;
    }

    /// The power vitals now, with the interval's counts, which start again; None on a host
    /// without any of the files.
    pub(crate) fn power(&mut self, root: &Path) -> Option<PowerVitals> {
        self.power_at(root, Instant::now())
    }

    fn power_at(&mut self, root: &Path, now: Instant) -> Option<PowerVitals> {
        let files = self.files(root, now).clone();
        let interval = self.interval.take();
        let mut power = PowerVitals::default();
        if let Some(file) = &files.under_voltage {
            power.under_voltage_now = self.field(file.read());
            if let Some(interval) = interval {
                let millis = interval.under_voltage.as_millis().saturating_add(500);
                power.under_voltage_seconds =
                    Some(u64::try_from(millis / 1000).unwrap_or(u64::MAX));
                power.under_voltage_events = Some(interval.events);
            }
        }
        if let Some(path) = &files.get_throttled
            && let Some(raw) = self.field(read_parsed(path, parse_throttled))
        {
            power.under_voltage_since_boot = Some(raw & UNDER_VOLTAGE_SINCE_BOOT != 0);
            power.frequency_capped_since_boot = Some(raw & FREQUENCY_CAPPED_SINCE_BOOT != 0);
            power.throttled_since_boot = Some(raw & THROTTLED_SINCE_BOOT != 0);
            power.soft_temp_limit_since_boot = Some(raw & SOFT_TEMP_LIMIT_SINCE_BOOT != 0);
        }
        if let Some(fan) = &files.fan {
            power.fan_rpm = self.field(read_parsed(&fan.join("fan1_input"), parse_count));
            power.fan_pwm = self.field(read_parsed(&fan.join("pwm1"), parse_count));
        }
        Some(power).filter(|power| *power != PowerVitals::default())
    }

    /// The files, looked for again when a minute has passed since the last look.
    fn files(&mut self, root: &Path, now: Instant) -> &PowerFiles {
        let stale = self.files.as_ref().is_none_or(|(found_at, _)| {
            now.saturating_duration_since(*found_at) >= FIND_FILES_EVERY
        });
        if stale {
            let found = find_power_files(root);
            let found = self.warn.ok("power", found).unwrap_or_default();
            self.files = Some((now, found));
        }
        &self
            .files
            .get_or_insert_with(|| (now, PowerFiles::default()))
            .1
    }

    /// The value read, or None: quietly when the file has gone (the files are looked for
    /// again at the next call), with a warning (once) when it cannot be read or parsed.
    fn field<T>(&mut self, read: Result<T, ReadError>) -> Option<T> {
        match read {
            Ok(value) => Some(value),
            Err(e) if e.is_not_found() => {
                self.files = None;
                None
            }
            Err(e) => {
                self.warn.warn("power", &e);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    const HWMON1_ALARM: &str = "sys/class/hwmon/hwmon1/in0_lcrit_alarm";
    const PI5_ALARM: &str = "sys/class/hwmon/hwmon2/in0_lcrit_alarm";

    /// Polls once a second from `start`, writing each of `alarms` to `file` before its poll.
    fn poll_alarms(
        collector: &mut PowerCollector,
        tree: &Tree,
        file: &str,
        start: Instant,
        alarms: &[&str],
    ) -> Instant {
        let mut now = start;
        for alarm in alarms {
            tree.write(file, format!("{alarm}\n"));
            collector.poll(tree.root(), now);
            now += Duration::from_secs(1);
        }
        now
    }

    #[test]
    fn a_pi3_on_a_new_kernel_has_only_the_rpi_volt_alarm() {
        let tree = Tree::pi3();
        let mut collector = PowerCollector::default();
        let start = Instant::now();
        poll_alarms(
            &mut collector,
            &tree,
            HWMON1_ALARM,
            start,
            &["0", "1", "1", "0", "1", "0"],
        );
        assert_eq!(
            collector.power_at(tree.root(), start + Duration::from_secs(6)),
            Some(PowerVitals {
                under_voltage_now: Some(false),
                under_voltage_seconds: Some(3),
                under_voltage_events: Some(2),
                ..Default::default()
            })
        );
    }

    #[test]
    fn a_pi4_has_the_alarm_and_the_firmware_word() {
        let tree = Tree::pi4();
        let mut collector = PowerCollector::default();
        let start = Instant::now();
        poll_alarms(&mut collector, &tree, HWMON1_ALARM, start, &["1", "1"]);
        // get_throttled 0x50005: under-voltage and throttled now and since boot.
        let expected = PowerVitals {
            under_voltage_now: Some(true),
            under_voltage_seconds: Some(2),
            under_voltage_events: Some(1),
            under_voltage_since_boot: Some(true),
            frequency_capped_since_boot: Some(false),
            throttled_since_boot: Some(true),
            soft_temp_limit_since_boot: Some(false),
            ..Default::default()
        };
        let now = start + Duration::from_secs(2);
        assert_eq!(collector.power_at(tree.root(), now), Some(expected));

        // Still under-voltage in the next interval: seconds again, but no new event.
        poll_alarms(
            &mut collector,
            &tree,
            HWMON1_ALARM,
            now,
            &["1", "1", "1", "0"],
        );
        let next = collector
            .power_at(tree.root(), now + Duration::from_secs(4))
            .expect("a Pi 4 has power files");
        assert_eq!(next.under_voltage_seconds, Some(3));
        assert_eq!(next.under_voltage_events, Some(0));
        assert_eq!(next.under_voltage_now, Some(false));
    }

    #[test]
    fn a_pi5_has_the_alarm_and_the_fan_but_no_since_boot_bits() {
        let tree = Tree::pi5();
        let mut collector = PowerCollector::default();
        let start = Instant::now();
        poll_alarms(&mut collector, &tree, PI5_ALARM, start, &["0", "0", "0"]);
        assert_eq!(
            collector.power_at(tree.root(), start + Duration::from_secs(3)),
            Some(PowerVitals {
                under_voltage_now: Some(false),
                under_voltage_seconds: Some(0),
                under_voltage_events: Some(0),
                fan_rpm: Some(2953),
                fan_pwm: Some(75),
                ..Default::default()
            })
        );
    }

    #[test]
    fn without_rpi_volt_get_throttled_tells_under_voltage_now() {
        // A 4.14 kernel: get_throttled, but no raspberrypi-hwmon yet.
        let tree = Tree::pi4();
        tree.remove(HWMON1_ALARM);
        let mut collector = PowerCollector::default();
        let start = Instant::now();
        for (i, word) in ["0x50005", "0x50000", "0x50005"].into_iter().enumerate() {
            tree.write(GET_THROTTLED, format!("{word}\n"));
            collector.poll(tree.root(), start + Duration::from_secs(i as u64));
        }
        let power = collector
            .power_at(tree.root(), start + Duration::from_secs(3))
            .expect("get_throttled is there");
        assert_eq!(power.under_voltage_now, Some(true));
        assert_eq!(power.under_voltage_seconds, Some(2));
        assert_eq!(power.under_voltage_events, Some(2));
        assert_eq!(power.under_voltage_since_boot, Some(true));
    }

    #[test]
    fn each_poll_counts_its_own_period() {
        let tree = Tree::pi3();
        let mut collector = PowerCollector::default();
        let start = Instant::now();
        tree.write(HWMON1_ALARM, "1\n");
        // The first poll counts one second; then polls every 15 s (sample_every = 15s).
        for step in 0..4 {
            collector.poll(tree.root(), start + Duration::from_secs(15 * step));
        }
        let power = collector
            .power_at(tree.root(), start + Duration::from_secs(60))
            .expect("rpi_volt is there");
        assert_eq!(power.under_voltage_seconds, Some(46));
        assert_eq!(power.under_voltage_events, Some(1));
    }

    #[test]
    fn without_polls_the_interval_counts_are_absent() {
        let tree = Tree::pi4();
        let mut collector = PowerCollector::default();
        let power = collector
            .power(tree.root())
            .expect("a Pi 4 has power files");
        assert_eq!(power.under_voltage_now, Some(true));
        assert_eq!(power.under_voltage_seconds, None);
        assert_eq!(power.under_voltage_events, None);
    }

    #[test]
    fn files_are_looked_for_once_a_minute() {
        let tree = Tree::empty();
        let mut collector = PowerCollector::default();
        let start = Instant::now();
        collector.poll(tree.root(), start);
        // rpi_volt appears (a module loaded late): not seen until a minute has passed.
        tree.write("sys/class/hwmon/hwmon0/name", "rpi_volt\n");
        tree.write("sys/class/hwmon/hwmon0/in0_lcrit_alarm", "1\n");
        collector.poll(tree.root(), start + Duration::from_secs(1));
        assert_eq!(collector.interval.as_ref().map(|i| i.events), None);
        collector.poll(tree.root(), start + Duration::from_secs(60));
        assert_eq!(collector.interval.as_ref().map(|i| i.events), Some(1));
    }

    #[test]
    fn a_garbled_file_is_left_out() {
        let tree = Tree::pi5();
        tree.write("sys/class/hwmon/hwmon0/fan1_input", "fast\n");
        let mut collector = PowerCollector::default();
        let power = collector.power(tree.root()).expect("rpi_volt is there");
        assert_eq!(power.fan_rpm, None);
        assert_eq!(power.fan_pwm, Some(75));
        assert!(!collector.warn.warn("power", &"again"), "already warned");
    }

    #[test]
    fn a_machine_that_is_no_pi_has_no_power_vitals_and_no_warning() {
        for tree in [Tree::x86(), Tree::empty()] {
            assert_eq!(
                find_power_files(tree.root()).expect("absence is fine"),
                PowerFiles::default()
            );
            let mut collector = PowerCollector::default();
            let start = Instant::now();
            collector.poll(tree.root(), start);
            collector.poll(tree.root(), start + Duration::from_secs(1));
            assert_eq!(collector.power(tree.root()), None);
            assert!(
                collector.warn.warn("power", &"first"),
                "nothing warned before"
            );
        }
    }
}
