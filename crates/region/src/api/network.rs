//! `fabrics/`, `fabrics/{fabric_id}/vlans/`, `vlans/{vlan_id}/`, `spaces/`,
//! `subnets/` and `ipranges/`.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use maas_store::{IpRange, Vlan};

use super::render::Catalog;
use super::{ApiRequest, Handler, Resource, opt, req, rest};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::response::{no_content, ok_json};
use crate::region::Region;
use crate::service::network as service;

async fn catalog(region: &Region) -> ServiceResult<Catalog> {
    Ok(Catalog::new(region.store.network_catalog().await?))
}

async fn fabrics(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    Ok(ok_json(
        &catalog
            .raw
            .fabrics
            .iter()
            .map(|f| catalog.fabric(f))
            .collect::<Vec<_>>(),
    ))
}

async fn create_fabric(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let fabric = service::create_fabric(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        region.now(),
    )
    .await?;
    let catalog = catalog(&region).await?;
    Ok(ok_json(&catalog.fabric(&fabric)))
}

async fn read_fabric(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    let fabric = service::fabric(&catalog.raw, request.path_param("id")?)?;
    Ok(ok_json(&catalog.fabric(fabric)))
}

async fn update_fabric(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let before = catalog(&region).await?;
    let fabric = service::fabric(&before.raw, request.path_param("id")?)?.clone();
    let fabric = service::update_fabric(
        region.store.as_ref(),
        request.user()?,
        fabric,
        &request.params,
    )
    .await?;
    let after = catalog(&region).await?;
    Ok(ok_json(&after.fabric(&fabric)))
}

async fn delete_fabric(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let catalog = catalog(&region).await?;
    let fabric = service::fabric(&catalog.raw, request.path_param("id")?)?;
    service::delete_fabric(region.store.as_ref(), request.user()?, fabric).await?;
    Ok(no_content())
}

async fn vlans(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    let fabric = service::fabric(&catalog.raw, request.path_param("fabric_id")?)?;
    let list: Vec<_> = catalog
        .raw
        .vlans
        .iter()
        .filter(|v| v.fabric_id == fabric.id)
        .map(|v| catalog.vlan(v))
        .collect();
    Ok(ok_json(&list))
}

async fn create_vlan(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let before = catalog(&region).await?;
    let fabric = service::fabric(&before.raw, request.path_param("fabric_id")?)?;
    let vlan = service::create_vlan(
        region.store.as_ref(),
        request.user()?,
        fabric,
        &request.params,
        region.now(),
    )
    .await?;
    let after = catalog(&region).await?;
    Ok(ok_json(&after.vlan(&vlan)))
}

/// The VLAN of `fabrics/{fabric_id}/vlans/{vid}/`, or of `vlans/{vlan_id}/`.
fn find_vlan<'c>(catalog: &'c Catalog, request: &ApiRequest) -> ServiceResult<&'c Vlan> {
    let not_found = || ServiceError::not_found("VLAN");
    if let Ok(id) = request.path_param("vlan_id") {
        let id: i64 = id.parse().map_err(|_| not_found())?;
        return catalog.vlan_record(id).ok_or_else(not_found);
    }
    let fabric =
        service::fabric(&catalog.raw, request.path_param("fabric_id")?).map_err(|_| not_found())?;
    let vid: i64 = request
        .path_param("vid")?
        .parse()
        .map_err(|_| not_found())?;
    catalog
        .raw
        .vlans
        .iter()
        .find(|v| v.fabric_id == fabric.id && v.vid == vid)
        .ok_or_else(not_found)
}

async fn read_vlan(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    let vlan = find_vlan(&catalog, &request)?;
    Ok(ok_json(&catalog.vlan(vlan)))
}

async fn update_vlan(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let before = catalog(&region).await?;
    let vlan = find_vlan(&before, &request)?;
    let vlan = service::update_vlan(
        region.store.as_ref(),
        request.user()?,
        vlan,
        &request.params,
    )
    .await?;
    let after = catalog(&region).await?;
    Ok(ok_json(&after.vlan(&vlan)))
}

async fn delete_vlan(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let catalog = catalog(&region).await?;
    let vlan = find_vlan(&catalog, &request)?;
    service::delete_vlan(region.store.as_ref(), request.user()?, vlan).await?;
    Ok(no_content())
}

async fn spaces(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    Ok(ok_json(
        &catalog
            .raw
            .spaces
            .iter()
            .map(|s| catalog.space(s))
            .collect::<Vec<_>>(),
    ))
}

async fn create_space(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let space = service::create_space(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        region.now(),
    )
    .await?;
    let catalog = catalog(&region).await?;
    Ok(ok_json(&catalog.space(&space)))
}

