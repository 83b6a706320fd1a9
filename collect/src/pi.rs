//! Raspberry Pi specifics: the board model from the device tree and the firmware's throttling
//! word. Both are absent on other hosts, which is not worth a warning. The power supply and
//! fan over an interval are in [`power`](super::power), which shares the file readers here.

use std::path::{Path, PathBuf};

use pivitals_common::Throttling;

use super::files::{ReadError, numbered_entries, read_parsed, read_trimmed};
use super::warn_once::WarnOnce;

/// Written by the Raspberry Pi firmware driver as hex, with or without `0x`. Removed from
/// Raspberry Pi kernels in March 2025 (raspberrypi/linux pull request 6697, 6.12 kernels).
pub(crate) const GET_THROTTLED: &str = "sys/devices/platform/soc/soc:firmware/get_throttled";

/// The board model, e.g. `Raspberry Pi 4 Model B Rev 1.4`, from `ROOT/proc/device-tree/model`
/// (a NUL-terminated string); None when the host has no device tree model.
pub(crate) fn read_board_model(root: &Path) -> Result<Option<String>, ReadError> {
    match read_trimmed(&root.join("proc/device-tree/model")) {
        Ok(model) => Ok(Some(model).filter(|m| !m.is_empty())),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The throttling word from `get_throttled`; without that file, the `rpi_volt` hwmon's
/// under-voltage alarm (which only knows "under-voltage now", bit 0x1). None on other hosts.
pub(crate) fn read_throttling(root: &Path) -> Result<Option<Throttling>, ReadError> {
    let firmware = read_parsed(&root.join(GET_THROTTLED), parse_throttled);
    let firmware_error = match firmware {
        Ok(raw) => return Ok(Some(Throttling { raw })),
        Err(e) => e,
    };
    match read_rpi_volt_alarm(root) {
        Ok(Some(throttling)) => Ok(Some(throttling)),
        Ok(None) if firmware_error.is_not_found() => Ok(None),
        Ok(None) => Err(firmware_error),
        Err(hwmon_error) if firmware_error.is_not_found() => Err(hwmon_error),
        Err(_) => Err(firmware_error),
    }
}

/// `0x50005`, `0X50005` or `50005` → 0x50005.
pub(crate) fn parse_throttled(content: &str) -> Option<u32> {
    let hex = content
        .strip_prefix("0x")
        .or_else(|| content.strip_prefix("0X"))
        .unwrap_or(content);
    u32::from_str_radix(hex, 16).ok()
}

/// `in0_lcrit_alarm` of the hwmon named `rpi_volt`, as a throttling word.
fn read_rpi_volt_alarm(root: &Path) -> Result<Option<Throttling>, ReadError> {
    let Some(hwmon) = find_hwmon(root, "rpi_volt")? else {
        return Ok(None);
    };
    let alarm = read_parsed(&hwmon.join("in0_lcrit_alarm"), parse_alarm)?;
    Ok(Some(Throttling {
        raw: if alarm { 0x1 } else { 0 },
    }))
}

/// An hwmon alarm file: `0` or `1`.
pub(crate) fn parse_alarm(content: &str) -> Option<bool> {
    match content {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

/// The first `ROOT/sys/class/hwmon/hwmonN` whose `name` file reads `name`; None without one.
/// The numbers change between boots, so hwmons are found by name, never by number.
pub(crate) fn find_hwmon(root: &Path, name: &str) -> Result<Option<PathBuf>, ReadError> {
    let class = root.join("sys/class/hwmon");
    let hwmons = match numbered_entries(&class, "hwmon") {
        Ok(hwmons) => hwmons,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(ReadError::Io {
                path: class,
                source,
            });
        }
    };
    Ok(hwmons
        .into_iter()
        .map(|(_, hwmon)| hwmon)
        .find(|hwmon| read_trimmed(&hwmon.join("name")).is_ok_and(|found| found == name)))
}

/// The Pi families, each warning once when its file exists but cannot be read.
#[derive(Debug, Default)]
pub(crate) struct PiFamilies {
    throttling: WarnOnce,
    board: WarnOnce,
}

impl PiFamilies {
    pub(crate) fn throttling(&mut self, root: &Path) -> Option<Throttling> {
        self.throttling
            .ok("throttling", read_throttling(root))
            .flatten()
    }

    pub(crate) fn board_model(&mut self, root: &Path) -> Option<String> {
        self.board
            .ok("board model", read_board_model(root))
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    #[test]
    fn reads_a_pi4s_model_and_throttling() {
        let tree = Tree::pi4();
        assert_eq!(
            read_board_model(tree.root())
                .expect("fixture model")
                .as_deref(),
            Some("Raspberry Pi 4 Model B Rev 1.4")
        );
        let throttling = read_throttling(tree.root()).expect("fixture get_throttled");
        assert_eq!(throttling, Some(Throttling { raw: 0x50005 }));
    }

    #[test]
    fn get_throttled_without_0x_is_hex_too() {
        let tree = Tree::pi4();
        tree.write(GET_THROTTLED, "50005\n");
        let throttling = read_throttling(tree.root()).expect("fixture get_throttled");
        assert_eq!(throttling, Some(Throttling { raw: 0x50005 }));
        tree.write(GET_THROTTLED, "0\n");
        let throttling = read_throttling(tree.root()).expect("fixture get_throttled");
        assert_eq!(throttling, Some(Throttling { raw: 0 }));
    }

    #[test]
    fn without_get_throttled_the_rpi_volt_alarm_tells_under_voltage() {
        let tree = Tree::pi4();
        tree.remove(GET_THROTTLED);
        tree.write("sys/class/hwmon/hwmon1/in0_lcrit_alarm", "0\n");
        let quiet = read_throttling(tree.root()).expect("fixture hwmon");
        assert_eq!(quiet, Some(Throttling { raw: 0 }));
        tree.write("sys/class/hwmon/hwmon1/in0_lcrit_alarm", "1\n");
        let alarm = read_throttling(tree.root())
            .expect("fixture hwmon")
            .expect("rpi_volt is there");
        assert!(alarm.under_voltage_now());
        assert_eq!(alarm.raw, 0x1);
    }

    #[test]
    fn garbage_in_get_throttled_is_an_error() {
        let tree = Tree::pi4();
        tree.write(GET_THROTTLED, "throttled!\n");
        tree.remove("sys/class/hwmon/hwmon1/in0_lcrit_alarm");
        let error = read_throttling(tree.root()).expect_err("garbage must not parse");
        assert!(error.to_string().contains("get_throttled"), "{error}");
        assert_eq!(PiFamilies::default().throttling(tree.root()), None);
    }

    #[test]
    fn a_host_that_is_no_pi_has_neither() {
        let tree = Tree::empty();
        assert_eq!(
            read_board_model(tree.root()).expect("absence is fine"),
            None
        );
        assert_eq!(read_throttling(tree.root()).expect("absence is fine"), None);
        tree.write("sys/class/hwmon/hwmon0/name", "coretemp\n");
        assert_eq!(read_throttling(tree.root()).expect("absence is fine"), None);
        let mut families = PiFamilies::default();
        assert_eq!(families.board_model(tree.root()), None);
        assert_eq!(families.throttling(tree.root()), None);
    }
}
