//! Fabrics, VLANs, spaces, subnets and IP ranges, with MAAS's rules:
//! the default fabric can't go, VLAN ids are 0-4094, ranges sit inside
//! their subnet and don't overlap, DHCP needs a rack and a dynamic range.

use std::net::IpAddr;

use maas_domain::net::ip_bits;
use maas_domain::{Cidr, NodeType};
use maas_store::defaults::{DEFAULT_FABRIC_ID, DEFAULT_VLAN_ID};
use maas_store::{
    Fabric, IpRange, IpRangeFields, NetworkCatalog, Space, Store, Subnet, SubnetFields, User, Vlan,
    VlanFields,
};

use crate::error::{FieldErrors, ServiceError, ServiceResult};
use crate::http::params::Params;

fn admin(user: &User) -> ServiceResult<()> {
    if user.is_superuser {
        Ok(())
    } else {
        Err(ServiceError::admin_only())
    }
}

fn bool_field(params: &Params, name: &str, current: bool, errors: &mut FieldErrors) -> bool {
    match params.get(name) {
        None => current,
        Some(value) => match maas_domain::parse_bool(value) {
            Ok(b) => b,
            Err(_) => {
                errors.add(
                    name,
                    format!("'{value}' value must be either True or False."),
                );
                current
            }
        },
    }
}

fn int_field(params: &Params, name: &str, current: i64, errors: &mut FieldErrors) -> i64 {
    match params.get(name) {
        None => current,
        Some(value) => match value.trim().parse::<i64>() {
            Ok(n) => n,
            Err(_) => {
                errors.add(name, "Enter a whole number.");
                current
            }
        },
    }
}

/// Resolves a subnet specifier (api.md §7.3): an id, `name:`, `cidr:` or a
/// bare CIDR, `ip:` (longest prefix), `vlan:` (VLAN id), `vid:`, `fabric:`
/// and `space:` (names). Returns every subnet that matches.
pub fn resolve_subnet(catalog: &NetworkCatalog, spec: &str) -> Result<Vec<i64>, String> {
    let (kind, value) = match spec.split_once(':') {
        Some((k, v))
            if ["id", "name", "cidr", "ip", "vlan", "vid", "fabric", "space"].contains(&k) =>
        {
            (k, v)
        }
        _ if spec.contains('/') => ("cidr", spec),
        _ if spec.parse::<i64>().is_ok() => ("id", spec),
        _ => ("name", spec),
    };
    let vlan_of = |subnet: &Subnet| catalog.vlans.iter().find(|v| v.id == subnet.vlan_id);
    let ids: Vec<i64> = match kind {
        "id" => {
            let id: i64 = value
                .parse()
                .map_err(|_| format!("Invalid subnet id: {value}"))?;
            catalog
                .subnets
                .iter()
                .filter(|s| s.id == id)
                .map(|s| s.id)
                .collect()
        }
        "name" => catalog
            .subnets
            .iter()
            .filter(|s| s.name == value)
            .map(|s| s.id)
            .collect(),
        "cidr" => {
            let cidr: Cidr = value
                .parse()
                .map_err(|_| format!("Invalid CIDR: {value}"))?;
            let text = cidr.to_string();
            catalog
                .subnets
                .iter()
                .filter(|s| s.cidr == text)
                .map(|s| s.id)
                .collect()
        }
        "ip" => {
            let ip: IpAddr = value
                .parse()
                .map_err(|_| format!("Invalid IP address: {value}"))?;
            let best = catalog
                .subnets
                .iter()
                .filter_map(|s| {
                    s.cidr
                        .parse::<Cidr>()
                        .ok()
                        .filter(|c| c.contains(ip))
                        .map(|c| (c.prefix(), s.id))
                })
                .max();
            best.map(|(_, id)| vec![id]).unwrap_or_default()
        }
        "vlan" => {
            let id: i64 = value
                .parse()
                .map_err(|_| format!("Invalid VLAN id: {value}"))?;
            catalog
                .subnets
                .iter()
                .filter(|s| s.vlan_id == id)
                .map(|s| s.id)
                .collect()
        }
        "vid" => {
            let vid: i64 = value.parse().map_err(|_| format!("Invalid vid: {value}"))?;
            catalog
                .subnets
                .iter()
                .filter(|s| vlan_of(s).is_some_and(|v| v.vid == vid))
                .map(|s| s.id)
                .collect()
        }
        "fabric" => {
            let fabric = catalog
                .fabrics
                .iter()
                .find(|f| f.name == value || f.id.to_string() == value);
            match fabric {
                Some(f) => catalog
                    .subnets
                    .iter()
                    .filter(|s| vlan_of(s).is_some_and(|v| v.fabric_id == f.id))
                    .map(|s| s.id)
                    .collect(),
                None => Vec::new(),
            }
        }
        _ => {
            let space = catalog
                .spaces
                .iter()
                .find(|sp| sp.name == value || sp.id.to_string() == value);
            match space {
                Some(sp) => catalog
                    .subnets
                    .iter()
                    .filter(|s| vlan_of(s).is_some_and(|v| v.space_id == Some(sp.id)))
                    .map(|s| s.id)
                    .collect(),
                None => Vec::new(),
            }
        }
    };
    Ok(ids)
}

