//! Fixture trees for tests: what real Raspberry Pis (3, 4, 5, a Compute Module 4 with eMMC)
//! and a plain x86 machine show under `/proc` and `/sys`, built in a temporary directory.
//!
//! The layouts follow the kernel drivers that write them: `raspberrypi-hwmon` (`rpi_volt`,
//! `in0_lcrit_alarm` only; Pi 1 to 5), `pwm-fan` (registers its hwmon as `pwmfan`, under
//! `/sys/devices/platform/cooling_fan` on a Pi 5), the firmware driver's `get_throttled`
//! (kernels 4.14 to 6.6; removed in raspberrypi/linux pull request 6697) and the MMC core's
//! `life_time` / `pre_eol_info` (eMMC only, not SD). A Pi 5's `sensors` lists the chips
//! `pwmfan`, `cpu_thermal`, `rpi_volt` and `rp1_adc`. Readings are illustrative.

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

    /// A root holding what a Raspberry Pi 4 on a 6.6 kernel (4 cores at 1.5 GHz, 48.3 °C,
    /// under-voltage and throttled now: `get_throttled` 0x50005, `rpi_volt` alarm 1) shows,
    /// including entries the readers must skip.
    pub(crate) fn pi4() -> Self {
        let tree = Self::empty();
        tree.write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
        tree.write("sys/class/thermal/thermal_zone0/temp", "48312\n");
        tree.write("sys/class/thermal/cooling_device0/type", "gpio-fan\n");
        tree.write("sys/class/hwmon/hwmon0/name", "cpu_thermal\n");
        tree.write("sys/class/hwmon/hwmon0/temp1_input", "48312\n");
        tree.write("sys/class/hwmon/hwmon1/name", "rpi_volt\n");
        tree.write("sys/class/hwmon/hwmon1/in0_lcrit_alarm", "1\n");
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

    /// A Raspberry Pi 3 Model B+ on a 6.12 kernel: `rpi_volt` (no alarm now) but no
    /// `get_throttled` any more.
    pub(crate) fn pi3() -> Self {
        let tree = Self::empty();
        tree.write(
            "proc/device-tree/model",
            "Raspberry Pi 3 Model B Plus Rev 1.3\0",
        );
        tree.write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
        tree.write("sys/class/thermal/thermal_zone0/temp", "51540\n");
        tree.hwmon(
            "devices/virtual/thermal/thermal_zone0/hwmon0",
            "cpu_thermal",
        );
        tree.write("sys/class/hwmon/hwmon0/temp1_input", "51540\n");
        tree.hwmon(
            "devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon1",
            "rpi_volt",
        );
        tree.write("sys/class/hwmon/hwmon1/in0_lcrit_alarm", "0\n");
        tree.mmc_sd_card();
        tree
    }

    /// A Raspberry Pi 5 on a 6.12 kernel with the Active Cooler: `pwmfan` (2953 RPM at pwm
    /// 75, the first of the cooler's levels 0/75/125/175/250), `cpu_thermal`, `rpi_volt` (no
    /// alarm now) and the RP1 ADC, in the order a Pi 5 lists them; no `get_throttled`.
    pub(crate) fn pi5() -> Self {
        let tree = Self::empty();
        tree.write("proc/device-tree/model", "Raspberry Pi 5 Model B Rev 1.0\0");
        tree.hwmon("devices/platform/cooling_fan/hwmon/hwmon0", "pwmfan");
        tree.write("sys/class/hwmon/hwmon0/fan1_input", "2953\n");
        tree.write("sys/class/hwmon/hwmon0/pwm1", "75\n");
        tree.write("sys/class/hwmon/hwmon0/pwm1_enable", "2\n");
        tree.hwmon(
            "devices/virtual/thermal/thermal_zone0/hwmon1",
            "cpu_thermal",
        );
        tree.write("sys/class/hwmon/hwmon1/temp1_input", "45800\n");
        tree.hwmon(
            "devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon2",
            "rpi_volt",
        );
        tree.write("sys/class/hwmon/hwmon2/in0_lcrit_alarm", "0\n");
        tree.hwmon(
            "devices/platform/axi/1000120000.pcie/1f000c8000.adc/hwmon/hwmon3",
            "rp1_adc",
        );
        tree.write("sys/class/hwmon/hwmon3/in1_input", "949\n");
        tree.write("sys/class/hwmon/hwmon3/temp1_input", "50200\n");
        tree.write("sys/class/thermal/thermal_zone0/type", "cpu-thermal\n");
        tree.write("sys/class/thermal/thermal_zone0/temp", "45800\n");
        tree.mmc_sd_card();
        tree
    }

    /// A Compute Module 4 with 16 GB eMMC (`mmcblk0`, life time estimates A 0x02 and B 0x01,
    /// pre-EOL normal, with its boot partitions) and an SD card on the IO board (`mmcblk1`),
    /// on a 6.6 kernel: `rpi_volt` and `get_throttled` (0x0, nothing since boot).
    pub(crate) fn cm4_emmc() -> Self {
        let tree = Self::empty();
        tree.write(
            "proc/device-tree/model",
            "Raspberry Pi Compute Module 4 Rev 1.0\0",
        );
        tree.write(
            "sys/devices/platform/soc/soc:firmware/get_throttled",
            "0x0\n",
        );
        tree.hwmon(
            "devices/virtual/thermal/thermal_zone0/hwmon0",
            "cpu_thermal",
        );
        tree.hwmon(
            "devices/platform/soc/soc:firmware/raspberrypi-hwmon/hwmon/hwmon1",
            "rpi_volt",
        );
        tree.write("sys/class/hwmon/hwmon1/in0_lcrit_alarm", "0\n");
        let card = "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc0/mmc0:0001";
        for disk in ["mmcblk0", "mmcblk0boot0", "mmcblk0boot1"] {
            tree.write(&format!("sys/{card}/block/{disk}/size"), "30777344\n");
            tree.symlink(
                &format!("sys/{card}/block/{disk}/device"),
                &format!("sys/{card}"),
            );
            tree.symlink(
                &format!("sys/block/{disk}"),
                &format!("sys/{card}/block/{disk}"),
            );
        }
        tree.mkdir(&format!("sys/{card}/block/mmcblk0/mmcblk0p1"));
        tree.mkdir(&format!("sys/{card}/block/mmcblk0/mmcblk0p2"));
        tree.write(&format!("sys/{card}/type"), "MMC\n");
        tree.write(&format!("sys/{card}/name"), "BJTD4R\n");
        tree.write(&format!("sys/{card}/life_time"), "0x02 0x01\n");
        tree.write(&format!("sys/{card}/pre_eol_info"), "0x01\n");
        tree.write(&format!("sys/{card}/rev"), "0x8\n");
        // The IO board's SD card is the second host: no wear files.
        let sd = "devices/platform/emmc2bus/fe340000.mmc/mmc_host/mmc1/mmc1:aaaa";
        tree.write(&format!("sys/{sd}/type"), "SD\n");
        tree.write(&format!("sys/{sd}/block/mmcblk1/size"), "62333952\n");
        tree.symlink(
            &format!("sys/{sd}/block/mmcblk1/device"),
            &format!("sys/{sd}"),
        );
        tree.symlink("sys/block/mmcblk1", &format!("sys/{sd}/block/mmcblk1"));
        tree
    }

    /// A plain x86 machine: `coretemp` and an NVMe drive's hwmon, an NVMe disk and a SATA
    /// disk, no Raspberry Pi files and no eMMC.
    pub(crate) fn x86() -> Self {
        let tree = Self::empty();
        tree.write("sys/class/thermal/thermal_zone0/type", "acpitz\n");
        tree.write("sys/class/thermal/thermal_zone0/temp", "27800\n");
        tree.hwmon("devices/platform/coretemp.0/hwmon/hwmon0", "coretemp");
        tree.write("sys/class/hwmon/hwmon0/temp1_input", "42000\n");
        tree.hwmon(
            "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/hwmon1",
            "nvme",
        );
        tree.write("sys/class/hwmon/hwmon1/temp1_input", "38850\n");
        tree.write("sys/class/nvme/nvme0/model", "Samsung SSD 980 1TB\n");
        tree.write("sys/class/nvme/nvme0/state", "live\n");
        for disk in ["nvme0n1", "sda", "loop0"] {
            tree.write(&format!("sys/block/{disk}/size"), "1953525168\n");
        }
        tree
    }

    /// An SD card as `mmcblk0` (type `SD`): no `life_time`, no `pre_eol_info`.
    fn mmc_sd_card(&self) {
        let card = "devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa";
        self.write(&format!("sys/{card}/type"), "SD\n");
        self.write(&format!("sys/{card}/name"), "SN32G\n");
        self.write(&format!("sys/{card}/block/mmcblk0/size"), "62333952\n");
        self.mkdir(&format!("sys/{card}/block/mmcblk0/mmcblk0p1"));
        self.symlink(
            &format!("sys/{card}/block/mmcblk0/device"),
            &format!("sys/{card}"),
        );
        self.symlink("sys/block/mmcblk0", &format!("sys/{card}/block/mmcblk0"));
    }

    /// An hwmon device at `sys/DEVICE` named `name`, linked from `sys/class/hwmon/` under the
    /// last component of `device` (`hwmon2`), as the kernel links it.
    fn hwmon(&self, device: &str, name: &str) {
        self.write(&format!("sys/{device}/name"), format!("{name}\n"));
        let number = device
            .rsplit('/')
            .next()
            .expect("a device path has a last component");
        self.symlink(
            &format!("sys/class/hwmon/{number}"),
            &format!("sys/{device}"),
        );
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

    /// Makes `link` a symbolic link to `target`, both relative to the root.
    pub(crate) fn symlink(&self, link: &str, target: &str) {
        let link = self.path(link);
        if let Some(parent) = link.parent() {
            std::fs::create_dir_all(parent).expect("fixture dirs can be created");
        }
        std::os::unix::fs::symlink(self.path(target), link).expect("fixture links can be made");
    }

    pub(crate) fn remove(&self, relative: &str) {
        std::fs::remove_file(self.path(relative)).expect("fixture file exists");
    }
}
