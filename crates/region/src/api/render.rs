//! Records to wire objects. Nested network objects (a link's subnet, an
//! interface's VLAN) come from a [`Catalog`] loaded once per request, so a
//! listing of any length reads the network tables once.

use std::collections::{BTreeMap, HashMap};

use maas_api_types as wire;
use maas_store::{
    BlockDevice, BlockDeviceType, Domain, Event, Fabric, Filesystem, Interface, IpRange,
    NetworkCatalog, Node, Partition, ResourcePool, Space, SshKey, Subnet, Tag, User, Vlan, Zone,
};
use serde_json::value::RawValue;

use crate::timefmt;

const API: &str = "/MAAS/api/2.0";

pub fn user(user: &User) -> wire::User<'_> {
    wire::User {
        username: &user.username,
        email: &user.email,
        is_local: user.is_local,
        is_superuser: user.is_superuser,
        resource_uri: format!("{API}/users/{}/", user.username),
    }
}

pub fn zone(zone: &Zone) -> wire::Zone<'_> {
    wire::Zone {
        id: zone.id,
        name: &zone.name,
        description: &zone.description,
        resource_uri: format!("{API}/zones/{}/", zone.name),
    }
}

pub fn pool(pool: &ResourcePool) -> wire::ResourcePool<'_> {
    wire::ResourcePool {
        id: pool.id,
        name: &pool.name,
        description: &pool.description,
        resource_uri: format!("{API}/resourcepool/{}/", pool.id),
    }
}

pub fn domain(domain: &Domain) -> wire::Domain<'_> {
    wire::Domain {
        id: domain.id,
        name: &domain.name,
        ttl: domain.ttl,
        authoritative: domain.authoritative,
        // DNS resources are not modelled yet, so no domain holds records.
        resource_record_count: 0,
        is_default: domain.id == maas_store::defaults::DEFAULT_DOMAIN_ID,
        resource_uri: format!("{API}/domains/{}/", domain.id),
    }
}

pub fn tag(tag: &Tag) -> wire::Tag<'_> {
    wire::Tag {
        name: &tag.name,
        definition: &tag.definition,
        comment: &tag.comment,
        kernel_opts: tag.kernel_opts.as_deref(),
        resource_uri: format!("{API}/tags/{}/", tag.name),
    }
}

pub fn sshkey(key: &SshKey, with_uri: bool) -> wire::SshKey<'_> {
    wire::SshKey {
        id: key.id,
        key: &key.key,
        keysource: &key.keysource,
        resource_uri: with_uri.then(|| format!("{API}/account/prefs/sshkeys/{}/", key.id)),
    }
}

pub fn event(event: &Event) -> wire::Event<'_> {
    wire::Event {
        id: event.id,
        node: event.system_id.as_deref(),
        hostname: &event.hostname,
        username: event.username.as_deref(),
        level: event.level.name(),
        created: timefmt::event_time(event.created),
        event_type: &event.event_type,
        description: &event.description,
    }
}

/// The network tables of one request, indexed for rendering.
pub struct Catalog {
    pub raw: NetworkCatalog,
    vlans: HashMap<i64, usize>,
    fabrics: HashMap<i64, usize>,
    spaces: HashMap<i64, usize>,
    subnets: HashMap<i64, usize>,
}

impl Catalog {
    pub fn new(raw: NetworkCatalog) -> Catalog {
        let index = |ids: Vec<i64>| ids.into_iter().enumerate().map(|(i, id)| (id, i)).collect();
        Catalog {
            vlans: index(raw.vlans.iter().map(|v| v.id).collect()),
            fabrics: index(raw.fabrics.iter().map(|f| f.id).collect()),
            spaces: index(raw.spaces.iter().map(|s| s.id).collect()),
            subnets: index(raw.subnets.iter().map(|s| s.id).collect()),
            raw,
        }
    }