pub fn fabric<'c>(catalog: &'c NetworkCatalog, id_or_name: &str) -> ServiceResult<&'c Fabric> {
    catalog
        .fabrics
        .iter()
        .find(|f| f.id.to_string() == id_or_name || f.name == id_or_name)
        .ok_or_else(|| ServiceError::not_found("Fabric"))
}

pub async fn create_fabric(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    now: i64,
) -> ServiceResult<Fabric> {
    admin(caller)?;
    let name = params.get("name").filter(|n| !n.is_empty());
    if let Some(name) = name {
        check_name("name", name)?;
    }
    store
        .create_fabric(
            name,
            params.get("description").unwrap_or(""),
            params.get("class_type").filter(|c| !c.is_empty()),
            now,
        )
        .await
        .map_err(|e| super::duplicate(e, "name", "Fabric with this Name already exists."))
}

fn check_name(field: &str, name: &str) -> ServiceResult<()> {
    if name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        && !name.is_empty()
    {
        Ok(())
    } else {
        Err(ServiceError::field(
            field,
            "Enter a valid name: letters, digits, '-', '_' and '.' only.",
        ))
    }
}

pub async fn update_fabric(
    store: &dyn Store,
    caller: &User,
    mut fabric: Fabric,
    params: &Params,
) -> ServiceResult<Fabric> {
    admin(caller)?;
    if let Some(name) = params.get("name") {
        check_name("name", name)?;
        fabric.name = name.to_owned();
    }
    if let Some(description) = params.get("description") {
        fabric.description = description.to_owned();
    }
    if let Some(class_type) = params.get("class_type") {
        fabric.class_type = (!class_type.is_empty()).then(|| class_type.to_owned());
    }
    store
        .update_fabric(fabric)
        .await
        .map_err(|e| super::duplicate(e, "name", "Fabric with this Name already exists."))
}

pub async fn delete_fabric(store: &dyn Store, caller: &User, fabric: &Fabric) -> ServiceResult<()> {
    admin(caller)?;
    if fabric.id == DEFAULT_FABRIC_ID {
        return Err(ServiceError::bad_request(format!(
            "Cannot delete fabric {}: it is the default fabric.",
            fabric.name
        )));
    }
    Ok(store.delete_fabric(fabric.id).await?)
}

