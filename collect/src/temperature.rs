//! Temperatures in °C: the kernel's thermal zones under `ROOT/sys/class/thermal`, plus the
//! hwmon sensors sysinfo finds that no thermal zone already covers.

use std::path::{Path, PathBuf};

use pivitals_common::TemperatureVitals;
use sysinfo::Components;

use super::disks::RELIST_EVERY;
use super::files::{ReadError, numbered_entries, read_parsed, read_trimmed};
use super::warn_once::WarnOnce;

/// The `thermal_zoneN` directories under `ROOT/sys/class/thermal`, in zone order; none
/// without a thermal class.
fn list_thermal_zones(root: &Path) -> Result<Vec<(u64, PathBuf)>, ReadError> {
    let class = root.join("sys/class/thermal");
    match numbered_entries(&class, "thermal_zone") {
        Ok(zones) => Ok(zones),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(source) => Err(ReadError::Io {
            path: class,
            source,
        }),
    }
}

/// Every readable zone of `zones` in zone order, named by its `type` file (e.g.
/// `cpu-thermal`, or the directory name when it has none). A zone whose `temp` cannot be read
/// or is not finite (a sensor that is off) is left out.
fn read_zones(zones: &[(u64, PathBuf)]) -> Vec<TemperatureVitals> {
    let mut temperatures = Vec::with_capacity(zones.len());
    for (number, zone) in zones {
        let millidegrees = read_parsed(&zone.join("temp"), |c| c.parse::<f64>().ok());
        let celsius = match millidegrees {
            Ok(m) if (m / 1000.0).is_finite() => m / 1000.0,
            Ok(_) => continue,
            Err(error) => {
                tracing::debug!(%error, "skipping thermal zone");
                continue;
            }
        };
        let sensor = read_trimmed(&zone.join("type"))
            .ok()
            .filter(|t| !t.is_empty())
            .unwrap_or_else(|| format!("thermal_zone{number}"));
        temperatures.push(TemperatureVitals {
            sensor,
            celsius,
            ..Default::default()
        });
    }
    temperatures
}

/// Whether a hwmon sensor (sysinfo label `<chip> <channel>`, e.g. `cpu_thermal temp1`) is a
/// thermal zone already read: the kernel names a zone's hwmon after the zone's type with
/// `-` replaced by `_`.
pub(crate) fn covered_by_zone(label: &str, zones: &[TemperatureVitals]) -> bool {
    let chip = label.split_whitespace().next().unwrap_or_default();
    zones
        .iter()
        .any(|zone| zone.sensor.replace('-', "_") == chip.replace('-', "_"))
}

/// Appends the `hwmon` sensors that are finite and not covered by a zone already in `temps`.
pub(crate) fn add_hwmon(
    temps: &mut Vec<TemperatureVitals>,
    hwmon: impl IntoIterator<Item = TemperatureVitals>,
) {
    let zones = temps.len();
    for sensor in hwmon {
        if sensor.celsius.is_finite() && !covered_by_zone(&sensor.sensor, &temps[..zones]) {
            temps.push(sensor);
        }
    }
}

/// sysinfo reads thermal zones itself when there is no hwmon: those are read above.
fn is_zone(component: &sysinfo::Component) -> bool {
    component
        .id()
        .is_some_and(|id| id.starts_with("thermal_zone"))
}

/// Samples temperatures on every tick; keeps the thermal zones and the sysinfo component list
/// between samples and lists both again only every [`RELIST_EVERY`] samples (in between, each
/// known sensor's files are read, without listing a directory).
pub(crate) struct TemperatureCollector {
    /// The `thermal_zoneN` directories; None until listed under the sample's root.
    zones: Option<Vec<(u64, PathBuf)>>,
    components: Option<Components>,
    /// Samples taken since the sensors were last listed.
    since_listed: u32,
    warn: WarnOnce,
}

impl TemperatureCollector {
    pub(crate) fn new() -> Self {
        let mut warn = WarnOnce::default();
        let components = warn.ok("temperatures", Components::new_with_refreshed_list());
        Self {
            zones: None,
            components,
            since_listed: 0,
            warn,
        }
    }

