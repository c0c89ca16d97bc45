//! `allocate` and `deploy` (api.md §7.3, §8.2). Constraints narrow the
//! candidates in the store; storage and interface constraints are matched
//! in memory by [`match_storage`] and [`match_interfaces`] (pure); the
//! smallest machine wins, and a conditional write means two racing callers
//! never get the same machine.

use std::collections::BTreeMap;
use std::sync::Arc;

use maas_api_types::ConstraintsByType;
use maas_domain::{NodeStatus, NodeType};
use maas_store::{BlockDevice, NetworkCatalog, Node, NodeFilter, NodeUpdate, User, result_type};

use crate::error::{FieldErrors, ServiceError, ServiceResult};
use crate::http::params::Params;
use crate::region::Region;
use crate::service::lifecycle::{self as life, Actor, Change};
use crate::service::machines::ARCHITECTURES;
use crate::service::network::resolve_subnet;

const NON_CONSTRAINTS: &[&str] = &[
    "op",
    "comment",
    "bridge_all",
    "bridge_type",
    "bridge_stp",
    "bridge_fd",
    "dry_run",
    "verbose",
    "agent_name",
];

const CONSTRAINTS: &[&str] = &[
    "name",
    "system_id",
    "arch",
    "cpu_count",
    "mem",
    "tags",
    "not_tags",
    "zone",
    "not_in_zone",
    "not_in_zones",
    "pool",
    "not_in_pool",
    "pod",
    "not_pod",
    "pod_type",
    "not_pod_type",
    "subnets",
    "not_subnets",
    "fabrics",
    "not_fabrics",
    "fabric_classes",
    "not_fabric_classes",
    "vlans",
    "not_vlans",
    "link_speed",
    "storage",
    "interfaces",
    "devices",
];

/// One entry of the `storage` constraint: `[label:]size(tag,tag)`, size in GB.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageWant {
    pub label: String,
    pub min_bytes: i64,
    pub tags: Vec<String>,
}

pub fn parse_storage(text: &str) -> Result<Vec<StorageWant>, String> {
    let mut wants = Vec::new();
    for (i, raw) in text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (label, rest) = match raw.split_once(':') {
            Some((label, rest)) => (label.to_owned(), rest),
            None => (i.to_string(), raw),
        };
        let (size, tags) = match rest.split_once('(') {
            Some((size, tags)) => {
                let tags = tags
                    .strip_suffix(')')
                    .ok_or_else(|| format!("Malformed storage constraint, '{raw}'."))?;
                (
                    size,
                    tags.split([',', ' '])
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect(),
                )
            }
            None => (rest, Vec::new()),
        };
        let gb: f64 = size
            .trim()
            .parse()
            .map_err(|_| format!("Malformed storage constraint, '{raw}'."))?;
        if !gb.is_finite() || gb < 0.0 {
            return Err(format!("Malformed storage constraint, '{raw}'."));
        }
        wants.push(StorageWant {
            label,
            min_bytes: (gb * 1e9) as i64,
            tags,
        });
    }
    Ok(wants)
}

/// Gives each want a distinct disk; the first want must be the boot disk.
/// Returns the chosen device ids per label.
pub fn match_storage(
    wants: &[StorageWant],
    devices: &[BlockDevice],
    boot_disk: Option<i64>,
) -> Option<BTreeMap<String, Vec<i64>>> {
    let mut used: Vec<i64> = Vec::new();
    let mut chosen = BTreeMap::new();
    for (i, want) in wants.iter().enumerate() {
        let fits = |d: &&BlockDevice| {
            d.size >= want.min_bytes
                && want.tags.iter().all(|t| d.tags.contains(t))
                && !used.contains(&d.id)
        };
        let device = if i == 0 {
            let boot = boot_disk
                .and_then(|id| devices.iter().find(|d| d.id == id))
                .or_else(|| devices.first());
            boot.filter(fits)
        } else {
            // Smallest disk that fits, so big ones stay for bigger wants.
            devices.iter().filter(fits).min_by_key(|d| d.size)
        }?;
        used.push(device.id);
        chosen.insert(want.label.clone(), vec![device.id]);
    }
    Some(chosen)
}