fn vlan_fields(
    catalog: &NetworkCatalog,
    params: &Params,
    current: &VlanFields,
    errors: &mut FieldErrors,
) -> VlanFields {
    let mut fields = current.clone();
    fields.vid = int_field(params, "vid", current.vid, errors);
    if !(0..=4094).contains(&fields.vid) {
        errors.add("vid", "VID must be between 0 and 4094.");
    }
    if let Some(name) = params.get("name") {
        fields.name = (!name.is_empty()).then(|| name.to_owned());
    }
    if let Some(description) = params.get("description") {
        fields.description = description.to_owned();
    }
    fields.mtu = int_field(params, "mtu", current.mtu, errors);
    if !(552..=65535).contains(&fields.mtu) {
        errors.add("mtu", "MTU must be between 552 and 65535.");
    }
    fields.dhcp_on = bool_field(params, "dhcp_on", current.dhcp_on, errors);
    for (param, slot) in [
        ("primary_rack", &mut fields.primary_rack),
        ("secondary_rack", &mut fields.secondary_rack),
    ] {
        if let Some(rack) = params.get(param) {
            *slot = (!rack.is_empty()).then(|| rack.to_owned());
        }
    }
    if let Some(relay) = params.get("relay_vlan") {
        if relay.is_empty() {
            fields.relay_vlan_id = None;
        } else {
            match relay
                .parse::<i64>()
                .ok()
                .filter(|id| catalog.vlans.iter().any(|v| v.id == *id))
            {
                Some(id) => fields.relay_vlan_id = Some(id),
                None => errors.add(
                    "relay_vlan",
                    format!("Select a valid choice. {relay} is not one of the available choices."),
                ),
            }
        }
    }
    if let Some(space) = params.get("space") {
        if space.is_empty() || space == "undefined" {
            fields.space_id = None;
        } else {
            match catalog
                .spaces
                .iter()
                .find(|s| s.name == space || s.id.to_string() == space)
            {
                Some(s) => fields.space_id = Some(s.id),
                None => errors.add(
                    "space",
                    format!("Select a valid choice. {space} is not one of the available choices."),
                ),
            }
        }
    }
    fields
}

/// A VLAN's settable fields as they are now.
pub fn vlan_to_fields(vlan: &Vlan) -> VlanFields {
    VlanFields {
        vid: vlan.vid,
        name: vlan.name.clone(),
        description: vlan.description.clone(),
        mtu: vlan.mtu,
        dhcp_on: vlan.dhcp_on,
        external_dhcp: vlan.external_dhcp.clone(),
        primary_rack: vlan.primary_rack.clone(),
        secondary_rack: vlan.secondary_rack.clone(),
        relay_vlan_id: vlan.relay_vlan_id,
        space_id: vlan.space_id,
    }
}

pub async fn create_vlan(
    store: &dyn Store,
    caller: &User,
    fabric: &Fabric,
    params: &Params,
    now: i64,
) -> ServiceResult<Vlan> {
    admin(caller)?;
    if !params.contains("vid") {
        return Err(ServiceError::field("vid", "This field is required."));
    }
    let catalog = store.network_catalog().await?;
    let mut errors = FieldErrors::new();
    let blank = VlanFields {
        vid: 0,
        name: None,
        description: String::new(),
        mtu: 1500,
        dhcp_on: false,
        external_dhcp: None,
        primary_rack: None,
        secondary_rack: None,
        relay_vlan_id: None,
        space_id: None,
    };
    let fields = vlan_fields(&catalog, params, &blank, &mut errors);
    errors.check()?;
    store
        .create_vlan(fabric.id, fields, now)
        .await
        .map_err(|e| super::duplicate(e, "vid", "VLAN with this Fabric and Vid already exists."))
}

