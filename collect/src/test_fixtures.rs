//! Fixture trees for tests: what a real Raspberry Pi 4 shows under `/proc` and `/sys`, built
//! in a temporary directory.

use std::path::{Path, PathBuf};

use tempfile::TempDir;

/// A root directory standing in for `/`; removed when dropped.
pub(crate) struct Tree {
    dir: TempDir,
}

impl Tree {
    /// A root with nothing in it, like a build machine without `/sys/class/thermal`.
    pub(crate) fn empty() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir can be created");
        Self { dir }
    }

    /// A root holding what a Raspberry Pi 4 (4 cores at 1.5 GHz, 48.3 °C, once under-voltage
    /// and throttled) shows, including entries the readers must skip.
    pub(crate) fn pi4() -> Self {
        let tree = Self::empty();
        tree.write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
        tree.write("sys/class/thermal/thermal_zone0/temp", "48312\n");
        tree.write("sys/class/thermal/cooling_device0/type", "gpio-fan\n");
        tree.write("sys/class/hwmon/hwmon0/name", "cpu_thermal\n");
        tree.write("sys/class/hwmon/hwmon0/temp1_input", "48312\n");
        tree.write("sys/class/hwmon/hwmon1/name", "rpi_volt\n");
        tree.write("sys/class/hwmon/hwmon1/in0_lcrit_alarm", "0\n");
        tree.write("proc/device-tree/model", "Raspberry Pi 4 Model B Rev 1.4\0");
        tree.write(
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            "0x50005\n",
        );
        for cpu in 0..4 {
            tree.write(
                &format!("sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq"),
                "1500000\n",
            );
        }
        tree.write("sys/devices/system/cpu/online", "0-3\n");
        tree.mkdir("sys/devices/system/cpu/cpufreq/policy0");
        tree.mkdir("sys/devices/system/cpu/cpuidle");
        tree.write("proc/uptime", "12345.67 40000.00\n");
        tree.write("proc/loadavg", "0.52 0.58 0.59 1/213 4321\n");
        for pid in ["1", "2", "4321"] {
            tree.write(&format!("proc/{pid}/comm"), "systemd\n");
        }
        tree.mkdir("proc/self");
        tree.mkdir("proc/sys");
        tree.write("proc/cpuinfo", "processor\t: 0\n");
        tree.write(
            "proc/net/dev",
            "Inter-|   Receive                                                |  Transmit\n \
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n\
             \x20   lo:  5000000   40000    0    0    0     0          0         0  5000000   40000    0    0    0     0       0          0\n\
             \x20 eth0: 987654321 700000    3    1    0     0          0      1200 123456789  500000    7    0    0     0       0          0\n\
             \x20wlan0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0\n",
        );
        tree
    }

    pub(crate) fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The path of `relative` inside the tree.
    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file, creating its parent directories.
    pub(crate) fn write(&self, relative: &str, content: impl AsRef<[u8]>) {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("fixture dirs can be created");
        }
        std::fs::write(&path, content).expect("fixture files can be written");
    }

    pub(crate) fn mkdir(&self, relative: &str) {
        std::fs::create_dir_all(self.path(relative)).expect("fixture dirs can be created");
    }

    pub(crate) fn remove(&self, relative: &str) {
        std::fs::remove_file(self.path(relative)).expect("fixture file exists");
    }
}