    pub fn vlan_record(&self, id: i64) -> Option<&Vlan> {
        self.vlans.get(&id).map(|&i| &self.raw.vlans[i])
    }

    pub fn fabric_record(&self, id: i64) -> Option<&Fabric> {
        self.fabrics.get(&id).map(|&i| &self.raw.fabrics[i])
    }

    pub fn space_record(&self, id: i64) -> Option<&Space> {
        self.spaces.get(&id).map(|&i| &self.raw.spaces[i])
    }

    pub fn subnet_record(&self, id: i64) -> Option<&Subnet> {
        self.subnets.get(&id).map(|&i| &self.raw.subnets[i])
    }

    fn space_name(&self, space_id: Option<i64>) -> &str {
        space_id
            .and_then(|id| self.space_record(id))
            .map(|s| s.name.as_str())
            .unwrap_or("undefined")
    }

    fn vlan_inner<'a>(&'a self, vlan: &'a Vlan, with_relay: bool) -> wire::Vlan<'a> {
        let relay = if with_relay {
            vlan.relay_vlan_id
                .and_then(|id| self.vlan_record(id))
                // The relay's own relay is not expanded, so relays can't loop.
                .map(|relay| Box::new(self.vlan_inner(relay, false)))
        } else {
            None
        };
        wire::Vlan {
            id: vlan.id,
            name: match (&vlan.name, vlan.vid) {
                (_, 0) => "untagged".to_owned(),
                (Some(name), _) if !name.is_empty() => name.clone(),
                (_, vid) => vid.to_string(),
            },
            description: &vlan.description,
            vid: vlan.vid,
            fabric: self
                .fabric_record(vlan.fabric_id)
                .map(|f| f.name.as_str())
                .unwrap_or(""),
            fabric_id: vlan.fabric_id,
            mtu: vlan.mtu,
            primary_rack: vlan.primary_rack.as_deref(),
            secondary_rack: vlan.secondary_rack.as_deref(),
            dhcp_on: vlan.dhcp_on,
            external_dhcp: vlan.external_dhcp.as_deref(),
            relay_vlan: relay,
            space: self.space_name(vlan.space_id),
            resource_uri: format!("{API}/vlans/{}/", vlan.id),
        }
    }

    pub fn vlan<'a>(&'a self, vlan: &'a Vlan) -> wire::Vlan<'a> {
        self.vlan_inner(vlan, true)
    }

    pub fn vlan_by_id(&self, id: i64) -> Option<wire::Vlan<'_>> {
        self.vlan_record(id).map(|v| self.vlan(v))
    }

    pub fn subnet<'a>(&'a self, subnet: &'a Subnet) -> Option<wire::Subnet<'a>> {
        let vlan = self.vlan_record(subnet.vlan_id)?;
        Some(wire::Subnet {
            id: subnet.id,
            name: &subnet.name,
            description: &subnet.description,
            vlan: self.vlan(vlan),
            cidr: &subnet.cidr,
            rdns_mode: subnet.rdns_mode,
            gateway_ip: subnet.gateway_ip.as_deref(),
            dns_servers: &subnet.dns_servers,
            allow_dns: subnet.allow_dns,
            allow_proxy: subnet.allow_proxy,
            active_discovery: subnet.active_discovery,
            managed: subnet.managed,
            disabled_boot_architectures: &subnet.disabled_boot_architectures,
            space: self.space_name(vlan.space_id),
            resource_uri: format!("{API}/subnets/{}/", subnet.id),
        })
    }

    pub fn subnet_by_id(&self, id: i64) -> Option<wire::Subnet<'_>> {
        self.subnet_record(id).and_then(|s| self.subnet(s))
    }

    pub fn fabric<'a>(&'a self, fabric: &'a Fabric) -> wire::Fabric<'a> {
        wire::Fabric {
            id: fabric.id,
            name: &fabric.name,
            description: &fabric.description,
            class_type: fabric.class_type.as_deref(),
            vlans: self
                .raw
                .vlans
                .iter()
                .filter(|v| v.fabric_id == fabric.id)
                .map(|v| self.vlan(v))
                .collect(),
            resource_uri: format!("{API}/fabrics/{}/", fabric.id),
        }
    }

    pub fn space<'a>(&'a self, space: &'a Space) -> wire::Space<'a> {
        let vlans: Vec<&Vlan> = self
            .raw
            .vlans
            .iter()
            .filter(|v| v.space_id == Some(space.id))
            .collect();
        wire::Space {
            id: space.id,
            name: &space.name,
            description: &space.description,
            vlans: vlans.iter().map(|v| self.vlan(v)).collect(),
            subnets: self
                .raw
                .subnets
                .iter()
                .filter(|s| vlans.iter().any(|v| v.id == s.vlan_id))
                .filter_map(|s| self.subnet(s))
                .collect(),
            resource_uri: format!("{API}/spaces/{}/", space.id),
        }
    }

    pub fn ip_range<'a>(
        &'a self,
        range: &'a IpRange,
        owner: Option<&'a User>,
    ) -> Option<wire::IpRange<'a>> {
        Some(wire::IpRange {
            id: range.id,
            kind: &range.kind,
            start_ip: &range.start_ip,
            end_ip: &range.end_ip,
            comment: &range.comment,
            user: owner.map(user),
            subnet: self.subnet_by_id(range.subnet_id)?,
            resource_uri: format!("{API}/ipranges/{}/", range.id),
        })
    }
}

