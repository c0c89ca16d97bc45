//! Block devices (`resources.storage`): whole disks under `/sys/block` with their
//! partitions, and their `/dev/disk/by-id` and `/dev/disk/by-path` names.

use serde::Serialize;

use super::sysfs::Sysfs;
use super::system::{pci_address_in, usb_address_in};

#[derive(Clone, Debug, Serialize)]
pub struct Storage {
    pub disks: Vec<Disk>,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Disk {
    /// Kernel name (`sda`, `vda`, `nvme0n1`); MAAS's block device name.
    pub id: String,
    /// `major:minor`.
    pub device: String,
    pub model: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub read_only: bool,
    pub size: u64,
    pub removable: bool,
    pub wwn: String,
    pub numa_node: u64,
    /// The `/dev/disk/by-path` name.
    pub device_path: String,
    pub block_size: u64,
    pub firmware_version: String,
    /// 0 for solid state; 1 for a spinning disk of unknown speed.
    pub rpm: u64,
    pub serial: String,
    /// The `/dev/disk/by-id` name; MAAS's `id_path` is `/dev/disk/by-id/<device_id>`.
    pub device_id: String,
    pub partitions: Vec<Partition>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pci_address: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub usb_address: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Partition {
    pub id: String,
    pub device: String,
    pub read_only: bool,
    pub size: u64,
    pub partition: u64,
}

/// Kernel devices that are not disks MAAS manages.
fn skipped(name: &str) -> bool {
    ["loop", "ram", "zram", "dm-", "md", "nbd", "fd", "sr", "zd"]
        .iter()
        .any(|prefix| name.starts_with(prefix))
}

/// The by-id or by-path link pointing at `name`, by preference order of prefixes.
fn link_to(fs: &Sysfs, directory: &str, name: &str, preferred: &[&str]) -> String {
    let mut candidates: Vec<String> = fs
        .entries(directory)
        .into_iter()
        .filter(|link| {
            fs.link_name(&format!("{directory}/{link}"))
                .is_some_and(|target| target == name)
        })
        .collect();
    candidates.sort_by_key(|link| {
        preferred
            .iter()
            .position(|prefix| link.starts_with(prefix))
            .unwrap_or(preferred.len())
    });
    candidates.into_iter().next().unwrap_or_default()
}

/// SCSI VPD page 0x80 (unit serial number): 4-byte header, then ASCII.
fn vpd_serial(fs: &Sysfs, base: &str) -> Option<String> {
    let bytes = std::fs::read(fs.path(&format!("{base}/device/vpd_pg80"))).ok()?;
    let length = usize::from(*bytes.get(3)?);
    let serial = String::from_utf8_lossy(bytes.get(4..4 + length)?)
        .trim()
        .to_owned();
    (!serial.is_empty()).then_some(serial)
}

pub fn collect(fs: &Sysfs) -> Storage {
    let mut disks = Vec::new();
    for name in fs.entries("sys/block") {
        if skipped(&name) {
            continue;
        }
        let base = format!("sys/block/{name}");
        let device_link = fs.resolve(&format!("{base}/device"));
        let sectors = fs.number(&format!("{base}/size")).unwrap_or(0);
        let model = fs.text(&format!("{base}/device/model")).unwrap_or_default();
        let serial = fs
            .text(&format!("{base}/serial"))
            .or_else(|| fs.text(&format!("{base}/device/serial")))
            .or_else(|| vpd_serial(fs, &base))
            .unwrap_or_default();
        let path_text = device_link
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let kind = if name.starts_with("nvme") {
            "nvme"
        } else if name.starts_with("vd") {
            "virtio"
        } else if name.starts_with("mmcblk") {
            "mmc"
        } else if path_text.contains("/usb") {
            "usb"
        } else if path_text.contains("/ata") {
            "sata"
        } else {
            "scsi"
        };
        let rotational = fs.number(&format!("{base}/queue/rotational")) == Some(1);
        let wwn = fs
            .text(&format!("{base}/wwid"))
            .or_else(|| fs.text(&format!("{base}/device/wwid")))
            .filter(|wwid| {
                wwid.starts_with("naa.") || wwid.starts_with("eui.") || wwid.starts_with("0x")
            })
            .map(|wwid| match wwid.split_once('.') {
                Some((_, hex)) => format!("0x{hex}"),
                None => wwid,
            })
            .unwrap_or_default();
        let mut device_id = link_to(
            fs,
            "dev/disk/by-id",
            &name,
            &["nvme-", "ata-", "scsi-", "virtio-", "usb-", "mmc-", "wwn-"],
        );
        if device_id.is_empty() && !fs.exists("dev/disk/by-id") && !serial.is_empty() {
            // No udev in the environment: name the link as udev's persistent-storage rules
            // would, for the buses whose rule depends only on model and serial.
            let underscored = |s: &str| s.split_whitespace().collect::<Vec<_>>().join("_");
            device_id = match kind {
                "virtio" => format!("virtio-{serial}"),
                "nvme" => format!("nvme-{}_{}", underscored(&model), underscored(&serial)),
                "sata" => format!("ata-{}_{}", underscored(&model), underscored(&serial)),
                _ => String::new(),
            };
        }
        let partitions = fs
            .entries(&base)
            .into_iter()
            .filter(|entry| {
                entry.starts_with(&name) && fs.exists(&format!("{base}/{entry}/partition"))
            })
            .map(|entry| {
                let part = format!("{base}/{entry}");
                Partition {
                    device: fs.text(&format!("{part}/dev")).unwrap_or_default(),
                    read_only: fs.number(&format!("{part}/ro")) == Some(1),
                    size: fs.number(&format!("{part}/size")).unwrap_or(0) * 512,
                    partition: fs.number(&format!("{part}/partition")).unwrap_or(0),
                    id: entry,
                }
            })
            .collect();
        let (pci_address, usb_address) = match &device_link {
            Some(link) => (
                pci_address_in(link).unwrap_or_default(),
                usb_address_in(link).unwrap_or_default(),
            ),
            None => (String::new(), String::new()),
        };
        disks.push(Disk {
            device: fs.text(&format!("{base}/dev")).unwrap_or_default(),
            model,
            read_only: fs.number(&format!("{base}/ro")) == Some(1),
            size: sectors * 512,
            removable: fs.number(&format!("{base}/removable")) == Some(1),
            wwn,
            numa_node: fs
                .signed(&format!("{base}/device/numa_node"))
                .or_else(|| fs.signed(&format!("{base}/device/device/numa_node")))
                .and_then(|node| u64::try_from(node).ok())
                .unwrap_or(0),
            device_path: link_to(fs, "dev/disk/by-path", &name, &["pci-", "virtio-pci-"]),
            block_size: fs
                .number(&format!("{base}/queue/logical_block_size"))
                .unwrap_or(512),
            firmware_version: fs
                .text(&format!("{base}/device/firmware_rev"))
                .or_else(|| fs.text(&format!("{base}/device/rev")))
                .unwrap_or_default(),
            rpm: u64::from(rotational),
            serial,
            device_id,
            partitions,
            pci_address,
            usb_address,
            kind: kind.to_owned(),
            id: name,
        });
    }
    Storage {
        total: disks.len() as u64,
        disks,
    }
}
