// The store implementation shared by both backends. This file is included
// into `sqlite.rs` and `postgres.rs`, which define `Db` (the sqlx database),
// `StoreImpl` (the store struct, with `read` and `write` pools) and `BACKEND`.
// Every query here must be valid for both SQLite and PostgreSQL.

use std::collections::HashMap;

use async_trait::async_trait;
use maas_domain::{NodeStatus, NodeType, PowerState};
use maas_store::{
    ExpiredNode, PowerPolledNode, NewScriptResult, NodeToken, Script, ScriptResult, ScriptResultUpdate, ScriptSet, ScriptStore,
    NodeGroup, NodeGroupCount, NodeListingStore, NodeQuery, NodeSort, Session, SessionStore,
    ApiToken, BlockDevice, BlockDeviceType, ConfigStore, Domain, Event, EventLevel, EventQuery,
    Fabric, GroupingStore, Interface, InterfaceType, Inventory, IpLink, IpRange, IpRangeFields,
    LinkMode, Millis, NetworkCatalog, NetworkStore, NewEvent, NewNode, NewToken, NewUser, Node,
    NodeFilter, NodeStore, NodeUpdate, Partition, ResourcePool, Secret, Space, SshKey, Store,
    StatusChange, StoreResult, Subnet, SubnetFields, Tag, TagChanges, TokenLookup, User, UserRef,
    UserStore, Vlan, VlanFields, Zone,
};
use sqlx::{QueryBuilder, Row};

type DbRow = <Db as sqlx::Database>::Row;

/// Reads a column, turning a missing column or a type mismatch into a store error.
macro_rules! col {
    ($row:expr, $name:expr) => {
        $row.try_get($name).map_err(convert::backend)?
    };
}

fn user_from_row(row: &DbRow) -> StoreResult<User> {
    let hash: Option<String> = col!(row, "password_hash");
    Ok(User {
        id: col!(row, "id"),
        username: col!(row, "username"),
        email: col!(row, "email"),
        is_superuser: col!(row, "is_superuser"),
        is_active: col!(row, "is_active"),
        is_local: col!(row, "is_local"),
        password_hash: hash.map(Secret::new),
        created: col!(row, "created"),
        last_login: col!(row, "last_login"),
    })
}

fn token_from_row(row: &DbRow) -> StoreResult<ApiToken> {
    let secret: String = col!(row, "token_secret");
    Ok(ApiToken {
        id: col!(row, "id"),
        user_id: col!(row, "user_id"),
        consumer_key: col!(row, "consumer_key"),
        consumer_name: col!(row, "consumer_name"),
        token_key: col!(row, "token_key"),
        token_secret: Secret::new(secret),
        created: col!(row, "created"),
    })
}

fn sshkey_from_row(row: &DbRow) -> StoreResult<SshKey> {
    Ok(SshKey {
        id: col!(row, "id"),
        user_id: col!(row, "user_id"),
        key: col!(row, "key"),
        keysource: col!(row, "keysource"),
    })
}

fn zone_from_row(row: &DbRow) -> StoreResult<Zone> {
    Ok(Zone {
        id: col!(row, "id"),
        name: col!(row, "name"),
        description: col!(row, "description"),
    })
}

fn pool_from_row(row: &DbRow) -> StoreResult<ResourcePool> {
    Ok(ResourcePool {
        id: col!(row, "id"),
        name: col!(row, "name"),
        description: col!(row, "description"),
    })
}

fn domain_from_row(row: &DbRow) -> StoreResult<Domain> {
    Ok(Domain {
        id: col!(row, "id"),
        name: col!(row, "name"),
        authoritative: col!(row, "authoritative"),
        ttl: col!(row, "ttl"),
    })
}

fn tag_from_row(row: &DbRow) -> StoreResult<Tag> {
    Ok(Tag {
        id: col!(row, "id"),
        name: col!(row, "name"),
        definition: col!(row, "definition"),
        comment: col!(row, "comment"),
        kernel_opts: col!(row, "kernel_opts"),
    })
}

fn fabric_from_row(row: &DbRow) -> StoreResult<Fabric> {
    Ok(Fabric {
        id: col!(row, "id"),
        name: col!(row, "name"),
        description: col!(row, "description"),
        class_type: col!(row, "class_type"),
    })
}

fn space_from_row(row: &DbRow) -> StoreResult<Space> {
    Ok(Space {
        id: col!(row, "id"),
        name: col!(row, "name"),
        description: col!(row, "description"),
    })
}

fn vlan_from_row(row: &DbRow) -> StoreResult<Vlan> {
    Ok(Vlan {
        id: col!(row, "id"),
        fabric_id: col!(row, "fabric_id"),
        vid: col!(row, "vid"),
        name: col!(row, "name"),
        description: col!(row, "description"),
        mtu: col!(row, "mtu"),
        dhcp_on: col!(row, "dhcp_on"),
        external_dhcp: col!(row, "external_dhcp"),
        primary_rack: col!(row, "primary_rack"),
        secondary_rack: col!(row, "secondary_rack"),
        relay_vlan_id: col!(row, "relay_vlan_id"),
        space_id: col!(row, "space_id"),
    })
}

fn subnet_from_row(row: &DbRow) -> StoreResult<Subnet> {
    let dns: String = col!(row, "dns_servers");
    let disabled: String = col!(row, "disabled_boot_architectures");
    Ok(Subnet {
        id: col!(row, "id"),
        name: col!(row, "name"),
        description: col!(row, "description"),
        cidr: col!(row, "cidr"),
        vlan_id: col!(row, "vlan_id"),
        gateway_ip: col!(row, "gateway_ip"),
        dns_servers: convert::json_to_list(&dns, "dns_servers")?,
        rdns_mode: col!(row, "rdns_mode"),
        allow_dns: col!(row, "allow_dns"),
        allow_proxy: col!(row, "allow_proxy"),
        active_discovery: col!(row, "active_discovery"),
        managed: col!(row, "managed"),
        disabled_boot_architectures: convert::json_to_list(&disabled, "disabled_boot_architectures")?,
    })
}

fn ip_range_from_row(row: &DbRow) -> StoreResult<IpRange> {
    Ok(IpRange {
        id: col!(row, "id"),
        subnet_id: col!(row, "subnet_id"),
        kind: col!(row, "kind"),
        start_ip: col!(row, "start_ip"),
        end_ip: col!(row, "end_ip"),
        comment: col!(row, "comment"),
        user_id: col!(row, "user_id"),
    })
}

fn event_from_row(row: &DbRow) -> StoreResult<Event> {
    let level: i64 = col!(row, "level");
    Ok(Event {
        id: col!(row, "id"),
        node_id: col!(row, "node_id"),
        system_id: col!(row, "system_id"),
        hostname: col!(row, "hostname"),
        event_type: col!(row, "event_type"),
        description: col!(row, "description"),
        action: col!(row, "action"),
        level: EventLevel::from_number(level).ok_or_else(|| maas_store::StoreError::InvalidData {
            what: format!("event level {level}"),
        })?,
        username: col!(row, "username"),
        created: col!(row, "created"),
    })
}

/// A boolean inside an aggregated JSON row: SQLite writes integers, PostgreSQL booleans.
struct Flag(bool);

impl<'de> serde::Deserialize<'de> for Flag {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Flag, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(b) => Ok(Flag(b)),
            serde_json::Value::Number(n) => Ok(Flag(n.as_i64().unwrap_or(0) != 0)),
            other => Err(serde::de::Error::custom(format!("expected a boolean, got {other}"))),
        }
    }
}

// Aggregated rows arrive as JSON arrays in column order; serde's derived
// `Deserialize` reads a struct from an array field by field.
#[derive(serde::Deserialize)]
struct LinkRow {
    id: i64,
    interface_id: i64,
    mode: String,
    subnet_id: Option<i64>,
    ip: Option<String>,
    discovered: Flag,
}

#[derive(serde::Deserialize)]
struct InterfaceRow {
    id: i64,
    name: String,
    kind: String,
    mac_address: Option<String>,
    vlan_id: Option<i64>,
    enabled: Flag,
    params: String,
    tags: String,
    vendor: Option<String>,
    product: Option<String>,
    firmware_version: Option<String>,
    link_connected: Flag,
    interface_speed: i64,
    link_speed: i64,
    numa_node: Option<i64>,
    sriov_max_vf: i64,
    mtu: i64,
}

#[derive(serde::Deserialize)]
struct PartitionRow {
    id: i64,
    block_device_id: i64,
    uuid: Option<String>,
    size: i64,
    bootable: Flag,
    tags: String,
    filesystem: Option<String>,
}

#[derive(serde::Deserialize)]
struct DeviceRow {
    id: i64,
    name: String,
    kind: String,
    model: Option<String>,
    serial: Option<String>,
    id_path: Option<String>,
    size: i64,
    block_size: i64,
    tags: String,
    uuid: Option<String>,
    firmware_version: Option<String>,
    numa_node: Option<i64>,
    partition_table_type: Option<String>,
    filesystem: Option<String>,
}

const NODE_SELECT: &str = "SELECT n.*, \
    u.username AS owner_username, \
    d.name AS domain_name, d.authoritative AS domain_authoritative, d.ttl AS domain_ttl, \
    z.name AS zone_name, z.description AS zone_description, \
    p.name AS pool_name, p.description AS pool_description \
    FROM nodes n \
    LEFT JOIN users u ON u.id = n.owner_id \
    JOIN domains d ON d.id = n.domain_id \
    JOIN zones z ON z.id = n.zone_id \
    LEFT JOIN resource_pools p ON p.id = n.pool_id";

fn status_from(number: i64) -> StoreResult<NodeStatus> {
    NodeStatus::from_number(number).ok_or_else(|| maas_store::StoreError::InvalidData {
        what: format!("node status {number}"),
    })
}

