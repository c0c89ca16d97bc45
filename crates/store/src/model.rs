//! Plain records the store reads and writes.
//!
//! These are the region's storage shapes, not the REST API's JSON: the region
//! turns them into wire objects. Times are Unix milliseconds, passed in by the
//! caller so the store never reads a clock of its own.

use std::collections::BTreeMap;
use std::fmt;

use maas_domain::{NodeStatus, NodeType, PowerState};

/// Milliseconds since the Unix epoch.
pub type Millis = i64;

/// A text secret (API token secret, password hash) that never shows in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub email: String,
    pub is_superuser: bool,
    pub is_active: bool,
    pub is_local: bool,
    pub password_hash: Option<Secret>,
    pub created: Millis,
    pub last_login: Option<Millis>,
}

#[derive(Clone, Debug)]
pub struct NewUser {
    pub username: String,
    pub email: String,
    pub password_hash: Option<Secret>,
    pub is_superuser: bool,
}

/// One API key: an OAuth consumer plus its access token.
#[derive(Clone, Debug, PartialEq)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub consumer_key: String,
    pub consumer_name: String,
    pub token_key: String,
    pub token_secret: Secret,
    pub created: Millis,
}

#[derive(Clone, Debug)]
pub struct NewToken {
    pub user_id: i64,
    pub consumer_key: String,
    pub consumer_name: String,
    pub token_key: String,
    pub token_secret: Secret,
}