pub async fn update_vlan(
    store: &dyn Store,
    caller: &User,
    vlan: &Vlan,
    params: &Params,
) -> ServiceResult<Vlan> {
    admin(caller)?;
    let catalog = store.network_catalog().await?;
    let current = vlan_to_fields(vlan);
    let mut errors = FieldErrors::new();
    let fields = vlan_fields(&catalog, params, &current, &mut errors);
    for (param, rack) in [
        ("primary_rack", &fields.primary_rack),
        ("secondary_rack", &fields.secondary_rack),
    ] {
        let Some(rack) = rack else { continue };
        let is_rack = store.node_by_system_id(rack).await?.is_some_and(|n| {
            matches!(
                n.node_type,
                NodeType::RackController | NodeType::RegionAndRackController
            )
        });
        if !is_rack {
            errors.add(
                param,
                format!("Select a valid choice. {rack} is not one of the available choices."),
            );
        }
    }
    if fields.primary_rack.is_some() && fields.primary_rack == fields.secondary_rack {
        errors.add(
            "secondary_rack",
            "Primary rack controller and secondary rack controller cannot be the same.",
        );
    }
    if fields.secondary_rack.is_some() && fields.primary_rack.is_none() {
        errors.add(
            "secondary_rack",
            "A secondary rack controller cannot be set without a primary rack controller.",
        );
    }
    if fields.dhcp_on && !vlan.dhcp_on {
        if fields.primary_rack.is_none() {
            errors.add(
                "dhcp_on",
                "dhcp can only be turned on when a primary rack controller is set.",
            );
        }
        let ranges = store.ip_ranges().await?;
        let subnets: Vec<i64> = catalog
            .subnets
            .iter()
            .filter(|s| s.vlan_id == vlan.id)
            .map(|s| s.id)
            .collect();
        if !ranges
            .iter()
            .any(|r| r.kind == "dynamic" && subnets.contains(&r.subnet_id))
        {
            errors.add(
                "dhcp_on",
                "dhcp can only be turned on when a dynamic IP range is defined.",
            );
        }
    }
    if vlan.vid == 0 && fields.vid != 0 {
        errors.add("vid", "The untagged VLAN's vid can't be changed.");
    }
    errors.check()?;
    store
        .update_vlan(vlan.id, fields)
        .await
        .map_err(|e| super::duplicate(e, "vid", "VLAN with this Fabric and Vid already exists."))
}

pub async fn delete_vlan(store: &dyn Store, caller: &User, vlan: &Vlan) -> ServiceResult<()> {
    admin(caller)?;
    if vlan.vid == 0 {
        return Err(ServiceError::bad_request(
            "The untagged VLAN of a fabric can't be deleted.",
        ));
    }
    let catalog = store.network_catalog().await?;
    if catalog.subnets.iter().any(|s| s.vlan_id == vlan.id) {
        return Err(ServiceError::bad_request(
            "Can't delete a VLAN that still has subnets; delete or move them first.",
        ));
    }
    Ok(store.delete_vlan(vlan.id).await?)
}

pub async fn create_space(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    now: i64,
) -> ServiceResult<Space> {
    admin(caller)?;
    let name = params
        .get("name")
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ServiceError::field("name", "This field is required."))?;
    check_name("name", name)?;
    if name == "undefined" {
        return Err(ServiceError::field(
            "name",
            "'undefined' is a reserved name.",
        ));
    }
    store
        .create_space(name, params.get("description").unwrap_or(""), now)
        .await
        .map_err(|e| super::duplicate(e, "name", "Space with this Name already exists."))
}

pub async fn update_space(
    store: &dyn Store,
    caller: &User,
    mut space: Space,
    params: &Params,
) -> ServiceResult<Space> {
    admin(caller)?;
    if let Some(name) = params.get("name") {
        check_name("name", name)?;
        space.name = name.to_owned();
    }
    if let Some(description) = params.get("description") {
        space.description = description.to_owned();
    }
    store
        .update_space(space)
        .await
        .map_err(|e| super::duplicate(e, "name", "Space with this Name already exists."))
}

