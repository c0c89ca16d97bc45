//! Wire objects. Each struct serialises to exactly the keys MAAS sends for
//! that type, in a stable order; `resource_uri` is a path under `/MAAS/api/2.0/`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;

/// `GET version/`.
#[derive(Serialize, Debug, Clone)]
pub struct Version<'a> {
    pub capabilities: &'a [&'a str],
    pub version: &'a str,
    pub subversion: &'a str,
}

#[derive(Serialize, Debug, Clone)]
pub struct User<'a> {
    pub username: &'a str,
    pub email: &'a str,
    pub is_local: bool,
    pub is_superuser: bool,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Credentials<'a> {
    pub consumer_key: &'a str,
    pub name: &'a str,
    pub token_key: &'a str,
    pub token_secret: &'a str,
}

#[derive(Serialize, Debug, Clone)]
pub struct TokenListEntry<'a> {
    pub name: &'a str,
    pub token: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct SshKey<'a> {
    pub id: i64,
    pub key: &'a str,
    pub keysource: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_uri: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Zone<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct ResourcePool<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Domain<'a> {
    pub id: i64,
    pub name: &'a str,
    pub ttl: Option<i64>,
    pub authoritative: bool,
    pub resource_record_count: i64,
    pub is_default: bool,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Tag<'a> {
    pub name: &'a str,
    pub definition: &'a str,
    pub comment: &'a str,
    pub kernel_opts: Option<&'a str>,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Vlan<'a> {
    pub id: i64,
    pub name: String,
    pub description: &'a str,
    pub vid: i64,
    pub fabric: &'a str,
    pub fabric_id: i64,
    pub mtu: i64,
    pub primary_rack: Option<&'a str>,
    pub secondary_rack: Option<&'a str>,
    pub dhcp_on: bool,
    pub external_dhcp: Option<&'a str>,
    pub relay_vlan: Option<Box<Vlan<'a>>>,
    pub space: &'a str,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Subnet<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub vlan: Vlan<'a>,
    pub cidr: &'a str,
    pub rdns_mode: i64,
    pub gateway_ip: Option<&'a str>,
    pub dns_servers: &'a [String],
    pub allow_dns: bool,
    pub allow_proxy: bool,
    pub active_discovery: bool,
    pub managed: bool,
    pub disabled_boot_architectures: &'a [String],
    pub space: &'a str,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Fabric<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub class_type: Option<&'a str>,
    pub vlans: Vec<Vlan<'a>>,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Space<'a> {
    pub id: i64,
    pub name: &'a str,
    pub description: &'a str,
    pub vlans: Vec<Vlan<'a>>,
    pub subnets: Vec<Subnet<'a>>,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct IpRange<'a> {
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub start_ip: &'a str,
    pub end_ip: &'a str,
    pub comment: &'a str,
    pub user: Option<User<'a>>,
    pub subnet: Subnet<'a>,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Event<'a> {
    pub id: i64,
    pub node: Option<&'a str>,
    pub hostname: &'a str,
    pub username: Option<&'a str>,
    pub level: &'a str,
    pub created: String,
    #[serde(rename = "type")]
    pub event_type: &'a str,
    pub description: &'a str,
}

#[derive(Serialize, Debug, Clone)]
pub struct EventPage<'a> {
    pub count: usize,
    pub events: Vec<Event<'a>>,
    pub next_uri: String,
    pub prev_uri: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Link<'a> {
    pub id: i64,
    pub mode: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subnet: Option<Subnet<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_address: Option<&'a str>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Discovered<'a> {
    pub subnet: Option<Subnet<'a>>,
    pub ip_address: &'a str,
}

/// An interface's `params`: its JSON object, or `""` when it has none.
#[derive(Serialize, Debug, Clone)]
#[serde(untagged)]
pub enum InterfaceParams<'a> {
    Object(&'a RawValue),
    Empty(&'static str),
}

#[derive(Serialize, Debug, Clone)]
pub struct Interface<'a> {
    pub system_id: &'a str,
    pub id: i64,
    pub name: &'a str,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub vlan: Option<Vlan<'a>>,
    pub mac_address: Option<&'a str>,
    pub parents: Vec<&'a str>,
    pub children: Vec<&'a str>,
    pub tags: &'a [String],
    pub enabled: bool,
    pub links: Vec<Link<'a>>,
    pub params: InterfaceParams<'a>,
    pub discovered: Option<Vec<Discovered<'a>>>,
    pub effective_mtu: i64,
    pub vendor: Option<&'a str>,
    pub product: Option<&'a str>,
    pub firmware_version: Option<&'a str>,
    pub link_connected: bool,
    pub interface_speed: i64,
    pub link_speed: i64,
    pub numa_node: Option<i64>,
    pub sriov_max_vf: i64,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Filesystem<'a> {
    pub fstype: &'a str,
    pub label: Option<&'a str>,
    pub uuid: Option<&'a str>,
    pub mount_point: Option<&'a str>,
    pub mount_options: Option<&'a str>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Partition<'a> {
    pub system_id: &'a str,
    pub device_id: i64,
    pub id: i64,
    pub uuid: Option<&'a str>,
    pub path: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub size: i64,
    pub bootable: bool,
    pub filesystem: Option<Filesystem<'a>>,
    pub used_for: String,
    pub tags: &'a [String],
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct BlockDevice<'a> {
    pub system_id: &'a str,
    pub id: i64,
    pub name: &'a str,
    pub uuid: Option<&'a str>,
    #[serde(rename = "type")]
    pub kind: &'a str,
    pub path: String,
    pub model: Option<&'a str>,
    pub serial: Option<&'a str>,
    pub id_path: Option<&'a str>,
    pub size: i64,
    pub block_size: i64,
    pub available_size: i64,
    pub used_size: i64,
    pub used_for: String,
    pub tags: &'a [String],
    pub filesystem: Option<Filesystem<'a>>,
    pub partition_table_type: Option<&'a str>,
    pub partitions: Vec<Partition<'a>>,
    pub firmware_version: Option<&'a str>,
    pub storage_pool: Option<&'a str>,
    pub numa_node: Option<i64>,
    pub resource_uri: String,
}

#[derive(Serialize, Debug, Clone)]
pub struct Gateway<'a> {
    pub gateway_ip: Option<&'a str>,
    pub link_id: Option<i64>,
}

#[derive(Serialize, Debug, Clone)]
pub struct DefaultGateways<'a> {
    pub ipv4: Gateway<'a>,
    pub ipv6: Gateway<'a>,
}

#[derive(Serialize, Debug, Clone)]
pub struct NumaNode {
    pub index: i64,
    pub cores: Vec<i64>,
    pub memory: i64,
    pub hugepages_set: Vec<()>,
}

/// `allocate`'s extra key: which devices matched each labelled constraint.
#[derive(Serialize, Debug, Clone, Default)]
pub struct ConstraintsByType {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub storage: BTreeMap<String, Vec<i64>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub interfaces: BTreeMap<String, Vec<i64>>,
}

#[derive(Serialize, Debug, Clone)]
pub struct Machine<'a> {
    pub system_id: &'a str,
    pub hostname: &'a str,
    pub description: &'a str,
    pub hardware_uuid: Option<&'a str>,
    pub domain: Domain<'a>,
    pub fqdn: String,
    pub owner: Option<&'a str>,
    pub owner_data: &'a BTreeMap<String, String>,
    pub workload_annotations: &'a BTreeMap<String, String>,
    pub locked: bool,
    pub architecture: Option<&'a str>,
    pub min_hwe_kernel: Option<&'a str>,
    pub hwe_kernel: Option<&'a str>,
    pub cpu_count: i64,
    pub cpu_speed: i64,
    pub memory: i64,
    pub swap_size: Option<i64>,
    pub storage: f64,
    pub status: i64,
    pub status_name: &'static str,
    pub status_message: Option<&'a str>,
    pub status_action: Option<&'a str>,
    pub osystem: &'a str,
    pub distro_series: &'a str,
    pub ephemeral_deploy: bool,
    pub error_description: &'a str,
    pub netboot: bool,
    pub power_type: &'a str,
    pub power_state: &'static str,
    pub tag_names: &'a [String],
    pub address_ttl: Option<i64>,
    pub ip_addresses: Vec<&'a str>,
    pub interface_set: Vec<Interface<'a>>,
    pub boot_interface: Option<Interface<'a>>,
    pub zone: Zone<'a>,
    pub pool: Option<ResourcePool<'a>>,
    pub disable_ipv4: bool,
    pub boot_disk: Option<BlockDevice<'a>>,
    pub blockdevice_set: Vec<BlockDevice<'a>>,
    pub physicalblockdevice_set: Vec<BlockDevice<'a>>,
    pub virtualblockdevice_set: Vec<BlockDevice<'a>>,
    pub volume_groups: Vec<()>,
    pub raids: Vec<()>,
    pub bcaches: Vec<()>,
    pub cache_sets: Vec<()>,
    pub special_filesystems: Vec<()>,
    pub node_type: i64,
    pub node_type_name: &'static str,
    pub parent: Option<()>,
    pub pod: Option<()>,
    pub virtualmachine_id: Option<i64>,
    pub default_gateways: DefaultGateways<'a>,
    pub current_commissioning_result_id: Option<i64>,
    pub current_testing_result_id: Option<i64>,
    pub current_installation_result_id: Option<i64>,
    pub commissioning_status: i64,
    pub commissioning_status_name: &'static str,
    pub testing_status: i64,
    pub testing_status_name: &'static str,
    pub cpu_test_status: i64,
    pub cpu_test_status_name: &'static str,
    pub memory_test_status: i64,
    pub memory_test_status_name: &'static str,
    pub storage_test_status: i64,
    pub storage_test_status_name: &'static str,
    pub network_test_status: i64,
    pub network_test_status_name: &'static str,
    pub interface_test_status: i64,
    pub interface_test_status_name: &'static str,
    pub other_test_status: i64,
    pub other_test_status_name: &'static str,
    pub hardware_info: BTreeMap<&'a str, &'a str>,
    pub numanode_set: Vec<NumaNode>,
    pub bios_boot_method: Option<&'a str>,
    pub enable_hw_sync: bool,
    pub last_sync: Option<String>,
    pub next_sync: Option<String>,
    pub sync_interval: Option<i64>,
    pub enable_kernel_crash_dump: bool,
    pub is_dpu: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub constraints_by_type: Option<ConstraintsByType>,
    pub resource_uri: String,
}

/// The reduced machine answered to anonymous enlistment.
#[derive(Serialize, Debug, Clone)]
pub struct AnonMachine<'a> {
    pub system_id: &'a str,
    pub hostname: &'a str,
    pub domain: Domain<'a>,
    pub fqdn: String,
    pub architecture: Option<&'a str>,
    pub status: i64,
    pub power_type: &'a str,
    pub power_state: &'static str,
    pub zone: Zone<'a>,
    pub status_action: Option<&'a str>,
    pub status_message: Option<&'a str>,
    pub status_name: &'static str,
    pub node_type: i64,
    pub resource_uri: String,
}