fn find_space<'c>(
    catalog: &'c Catalog,
    request: &ApiRequest,
) -> ServiceResult<&'c maas_store::Space> {
    let spec = request.path_param("id")?;
    catalog
        .raw
        .spaces
        .iter()
        .find(|s| s.id.to_string() == spec || s.name == spec)
        .ok_or_else(|| ServiceError::not_found("Space"))
}

async fn read_space(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    Ok(ok_json(&catalog.space(find_space(&catalog, &request)?)))
}

async fn update_space(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let before = catalog(&region).await?;
    let space = find_space(&before, &request)?.clone();
    let space = service::update_space(
        region.store.as_ref(),
        request.user()?,
        space,
        &request.params,
    )
    .await?;
    let after = catalog(&region).await?;
    Ok(ok_json(&after.space(&space)))
}

async fn delete_space(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    if !user.is_superuser {
        return Err(ServiceError::admin_only());
    }
    let catalog = catalog(&region).await?;
    let space = find_space(&catalog, &request)?;
    region.store.delete_space(space.id).await?;
    Ok(no_content())
}

async fn subnets(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    Ok(ok_json(
        &catalog
            .raw
            .subnets
            .iter()
            .filter_map(|s| catalog.subnet(s))
            .collect::<Vec<_>>(),
    ))
}

fn render_subnet(catalog: &Catalog, id: i64) -> ServiceResult<Response> {
    let wire = catalog
        .subnet_by_id(id)
        .ok_or_else(|| ServiceError::not_found("Subnet"))?;
    Ok(ok_json(&wire))
}

async fn create_subnet(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let subnet = service::create_subnet(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        region.now(),
    )
    .await?;
    render_subnet(&catalog(&region).await?, subnet.id)
}

async fn read_subnet(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let catalog = catalog(&region).await?;
    let subnet = service::subnet(&catalog.raw, request.path_param("id")?)?;
    render_subnet(&catalog, subnet.id)
}

async fn update_subnet(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let before = catalog(&region).await?;
    let subnet = service::subnet(&before.raw, request.path_param("id")?)?;
    let subnet = service::update_subnet(
        region.store.as_ref(),
        request.user()?,
        subnet,
        &request.params,
    )
    .await?;
    render_subnet(&catalog(&region).await?, subnet.id)
}

async fn delete_subnet(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    if !user.is_superuser {
        return Err(ServiceError::admin_only());
    }
    let catalog = catalog(&region).await?;
    let subnet = service::subnet(&catalog.raw, request.path_param("id")?)?;
    region.store.delete_subnet(subnet.id).await?;
    Ok(no_content())
}

async fn render_ranges(region: &Region, ranges: &[IpRange]) -> ServiceResult<Response> {
    let catalog = catalog(region).await?;
    let users = region.store.users().await?;
    let list: Vec<_> = ranges
        .iter()
        .filter_map(|r| {
            catalog.ip_range(
                r,
                r.user_id.and_then(|id| users.iter().find(|u| u.id == id)),
            )
        })
        .collect();
    Ok(ok_json(&list))
}

async fn ipranges(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let ranges = region.store.ip_ranges().await?;
    render_ranges(&region, &ranges).await
}

async fn one_range(region: &Region, request: &ApiRequest) -> ServiceResult<IpRange> {
    let id: i64 = request
        .path_param("id")?
        .parse()
        .map_err(|_| ServiceError::not_found("IPRange"))?;
    region
        .store
        .ip_ranges()
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ServiceError::not_found("IPRange"))
}

async fn render_range(region: &Region, range: &IpRange) -> ServiceResult<Response> {
    let catalog = catalog(region).await?;
    let owner = match range.user_id {
        Some(id) => region.store.user_by_id(id).await?,
        None => None,
    };
    let wire = catalog
        .ip_range(range, owner.as_ref())
        .ok_or_else(|| ServiceError::not_found("IPRange"))?;
    Ok(ok_json(&wire))
}

async fn create_iprange(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let range = service::create_ip_range(
        region.store.as_ref(),
        request.user()?,
        &request.params,
        region.now(),
    )
    .await?;
    render_range(&region, &range).await
}

async fn read_iprange(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.user()?;
    let range = one_range(&region, &request).await?;
    render_range(&region, &range).await
}

async fn update_iprange(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let range = one_range(&region, &request).await?;
    let range = service::update_ip_range(
        region.store.as_ref(),
        request.user()?,
        &range,
        &request.params,
    )
    .await?;
    render_range(&region, &range).await
}

async fn delete_iprange(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let range = one_range(&region, &request).await?;
    service::delete_ip_range(region.store.as_ref(), request.user()?, &range).await?;
    Ok(no_content())
}