fn filesystem(fs: &Filesystem) -> wire::Filesystem<'_> {
    wire::Filesystem {
        fstype: &fs.fstype,
        label: fs.label.as_deref(),
        uuid: fs.uuid.as_deref(),
        mount_point: fs.mount_point.as_deref(),
        mount_options: fs.mount_options.as_deref(),
    }
}

fn filesystem_use(fs: &Filesystem) -> String {
    match &fs.mount_point {
        Some(point) => format!("{} formatted filesystem mounted at {point}", fs.fstype),
        None => format!("Unmounted {} formatted filesystem", fs.fstype),
    }
}

fn partition<'a>(
    system_id: &'a str,
    device: &'a BlockDevice,
    index: usize,
    part: &'a Partition,
) -> wire::Partition<'a> {
    wire::Partition {
        system_id,
        device_id: device.id,
        id: part.id,
        uuid: part.uuid.as_deref(),
        path: format!("/dev/disk/by-dname/{}-part{}", device.name, index + 1),
        kind: "partition",
        size: part.size,
        bootable: part.bootable,
        filesystem: part.filesystem.as_ref().map(filesystem),
        used_for: part
            .filesystem
            .as_ref()
            .map(filesystem_use)
            .unwrap_or_else(|| "Unused".to_owned()),
        tags: &part.tags,
        resource_uri: format!(
            "{API}/nodes/{system_id}/blockdevices/{}/partition/{}",
            device.id, part.id
        ),
    }
}

fn block_device<'a>(system_id: &'a str, device: &'a BlockDevice) -> wire::BlockDevice<'a> {
    let partitioned: i64 = device.partitions.iter().map(|p| p.size).sum();
    let used_size = if device.filesystem.is_some() {
        device.size
    } else {
        partitioned.min(device.size)
    };
    let used_for = if let Some(fs) = &device.filesystem {
        filesystem_use(fs)
    } else if !device.partitions.is_empty() {
        let count = device.partitions.len();
        format!(
            "{} partitioned with {count} partition{}",
            device.partition_table_type.as_deref().unwrap_or("GPT"),
            if count == 1 { "" } else { "s" }
        )
    } else {
        "Unused".to_owned()
    };
    wire::BlockDevice {
        system_id,
        id: device.id,
        name: &device.name,
        uuid: device.uuid.as_deref(),
        kind: device.kind.as_str(),
        path: format!("/dev/disk/by-dname/{}", device.name),
        model: device.model.as_deref(),
        serial: device.serial.as_deref(),
        id_path: device.id_path.as_deref(),
        size: device.size,
        block_size: device.block_size,
        available_size: device.size - used_size,
        used_size,
        used_for,
        tags: &device.tags,
        filesystem: device.filesystem.as_ref().map(filesystem),
        partition_table_type: device.partition_table_type.as_deref(),
        partitions: device
            .partitions
            .iter()
            .enumerate()
            .map(|(i, p)| partition(system_id, device, i, p))
            .collect(),
        firmware_version: device.firmware_version.as_deref(),
        storage_pool: None,
        numa_node: device.numa_node,
        resource_uri: format!("{API}/nodes/{system_id}/blockdevices/{}/", device.id),
    }
}

