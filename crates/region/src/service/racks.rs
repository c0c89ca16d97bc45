//! Rack controllers: registration (the rack's interfaces become fabrics, VLANs and subnets,
//! as in MAAS), the DHCP configuration each rack serves, the leases racks report, and the
//! status of their services as the API shows it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use maas_domain::{Cidr, NodeStatus, NodeType, SystemId};
use maas_rpc::{
    DhcpConfig, DhcpHost, DhcpInterface, DhcpSubnet, LeaseAction, LeaseUpdate, RackInterface,
    Registration, ServiceState,
};
use maas_store::defaults::{DEFAULT_DOMAIN_ID, DEFAULT_ZONE_ID};
use maas_store::{
    ControllerInfo, EventLevel, InterfaceType, Inventory, IpRange, LeaseRecord, LinkMode,
    NetworkCatalog, NewEvent, NewInterface, NewIpLink, NewNode, Node, NodeFilter, ServiceStatus,
    StaticAddress, Store, StoreError, SubnetFields, VlanFields,
};

use crate::error::{ServiceError, ServiceResult};
use crate::region::Region;

/// A link not refreshed for this long no longer counts (heartbeats come every 30 s).
pub const LINK_STALE_MILLIS: i64 = 90_000;

/// Services a rack reports; shown for every rack, `unknown` until reported.
pub const RACK_SERVICES: [&str; 4] = ["rackd", "dhcpd", "tftp", "http"];

fn is_controller(node_type: NodeType) -> bool {
    matches!(
        node_type,
        NodeType::RackController | NodeType::RegionAndRackController
    )
}

/// The short host name of a reported hostname (`rack1.example.com` → `rack1`), made safe
/// for MAAS's hostname rules.
fn short_hostname(hostname: &str) -> String {
    let first = hostname.split('.').next().unwrap_or("");
    let cleaned: String = first
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_matches('-');
    if trimmed.is_empty() {
        "rack".to_owned()
    } else {
        trimmed.chars().take(63).collect()
    }
}

fn interface_kind(kind: &str) -> InterfaceType {
    match kind {
        "bond" => InterfaceType::Bond,
        "bridge" => InterfaceType::Bridge,
        "vlan" => InterfaceType::Vlan,
        "physical" => InterfaceType::Physical,
        _ => InterfaceType::Unknown,
    }
}

/// Finds the node a registering rack is: by its system_id, then its hostname, then any of
/// its MACs.
async fn existing_node(
    store: &dyn Store,
    registration: &Registration,
) -> ServiceResult<Option<Node>> {
    if let Some(system_id) = registration.system_id.as_deref().filter(|s| !s.is_empty())
        && let Some(node) = store.node_by_system_id(system_id).await?
    {
        return Ok(Some(node));
    }
    let by_name = NodeFilter {
        hostnames: vec![short_hostname(&registration.hostname)],
        node_types: vec![NodeType::RackController, NodeType::RegionAndRackController],
        ..NodeFilter::default()
    };
    if let Some(node) = store.nodes(&by_name, 0, 1).await?.into_iter().next() {
        return Ok(Some(node));
    }
    for interface in &registration.interfaces {
        if let Some(mac) = interface.mac_address.as_deref()
            && let Some(node) = store.node_by_mac(&mac.to_ascii_lowercase()).await?
        {
            return Ok(Some(node));
        }
    }
    Ok(None)
}