fn subnet_fields(
    catalog: &NetworkCatalog,
    params: &Params,
    current: &SubnetFields,
    creating: bool,
    errors: &mut FieldErrors,
) -> SubnetFields {
    let mut f = current.clone();
    let mut cidr_changed = false;
    if let Some(cidr) = params.get("cidr") {
        match cidr.parse::<Cidr>() {
            Ok(c) => {
                f.cidr = c.to_string();
                cidr_changed = true;
            }
            Err(_) => errors.add("cidr", "Required format: <network>/<prefixlen>."),
        }
    }
    if let Some(name) = params.get("name") {
        f.name = name.to_owned();
    }
    if (creating || f.name.is_empty() || (cidr_changed && current.name == current.cidr))
        && params.get("name").is_none_or(|n| n.is_empty())
    {
        f.name = f.cidr.clone();
    }
    if let Some(description) = params.get("description") {
        f.description = description.to_owned();
    }
    // The VLAN: `vlan` (id or specifier), else `fabric` + `vid`, else the default.
    if let Some(vlan) = params.get("vlan").filter(|v| !v.is_empty()) {
        match vlan
            .parse::<i64>()
            .ok()
            .filter(|id| catalog.vlans.iter().any(|v| v.id == *id))
        {
            Some(id) => f.vlan_id = id,
            None => errors.add(
                "vlan",
                format!("Select a valid choice. {vlan} is not one of the available choices."),
            ),
        }
    } else if params.contains("fabric") || params.contains("vid") {
        let fabric_id = match params.get("fabric") {
            Some(spec) => catalog
                .fabrics
                .iter()
                .find(|fa| fa.name == spec || fa.id.to_string() == spec)
                .map(|fa| fa.id),
            None => Some(DEFAULT_FABRIC_ID),
        };
        let vid: i64 = params.get("vid").and_then(|v| v.parse().ok()).unwrap_or(0);
        match fabric_id.and_then(|fid| {
            catalog
                .vlans
                .iter()
                .find(|v| v.fabric_id == fid && v.vid == vid)
        }) {
            Some(v) => f.vlan_id = v.id,
            None => errors.add("vid", "No VLAN with this vid on that fabric."),
        }
    }
    let network: Option<Cidr> = f.cidr.parse().ok();
    if let Some(gateway) = params.get("gateway_ip") {
        if gateway.is_empty() {
            f.gateway_ip = None;
        } else {
            match gateway.parse::<IpAddr>() {
                Ok(ip) if network.is_none_or(|n| n.contains(ip)) => {
                    f.gateway_ip = Some(ip.to_string())
                }
                Ok(_) => errors.add("gateway_ip", "Gateway IP must be within CIDR range."),
                Err(_) => errors.add("gateway_ip", "Enter a valid IPv4 or IPv6 address."),
            }
        }
    }
    if let Some(servers) = params.get("dns_servers") {
        let mut list = Vec::new();
        for server in servers.split([',', ' ']).filter(|s| !s.is_empty()) {
            match server.parse::<IpAddr>() {
                Ok(ip) => list.push(ip.to_string()),
                Err(_) => errors.add("dns_servers", format!("Invalid IP address: {server}.")),
            }
        }
        f.dns_servers = list;
    }
    f.rdns_mode = int_field(params, "rdns_mode", current.rdns_mode, errors);
    if !(0..=2).contains(&f.rdns_mode) {
        errors.add(
            "rdns_mode",
            format!(
                "Select a valid choice. {} is not one of the available choices.",
                f.rdns_mode
            ),
        );
    }
    f.allow_dns = bool_field(params, "allow_dns", current.allow_dns, errors);
    f.allow_proxy = bool_field(params, "allow_proxy", current.allow_proxy, errors);
    f.active_discovery = bool_field(params, "active_discovery", current.active_discovery, errors);
    f.managed = bool_field(params, "managed", current.managed, errors);
    if let Some(arches) = params.get("disabled_boot_architectures") {
        f.disabled_boot_architectures = arches
            .split([',', ' '])
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
    }
    f
}

