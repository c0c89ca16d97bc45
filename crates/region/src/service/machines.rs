//! Machines: creation (by users and by anonymous enlistment), visibility,
//! listing filters, updates, deletion and owner data.

use std::collections::BTreeMap;

use maas_domain::{MacAddress, NodeStatus, NodeType, PowerState, SimpleStatus, SystemId};
use maas_store::defaults::{DEFAULT_DOMAIN_ID, DEFAULT_POOL_ID, DEFAULT_ZONE_ID};
use maas_store::{
    EventLevel, NewEvent, NewNode, Node, NodeFilter, NodeUpdate, Store, StoreError, User,
};

use crate::error::{FieldErrors, ServiceError, ServiceResult};
use crate::http::params::Params;

/// Architectures MAAS knows (the part before `/`).
pub const ARCHITECTURES: [&str; 8] = [
    "amd64", "arm64", "armhf", "i386", "ppc64el", "s390x", "riscv64", "ppc64",
];

/// Power types MAAS accepts in `power_type` (api.md §5.2).
pub const POWER_TYPES: [&str; 24] = [
    "amt", "apc", "dli", "eaton", "hmc", "hmcz", "ipmi", "lxd", "manual", "moonshot", "mscm",
    "msftocs", "nova", "openbmc", "proxmox", "raritan", "recs_box", "redfish", "sm15k", "ucsm",
    "virsh", "vmware", "webhook", "wedge",
];

/// Whether `user` may see `node`: admins see everything, others unowned
/// nodes and their own.
pub fn can_view(user: &User, node: &Node) -> bool {
    user.is_superuser || node.owner.as_ref().is_none_or(|o| o.id == user.id)
}

/// The machine with this system_id, or 404; 403 if the caller may not see it.
pub async fn visible_machine(
    store: &dyn Store,
    user: &User,
    system_id: &str,
) -> ServiceResult<Node> {
    let node = store
        .node_by_system_id(system_id)
        .await?
        .filter(|n| n.node_type == NodeType::Machine)
        .ok_or_else(|| ServiceError::not_found("Machine"))?;
    if !can_view(user, &node) {
        return Err(ServiceError::Forbidden(String::new()));
    }
    Ok(node)
}