fn interface<'a>(
    node: &'a Node,
    catalog: &'a Catalog,
    iface: &'a Interface,
) -> wire::Interface<'a> {
    let name_of = |id: i64| {
        node.interfaces
            .iter()
            .find(|i| i.id == id)
            .map(|i| i.name.as_str())
    };
    let mut parents: Vec<&str> = iface
        .parent_ids
        .iter()
        .filter_map(|&id| name_of(id))
        .collect();
    parents.sort_unstable();
    let mut children: Vec<&str> = node
        .interfaces
        .iter()
        .filter(|other| other.parent_ids.contains(&iface.id))
        .map(|other| other.name.as_str())
        .collect();
    children.sort_unstable();
    let vlan = iface.vlan_id.and_then(|id| catalog.vlan_by_id(id));
    let params = if iface.params.is_empty() {
        wire::InterfaceParams::Empty("")
    } else {
        match serde_json::from_str::<&RawValue>(&iface.params) {
            Ok(raw) => wire::InterfaceParams::Object(raw),
            Err(_) => wire::InterfaceParams::Empty(""),
        }
    };
    let params_mtu = serde_json::from_str::<serde_json::Value>(&iface.params)
        .ok()
        .and_then(|v| v.get("mtu").and_then(|m| m.as_i64()));
    let effective_mtu = params_mtu
        .or_else(|| {
            iface
                .vlan_id
                .and_then(|id| catalog.vlan_record(id))
                .map(|v| v.mtu)
        })
        .unwrap_or(iface.mtu);
    wire::Interface {
        system_id: &node.system_id,
        id: iface.id,
        name: &iface.name,
        kind: iface.kind.as_str(),
        vlan,
        mac_address: iface.mac_address.as_deref(),
        parents,
        children,
        tags: &iface.tags,
        enabled: iface.enabled,
        links: iface
            .links
            .iter()
            .map(|link| wire::Link {
                id: link.id,
                mode: link.mode.as_str(),
                subnet: link.subnet_id.and_then(|id| catalog.subnet_by_id(id)),
                ip_address: link.ip.as_deref(),
            })
            .collect(),
        params,
        discovered: if iface.discovered.is_empty() {
            None
        } else {
            Some(
                iface
                    .discovered
                    .iter()
                    .map(|(subnet_id, ip)| wire::Discovered {
                        subnet: subnet_id.and_then(|id| catalog.subnet_by_id(id)),
                        ip_address: ip,
                    })
                    .collect(),
            )
        },
        effective_mtu,
        vendor: iface.vendor.as_deref(),
        product: iface.product.as_deref(),
        firmware_version: iface.firmware_version.as_deref(),
        link_connected: iface.link_connected,
        interface_speed: iface.interface_speed,
        link_speed: iface.link_speed,
        numa_node: iface.numa_node,
        sriov_max_vf: iface.sriov_max_vf,
        resource_uri: format!("{API}/nodes/{}/interfaces/{}/", node.system_id, iface.id),
    }
}

const UNKNOWN: &str = "Unknown";