pub async fn create_subnet(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    now: i64,
) -> ServiceResult<Subnet> {
    admin(caller)?;
    if params.get("cidr").is_none_or(|c| c.is_empty()) {
        return Err(ServiceError::field("cidr", "This field is required."));
    }
    let catalog = store.network_catalog().await?;
    let blank = SubnetFields {
        name: String::new(),
        description: String::new(),
        cidr: String::new(),
        vlan_id: DEFAULT_VLAN_ID,
        gateway_ip: None,
        dns_servers: Vec::new(),
        rdns_mode: 2,
        allow_dns: true,
        allow_proxy: true,
        active_discovery: false,
        managed: true,
        disabled_boot_architectures: Vec::new(),
    };
    let mut errors = FieldErrors::new();
    let fields = subnet_fields(&catalog, params, &blank, true, &mut errors);
    errors.check()?;
    store
        .create_subnet(fields, now)
        .await
        .map_err(|e| super::duplicate(e, "cidr", "Subnet with this Cidr already exists."))
}

pub async fn update_subnet(
    store: &dyn Store,
    caller: &User,
    subnet: &Subnet,
    params: &Params,
) -> ServiceResult<Subnet> {
    admin(caller)?;
    let catalog = store.network_catalog().await?;
    let current = SubnetFields {
        name: subnet.name.clone(),
        description: subnet.description.clone(),
        cidr: subnet.cidr.clone(),
        vlan_id: subnet.vlan_id,
        gateway_ip: subnet.gateway_ip.clone(),
        dns_servers: subnet.dns_servers.clone(),
        rdns_mode: subnet.rdns_mode,
        allow_dns: subnet.allow_dns,
        allow_proxy: subnet.allow_proxy,
        active_discovery: subnet.active_discovery,
        managed: subnet.managed,
        disabled_boot_architectures: subnet.disabled_boot_architectures.clone(),
    };
    let mut errors = FieldErrors::new();
    let fields = subnet_fields(&catalog, params, &current, false, &mut errors);
    errors.check()?;
    store
        .update_subnet(subnet.id, fields)
        .await
        .map_err(|e| super::duplicate(e, "cidr", "Subnet with this Cidr already exists."))
}

/// Finds the subnet addressed by a URL segment: an id, a CIDR or a specifier.
pub fn subnet<'c>(catalog: &'c NetworkCatalog, spec: &str) -> ServiceResult<&'c Subnet> {
    let ids = resolve_subnet(catalog, spec).map_err(|_| ServiceError::not_found("Subnet"))?;
    match ids.as_slice() {
        [id] => catalog
            .subnets
            .iter()
            .find(|s| s.id == *id)
            .ok_or_else(|| ServiceError::not_found("Subnet")),
        [] => Err(ServiceError::not_found("Subnet")),
        _ => Err(ServiceError::bad_request(format!(
            "Subnet specifier '{spec}' matches more than one subnet."
        ))),
    }
}

fn parse_ip(field: &str, value: Option<&str>, errors: &mut FieldErrors) -> Option<IpAddr> {
    match value {
        None | Some("") => {
            errors.add(field, "This field is required.");
            None
        }
        Some(text) => match text.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                errors.add(field, "Enter a valid IPv4 or IPv6 address.");
                None
            }
        },
    }
}