/// One labelled entry of the `interfaces` constraint: `label:key=value,...`.
#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceWant {
    pub label: String,
    pub terms: Vec<(String, String)>,
}

const INTERFACE_KEYS: &[&str] = &[
    "id",
    "fabric",
    "fabric_class",
    "ip",
    "mode",
    "name",
    "subnet",
    "space",
    "subnet_cidr",
    "type",
    "vlan",
    "vid",
    "tag",
    "link_speed",
];

pub fn parse_interfaces(text: &str) -> Result<Vec<InterfaceWant>, String> {
    let mut wants = Vec::new();
    for (i, entry) in text
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .enumerate()
    {
        let (label, body) = match entry.split_once(':') {
            Some((label, body)) if !label.contains('=') => (label.to_owned(), body),
            _ => (i.to_string(), entry),
        };
        let mut terms = Vec::new();
        for term in body.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = term
                .split_once('=')
                .ok_or_else(|| format!("Invalid interfaces constraint, '{term}'."))?;
            if !INTERFACE_KEYS.contains(&key) {
                return Err(format!("Unknown interfaces constraint key '{key}'."));
            }
            terms.push((key.to_owned(), value.to_owned()));
        }
        wants.push(InterfaceWant { label, terms });
    }
    Ok(wants)
}

/// Gives each want a distinct interface that meets all its terms.
pub fn match_interfaces(
    wants: &[InterfaceWant],
    node: &Node,
    catalog: &NetworkCatalog,
) -> Option<BTreeMap<String, Vec<i64>>> {
    let mut used = Vec::new();
    let mut chosen = BTreeMap::new();
    for want in wants {
        let found = node.interfaces.iter().find(|iface| {
            !used.contains(&iface.id)
                && want
                    .terms
                    .iter()
                    .all(|(key, value)| interface_meets(iface, node, catalog, key, value))
        })?;
        used.push(found.id);
        chosen.insert(want.label.clone(), vec![found.id]);
    }
    Some(chosen)
}

fn interface_meets(
    iface: &maas_store::Interface,
    node: &Node,
    catalog: &NetworkCatalog,
    key: &str,
    value: &str,
) -> bool {
    let vlan = iface
        .vlan_id
        .and_then(|id| catalog.vlans.iter().find(|v| v.id == id));
    let subnets: Vec<i64> = iface.links.iter().filter_map(|l| l.subnet_id).collect();
    match key {
        "id" => iface.id.to_string() == value,
        "name" => iface.name == value,
        "type" => iface.kind.as_str() == value,
        "tag" => iface.tags.iter().any(|t| t == value),
        "link_speed" => value
            .parse::<i64>()
            .is_ok_and(|min| iface.link_speed >= min),
        "vid" => vlan.is_some_and(|v| v.vid.to_string() == value),
        "vlan" => {
            vlan.is_some_and(|v| v.id.to_string() == value || v.name.as_deref() == Some(value))
        }
        "fabric" => vlan
            .and_then(|v| catalog.fabrics.iter().find(|f| f.id == v.fabric_id))
            .is_some_and(|f| f.name == value || f.id.to_string() == value),
        "fabric_class" => vlan
            .and_then(|v| catalog.fabrics.iter().find(|f| f.id == v.fabric_id))
            .is_some_and(|f| f.class_type.as_deref() == Some(value)),
        "space" => vlan
            .and_then(|v| v.space_id)
            .and_then(|id| catalog.spaces.iter().find(|s| s.id == id))
            .is_some_and(|s| s.name == value),
        "subnet" | "subnet_cidr" => resolve_subnet(catalog, value)
            .is_ok_and(|ids| ids.iter().any(|id| subnets.contains(id))),
        "ip" => iface.links.iter().any(|l| l.ip.as_deref() == Some(value)),
        "mode" => value == "unconfigured" && iface.links.is_empty(),
        _ => {
            let _ = node;
            false
        }
    }
}

