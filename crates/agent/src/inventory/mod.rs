//! Hardware inventory from `/proc` and `/sys`, rendered as the machine-resources JSON that
//! MAAS's `50-maas-01-commissioning` emits and the region ingests (§2.7): LXD's resources
//! API shape (`api_version` 1.0, the five API extensions, `environment`, `resources`,
//! `networks`) plus `machine-extra`.
//!
//! Everything is read under a configurable root, so tests run on fixture trees. Missing or
//! unreadable files give empty values, never errors: a half-broken machine still reports.

mod cpu;
mod memory;
mod network;
mod storage;
mod sysfs;
mod system;

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

pub use sysfs::Sysfs;

/// The whole document.
#[derive(Clone, Debug, Serialize)]
pub struct MachineResources {
    pub api_extensions: Vec<&'static str>,
    pub api_version: &'static str,
    pub environment: Environment,
    pub resources: Resources,
    pub networks: BTreeMap<String, NetworkState>,
    #[serde(rename = "machine-extra")]
    pub machine_extra: MachineExtra,
}

#[derive(Clone, Debug, Serialize)]
pub struct Environment {
    pub kernel: String,
    pub kernel_architecture: String,
    pub kernel_version: String,
    pub os_name: String,
    pub os_version: String,
    pub server: &'static str,
    pub server_name: String,
    pub server_version: &'static str,
}

/// Facts MAAS's resources format has no place for.
#[derive(Clone, Debug, Serialize)]
pub struct MachineExtra {
    /// `uefi` when `/sys/firmware/efi` exists, else `bios`.
    pub firmware: &'static str,
    /// The boot interface from `BOOTIF`, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_mac: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Resources {
    pub cpu: cpu::Cpu,
    pub memory: memory::Memory,
    pub gpu: Gpu,
    pub network: network::Network,
    pub storage: storage::Storage,
    pub usb: system::Usb,
    pub pci: system::Pci,
    pub system: system::System,
}

/// GPUs are not probed; the section is present and empty, as on a server without one.
#[derive(Clone, Debug, Serialize)]
pub struct Gpu {
    pub cards: Vec<serde_json::Value>,
    pub total: u64,
}

pub use network::{NetworkAddress, NetworkState};

impl MachineResources {
    /// Collects everything under `root` (`/` on a real machine).
    pub fn collect(root: &Path, boot_mac: Option<&str>) -> Self {
        let fs = Sysfs::new(root);
        let cpu = cpu::collect(&fs);
        let system = system::collect(&fs, cpu.hypervisor);
        let os_release = fs.key_values("etc/os-release", '=');
        let kernel_architecture = fs
            .text("proc/sys/kernel/arch")
            .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
        MachineResources {
            api_extensions: vec![
                "resources",
                "resources_v2",
                "api_os",
                "resources_system",
                "resources_usb_pci",
            ],
            api_version: "1.0",
            environment: Environment {
                kernel: fs
                    .text("proc/sys/kernel/ostype")
                    .unwrap_or_else(|| "Linux".into()),
                kernel_architecture,
                kernel_version: fs.text("proc/sys/kernel/osrelease").unwrap_or_default(),
                os_name: os_release.get("ID").cloned().unwrap_or_default(),
                os_version: os_release.get("VERSION_ID").cloned().unwrap_or_default(),
                server: "maas-machine-resources",
                server_name: fs.text("proc/sys/kernel/hostname").unwrap_or_default(),
                server_version: env!("CARGO_PKG_VERSION"),
            },
            resources: Resources {
                cpu: cpu.cpu,
                memory: memory::collect(&fs),
                gpu: Gpu {
                    cards: Vec::new(),
                    total: 0,
                },
                network: network::collect_cards(&fs),
                storage: storage::collect(&fs),
                usb: system::collect_usb(&fs),
                pci: system::collect_pci(&fs),
                system: system.system,
            },
            networks: network::collect_states(&fs),
            machine_extra: MachineExtra {
                firmware: if fs.exists("sys/firmware/efi") {
                    "uefi"
                } else {
                    "bios"
                },
                boot_mac: boot_mac.map(str::to_owned),
            },
        }
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".into());
        text.push('\n');
        text
    }

    /// MAC addresses of the physical NICs, boot interface first.
    pub fn macs(&self) -> Vec<String> {
        let mut macs: Vec<String> = self
            .resources
            .network
            .cards
            .iter()
            .flat_map(|card| card.ports.iter().map(|port| port.address.clone()))
            .filter(|mac| !mac.is_empty() && mac != "02:00:00:00:00:02")
            .collect();
        if let Some(boot) = &self.machine_extra.boot_mac
            && let Some(index) = macs.iter().position(|mac| mac == boot)
        {
            let mac = macs.remove(index);
            macs.insert(0, mac);
        }
        macs
    }

    /// The Debian architecture with MAAS's subarchitecture, for enlistment.
    pub fn maas_architecture(&self) -> String {
        let debian = match self.environment.kernel_architecture.as_str() {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "i686" | "i586" | "i386" => "i386",
            "ppc64le" => "ppc64el",
            "s390x" => "s390x",
            "armv7l" | "armv8l" => "armhf",
            "riscv64" => "riscv64",
            other => other,
        };
        format!("{debian}/generic")
    }
}