/// Checks a range against its subnet and the subnet's other ranges.
fn check_range(
    catalog: &NetworkCatalog,
    ranges: &[IpRange],
    fields: &IpRangeFields,
    skip_id: Option<i64>,
    errors: &mut FieldErrors,
) {
    let (Ok(start), Ok(end)) = (
        fields.start_ip.parse::<IpAddr>(),
        fields.end_ip.parse::<IpAddr>(),
    ) else {
        return;
    };
    if start.is_ipv4() != end.is_ipv4() || ip_bits(start) > ip_bits(end) {
        errors.add(
            "end_ip",
            "End IP address must not be less than Start IP address.",
        );
        return;
    }
    match catalog
        .subnets
        .iter()
        .find(|s| s.id == fields.subnet_id)
        .and_then(|s| s.cidr.parse::<Cidr>().ok())
    {
        Some(cidr) if cidr.contains(start) && cidr.contains(end) => {}
        Some(cidr) => errors.add(
            "__all__",
            format!("IP addresses must be within subnet: {cidr}."),
        ),
        None => errors.add("subnet", "Select a valid choice."),
    }
    for other in ranges
        .iter()
        .filter(|r| r.subnet_id == fields.subnet_id && Some(r.id) != skip_id)
    {
        let (Ok(o_start), Ok(o_end)) = (
            other.start_ip.parse::<IpAddr>(),
            other.end_ip.parse::<IpAddr>(),
        ) else {
            continue;
        };
        if o_start.is_ipv4() == start.is_ipv4()
            && ip_bits(start) <= ip_bits(o_end)
            && ip_bits(o_start) <= ip_bits(end)
        {
            errors.add(
                "__all__",
                format!(
                    "Requested {} range conflicts with an existing {} range: {}-{}.",
                    fields.kind, other.kind, other.start_ip, other.end_ip
                ),
            );
        }
    }
}

pub async fn create_ip_range(
    store: &dyn Store,
    caller: &User,
    params: &Params,
    now: i64,
) -> ServiceResult<IpRange> {
    let mut errors = FieldErrors::new();
    let kind = params.get("type").unwrap_or("");
    if !["dynamic", "reserved"].contains(&kind) {
        errors.add(
            "type",
            "Select a valid choice. Choose from dynamic or reserved.",
        );
    }
    if kind == "dynamic" && !caller.is_superuser {
        return Err(ServiceError::forbidden(
            "Only administrators can create dynamic IP ranges.",
        ));
    }
    let start = parse_ip("start_ip", params.get("start_ip"), &mut errors);
    let end = parse_ip("end_ip", params.get("end_ip"), &mut errors);
    let catalog = store.network_catalog().await?;
    let subnet_id = match params.get("subnet").filter(|s| !s.is_empty()) {
        Some(spec) => match subnet(&catalog, spec) {
            Ok(s) => Some(s.id),
            Err(_) => {
                errors.add(
                    "subnet",
                    format!("Select a valid choice. {spec} is not one of the available choices."),
                );
                None
            }
        },
        None => start.and_then(|ip| {
            catalog
                .subnets
                .iter()
                .filter_map(|s| {
                    s.cidr
                        .parse::<Cidr>()
                        .ok()
                        .filter(|c| c.contains(ip))
                        .map(|c| (c.prefix(), s.id))
                })
                .max()
                .map(|(_, id)| id)
        }),
    };
    if subnet_id.is_none() && start.is_some() && !params.contains("subnet") {
        errors.add(
            "subnet",
            "There is no subnet for the given start IP address.",
        );
    }
    errors.check()?;
    let (Some(start), Some(end), Some(subnet_id)) = (start, end, subnet_id) else {
        return Err(ServiceError::field("__all__", "Incomplete IP range."));
    };
    let fields = IpRangeFields {
        subnet_id,
        kind: kind.to_owned(),
        start_ip: start.to_string(),
        end_ip: end.to_string(),
        comment: params.get("comment").unwrap_or("").to_owned(),
        user_id: Some(caller.id),
    };
    let ranges = store.ip_ranges().await?;
    let mut errors = FieldErrors::new();
    check_range(&catalog, &ranges, &fields, None, &mut errors);
    errors.check()?;
    Ok(store.create_ip_range(fields, now).await?)
}