/// A parsed allocation request.
pub struct Request {
    pub filter: NodeFilter,
    pub storage: Vec<StorageWant>,
    pub interfaces: Vec<InterfaceWant>,
    pub system_id: Option<String>,
    pub agent_name: Option<String>,
    pub comment: Option<String>,
    pub dry_run: bool,
    /// For the 409 message: what was asked.
    pub asked: Vec<(String, Vec<String>)>,
}

fn list(params: &Params, name: &str) -> Vec<String> {
    params
        .all(name)
        .iter()
        .flat_map(|v| v.split([',', ' ']))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

fn bool_param(params: &Params, name: &str, errors: &mut FieldErrors) -> bool {
    match params.get(name) {
        None | Some("") => false,
        Some(v) => maas_domain::parse_bool(v).unwrap_or_else(|_| {
            errors.add(name, format!("'{v}' value must be either True or False."));
            false
        }),
    }
}

pub async fn parse_request(
    region: &Region,
    params: &Params,
    caller: &User,
) -> ServiceResult<Request> {
    let mut errors = FieldErrors::new();
    for name in params.names() {
        if name.starts_with("oauth_") || NON_CONSTRAINTS.contains(&name) {
            continue;
        }
        if !CONSTRAINTS.contains(&name) {
            errors.add(name, "No such constraint.");
        }
    }
    if params.get("install_rackd").is_some() {
        errors.add(
            "install_rackd",
            "Support for install_rackd allocation parameter has been removed.",
        );
    }
    errors.check()?;
    let mut errors = FieldErrors::new();
    let mut filter = NodeFilter {
        node_types: vec![NodeType::Machine],
        statuses: vec![NodeStatus::Ready],
        visible_to: (!caller.is_superuser).then_some(caller.id),
        ..NodeFilter::default()
    };
    let mut asked = Vec::new();
    for name in params.names() {
        if CONSTRAINTS.contains(&name) {
            asked.push((
                name.to_owned(),
                params.all(name).iter().map(|v| (*v).to_owned()).collect(),
            ));
        }
    }
    if let Some(name) = params.get("name").filter(|n| !n.is_empty()) {
        match name.split_once('.') {
            Some((host, domain)) => {
                filter.hostnames = vec![host.to_owned()];
                filter.domains = vec![domain.to_owned()];
            }
            None => filter.hostnames = vec![name.to_owned()],
        }
    }
    let system_id = params
        .get("system_id")
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    if let Some(id) = &system_id {
        filter.system_ids = vec![id.clone()];
    }
    filter.archs = list(params, "arch");
    for arch in &filter.archs {
        let base = arch.split('/').next().unwrap_or(arch);
        if !ARCHITECTURES.contains(&base) {
            errors.add("arch", "Architecture not recognised.");
        }
    }
    for (param, target) in [
        ("cpu_count", &mut filter.min_cpu_count),
        ("mem", &mut filter.min_memory),
    ] {
        if let Some(value) = params.get(param).filter(|v| !v.is_empty()) {
            match value.trim().parse::<f64>() {
                Ok(n) if n.is_finite() && n >= 0.0 => *target = Some(n.ceil() as i64),
                _ => errors.add(param, format!("Invalid {param}: must be a number.")),
            }
        }
    }
    let tags = list(params, "tags");
    let not_tags = list(params, "not_tags");
    if !tags.is_empty() || !not_tags.is_empty() {
        let known: Vec<String> = region
            .store
            .tags()
            .await?
            .into_iter()
            .map(|t| t.name)
            .collect();
        let missing: Vec<String> = tags
            .iter()
            .filter(|t| !known.contains(t))
            .map(|t| format!("'{t}'"))
            .collect();
        if !missing.is_empty() {
            errors.add("tags", format!("No such tag(s): {}.", missing.join(", ")));
        }
    }
    filter.tags = tags;
    filter.not_tags = not_tags;
    let zones = list(params, "zone");
    let mut not_zones = list(params, "not_in_zone");
    // python-libmaas sends the plural.
    not_zones.extend(list(params, "not_in_zones"));
    if !zones.is_empty() || !not_zones.is_empty() {
        let known: Vec<String> = region
            .store
            .zones()
            .await?
            .into_iter()
            .map(|z| z.name)
            .collect();
        for (param, names) in [("zone", &zones), ("not_in_zone", &not_zones)] {
            let missing: Vec<&str> = names
                .iter()
                .filter(|z| !known.contains(z))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                errors.add(param, format!("No such zone(s): {}.", missing.join(", ")));
            }
        }
    }
    filter.zones = zones;
    filter.not_zones = not_zones;
    let pools = list(params, "pool");
    let not_pools = list(params, "not_in_pool");
    if !pools.is_empty() || !not_pools.is_empty() {
        let known: Vec<String> = region
            .store
            .pools()
            .await?
            .into_iter()
            .map(|p| p.name)
            .collect();
        for (param, names) in [("pool", &pools), ("not_in_pool", &not_pools)] {
            let missing: Vec<&str> = names
                .iter()
                .filter(|p| !known.contains(p))
                .map(String::as_str)
                .collect();
            if !missing.is_empty() {
                errors.add(param, format!("No such pool(s): {}.", missing.join(", ")));
            }
        }
    }
    filter.pools = pools;
    filter.not_pools = not_pools;
    filter.fabrics = list(params, "fabrics");
    filter.not_fabrics = list(params, "not_fabrics");
    let subnets = list(params, "subnets");
    let not_subnets = list(params, "not_subnets");
    if !subnets.is_empty() || !not_subnets.is_empty() {
        let catalog = region.store.network_catalog().await?;
        for spec in &subnets {
            match resolve_subnet(&catalog, spec) {
                Ok(ids) if ids.is_empty() => filter.match_none = true,
                // "Linked to all of these": one id per specifier (the first).
                Ok(ids) => filter.subnet_ids.push(ids[0]),
                Err(why) => errors.add("subnets", why),
            }
        }
        for spec in &not_subnets {
            match resolve_subnet(&catalog, spec) {
                Ok(ids) => filter.not_subnet_ids.extend(ids),
                Err(why) => errors.add("not_subnets", why),
            }
        }
    }
    // This region has no VM hosts, so no machine is in a pod.
    if !params.all("pod").is_empty() || !params.all("pod_type").is_empty() {
        filter.match_none = true;
    }
    for unsupported in [
        "fabric_classes",
        "not_fabric_classes",
        "vlans",
        "not_vlans",
        "link_speed",
        "devices",
    ] {
        if params.get(unsupported).is_some_and(|v| !v.is_empty()) {
            errors.add(
                unsupported,
                "This constraint is not supported by this region yet.",
            );
        }
    }
    let storage = match params.get("storage").filter(|s| !s.is_empty()) {
        Some(text) => parse_storage(text).unwrap_or_else(|why| {
            errors.add("storage", why);
            Vec::new()
        }),
        None => Vec::new(),
    };
    let interfaces = match params.get("interfaces").filter(|s| !s.is_empty()) {
        Some(text) => parse_interfaces(text).unwrap_or_else(|why| {
            errors.add("interfaces", why);
            Vec::new()
        }),
        None => Vec::new(),
    };
    let dry_run = bool_param(params, "dry_run", &mut errors);
    errors.check()?;
    Ok(Request {
        filter,
        storage,
        interfaces,
        system_id,
        agent_name: params.get("agent_name").map(str::to_owned),
        comment: params.get("comment").map(str::to_owned),
        dry_run,
        asked,
    })
}