/// The node row without its interfaces, block devices and tags.
fn node_from_row(row: &DbRow) -> StoreResult<Node> {
    let node_type: i64 = col!(row, "node_type");
    let status: i64 = col!(row, "status");
    let previous_status: i64 = col!(row, "previous_status");
    let owner_id: Option<i64> = col!(row, "owner_id");
    let owner_username: Option<String> = col!(row, "owner_username");
    let pool_id: Option<i64> = col!(row, "pool_id");
    let pool_name: Option<String> = col!(row, "pool_name");
    let pool_description: Option<String> = col!(row, "pool_description");
    let power_state: String = col!(row, "power_state");
    let power_parameters: String = col!(row, "power_parameters");
    let owner_data: String = col!(row, "owner_data");
    let hardware_info: String = col!(row, "hardware_info");
    Ok(Node {
        id: col!(row, "id"),
        system_id: col!(row, "system_id"),
        hostname: col!(row, "hostname"),
        description: col!(row, "description"),
        node_type: NodeType::from_number(node_type).ok_or_else(|| {
            maas_store::StoreError::InvalidData {
                what: format!("node type {node_type}"),
            }
        })?,
        status: status_from(status)?,
        previous_status: status_from(previous_status)?,
        owner: match (owner_id, owner_username) {
            (Some(id), Some(username)) => Some(UserRef { id, username }),
            _ => None,
        },
        domain: Domain {
            id: col!(row, "domain_id"),
            name: col!(row, "domain_name"),
            authoritative: col!(row, "domain_authoritative"),
            ttl: col!(row, "domain_ttl"),
        },
        zone: Zone {
            id: col!(row, "zone_id"),
            name: col!(row, "zone_name"),
            description: col!(row, "zone_description"),
        },
        pool: match (pool_id, pool_name) {
            (Some(id), Some(name)) => Some(ResourcePool {
                id,
                name,
                description: pool_description.unwrap_or_default(),
            }),
            _ => None,
        },
        architecture: col!(row, "architecture"),
        min_hwe_kernel: col!(row, "min_hwe_kernel"),
        hwe_kernel: col!(row, "hwe_kernel"),
        cpu_count: col!(row, "cpu_count"),
        cpu_speed: col!(row, "cpu_speed"),
        memory: col!(row, "memory"),
        swap_size: col!(row, "swap_size"),
        osystem: col!(row, "osystem"),
        distro_series: col!(row, "distro_series"),
        power_type: col!(row, "power_type"),
        power_parameters: convert::json_to_map(&power_parameters, "power_parameters")?,
        power_state: PowerState::parse(&power_state).unwrap_or(PowerState::Unknown),
        locked: col!(row, "locked"),
        netboot: col!(row, "netboot"),
        ephemeral_deploy: col!(row, "ephemeral_deploy"),
        error_description: col!(row, "error_description"),
        agent_name: col!(row, "agent_name"),
        owner_data: convert::json_to_map(&owner_data, "owner_data")?,
        hardware_uuid: col!(row, "hardware_uuid"),
        hardware_info: convert::json_to_map(&hardware_info, "hardware_info")?,
        enable_hw_sync: col!(row, "enable_hw_sync"),
        enable_kernel_crash_dump: col!(row, "enable_kernel_crash_dump"),
        is_dpu: col!(row, "is_dpu"),
        address_ttl: col!(row, "address_ttl"),
        boot_interface_id: col!(row, "boot_interface_id"),
        boot_disk_id: col!(row, "boot_disk_id"),
        status_message: col!(row, "status_message"),
        status_action: col!(row, "status_action"),
        status_expires: col!(row, "status_expires"),
        bios_boot_method: col!(row, "bios_boot_method"),
        created: col!(row, "created"),
        updated: col!(row, "updated"),
        tags: Vec::new(),
        interfaces: Vec::new(),
        block_devices: Vec::new(),
        user_data: col!(row, "user_data"),
        enlisting: col!(row, "enlisting"),
        enable_ssh: col!(row, "enable_ssh"),
        skip_networking: col!(row, "skip_networking"),
        skip_storage: col!(row, "skip_storage"),
        install_kvm: col!(row, "install_kvm"),
        current_commissioning_set_id: col!(row, "current_commissioning_set_id"),
        current_testing_set_id: col!(row, "current_testing_set_id"),
        current_installation_set_id: col!(row, "current_installation_set_id"),
        current_release_set_id: col!(row, "current_release_set_id"),
    })
}

/// Appends `column IN (v1, v2, …)` with bound values.
fn push_in<'a, T>(qb: &mut QueryBuilder<'a, Db>, column: &str, values: &'a [T], negate: bool)
where
    T: 'a + sqlx::Encode<'a, Db> + sqlx::Type<Db> + Send + Sync + Clone,
{
    qb.push(" AND ");
    qb.push(column);
    qb.push(if negate { " NOT IN (" } else { " IN (" });
    let mut list = qb.separated(", ");
    for value in values {
        list.push_bind(value.clone());
    }
    list.push_unseparated(")");
}

/// Appends the WHERE conditions of a node filter; the query already holds `WHERE 1 = 1`.
fn push_node_filter<'a>(qb: &mut QueryBuilder<'a, Db>, f: &'a NodeFilter, owned: &'a FilterValues) {
    if f.match_none {
        qb.push(" AND 1 = 0");
    }
    if !f.node_types.is_empty() {
        push_in(qb, "n.node_type", &owned.node_types, false);
    }
    if !f.system_ids.is_empty() {
        push_in(qb, "n.system_id", &f.system_ids, false);
    }
    if !f.not_system_ids.is_empty() {
        push_in(qb, "n.system_id", &f.not_system_ids, true);
    }
    if !f.hostnames.is_empty() {
        push_in(qb, "n.hostname", &f.hostnames, false);
    }
    if !f.not_hostnames.is_empty() {
        push_in(qb, "n.hostname", &f.not_hostnames, true);
    }
    if !f.mac_addresses.is_empty() {
        qb.push(" AND n.id IN (SELECT node_id FROM interfaces WHERE 1 = 1");
        push_in(qb, "mac_address", &f.mac_addresses, false);
        qb.push(")");
    }
    if !f.domains.is_empty() {
        push_in(qb, "d.name", &f.domains, false);
    }
    if !f.not_domains.is_empty() {
        push_in(qb, "d.name", &f.not_domains, true);
    }
    if !f.agent_names.is_empty() {
        push_in(qb, "n.agent_name", &f.agent_names, false);
    }
    if !f.not_agent_names.is_empty() {
        push_in(qb, "n.agent_name", &f.not_agent_names, true);
    }
    if !f.statuses.is_empty() {
        push_in(qb, "n.status", &owned.statuses, false);
    }
    if !f.not_statuses.is_empty() {
        push_in(qb, "n.status", &owned.not_statuses, true);
    }
    if !f.archs.is_empty() {
        qb.push(" AND (1 = 0");
        for (exact, prefix) in &owned.archs {
            qb.push(" OR n.architecture = ");
            qb.push_bind(exact.clone());
            if let Some(prefix) = prefix {
                qb.push(" OR n.architecture LIKE ");
                qb.push_bind(prefix.clone());
            }
        }
        qb.push(")");
    }
    if !f.not_archs.is_empty() {
        qb.push(" AND (n.architecture IS NULL OR NOT (1 = 0");
        for (exact, prefix) in &owned.not_archs {
            qb.push(" OR n.architecture = ");
            qb.push_bind(exact.clone());
            if let Some(prefix) = prefix {
                qb.push(" OR n.architecture LIKE ");
                qb.push_bind(prefix.clone());
            }
        }
        qb.push("))");
    }
    if !f.tags.is_empty() {
        qb.push(
            " AND n.id IN (SELECT nt.node_id FROM node_tags nt JOIN tags t ON t.id = nt.tag_id WHERE 1 = 1",
        );
        push_in(qb, "t.name", &owned.tags, false);
        qb.push(" GROUP BY nt.node_id HAVING COUNT(*) = ");
        qb.push_bind(owned.tags.len() as i64);
        qb.push(")");
    }
    if !f.not_tags.is_empty() {
        qb.push(
            " AND n.id NOT IN (SELECT nt.node_id FROM node_tags nt JOIN tags t ON t.id = nt.tag_id WHERE 1 = 1",
        );
        push_in(qb, "t.name", &f.not_tags, false);
        qb.push(")");
    }
    if !f.zones.is_empty() {
        push_in(qb, "z.name", &f.zones, false);
    }
    if !f.not_zones.is_empty() {
        push_in(qb, "z.name", &f.not_zones, true);
    }
    if !f.pools.is_empty() {
        push_in(qb, "p.name", &f.pools, false);
    }
    if !f.not_pools.is_empty() {
        qb.push(" AND (p.name IS NULL OR 1 = 1");
        push_in(qb, "p.name", &f.not_pools, true);
        qb.push(")");
    }
    if !f.owners.is_empty() {
        push_in(qb, "u.username", &f.owners, false);
    }
    if !f.not_owners.is_empty() {
        qb.push(" AND (u.username IS NULL OR 1 = 1");
        push_in(qb, "u.username", &f.not_owners, true);
        qb.push(")");
    }
    if !f.power_states.is_empty() {
        push_in(qb, "n.power_state", &owned.power_states, false);
    }
    if !f.not_power_states.is_empty() {
        push_in(qb, "n.power_state", &owned.not_power_states, true);
    }
    if let Some(ephemeral) = f.ephemeral {
        qb.push(" AND n.ephemeral_deploy = ");
        qb.push_bind(ephemeral);
    }
    if let Some(min) = f.min_cpu_count {
        qb.push(" AND n.cpu_count >= ");
        qb.push_bind(min);
    }
    if let Some(min) = f.min_cpu_speed {
        qb.push(" AND n.cpu_speed >= ");
        qb.push_bind(min);
    }
    if let Some(min) = f.min_memory {
        qb.push(" AND n.memory >= ");
        qb.push_bind(min);
    }
    if let Some(user_id) = f.visible_to {
        qb.push(" AND (n.owner_id IS NULL OR n.owner_id = ");
        qb.push_bind(user_id);
        qb.push(")");
    }
    if !f.fabrics.is_empty() {
        qb.push(
            " AND n.id IN (SELECT i.node_id FROM interfaces i JOIN vlans v ON v.id = i.vlan_id \
             JOIN fabrics fa ON fa.id = v.fabric_id WHERE 1 = 1",
        );
        push_in(qb, "fa.name", &f.fabrics, false);
        qb.push(")");
    }
    if !f.not_fabrics.is_empty() {
        qb.push(
            " AND n.id NOT IN (SELECT i.node_id FROM interfaces i JOIN vlans v ON v.id = i.vlan_id \
             JOIN fabrics fa ON fa.id = v.fabric_id WHERE 1 = 1",
        );
        push_in(qb, "fa.name", &f.not_fabrics, false);
        qb.push(")");
    }
    for subnet_id in &f.subnet_ids {
        qb.push(" AND n.id IN (SELECT node_id FROM ip_links WHERE subnet_id = ");
        qb.push_bind(*subnet_id);
        qb.push(")");
    }
    if !f.not_subnet_ids.is_empty() {
        qb.push(" AND n.id NOT IN (SELECT node_id FROM ip_links WHERE subnet_id IS NOT NULL");
        push_in(qb, "subnet_id", &f.not_subnet_ids, false);
        qb.push(")");
    }
}

/// Filter values converted to the column types, owned so binds can borrow them.
struct FilterValues {
    node_types: Vec<i64>,
    statuses: Vec<i64>,
    not_statuses: Vec<i64>,
    power_states: Vec<String>,
    not_power_states: Vec<String>,
    /// (exact match, LIKE pattern for a bare architecture)
    archs: Vec<(String, Option<String>)>,
    not_archs: Vec<(String, Option<String>)>,
    tags: Vec<String>,
}

fn arch_patterns(archs: &[String]) -> Vec<(String, Option<String>)> {
    archs
        .iter()
        .map(|arch| {
            // A bare architecture (`amd64`) stands for all its subarchitectures.
            // Architecture names are letters and digits, so they hold no LIKE wildcards.
            let prefix = (!arch.contains('/')).then(|| format!("{arch}/%"));
            (arch.clone(), prefix)
        })
        .collect()
}

impl FilterValues {
    fn new(f: &NodeFilter) -> FilterValues {
        let mut tags = f.tags.clone();
        tags.sort();
        tags.dedup();
        FilterValues {
            node_types: f.node_types.iter().map(|t| t.number()).collect(),
            statuses: f.statuses.iter().map(|s| s.number()).collect(),
            not_statuses: f.not_statuses.iter().map(|s| s.number()).collect(),
            power_states: f.power_states.iter().map(|s| s.as_str().to_owned()).collect(),
            not_power_states: f.not_power_states.iter().map(|s| s.as_str().to_owned()).collect(),
            archs: arch_patterns(&f.archs),
            not_archs: arch_patterns(&f.not_archs),
            tags,
        }
    }
}