pub async fn update_ip_range(
    store: &dyn Store,
    caller: &User,
    range: &IpRange,
    params: &Params,
) -> ServiceResult<IpRange> {
    if !caller.is_superuser && range.user_id != Some(caller.id) {
        return Err(ServiceError::Forbidden(String::new()));
    }
    let mut errors = FieldErrors::new();
    let mut fields = IpRangeFields {
        subnet_id: range.subnet_id,
        kind: range.kind.clone(),
        start_ip: range.start_ip.clone(),
        end_ip: range.end_ip.clone(),
        comment: range.comment.clone(),
        user_id: range.user_id,
    };
    if params.contains("start_ip") {
        fields.start_ip = parse_ip("start_ip", params.get("start_ip"), &mut errors)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
    }
    if params.contains("end_ip") {
        fields.end_ip = parse_ip("end_ip", params.get("end_ip"), &mut errors)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
    }
    if let Some(comment) = params.get("comment") {
        fields.comment = comment.to_owned();
    }
    errors.check()?;
    let catalog = store.network_catalog().await?;
    let ranges = store.ip_ranges().await?;
    let mut errors = FieldErrors::new();
    check_range(&catalog, &ranges, &fields, Some(range.id), &mut errors);
    errors.check()?;
    Ok(store.update_ip_range(range.id, fields).await?)
}

pub async fn delete_ip_range(
    store: &dyn Store,
    caller: &User,
    range: &IpRange,
) -> ServiceResult<()> {
    if !caller.is_superuser && range.user_id != Some(caller.id) {
        return Err(ServiceError::Forbidden(String::new()));
    }
    Ok(store.delete_ip_range(range.id).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> NetworkCatalog {
        let vlan = |id, fabric_id, vid, space_id| Vlan {
            id,
            fabric_id,
            vid,
            name: None,
            description: String::new(),
            mtu: 1500,
            dhcp_on: false,
            external_dhcp: None,
            primary_rack: None,
            secondary_rack: None,
            relay_vlan_id: None,
            space_id,
        };
        let subnet = |id, cidr: &str, vlan_id| Subnet {
            id,
            name: cidr.to_owned(),
            description: String::new(),
            cidr: cidr.to_owned(),
            vlan_id,
            gateway_ip: None,
            dns_servers: vec![],
            rdns_mode: 2,
            allow_dns: true,
            allow_proxy: true,
            active_discovery: false,
            managed: true,
            disabled_boot_architectures: vec![],
        };
        NetworkCatalog {
            fabrics: vec![
                Fabric {
                    id: 0,
                    name: "fabric-0".into(),
                    description: String::new(),
                    class_type: None,
                },
                Fabric {
                    id: 1,
                    name: "storage".into(),
                    description: String::new(),
                    class_type: None,
                },
            ],
            vlans: vec![vlan(5001, 0, 0, None), vlan(5002, 1, 100, Some(1))],
            spaces: vec![Space {
                id: 1,
                name: "dmz".into(),
                description: String::new(),
            }],
            subnets: vec![
                subnet(1, "10.0.0.0/16", 5001),
                subnet(2, "10.0.5.0/24", 5002),
            ],
        }
    }

    fn check(spec: &str, expected: &[i64]) {
        assert_eq!(
            resolve_subnet(&catalog(), spec).unwrap(),
            expected,
            "{spec}"
        );
    }

    #[test]
    fn subnet_specifiers() {
        check("1", &[1]);
        check("id:2", &[2]);
        check("10.0.5.0/24", &[2]);
        check("cidr:10.0.0.0/16", &[1]);
        check("name:10.0.0.0/16", &[1]);
        check("ip:10.0.5.7", &[2]);
        check("ip:10.0.9.7", &[1]);
        check("ip:192.168.0.1", &[]);
        check("vlan:5002", &[2]);
        check("vid:100", &[2]);
        check("fabric:storage", &[2]);
        check("space:dmz", &[2]);
        check("space:nope", &[]);
        assert!(resolve_subnet(&catalog(), "ip:nonsense").is_err());
        assert!(resolve_subnet(&catalog(), "cidr:10.0.0.0/99").is_err());
    }
}
