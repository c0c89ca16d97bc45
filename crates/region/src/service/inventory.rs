//! Commissioning inventory: the LXD-resources JSON that
//! `50-maas-01-commissioning` prints (provisioning.md §2.7), turned into the
//! machine's CPU, memory, architecture, NICs, disks and firmware facts.
//!
//! This is a pure function of the JSON, the machine as it was and the
//! network catalog, so it is tested with fixture files of real-looking
//! machines.

use std::collections::BTreeMap;
use std::net::IpAddr;

use maas_domain::{Cidr, MacAddress};
use maas_store::{
    BlockDeviceType, Interface, InterfaceType, Inventory, LinkMode, NetworkCatalog, NewBlockDevice,
    NewInterface, NewIpLink, NewPartition, Node,
};
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    #[error("commissioning output is not JSON: {0}")]
    NotJson(String),
    #[error("commissioning output declares api_version {0:?}, not \"1.0\"")]
    ApiVersion(Option<String>),
    #[error("commissioning output lacks the API extension {0}")]
    MissingExtension(&'static str),
    #[error("commissioning output has no {0}")]
    Missing(&'static str),
}

const REQUIRED_EXTENSIONS: [&str; 5] = [
    "resources",
    "resources_v2",
    "api_os",
    "resources_system",
    "resources_usb_pci",
];

/// What the region learns from one commissioning run.
#[derive(Debug, Clone)]
pub struct Facts {
    /// Debian architecture with subarchitecture, e.g. `amd64/generic`.
    pub architecture: Option<String>,
    pub inventory: Inventory,
    /// Whether the machine is a VM (system.type is not `physical`).
    pub is_virtual: bool,
}

/// The Debian name of a kernel architecture.
pub fn debian_arch(kernel: &str) -> Option<&'static str> {
    match kernel {
        "x86_64" | "amd64" => Some("amd64"),
        "aarch64" | "arm64" => Some("arm64"),
        "armv7l" | "armv8l" | "armhf" => Some("armhf"),
        "i386" | "i486" | "i586" | "i686" => Some("i386"),
        "ppc64le" | "ppc64el" => Some("ppc64el"),
        "s390x" => Some("s390x"),
        "riscv64" => Some("riscv64"),
        _ => None,
    }
}

fn text(value: &Value, key: &str) -> Option<String> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

fn int(value: &Value, key: &str) -> Option<i64> {
    value
        .get(key)
        .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
}

/// The fastest speed named in ethtool-style `supported_modes` (`10000baseT/Full`), in Mbit/s.
fn max_mode_speed(modes: Option<&Value>) -> Option<i64> {
    modes?
        .as_array()?
        .iter()
        .filter_map(Value::as_str)
        .filter_map(|mode| mode.split("base").next()?.parse::<i64>().ok())
        .max()
}

fn is_uuid(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    parts.len() == 5
        && parts
            .iter()
            .zip(lens)
            .all(|(p, l)| p.len() == l && p.chars().all(|c| c.is_ascii_hexdigit()))
        && !text.chars().all(|c| c == '0' || c == '-')
}