/// Registers (or re-registers) a rack: creates its node when it is new, records its
/// interfaces on the fabrics, VLANs and subnets their addresses belong to (creating the
/// ones not known yet), and its version. Returns the rack's node.
pub async fn register(region: &Region, registration: &Registration) -> ServiceResult<Node> {
    let store = region.store.as_ref();
    let now = region.now();
    let macs: Vec<String> = registration
        .interfaces
        .iter()
        .filter(|i| i.kind == "physical")
        .filter_map(|i| i.mac_address.as_deref())
        .filter_map(|m| m.parse::<maas_domain::MacAddress>().ok())
        .map(|m| m.to_string())
        .collect();
    let node = match existing_node(store, registration).await? {
        Some(node) if is_controller(node.node_type) => node,
        Some(node) => {
            return Err(ServiceError::Conflict(format!(
                "{} {} ({}) already has one of this rack's MAC addresses; delete it before \
                 registering the rack",
                node.node_type.label(),
                node.hostname,
                node.system_id
            )));
        }
        None => create_rack(store, registration, &macs, now).await?,
    };
    let interfaces = rack_interfaces(store, &node, &registration.interfaces, now).await?;
    store
        .set_inventory(
            node.id,
            Inventory {
                cpu_count: node.cpu_count,
                cpu_speed: node.cpu_speed,
                memory: node.memory,
                hardware_uuid: node.hardware_uuid.clone(),
                hardware_info: node.hardware_info.clone(),
                bios_boot_method: node.bios_boot_method.clone(),
                interfaces,
                block_devices: crate::service::inventory::keep_block_devices(&node),
            },
            now,
        )
        .await?;
    let loopback = maas_rpc::transport::link_target(&registration.url)
        .ok()
        .map(|(address, _)| {
            let host = address.rsplit_once(':').map(|(h, _)| h).unwrap_or(&address);
            let host = host.trim_start_matches('[').trim_end_matches(']');
            host == "localhost"
                || host
                    .parse::<IpAddr>()
                    .map(|ip| ip.is_loopback())
                    .unwrap_or(false)
        })
        .unwrap_or(false);
    store
        .set_controller_info(&ControllerInfo {
            node_id: node.id,
            version: registration.version.clone(),
            url: if loopback {
                String::new()
            } else {
                registration.url.clone()
            },
            registered: now,
        })
        .await?;
    region.network_changed();
    store
        .node_by_system_id(&node.system_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Rack controller"))
}

async fn create_rack(
    store: &dyn Store,
    registration: &Registration,
    macs: &[String],
    now: i64,
) -> ServiceResult<Node> {
    let hostname = short_hostname(&registration.hostname);
    let mut last = None;
    for _ in 0..16 {
        let system_id = registration
            .system_id
            .clone()
            .filter(|s| !s.is_empty() && last.is_none())
            .unwrap_or_else(|| SystemId::from_random(rand::random()).to_string());
        let node = NewNode {
            system_id,
            hostname: hostname.clone(),
            description: String::new(),
            node_type: NodeType::RackController,
            status: NodeStatus::Deployed,
            owner_id: None,
            domain_id: DEFAULT_DOMAIN_ID,
            zone_id: DEFAULT_ZONE_ID,
            pool_id: None,
            architecture: None,
            min_hwe_kernel: None,
            power_type: String::new(),
            power_parameters: BTreeMap::new(),
            is_dpu: false,
            created: now,
            // The interfaces come with the full inventory right after.
            mac_addresses: Vec::new(),
        };
        match store.create_node(node).await {
            Ok(node) => {
                tracing::info!(system_id = %node.system_id, hostname = %node.hostname, macs = ?macs, "rack controller registered");
                store
                    .create_event(NewEvent {
                        node_id: Some(node.id),
                        event_type: "Registered".to_owned(),
                        description: format!("Rack controller {hostname} registered"),
                        action: String::new(),
                        level: EventLevel::Info,
                        user_id: None,
                        created: now,
                        is_status: false,
                    })
                    .await?;
                return Ok(node);
            }
            Err(StoreError::Conflict { what }) => last = Some(what),
            Err(other) => return Err(other.into()),
        }
    }
    Err(ServiceError::Conflict(format!(
        "cannot create the rack controller: {}",
        last.unwrap_or_default()
    )))
}

/// The VLAN an interface is on and its address links: addresses on known subnets join
/// those subnets' VLANs; others get a new subnet, on a new fabric for an untagged interface
/// (as MAAS does) or on VLAN `vid` of the parent's fabric for a VLAN interface.
async fn rack_interfaces(
    store: &dyn Store,
    node: &Node,
    reported: &[RackInterface],
    now: i64,
) -> ServiceResult<Vec<NewInterface>> {
    let mut catalog = store.network_catalog().await?;
    let previous: HashMap<&str, Option<i64>> = node
        .interfaces
        .iter()
        .map(|i| (i.name.as_str(), i.vlan_id))
        .collect();
    // Parents first, so a VLAN interface can find its parent's fabric.
    let mut order: Vec<usize> = (0..reported.len()).collect();
    order.sort_by_key(|&i| (reported[i].kind == "vlan", i));
    let mut vlan_of: HashMap<String, Option<i64>> = HashMap::new();
    let mut built: Vec<Option<NewInterface>> = vec![None; reported.len()];
    for index in order {
        let interface = &reported[index];
        let mut links = Vec::new();
        let mut vlan_id = None;
        let mut pending_networks = Vec::new();
        for address in &interface.addresses {
            let Ok(cidr) = address.parse::<Cidr>() else {
                tracing::warn!(system_id = %node.system_id, interface = %interface.name, %address, "ignoring an address that is not in CIDR form");
                continue;
            };
            let Some(ip) = address
                .split('/')
                .next()
                .and_then(|a| a.parse::<IpAddr>().ok())
            else {
                continue;
            };
            if is_link_local(ip) {
                continue;
            }
            match subnet_for(&catalog, ip) {
                Some((subnet_id, subnet_vlan)) => {
                    vlan_id.get_or_insert(subnet_vlan);
                    links.push(NewIpLink {
                        mode: LinkMode::Static,
                        subnet_id: Some(subnet_id),
                        ip: Some(ip.to_string()),
                    });
                }
                None => pending_networks.push((cidr, ip)),
            }
        }
        if vlan_id.is_none() {
            vlan_id = previous.get(interface.name.as_str()).copied().flatten();
        }
        if vlan_id.is_none() && (!pending_networks.is_empty() || interface.kind != "vlan") {
            vlan_id = Some(match (interface.kind.as_str(), interface.vid) {
                ("vlan", Some(vid)) => {
                    let parent_vlan = interface
                        .parents
                        .first()
                        .and_then(|p| vlan_of.get(p).copied().flatten());
                    let fabric_id =
                        match parent_vlan.and_then(|v| catalog.vlans.iter().find(|x| x.id == v)) {
                            Some(vlan) => vlan.fabric_id,
                            None => store.create_fabric(None, "", None, now).await?.id,
                        };
                    vlan_on_fabric(store, fabric_id, vid, now).await?
                }
                _ => {
                    let fabric = store.create_fabric(None, "", None, now).await?;
                    vlan_on_fabric(store, fabric.id, 0, now).await?
                }
            });
            catalog = store.network_catalog().await?;
        }
        if let Some(vlan_id) = vlan_id {
            for (cidr, ip) in pending_networks {
                let subnet_id = match subnet_for(&catalog, ip) {
                    Some((id, _)) => id,
                    None => {
                        let subnet = store
                            .create_subnet(
                                SubnetFields {
                                    name: cidr.to_string(),
                                    description: String::new(),
                                    cidr: cidr.to_string(),
                                    vlan_id,
                                    gateway_ip: None,
                                    dns_servers: Vec::new(),
                                    rdns_mode: 2,
                                    allow_dns: true,
                                    allow_proxy: true,
                                    active_discovery: false,
                                    managed: true,
                                    disabled_boot_architectures: Vec::new(),
                                },
                                now,
                            )
                            .await?;
                        tracing::info!(system_id = %node.system_id, interface = %interface.name, cidr = %cidr, "subnet created from a rack interface");
                        catalog = store.network_catalog().await?;
                        subnet.id
                    }
                };
                links.push(NewIpLink {
                    mode: LinkMode::Static,
                    subnet_id: Some(subnet_id),
                    ip: Some(ip.to_string()),
                });
            }
        }
        vlan_of.insert(interface.name.clone(), vlan_id);
        built[index] = Some(NewInterface {
            name: interface.name.clone(),
            kind: interface_kind(&interface.kind),
            mac_address: interface
                .mac_address
                .as_deref()
                .and_then(|m| m.parse::<maas_domain::MacAddress>().ok())
                .map(|m| m.to_string()),
            vlan_id,
            enabled: interface.enabled,
            params: String::new(),
            tags: Vec::new(),
            vendor: None,
            product: None,
            firmware_version: None,
            link_connected: true,
            interface_speed: 0,
            link_speed: 0,
            numa_node: None,
            sriov_max_vf: 0,
            mtu: i64::from(interface.mtu),
            parents: Vec::new(),
            links,
            discovered: Vec::new(),
            boot: false,
        });
    }
    let names: HashMap<&str, usize> = reported
        .iter()
        .enumerate()
        .map(|(i, r)| (r.name.as_str(), i))
        .collect();
    let mut interfaces: Vec<NewInterface> = built.into_iter().flatten().collect();
    for (index, interface) in reported.iter().enumerate() {
        interfaces[index].parents = interface
            .parents
            .iter()
            .filter_map(|p| names.get(p.as_str()).copied())
            .filter(|&p| p != index)
            .collect();
    }
    // MAC addresses are unique across nodes; a physical MAC also on a bond or bridge of the
    // same host is fine, but a duplicate physical one is dropped rather than failing.
    let mut seen = HashSet::new();
    for interface in &mut interfaces {
        if interface.kind == InterfaceType::Physical
            && let Some(mac) = &interface.mac_address
            && !seen.insert(mac.clone())
        {
            interface.mac_address = None;
        }
    }
    Ok(interfaces)
}

fn is_link_local(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || v4.is_loopback(),
        IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80 || v6.is_loopback(),
    }
}