impl StoreImpl {
    /// Fills tags, interfaces and block devices of `nodes` with one query per
    /// kind of row, whatever the number of nodes. Each query aggregates a
    /// node's rows into one JSON array (`json_group_array` / `json_agg`), so
    /// the driver hands over one value per node instead of one per column of
    /// every row: the listing path's cost is dominated by per-value work.
    async fn fill_nodes(&self, nodes: &mut [Node]) -> StoreResult<()> {
        if nodes.is_empty() {
            return Ok(());
        }
        let ids: Vec<i64> = nodes.iter().map(|n| n.id).collect();
        let index: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();

        for (node_id, names) in self.aggregated::<String>("node_tags nt JOIN tags t ON t.id = nt.tag_id", "nt.node_id", "t.name", "t.name", &ids).await? {
            if let Some(&i) = index.get(&node_id) {
                nodes[i].tags = names;
            }
        }

        let mut links: HashMap<i64, Vec<IpLink>> = HashMap::new();
        let mut discovered: HashMap<i64, Vec<(Option<i64>, String)>> = HashMap::new();
        let link_cols = format!("{JSON_ARRAY}(id, interface_id, mode, subnet_id, ip, discovered)");
        for (_, rows) in self.aggregated::<LinkRow>("ip_links", "node_id", &link_cols, "id", &ids).await? {
            for row in rows {
                if row.discovered.0 {
                    if let Some(ip) = row.ip {
                        discovered.entry(row.interface_id).or_default().push((row.subnet_id, ip));
                    }
                    continue;
                }
                links.entry(row.interface_id).or_default().push(IpLink {
                    id: row.id,
                    mode: LinkMode::parse(&row.mode).unwrap_or(LinkMode::LinkUp),
                    subnet_id: row.subnet_id,
                    ip: row.ip,
                });
            }
        }

        let mut parents: HashMap<i64, Vec<i64>> = HashMap::new();
        let parent_cols = format!("{JSON_ARRAY}(child_id, parent_id)");
        for (_, rows) in self.aggregated::<(i64, i64)>("interface_parents", "node_id", &parent_cols, "parent_id", &ids).await? {
            for (child, parent) in rows {
                parents.entry(child).or_default().push(parent);
            }
        }

        let interface_cols = format!(
            "{JSON_ARRAY}(id, name, kind, mac_address, vlan_id, enabled, params, tags, vendor, product, \
             firmware_version, link_connected, interface_speed, link_speed, numa_node, sriov_max_vf, mtu)"
        );
        for (node_id, rows) in self.aggregated::<InterfaceRow>("interfaces", "node_id", &interface_cols, "id", &ids).await? {
            let Some(&i) = index.get(&node_id) else { continue };
            let mut interfaces = Vec::with_capacity(rows.len());
            for row in rows {
                interfaces.push(Interface {
                    id: row.id,
                    name: row.name,
                    kind: InterfaceType::parse(&row.kind).unwrap_or(InterfaceType::Unknown),
                    mac_address: row.mac_address,
                    vlan_id: row.vlan_id,
                    enabled: row.enabled.0,
                    params: row.params,
                    tags: convert::json_to_list(&row.tags, "interface tags")?,
                    vendor: row.vendor,
                    product: row.product,
                    firmware_version: row.firmware_version,
                    link_connected: row.link_connected.0,
                    interface_speed: row.interface_speed,
                    link_speed: row.link_speed,
                    numa_node: row.numa_node,
                    sriov_max_vf: row.sriov_max_vf,
                    mtu: row.mtu,
                    parent_ids: parents.remove(&row.id).unwrap_or_default(),
                    links: links.remove(&row.id).unwrap_or_default(),
                    discovered: discovered.remove(&row.id).unwrap_or_default(),
                });
            }
            nodes[i].interfaces = interfaces;
        }

        let mut partitions: HashMap<i64, Vec<Partition>> = HashMap::new();
        let partition_cols = format!("{JSON_ARRAY}(id, block_device_id, uuid, size, bootable, tags, filesystem)");
        for (_, rows) in self.aggregated::<PartitionRow>("partitions", "node_id", &partition_cols, "id", &ids).await? {
            for row in rows {
                partitions.entry(row.block_device_id).or_default().push(Partition {
                    id: row.id,
                    uuid: row.uuid,
                    size: row.size,
                    bootable: row.bootable.0,
                    tags: convert::json_to_list(&row.tags, "partition tags")?,
                    filesystem: convert::json_to_filesystem(row.filesystem)?,
                });
            }
        }

        let device_cols = format!(
            "{JSON_ARRAY}(id, name, kind, model, serial, id_path, size, block_size, tags, uuid, firmware_version, \
             numa_node, partition_table_type, filesystem)"
        );
        for (node_id, rows) in self.aggregated::<DeviceRow>("block_devices", "node_id", &device_cols, "id", &ids).await? {
            let Some(&i) = index.get(&node_id) else { continue };
            let mut devices = Vec::with_capacity(rows.len());
            for row in rows {
                devices.push(BlockDevice {
                    id: row.id,
                    name: row.name,
                    kind: if row.kind == "virtual" { BlockDeviceType::Virtual } else { BlockDeviceType::Physical },
                    model: row.model,
                    serial: row.serial,
                    id_path: row.id_path,
                    size: row.size,
                    block_size: row.block_size,
                    tags: convert::json_to_list(&row.tags, "block device tags")?,
                    uuid: row.uuid,
                    firmware_version: row.firmware_version,
                    numa_node: row.numa_node,
                    partition_table_type: row.partition_table_type,
                    filesystem: convert::json_to_filesystem(row.filesystem)?,
                    partitions: partitions.remove(&row.id).unwrap_or_default(),
                });
            }
            nodes[i].block_devices = devices;
        }
        Ok(())
    }

    /// `SELECT key, json-aggregate(value ORDER BY order) FROM from WHERE key IN (ids) GROUP BY key`,
    /// each aggregate decoded into a list of `T`.
    async fn aggregated<T: serde::de::DeserializeOwned>(
        &self,
        from: &str,
        key: &str,
        value: &str,
        order: &str,
        ids: &[i64],
    ) -> StoreResult<Vec<(i64, Vec<T>)>> {
        let head = format!("SELECT {key} AS k, CAST({JSON_AGG}({value} ORDER BY {order}) AS TEXT) AS j FROM {from} WHERE {key} IN (");
        let rows = self.related(&head, ids, &format!(") GROUP BY {key}")).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let k: i64 = col!(row, "k");
            let text: String = col!(row, "j");
            let list = serde_json::from_str(&text).map_err(|e| maas_store::StoreError::InvalidData {
                what: format!("aggregated rows of {from}: {e}"),
            })?;
            out.push((k, list));
        }
        Ok(out)
    }

    /// Runs `head (id, id, …) tail` with the ids bound.
    async fn related(&self, head: &str, ids: &[i64], tail: &str) -> StoreResult<Vec<DbRow>> {
        let mut qb = QueryBuilder::<Db>::new(head);
        let mut list = qb.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        qb.push(tail);
        qb.build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)
    }

    /// The node matching `condition`, which has one `$1` placeholder bound to `value`.
    async fn one_node<V>(&self, condition: &str, value: V) -> StoreResult<Option<Node>>
    where
        V: for<'q> sqlx::Encode<'q, Db> + sqlx::Type<Db> + Send,
    {
        let sql = format!("{NODE_SELECT} WHERE {condition}");
        let row = sqlx::query(&sql)
            .bind(value)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        let Some(row) = row else { return Ok(None) };
        let mut nodes = vec![node_from_row(&row)?];
        self.fill_nodes(&mut nodes).await?;
        Ok(nodes.pop())
    }
}

#[async_trait]
impl UserStore for StoreImpl {
    async fn create_user(&self, user: NewUser, now: Millis) -> StoreResult<User> {
        let row = sqlx::query(
            "INSERT INTO users (username, email, password_hash, is_superuser, is_active, is_local, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(&user.username)
        .bind(&user.email)
        .bind(user.password_hash.as_ref().map(|h| h.expose().to_owned()))
        .bind(user.is_superuser)
        .bind(true)
        .bind(true)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        user_from_row(&row)
    }

    async fn user_by_id(&self, id: i64) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn users(&self) -> StoreResult<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users ORDER BY username")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(user_from_row).collect()
    }

    async fn user_count(&self) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM users")
            .fetch_one(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(col!(row, "n"))
    }