fn handler(name: &'static str, doc: &'static str, actions: Vec<super::Action>) -> Option<Handler> {
    Some(Handler { name, doc, actions })
}

fn vlan_handler() -> Option<Handler> {
    let params = vec![
        opt("name", "String", "Name of the VLAN."),
        opt("description", "String", "Description of the VLAN."),
        opt("vid", "Int", "VLAN ID of the VLAN."),
        opt("mtu", "Int", "The MTU to use on the VLAN."),
        opt(
            "dhcp_on",
            "Boolean",
            "Whether or not DHCP should be managed on the VLAN.",
        ),
        opt(
            "primary_rack",
            "String",
            "The primary rack controller managing the VLAN (system_id).",
        ),
        opt(
            "secondary_rack",
            "String",
            "The secondary rack controller managing the VLAN (system_id).",
        ),
        opt(
            "relay_vlan",
            "Int",
            "Relay VLAN ID. Only set when this VLAN will be using a DHCP relay to forward DHCP requests to another VLAN that MAAS is managing.",
        ),
        opt(
            "space",
            "String",
            "The space this VLAN should be placed in. Passing in an empty string (or the string 'undefined') will cause the VLAN to be placed in the 'undefined' space.",
        ),
    ];
    handler(
        "VlanHandler",
        "Manage a VLAN on a fabric.",
        vec![
            rest(Method::GET, "Retrieve VLAN", vec![], action_fn!(read_vlan)),
            rest(Method::PUT, "Update VLAN", params, action_fn!(update_vlan)),
            rest(
                Method::DELETE,
                "Delete a VLAN",
                vec![],
                action_fn!(delete_vlan),
            ),
        ],
    )
}