async fn vlan_on_fabric(
    store: &dyn Store,
    fabric_id: i64,
    vid: u16,
    now: i64,
) -> ServiceResult<i64> {
    let catalog = store.network_catalog().await?;
    if let Some(vlan) = catalog
        .vlans
        .iter()
        .find(|v| v.fabric_id == fabric_id && v.vid == i64::from(vid))
    {
        return Ok(vlan.id);
    }
    let vlan = store
        .create_vlan(
            fabric_id,
            VlanFields {
                vid: i64::from(vid),
                name: None,
                description: String::new(),
                mtu: 1500,
                dhcp_on: false,
                external_dhcp: None,
                primary_rack: None,
                secondary_rack: None,
                relay_vlan_id: None,
                space_id: None,
            },
            now,
        )
        .await?;
    Ok(vlan.id)
}

/// The most specific known subnet holding `ip`: (subnet id, its VLAN id).
fn subnet_for(catalog: &NetworkCatalog, ip: IpAddr) -> Option<(i64, i64)> {
    catalog
        .subnets
        .iter()
        .filter_map(|s| s.cidr.parse::<Cidr>().ok().map(|c| (s, c)))
        .filter(|(_, c)| c.contains(ip))
        .max_by_key(|(_, c)| c.prefix())
        .map(|(s, _)| (s.id, s.vlan_id))
}