    pub(crate) fn sample(&mut self, root: &Path) -> Vec<TemperatureVitals> {
        let relist = self.since_listed >= RELIST_EVERY;
        if relist {
            self.since_listed = 0;
        }
        self.since_listed += 1;
        if relist || self.zones.is_none() {
            let zones = self.warn.ok("temperatures", list_thermal_zones(root));
            self.zones = Some(zones.unwrap_or_default());
        }
        let mut temps = read_zones(self.zones.as_deref().unwrap_or_default());
        if let Some(components) = self.components.as_mut() {
            if relist {
                components.refresh(true);
            } else {
                for component in components.iter_mut().filter(|c| !is_zone(c)) {
                    component.refresh();
                }
            }
            let hwmon = components
                .iter()
                .filter(|c| !is_zone(c))
                .filter_map(|c| {
                    Some(TemperatureVitals {
                        sensor: c.label().trim().to_owned(),
                        celsius: f64::from(c.temperature()?),
                        ..Default::default()
                    })
                })
                .filter(|t| !t.sensor.is_empty());
            add_hwmon(&mut temps, hwmon);
        }
        if temps.is_empty() {
            self.warn
                .warn("temperatures", &"no thermal zone or hwmon sensor found");
        }
        temps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::Tree;

    fn read_thermal_zones(root: &Path) -> Result<Vec<TemperatureVitals>, ReadError> {
        Ok(read_zones(&list_thermal_zones(root)?))
    }

    fn temp(sensor: &str, celsius: f64) -> TemperatureVitals {
        TemperatureVitals {
            sensor: sensor.to_owned(),
            celsius,
            ..Default::default()
        }
    }

    #[test]
    fn a_pi4_is_48_degrees() {
        let tree = Tree::pi4();
        let zones = read_thermal_zones(tree.root()).expect("fixture thermal class");
        assert_eq!(zones, [temp("cpu-thermal", 48.312)]);
    }

    #[test]
    fn no_thermal_class_means_no_zones() {
        let tree = Tree::empty();
        assert_eq!(
            read_thermal_zones(tree.root()).expect("absence is fine"),
            []
        );
        tree.mkdir("sys/class/thermal");
        assert_eq!(
            read_thermal_zones(tree.root()).expect("absence is fine"),
            []
        );
    }

    #[test]
    fn zones_in_numeric_order_skipping_unreadable_and_non_finite() {
        let tree = Tree::pi4();
        tree.write("sys/class/thermal/thermal_zone10/temp", "-5000\n");
        tree.write("sys/class/thermal/thermal_zone2/temp", "61000\n");
        tree.write("sys/class/thermal/thermal_zone2/type", "gpu-thermal\n");
        tree.write("sys/class/thermal/thermal_zone3/temp", "NaN\n");
        tree.write("sys/class/thermal/thermal_zone4/temp", "inf\n");
        tree.write("sys/class/thermal/thermal_zone5/temp", "\n");
        tree.mkdir("sys/class/thermal/thermal_zone6");
        let zones = read_thermal_zones(tree.root()).expect("fixture thermal class");
        assert_eq!(
            zones,
            [
                temp("cpu-thermal", 48.312),
                temp("gpu-thermal", 61.0),
                temp("thermal_zone10", -5.0),
            ]
        );
    }

    #[test]
    fn hwmon_sensors_of_a_zone_are_not_counted_twice() {
        let mut temps = vec![temp("cpu-thermal", 48.312)];
        add_hwmon(
            &mut temps,
            [
                temp("cpu_thermal temp1", 48.3),
                temp("nvme Composite", 39.85),
                temp("coretemp Package id 0", f64::NAN),
                temp("drivetemp temp1", f64::INFINITY),
            ],
        );
        assert_eq!(
            temps,
            [temp("cpu-thermal", 48.312), temp("nvme Composite", 39.85)]
        );
    }

    #[test]
    fn hwmon_sensors_do_not_cover_each_other() {
        let mut temps = Vec::new();
        add_hwmon(
            &mut temps,
            [temp("coretemp Core 0", 40.0), temp("coretemp Core 1", 41.0)],
        );
        assert_eq!(temps.len(), 2);
    }
}
