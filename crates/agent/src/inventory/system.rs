//! DMI (`resources.system`), PCI and USB device lists, and PCI names.

use std::path::Path;

use serde::Serialize;

use super::sysfs::Sysfs;

#[derive(Clone, Debug, Serialize)]
pub struct System {
    pub uuid: String,
    pub vendor: String,
    pub product: String,
    pub family: String,
    pub version: String,
    pub sku: String,
    pub serial: String,
    /// `physical` or `virtual-machine`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub firmware: Firmware,
    pub chassis: Chassis,
    pub motherboard: Motherboard,
}

#[derive(Clone, Debug, Serialize)]
pub struct Firmware {
    pub date: String,
    pub vendor: String,
    pub version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Chassis {
    pub serial: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub vendor: String,
    pub version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Motherboard {
    pub product: String,
    pub serial: String,
    pub vendor: String,
    pub version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Pci {
    pub devices: Vec<PciDevice>,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct PciDevice {
    pub driver: String,
    pub driver_version: String,
    pub numa_node: u64,
    pub pci_address: String,
    pub vendor: String,
    pub vendor_id: String,
    pub product: String,
    pub product_id: String,
    pub iommu_group: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Usb {
    pub devices: Vec<UsbDevice>,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct UsbDevice {
    pub bus_address: u64,
    pub device_address: u64,
    pub product: String,
    pub product_id: String,
    pub speed: f64,
    pub vendor: String,
    pub vendor_id: String,
}

pub struct Collected {
    pub system: System,
}

/// SMBIOS chassis types (DSP0134 §7.4.1).
const CHASSIS_TYPES: [&str; 36] = [
    "Other",
    "Unknown",
    "Desktop",
    "Low Profile Desktop",
    "Pizza Box",
    "Mini Tower",
    "Tower",
    "Portable",
    "Laptop",
    "Notebook",
    "Hand Held",
    "Docking Station",
    "All in One",
    "Sub Notebook",
    "Space-saving",
    "Lunch Box",
    "Main Server Chassis",
    "Expansion Chassis",
    "SubChassis",
    "Bus Expansion Chassis",
    "Peripheral Chassis",
    "RAID Chassis",
    "Rack Mount Chassis",
    "Sealed-case PC",
    "Multi-system chassis",
    "Compact PCI",
    "Advanced TCA",
    "Blade",
    "Blade Enclosure",
    "Tablet",
    "Convertible",
    "Detachable",
    "IoT Gateway",
    "Embedded PC",
    "Mini PC",
    "Stick PC",
];

pub fn collect(fs: &Sysfs, hypervisor: bool) -> Collected {
    let dmi = |name: &str| {
        fs.text(&format!("sys/class/dmi/id/{name}"))
            .filter(|value| !is_placeholder(value))
            .unwrap_or_default()
    };
    let chassis_type = fs
        .number("sys/class/dmi/id/chassis_type")
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_sub(1))
        .and_then(|index| CHASSIS_TYPES.get(index))
        .map(|name| (*name).to_owned())
        .unwrap_or_default();
    Collected {
        system: System {
            uuid: dmi("product_uuid").to_ascii_lowercase(),
            vendor: dmi("sys_vendor"),
            product: dmi("product_name"),
            family: dmi("product_family"),
            version: dmi("product_version"),
            sku: dmi("product_sku"),
            serial: dmi("product_serial"),
            kind: if hypervisor {
                "virtual-machine"
            } else {
                "physical"
            },
            firmware: Firmware {
                date: dmi("bios_date"),
                vendor: dmi("bios_vendor"),
                version: dmi("bios_version"),
            },
            chassis: Chassis {
                serial: dmi("chassis_serial"),
                kind: chassis_type,
                vendor: dmi("chassis_vendor"),
                version: dmi("chassis_version"),
            },
            motherboard: Motherboard {
                product: dmi("board_name"),
                serial: dmi("board_serial"),
                vendor: dmi("board_vendor"),
                version: dmi("board_version"),
            },
        },
    }
}

/// Values firmware vendors put in unset DMI fields.
fn is_placeholder(value: &str) -> bool {
    let lower = value.to_ascii_lowercase();
    [
        "to be filled by o.e.m.",
        "default string",
        "not specified",
        "none",
        "system serial number",
        "0123456789",
    ]
    .contains(&lower.as_str())
}

/// The last `dddd:bb:dd.f` component of a sysfs device path.
pub fn pci_address_in(path: &Path) -> Option<String> {
    path.iter()
        .map(|component| component.to_string_lossy().into_owned())
        .rfind(|component| is_pci_address(component))
}

/// The USB `bus-port` of a device path (`1-1`, `2-1.4`).
pub fn usb_address_in(path: &Path) -> Option<String> {
    path.iter()
        .map(|component| component.to_string_lossy().into_owned())
        .rfind(|component| {
            let mut parts = component.split('-');
            matches!((parts.next(), parts.next(), parts.next()),
                (Some(bus), Some(port), None) if bus.parse::<u32>().is_ok()
                    && !port.is_empty() && port.split('.').all(|p| p.parse::<u32>().is_ok()))
        })
}

fn is_pci_address(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 12
        && bytes[4] == b':'
        && bytes[7] == b':'
        && bytes[10] == b'.'
        && text
            .chars()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10) || c.is_ascii_hexdigit())
}

/// Vendors seen on servers and in VMs, for environments without `pci.ids`.
const VENDORS: [(&str, &str); 16] = [
    ("8086", "Intel Corporation"),
    ("1af4", "Red Hat, Inc."),
    ("1b36", "Red Hat, Inc."),
    ("15b3", "Mellanox Technologies"),
    ("14e4", "Broadcom Inc. and subsidiaries"),
    ("10ec", "Realtek Semiconductor Co., Ltd."),
    ("1022", "Advanced Micro Devices, Inc. [AMD]"),
    ("144d", "Samsung Electronics Co Ltd"),
    ("1000", "Broadcom / LSI"),
    ("1077", "QLogic Corp."),
    ("19a2", "Emulex Corporation"),
    ("1924", "Solarflare Communications"),
    ("8088", "Beijing Wangxun Technology Co., Ltd."),
    ("1d6a", "Aquantia Corp."),
    ("1234", "QEMU"),
    ("1414", "Microsoft Corporation"),
];

/// Vendor and product names from `pci.ids` under the root when present, else the
/// built-in vendor table (and no product name).
pub fn pci_names(fs: &Sysfs, vendor_id: &str, product_id: &str) -> (String, String) {
    if vendor_id.is_empty() {
        return (String::new(), String::new());
    }
    for database in ["usr/share/misc/pci.ids", "usr/share/hwdata/pci.ids"] {
        if let Ok(text) = std::fs::read_to_string(fs.path(database)) {
            let mut vendor = None;
            for line in text.lines() {
                if line.starts_with('#') || line.is_empty() {
                    continue;
                }
                if !line.starts_with('\t') {
                    if vendor.is_some() {
                        break;
                    }
                    if let Some(name) = line
                        .strip_prefix(vendor_id)
                        .and_then(|r| r.strip_prefix("  "))
                    {
                        vendor = Some(name.to_owned());
                    }
                } else if let Some(vendor) = &vendor
                    && let Some(name) = line
                        .strip_prefix('\t')
                        .and_then(|r| r.strip_prefix(product_id))
                        .and_then(|r| r.strip_prefix("  "))
                {
                    return (vendor.clone(), name.to_owned());
                }
            }
            if let Some(vendor) = vendor {
                return (vendor, String::new());
            }
        }
    }
    let vendor = VENDORS
        .iter()
        .find(|(id, _)| *id == vendor_id)
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_default();
    (vendor, String::new())
}

pub fn collect_pci(fs: &Sysfs) -> Pci {
    let devices: Vec<PciDevice> = fs
        .entries("sys/bus/pci/devices")
        .into_iter()
        .filter(|address| is_pci_address(address))
        .map(|address| {
            let base = format!("sys/bus/pci/devices/{address}");
            let vendor_id = fs
                .hex(&format!("{base}/vendor"))
                .map(|v| format!("{v:04x}"))
                .unwrap_or_default();
            let product_id = fs
                .hex(&format!("{base}/device"))
                .map(|v| format!("{v:04x}"))
                .unwrap_or_default();
            let (vendor, product) = pci_names(fs, &vendor_id, &product_id);
            let driver = fs.link_name(&format!("{base}/driver")).unwrap_or_default();
            PciDevice {
                driver_version: fs
                    .text(&format!("sys/module/{driver}/version"))
                    .unwrap_or_default(),
                driver,
                numa_node: fs
                    .signed(&format!("{base}/numa_node"))
                    .and_then(|node| u64::try_from(node).ok())
                    .unwrap_or(0),
                pci_address: address,
                vendor,
                vendor_id,
                product,
                product_id,
                iommu_group: fs
                    .link_name(&format!("{base}/iommu_group"))
                    .and_then(|group| group.parse().ok())
                    .unwrap_or(0),
            }
        })
        .collect();
    Pci {
        total: devices.len() as u64,
        devices,
    }
}

pub fn collect_usb(fs: &Sysfs) -> Usb {
    let devices: Vec<UsbDevice> = fs
        .entries("sys/bus/usb/devices")
        .into_iter()
        .filter(|name| !name.contains(':'))
        .filter_map(|name| {
            let base = format!("sys/bus/usb/devices/{name}");
            let vendor_id = fs.text(&format!("{base}/idVendor"))?;
            Some(UsbDevice {
                bus_address: fs.number(&format!("{base}/busnum")).unwrap_or(0),
                device_address: fs.number(&format!("{base}/devnum")).unwrap_or(0),
                product: fs.text(&format!("{base}/product")).unwrap_or_default(),
                product_id: fs.text(&format!("{base}/idProduct")).unwrap_or_default(),
                speed: fs
                    .text(&format!("{base}/speed"))
                    .and_then(|speed| speed.parse().ok())
                    .unwrap_or(0.0),
                vendor: fs.text(&format!("{base}/manufacturer")).unwrap_or_default(),
                vendor_id,
            })
        })
        .collect();
    Usb {
        total: devices.len() as u64,
        devices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_in_paths() {
        let path = Path::new("../../devices/pci0000:00/0000:00:03.0/virtio0/net/eth0");
        assert_eq!(pci_address_in(path).as_deref(), Some("0000:00:03.0"));
        let path = Path::new("../../devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0/host6");
        assert_eq!(usb_address_in(path).as_deref(), Some("1-1"));
        assert_eq!(pci_address_in(Path::new("virtual/net/lo")), None);
    }
}