pub fn resources() -> Vec<Resource> {
    let subnet_params = |create: bool| {
        vec![
            if create {
                req("cidr", "String", "The network CIDR for this subnet.")
            } else {
                opt("cidr", "String", "The network CIDR for this subnet.")
            },
            opt("name", "String", "The subnet's name."),
            opt("description", "String", "The subnet's description."),
            opt(
                "vlan",
                "String",
                "VLAN this subnet belongs to. Defaults to the default VLAN for the provided fabric or defaults to the default VLAN in the default fabric (if unspecified).",
            ),
            opt(
                "fabric",
                "String",
                "Fabric for the subnet. Defaults to the fabric the provided VLAN belongs to, or defaults to the default fabric.",
            ),
            opt(
                "vid",
                "Int",
                "VID of the VLAN this subnet belongs to. Only used when vlan is not provided.",
            ),
            opt(
                "gateway_ip",
                "String",
                "The gateway IP address for this subnet.",
            ),
            opt(
                "rdns_mode",
                "Int",
                "How reverse DNS is handled for this subnet. One of: 0 Disabled, 1 Enabled, 2 RFC2317.",
            ),
            opt(
                "allow_dns",
                "Boolean",
                "Configure MAAS DNS to allow DNS resolution from this subnet.",
            ),
            opt(
                "allow_proxy",
                "Boolean",
                "Configure maas-proxy to allow requests from this subnet.",
            ),
            opt(
                "dns_servers",
                "String",
                "Comma-separated list of DNS servers for this subnet.",
            ),
            opt(
                "managed",
                "Boolean",
                "In MAAS 2.0+, all subnets are assumed to be managed by default.",
            ),
            opt(
                "active_discovery",
                "Boolean",
                "Whether or not active discovery is enabled for this subnet.",
            ),
            opt(
                "disabled_boot_architectures",
                "String",
                "A comma or space separated list of boot architectures which will not be responded to by isc-dhcpd.",
            ),
        ]
    };
    vec![
        Resource {
            path: "fabrics/",
            params: &[],
            auth: handler(
                "FabricsHandler",
                "Manage fabrics.",
                vec![
                    rest(Method::GET, "List fabrics", vec![], action_fn!(fabrics)),
                    rest(
                        Method::POST,
                        "Create a fabric",
                        vec![
                            opt("name", "String", "Name of the fabric."),
                            opt("description", "String", "Description of the fabric."),
                            opt("class_type", "String", "Class type of the fabric."),
                        ],
                        action_fn!(create_fabric),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "fabrics/{id}/",
            params: &["id"],
            auth: handler(
                "FabricHandler",
                "Manage fabric.",
                vec![
                    rest(
                        Method::GET,
                        "Read a fabric",
                        vec![],
                        action_fn!(read_fabric),
                    ),
                    rest(
                        Method::PUT,
                        "Update fabric",
                        vec![
                            opt("name", "String", "Name of the fabric."),
                            opt("description", "String", "Description of the fabric."),
                            opt("class_type", "String", "Class type of the fabric."),
                        ],
                        action_fn!(update_fabric),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a fabric",
                        vec![],
                        action_fn!(delete_fabric),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "fabrics/{fabric_id}/vlans/",
            params: &["fabric_id"],
            auth: handler(
                "VlansHandler",
                "Manage VLANs on a fabric.",
                vec![
                    rest(Method::GET, "List VLANs", vec![], action_fn!(vlans)),
                    rest(
                        Method::POST,
                        "Create a VLAN",
                        vec![
                            req("vid", "Int", "VLAN ID of the new VLAN."),
                            opt("name", "String", "Name of the VLAN."),
                            opt("description", "String", "Description of the new VLAN."),
                            opt("mtu", "Int", "The MTU to use on the VLAN."),
                            opt(
                                "space",
                                "String",
                                "The space this VLAN should be placed in.",
                            ),
                        ],
                        action_fn!(create_vlan),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "fabrics/{fabric_id}/vlans/{vid}/",
            params: &["fabric_id", "vid"],
            auth: vlan_handler(),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "vlans/{vlan_id}/",
            params: &["vlan_id"],
            auth: vlan_handler(),
            anon: None,
            admin: false,
            hidden: true,
        },
        Resource {
            path: "spaces/",
            params: &[],
            auth: handler(
                "SpacesHandler",
                "Manage spaces.",
                vec![
                    rest(Method::GET, "List all spaces", vec![], action_fn!(spaces)),
                    rest(
                        Method::POST,
                        "Create a space",
                        vec![
                            req("name", "String", "The name of the new space."),
                            opt("description", "String", "A description of the new space."),
                        ],
                        action_fn!(create_space),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "spaces/{id}/",
            params: &["id"],
            auth: handler(
                "SpaceHandler",
                "Manage space.",
                vec![
                    rest(Method::GET, "Reads a space", vec![], action_fn!(read_space)),
                    rest(
                        Method::PUT,
                        "Update space",
                        vec![
                            opt("name", "String", "The name of the space."),
                            opt("description", "String", "A description of the space."),
                        ],
                        action_fn!(update_space),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a space",
                        vec![],
                        action_fn!(delete_space),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "subnets/",
            params: &[],
            auth: handler(
                "SubnetsHandler",
                "Manage subnets.",
                vec![
                    rest(Method::GET, "List all subnets", vec![], action_fn!(subnets)),
                    rest(
                        Method::POST,
                        "Create a subnet",
                        subnet_params(true),
                        action_fn!(create_subnet),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "subnets/{id}/",
            params: &["id"],
            auth: handler(
                "SubnetHandler",
                "Manage subnet.",
                vec![
                    rest(Method::GET, "Get a subnet", vec![], action_fn!(read_subnet)),
                    rest(
                        Method::PUT,
                        "Update a subnet",
                        subnet_params(false),
                        action_fn!(update_subnet),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a subnet",
                        vec![],
                        action_fn!(delete_subnet),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "ipranges/",
            params: &[],
            auth: handler(
                "IPRangesHandler",
                "Manage IP ranges.",
                vec![
                    rest(
                        Method::GET,
                        "List all IP ranges",
                        vec![],
                        action_fn!(ipranges),
                    ),
                    rest(
                        Method::POST,
                        "Create an IP range",
                        vec![
                            req(
                                "type",
                                "String",
                                "Type of this range. (dynamic or reserved)",
                            ),
                            req(
                                "start_ip",
                                "String",
                                "Start IP address of this range (inclusive).",
                            ),
                            req(
                                "end_ip",
                                "String",
                                "End IP address of this range (inclusive).",
                            ),
                            opt("subnet", "Int", "Subnet associated with this range."),
                            opt("comment", "String", "A description of this range."),
                        ],
                        action_fn!(create_iprange),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "ipranges/{id}/",
            params: &["id"],
            auth: handler(
                "IPRangeHandler",
                "Manage IP range.",
                vec![
                    rest(
                        Method::GET,
                        "Get an IP range",
                        vec![],
                        action_fn!(read_iprange),
                    ),
                    rest(
                        Method::PUT,
                        "Update an IP range",
                        vec![
                            opt(
                                "start_ip",
                                "String",
                                "Start IP address of this range (inclusive).",
                            ),
                            opt(
                                "end_ip",
                                "String",
                                "End IP address of this range (inclusive).",
                            ),
                            opt("comment", "String", "A description of this range."),
                        ],
                        action_fn!(update_iprange),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete an IP range",
                        vec![],
                        action_fn!(delete_iprange),
                    ),
                ],
            ),
            anon: None,
            admin: false,
            hidden: false,
        },
    ]
}