/// What a token lookup finds: the token, its user, or only the consumer.
#[derive(Clone, Debug)]
pub enum TokenLookup {
    Found {
        token: Box<ApiToken>,
        user: Box<User>,
    },
    /// The consumer key exists but no token with that key belongs to it.
    UnknownToken,
    UnknownConsumer,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SshKey {
    pub id: i64,
    pub user_id: i64,
    pub key: String,
    pub keysource: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub id: i64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ResourcePool {
    pub id: i64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Domain {
    pub id: i64,
    pub name: String,
    pub authoritative: bool,
    pub ttl: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub id: i64,
    pub name: String,
    pub definition: String,
    pub comment: String,
    pub kernel_opts: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Fabric {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub class_type: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Space {
    pub id: i64,
    pub name: String,
    pub description: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Vlan {
    pub id: i64,
    pub fabric_id: i64,
    pub vid: i64,
    pub name: Option<String>,
    pub description: String,
    pub mtu: i64,
    pub dhcp_on: bool,
    pub external_dhcp: Option<String>,
    pub primary_rack: Option<String>,
    pub secondary_rack: Option<String>,
    pub relay_vlan_id: Option<i64>,
    pub space_id: Option<i64>,
}

/// The fields of a VLAN a caller sets; ids are the store's to choose.
#[derive(Clone, Debug, PartialEq)]
pub struct VlanFields {
    pub vid: i64,
    pub name: Option<String>,
    pub description: String,
    pub mtu: i64,
    pub dhcp_on: bool,
    pub external_dhcp: Option<String>,
    pub primary_rack: Option<String>,
    pub secondary_rack: Option<String>,
    pub relay_vlan_id: Option<i64>,
    pub space_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Subnet {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub cidr: String,
    pub vlan_id: i64,
    pub gateway_ip: Option<String>,
    pub dns_servers: Vec<String>,
    pub rdns_mode: i64,
    pub allow_dns: bool,
    pub allow_proxy: bool,
    pub active_discovery: bool,
    pub managed: bool,
    pub disabled_boot_architectures: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SubnetFields {
    pub name: String,
    pub description: String,
    pub cidr: String,
    pub vlan_id: i64,
    pub gateway_ip: Option<String>,
    pub dns_servers: Vec<String>,
    pub rdns_mode: i64,
    pub allow_dns: bool,
    pub allow_proxy: bool,
    pub active_discovery: bool,
    pub managed: bool,
    pub disabled_boot_architectures: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IpRange {
    pub id: i64,
    pub subnet_id: i64,
    /// `dynamic` or `reserved`.
    pub kind: String,
    pub start_ip: String,
    pub end_ip: String,
    pub comment: String,
    pub user_id: Option<i64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct IpRangeFields {
    pub subnet_id: i64,
    pub kind: String,
    pub start_ip: String,
    pub end_ip: String,
    pub comment: String,
    pub user_id: Option<i64>,
}

/// Everything needed to render nested network objects, loaded in one go.
#[derive(Clone, Debug, Default)]
pub struct NetworkCatalog {
    pub fabrics: Vec<Fabric>,
    pub vlans: Vec<Vlan>,
    pub spaces: Vec<Space>,
    pub subnets: Vec<Subnet>,
}

/// Event levels with MAAS's numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum EventLevel {
    Audit,
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl EventLevel {
    pub const ALL: [EventLevel; 6] = [
        EventLevel::Audit,
        EventLevel::Debug,
        EventLevel::Info,
        EventLevel::Warning,
        EventLevel::Error,
        EventLevel::Critical,
    ];

    pub fn number(self) -> i64 {
        match self {
            EventLevel::Audit => 0,
            EventLevel::Debug => 10,
            EventLevel::Info => 20,
            EventLevel::Warning => 30,
            EventLevel::Error => 40,
            EventLevel::Critical => 50,
        }
    }

    pub fn from_number(number: i64) -> Option<EventLevel> {
        EventLevel::ALL.into_iter().find(|l| l.number() == number)
    }

    pub fn name(self) -> &'static str {
        match self {
            EventLevel::Audit => "AUDIT",
            EventLevel::Debug => "DEBUG",
            EventLevel::Info => "INFO",
            EventLevel::Warning => "WARNING",
            EventLevel::Error => "ERROR",
            EventLevel::Critical => "CRITICAL",
        }
    }

    pub fn from_name(name: &str) -> Option<EventLevel> {
        EventLevel::ALL
            .into_iter()
            .find(|l| l.name().eq_ignore_ascii_case(name))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    pub id: i64,
    pub node_id: Option<i64>,
    pub system_id: Option<String>,
    pub hostname: String,
    pub event_type: String,
    pub description: String,
    pub action: String,
    pub level: EventLevel,
    pub username: Option<String>,
    pub created: Millis,
}

#[derive(Clone, Debug)]
pub struct NewEvent {
    pub node_id: Option<i64>,
    pub event_type: String,
    pub description: String,
    pub action: String,
    pub level: EventLevel,
    pub user_id: Option<i64>,
    pub created: Millis,
    /// Whether this event sets the node's `status_message`/`status_action`.
    pub is_status: bool,
}

/// Filters of `events/?op=query`; lists are "any of".
#[derive(Clone, Debug, Default)]
pub struct EventQuery {
    pub hostnames: Vec<String>,
    pub mac_addresses: Vec<String>,
    pub system_ids: Vec<String>,
    pub zone: Option<String>,
    pub agent_name: Option<String>,
    pub owner: Option<String>,
    /// Only this level (for AUDIT) or this level and above.
    pub level: Option<EventLevel>,
    pub before: Option<i64>,
    pub after: Option<i64>,
    pub limit: i64,
    /// Restrict to events of nodes this user may see (`None`: everything).
    pub visible_to: Option<i64>,
}

/// A minimal reference to a user, as nodes carry their owner.
#[derive(Clone, Debug, PartialEq)]
pub struct UserRef {
    pub id: i64,
    pub username: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InterfaceType {
    Physical,
    Bond,
    Bridge,
    Vlan,
    Alias,
    Unknown,
}

impl InterfaceType {
    pub fn as_str(self) -> &'static str {
        match self {
            InterfaceType::Physical => "physical",
            InterfaceType::Bond => "bond",
            InterfaceType::Bridge => "bridge",
            InterfaceType::Vlan => "vlan",
            InterfaceType::Alias => "alias",
            InterfaceType::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<InterfaceType> {
        [
            InterfaceType::Physical,
            InterfaceType::Bond,
            InterfaceType::Bridge,
            InterfaceType::Vlan,
            InterfaceType::Alias,
            InterfaceType::Unknown,
        ]
        .into_iter()
        .find(|t| t.as_str() == text)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    Auto,
    Dhcp,
    Static,
    LinkUp,
}

impl LinkMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LinkMode::Auto => "auto",
            LinkMode::Dhcp => "dhcp",
            LinkMode::Static => "static",
            LinkMode::LinkUp => "link_up",
        }
    }

    pub fn parse(text: &str) -> Option<LinkMode> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Some(LinkMode::Auto),
            "dhcp" => Some(LinkMode::Dhcp),
            "static" => Some(LinkMode::Static),
            "link_up" => Some(LinkMode::LinkUp),
            _ => None,
        }
    }
}

/// One configured address of an interface (MAAS's StaticIPAddress link).
#[derive(Clone, Debug, PartialEq)]
pub struct IpLink {
    pub id: i64,
    pub mode: LinkMode,
    pub subnet_id: Option<i64>,
    pub ip: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Interface {
    pub id: i64,
    pub name: String,
    pub kind: InterfaceType,
    pub mac_address: Option<String>,
    pub vlan_id: Option<i64>,
    pub enabled: bool,
    /// The `params` JSON object as text, or empty.
    pub params: String,
    pub tags: Vec<String>,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub firmware_version: Option<String>,
    pub link_connected: bool,
    pub interface_speed: i64,
    pub link_speed: i64,
    pub numa_node: Option<i64>,
    pub sriov_max_vf: i64,
    pub mtu: i64,
    /// Ids of the parent interfaces (bond members, the VLAN's parent, ...).
    pub parent_ids: Vec<i64>,
    pub links: Vec<IpLink>,
    /// Addresses seen by DHCP snooping or commissioning: (subnet id, ip).
    pub discovered: Vec<(Option<i64>, String)>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Filesystem {
    pub fstype: String,
    pub label: Option<String>,
    pub uuid: Option<String>,
    pub mount_point: Option<String>,
    pub mount_options: Option<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Partition {
    pub id: i64,
    pub uuid: Option<String>,
    pub size: i64,
    pub bootable: bool,
    pub tags: Vec<String>,
    pub filesystem: Option<Filesystem>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockDeviceType {
    Physical,
    Virtual,
}

impl BlockDeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockDeviceType::Physical => "physical",
            BlockDeviceType::Virtual => "virtual",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct BlockDevice {
    pub id: i64,
    pub name: String,
    pub kind: BlockDeviceType,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub id_path: Option<String>,
    pub size: i64,
    pub block_size: i64,
    pub tags: Vec<String>,
    pub uuid: Option<String>,
    pub firmware_version: Option<String>,
    pub numa_node: Option<i64>,
    pub partition_table_type: Option<String>,
    pub filesystem: Option<Filesystem>,
    pub partitions: Vec<Partition>,
}

/// A node (machine, device or controller) with everything its rendering needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub id: i64,
    pub system_id: String,
    pub hostname: String,
    pub description: String,
    pub node_type: NodeType,
    pub status: NodeStatus,
    pub previous_status: NodeStatus,
    pub owner: Option<UserRef>,
    pub domain: Domain,
    pub zone: Zone,
    pub pool: Option<ResourcePool>,
    pub architecture: Option<String>,
    pub min_hwe_kernel: Option<String>,
    pub hwe_kernel: Option<String>,
    pub cpu_count: i64,
    pub cpu_speed: i64,
    pub memory: i64,
    pub swap_size: Option<i64>,
    pub osystem: String,
    pub distro_series: String,
    pub power_type: String,
    pub power_parameters: BTreeMap<String, String>,
    pub power_state: PowerState,
    pub locked: bool,
    pub netboot: bool,
    pub ephemeral_deploy: bool,
    pub error_description: String,
    pub agent_name: String,
    pub owner_data: BTreeMap<String, String>,
    pub hardware_uuid: Option<String>,
    pub hardware_info: BTreeMap<String, String>,
    pub enable_hw_sync: bool,
    pub enable_kernel_crash_dump: bool,
    pub is_dpu: bool,
    pub address_ttl: Option<i64>,
    pub boot_interface_id: Option<i64>,
    pub boot_disk_id: Option<i64>,
    pub status_message: Option<String>,
    pub status_action: Option<String>,
    pub status_expires: Option<Millis>,
    pub bios_boot_method: Option<String>,
    pub created: Millis,
    pub updated: Millis,
    pub tags: Vec<String>,
    pub interfaces: Vec<Interface>,
    pub block_devices: Vec<BlockDevice>,
    /// User data for the deployed OS, as given (base64 text).
    pub user_data: Option<String>,
    /// Set while a machine that enlisted itself runs its first commissioning.
    pub enlisting: bool,
    pub enable_ssh: bool,
    pub skip_networking: bool,
    pub skip_storage: bool,
    pub install_kvm: bool,
    pub current_commissioning_set_id: Option<i64>,
    pub current_testing_set_id: Option<i64>,
    pub current_installation_set_id: Option<i64>,
    pub current_release_set_id: Option<i64>,
}

/// A node to create; the store picks ids and records the interfaces by MAC.
#[derive(Clone, Debug)]
pub struct NewNode {
    pub system_id: String,
    pub hostname: String,
    pub description: String,
    pub node_type: NodeType,
    pub status: NodeStatus,
    pub owner_id: Option<i64>,
    pub domain_id: i64,
    pub zone_id: i64,
    pub pool_id: Option<i64>,
    pub architecture: Option<String>,
    pub min_hwe_kernel: Option<String>,
    pub power_type: String,
    pub power_parameters: BTreeMap<String, String>,
    pub is_dpu: bool,
    pub created: Millis,
    /// MACs of the physical interfaces, the first one the boot interface.
    pub mac_addresses: Vec<String>,
}

/// Fields of a node that an update may change; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct NodeUpdate {
    pub hostname: Option<String>,
    pub description: Option<String>,
    pub domain_id: Option<i64>,
    pub zone_id: Option<i64>,
    pub pool_id: Option<Option<i64>>,
    pub architecture: Option<Option<String>>,
    pub min_hwe_kernel: Option<Option<String>>,
    pub hwe_kernel: Option<Option<String>>,
    pub cpu_count: Option<i64>,
    pub cpu_speed: Option<i64>,
    pub memory: Option<i64>,
    pub swap_size: Option<Option<i64>>,
    pub power_type: Option<String>,
    pub power_parameters: Option<BTreeMap<String, String>>,
    pub power_state: Option<PowerState>,
    pub locked: Option<bool>,
    pub netboot: Option<bool>,
    pub owner_data: Option<BTreeMap<String, String>>,
    pub osystem: Option<String>,
    pub distro_series: Option<String>,
    pub error_description: Option<String>,
    pub agent_name: Option<String>,
    pub ephemeral_deploy: Option<bool>,
    pub enable_hw_sync: Option<bool>,
    pub enable_kernel_crash_dump: Option<bool>,
    pub user_data: Option<Option<String>>,
    pub enlisting: Option<bool>,
    pub enable_ssh: Option<bool>,
    pub skip_networking: Option<bool>,
    pub skip_storage: Option<bool>,
    pub install_kvm: Option<bool>,
    pub status_expires: Option<Option<Millis>>,
    pub updated: Millis,
}

/// A status change: written only if the node is still in `from` (and, when
/// `owner_must_be` is set, still has that owner), so racing writers can't both win.
#[derive(Clone, Debug)]
pub struct StatusChange {
    pub from: NodeStatus,
    pub to: NodeStatus,
    /// `Some(None)` clears the owner, `Some(Some(id))` sets it.
    pub owner: Option<Option<i64>>,
    pub owner_must_be: Option<Option<i64>>,
    pub agent_name: Option<String>,
    pub status_expires: Option<Option<Millis>>,
    pub error_description: Option<String>,
    /// Leave `previous_status` as it is (when leaving rescue or testing, so
    /// the machine can return where it came from).
    pub keep_previous: bool,
    /// Events recorded in the same transaction, only if the change is written.
    pub events: Vec<NewEvent>,
    pub updated: Millis,
}

/// Hardware found by commissioning (or loaded by the benchmark), written in one go.
#[derive(Clone, Debug, Default)]
pub struct Inventory {
    pub cpu_count: i64,
    pub cpu_speed: i64,
    pub memory: i64,
    pub hardware_uuid: Option<String>,
    pub hardware_info: BTreeMap<String, String>,
    pub bios_boot_method: Option<String>,
    pub interfaces: Vec<NewInterface>,
    pub block_devices: Vec<NewBlockDevice>,
}

#[derive(Clone, Debug)]
pub struct NewInterface {
    pub name: String,
    pub kind: InterfaceType,
    pub mac_address: Option<String>,
    pub vlan_id: Option<i64>,
    pub enabled: bool,
    pub params: String,
    pub tags: Vec<String>,
    pub vendor: Option<String>,
    pub product: Option<String>,
    pub firmware_version: Option<String>,
    pub link_connected: bool,
    pub interface_speed: i64,
    pub link_speed: i64,
    pub numa_node: Option<i64>,
    pub sriov_max_vf: i64,
    pub mtu: i64,
    /// Indexes into the same `interfaces` list.
    pub parents: Vec<usize>,
    pub links: Vec<NewIpLink>,
    /// Addresses seen on the interface (subnet id if known, address).
    pub discovered: Vec<(Option<i64>, String)>,
    pub boot: bool,
}

#[derive(Clone, Debug)]
pub struct NewIpLink {
    pub mode: LinkMode,
    pub subnet_id: Option<i64>,
    pub ip: Option<String>,
}

#[derive(Clone, Debug)]
pub struct NewBlockDevice {
    pub name: String,
    pub kind: BlockDeviceType,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub id_path: Option<String>,
    pub size: i64,
    pub block_size: i64,
    pub tags: Vec<String>,
    pub uuid: Option<String>,
    pub firmware_version: Option<String>,
    pub numa_node: Option<i64>,
    pub partition_table_type: Option<String>,
    pub filesystem: Option<Filesystem>,
    pub partitions: Vec<NewPartition>,
    pub boot: bool,
}

#[derive(Clone, Debug)]
pub struct NewPartition {
    pub uuid: Option<String>,
    pub size: i64,
    pub bootable: bool,
    pub tags: Vec<String>,
    pub filesystem: Option<Filesystem>,
}

/// Filters for node listings (`machines/`, `nodes/`). Lists are "any of";
/// different fields are combined with AND; `not_*` excludes.
#[derive(Clone, Debug, Default)]
pub struct NodeFilter {
    pub node_types: Vec<NodeType>,
    pub system_ids: Vec<String>,
    pub not_system_ids: Vec<String>,
    pub hostnames: Vec<String>,
    pub not_hostnames: Vec<String>,
    pub mac_addresses: Vec<String>,
    pub domains: Vec<String>,
    pub not_domains: Vec<String>,
    pub agent_names: Vec<String>,
    pub not_agent_names: Vec<String>,
    pub statuses: Vec<NodeStatus>,
    pub not_statuses: Vec<NodeStatus>,
    /// `amd64` matches every amd64 subarchitecture; `amd64/generic` one.
    pub archs: Vec<String>,
    pub not_archs: Vec<String>,
    /// The node must carry all of these tags.
    pub tags: Vec<String>,
    /// The node must carry none of these tags.
    pub not_tags: Vec<String>,
    pub zones: Vec<String>,
    pub not_zones: Vec<String>,
    pub pools: Vec<String>,
    pub not_pools: Vec<String>,
    pub owners: Vec<String>,
    pub not_owners: Vec<String>,
    pub power_states: Vec<PowerState>,
    pub not_power_states: Vec<PowerState>,
    /// `Some(true)`: ephemeral (memory) deployments only; `Some(false)`: disk.
    pub ephemeral: Option<bool>,
    pub min_cpu_count: Option<i64>,
    pub min_cpu_speed: Option<i64>,
    pub min_memory: Option<i64>,
    /// Only nodes whose owner is this user or nobody (non-admin visibility).
    pub visible_to: Option<i64>,
    /// Fabric names: linked to any of them / to none of them.
    pub fabrics: Vec<String>,
    pub not_fabrics: Vec<String>,
    /// Subnet ids the node must be linked to (all of them) / none of them.
    pub subnet_ids: Vec<i64>,
    pub not_subnet_ids: Vec<i64>,
    /// Set when a filter names something that can't exist (a VM host in a
    /// region without any): nothing matches.
    pub match_none: bool,
}

/// Counts returned by a tag's `update_nodes`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TagChanges {
    pub added: u64,
    pub removed: u64,
}

/// Script types with MAAS's numbers.
pub mod script_type {
    pub const COMMISSIONING: i64 = 0;
    pub const TESTING: i64 = 2;
    pub const RELEASE: i64 = 3;
}

/// Result (script set) types with MAAS's numbers.
pub mod result_type {
    pub const COMMISSIONING: i64 = 0;
    pub const INSTALLATION: i64 = 1;
    pub const TESTING: i64 = 2;
    pub const RELEASE: i64 = 3;
}

/// A commissioning, testing or release script.
#[derive(Clone, Debug, PartialEq)]
pub struct Script {
    pub id: i64,
    pub name: String,
    pub title: String,
    pub description: String,
    pub tags: Vec<String>,
    pub script_type: i64,
    pub hardware_type: i64,
    pub parallel: i64,
    pub timeout_seconds: i64,
    pub destructive: bool,
    pub is_default: bool,
    pub may_reboot: bool,
    pub script: String,
}

/// One script's run on one node.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptResult {
    pub id: i64,
    pub script_set_id: i64,
    pub script_id: Option<i64>,
    pub name: String,
    pub status: i64,
    pub exit_status: Option<i64>,
    pub started: Option<Millis>,
    pub ended: Option<Millis>,
    pub runtime: String,
    pub output: Option<Vec<u8>>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub result: Option<Vec<u8>>,
    /// Script parameters as a JSON object.
    pub parameters: String,
    pub created: Millis,
    pub updated: Millis,
}

/// The scripts one action (commissioning, testing, ...) ran on a node.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptSet {
    pub id: i64,
    pub node_id: i64,
    pub result_type: i64,
    pub last_ping: Option<Millis>,
    pub created: Millis,
    pub results: Vec<ScriptResult>,
}

#[derive(Clone, Debug)]
pub struct NewScriptResult {
    pub script_id: Option<i64>,
    pub name: String,
    pub status: i64,
    pub parameters: String,
}

/// Fields of a result to change; `None` leaves a field alone.
#[derive(Clone, Debug, Default)]
pub struct ScriptResultUpdate {
    pub status: Option<i64>,
    pub exit_status: Option<Option<i64>>,
    pub started: Option<Millis>,
    pub ended: Option<Millis>,
    pub runtime: Option<String>,
    pub output: Option<Vec<u8>>,
    pub stdout: Option<Vec<u8>>,
    pub stderr: Option<Vec<u8>>,
    pub result: Option<Vec<u8>>,
    pub updated: Millis,
}

/// A node's metadata-API credentials.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeToken {
    pub node_id: i64,
    pub consumer_key: String,
    pub token_key: String,
    pub token_secret: Secret,
}

/// A machine the power poller keeps current.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerPolledNode {
    pub id: i64,
    pub system_id: String,
    pub power_type: String,
    /// The BMC's `power_address` (empty when unset): queries to one address are limited.
    pub power_address: String,
    pub power_state: maas_domain::PowerState,
}

/// A node whose status timer has run out.
#[derive(Clone, Debug, PartialEq)]
pub struct ExpiredNode {
    pub id: i64,
    pub system_id: String,
    pub status: maas_domain::NodeStatus,
    pub status_expires: Millis,
}

/// A logged-in dashboard session (api.md §2.7). Only a hash of the session
/// key (the `sessionid` cookie) is stored, so a copy of the database can't
/// be used to take over sessions.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub key_hash: String,
    pub user_id: i64,
    /// The `csrftoken` the session was given; unsafe requests must echo it.
    pub csrf_token: String,
    pub created: Millis,
    pub expires: Millis,
}

/// A node listing for the dashboard: a filter, free-text terms, an order and
/// an optional grouping that is ordered first.
#[derive(Clone, Debug, Default)]
pub struct NodeQuery {
    pub filter: NodeFilter,
    /// Every term must match the hostname, the system_id or the description
    /// (case-insensitive substring).
    pub text: Vec<String>,
    pub group: Option<NodeGroup>,
    pub sort: NodeSort,
    pub descending: bool,
}

/// Columns a node listing can be ordered by.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NodeSort {
    #[default]
    Hostname,
    Status,
    PowerState,
    Owner,
    Pool,
    Zone,
    Architecture,
    CpuCount,
    Memory,
    /// Number of physical block devices.
    Disks,
    /// Total size of physical block devices.
    Storage,
}

/// Columns a node listing can be grouped by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeGroup {
    Status,
    Owner,
    Pool,
    Zone,
    Architecture,
    PowerState,
}

/// One group of a grouped listing: its key (the status number as text for
/// [`NodeGroup::Status`], the name otherwise; `None` for no owner or pool)
/// and how many nodes match in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeGroupCount {
    pub key: Option<String>,
    pub count: i64,
}
