//! `rackcontrollers/` and `rackcontrollers/{system_id}/` (api.md §9.3): the racks with
//! their interfaces, version and `service_set`.

use std::sync::Arc;

use axum::http::Method;
use axum::response::Response;
use maas_domain::NodeType;
use maas_store::{Node, ServiceStatus};
use serde_json::{Map, Value};

use super::render::{self, Catalog};
use super::{ApiRequest, Handler, Resource, op, opt, rest};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::response::{no_content, ok_json};
use crate::region::Region;
use crate::service::machines as nodes;
use crate::service::racks;

const RACK_TYPES: [NodeType; 2] = [NodeType::RackController, NodeType::RegionAndRackController];

/// Machine fields a controller shows too (api.md §9.3).
const FIELDS: &[&str] = &[
    "system_id",
    "hostname",
    "description",
    "hardware_uuid",
    "domain",
    "fqdn",
    "architecture",
    "cpu_count",
    "cpu_speed",
    "memory",
    "swap_size",
    "osystem",
    "distro_series",
    "power_type",
    "power_state",
    "ip_addresses",
    "interface_set",
    "zone",
    "status_action",
    "node_type",
    "node_type_name",
    "tag_names",
    "hardware_info",
];

fn controller_json(
    node: &Node,
    catalog: &Catalog,
    version: Option<&str>,
    services: &[ServiceStatus],
) -> Value {
    let machine = match serde_json::to_value(render::machine(node, catalog)) {
        Ok(Value::Object(map)) => map,
        // A plain struct always serialises to an object.
        _ => Map::new(),
    };
    let mut out = Map::new();
    for (key, value) in &machine {
        let keep = FIELDS.contains(&key.as_str())
            || (key.starts_with("current_") && key.ends_with("_result_id"))
            || ((key.ends_with("_status") || key.ends_with("_status_name"))
                && key != "status"
                && key != "status_name");
        if keep {
            out.insert(key.clone(), value.clone());
        }
    }
    out.insert(
        "version".into(),
        version.map_or(Value::Null, |v| Value::String(v.to_owned())),
    );
    out.insert(
        "service_set".into(),
        Value::Array(
            services
                .iter()
                .map(|s| {
                    serde_json::json!({"name": s.name, "status": s.status, "status_info": s.status_info})
                })
                .collect(),
        ),
    );
    out.insert(
        "resource_uri".into(),
        Value::String(format!("/MAAS/api/2.0/rackcontrollers/{}/", node.system_id)),
    );
    Value::Object(out)
}

async fn render_racks(region: &Region, racks_: &[Node]) -> ServiceResult<Vec<Value>> {
    let catalog = Catalog::new(region.store.network_catalog().await?);
    let ids: Vec<i64> = racks_.iter().map(|n| n.id).collect();
    let infos = region.store.controller_infos(&ids).await?;
    let refs: Vec<&Node> = racks_.iter().collect();
    let services = racks::service_sets(region.store.as_ref(), &refs, region.now()).await?;
    Ok(racks_
        .iter()
        .map(|node| {
            let version = infos
                .iter()
                .find(|i| i.node_id == node.id)
                .map(|i| i.version.as_str());
            let empty = Vec::new();
            let set = services.get(&node.id).unwrap_or(&empty);
            controller_json(node, &catalog, version, set)
        })
        .collect())
}

async fn rack(region: &Region, request: &ApiRequest) -> ServiceResult<Node> {
    let node = nodes::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    if !RACK_TYPES.contains(&node.node_type) {
        return Err(ServiceError::not_found("RackController"));
    }
    Ok(node)
}

async fn list(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let filter = nodes::filter_from_params(
        region.store.as_ref(),
        &request.params,
        request.user()?,
        RACK_TYPES.to_vec(),
    )
    .await?;
    // Racks number in the tens: one page holds them all.
    let found = region.store.nodes(&filter, 0, 10_000).await?;
    Ok(ok_json(&render_racks(&region, &found).await?))
}

async fn read(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = rack(&region, &request).await?;
    let mut rendered = render_racks(&region, std::slice::from_ref(&node)).await?;
    Ok(ok_json(&rendered.pop().unwrap_or(Value::Null)))
}

async fn delete(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    if !user.is_superuser {
        return Err(ServiceError::admin_only());
    }
    let node = rack(&region, &request).await?;
    let force = request
        .params
        .get("force")
        .map(|f| maas_domain::parse_bool(f).unwrap_or(false))
        .unwrap_or(false);
    racks::delete(&region, &node, force).await?;
    Ok(no_content())
}

async fn describe_power_types(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let _ = region;
    if !request.user()?.is_superuser {
        return Err(ServiceError::admin_only());
    }
    Ok(ok_json(&maas_power::power_types()))
}

async fn power_parameters(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = rack(&region, &request).await?;
    if !request.user()?.is_superuser {
        return Err(ServiceError::admin_only());
    }
    Ok(ok_json(&node.power_parameters))
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource {
            path: "rackcontrollers/",
            params: &[],
            auth: Some(Handler {
                name: "RackControllersHandler",
                doc: "Manage the collection of all rack controllers in MAAS.",
                actions: vec![
                    rest(
                        Method::GET,
                        "List Nodes visible to the user",
                        vec![
                            opt(
                                "hostname",
                                "String",
                                "Only nodes relating to the node with the matching hostname will be returned. This can be specified multiple times to see multiple nodes.",
                            ),
                            opt(
                                "mac_address",
                                "String",
                                "Only nodes relating to the node owning the specified MAC address will be returned. This can be specified multiple times to see multiple nodes.",
                            ),
                            opt(
                                "id",
                                "String",
                                "Only nodes relating to the nodes with matching system ids will be returned.",
                            ),
                            opt(
                                "zone",
                                "String",
                                "Only nodes relating to the nodes in the zone with matching name will be returned.",
                            ),
                        ],
                        action_fn!(list),
                    ),
                    op(
                        Method::GET,
                        "describe_power_types",
                        "Get power information from rack controllers",
                        vec![],
                        action_fn!(describe_power_types),
                    ),
                ],
            }),
            anon: Some(super::machines::anon_nodes_handler("AnonNodesHandler")),
            admin: false,
            hidden: false,
        },
        Resource {
            path: "rackcontrollers/{system_id}/",
            params: &["system_id"],
            auth: Some(Handler {
                name: "RackControllerHandler",
                doc: "Manage a rack controller.",
                actions: vec![
                    rest(Method::GET, "Read a node", vec![], action_fn!(read)),
                    rest(
                        Method::DELETE,
                        "Delete a rack controller",
                        vec![opt(
                            "force",
                            "Boolean",
                            "Always delete the rack controller even if it is the primary or secondary rack controller of a VLAN with DHCP on.",
                        )],
                        action_fn!(delete),
                    ),
                    op(
                        Method::GET,
                        "power_parameters",
                        "Get power parameters",
                        vec![],
                        action_fn!(power_parameters),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
    ]
}