/// The 18 `hardware_info` keys, `Unknown` where commissioning found nothing.
const HARDWARE_INFO_KEYS: [&str; 18] = [
    "system_vendor",
    "system_product",
    "system_family",
    "system_version",
    "system_sku",
    "system_serial",
    "cpu_model",
    "mainboard_vendor",
    "mainboard_product",
    "mainboard_serial",
    "mainboard_version",
    "mainboard_firmware_vendor",
    "mainboard_firmware_date",
    "mainboard_firmware_version",
    "chassis_vendor",
    "chassis_type",
    "chassis_serial",
    "chassis_version",
];

fn is_ipv4(ip: &str) -> bool {
    ip.parse::<std::net::Ipv4Addr>().is_ok()
}

/// The full machine object of api.md §6.
pub fn machine<'a>(node: &'a Node, catalog: &'a Catalog) -> wire::Machine<'a> {
    let interfaces: Vec<wire::Interface<'a>> = node
        .interfaces
        .iter()
        .map(|i| interface(node, catalog, i))
        .collect();
    let boot_interface = node
        .boot_interface_id
        .and_then(|id| node.interfaces.iter().find(|i| i.id == id))
        .or_else(|| node.interfaces.first())
        .map(|i| interface(node, catalog, i));
    let devices: Vec<wire::BlockDevice<'a>> = node
        .block_devices
        .iter()
        .map(|d| block_device(&node.system_id, d))
        .collect();
    let physical: Vec<wire::BlockDevice<'a>> = node
        .block_devices
        .iter()
        .filter(|d| d.kind == BlockDeviceType::Physical)
        .map(|d| block_device(&node.system_id, d))
        .collect();
    let virtual_devices: Vec<wire::BlockDevice<'a>> = node
        .block_devices
        .iter()
        .filter(|d| d.kind == BlockDeviceType::Virtual)
        .map(|d| block_device(&node.system_id, d))
        .collect();
    let boot_disk = node
        .boot_disk_id
        .and_then(|id| node.block_devices.iter().find(|d| d.id == id))
        .or_else(|| {
            node.block_devices
                .iter()
                .find(|d| d.kind == BlockDeviceType::Physical)
        })
        .map(|d| block_device(&node.system_id, d));
    let storage_bytes: i64 = node
        .block_devices
        .iter()
        .filter(|d| d.kind == BlockDeviceType::Physical)
        .map(|d| d.size)
        .sum();

    let mut ip_addresses: Vec<&str> = node
        .interfaces
        .iter()
        .flat_map(|i| i.links.iter().filter_map(|l| l.ip.as_deref()))
        .collect();
    if ip_addresses.is_empty() {
        ip_addresses = node
            .interfaces
            .iter()
            .flat_map(|i| i.discovered.iter().map(|(_, ip)| ip.as_str()))
            .collect();
    }

    // The default gateway of each family: the gateway of the first linked
    // subnet of that family that has one.
    let gateway = |v4: bool| -> Option<&str> {
        node.interfaces
            .iter()
            .flat_map(|i| &i.links)
            .find_map(|link| {
                let subnet = catalog.subnet_record(link.subnet_id?)?;
                let gw = subnet.gateway_ip.as_deref()?;
                (is_ipv4(gw) == v4).then_some(gw)
            })
    };

    let mut hardware_info: BTreeMap<&str, &str> =
        HARDWARE_INFO_KEYS.iter().map(|k| (*k, UNKNOWN)).collect();
    for (key, value) in &node.hardware_info {
        if let Some(slot) = hardware_info.get_mut(key.as_str()) {
            *slot = value;
        }
    }

    wire::Machine {
        system_id: &node.system_id,
        hostname: &node.hostname,
        description: &node.description,
        hardware_uuid: node.hardware_uuid.as_deref(),
        domain: domain(&node.domain),
        fqdn: format!("{}.{}", node.hostname, node.domain.name),
        owner: node.owner.as_ref().map(|o| o.username.as_str()),
        owner_data: &node.owner_data,
        workload_annotations: &node.owner_data,
        locked: node.locked,
        architecture: node.architecture.as_deref(),
        min_hwe_kernel: node.min_hwe_kernel.as_deref(),
        hwe_kernel: node.hwe_kernel.as_deref(),
        cpu_count: node.cpu_count,
        cpu_speed: node.cpu_speed,
        memory: node.memory,
        swap_size: node.swap_size,
        storage: storage_bytes as f64 / 1_000_000.0,
        status: node.status.number(),
        status_name: node.status.label(),
        status_message: node.status_message.as_deref(),
        status_action: node.status_action.as_deref(),
        osystem: &node.osystem,
        distro_series: &node.distro_series,
        ephemeral_deploy: node.ephemeral_deploy,
        error_description: &node.error_description,
        netboot: node.netboot,
        power_type: &node.power_type,
        power_state: node.power_state.as_str(),
        tag_names: &node.tags,
        address_ttl: node.address_ttl,
        ip_addresses,
        interface_set: interfaces,
        boot_interface,
        zone: zone(&node.zone),
        pool: node.pool.as_ref().map(pool),
        disable_ipv4: false,
        boot_disk,
        blockdevice_set: devices,
        physicalblockdevice_set: physical,
        virtualblockdevice_set: virtual_devices,
        volume_groups: Vec::new(),
        raids: Vec::new(),
        bcaches: Vec::new(),
        cache_sets: Vec::new(),
        special_filesystems: Vec::new(),
        node_type: node.node_type.number(),
        node_type_name: node.node_type.label(),
        parent: None,
        pod: None,
        virtualmachine_id: None,
        default_gateways: wire::DefaultGateways {
            ipv4: wire::Gateway {
                gateway_ip: gateway(true),
                link_id: None,
            },
            ipv6: wire::Gateway {
                gateway_ip: gateway(false),
                link_id: None,
            },
        },
        current_commissioning_result_id: None,
        current_testing_result_id: None,
        current_installation_result_id: None,
        commissioning_status: -1,
        commissioning_status_name: UNKNOWN,
        testing_status: -1,
        testing_status_name: UNKNOWN,
        cpu_test_status: -1,
        cpu_test_status_name: UNKNOWN,
        memory_test_status: -1,
        memory_test_status_name: UNKNOWN,
        storage_test_status: -1,
        storage_test_status_name: UNKNOWN,
        network_test_status: -1,
        network_test_status_name: UNKNOWN,
        interface_test_status: -1,
        interface_test_status_name: UNKNOWN,
        other_test_status: -1,
        other_test_status_name: UNKNOWN,
        hardware_info,
        numanode_set: vec![wire::NumaNode {
            index: 0,
            cores: (0..node.cpu_count).collect(),
            memory: node.memory,
            hugepages_set: Vec::new(),
        }],
        bios_boot_method: node.bios_boot_method.as_deref(),
        enable_hw_sync: node.enable_hw_sync,
        last_sync: None,
        next_sync: None,
        sync_interval: None,
        enable_kernel_crash_dump: node.enable_kernel_crash_dump,
        is_dpu: node.is_dpu,
        constraints_by_type: None,
        resource_uri: format!("{API}/machines/{}/", node.system_id),
    }
}

/// The reduced rendering anonymous enlistment gets.
pub fn anon_machine(node: &Node) -> wire::AnonMachine<'_> {
    wire::AnonMachine {
        system_id: &node.system_id,
        hostname: &node.hostname,
        domain: domain(&node.domain),
        fqdn: format!("{}.{}", node.hostname, node.domain.name),
        architecture: node.architecture.as_deref(),
        status: node.status.number(),
        power_type: &node.power_type,
        power_state: node.power_state.as_str(),
        zone: zone(&node.zone),
        status_action: node.status_action.as_deref(),
        status_message: node.status_message.as_deref(),
        status_name: node.status.label(),
        node_type: node.node_type.number(),
        resource_uri: format!("{API}/machines/{}/", node.system_id),
    }
}