/// Parses the JSON of `50-maas-01-commissioning` into facts about `node`.
///
/// Physical interfaces come from `resources.network.cards[].ports[]`, keyed
/// by MAC; addresses seen in `networks` become discovered addresses on the
/// subnet that holds them, and put the interface on that subnet's VLAN.
/// The boot interface is the one whose MAC the machine booted from (or the
/// node's existing boot interface). `skip_networking`/`skip_storage` keep
/// the node's current interfaces or disks.
pub fn parse(
    json: &[u8],
    node: &Node,
    catalog: &NetworkCatalog,
    boot_mac: Option<&str>,
) -> Result<Facts, InventoryError> {
    let doc: Value =
        serde_json::from_slice(json).map_err(|e| InventoryError::NotJson(e.to_string()))?;
    let api_version = text(&doc, "api_version");
    if api_version.as_deref() != Some("1.0") {
        return Err(InventoryError::ApiVersion(api_version));
    }
    let extensions: Vec<&str> = doc
        .get("api_extensions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for needed in REQUIRED_EXTENSIONS {
        if !extensions.contains(&needed) {
            return Err(InventoryError::MissingExtension(needed));
        }
    }
    let resources = doc
        .get("resources")
        .ok_or(InventoryError::Missing("resources"))?;
    let null = Value::Null;

    // Architecture: keep a more specific stored subarchitecture over `generic`.
    let architecture = doc
        .get("environment")
        .and_then(|e| text(e, "kernel_architecture"))
        .and_then(|k| debian_arch(&k))
        .map(
            |arch| match node.architecture.as_deref().and_then(|a| a.split_once('/')) {
                Some((stored_arch, sub)) if stored_arch == arch => format!("{arch}/{sub}"),
                _ => format!("{arch}/generic"),
            },
        );

    let cpu = resources.get("cpu").unwrap_or(&null);
    let sockets: Vec<&Value> = cpu
        .get("sockets")
        .and_then(Value::as_array)
        .map(|s| s.iter().collect())
        .unwrap_or_default();
    let threads: i64 = sockets
        .iter()
        .flat_map(|s| {
            s.get("cores")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .map(|core| {
            core.get("threads")
                .and_then(Value::as_array)
                .map_or(1, |t| t.len() as i64)
        })
        .sum();
    let cpu_count = int(cpu, "total").filter(|t| *t > 0).unwrap_or(threads);
    let cpu_speed = sockets
        .iter()
        .filter_map(|s| int(s, "frequency").or_else(|| int(s, "frequency_turbo")))
        .max()
        .unwrap_or(0);
    let cpu_model = sockets.first().and_then(|s| text(s, "name"));

    let memory_bytes = resources
        .get("memory")
        .and_then(|m| int(m, "total"))
        .unwrap_or(0);

    let mut hardware_info = BTreeMap::new();
    if let Some(model) = cpu_model {
        hardware_info.insert("cpu_model".to_owned(), model);
    }
    let system = resources.get("system").unwrap_or(&null);
    let mut hardware_uuid = None;
    if let Some(uuid) = text(system, "uuid")
        .map(|u| u.to_ascii_lowercase())
        .filter(|u| is_uuid(u))
    {
        hardware_uuid = Some(uuid);
    }
    for (key, field) in [
        ("system_vendor", "vendor"),
        ("system_product", "product"),
        ("system_family", "family"),
        ("system_version", "version"),
        ("system_sku", "sku"),
        ("system_serial", "serial"),
    ] {
        if let Some(v) = text(system, field) {
            hardware_info.insert(key.to_owned(), v);
        }
    }
    let board = system.get("motherboard").unwrap_or(&null);
    for (key, field) in [
        ("mainboard_vendor", "vendor"),
        ("mainboard_product", "product"),
        ("mainboard_serial", "serial"),
        ("mainboard_version", "version"),
    ] {
        if let Some(v) = text(board, field) {
            hardware_info.insert(key.to_owned(), v);
        }
    }
    let firmware = system.get("firmware").unwrap_or(&null);
    for (key, field) in [
        ("mainboard_firmware_vendor", "vendor"),
        ("mainboard_firmware_date", "date"),
        ("mainboard_firmware_version", "version"),
    ] {
        if let Some(v) = text(firmware, field) {
            hardware_info.insert(key.to_owned(), v);
        }
    }
    let chassis = system.get("chassis").unwrap_or(&null);
    for (key, field) in [
        ("chassis_vendor", "vendor"),
        ("chassis_type", "type"),
        ("chassis_serial", "serial"),
        ("chassis_version", "version"),
    ] {
        if let Some(v) = text(chassis, field) {
            hardware_info.insert(key.to_owned(), v);
        }
    }
    let is_virtual = text(system, "type").is_some_and(|t| t != "physical");
    let bios_boot_method = doc
        .get("machine-extra")
        .and_then(|m| text(m, "firmware"))
        .map(|f| {
            if f == "uefi" {
                "uefi".to_owned()
            } else {
                "pxe".to_owned()
            }
        });

    // The agent says which NIC it booted from; BOOTIF (maas-kernel-cmdline) may correct it later.
    let extra_boot_mac = doc
        .get("machine-extra")
        .and_then(|m| text(m, "boot_mac"))
        .and_then(|m| m.parse::<MacAddress>().ok())
        .map(|m| m.to_string());
    let boot_mac = boot_mac.map(str::to_owned).or(extra_boot_mac);
    let interfaces = if node.skip_networking {
        keep_interfaces(node)
    } else {
        interfaces(&doc, resources, node, catalog, boot_mac.as_deref())
    };
    let block_devices = if node.skip_storage {
        keep_block_devices(node)
    } else {
        disks(resources)
    };

    Ok(Facts {
        architecture,
        inventory: Inventory {
            cpu_count,
            cpu_speed,
            memory: memory_bytes / (1024 * 1024),
            hardware_uuid,
            hardware_info,
            bios_boot_method,
            interfaces,
            block_devices,
        },
        is_virtual,
    })
}

fn subnet_for(catalog: &NetworkCatalog, ip: IpAddr) -> Option<&maas_store::Subnet> {
    catalog
        .subnets
        .iter()
        .filter_map(|s| {
            s.cidr
                .parse::<Cidr>()
                .ok()
                .filter(|c| c.contains(ip))
                .map(|c| (c.prefix(), s))
        })
        .max_by_key(|(prefix, _)| *prefix)
        .map(|(_, s)| s)
}

fn interfaces(
    doc: &Value,
    resources: &Value,
    node: &Node,
    catalog: &NetworkCatalog,
    boot_mac: Option<&str>,
) -> Vec<NewInterface> {
    let null = Value::Null;
    let networks = doc.get("networks").unwrap_or(&null);
    let current_boot_mac = node
        .boot_interface_id
        .and_then(|id| node.interfaces.iter().find(|i| i.id == id))
        .and_then(|i| i.mac_address.clone());
    let boot_mac = boot_mac.map(str::to_owned).or(current_boot_mac);
    let mut found = Vec::new();
    let cards = resources
        .get("network")
        .and_then(|n| n.get("cards"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for card in &cards {
        let ports = card
            .get("ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for port in &ports {
            // IPoIB and other non-Ethernet ports are not MAAS interfaces.
            if text(port, "protocol").is_some_and(|p| p != "ethernet") {
                continue;
            }
            let Some(mac) = text(port, "address")
                .and_then(|m| m.parse::<MacAddress>().ok())
                .map(|m| m.to_string())
            else {
                continue;
            };
            let name = text(port, "id").unwrap_or_else(|| format!("eth{}", found.len()));
            let link_connected = port
                .get("link_detected")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            let mut discovered = Vec::new();
            let mut vlan_id = None;
            if let Some(addresses) = networks
                .get(&name)
                .and_then(|n| n.get("addresses"))
                .and_then(Value::as_array)
            {
                for address in addresses {
                    let family_ok =
                        text(address, "family").is_none_or(|f| f == "inet" || f == "inet6");
                    let scope_ok = text(address, "scope").is_none_or(|s| s == "global");
                    let Some(ip) = text(address, "address").and_then(|a| a.parse::<IpAddr>().ok())
                    else {
                        continue;
                    };
                    if !family_ok || !scope_ok {
                        continue;
                    }
                    let subnet = subnet_for(catalog, ip);
                    if vlan_id.is_none() {
                        vlan_id = subnet.map(|s| s.vlan_id);
                    }
                    discovered.push((subnet.map(|s| s.id), ip.to_string()));
                }
            }
            // A disconnected NIC loses its VLAN; a connected one keeps the one
            // it had when no address says otherwise.
            if vlan_id.is_none() && link_connected {
                vlan_id = node
                    .interfaces
                    .iter()
                    .find(|i| i.mac_address.as_deref() == Some(&mac))
                    .and_then(|i| i.vlan_id);
            }
            let mut tags = Vec::new();
            let sriov = card
                .get("sriov")
                .and_then(|s| int(s, "maximum_vfs"))
                .unwrap_or(0);
            if sriov > 0 {
                tags.push("sriov".to_owned());
            }
            found.push(NewInterface {
                name,
                kind: InterfaceType::Physical,
                mac_address: Some(mac.clone()),
                vlan_id: if link_connected { vlan_id } else { None },
                enabled: true,
                params: String::new(),
                tags,
                vendor: text(card, "vendor"),
                product: text(card, "product"),
                firmware_version: text(card, "firmware_version"),
                link_connected,
                interface_speed: max_mode_speed(port.get("supported_modes")).unwrap_or(0),
                link_speed: int(port, "link_speed").unwrap_or(0).max(0),
                numa_node: int(card, "numa_node"),
                sriov_max_vf: sriov,
                mtu: networks
                    .get(text(port, "id").as_deref().unwrap_or(""))
                    .and_then(|n| int(n, "mtu"))
                    .unwrap_or(1500),
                parents: Vec::new(),
                links: Vec::new(),
                discovered,
                boot: boot_mac.as_deref() == Some(mac.as_str()),
            });
        }
    }
    if !found.iter().any(|i| i.boot)
        && let Some(first) = found.first_mut()
    {
        first.boot = true;
    }
    // The boot interface gets MAAS's initial configuration: an AUTO link to
    // the subnet it was seen on.
    for interface in found.iter_mut().filter(|i| i.boot) {
        if let Some((Some(subnet_id), _)) = interface.discovered.first() {
            interface.links.push(NewIpLink {
                mode: LinkMode::Auto,
                subnet_id: Some(*subnet_id),
                ip: None,
            });
        }
    }
    found
}

fn disks(resources: &Value) -> Vec<NewBlockDevice> {
    let disks = resources
        .get("storage")
        .and_then(|s| s.get("disks"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut devices = Vec::new();
    for disk in &disks {
        if disk
            .get("read_only")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            || text(disk, "type").as_deref() == Some("cdrom")
        {
            continue;
        }
        let Some(name) = text(disk, "id") else {
            continue;
        };
        let serial = text(disk, "serial");
        let id_path = match text(disk, "device_id") {
            Some(device_id) if serial.is_some() => format!("/dev/disk/by-id/{device_id}"),
            _ => format!("/dev/{name}"),
        };
        let rpm = int(disk, "rpm").unwrap_or(0);
        let mut tags = vec![if rpm > 0 {
            "rotary".to_owned()
        } else {
            "ssd".to_owned()
        }];
        if rpm > 0 {
            tags.push(format!("{rpm}rpm"));
        }
        if disk
            .get("removable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
        {
            tags.push("removable".to_owned());
        }
        if let Some(kind) = text(disk, "type")
            .filter(|t| ["sata", "sas", "nvme", "virtio", "usb", "mmc"].contains(&t.as_str()))
        {
            tags.push(kind);
        }
        let block_size = int(disk, "block_size").filter(|b| *b > 0).unwrap_or(512);
        devices.push(NewBlockDevice {
            name,
            kind: BlockDeviceType::Physical,
            model: text(disk, "model"),
            serial,
            id_path: Some(id_path),
            size: int(disk, "size").unwrap_or(0).max(0),
            block_size,
            tags,
            uuid: None,
            firmware_version: text(disk, "firmware_version"),
            numa_node: int(disk, "numa_node"),
            partition_table_type: None,
            filesystem: None,
            partitions: Vec::new(),
            boot: devices.is_empty(),
        });
    }
    devices
}

/// The node's current interfaces as inventory input (for `skip_networking`).
pub fn keep_interfaces(node: &Node) -> Vec<NewInterface> {
    let index_of = |id: i64| node.interfaces.iter().position(|i| i.id == id);
    node.interfaces
        .iter()
        .map(|i: &Interface| NewInterface {
            name: i.name.clone(),
            kind: i.kind,
            mac_address: i.mac_address.clone(),
            vlan_id: i.vlan_id,
            enabled: i.enabled,
            params: i.params.clone(),
            tags: i.tags.clone(),
            vendor: i.vendor.clone(),
            product: i.product.clone(),
            firmware_version: i.firmware_version.clone(),
            link_connected: i.link_connected,
            interface_speed: i.interface_speed,
            link_speed: i.link_speed,
            numa_node: i.numa_node,
            sriov_max_vf: i.sriov_max_vf,
            mtu: i.mtu,
            parents: i.parent_ids.iter().filter_map(|p| index_of(*p)).collect(),
            links: i
                .links
                .iter()
                .map(|l| NewIpLink {
                    mode: l.mode,
                    subnet_id: l.subnet_id,
                    ip: l.ip.clone(),
                })
                .collect(),
            discovered: i.discovered.clone(),
            boot: node.boot_interface_id == Some(i.id),
        })
        .collect()
}

/// The node's current disks as inventory input (for `skip_storage`).
pub fn keep_block_devices(node: &Node) -> Vec<NewBlockDevice> {
    node.block_devices
        .iter()
        .map(|d| NewBlockDevice {
            name: d.name.clone(),
            kind: d.kind,
            model: d.model.clone(),
            serial: d.serial.clone(),
            id_path: d.id_path.clone(),
            size: d.size,
            block_size: d.block_size,
            tags: d.tags.clone(),
            uuid: d.uuid.clone(),
            firmware_version: d.firmware_version.clone(),
            numa_node: d.numa_node,
            partition_table_type: d.partition_table_type.clone(),
            filesystem: d.filesystem.clone(),
            partitions: d
                .partitions
                .iter()
                .map(|p| NewPartition {
                    uuid: p.uuid.clone(),
                    size: p.size,
                    bootable: p.bootable,
                    tags: p.tags.clone(),
                    filesystem: p.filesystem.clone(),
                })
                .collect(),
            boot: node.boot_disk_id == Some(d.id),
        })
        .collect()
}

/// The MAC of `BOOTIF=01-aa-bb-cc-dd-ee-ff` on a kernel command line.
pub fn bootif_mac(cmdline: &str) -> Option<String> {
    cmdline.split_whitespace().find_map(|word| {
        let value = word.strip_prefix("BOOTIF=")?;
        let hex = value.strip_prefix("01-").unwrap_or(value);
        hex.replace('-', ":")
            .parse::<MacAddress>()
            .ok()
            .map(|m| m.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootif() {
        assert_eq!(
            bootif_mac("console=ttyS0 BOOTIF=01-52-54-00-12-34-56 quiet").as_deref(),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(bootif_mac("console=ttyS0"), None);
        assert_eq!(bootif_mac("BOOTIF=01-zz"), None);
    }

    #[test]
    fn speeds_and_uuids() {
        let modes = serde_json::json!(["1000baseT/Full", "10000baseSR/Full", "100baseT/Half"]);
        assert_eq!(max_mode_speed(Some(&modes)), Some(10_000));
        assert!(is_uuid("4c4c4544-0042-3510-8053-b4c04f4b4d32"));
        assert!(!is_uuid("00000000-0000-0000-0000-000000000000"));
        assert!(!is_uuid("not-a-uuid"));
        assert_eq!(debian_arch("x86_64"), Some("amd64"));
        assert_eq!(debian_arch("aarch64"), Some("arm64"));
        assert_eq!(debian_arch("vax"), None);
    }
}