fn no_match(request: &Request) -> ServiceError {
    if let Some(id) = &request.system_id {
        return ServiceError::conflict(format!("No machine with system ID {id} available."));
    }
    if request.asked.is_empty() {
        return ServiceError::conflict("No machine available.");
    }
    let constraints: Vec<String> = request
        .asked
        .iter()
        .map(|(name, values)| {
            format!(
                "('{name}', [{}])",
                values
                    .iter()
                    .map(|v| format!("'{v}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
        .collect();
    let resolved: Vec<String> = request
        .asked
        .iter()
        .map(|(name, values)| format!("{name}={}", values.join(",")))
        .collect();
    ServiceError::conflict(format!(
        "No available machine matches constraints: [{}] (resolved to \"{}\")",
        constraints.join(", "),
        resolved.join(" ")
    ))
}

/// Candidates come from the store cheapest first (cores, then memory), a
/// page at a time; the first that meets the in-memory constraints and is
/// still free when written is allocated.
pub async fn allocate(
    region: &Region,
    caller: &User,
    request: Request,
) -> ServiceResult<(Node, ConstraintsByType)> {
    let catalog = region.store.network_catalog().await?;
    const PAGE: i64 = 50;
    let mut offset = 0;
    loop {
        let page = region
            .store
            .nodes_by_size(&request.filter, offset, PAGE)
            .await?;
        let exhausted = (page.len() as i64) < PAGE;
        offset += PAGE;
        for node in page {
            let storage = if request.storage.is_empty() {
                Some(BTreeMap::new())
            } else {
                match_storage(&request.storage, &node.block_devices, node.boot_disk_id)
            };
            let interfaces = if request.interfaces.is_empty() {
                Some(BTreeMap::new())
            } else {
                match_interfaces(&request.interfaces, &node, &catalog)
            };
            let (Some(storage), Some(interfaces)) = (storage, interfaces) else {
                continue;
            };
            let constraints = ConstraintsByType {
                storage,
                interfaces,
            };
            if request.dry_run {
                return Ok((node, constraints));
            }
            let result = life::transition(
                region,
                &node,
                NodeStatus::Allocated,
                Change {
                    owner: Some(Some(caller.id)),
                    owner_must_be: Some(None),
                    agent_name: Some(request.agent_name.clone().unwrap_or_default()),
                    description: request.comment.clone().unwrap_or_default(),
                    ..Change::default()
                },
                Actor::User(caller),
            )
            .await;
            match result {
                Ok(allocated) => {
                    life::request_event(
                        region,
                        &allocated,
                        "User acquiring node",
                        Actor::User(caller),
                        request.comment.as_deref(),
                    )
                    .await?;
                    return Ok((allocated, constraints));
                }
                // Someone else got it first: try the next one.
                Err(ServiceError::Conflict(_)) => continue,
                Err(other) => return Err(other),
            }
        }
        if exhausted {
            return Err(no_match(&request));
        }
    }
}

/// Ubuntu releases this region knows by name and version; other operating
/// systems are given as `<os>/<release>`.
pub(crate) const UBUNTU: &[(&str, &str)] = &[
    ("bionic", "18.04"),
    ("focal", "20.04"),
    ("jammy", "22.04"),
    ("noble", "24.04"),
    ("oracular", "24.10"),
    ("plucky", "25.04"),
    ("questing", "25.10"),
    ("resolute", "26.04"),
];

/// The version of an Ubuntu release name (`noble` → `24.04`).
pub fn ubuntu_version(release: &str) -> Option<&'static str> {
    UBUNTU
        .iter()
        .find(|(name, _)| *name == release)
        .map(|(_, version)| *version)
}

/// `distro_series` as `jammy`, `ubuntu/jammy`, `22.04` or `ubuntu/22.04`.
pub fn parse_series(text: &str) -> Result<(String, String), String> {
    let (os, release) = match text.split_once('/') {
        Some((os, release)) => (os, release),
        None => ("ubuntu", text),
    };
    if os == "ubuntu" {
        return UBUNTU
            .iter()
            .find(|(name, version)| *name == release || *version == release)
            .map(|(name, _)| ("ubuntu".to_owned(), (*name).to_owned()))
            .ok_or_else(|| {
                format!(
                    "'{text}' is not a valid distro_series.  It should be one of: {}.",
                    UBUNTU
                        .iter()
                        .map(|(n, _)| format!("'ubuntu/{n}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
    }
    let ok = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    };
    if ok(os) && ok(release) {
        Ok((os.to_owned(), release.to_owned()))
    } else {
        Err(format!("'{text}' is not a valid distro_series."))
    }
}

/// Options of `deploy`.
pub struct DeployOptions {
    pub distro_series: Option<String>,
    pub hwe_kernel: Option<String>,
    pub user_data: Option<String>,
    pub comment: Option<String>,
    pub agent_name: Option<String>,
    pub install_kvm: bool,
    pub ephemeral_deploy: bool,
    pub enable_hw_sync: bool,
    pub enable_kernel_crash_dump: Option<bool>,
}

impl DeployOptions {
    pub fn from_params(params: &Params) -> ServiceResult<DeployOptions> {
        let mut errors = FieldErrors::new();
        let install_kvm = bool_param(params, "install_kvm", &mut errors);
        let register_vmhost = bool_param(params, "register_vmhost", &mut errors);
        if bool_param(params, "install_rackd", &mut errors) {
            errors.add(
                "install_rackd",
                "Support for install_rackd allocation parameter has been removed.",
            );
        }
        let ephemeral_deploy = bool_param(params, "ephemeral_deploy", &mut errors);
        if (install_kvm || register_vmhost) && ephemeral_deploy {
            return Err(ServiceError::bad_request(
                "A machine can not be a VM host if it is deployed to memory.",
            ));
        }
        let enable_hw_sync = bool_param(params, "enable_hw_sync", &mut errors);
        let crash = params
            .get("enable_kernel_crash_dump")
            .map(|_| bool_param(params, "enable_kernel_crash_dump", &mut errors));
        if let Some(data) = params.get("user_data").filter(|d| !d.is_empty()) {
            use base64::Engine;
            let compact: String = data.chars().filter(|c| !c.is_whitespace()).collect();
            if base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .is_err()
            {
                errors.add("user_data", "User data must be base64 encoded.");
            }
        }
        errors.check()?;
        Ok(DeployOptions {
            distro_series: params
                .get("distro_series")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            hwe_kernel: params
                .get("hwe_kernel")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            user_data: params
                .get("user_data")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            comment: params.get("comment").map(str::to_owned),
            agent_name: params.get("agent_name").map(str::to_owned),
            install_kvm: install_kvm || register_vmhost,
            ephemeral_deploy,
            enable_hw_sync,
            enable_kernel_crash_dump: crash,
        })
    }
}

pub async fn deploy(
    region: &Arc<Region>,
    caller: &User,
    node: &Node,
    options: DeployOptions,
) -> ServiceResult<Node> {
    life::check_unlocked(node)?;
    if options.install_kvm && !caller.is_superuser {
        return Err(ServiceError::forbidden(
            "Only administrators can deploy VM hosts.",
        ));
    }
    let mut node = node.clone();
    if node.status == NodeStatus::Ready {
        if node.owner.as_ref().is_some_and(|o| o.id != caller.id) {
            return Err(ServiceError::conflict(
                "Can't allocate a machine belonging to another user.",
            ));
        }
        life::request_event(
            region,
            &node,
            "User acquiring node",
            Actor::User(caller),
            options.comment.as_deref(),
        )
        .await?;
        node = life::transition(
            region,
            &node,
            NodeStatus::Allocated,
            Change {
                owner: Some(Some(caller.id)),
                owner_must_be: Some(None),
                agent_name: options.agent_name.clone(),
                ..Change::default()
            },
            Actor::User(caller),
        )
        .await?;
    }
    let owns = node.owner.as_ref().is_some_and(|o| o.id == caller.id);
    if !owns && !caller.is_superuser {
        return Err(ServiceError::Forbidden(String::new()));
    }
    if !maas_domain::lifecycle::allowed(node.status, NodeStatus::Deploying)
        || node.status == NodeStatus::Deploying
    {
        return Err(ServiceError::conflict(format!(
            "Can't deploy a machine that is in the '{}' state",
            node.status.label()
        )));
    }
    let store = region.store.as_ref();
    let series = match &options.distro_series {
        Some(text) => text.clone(),
        None => crate::service::config::get(store, "default_distro_series")
            .await?
            .as_str()
            .unwrap_or("noble")
            .to_owned(),
    };
    let (osystem, distro_series) =
        parse_series(&series).map_err(|why| ServiceError::field("distro_series", why))?;
    let now = region.now();
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                osystem: Some(osystem),
                distro_series: Some(distro_series),
                hwe_kernel: Some(options.hwe_kernel.clone()),
                user_data: Some(options.user_data.clone()),
                install_kvm: Some(options.install_kvm),
                ephemeral_deploy: Some(options.ephemeral_deploy || node.block_devices.is_empty()),
                enable_hw_sync: Some(options.enable_hw_sync),
                enable_kernel_crash_dump: options.enable_kernel_crash_dump,
                updated: now,
                ..NodeUpdate::default()
            },
        )
        .await?;
    store
        .create_script_set(node.id, result_type::INSTALLATION, Vec::new(), now)
        .await?;
    life::request_event(
        region,
        &node,
        "User starting deployment",
        Actor::User(caller),
        options.comment.as_deref(),
    )
    .await?;
    let node = life::reread(region, &node.system_id).await?;
    let expires = now + 2 * life::node_timeout(region).await?;
    let updated = life::transition(
        region,
        &node,
        NodeStatus::Deploying,
        Change {
            expires: Some(Some(expires)),
            description: options.comment.clone().unwrap_or_default(),
            ..Change::default()
        },
        Actor::User(caller),
    )
    .await?;
    life::power_after(
        region.clone(),
        updated.clone(),
        life::boot_request(&updated),
        Some(NodeStatus::Allocated),
    );
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use maas_store::BlockDeviceType;

    fn disk(id: i64, gb: i64, tags: &[&str]) -> BlockDevice {
        BlockDevice {
            id,
            name: format!("sd{id}"),
            kind: BlockDeviceType::Physical,
            model: None,
            serial: None,
            id_path: None,
            size: gb * 1_000_000_000,
            block_size: 512,
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            uuid: None,
            firmware_version: None,
            numa_node: None,
            partition_table_type: None,
            filesystem: None,
            partitions: vec![],
        }
    }

    #[test]
    fn storage_constraints() {
        let wants = parse_storage("root:20(ssd),data:100(hdd),50").unwrap();
        assert_eq!(
            wants[0],
            StorageWant {
                label: "root".into(),
                min_bytes: 20_000_000_000,
                tags: vec!["ssd".into()]
            }
        );
        assert_eq!(wants[2].label, "2");
        assert!(parse_storage("root:big").is_err());
        assert!(parse_storage("root:10(ssd").is_err());
        let disks = [
            disk(1, 240, &["ssd"]),
            disk(2, 2000, &["hdd"]),
            disk(3, 1000, &["hdd"]),
            disk(4, 60, &[]),
        ];
        let got = match_storage(&wants, &disks, Some(1)).unwrap();
        assert_eq!(got["root"], vec![1]);
        assert_eq!(got["data"], vec![3], "the smallest disk that fits");
        assert_eq!(got["2"], vec![4]);
        // The first want must be the boot disk.
        assert!(match_storage(&parse_storage("1000").unwrap(), &disks, Some(1)).is_none());
        assert!(
            match_storage(&parse_storage("10,10,10,10,10").unwrap(), &disks, Some(1)).is_none()
        );
    }

    #[test]
    fn interface_constraints() {
        let wants = parse_interfaces("eth:name=eth0;storage:vid=100,tag=sriov").unwrap();
        assert_eq!(wants[0].label, "eth");
        assert_eq!(
            wants[1].terms,
            vec![("vid".into(), "100".into()), ("tag".into(), "sriov".into())]
        );
        assert!(parse_interfaces("x:colour=red").is_err());
        assert!(parse_interfaces("x:name").is_err());
    }

    #[test]
    fn series() {
        assert_eq!(parse_series("jammy"), Ok(("ubuntu".into(), "jammy".into())));
        assert_eq!(
            parse_series("ubuntu/22.04"),
            Ok(("ubuntu".into(), "jammy".into()))
        );
        assert_eq!(parse_series("24.04"), Ok(("ubuntu".into(), "noble".into())));
        assert_eq!(
            parse_series("centos/centos8"),
            Ok(("centos".into(), "centos8".into()))
        );
        assert!(parse_series("warty").is_err());
        assert!(parse_series("x/../etc").is_err());
    }
}