    async fn set_password(&self, user_id: i64, hash: Secret) -> StoreResult<()> {
        let done = sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
            .bind(hash.expose())
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("user"));
        }
        Ok(())
    }

    async fn set_last_login(&self, user_id: i64, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE users SET last_login = $1 WHERE id = $2")
            .bind(now)
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn delete_user(&self, user_id: i64, transfer_to: Option<i64>) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        if let Some(new_owner) = transfer_to {
            sqlx::query("UPDATE nodes SET owner_id = $1 WHERE owner_id = $2")
                .bind(new_owner)
                .bind(user_id)
                .execute(&mut *tx)
                .await
                .map_err(convert::backend)?;
        }
        sqlx::query("UPDATE events SET user_id = NULL WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("user"));
        }
        tx.commit().await.map_err(convert::backend)
    }

    async fn owned_node_count(&self, user_id: i64) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM nodes WHERE owner_id = $1")
            .bind(user_id)
            .fetch_one(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(col!(row, "n"))
    }

    async fn create_token(&self, token: NewToken, now: Millis) -> StoreResult<ApiToken> {
        let row = sqlx::query(
            "INSERT INTO api_tokens (user_id, consumer_key, consumer_name, token_key, token_secret, created) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        )
        .bind(token.user_id)
        .bind(&token.consumer_key)
        .bind(&token.consumer_name)
        .bind(&token.token_key)
        .bind(token.token_secret.expose())
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        token_from_row(&row)
    }

    async fn lookup_token(&self, consumer_key: &str, token_key: &str) -> StoreResult<TokenLookup> {
        let row = sqlx::query(
            "SELECT t.id AS t_id, t.user_id, t.consumer_key, t.consumer_name, t.token_key, \
             t.token_secret, t.created AS t_created, u.* \
             FROM api_tokens t JOIN users u ON u.id = t.user_id \
             WHERE t.token_key = $1 AND t.consumer_key = $2",
        )
        .bind(token_key)
        .bind(consumer_key)
        .fetch_optional(&self.read)
        .await
        .map_err(convert::backend)?;
        if let Some(row) = row {
            let secret: String = col!(row, "token_secret");
            let token = ApiToken {
                id: col!(row, "t_id"),
                user_id: col!(row, "user_id"),
                consumer_key: col!(row, "consumer_key"),
                consumer_name: col!(row, "consumer_name"),
                token_key: col!(row, "token_key"),
                token_secret: Secret::new(secret),
                created: col!(row, "t_created"),
            };
            let user = user_from_row(&row)?;
            return Ok(TokenLookup::Found { token: Box::new(token), user: Box::new(user) });
        }
        let consumer = sqlx::query("SELECT id FROM api_tokens WHERE consumer_key = $1")
            .bind(consumer_key)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(if consumer.is_some() {
            TokenLookup::UnknownToken
        } else {
            TokenLookup::UnknownConsumer
        })
    }

    async fn tokens_for_user(&self, user_id: i64) -> StoreResult<Vec<ApiToken>> {
        let rows = sqlx::query("SELECT * FROM api_tokens WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(token_from_row).collect()
    }

    async fn delete_token(&self, user_id: i64, token_key: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1 AND token_key = $2")
            .bind(user_id)
            .bind(token_key)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn rename_token(&self, user_id: i64, token_key: &str, name: &str) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE api_tokens SET consumer_name = $1 WHERE user_id = $2 AND token_key = $3",
        )
        .bind(name)
        .bind(user_id)
        .bind(token_key)
        .execute(&self.write)
        .await
        .map_err(convert::backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn sshkeys(&self, user_id: i64) -> StoreResult<Vec<SshKey>> {
        let rows = sqlx::query("SELECT * FROM sshkeys WHERE user_id = $1 ORDER BY id")
            .bind(user_id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(sshkey_from_row).collect()
    }

    async fn sshkey(&self, id: i64) -> StoreResult<Option<SshKey>> {
        let row = sqlx::query("SELECT * FROM sshkeys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(sshkey_from_row).transpose()
    }

    async fn create_sshkey(&self, user_id: i64, key: &str, keysource: &str) -> StoreResult<SshKey> {
        let row = sqlx::query(
            "INSERT INTO sshkeys (user_id, key, keysource) VALUES ($1, $2, $3) RETURNING *",
        )
        .bind(user_id)
        .bind(key)
        .bind(keysource)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        sshkey_from_row(&row)
    }

    async fn delete_sshkey(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM sshkeys WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }
}

#[async_trait]
impl ConfigStore for StoreImpl {
    async fn config_value(&self, name: &str) -> StoreResult<Option<String>> {
        let row = sqlx::query("SELECT value FROM config WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(match row {
            Some(row) => Some(col!(row, "value")),
            None => None,
        })
    }

    async fn set_config_value(&self, name: &str, json: &str) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO config (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(name)
        .bind(json)
        .execute(&self.write)
        .await
        .map_err(convert::backend)?;
        Ok(())
    }
}

#[async_trait]
impl GroupingStore for StoreImpl {
    async fn zones(&self) -> StoreResult<Vec<Zone>> {
        let rows = sqlx::query("SELECT * FROM zones ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(zone_from_row).collect()
    }

    async fn zone_by_name(&self, name: &str) -> StoreResult<Option<Zone>> {
        let row = sqlx::query("SELECT * FROM zones WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(zone_from_row).transpose()
    }

    async fn create_zone(&self, name: &str, description: &str, now: Millis) -> StoreResult<Zone> {
        let row = sqlx::query(
            "INSERT INTO zones (name, description, created) VALUES ($1, $2, $3) RETURNING *",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        zone_from_row(&row)
    }

    async fn update_zone(&self, id: i64, name: &str, description: &str) -> StoreResult<Zone> {
        let row = sqlx::query(
            "UPDATE zones SET name = $1, description = $2 WHERE id = $3 RETURNING *",
        )
        .bind(name)
        .bind(description)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => zone_from_row(&row),
            None => Err(maas_store::StoreError::not_found("zone")),
        }
    }

    async fn delete_zone(&self, id: i64, fallback_zone_id: i64) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        sqlx::query("UPDATE nodes SET zone_id = $1 WHERE zone_id = $2")
            .bind(fallback_zone_id)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        sqlx::query("DELETE FROM zones WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        tx.commit().await.map_err(convert::backend)
    }

    async fn pools(&self) -> StoreResult<Vec<ResourcePool>> {
        let rows = sqlx::query("SELECT * FROM resource_pools ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(pool_from_row).collect()
    }

    async fn pool_by_id(&self, id: i64) -> StoreResult<Option<ResourcePool>> {
        let row = sqlx::query("SELECT * FROM resource_pools WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(pool_from_row).transpose()
    }

    async fn pool_by_name(&self, name: &str) -> StoreResult<Option<ResourcePool>> {
        let row = sqlx::query("SELECT * FROM resource_pools WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(pool_from_row).transpose()
    }

    async fn create_pool(&self, name: &str, description: &str, now: Millis) -> StoreResult<ResourcePool> {
        let row = sqlx::query(
            "INSERT INTO resource_pools (name, description, created) VALUES ($1, $2, $3) RETURNING *",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        pool_from_row(&row)
    }

    async fn update_pool(&self, id: i64, name: &str, description: &str) -> StoreResult<ResourcePool> {
        let row = sqlx::query(
            "UPDATE resource_pools SET name = $1, description = $2 WHERE id = $3 RETURNING *",
        )
        .bind(name)
        .bind(description)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => pool_from_row(&row),
            None => Err(maas_store::StoreError::not_found("resource pool")),
        }
    }

    async fn delete_pool(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM resource_pools WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn pool_node_count(&self, id: i64) -> StoreResult<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM nodes WHERE pool_id = $1")
            .bind(id)
            .fetch_one(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(col!(row, "n"))
    }

    async fn domains(&self) -> StoreResult<Vec<Domain>> {
        let rows = sqlx::query("SELECT * FROM domains ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(domain_from_row).collect()
    }

    async fn domain_by_id(&self, id: i64) -> StoreResult<Option<Domain>> {
        let row = sqlx::query("SELECT * FROM domains WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn domain_by_name(&self, name: &str) -> StoreResult<Option<Domain>> {
        let row = sqlx::query("SELECT * FROM domains WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(domain_from_row).transpose()
    }

    async fn tags(&self) -> StoreResult<Vec<Tag>> {
        let rows = sqlx::query("SELECT * FROM tags ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(tag_from_row).collect()
    }

    async fn tag_by_name(&self, name: &str) -> StoreResult<Option<Tag>> {
        let row = sqlx::query("SELECT * FROM tags WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(tag_from_row).transpose()
    }

    async fn create_tag(&self, tag: Tag) -> StoreResult<Tag> {
        let row = sqlx::query(
            "INSERT INTO tags (name, definition, comment, kernel_opts) VALUES ($1, $2, $3, $4) RETURNING *",
        )
        .bind(&tag.name)
        .bind(&tag.definition)
        .bind(&tag.comment)
        .bind(&tag.kernel_opts)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        tag_from_row(&row)
    }

    async fn update_tag(&self, id: i64, tag: Tag) -> StoreResult<Tag> {
        let row = sqlx::query(
            "UPDATE tags SET name = $1, definition = $2, comment = $3, kernel_opts = $4 \
             WHERE id = $5 RETURNING *",
        )
        .bind(&tag.name)
        .bind(&tag.definition)
        .bind(&tag.comment)
        .bind(&tag.kernel_opts)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => tag_from_row(&row),
            None => Err(maas_store::StoreError::not_found("tag")),
        }
    }

    async fn delete_tag(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM tags WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn tag_nodes(&self, tag_id: i64, add: &[String], remove: &[String]) -> StoreResult<TagChanges> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        let mut changes = TagChanges::default();
        for system_id in add {
            let done = sqlx::query(
                "INSERT INTO node_tags (node_id, tag_id) \
                 SELECT id, $1 FROM nodes WHERE system_id = $2 \
                 ON CONFLICT (node_id, tag_id) DO NOTHING",
            )
            .bind(tag_id)
            .bind(system_id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
            changes.added += done.rows_affected();
        }
        for system_id in remove {
            let done = sqlx::query(
                "DELETE FROM node_tags WHERE tag_id = $1 \
                 AND node_id IN (SELECT id FROM nodes WHERE system_id = $2)",
            )
            .bind(tag_id)
            .bind(system_id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
            changes.removed += done.rows_affected();
        }
        tx.commit().await.map_err(convert::backend)?;
        Ok(changes)
    }
}

#[async_trait]
impl NetworkStore for StoreImpl {
    async fn network_catalog(&self) -> StoreResult<NetworkCatalog> {
        let fabrics = sqlx::query("SELECT * FROM fabrics ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let vlans = sqlx::query("SELECT * FROM vlans ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let spaces = sqlx::query("SELECT * FROM spaces ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let subnets = sqlx::query("SELECT * FROM subnets ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(NetworkCatalog {
            fabrics: fabrics.iter().map(fabric_from_row).collect::<StoreResult<_>>()?,
            vlans: vlans.iter().map(vlan_from_row).collect::<StoreResult<_>>()?,
            spaces: spaces.iter().map(space_from_row).collect::<StoreResult<_>>()?,
            subnets: subnets.iter().map(subnet_from_row).collect::<StoreResult<_>>()?,
        })
    }

    async fn create_fabric(
        &self,
        name: Option<&str>,
        description: &str,
        class_type: Option<&str>,
        now: Millis,
    ) -> StoreResult<Fabric> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        // Without a name the fabric is called after its id, which is only
        // known after the insert: insert with a unique placeholder, then rename.
        let placeholder = format!("fabric-new-{now}-{}", description.len());
        let row = sqlx::query(
            "INSERT INTO fabrics (name, description, class_type, created) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name.unwrap_or(&placeholder))
        .bind(description)
        .bind(class_type)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(convert::backend)?;
        let id: i64 = col!(row, "id");
        if name.is_none() {
            sqlx::query("UPDATE fabrics SET name = $1 WHERE id = $2")
                .bind(format!("fabric-{id}"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(convert::backend)?;
        }
        sqlx::query(
            "INSERT INTO vlans (fabric_id, vid, name, description, mtu, dhcp_on, created) \
             VALUES ($1, 0, 'untagged', '', 1500, $2, $3)",
        )
        .bind(id)
        .bind(false)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(convert::backend)?;
        let row = sqlx::query("SELECT * FROM fabrics WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .map_err(convert::backend)?;
        let fabric = fabric_from_row(&row)?;
        tx.commit().await.map_err(convert::backend)?;
        Ok(fabric)
    }

    async fn update_fabric(&self, fabric: Fabric) -> StoreResult<Fabric> {
        let row = sqlx::query(
            "UPDATE fabrics SET name = $1, description = $2, class_type = $3 WHERE id = $4 RETURNING *",
        )
        .bind(&fabric.name)
        .bind(&fabric.description)
        .bind(&fabric.class_type)
        .bind(fabric.id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => fabric_from_row(&row),
            None => Err(maas_store::StoreError::not_found("fabric")),
        }
    }

    async fn delete_fabric(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        sqlx::query("DELETE FROM subnets WHERE vlan_id IN (SELECT id FROM vlans WHERE fabric_id = $1)")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        sqlx::query("DELETE FROM fabrics WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        tx.commit().await.map_err(convert::backend)
    }

    async fn create_vlan(&self, fabric_id: i64, f: VlanFields, now: Millis) -> StoreResult<Vlan> {
        let row = sqlx::query(
            "INSERT INTO vlans (fabric_id, vid, name, description, mtu, dhcp_on, external_dhcp, \
             primary_rack, secondary_rack, relay_vlan_id, space_id, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING *",
        )
        .bind(fabric_id)
        .bind(f.vid)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.mtu)
        .bind(f.dhcp_on)
        .bind(&f.external_dhcp)
        .bind(&f.primary_rack)
        .bind(&f.secondary_rack)
        .bind(f.relay_vlan_id)
        .bind(f.space_id)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        vlan_from_row(&row)
    }

    async fn update_vlan(&self, id: i64, f: VlanFields) -> StoreResult<Vlan> {
        let row = sqlx::query(
            "UPDATE vlans SET vid = $1, name = $2, description = $3, mtu = $4, dhcp_on = $5, \
             external_dhcp = $6, primary_rack = $7, secondary_rack = $8, relay_vlan_id = $9, \
             space_id = $10 WHERE id = $11 RETURNING *",
        )
        .bind(f.vid)
        .bind(&f.name)
        .bind(&f.description)
        .bind(f.mtu)
        .bind(f.dhcp_on)
        .bind(&f.external_dhcp)
        .bind(&f.primary_rack)
        .bind(&f.secondary_rack)
        .bind(f.relay_vlan_id)
        .bind(f.space_id)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => vlan_from_row(&row),
            None => Err(maas_store::StoreError::not_found("VLAN")),
        }
    }

    async fn delete_vlan(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM vlans WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn create_space(&self, name: &str, description: &str, now: Millis) -> StoreResult<Space> {
        let row = sqlx::query(
            "INSERT INTO spaces (name, description, created) VALUES ($1, $2, $3) RETURNING *",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        space_from_row(&row)
    }

    async fn update_space(&self, space: Space) -> StoreResult<Space> {
        let row = sqlx::query("UPDATE spaces SET name = $1, description = $2 WHERE id = $3 RETURNING *")
            .bind(&space.name)
            .bind(&space.description)
            .bind(space.id)
            .fetch_optional(&self.write)
            .await
            .map_err(convert::backend)?;
        match row {
            Some(row) => space_from_row(&row),
            None => Err(maas_store::StoreError::not_found("space")),
        }
    }

    async fn delete_space(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM spaces WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn create_subnet(&self, f: SubnetFields, now: Millis) -> StoreResult<Subnet> {
        let row = sqlx::query(
            "INSERT INTO subnets (name, description, cidr, vlan_id, gateway_ip, dns_servers, rdns_mode, \
             allow_dns, allow_proxy, active_discovery, managed, disabled_boot_architectures, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING *",
        )
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.cidr)
        .bind(f.vlan_id)
        .bind(&f.gateway_ip)
        .bind(convert::list_to_json(&f.dns_servers))
        .bind(f.rdns_mode)
        .bind(f.allow_dns)
        .bind(f.allow_proxy)
        .bind(f.active_discovery)
        .bind(f.managed)
        .bind(convert::list_to_json(&f.disabled_boot_architectures))
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        subnet_from_row(&row)
    }

    async fn update_subnet(&self, id: i64, f: SubnetFields) -> StoreResult<Subnet> {
        let row = sqlx::query(
            "UPDATE subnets SET name = $1, description = $2, cidr = $3, vlan_id = $4, gateway_ip = $5, \
             dns_servers = $6, rdns_mode = $7, allow_dns = $8, allow_proxy = $9, active_discovery = $10, \
             managed = $11, disabled_boot_architectures = $12 WHERE id = $13 RETURNING *",
        )
        .bind(&f.name)
        .bind(&f.description)
        .bind(&f.cidr)
        .bind(f.vlan_id)
        .bind(&f.gateway_ip)
        .bind(convert::list_to_json(&f.dns_servers))
        .bind(f.rdns_mode)
        .bind(f.allow_dns)
        .bind(f.allow_proxy)
        .bind(f.active_discovery)
        .bind(f.managed)
        .bind(convert::list_to_json(&f.disabled_boot_architectures))
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => subnet_from_row(&row),
            None => Err(maas_store::StoreError::not_found("subnet")),
        }
    }

    async fn delete_subnet(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM subnets WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn ip_ranges(&self) -> StoreResult<Vec<IpRange>> {
        let rows = sqlx::query("SELECT * FROM ip_ranges ORDER BY id")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(ip_range_from_row).collect()
    }

    async fn create_ip_range(&self, f: IpRangeFields, now: Millis) -> StoreResult<IpRange> {
        let row = sqlx::query(
            "INSERT INTO ip_ranges (subnet_id, kind, start_ip, end_ip, comment, user_id, created) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *",
        )
        .bind(f.subnet_id)
        .bind(&f.kind)
        .bind(&f.start_ip)
        .bind(&f.end_ip)
        .bind(&f.comment)
        .bind(f.user_id)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        ip_range_from_row(&row)
    }

    async fn update_ip_range(&self, id: i64, f: IpRangeFields) -> StoreResult<IpRange> {
        let row = sqlx::query(
            "UPDATE ip_ranges SET subnet_id = $1, kind = $2, start_ip = $3, end_ip = $4, comment = $5, \
             user_id = $6 WHERE id = $7 RETURNING *",
        )
        .bind(f.subnet_id)
        .bind(&f.kind)
        .bind(&f.start_ip)
        .bind(&f.end_ip)
        .bind(&f.comment)
        .bind(f.user_id)
        .bind(id)
        .fetch_optional(&self.write)
        .await
        .map_err(convert::backend)?;
        match row {
            Some(row) => ip_range_from_row(&row),
            None => Err(maas_store::StoreError::not_found("IP range")),
        }
    }

    async fn delete_ip_range(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM ip_ranges WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }
}

/// Inserts interfaces, links, block devices and partitions of an inventory.
async fn insert_inventory(
    tx: &mut sqlx::Transaction<'_, Db>,
    node_id: i64,
    inventory: &Inventory,
) -> StoreResult<(Option<i64>, Option<i64>)> {
    let mut interface_ids = Vec::with_capacity(inventory.interfaces.len());
    let mut boot_interface = None;
    for interface in &inventory.interfaces {
        let row = sqlx::query(
            "INSERT INTO interfaces (node_id, name, kind, mac_address, vlan_id, enabled, params, tags, \
             vendor, product, firmware_version, link_connected, interface_speed, link_speed, numa_node, \
             sriov_max_vf, mtu) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
        )
        .bind(node_id)
        .bind(&interface.name)
        .bind(interface.kind.as_str())
        .bind(&interface.mac_address)
        .bind(interface.vlan_id)
        .bind(interface.enabled)
        .bind(&interface.params)
        .bind(convert::list_to_json(&interface.tags))
        .bind(&interface.vendor)
        .bind(&interface.product)
        .bind(&interface.firmware_version)
        .bind(interface.link_connected)
        .bind(interface.interface_speed)
        .bind(interface.link_speed)
        .bind(interface.numa_node)
        .bind(interface.sriov_max_vf)
        .bind(interface.mtu)
        .fetch_one(&mut **tx)
        .await
        .map_err(convert::backend)?;
        let id: i64 = col!(row, "id");
        if interface.boot && boot_interface.is_none() {
            boot_interface = Some(id);
        }
        interface_ids.push(id);
    }
    for (interface, &id) in inventory.interfaces.iter().zip(&interface_ids) {
        for &parent in &interface.parents {
            let Some(&parent_id) = interface_ids.get(parent) else {
                return Err(maas_store::StoreError::InvalidData {
                    what: format!("interface {} names parent #{parent}, which does not exist", interface.name),
                });
            };
            sqlx::query("INSERT INTO interface_parents (child_id, parent_id, node_id) VALUES ($1, $2, $3)")
                .bind(id)
                .bind(parent_id)
                .bind(node_id)
                .execute(&mut **tx)
                .await
                .map_err(convert::backend)?;
        }
        for (subnet_id, ip) in &interface.discovered {
            sqlx::query(
                "INSERT INTO ip_links (interface_id, node_id, mode, subnet_id, ip, discovered) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(node_id)
            .bind("dhcp")
            .bind(*subnet_id)
            .bind(ip)
            .bind(true)
            .execute(&mut **tx)
            .await
            .map_err(convert::backend)?;
        }
        for link in &interface.links {
            sqlx::query(
                "INSERT INTO ip_links (interface_id, node_id, mode, subnet_id, ip, discovered) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(id)
            .bind(node_id)
            .bind(link.mode.as_str())
            .bind(link.subnet_id)
            .bind(&link.ip)
            .bind(false)
            .execute(&mut **tx)
            .await
            .map_err(convert::backend)?;
        }
    }
    let mut boot_disk = None;
    for device in &inventory.block_devices {
        let row = sqlx::query(
            "INSERT INTO block_devices (node_id, name, kind, model, serial, id_path, size, block_size, tags, \
             uuid, firmware_version, numa_node, partition_table_type, filesystem) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id",
        )
        .bind(node_id)
        .bind(&device.name)
        .bind(device.kind.as_str())
        .bind(&device.model)
        .bind(&device.serial)
        .bind(&device.id_path)
        .bind(device.size)
        .bind(device.block_size)
        .bind(convert::list_to_json(&device.tags))
        .bind(&device.uuid)
        .bind(&device.firmware_version)
        .bind(device.numa_node)
        .bind(&device.partition_table_type)
        .bind(convert::filesystem_to_json(&device.filesystem))
        .fetch_one(&mut **tx)
        .await
        .map_err(convert::backend)?;
        let id: i64 = col!(row, "id");
        if device.boot && boot_disk.is_none() {
            boot_disk = Some(id);
        }
        for partition in &device.partitions {
            sqlx::query(
                "INSERT INTO partitions (block_device_id, node_id, uuid, size, bootable, tags, filesystem) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(id)
            .bind(node_id)
            .bind(&partition.uuid)
            .bind(partition.size)
            .bind(partition.bootable)
            .bind(convert::list_to_json(&partition.tags))
            .bind(convert::filesystem_to_json(&partition.filesystem))
            .execute(&mut **tx)
            .await
            .map_err(convert::backend)?;
        }
    }
    Ok((boot_interface, boot_disk))
}

/// Inserts an event; a status event also becomes the node's status message.
async fn insert_event(tx: &mut sqlx::Transaction<'_, Db>, e: &NewEvent) -> StoreResult<i64> {
    let row = sqlx::query(
        "INSERT INTO events (node_id, system_id, hostname, event_type, description, action, level, \
         user_id, username, created) \
         SELECT $1, (SELECT system_id FROM nodes WHERE id = $2), \
         COALESCE((SELECT hostname FROM nodes WHERE id = $3), ''), $4, $5, $6, $7, $8, \
         (SELECT username FROM users WHERE id = $9), $10 RETURNING id",
    )
    .bind(e.node_id)
    .bind(e.node_id)
    .bind(e.node_id)
    .bind(&e.event_type)
    .bind(&e.description)
    .bind(&e.action)
    .bind(e.level.number())
    .bind(e.user_id)
    .bind(e.user_id)
    .bind(e.created)
    .fetch_one(&mut **tx)
    .await
    .map_err(convert::backend)?;
    let id: i64 = col!(row, "id");
    if let (true, Some(node_id)) = (e.is_status, e.node_id) {
        let message = if e.description.is_empty() {
            e.event_type.clone()
        } else {
            format!("{} - {}", e.event_type, e.description)
        };
        sqlx::query("UPDATE nodes SET status_message = $1, status_action = $2 WHERE id = $3")
            .bind(message)
            .bind(&e.action)
            .bind(node_id)
            .execute(&mut **tx)
            .await
            .map_err(convert::backend)?;
    }
    Ok(id)
}

#[async_trait]
impl NodeStore for StoreImpl {
    async fn create_node(&self, node: NewNode) -> StoreResult<Node> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        let row = sqlx::query(
            "INSERT INTO nodes (system_id, hostname, description, node_type, status, previous_status, \
             owner_id, domain_id, zone_id, pool_id, architecture, min_hwe_kernel, power_type, \
             power_parameters, is_dpu, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) RETURNING id",
        )
        .bind(&node.system_id)
        .bind(&node.hostname)
        .bind(&node.description)
        .bind(node.node_type.number())
        .bind(node.status.number())
        .bind(node.status.number())
        .bind(node.owner_id)
        .bind(node.domain_id)
        .bind(node.zone_id)
        .bind(node.pool_id)
        .bind(&node.architecture)
        .bind(&node.min_hwe_kernel)
        .bind(&node.power_type)
        .bind(convert::map_to_json(&node.power_parameters))
        .bind(node.is_dpu)
        .bind(node.created)
        .bind(node.created)
        .fetch_one(&mut *tx)
        .await
        .map_err(convert::backend)?;
        let id: i64 = col!(row, "id");
        let inventory = Inventory {
            interfaces: node
                .mac_addresses
                .iter()
                .enumerate()
                .map(|(i, mac)| maas_store::NewInterface {
                    name: format!("eth{i}"),
                    kind: InterfaceType::Physical,
                    mac_address: Some(mac.clone()),
                    vlan_id: None,
                    enabled: true,
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
                    mtu: 1500,
                    parents: Vec::new(),
                    links: Vec::new(),
                    discovered: Vec::new(),
                    boot: i == 0,
                })
                .collect(),
            ..Inventory::default()
        };
        let (boot_interface, _) = insert_inventory(&mut tx, id, &inventory).await?;
        sqlx::query("UPDATE nodes SET boot_interface_id = $1 WHERE id = $2")
            .bind(boot_interface)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        tx.commit().await.map_err(convert::backend)?;
        self.one_node("n.id = $1", id)
            .await?
            .ok_or_else(|| maas_store::StoreError::not_found("node just created"))
    }

    async fn node_by_system_id(&self, system_id: &str) -> StoreResult<Option<Node>> {
        self.one_node("n.system_id = $1", system_id.to_owned()).await
    }

    async fn node_by_mac(&self, mac: &str) -> StoreResult<Option<Node>> {
        self.one_node(
            "n.id = (SELECT node_id FROM interfaces WHERE mac_address = $1 ORDER BY id LIMIT 1)",
            mac.to_owned(),
        )
        .await
    }

    async fn nodes(&self, filter: &NodeFilter, after_id: i64, limit: i64) -> StoreResult<Vec<Node>> {
        let owned = FilterValues::new(filter);
        let mut qb = QueryBuilder::<Db>::new(NODE_SELECT);
        qb.push(" WHERE n.id > ");
        qb.push_bind(after_id);
        push_node_filter(&mut qb, filter, &owned);
        qb.push(" ORDER BY n.id LIMIT ");
        qb.push_bind(limit);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut nodes = rows.iter().map(node_from_row).collect::<StoreResult<Vec<_>>>()?;
        self.fill_nodes(&mut nodes).await?;
        Ok(nodes)
    }

    async fn nodes_by_size(&self, filter: &NodeFilter, offset: i64, limit: i64) -> StoreResult<Vec<Node>> {
        let owned = FilterValues::new(filter);
        let mut qb = QueryBuilder::<Db>::new(NODE_SELECT);
        qb.push(" WHERE 1 = 1");
        push_node_filter(&mut qb, filter, &owned);
        qb.push(" ORDER BY n.cpu_count * 1024 + n.memory, n.id LIMIT ");
        qb.push_bind(limit);
        qb.push(" OFFSET ");
        qb.push_bind(offset);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut nodes = rows.iter().map(node_from_row).collect::<StoreResult<Vec<_>>>()?;
        self.fill_nodes(&mut nodes).await?;
        Ok(nodes)
    }

    async fn update_node(&self, id: i64, u: NodeUpdate) -> StoreResult<()> {
        let mut qb = QueryBuilder::<Db>::new("UPDATE nodes SET updated = ");
        qb.push_bind(u.updated);
        macro_rules! set {
            ($field:ident, $column:literal) => {
                if let Some(value) = u.$field {
                    qb.push(concat!(", ", $column, " = "));
                    qb.push_bind(value);
                }
            };
        }
        set!(hostname, "hostname");
        set!(description, "description");
        set!(domain_id, "domain_id");
        set!(zone_id, "zone_id");
        set!(pool_id, "pool_id");
        set!(architecture, "architecture");
        set!(min_hwe_kernel, "min_hwe_kernel");
        set!(hwe_kernel, "hwe_kernel");
        set!(cpu_count, "cpu_count");
        set!(cpu_speed, "cpu_speed");
        set!(memory, "memory");
        set!(swap_size, "swap_size");
        set!(power_type, "power_type");
        set!(locked, "locked");
        set!(netboot, "netboot");
        set!(osystem, "osystem");
        set!(distro_series, "distro_series");
        set!(error_description, "error_description");
        set!(agent_name, "agent_name");
        set!(ephemeral_deploy, "ephemeral_deploy");
        set!(enable_hw_sync, "enable_hw_sync");
        set!(enable_kernel_crash_dump, "enable_kernel_crash_dump");
        set!(user_data, "user_data");
        set!(enlisting, "enlisting");
        set!(enable_ssh, "enable_ssh");
        set!(skip_networking, "skip_networking");
        set!(skip_storage, "skip_storage");
        set!(install_kvm, "install_kvm");
        set!(status_expires, "status_expires");
        if let Some(params) = u.power_parameters {
            qb.push(", power_parameters = ");
            qb.push_bind(convert::map_to_json(&params));
        }
        if let Some(data) = u.owner_data {
            qb.push(", owner_data = ");
            qb.push_bind(convert::map_to_json(&data));
        }
        if let Some(state) = u.power_state {
            qb.push(", power_state = ");
            qb.push_bind(state.as_str());
        }
        qb.push(" WHERE id = ");
        qb.push_bind(id);
        let done = qb
            .build()
            .persistent(false)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("node"));
        }
        Ok(())
    }

    async fn change_status(&self, id: i64, c: StatusChange) -> StoreResult<bool> {
        let mut qb = QueryBuilder::<Db>::new("UPDATE nodes SET status = ");
        qb.push_bind(c.to.number());
        qb.push(if c.keep_previous { ", updated = " } else { ", previous_status = status, updated = " });
        qb.push_bind(c.updated);
        if let Some(owner) = c.owner {
            qb.push(", owner_id = ");
            qb.push_bind(owner);
        }
        if let Some(agent_name) = c.agent_name {
            qb.push(", agent_name = ");
            qb.push_bind(agent_name);
        }
        if let Some(expires) = c.status_expires {
            qb.push(", status_expires = ");
            qb.push_bind(expires);
        }
        if let Some(error) = c.error_description {
            qb.push(", error_description = ");
            qb.push_bind(error);
        }
        qb.push(" WHERE id = ");
        qb.push_bind(id);
        qb.push(" AND status = ");
        qb.push_bind(c.from.number());
        match c.owner_must_be {
            Some(Some(owner)) => {
                qb.push(" AND owner_id = ");
                qb.push_bind(owner);
            }
            Some(None) => {
                qb.push(" AND owner_id IS NULL");
            }
            None => {}
        }
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        let done = qb
            .build()
            .persistent(false)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        for event in &c.events {
            insert_event(&mut tx, event).await?;
        }
        tx.commit().await.map_err(convert::backend)?;
        Ok(true)
    }

    async fn delete_node(&self, id: i64) -> StoreResult<()> {
        let done = sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("node"));
        }
        Ok(())
    }

    async fn macs_in_use(&self, macs: &[String]) -> StoreResult<Vec<String>> {
        if macs.is_empty() {
            return Ok(Vec::new());
        }
        let mut qb = QueryBuilder::<Db>::new("SELECT DISTINCT mac_address FROM interfaces WHERE 1 = 1");
        push_in(&mut qb, "mac_address", macs, false);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut found = Vec::with_capacity(rows.len());
        for row in &rows {
            found.push(col!(row, "mac_address"));
        }
        Ok(found)
    }

    async fn set_inventory(&self, id: i64, inventory: Inventory, now: Millis) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        for table in ["ip_links", "interface_parents", "partitions"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE node_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(convert::backend)?;
        }
        for table in ["interfaces", "block_devices"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE node_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(convert::backend)?;
        }
        let (boot_interface, boot_disk) = insert_inventory(&mut tx, id, &inventory).await?;
        let done = sqlx::query(
            "UPDATE nodes SET cpu_count = $1, cpu_speed = $2, memory = $3, hardware_uuid = $4, \
             hardware_info = $5, bios_boot_method = $6, boot_interface_id = $7, boot_disk_id = $8, \
             updated = $9 WHERE id = $10",
        )
        .bind(inventory.cpu_count)
        .bind(inventory.cpu_speed)
        .bind(inventory.memory)
        .bind(&inventory.hardware_uuid)
        .bind(convert::map_to_json(&inventory.hardware_info))
        .bind(&inventory.bios_boot_method)
        .bind(boot_interface)
        .bind(boot_disk)
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("node"));
        }
        tx.commit().await.map_err(convert::backend)
    }

    async fn create_event(&self, e: NewEvent) -> StoreResult<i64> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        let id = insert_event(&mut tx, &e).await?;
        tx.commit().await.map_err(convert::backend)?;
        Ok(id)
    }

    async fn events(&self, q: &EventQuery) -> StoreResult<Vec<Event>> {
        let mut qb = QueryBuilder::<Db>::new(
            "SELECT e.* FROM events e LEFT JOIN nodes n ON n.id = e.node_id \
             LEFT JOIN zones z ON z.id = n.zone_id WHERE (n.node_type IS NULL OR n.node_type <> 1)",
        );
        if !q.hostnames.is_empty() {
            push_in(&mut qb, "e.hostname", &q.hostnames, false);
        }
        if !q.system_ids.is_empty() {
            push_in(&mut qb, "e.system_id", &q.system_ids, false);
        }
        if !q.mac_addresses.is_empty() {
            qb.push(" AND e.node_id IN (SELECT node_id FROM interfaces WHERE 1 = 1");
            push_in(&mut qb, "mac_address", &q.mac_addresses, false);
            qb.push(")");
        }
        if let Some(zone) = &q.zone {
            qb.push(" AND z.name = ");
            qb.push_bind(zone.clone());
        }
        if let Some(agent) = &q.agent_name {
            qb.push(" AND n.agent_name = ");
            qb.push_bind(agent.clone());
        }
        if let Some(owner) = &q.owner {
            qb.push(" AND e.username = ");
            qb.push_bind(owner.clone());
        }
        match q.level {
            Some(EventLevel::Audit) => {
                qb.push(" AND e.level = 0");
            }
            Some(level) => {
                qb.push(" AND e.level >= ");
                qb.push_bind(level.number());
            }
            None => {}
        }
        if let Some(user_id) = q.visible_to {
            qb.push(" AND (n.id IS NULL OR n.owner_id IS NULL OR n.owner_id = ");
            qb.push_bind(user_id);
            qb.push(")");
        }
        if let Some(before) = q.before {
            qb.push(" AND e.id < ");
            qb.push_bind(before);
        }
        // Paging forward (`after`) walks upwards from the given id, so take
        // the oldest matches first and return them newest first.
        let ascending = q.after.is_some();
        if let Some(after) = q.after {
            qb.push(" AND e.id > ");
            qb.push_bind(after);
        }
        qb.push(if ascending { " ORDER BY e.id ASC LIMIT " } else { " ORDER BY e.id DESC LIMIT " });
        qb.push_bind(q.limit);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut events = rows.iter().map(event_from_row).collect::<StoreResult<Vec<_>>>()?;
        if ascending {
            events.reverse();
        }
        Ok(events)
    }
}


fn script_from_row(row: &DbRow) -> StoreResult<Script> {
    let tags: String = col!(row, "tags");
    Ok(Script {
        id: col!(row, "id"),
        name: col!(row, "name"),
        title: col!(row, "title"),
        description: col!(row, "description"),
        tags: convert::json_to_list(&tags, "script tags")?,
        script_type: col!(row, "script_type"),
        hardware_type: col!(row, "hardware_type"),
        parallel: col!(row, "parallel"),
        timeout_seconds: col!(row, "timeout_seconds"),
        destructive: col!(row, "destructive"),
        is_default: col!(row, "is_default"),
        may_reboot: col!(row, "may_reboot"),
        script: col!(row, "script"),
    })
}

fn script_result_from_row(row: &DbRow, with_output: bool) -> StoreResult<ScriptResult> {
    let blob = |name: &str| -> StoreResult<Option<Vec<u8>>> {
        if with_output { Ok(row.try_get(name).map_err(convert::backend)?) } else { Ok(None) }
    };
    Ok(ScriptResult {
        id: col!(row, "id"),
        script_set_id: col!(row, "script_set_id"),
        script_id: col!(row, "script_id"),
        name: col!(row, "name"),
        status: col!(row, "status"),
        exit_status: col!(row, "exit_status"),
        started: col!(row, "started"),
        ended: col!(row, "ended"),
        runtime: col!(row, "runtime"),
        output: blob("output")?,
        stdout: blob("stdout")?,
        stderr: blob("stderr")?,
        result: blob("result")?,
        parameters: col!(row, "parameters"),
        created: col!(row, "created"),
        updated: col!(row, "updated"),
    })
}

fn script_set_from_row(row: &DbRow) -> StoreResult<ScriptSet> {
    Ok(ScriptSet {
        id: col!(row, "id"),
        node_id: col!(row, "node_id"),
        result_type: col!(row, "result_type"),
        last_ping: col!(row, "last_ping"),
        created: col!(row, "created"),
        results: Vec::new(),
    })
}

/// Result columns without the output blobs, for listings.
const RESULT_COLUMNS: &str = "id, script_set_id, script_id, name, status, exit_status, started, ended, runtime, \
    parameters, created, updated";

fn current_set_column(result_type: i64) -> &'static str {
    match result_type {
        maas_store::result_type::COMMISSIONING => "current_commissioning_set_id",
        maas_store::result_type::INSTALLATION => "current_installation_set_id",
        maas_store::result_type::RELEASE => "current_release_set_id",
        _ => "current_testing_set_id",
    }
}

#[async_trait]
impl ScriptStore for StoreImpl {
    async fn upsert_script(&self, script: Script, now: Millis) -> StoreResult<Script> {
        let row = sqlx::query(
            "INSERT INTO scripts (name, title, description, tags, script_type, hardware_type, parallel, \
             timeout_seconds, destructive, is_default, may_reboot, script, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (name) DO UPDATE SET title = excluded.title, description = excluded.description, \
             tags = excluded.tags, script_type = excluded.script_type, hardware_type = excluded.hardware_type, \
             parallel = excluded.parallel, timeout_seconds = excluded.timeout_seconds, \
             destructive = excluded.destructive, is_default = excluded.is_default, may_reboot = excluded.may_reboot, \
             script = excluded.script, updated = excluded.updated RETURNING *",
        )
        .bind(&script.name)
        .bind(&script.title)
        .bind(&script.description)
        .bind(convert::list_to_json(&script.tags))
        .bind(script.script_type)
        .bind(script.hardware_type)
        .bind(script.parallel)
        .bind(script.timeout_seconds)
        .bind(script.destructive)
        .bind(script.is_default)
        .bind(script.may_reboot)
        .bind(&script.script)
        .bind(now)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        script_from_row(&row)
    }

    async fn scripts(&self) -> StoreResult<Vec<Script>> {
        let rows = sqlx::query("SELECT * FROM scripts ORDER BY name")
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter().map(script_from_row).collect()
    }

    async fn script_by_name(&self, name: &str) -> StoreResult<Option<Script>> {
        let row = sqlx::query("SELECT * FROM scripts WHERE name = $1")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        row.as_ref().map(script_from_row).transpose()
    }

    async fn delete_script(&self, id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM scripts WHERE id = $1")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn create_script_set(
        &self,
        node_id: i64,
        result_type: i64,
        results: Vec<NewScriptResult>,
        now: Millis,
    ) -> StoreResult<ScriptSet> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        let row = sqlx::query(
            "INSERT INTO script_sets (node_id, result_type, last_ping, created) VALUES ($1, $2, NULL, $3) RETURNING *",
        )
        .bind(node_id)
        .bind(result_type)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(convert::backend)?;
        let mut set = script_set_from_row(&row)?;
        for result in results {
            let row = sqlx::query(&format!(
                "INSERT INTO script_results (script_set_id, script_id, name, status, parameters, created, updated) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RESULT_COLUMNS}"
            ))
            .bind(set.id)
            .bind(result.script_id)
            .bind(&result.name)
            .bind(result.status)
            .bind(&result.parameters)
            .bind(now)
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .map_err(convert::backend)?;
            set.results.push(script_result_from_row(&row, false)?);
        }
        let done = sqlx::query(&format!("UPDATE nodes SET {} = $1 WHERE id = $2", current_set_column(result_type)))
            .bind(set.id)
            .bind(node_id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("node"));
        }
        tx.commit().await.map_err(convert::backend)?;
        Ok(set)
    }

    async fn script_set(&self, id: i64, with_output: bool) -> StoreResult<Option<ScriptSet>> {
        let row = sqlx::query("SELECT * FROM script_sets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        let Some(row) = row else { return Ok(None) };
        let mut set = script_set_from_row(&row)?;
        let columns = if with_output { "*" } else { RESULT_COLUMNS };
        let rows = sqlx::query(&format!("SELECT {columns} FROM script_results WHERE script_set_id = $1 ORDER BY id"))
            .bind(id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        set.results = rows
            .iter()
            .map(|r| script_result_from_row(r, with_output))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(set))
    }

    async fn script_sets(&self, node_id: i64) -> StoreResult<Vec<ScriptSet>> {
        let rows = sqlx::query("SELECT * FROM script_sets WHERE node_id = $1 ORDER BY id DESC")
            .bind(node_id)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut sets = rows.iter().map(script_set_from_row).collect::<StoreResult<Vec<_>>>()?;
        if sets.is_empty() {
            return Ok(sets);
        }
        let results = sqlx::query(&format!(
            "SELECT r.{} FROM script_results r JOIN script_sets s ON s.id = r.script_set_id \
             WHERE s.node_id = $1 ORDER BY r.id",
            RESULT_COLUMNS.replace(", ", ", r.")
        ))
        .bind(node_id)
        .fetch_all(&self.read)
        .await
        .map_err(convert::backend)?;
        let index: HashMap<i64, usize> = sets.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
        for row in &results {
            let result = script_result_from_row(row, false)?;
            if let Some(&i) = index.get(&result.script_set_id) {
                sets[i].results.push(result);
            }
        }
        Ok(sets)
    }

    async fn add_script_result(&self, set_id: i64, result: NewScriptResult, now: Millis) -> StoreResult<ScriptResult> {
        let row = sqlx::query(&format!(
            "INSERT INTO script_results (script_set_id, script_id, name, status, parameters, created, updated) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {RESULT_COLUMNS}"
        ))
        .bind(set_id)
        .bind(result.script_id)
        .bind(&result.name)
        .bind(result.status)
        .bind(&result.parameters)
        .bind(now)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(convert::backend)?;
        script_result_from_row(&row, false)
    }

    async fn update_script_result(&self, id: i64, u: ScriptResultUpdate) -> StoreResult<()> {
        let mut qb = QueryBuilder::<Db>::new("UPDATE script_results SET updated = ");
        qb.push_bind(u.updated);
        macro_rules! set {
            ($field:ident, $column:literal) => {
                if let Some(value) = u.$field {
                    qb.push(concat!(", ", $column, " = "));
                    qb.push_bind(value);
                }
            };
        }
        set!(status, "status");
        set!(exit_status, "exit_status");
        set!(started, "started");
        set!(ended, "ended");
        set!(runtime, "runtime");
        set!(output, "output");
        set!(stdout, "stdout");
        set!(stderr, "stderr");
        set!(result, "result");
        qb.push(" WHERE id = ");
        qb.push_bind(id);
        let done = qb
            .build()
            .persistent(false)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        if done.rows_affected() == 0 {
            return Err(maas_store::StoreError::not_found("script result"));
        }
        Ok(())
    }

    async fn touch_script_set(&self, set_id: i64, now: Millis) -> StoreResult<()> {
        sqlx::query("UPDATE script_sets SET last_ping = $1 WHERE id = $2")
            .bind(now)
            .bind(set_id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn set_result_statuses(&self, set_ids: &[i64], from: &[i64], to: i64, now: Millis) -> StoreResult<u64> {
        if set_ids.is_empty() || from.is_empty() {
            return Ok(0);
        }
        let mut qb = QueryBuilder::<Db>::new("UPDATE script_results SET status = ");
        qb.push_bind(to);
        qb.push(", updated = ");
        qb.push_bind(now);
        qb.push(" WHERE 1 = 1");
        push_in(&mut qb, "script_set_id", set_ids, false);
        push_in(&mut qb, "status", from, false);
        let done = qb
            .build()
            .persistent(false)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(done.rows_affected())
    }

    async fn node_token(&self, node_id: i64) -> StoreResult<Option<NodeToken>> {
        let row = sqlx::query("SELECT * FROM node_tokens WHERE node_id = $1")
            .bind(node_id)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        let Some(row) = row else { return Ok(None) };
        let secret: String = col!(row, "token_secret");
        Ok(Some(NodeToken {
            node_id: col!(row, "node_id"),
            consumer_key: col!(row, "consumer_key"),
            token_key: col!(row, "token_key"),
            token_secret: Secret::new(secret),
        }))
    }

    async fn set_node_token(&self, token: NodeToken, now: Millis) -> StoreResult<()> {
        let mut tx = self.write.begin().await.map_err(convert::backend)?;
        sqlx::query("DELETE FROM node_tokens WHERE node_id = $1")
            .bind(token.node_id)
            .execute(&mut *tx)
            .await
            .map_err(convert::backend)?;
        sqlx::query(
            "INSERT INTO node_tokens (node_id, consumer_key, token_key, token_secret, created) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.node_id)
        .bind(&token.consumer_key)
        .bind(&token.token_key)
        .bind(token.token_secret.expose())
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(convert::backend)?;
        tx.commit().await.map_err(convert::backend)
    }

    async fn delete_node_token(&self, node_id: i64) -> StoreResult<()> {
        sqlx::query("DELETE FROM node_tokens WHERE node_id = $1")
            .bind(node_id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }

    async fn node_by_token(&self, token_key: &str) -> StoreResult<Option<(NodeToken, Node)>> {
        let row = sqlx::query("SELECT * FROM node_tokens WHERE token_key = $1")
            .bind(token_key)
            .fetch_optional(&self.read)
            .await
            .map_err(convert::backend)?;
        let Some(row) = row else { return Ok(None) };
        let secret: String = col!(row, "token_secret");
        let token = NodeToken {
            node_id: col!(row, "node_id"),
            consumer_key: col!(row, "consumer_key"),
            token_key: col!(row, "token_key"),
            token_secret: Secret::new(secret),
        };
        let node = self.one_node("n.id = $1", token.node_id).await?;
        Ok(node.map(|n| (token, n)))
    }

    async fn expired_nodes(&self, now: Millis) -> StoreResult<Vec<ExpiredNode>> {
        let rows = sqlx::query(
            "SELECT id, system_id, status, status_expires FROM nodes \
             WHERE status_expires IS NOT NULL AND status_expires <= $1 ORDER BY status_expires",
        )
        .bind(now)
        .fetch_all(&self.read)
        .await
        .map_err(convert::backend)?;
        rows.iter()
            .map(|row| {
                let status: i64 = col!(row, "status");
                Ok(ExpiredNode {
                    id: col!(row, "id"),
                    system_id: col!(row, "system_id"),
                    status: status_from(status)?,
                    status_expires: col!(row, "status_expires"),
                })
            })
            .collect()
    }

    async fn power_polled_nodes(&self) -> StoreResult<Vec<PowerPolledNode>> {
        let rows = sqlx::query(
            "SELECT id, system_id, power_type, power_parameters, power_state FROM nodes \
             WHERE node_type = $1 AND power_type <> '' AND power_type <> 'manual' ORDER BY id",
        )
        .bind(NodeType::Machine.number())
        .fetch_all(&self.read)
        .await
        .map_err(convert::backend)?;
        rows.iter()
            .map(|row| {
                let params: String = col!(row, "power_parameters");
                let params = convert::json_to_map(&params, "power_parameters")?;
                let state: String = col!(row, "power_state");
                Ok(PowerPolledNode {
                    id: col!(row, "id"),
                    system_id: col!(row, "system_id"),
                    power_type: col!(row, "power_type"),
                    power_address: params
                        .get("power_address")
                        .cloned()
                        .unwrap_or_default(),
                    power_state: PowerState::parse(&state).unwrap_or(PowerState::Unknown),
                })
            })
            .collect()
    }

    async fn silent_nodes(&self, statuses: &[NodeStatus], result_type: i64, cutoff: Millis) -> StoreResult<Vec<ExpiredNode>> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let numbers: Vec<i64> = statuses.iter().map(|s| s.number()).collect();
        let mut qb = QueryBuilder::<Db>::new(format!(
            "SELECT n.id, n.system_id, n.status, s.last_ping FROM nodes n JOIN script_sets s ON s.id = n.{} \
             WHERE n.status_expires IS NULL AND s.last_ping IS NOT NULL AND s.last_ping < ",
            current_set_column(result_type)
        ));
        qb.push_bind(cutoff);
        push_in(&mut qb, "n.status", &numbers, false);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        rows.iter()
            .map(|row| {
                let status: i64 = col!(row, "status");
                Ok(ExpiredNode {
                    id: col!(row, "id"),
                    system_id: col!(row, "system_id"),
                    status: status_from(status)?,
                    status_expires: col!(row, "last_ping"),
                })
            })
            .collect()
    }
}

#[async_trait]
impl Store for StoreImpl {
    fn backend_name(&self) -> &'static str {
        BACKEND
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(())
    }
}


// ---------------------------------------------------------------------------
// Dashboard: sessions, and sorted, grouped and counted node listings.
// ---------------------------------------------------------------------------

fn session_from_row(row: &DbRow) -> StoreResult<Session> {
    Ok(Session {
        key_hash: col!(row, "key_hash"),
        user_id: col!(row, "user_id"),
        csrf_token: col!(row, "csrf_token"),
        created: col!(row, "created"),
        expires: col!(row, "expires"),
    })
}

#[async_trait]
impl SessionStore for StoreImpl {
    async fn create_session(&self, session: Session) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (key_hash, user_id, csrf_token, created, expires) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.key_hash)
        .bind(session.user_id)
        .bind(&session.csrf_token)
        .bind(session.created)
        .bind(session.expires)
        .execute(&self.write)
        .await
        .map_err(convert::backend)?;
        Ok(())
    }

    async fn session(&self, key_hash: &str, now: Millis) -> StoreResult<Option<(Session, User)>> {
        let row = sqlx::query(
            "SELECT s.key_hash AS key_hash, s.user_id AS user_id, s.csrf_token AS csrf_token, \
             s.created AS created, s.expires AS expires FROM sessions s \
             WHERE s.key_hash = $1 AND s.expires > $2",
        )
        .bind(key_hash)
        .bind(now)
        .fetch_optional(&self.read)
        .await
        .map_err(convert::backend)?;
        let Some(row) = row else { return Ok(None) };
        let session = session_from_row(&row)?;
        let Some(user) = self.user_by_id(session.user_id).await? else {
            return Ok(None);
        };
        Ok(Some((session, user)))
    }

    async fn delete_session(&self, key_hash: &str) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM sessions WHERE key_hash = $1")
            .bind(key_hash)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(done.rows_affected() > 0)
    }

    async fn delete_expired_sessions(&self, now: Millis) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires <= $1")
            .bind(now)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(done.rows_affected())
    }

    async fn delete_user_sessions(&self, user_id: i64) -> StoreResult<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(convert::backend)?;
        Ok(done.rows_affected())
    }
}

/// The SQL a listing is ordered or grouped by. Nullable text columns are
/// coalesced to '' so both backends put "none" first.
fn group_expression(group: NodeGroup) -> &'static str {
    match group {
        NodeGroup::Status => "n.status",
        NodeGroup::Owner => "COALESCE(u.username, '')",
        NodeGroup::Pool => "COALESCE(p.name, '')",
        NodeGroup::Zone => "z.name",
        NodeGroup::Architecture => "COALESCE(n.architecture, '')",
        NodeGroup::PowerState => "n.power_state",
    }
}

fn sort_expression(sort: NodeSort) -> &'static str {
    match sort {
        NodeSort::Hostname => "n.hostname",
        NodeSort::Status => "n.status",
        NodeSort::PowerState => "n.power_state",
        NodeSort::Owner => "COALESCE(u.username, '')",
        NodeSort::Pool => "COALESCE(p.name, '')",
        NodeSort::Zone => "z.name",
        NodeSort::Architecture => "COALESCE(n.architecture, '')",
        NodeSort::CpuCount => "n.cpu_count",
        NodeSort::Memory => "n.memory",
        NodeSort::Disks => {
            "(SELECT COUNT(*) FROM block_devices b WHERE b.node_id = n.id AND b.kind = 'physical')"
        }
        NodeSort::Storage => {
            "(SELECT COALESCE(SUM(b.size), 0) FROM block_devices b \
             WHERE b.node_id = n.id AND b.kind = 'physical')"
        }
    }
}

/// `%term%` for LIKE, lower-cased, with LIKE's wildcards escaped by `\`.
fn like_pattern(term: &str) -> String {
    let mut pattern = String::from("%");
    for c in term.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// The WHERE conditions of a listing: the filter plus its free-text terms.
fn push_node_query<'a>(
    qb: &mut QueryBuilder<'a, Db>,
    query: &'a NodeQuery,
    owned: &'a FilterValues,
    patterns: &'a [String],
) {
    push_node_filter(qb, &query.filter, owned);
    for pattern in patterns {
        qb.push(" AND (LOWER(n.hostname) LIKE ");
        qb.push_bind(pattern.as_str());
        qb.push(" ESCAPE '\\' OR LOWER(n.system_id) LIKE ");
        qb.push_bind(pattern.as_str());
        qb.push(" ESCAPE '\\' OR LOWER(n.description) LIKE ");
        qb.push_bind(pattern.as_str());
        qb.push(" ESCAPE '\\')");
    }
}

/// `FROM nodes n ...` with the joins the filters refer to.
fn node_from() -> &'static str {
    // NODE_SELECT is "SELECT <columns> FROM <joins>"; its FROM clause is the
    // only " FROM " at the top level, and the columns hold none.
    NODE_SELECT
        .find(" FROM nodes n")
        .map(|at| &NODE_SELECT[at..])
        .unwrap_or(" FROM nodes n")
}

#[async_trait]
impl NodeListingStore for StoreImpl {
    async fn node_page(&self, query: &NodeQuery, offset: i64, limit: i64) -> StoreResult<Vec<Node>> {
        let owned = FilterValues::new(&query.filter);
        let patterns: Vec<String> = query.text.iter().map(|t| like_pattern(t)).collect();
        let mut qb = QueryBuilder::<Db>::new(NODE_SELECT);
        qb.push(" WHERE 1 = 1");
        push_node_query(&mut qb, query, &owned, &patterns);
        let direction = if query.descending { " DESC" } else { " ASC" };
        qb.push(" ORDER BY ");
        if let Some(group) = query.group {
            qb.push(group_expression(group));
            qb.push(" ASC, ");
        }
        qb.push(sort_expression(query.sort));
        qb.push(direction);
        qb.push(", n.id");
        qb.push(direction);
        qb.push(" LIMIT ");
        qb.push_bind(limit);
        qb.push(" OFFSET ");
        qb.push_bind(offset);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut nodes = rows.iter().map(node_from_row).collect::<StoreResult<Vec<_>>>()?;
        self.fill_nodes(&mut nodes).await?;
        Ok(nodes)
    }

    async fn node_count(&self, query: &NodeQuery) -> StoreResult<i64> {
        let owned = FilterValues::new(&query.filter);
        let patterns: Vec<String> = query.text.iter().map(|t| like_pattern(t)).collect();
        let mut qb = QueryBuilder::<Db>::new("SELECT COUNT(*) AS n");
        qb.push(node_from());
        qb.push(" WHERE 1 = 1");
        push_node_query(&mut qb, query, &owned, &patterns);
        let row = qb
            .build()
            .persistent(false)
            .fetch_one(&self.read)
            .await
            .map_err(convert::backend)?;
        Ok(col!(row, "n"))
    }

    async fn node_group_counts(
        &self,
        query: &NodeQuery,
        group: NodeGroup,
    ) -> StoreResult<Vec<NodeGroupCount>> {
        let owned = FilterValues::new(&query.filter);
        let patterns: Vec<String> = query.text.iter().map(|t| like_pattern(t)).collect();
        let expression = group_expression(group);
        let mut qb = QueryBuilder::<Db>::new("SELECT ");
        qb.push(expression);
        qb.push(" AS k, COUNT(*) AS c");
        qb.push(node_from());
        qb.push(" WHERE 1 = 1");
        push_node_query(&mut qb, query, &owned, &patterns);
        qb.push(" GROUP BY ");
        qb.push(expression);
        qb.push(" ORDER BY ");
        qb.push(expression);
        let rows = qb
            .build()
            .persistent(false)
            .fetch_all(&self.read)
            .await
            .map_err(convert::backend)?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in &rows {
            let key = if group == NodeGroup::Status {
                let number: i64 = col!(row, "k");
                Some(number.to_string())
            } else {
                let text: String = col!(row, "k");
                (!text.is_empty()).then_some(text)
            };
            counts.push(NodeGroupCount { key, count: col!(row, "c") });
        }
        Ok(counts)
    }
}