/// The node (any type) with this system_id, or 404/403.
pub async fn visible_node(store: &dyn Store, user: &User, system_id: &str) -> ServiceResult<Node> {
    let node = store
        .node_by_system_id(system_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Node"))?;
    if !can_view(user, &node) {
        return Err(ServiceError::Forbidden(String::new()));
    }
    Ok(node)
}

/// Validated creation input (api.md §7.2).
pub struct CreateMachine {
    pub architecture: String,
    pub mac_addresses: Vec<String>,
    pub hostname: Option<String>,
    pub description: String,
    pub domain: Option<String>,
    pub min_hwe_kernel: Option<String>,
    pub power_type: String,
    pub power_parameters: BTreeMap<String, String>,
    pub commission: Option<bool>,
    pub deployed: bool,
    pub is_dpu: bool,
}

fn bool_param(params: &Params, name: &str, errors: &mut FieldErrors) -> Option<bool> {
    let value = params.get(name)?;
    if value.is_empty() {
        return None;
    }
    match maas_domain::parse_bool(value) {
        Ok(b) => Some(b),
        Err(_) => {
            errors.add(
                name,
                format!("'{value}' value must be either True or False."),
            );
            None
        }
    }
}

/// Reads power parameters from `power_parameters` (a JSON object, as
/// python-libmaas sends it) and `power_parameters_<key>` fields.
pub fn power_parameters(
    params: &Params,
    errors: &mut FieldErrors,
) -> Option<BTreeMap<String, String>> {
    let mut found = false;
    let mut map = BTreeMap::new();
    if let Some(json) = params.get("power_parameters").filter(|s| !s.is_empty()) {
        found = true;
        match serde_json::from_str::<serde_json::Value>(json) {
            Ok(serde_json::Value::Object(object)) => {
                for (key, value) in object {
                    let text = match value {
                        serde_json::Value::String(s) => s,
                        serde_json::Value::Null => String::new(),
                        other => other.to_string(),
                    };
                    map.insert(key, text);
                }
            }
            _ => errors.add("power_parameters", "Enter a valid JSON object."),
        }
    }
    for (name, value) in params.pairs() {
        if let Some(key) = name.strip_prefix("power_parameters_") {
            if key == "skip_check" {
                continue;
            }
            found = true;
            map.insert(key.to_owned(), value.clone());
        }
    }
    found.then_some(map)
}

/// Normalises `architecture` (+ `subarchitecture`) to `arch/subarch`.
pub fn architecture(arch: &str, subarch: Option<&str>) -> Result<String, String> {
    let subarch = subarch.filter(|s| !s.is_empty());
    if arch.starts_with("hwe-")
        || arch.starts_with("ga-")
        || subarch.is_some_and(|s| s.starts_with("hwe-") || s.starts_with("ga-"))
    {
        return Err(
            "Subarchitectures 'hwe-' and 'ga-' are not allowed; use min_hwe_kernel instead.".into(),
        );
    }
    let full = match (arch.split_once('/'), subarch) {
        (Some(_), Some(_)) => return Err("Subarchitecture cannot be specified twice.".into()),
        (Some(_), None) => arch.to_owned(),
        (None, Some(sub)) => format!("{arch}/{sub}"),
        (None, None) => format!("{arch}/generic"),
    };
    let (base, sub) = full.split_once('/').unwrap_or((&full, ""));
    if !ARCHITECTURES.contains(&base)
        || sub.is_empty()
        || !sub
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._".contains(c))
    {
        return Err(format!(
            "'{full}' is not a valid architecture.  It should be one of: {}.",
            ARCHITECTURES.map(|a| format!("'{a}/generic'")).join(", ")
        ));
    }
    Ok(full)
}

impl CreateMachine {
    pub fn from_params(params: &Params) -> ServiceResult<CreateMachine> {
        let mut errors = FieldErrors::new();
        let architecture = match params.get("architecture").filter(|a| !a.is_empty()) {
            Some(arch) => match architecture(arch, params.get("subarchitecture")) {
                Ok(a) => a,
                Err(why) => {
                    errors.add("architecture", why);
                    String::new()
                }
            },
            None => {
                errors.add("architecture", "This field is required.");
                String::new()
            }
        };
        let mut mac_addresses = Vec::new();
        for value in params.all("mac_addresses") {
            match value.parse::<MacAddress>() {
                Ok(mac) => {
                    let mac = mac.to_string();
                    if !mac_addresses.contains(&mac) {
                        mac_addresses.push(mac);
                    }
                }
                Err(_) => errors.add(
                    "mac_addresses",
                    format!("'{value}' is not a valid MAC address."),
                ),
            }
        }
        if mac_addresses.is_empty() && errors.is_empty() {
            errors.add("mac_addresses", "This field is required.");
        }
        let hostname = match params.get("hostname").filter(|h| !h.is_empty()) {
            Some(h) => match h.parse::<maas_domain::Hostname>() {
                Ok(h) => Some(h.short().to_ascii_lowercase()),
                Err(e) => {
                    errors.add("hostname", e.to_string());
                    None
                }
            },
            None => None,
        };
        let power_type = params.get("power_type").unwrap_or("").to_owned();
        if !power_type.is_empty() && !POWER_TYPES.contains(&power_type.as_str()) {
            errors.add(
                "power_type",
                format!("Select a valid choice. {power_type} is not one of the available choices."),
            );
        }
        let power_parameters = power_parameters(params, &mut errors).unwrap_or_default();
        let min_hwe_kernel = params
            .get("min_hwe_kernel")
            .filter(|k| !k.is_empty())
            .map(str::to_owned);
        if let Some(kernel) = &min_hwe_kernel
            && !(kernel.starts_with("hwe-") || kernel.starts_with("ga-"))
        {
            errors.add(
                "min_hwe_kernel",
                "min_hwe_kernel must start with 'hwe-' or 'ga-'.",
            );
        }
        let commission = bool_param(params, "commission", &mut errors);
        let deployed = bool_param(params, "deployed", &mut errors).unwrap_or(false);
        let is_dpu = bool_param(params, "is_dpu", &mut errors).unwrap_or(false);
        errors.check()?;
        Ok(CreateMachine {
            architecture,
            mac_addresses,
            hostname,
            description: params.get("description").unwrap_or("").to_owned(),
            domain: params
                .get("domain")
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
            min_hwe_kernel,
            power_type,
            power_parameters,
            commission,
            deployed,
            is_dpu,
        })
    }
}

const ADJECTIVES: &[&str] = &[
    "able", "alert", "amber", "apt", "awake", "bold", "brave", "brisk", "calm", "civil", "clean",
    "clear", "clever", "cosmic", "crisp", "cuddly", "daring", "deft", "eager", "easy", "epic",
    "exact", "fair", "fancy", "fast", "fine", "firm", "fit", "fluent", "fond", "frank", "free",
    "fresh", "gentle", "giving", "glad", "golden", "good", "grand", "great", "handy", "happy",
    "hardy", "helpful", "honest", "humble", "ideal", "jolly", "just", "keen", "kind", "lively",
    "loved", "loyal", "lucky", "merry", "mighty", "modest", "moral", "neat", "nice", "noble",
    "open", "patient", "peaceful", "polite", "prompt", "proud", "quick", "quiet", "rapid", "ready",
    "real", "relaxed", "right", "robust", "safe", "sharp", "shining", "smart", "smooth", "social",
    "solid", "sound", "steady", "still", "sunny", "super", "sure", "swift", "tidy", "tough",
    "true", "trusty", "upward", "useful", "valid", "vital", "warm", "wise", "witty", "worthy",
    "young", "zesty",
];

const ANIMALS: &[&str] = &[
    "adder", "alpaca", "ant", "ape", "bass", "bat", "bear", "bee", "bison", "boar", "bobcat",
    "buck", "bull", "camel", "carp", "cat", "cattle", "chimp", "clam", "cobra", "cod", "colt",
    "condor", "cow", "crab", "crane", "crow", "deer", "dingo", "dodo", "doe", "dog", "dory",
    "dove", "drake", "duck", "eagle", "eel", "eft", "elk", "emu", "ewe", "falcon", "fawn",
    "ferret", "finch", "fish", "flea", "fly", "foal", "fowl", "fox", "frog", "gator", "gecko",
    "gnat", "gnu", "goat", "goose", "grouse", "gull", "hare", "hawk", "hen", "heron", "hog",
    "horse", "hound", "ibex", "jackal", "jay", "koala", "koi", "lamb", "lark", "lemur", "lion",
    "llama", "lynx", "mako", "mink", "mole", "moose", "moth", "mouse", "mule", "newt", "orca",
    "otter", "owl", "ox", "panda", "parrot", "pig", "pika", "pony", "pup", "quail", "rabbit",
    "ram", "raven", "seal", "shark", "sheep", "skunk", "sloth", "snail", "snake", "squid", "stork",
    "swan", "tahr", "tapir", "teal", "tiger", "toad", "trout", "tuna", "viper", "vole", "wasp",
    "whale", "wolf", "wren", "yak", "zebra",
];

/// A two-word host name such as `kind-dory`.
pub fn petname(random: u64) -> String {
    let adjective = ADJECTIVES[(random % ADJECTIVES.len() as u64) as usize];
    let animal = ANIMALS[((random / ADJECTIVES.len() as u64) % ANIMALS.len() as u64) as usize];
    format!("{adjective}-{animal}")
}

/// Who is creating a machine.
pub enum Creator<'a> {
    User(&'a User),
    /// A booting machine enlisting itself.
    Anonymous,
}

/// Creates a machine (api.md §7.2) in New (or Deployed with `deployed`).
/// Anonymous enlistment of a MAC that a New or Commissioning machine
/// already has updates that one instead.
pub async fn create(
    store: &dyn Store,
    creator: Creator<'_>,
    input: CreateMachine,
    now: i64,
) -> ServiceResult<Node> {
    let in_use = store.macs_in_use(&input.mac_addresses).await?;
    if !in_use.is_empty() {
        if matches!(creator, Creator::Anonymous)
            && let Some(existing) = store.node_by_mac(&in_use[0]).await?
            && matches!(existing.status, NodeStatus::New | NodeStatus::Commissioning)
        {
            return re_enlist(store, existing, input, now).await;
        }
        return Err(ServiceError::field(
            "mac_addresses",
            format!(
                "One or more MAC addresses is invalid. MAC address {} already in use.",
                in_use.join(", ")
            ),
        ));
    }
    let domain_id = match &input.domain {
        Some(name) => domain_id(store, name).await?,
        None => DEFAULT_DOMAIN_ID,
    };
    // A machine registered as already deployed belongs to whoever registered it.
    let owner_id = match creator {
        Creator::User(user) if input.deployed => Some(user.id),
        Creator::User(_) | Creator::Anonymous => None,
    };
    // Commissioning, when asked for, is started by the caller through the
    // life cycle, so it gets its scripts, timer and power action.
    let status = if input.deployed {
        NodeStatus::Deployed
    } else {
        NodeStatus::New
    };
    let explicit_hostname = input.hostname.clone();
    let mut last_conflict = None;
    for _ in 0..32 {
        let system_id = SystemId::from_random(rand::random());
        let hostname = explicit_hostname
            .clone()
            .unwrap_or_else(|| petname(rand::random()));
        let node = NewNode {
            system_id: system_id.to_string(),
            hostname,
            description: input.description.clone(),
            node_type: NodeType::Machine,
            status,
            owner_id,
            domain_id,
            zone_id: DEFAULT_ZONE_ID,
            pool_id: Some(DEFAULT_POOL_ID),
            architecture: Some(input.architecture.clone()),
            min_hwe_kernel: input.min_hwe_kernel.clone(),
            power_type: input.power_type.clone(),
            power_parameters: input.power_parameters.clone(),
            is_dpu: input.is_dpu,
            created: now,
            mac_addresses: input.mac_addresses.clone(),
        };
        match store.create_node(node).await {
            Ok(node) => {
                tracing::info!(system_id = %node.system_id, hostname = %node.hostname, status = %node.status, "machine created");
                let user_id = match creator {
                    Creator::User(user) => Some(user.id),
                    Creator::Anonymous => None,
                };
                store
                    .create_event(NewEvent {
                        node_id: Some(node.id),
                        event_type: node.status.label().to_owned(),
                        description: String::new(),
                        action: String::new(),
                        level: EventLevel::Info,
                        user_id,
                        created: now,
                        is_status: true,
                    })
                    .await?;
                // Re-read so the status message of the event shows.
                return store
                    .node_by_system_id(&node.system_id)
                    .await?
                    .ok_or_else(|| ServiceError::not_found("Machine"));
            }
            Err(StoreError::Conflict { what }) => {
                // A user-chosen hostname that is taken is the user's problem;
                // a generated id or name that collides is retried.
                if let Some(hostname) = &explicit_hostname {
                    let taken = NodeFilter {
                        hostnames: vec![hostname.clone()],
                        ..NodeFilter::default()
                    };
                    if store
                        .nodes(&taken, 0, 1)
                        .await?
                        .iter()
                        .any(|n| n.domain.id == domain_id)
                    {
                        return Err(ServiceError::field(
                            "hostname",
                            format!("Node with this Hostname already exists: {hostname}"),
                        ));
                    }
                }
                if !store.macs_in_use(&input.mac_addresses).await?.is_empty() {
                    return Err(ServiceError::field(
                        "mac_addresses",
                        "One or more MAC addresses is already in use.",
                    ));
                }
                last_conflict = Some(what);
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(ServiceError::Store(StoreError::conflict(
        last_conflict.unwrap_or_else(|| "node".into()),
    )))
}

async fn re_enlist(
    store: &dyn Store,
    existing: Node,
    input: CreateMachine,
    now: i64,
) -> ServiceResult<Node> {
    let update = NodeUpdate {
        architecture: Some(Some(input.architecture)),
        power_type: (!input.power_type.is_empty()).then_some(input.power_type),
        power_parameters: (!input.power_parameters.is_empty()).then_some(input.power_parameters),
        updated: now,
        ..NodeUpdate::default()
    };
    store.update_node(existing.id, update).await?;
    tracing::info!(system_id = %existing.system_id, "enlistment updated an existing machine");
    store
        .node_by_system_id(&existing.system_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Machine"))
}

async fn domain_id(store: &dyn Store, name_or_id: &str) -> ServiceResult<i64> {
    if let Ok(id) = name_or_id.parse::<i64>()
        && let Some(domain) = store.domain_by_id(id).await?
    {
        return Ok(domain.id);
    }
    store
        .domain_by_name(name_or_id)
        .await?
        .map(|d| d.id)
        .ok_or_else(|| {
            ServiceError::field(
                "domain",
                format!("Select a valid choice. {name_or_id} is not one of the available choices."),
            )
        })
}

/// Parameters `GET machines/` understands (api.md §7.1).
const FILTERS: &[&str] = &[
    "op",
    "id",
    "not_id",
    "hostname",
    "not_hostname",
    "mac_address",
    "domain",
    "not_domain",
    "agent_name",
    "not_agent_name",
    "status",
    "not_status",
    "simple_status",
    "not_simple_status",
    "arch",
    "not_arch",
    "tags",
    "not_tags",
    "zone",
    "not_in_zone",
    "pool",
    "not_in_pool",
    "owner",
    "not_owner",
    "power_state",
    "not_power_state",
    "deployment_target",
    "not_deployment_target",
    "cpu_count",
    "cpu_speed",
    "mem",
    "fabrics",
    "not_fabrics",
    "fabric_classes",
    "not_fabric_classes",
    "vlans",
    "not_vlans",
    "subnets",
    "not_subnets",
    "link_speed",
    "pod",
    "not_pod",
    "pod_type",
    "not_pod_type",
    "storage",
    "interfaces",
    "devices",
];

/// Filters that parse but that this region does not evaluate yet.
const UNSUPPORTED_FILTERS: &[&str] = &[
    "fabric_classes",
    "not_fabric_classes",
    "vlans",
    "not_vlans",
    "link_speed",
    "storage",
    "interfaces",
    "devices",
];

/// Splits values given as `a,b c` as well as repeated keys.
fn list(params: &Params, name: &str) -> Vec<String> {
    params
        .all(name)
        .iter()
        .flat_map(|v| v.split([',', ' ']))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Turns listing parameters into a store filter, checking names against
/// the store so an unknown zone, pool or tag is an error, not an empty list.
pub async fn filter_from_params(
    store: &dyn Store,
    params: &Params,
    caller: &User,
    node_types: Vec<NodeType>,
) -> ServiceResult<NodeFilter> {
    let mut errors = FieldErrors::new();
    for name in params.names() {
        if name.starts_with("oauth_") {
            continue;
        }
        if !FILTERS.contains(&name) {
            errors.add(name, "No such constraint.");
        } else if UNSUPPORTED_FILTERS.contains(&name) {
            errors.add(name, "This constraint is not supported by this region yet.");
        }
    }
    errors.check()?;
    let mut errors = FieldErrors::new();
    let mut filter = NodeFilter {
        node_types,
        system_ids: list(params, "id"),
        not_system_ids: list(params, "not_id"),
        hostnames: params
            .all("hostname")
            .iter()
            .map(|h| h.split('.').next().unwrap_or(h).to_owned())
            .collect(),
        not_hostnames: params
            .all("not_hostname")
            .iter()
            .map(|h| h.split('.').next().unwrap_or(h).to_owned())
            .collect(),
        domains: list(params, "domain"),
        not_domains: list(params, "not_domain"),
        agent_names: params
            .all("agent_name")
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        not_agent_names: params
            .all("not_agent_name")
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        archs: list(params, "arch"),
        not_archs: list(params, "not_arch"),
        owners: list(params, "owner"),
        not_owners: list(params, "not_owner"),
        visible_to: (!caller.is_superuser).then_some(caller.id),
        ..NodeFilter::default()
    };
    for arch in filter.archs.iter().chain(&filter.not_archs) {
        let base = arch.split('/').next().unwrap_or(arch);
        if !ARCHITECTURES.contains(&base)
            || !arch
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/-._".contains(c))
        {
            errors.add("arch", "Architecture not recognised.");
        }
    }
    for value in params.all("mac_address") {
        match value.parse::<MacAddress>() {
            Ok(mac) => filter.mac_addresses.push(mac.to_string()),
            Err(_) => errors.add(
                "mac_address",
                format!("'{value}' is not a valid MAC address."),
            ),
        }
    }
    for (param, target) in [
        ("status", &mut filter.statuses),
        ("not_status", &mut filter.not_statuses),
    ] {
        for value in list(params, param) {
            match NodeStatus::from_filter_name(&value) {
                Some(status) => target.push(status),
                None => errors.add(param, format!("Invalid status: {value}")),
            }
        }
    }
    for (param, target) in [
        ("simple_status", &mut filter.statuses),
        ("not_simple_status", &mut filter.not_statuses),
    ] {
        for value in list(params, param) {
            match SimpleStatus::from_filter_name(&value) {
                Some(simple) => target.extend(simple.statuses()),
                None => errors.add(param, format!("Invalid simple_status: {value}")),
            }
        }
    }
    for (param, target) in [
        ("power_state", &mut filter.power_states),
        ("not_power_state", &mut filter.not_power_states),
    ] {
        for value in list(params, param) {
            match PowerState::parse(&value) {
                Some(state) => target.push(state),
                None => errors.add(param, format!("Invalid power_state: {value}")),
            }
        }
    }
    for (param, wanted) in [
        ("deployment_target", true),
        ("not_deployment_target", false),
    ] {
        for value in list(params, param) {
            let memory = match value.as_str() {
                "memory" => true,
                "disk" => false,
                _ => {
                    errors.add(param, format!("Invalid deployment target: {value}"));
                    continue;
                }
            };
            filter.ephemeral = Some(memory == wanted);
        }
    }
    for (param, target) in [
        ("cpu_count", &mut filter.min_cpu_count),
        ("cpu_speed", &mut filter.min_cpu_speed),
        ("mem", &mut filter.min_memory),
    ] {
        if let Some(value) = params.get(param) {
            match value.trim().parse::<f64>() {
                Ok(n) if n >= 0.0 && n.is_finite() => *target = Some(n.ceil() as i64),
                _ => errors.add(param, format!("Invalid {param}: must be a number")),
            }
        }
    }

    // Names that must exist.
    let tags = list(params, "tags");
    let not_tags = list(params, "not_tags");
    if !tags.is_empty() || !not_tags.is_empty() {
        let known: Vec<String> = store.tags().await?.into_iter().map(|t| t.name).collect();
        let missing: Vec<String> = tags
            .iter()
            .chain(&not_tags)
            .filter(|t| !known.contains(t))
            .map(|t| format!("'{t}'"))
            .collect();
        if !missing.is_empty() {
            errors.add(
                if tags.iter().any(|t| !known.contains(t)) {
                    "tags"
                } else {
                    "not_tags"
                },
                format!("No such tag(s): {}.", missing.join(", ")),
            );
        }
    }
    filter.tags = tags;
    filter.not_tags = not_tags;
    let zones = list(params, "zone");
    let not_zones = list(params, "not_in_zone");
    if !zones.is_empty() || !not_zones.is_empty() {
        let known: Vec<String> = store.zones().await?.into_iter().map(|z| z.name).collect();
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
        let known: Vec<String> = store.pools().await?.into_iter().map(|p| p.name).collect();
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
        let catalog = store.network_catalog().await?;
        for (param, specs, target) in [
            ("subnets", &subnets, &mut filter.subnet_ids),
            ("not_subnets", &not_subnets, &mut filter.not_subnet_ids),
        ] {
            for spec in specs {
                match super::network::resolve_subnet(&catalog, spec) {
                    Ok(ids) => target.extend(ids),
                    Err(why) => errors.add(param, why),
                }
            }
        }
        if filter.subnet_ids.is_empty() && !subnets.is_empty() && errors.is_empty() {
            // Specifiers that name no subnet match no machine.
            filter.match_none = true;
        }
    }
    // No VM hosts exist in this region: a machine is in no pod.
    if !params.all("pod").is_empty() || !params.all("pod_type").is_empty() {
        filter.match_none = true;
    }
    errors.check()?;
    Ok(filter)
}

/// Applies `PUT machines/{system_id}/` (api.md §8.1).
pub async fn update(
    store: &dyn Store,
    caller: &User,
    node: &Node,
    params: &Params,
    now: i64,
) -> ServiceResult<()> {
    if !caller.is_superuser {
        return Err(ServiceError::Forbidden(String::new()));
    }
    if node.locked {
        return Err(ServiceError::Forbidden(format!(
            "Cannot update a locked machine: {}",
            node.system_id
        )));
    }
    let mut errors = FieldErrors::new();
    let mut update = NodeUpdate {
        updated: now,
        ..NodeUpdate::default()
    };
    if let Some(hostname) = params.get("hostname") {
        match hostname.parse::<maas_domain::Hostname>() {
            Ok(h) => update.hostname = Some(h.short().to_ascii_lowercase()),
            Err(e) => errors.add("hostname", e.to_string()),
        }
    }
    if let Some(description) = params.get("description") {
        update.description = Some(description.to_owned());
    }
    if let Some(domain) = params.get("domain") {
        match domain_id(store, domain).await {
            Ok(id) => update.domain_id = Some(id),
            Err(ServiceError::Validation(map)) => map
                .into_iter()
                .for_each(|(k, v)| v.into_iter().for_each(|m| errors.add(&k, m))),
            Err(other) => return Err(other),
        }
    }
    if let Some(arch) = params.get("architecture") {
        match architecture(arch, None) {
            Ok(a) => update.architecture = Some(Some(a)),
            Err(why) => errors.add("architecture", why),
        }
    }
    if let Some(kernel) = params.get("min_hwe_kernel") {
        if kernel.is_empty() || kernel.starts_with("hwe-") || kernel.starts_with("ga-") {
            update.min_hwe_kernel = Some((!kernel.is_empty()).then(|| kernel.to_owned()));
        } else {
            errors.add(
                "min_hwe_kernel",
                "min_hwe_kernel must start with 'hwe-' or 'ga-'.",
            );
        }
    }
    if let Some(power_type) = params.get("power_type") {
        if power_type.is_empty() || POWER_TYPES.contains(&power_type) {
            update.power_type = Some(power_type.to_owned());
        } else {
            errors.add(
                "power_type",
                format!("Select a valid choice. {power_type} is not one of the available choices."),
            );
        }
    }
    if let Some(new_params) = power_parameters(params, &mut errors) {
        // New power parameters are merged into the existing ones.
        let mut merged = node.power_parameters.clone();
        merged.extend(new_params);
        update.power_parameters = Some(merged);
    }
    if let Some(zone) = params.get("zone") {
        match store.zone_by_name(zone).await? {
            Some(z) => update.zone_id = Some(z.id),
            None => errors.add(
                "zone",
                format!("Select a valid choice. {zone} is not one of the available choices."),
            ),
        }
    }
    if let Some(pool) = params.get("pool") {
        match store.pool_by_name(pool).await? {
            Some(p) => update.pool_id = Some(Some(p.id)),
            None => errors.add(
                "pool",
                format!("Select a valid choice. {pool} is not one of the available choices."),
            ),
        }
    }
    if let Some(swap) = params.get("swap_size") {
        if swap.is_empty() {
            update.swap_size = Some(None);
        } else {
            match maas_domain::parse_size(swap) {
                Ok(bytes) => update.swap_size = Some(Some(bytes as i64)),
                Err(_) => errors.add(
                    "swap_size",
                    "Invalid size for swap: must be bytes or a number with a K, M, G or T suffix.",
                ),
            }
        }
    }
    if let Some(disable) = params.get("disable_ipv4")
        && maas_domain::parse_bool(disable) != Ok(false)
    {
        errors.add(
            "disable_ipv4",
            "Only false is supported: IPv4 can't be disabled.",
        );
    }
    if let Some(cpus) = params.get("cpu_count") {
        match cpus.trim().parse::<i64>() {
            Ok(n) if n >= 0 => update.cpu_count = Some(n),
            _ => errors.add("cpu_count", "Enter a whole number."),
        }
    }
    if let Some(memory) = params.get("memory") {
        // Memory is MiB, or a size with a suffix.
        let parsed = match memory.trim().parse::<i64>() {
            Ok(mib) if mib >= 0 => Some(mib),
            _ => maas_domain::parse_size(memory)
                .ok()
                .map(|bytes| (bytes / (1024 * 1024)) as i64),
        };
        match parsed {
            Some(mib) => update.memory = Some(mib),
            None => errors.add(
                "memory",
                "Invalid memory: must be MiB or a size with a K, M, G or T suffix.",
            ),
        }
    }
    errors.check()?;
    store
        .update_node(node.id, update)
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => {
                ServiceError::field("hostname", "Node with this Hostname already exists.")
            }
            other => other.into(),
        })
}

/// Deletes a machine (admin only).
pub async fn delete(store: &dyn Store, caller: &User, node: &Node) -> ServiceResult<()> {
    if !caller.is_superuser {
        return Err(ServiceError::Forbidden(String::new()));
    }
    if node.locked {
        return Err(ServiceError::Forbidden(format!(
            "Cannot delete a locked machine: {}",
            node.system_id
        )));
    }
    store.delete_node(node.id).await?;
    tracing::info!(system_id = %node.system_id, "machine deleted");
    Ok(())
}

/// `set_owner_data`/`set_workload_annotations`: every `key=value` sets a key,
/// an empty value removes it. Only the owner may annotate.
pub async fn set_owner_data(
    store: &dyn Store,
    caller: &User,
    node: &Node,
    params: &Params,
    now: i64,
) -> ServiceResult<()> {
    if node.owner.as_ref().map(|o| o.id) != Some(caller.id) {
        return Err(ServiceError::conflict(
            "Cannot set workload annotation: it hasn't been acquired.",
        ));
    }
    if node.locked {
        return Err(ServiceError::Forbidden(format!(
            "Cannot annotate a locked machine: {}",
            node.system_id
        )));
    }
    let mut data = node.owner_data.clone();
    for (key, value) in params.pairs() {
        if key == "op" || key.starts_with("oauth_") {
            continue;
        }
        if value.is_empty() {
            data.remove(key);
        } else {
            data.insert(key.clone(), value.clone());
        }
    }
    store
        .update_node(
            node.id,
            NodeUpdate {
                owner_data: Some(data),
                updated: now,
                ..NodeUpdate::default()
            },
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architectures() {
        assert_eq!(architecture("amd64", None).as_deref(), Ok("amd64/generic"));
        assert!(architecture("amd64", Some("hwe-22.04")).is_err());
        assert_eq!(
            architecture("arm64/xgene", None).as_deref(),
            Ok("arm64/xgene")
        );
        assert_eq!(
            architecture("arm64", Some("generic")).as_deref(),
            Ok("arm64/generic")
        );
        assert!(architecture("arm64/generic", Some("generic")).is_err());
        assert!(architecture("vax", None).is_err());
        assert!(architecture("amd64/", None).is_err());
    }

    #[test]
    fn petnames_are_two_words() {
        for random in [0, 1, 12345, u64::MAX] {
            let name = petname(random);
            assert_eq!(name.split('-').count(), 2, "{name}");
            assert!(name.parse::<maas_domain::Hostname>().is_ok());
        }
    }

    #[test]
    fn power_parameters_from_json_and_fields() {
        let mut params = Params::new();
        params.push(
            "power_parameters",
            r#"{"power_address": "10.0.0.1", "cipher_suite_id": 17}"#,
        );
        params.push("power_parameters_power_user", "root");
        params.push("power_parameters_skip_check", "true");
        let mut errors = FieldErrors::new();
        let map = power_parameters(&params, &mut errors).unwrap();
        assert!(errors.is_empty());
        assert_eq!(
            map.get("power_address").map(String::as_str),
            Some("10.0.0.1")
        );
        assert_eq!(map.get("cipher_suite_id").map(String::as_str), Some("17"));
        assert_eq!(map.get("power_user").map(String::as_str), Some("root"));
        assert!(!map.contains_key("skip_check"));
        let mut bad = Params::new();
        bad.push("power_parameters", "[1]");
        let mut errors = FieldErrors::new();
        power_parameters(&bad, &mut errors);
        assert!(!errors.is_empty());
    }
}