/// What the rack's DHCP server serves (MAAS's dhcpd.conf, provisioning §4.1-4.2): every
/// VLAN with DHCP on where it is primary or secondary rack and has an IPv4 address, with
/// those VLANs' managed IPv4 subnets and the subnets of VLANs relayed to them, their dynamic
/// ranges, and a fixed address for every assigned address on them. With a secondary rack
/// too, each dynamic range is split: the primary hands out the lower half and the
/// secondary the upper half, so the two never offer one address twice.
pub fn dhcp_config(
    rack: &Node,
    catalog: &NetworkCatalog,
    ranges: &[IpRange],
    hosts: &[StaticAddress],
    domain: &str,
    fallback_dns: &[Ipv4Addr],
) -> DhcpConfig {
    let me = rack.system_id.as_str();
    let mut config = DhcpConfig::default();
    // The rack's own IPv4 addresses: (interface name, vlan, subnet, address).
    let mut own: Vec<(&str, Option<i64>, Option<i64>, Ipv4Addr)> = Vec::new();
    for interface in &rack.interfaces {
        for link in &interface.links {
            if let Some(IpAddr::V4(ip)) = link.ip.as_deref().and_then(|t| t.parse().ok()) {
                own.push((&interface.name, interface.vlan_id, link.subnet_id, ip));
            }
        }
        for (subnet_id, ip) in &interface.discovered {
            if let Ok(IpAddr::V4(ip)) = ip.parse() {
                own.push((&interface.name, interface.vlan_id, *subnet_id, ip));
            }
        }
    }
    let mut served_subnets: Vec<(i64, Option<Ipv4Addr>, Half)> = Vec::new();
    for vlan in &catalog.vlans {
        if !vlan.dhcp_on {
            continue;
        }
        let half = if vlan.primary_rack.as_deref() == Some(me) {
            if vlan.secondary_rack.as_deref().is_some_and(|s| s != me) {
                Half::Lower
            } else {
                Half::All
            }
        } else if vlan.secondary_rack.as_deref() == Some(me) {
            if vlan.primary_rack.is_some() {
                Half::Upper
            } else {
                Half::All
            }
        } else {
            continue;
        };
        let Some(&(name, _, _, address)) = own.iter().find(|o| o.1 == Some(vlan.id)) else {
            tracing::warn!(system_id = %me, vlan = vlan.id, "DHCP is on for a VLAN this rack has no IPv4 address on; not serving it");
            continue;
        };
        if !config.interfaces.iter().any(|i| i.name == name) {
            config.interfaces.push(DhcpInterface {
                name: name.to_owned(),
                address,
            });
        }
        for subnet in catalog.subnets.iter().filter(|s| s.vlan_id == vlan.id) {
            served_subnets.push((subnet.id, Some(address), half));
        }
        // VLANs relayed to this one are served through it.
        for relayed in catalog
            .vlans
            .iter()
            .filter(|r| r.relay_vlan_id == Some(vlan.id))
        {
            for subnet in catalog.subnets.iter().filter(|s| s.vlan_id == relayed.id) {
                served_subnets.push((subnet.id, Some(address), half));
            }
        }
    }
    let mut served_ids = HashSet::new();
    let mut macs = HashSet::new();
    for (subnet_id, vlan_address, half) in served_subnets {
        let Some(subnet) = catalog.subnets.iter().find(|s| s.id == subnet_id) else {
            continue;
        };
        let Ok(cidr) = subnet.cidr.parse::<Cidr>() else {
            continue;
        };
        if !subnet.managed || !cidr.is_ipv4() || !served_ids.insert(subnet.id) {
            continue;
        }
        let vlan = catalog.vlans.iter().find(|v| v.id == subnet.vlan_id);
        let server_ip = own
            .iter()
            .find(|o| o.2 == Some(subnet.id))
            .map(|o| o.3)
            .or(vlan_address);
        let mut dns: Vec<Ipv4Addr> = subnet
            .dns_servers
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        if dns.is_empty() {
            dns = fallback_dns.to_vec();
        }
        let mut dynamic = Vec::new();
        for range in ranges
            .iter()
            .filter(|r| r.subnet_id == subnet.id && r.kind == "dynamic")
        {
            let (Ok(start), Ok(end)) = (range.start_ip.parse(), range.end_ip.parse()) else {
                continue;
            };
            if let Some(part) = half.of(start, end) {
                dynamic.push(part);
            }
        }
        config.subnets.push(DhcpSubnet {
            cidr: cidr.to_string(),
            router: subnet.gateway_ip.as_deref().and_then(|g| g.parse().ok()),
            dns_servers: dns,
            domain_name: Some(domain.to_owned()),
            lease_time: 600,
            mtu: vlan
                .map(|v| v.mtu)
                .filter(|&m| m != 1500 && m > 0)
                .and_then(|m| u16::try_from(m).ok()),
            ranges: dynamic,
            server_ip,
        });
        for host in hosts.iter().filter(|h| h.subnet_id == subnet.id) {
            if host.node_id == rack.id {
                continue;
            }
            let (Some(mac), Ok(ip)) = (host.mac.as_deref(), host.ip.parse::<Ipv4Addr>()) else {
                continue;
            };
            if macs.insert(mac.to_owned()) {
                config.hosts.push(DhcpHost {
                    mac: mac.to_owned(),
                    ip,
                    hostname: Some(host.hostname.clone()),
                });
            }
        }
    }
    config
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Half {
    All,
    Lower,
    Upper,
}

impl Half {
    fn of(self, start: Ipv4Addr, end: Ipv4Addr) -> Option<(Ipv4Addr, Ipv4Addr)> {
        let (s, e) = (u32::from(start), u32::from(end));
        if e < s {
            return None;
        }
        let middle = s + (e - s) / 2;
        match self {
            Half::All => Some((start, end)),
            Half::Lower => Some((start, Ipv4Addr::from(middle))),
            Half::Upper if middle < e => Some((Ipv4Addr::from(middle + 1), end)),
            Half::Upper => None,
        }
    }
}

/// The DHCP configuration for a rack, read from the store.
pub async fn dhcp_config_for(region: &Region, rack: &Node) -> ServiceResult<DhcpConfig> {
    let store = region.store.as_ref();
    let catalog = store.network_catalog().await?;
    let me = rack.system_id.as_str();
    let serves = catalog.vlans.iter().any(|v| {
        v.dhcp_on
            && (v.primary_rack.as_deref() == Some(me) || v.secondary_rack.as_deref() == Some(me))
    });
    if !serves {
        return Ok(DhcpConfig::default());
    }
    let ranges = store.ip_ranges().await?;
    let subnet_ids: Vec<i64> = catalog.subnets.iter().map(|s| s.id).collect();
    let hosts = store.static_addresses(&subnet_ids).await?;
    let domain = store
        .domain_by_id(DEFAULT_DOMAIN_ID)
        .await?
        .map(|d| d.name)
        .unwrap_or_else(|| "maas".to_owned());
    let upstream = crate::service::config::get(store, "upstream_dns").await?;
    let fallback: Vec<Ipv4Addr> = upstream
        .as_str()
        .unwrap_or("")
        .split([' ', ','])
        .filter_map(|d| d.trim().parse().ok())
        .collect();
    Ok(dhcp_config(
        rack, &catalog, &ranges, &hosts, &domain, &fallback,
    ))
}

/// Applies lease changes a rack reported: a lease inside a dynamic range of a known subnet
/// becomes the discovered address of the interfaces with its MAC. Returns how many leases
/// were applied to a known interface.
pub async fn record_leases(
    region: &Region,
    rack: &str,
    updates: &[LeaseUpdate],
) -> ServiceResult<usize> {
    let store = region.store.as_ref();
    let catalog = store.network_catalog().await?;
    let ranges = store.ip_ranges().await?;
    let mut applied = 0;
    for update in updates {
        let Ok(mac) = update.mac.parse::<maas_domain::MacAddress>() else {
            tracing::debug!(rack, mac = %update.mac, "lease with a malformed MAC ignored");
            continue;
        };
        let Some((subnet_id, _)) = subnet_for(&catalog, update.ip) else {
            tracing::debug!(rack, ip = %update.ip, "lease outside every known subnet ignored");
            continue;
        };
        let IpAddr::V4(ip) = update.ip else {
            continue;
        };
        let in_dynamic = ranges.iter().any(|r| {
            r.subnet_id == subnet_id
                && r.kind == "dynamic"
                && matches!(
                    (r.start_ip.parse::<Ipv4Addr>(), r.end_ip.parse::<Ipv4Addr>()),
                    (Ok(s), Ok(e)) if s <= ip && ip <= e
                )
        });
        if !in_dynamic {
            continue;
        }
        let touched = store
            .record_lease(&LeaseRecord {
                mac: mac.to_string(),
                subnet_id,
                ip: ip.to_string(),
                committed: update.action == LeaseAction::Commit,
            })
            .await?;
        if !touched.is_empty() {
            applied += 1;
        }
    }
    Ok(applied)
}

/// Records the services a rack reported.
pub async fn record_services(
    region: &Region,
    rack: &Node,
    services: &[ServiceState],
) -> ServiceResult<()> {
    let statuses: Vec<ServiceStatus> = services
        .iter()
        .filter(|s| !s.name.is_empty() && s.name.len() <= 64)
        .map(|s| ServiceStatus {
            name: s.name.clone(),
            status: match s.status.as_str() {
                "running" | "degraded" | "dead" | "off" | "unknown" => s.status.clone(),
                _ => "unknown".to_owned(),
            },
            status_info: s.status_info.chars().take(1024).collect(),
        })
        .collect();
    region
        .store
        .set_services(rack.id, &statuses, region.now())
        .await?;
    Ok(())
}

/// The `service_set` of each controller: what its rack reported, with `rackd` computed
/// from its links (none → every service dead; links to every live region process →
/// running; otherwise degraded with the share connected), as MAAS computes it.
pub async fn service_sets(
    store: &dyn Store,
    nodes: &[&Node],
    now: i64,
) -> ServiceResult<HashMap<i64, Vec<ServiceStatus>>> {
    let ids: Vec<i64> = nodes
        .iter()
        .filter(|n| is_controller(n.node_type))
        .map(|n| n.id)
        .collect();
    let mut sets: HashMap<i64, Vec<ServiceStatus>> = HashMap::new();
    if ids.is_empty() {
        return Ok(sets);
    }
    let since = now - LINK_STALE_MILLIS;
    let regions = store.live_regions(since).await?.len().max(1);
    let links = store.rack_links(&ids, since).await?;
    let reported = store.services(&ids).await?;
    for id in ids {
        let connected = links.iter().filter(|l| l.node_id == id).count();
        let mut services: BTreeMap<String, ServiceStatus> = RACK_SERVICES
            .iter()
            .map(|name| {
                (
                    (*name).to_owned(),
                    ServiceStatus {
                        name: (*name).to_owned(),
                        status: "unknown".to_owned(),
                        status_info: String::new(),
                    },
                )
            })
            .collect();
        for (_, service) in reported.iter().filter(|(n, _)| *n == id) {
            services.insert(service.name.clone(), service.clone());
        }
        let rackd = if connected == 0 {
            for service in services.values_mut() {
                service.status = "dead".to_owned();
                service.status_info = String::new();
            }
            ServiceStatus {
                name: "rackd".to_owned(),
                status: "dead".to_owned(),
                status_info: "Not connected to any region controllers.".to_owned(),
            }
        } else if connected >= regions {
            ServiceStatus {
                name: "rackd".to_owned(),
                status: "running".to_owned(),
                status_info: String::new(),
            }
        } else {
            ServiceStatus {
                name: "rackd".to_owned(),
                status: "degraded".to_owned(),
                status_info: format!(
                    "{}% connected to region controllers.",
                    connected * 100 / regions
                ),
            }
        };
        services.insert("rackd".to_owned(), rackd);
        sets.insert(id, services.into_values().collect());
    }
    Ok(sets)
}

/// Deletes a rack: refused while it is the primary or secondary rack of a VLAN with DHCP
/// on, unless `force`, in which case MAAS's migration applies (the secondary takes over,
/// or DHCP is turned off).
pub async fn delete(region: &Arc<Region>, rack: &Node, force: bool) -> ServiceResult<()> {
    let store = region.store.as_ref();
    let catalog = store.network_catalog().await?;
    let me = rack.system_id.as_str();
    let managed: Vec<_> = catalog
        .vlans
        .iter()
        .filter(|v| {
            v.primary_rack.as_deref() == Some(me) || v.secondary_rack.as_deref() == Some(me)
        })
        .collect();
    if !force && managed.iter().any(|v| v.dhcp_on) {
        return Err(ServiceError::BadRequest(format!(
            "Unable to delete '{}'; it is currently set as a primary or secondary rack \
             controller on a VLAN with DHCP enabled. Use force=True to delete anyway.",
            rack.hostname
        )));
    }
    for vlan in managed {
        let mut fields = crate::service::network::vlan_to_fields(vlan);
        if fields.primary_rack.as_deref() == Some(me) {
            fields.primary_rack = fields.secondary_rack.take();
        } else {
            fields.secondary_rack = None;
        }
        if fields.primary_rack.is_none() {
            fields.dhcp_on = false;
        }
        store.update_vlan(vlan.id, fields).await?;
    }
    store.delete_node(rack.id).await?;
    region.hub.disconnect(rack.id);
    region.network_changed();
    tracing::info!(system_id = %rack.system_id, hostname = %rack.hostname, "rack controller deleted");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use maas_store::{Domain, Fabric, Interface, IpLink, Subnet, Vlan, Zone};

    fn vlan(id: i64, dhcp_on: bool, primary: Option<&str>, secondary: Option<&str>) -> Vlan {
        Vlan {
            id,
            fabric_id: 0,
            vid: 0,
            name: None,
            description: String::new(),
            mtu: 9000,
            dhcp_on,
            external_dhcp: None,
            primary_rack: primary.map(str::to_owned),
            secondary_rack: secondary.map(str::to_owned),
            relay_vlan_id: None,
            space_id: None,
        }
    }

    fn subnet(id: i64, vlan_id: i64, cidr: &str) -> Subnet {
        Subnet {
            id,
            name: cidr.into(),
            description: String::new(),
            cidr: cidr.into(),
            vlan_id,
            gateway_ip: Some("10.5.0.1".into()),
            dns_servers: vec![],
            rdns_mode: 2,
            allow_dns: true,
            allow_proxy: true,
            active_discovery: false,
            managed: true,
            disabled_boot_architectures: vec![],
        }
    }

    fn range(subnet_id: i64, kind: &str, start: &str, end: &str) -> IpRange {
        IpRange {
            id: 1,
            subnet_id,
            kind: kind.into(),
            start_ip: start.into(),
            end_ip: end.into(),
            comment: String::new(),
            user_id: None,
        }
    }

    fn rack_node(system_id: &str, vlan_id: i64, subnet_id: i64, ip: &str) -> Node {
        let mut node = blank_node(system_id);
        node.interfaces = vec![Interface {
            id: 1,
            name: "eth1".into(),
            kind: InterfaceType::Physical,
            mac_address: Some("52:54:00:00:00:01".into()),
            vlan_id: Some(vlan_id),
            enabled: true,
            params: String::new(),
            tags: vec![],
            vendor: None,
            product: None,
            firmware_version: None,
            link_connected: true,
            interface_speed: 0,
            link_speed: 0,
            numa_node: None,
            sriov_max_vf: 0,
            mtu: 1500,
            parent_ids: vec![],
            links: vec![IpLink {
                id: 1,
                mode: LinkMode::Static,
                subnet_id: Some(subnet_id),
                ip: Some(ip.into()),
            }],
            discovered: vec![],
        }];
        node
    }

    fn blank_node(system_id: &str) -> Node {
        Node {
            id: 77,
            system_id: system_id.into(),
            hostname: "rack".into(),
            description: String::new(),
            node_type: NodeType::RackController,
            status: NodeStatus::Deployed,
            previous_status: NodeStatus::New,
            owner: None,
            domain: Domain {
                id: 0,
                name: "maas".into(),
                authoritative: true,
                ttl: None,
            },
            zone: Zone {
                id: 1,
                name: "default".into(),
                description: String::new(),
            },
            pool: None,
            architecture: None,
            min_hwe_kernel: None,
            hwe_kernel: None,
            cpu_count: 0,
            cpu_speed: 0,
            memory: 0,
            swap_size: None,
            osystem: String::new(),
            distro_series: String::new(),
            power_type: String::new(),
            power_parameters: BTreeMap::new(),
            power_state: maas_domain::PowerState::Unknown,
            locked: false,
            netboot: true,
            ephemeral_deploy: false,
            error_description: String::new(),
            agent_name: String::new(),
            owner_data: BTreeMap::new(),
            hardware_uuid: None,
            hardware_info: BTreeMap::new(),
            enable_hw_sync: false,
            enable_kernel_crash_dump: false,
            is_dpu: false,
            address_ttl: None,
            boot_interface_id: None,
            boot_disk_id: None,
            status_message: None,
            status_action: None,
            status_expires: None,
            bios_boot_method: None,
            created: 0,
            updated: 0,
            tags: vec![],
            interfaces: vec![],
            block_devices: vec![],
            user_data: None,
            enlisting: false,
            enable_ssh: false,
            skip_networking: false,
            skip_storage: false,
            install_kvm: false,
            current_commissioning_set_id: None,
            current_testing_set_id: None,
            current_installation_set_id: None,
            current_release_set_id: None,
        }
    }

    fn catalog(vlans: Vec<Vlan>, subnets: Vec<Subnet>) -> NetworkCatalog {
        NetworkCatalog {
            fabrics: vec![Fabric {
                id: 0,
                name: "fabric-0".into(),
                description: String::new(),
                class_type: None,
            }],
            vlans,
            spaces: vec![],
            subnets,
        }
    }

    fn host(node_id: i64, mac: &str, ip: &str, subnet_id: i64) -> StaticAddress {
        StaticAddress {
            node_id,
            system_id: "m1".into(),
            hostname: "node1".into(),
            interface_name: "eth0".into(),
            mac: Some(mac.into()),
            ip: ip.into(),
            subnet_id,
        }
    }

    #[test]
    fn serves_only_vlans_with_dhcp_on_where_it_is_a_rack() {
        let rack = rack_node("rack01", 10, 100, "10.5.0.2");
        let ranges = vec![
            range(100, "dynamic", "10.5.0.100", "10.5.0.199"),
            range(100, "reserved", "10.5.0.10", "10.5.0.20"),
        ];
        let hosts = vec![
            host(5, "52:54:00:00:00:aa", "10.5.0.30", 100),
            // The same MAC twice is served once; the rack's own address never.
            host(5, "52:54:00:00:00:aa", "10.5.0.31", 100),
            host(77, "52:54:00:00:00:01", "10.5.0.2", 100),
            host(6, "52:54:00:00:00:bb", "10.6.0.30", 200),
        ];
        // DHCP off: nothing.
        let off = catalog(
            vec![vlan(10, false, Some("rack01"), None)],
            vec![subnet(100, 10, "10.5.0.0/24")],
        );
        let config = dhcp_config(&rack, &off, &ranges, &hosts, "maas", &[]);
        assert_eq!(config, DhcpConfig::default());
        // Another rack's VLAN: nothing.
        let other = catalog(
            vec![vlan(10, true, Some("rack99"), None)],
            vec![subnet(100, 10, "10.5.0.0/24")],
        );
        assert_eq!(
            dhcp_config(&rack, &other, &ranges, &hosts, "maas", &[]),
            DhcpConfig::default()
        );

        let on = catalog(
            vec![
                vlan(10, true, Some("rack01"), None),
                vlan(20, false, None, None),
            ],
            vec![
                subnet(100, 10, "10.5.0.0/24"),
                subnet(200, 20, "10.6.0.0/24"),
            ],
        );
        let dns: Vec<Ipv4Addr> = vec!["192.0.2.53".parse().unwrap()];
        let config = dhcp_config(&rack, &on, &ranges, &hosts, "maas", &dns);
        assert_eq!(
            config.interfaces,
            vec![DhcpInterface {
                name: "eth1".into(),
                address: "10.5.0.2".parse().unwrap()
            }]
        );
        assert_eq!(config.subnets.len(), 1);
        let s = &config.subnets[0];
        assert_eq!(s.cidr, "10.5.0.0/24");
        assert_eq!(s.router, Some("10.5.0.1".parse().unwrap()));
        assert_eq!(
            s.ranges,
            vec![("10.5.0.100".parse().unwrap(), "10.5.0.199".parse().unwrap())]
        );
        assert_eq!(s.server_ip, Some("10.5.0.2".parse().unwrap()));
        assert_eq!(s.mtu, Some(9000));
        assert_eq!(s.dns_servers, dns);
        assert_eq!(s.domain_name.as_deref(), Some("maas"));
        assert_eq!(
            config.hosts,
            vec![DhcpHost {
                mac: "52:54:00:00:00:aa".into(),
                ip: "10.5.0.30".parse().unwrap(),
                hostname: Some("node1".into())
            }]
        );
    }

    #[test]
    fn relayed_vlans_and_split_ranges() {
        let rack = rack_node("rack01", 10, 100, "10.5.0.2");
        let mut relayed = vlan(20, false, None, None);
        relayed.relay_vlan_id = Some(10);
        let net = catalog(
            vec![vlan(10, true, Some("rack01"), Some("rack02")), relayed],
            vec![
                subnet(100, 10, "10.5.0.0/24"),
                subnet(200, 20, "10.6.0.0/24"),
            ],
        );
        let ranges = vec![
            range(100, "dynamic", "10.5.0.100", "10.5.0.199"),
            range(200, "dynamic", "10.6.0.10", "10.6.0.11"),
        ];
        let primary = dhcp_config(&rack, &net, &ranges, &[], "maas", &[]);
        assert_eq!(primary.subnets.len(), 2);
        assert_eq!(
            primary.subnets[0].ranges,
            vec![("10.5.0.100".parse().unwrap(), "10.5.0.149".parse().unwrap())]
        );
        // The relayed subnet is answered from the rack's address on the serving VLAN.
        assert_eq!(
            primary.subnets[1].server_ip,
            Some("10.5.0.2".parse().unwrap())
        );
        let secondary_rack = rack_node("rack02", 10, 100, "10.5.0.3");
        let secondary = dhcp_config(&secondary_rack, &net, &ranges, &[], "maas", &[]);
        assert_eq!(
            secondary.subnets[0].ranges,
            vec![("10.5.0.150".parse().unwrap(), "10.5.0.199".parse().unwrap())]
        );
        assert_eq!(
            secondary.subnets[1].ranges,
            vec![("10.6.0.11".parse().unwrap(), "10.6.0.11".parse().unwrap())]
        );
        // A one-address range goes to the primary only.
        assert_eq!(
            Half::Upper.of("10.0.0.1".parse().unwrap(), "10.0.0.1".parse().unwrap()),
            None
        );
        assert_eq!(
            Half::All.of("10.0.0.2".parse().unwrap(), "10.0.0.1".parse().unwrap()),
            None
        );
    }

    #[test]
    fn a_rack_without_an_address_on_the_vlan_serves_nothing() {
        let rack = rack_node("rack01", 99, 999, "10.9.0.2");
        let net = catalog(
            vec![vlan(10, true, Some("rack01"), None)],
            vec![subnet(100, 10, "10.5.0.0/24")],
        );
        assert_eq!(
            dhcp_config(&rack, &net, &[], &[], "maas", &[]),
            DhcpConfig::default()
        );
    }

    #[test]
    fn hostnames() {
        assert_eq!(short_hostname("Rack1.example.com"), "rack1");
        assert_eq!(short_hostname("my_rack"), "my-rack");
        assert_eq!(short_hostname(""), "rack");
    }
}
