//! `machines/`, `machines/{system_id}/`, `nodes/` and `nodes/{system_id}/`.
//!
//! Listings stream: machines are read from the store a page at a time and
//! written to the response as they are rendered, so a 10,000-machine
//! listing holds a few pages in memory, not the whole answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use maas_domain::{MacAddress, NodeStatus, NodeType};
use maas_store::{Node, NodeFilter, NodeUpdate};

use super::render::{self, Catalog};
use super::{ApiRequest, Handler, Resource, op, opt, req, rest};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::response::{JSON, no_content, ok_json, with_type};
use crate::region::Region;
use crate::service::machines::{self as service, CreateMachine, Creator};

/// Machines rendered per store page and per streamed chunk.
const PAGE: i64 = 100;

fn render_page(out: &mut Vec<u8>, nodes: &[Node], catalog: &Catalog, first: &mut bool) {
    for node in nodes {
        out.extend_from_slice(if *first { b"\n    " } else { b",\n    " });
        *first = false;
        let machine = render::machine(node, catalog);
        if let Err(error) = maas_api_types::pretty::write_at(out, &machine, 1) {
            // Serialising plain structs into a Vec can't fail; log if it ever does.
            tracing::error!(system_id = %node.system_id, %error, "machine failed to serialise");
        }
    }
}

/// Streams every node matching `filter` as a JSON array.
pub fn stream_nodes(region: Arc<Region>, filter: NodeFilter) -> Response {
    let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    tokio::spawn(async move {
        let result: ServiceResult<()> = async {
            let catalog = Catalog::new(region.store.network_catalog().await?);
            let mut after = 0;
            let mut first = true;
            // Pages render to about the same size: start each buffer at the
            // last one's size so it never grows by copying.
            let mut capacity = 64 * 1024;
            let mut out = Vec::with_capacity(capacity);
            out.push(b'[');
            // The next page is read while this one renders (two cores' worth of work).
            let fetch = |after: i64| {
                let store = region.store.clone();
                let filter = filter.clone();
                tokio::spawn(async move { store.nodes(&filter, after, PAGE).await })
            };
            let mut next = Some(fetch(after));
            while let Some(pending) = next.take() {
                let nodes = pending.await.map_err(|e| {
                    ServiceError::bad_request(format!("listing task failed: {e}"))
                })??;
                let Some(last) = nodes.last() else { break };
                after = last.id;
                let more = nodes.len() == PAGE as usize;
                if more {
                    next = Some(fetch(after));
                }
                render_page(&mut out, &nodes, &catalog, &mut first);
                if !more {
                    break;
                }
                capacity = capacity.max(out.len() + out.len() / 8);
                let chunk = Bytes::from(std::mem::replace(&mut out, Vec::with_capacity(capacity)));
                if sender.send(Ok(chunk)).await.is_err() {
                    // The client went away; stop reading.
                    return Ok(());
                }
            }
            out.extend_from_slice(if first { b"]" } else { b"\n]" });
            let _ = sender.send(Ok(Bytes::from(out))).await;
            Ok(())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(%error, "machine listing failed part way");
            // Break the body so the client sees a failed transfer, not a short list.
            let _ = sender
                .send(Err(std::io::Error::other("listing failed")))
                .await;
        }
    });
    let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|item| (item, receiver))
    });
    with_type(StatusCode::OK, JSON, crate::http::body_from_stream(stream))
}

async fn list_machines(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let filter = service::filter_from_params(
        region.store.as_ref(),
        &request.params,
        user,
        vec![NodeType::Machine],
    )
    .await?;
    Ok(stream_nodes(region, filter))
}

async fn list_nodes(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let filter =
        service::filter_from_params(region.store.as_ref(), &request.params, user, Vec::new())
            .await?;
    Ok(stream_nodes(region, filter))
}

async fn render_one(region: &Region, node: &Node) -> ServiceResult<Response> {
    let catalog = Catalog::new(region.store.network_catalog().await?);
    Ok(ok_json(&render::machine(node, &catalog)))
}

async fn reread(region: &Region, system_id: &str) -> ServiceResult<Node> {
    region
        .store
        .node_by_system_id(system_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Machine"))
}

async fn create_machine(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let input = CreateMachine::from_params(&request.params)?;
    let commission = input.commission.unwrap_or(true)
        && !input.deployed
        && user.is_superuser
        && !input.power_type.is_empty();
    let node = service::create(
        region.store.as_ref(),
        Creator::User(user),
        input,
        region.now(),
    )
    .await?;
    let node = if commission {
        let options = crate::api::actions::commission_options(&request.params)?;
        crate::service::lifecycle::commission(
            &region,
            crate::service::lifecycle::Actor::User(user),
            &node,
            options,
        )
        .await?
    } else {
        node
    };
    render_one(&region, &node).await
}

async fn enlist(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let input = CreateMachine::from_params(&request.params)?;
    let commission = input.commission.unwrap_or(false);
    let node = service::create(
        region.store.as_ref(),
        Creator::Anonymous,
        input,
        region.now(),
    )
    .await?;
    let node = if commission && node.status == NodeStatus::New {
        crate::service::lifecycle::start_enlistment(&region, &node).await?
    } else {
        node
    };
    Ok(ok_json(&render::anon_machine(&node)))
}

async fn anon_accept(_region: Arc<Region>, _request: ApiRequest) -> ServiceResult<Response> {
    Err(ServiceError::Unauthorized(
        "You must be logged in to accept machines.".into(),
    ))
}

async fn mac_param(request: &ApiRequest) -> ServiceResult<String> {
    let mac = request
        .params
        .get("mac_address")
        .filter(|m| !m.is_empty())
        .ok_or_else(|| ServiceError::missing("mac_address"))?;
    mac.parse::<MacAddress>()
        .map(|m| m.to_string())
        .map_err(|_| {
            ServiceError::field(
                "mac_address",
                format!("'{mac}' is not a valid MAC address."),
            )
        })
}

async fn is_registered(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let mac = mac_param(&request).await?;
    let node = region.store.node_by_mac(&mac).await?;
    Ok(ok_json(
        &node.is_some_and(|n| n.status != NodeStatus::Retired),
    ))
}

async fn is_action_in_progress(
    region: Arc<Region>,
    request: ApiRequest,
) -> ServiceResult<Response> {
    let mac = mac_param(&request).await?;
    let node = region.store.node_by_mac(&mac).await?;
    Ok(ok_json(&node.is_some_and(|n| {
        matches!(n.status, NodeStatus::Commissioning | NodeStatus::Deploying)
    })))
}

async fn power_parameters_all(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    let ids: Vec<String> = request
        .params
        .all("id")
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let filter = NodeFilter {
        node_types: vec![NodeType::Machine],
        system_ids: ids,
        ..NodeFilter::default()
    };
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut after = 0;
    loop {
        let nodes = region.store.nodes(&filter, after, 500).await?;
        let Some(last) = nodes.last() else { break };
        after = last.id;
        for node in nodes {
            out.insert(node.system_id, node.power_parameters);
        }
    }
    Ok(ok_json(&out))
}

async fn set_zone(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    let zone_name = request
        .params
        .get("zone")
        .filter(|z| !z.is_empty())
        .ok_or_else(|| ServiceError::missing("zone"))?;
    let zone = region.store.zone_by_name(zone_name).await?.ok_or_else(|| {
        ServiceError::field(
            "zone",
            format!("Select a valid choice. {zone_name} is not one of the available choices."),
        )
    })?;
    let ids = request.params.all("nodes");
    if ids.is_empty() {
        return Err(ServiceError::missing("nodes"));
    }
    let now = region.now();
    for system_id in ids {
        let node = region
            .store
            .node_by_system_id(system_id)
            .await?
            .ok_or_else(|| {
                ServiceError::field("nodes", format!("Unknown node(s): {system_id}."))
            })?;
        region
            .store
            .update_node(
                node.id,
                NodeUpdate {
                    zone_id: Some(zone.id),
                    updated: now,
                    ..NodeUpdate::default()
                },
            )
            .await?;
    }
    Ok(ok_json(&serde_json::Value::Null))
}

async fn read_machine(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = service::visible_machine(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    render_one(&region, &node).await
}

async fn update_machine(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let node = service::visible_machine(
        region.store.as_ref(),
        user,
        request.path_param("system_id")?,
    )
    .await?;
    service::update(
        region.store.as_ref(),
        user,
        &node,
        &request.params,
        region.now(),
    )
    .await?;
    let node = reread(&region, &node.system_id).await?;
    render_one(&region, &node).await
}

async fn delete_machine(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let node = service::visible_machine(
        region.store.as_ref(),
        user,
        request.path_param("system_id")?,
    )
    .await?;
    service::delete(region.store.as_ref(), user, &node).await?;
    Ok(no_content())
}

async fn set_owner_data(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let node = service::visible_machine(
        region.store.as_ref(),
        user,
        request.path_param("system_id")?,
    )
    .await?;
    service::set_owner_data(
        region.store.as_ref(),
        user,
        &node,
        &request.params,
        region.now(),
    )
    .await?;
    let node = reread(&region, &node.system_id).await?;
    render_one(&region, &node).await
}

async fn machine_power_parameters(
    region: Arc<Region>,
    request: ApiRequest,
) -> ServiceResult<Response> {
    request.admin()?;
    let node = service::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    Ok(ok_json(&node.power_parameters))
}

async fn read_node(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = service::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    render_one(&region, &node).await
}

async fn delete_node(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let node = service::visible_node(
        region.store.as_ref(),
        user,
        request.path_param("system_id")?,
    )
    .await?;
    service::delete(region.store.as_ref(), user, &node).await?;
    Ok(no_content())
}

fn create_params() -> Vec<super::ParamDoc> {
    vec![
        req(
            "architecture",
            "String",
            "A string containing the architecture type of the machine. (For example, \"i386\", or \"amd64\".) To determine the supported architectures, use the boot-resources endpoint.",
        ),
        opt(
            "min_hwe_kernel",
            "String",
            "A string containing the minimum kernel version allowed to be ran on this machine.",
        ),
        opt(
            "subarchitecture",
            "String",
            "A string containing the subarchitecture type of the machine. (For example, \"generic\" or \"hwe-t\".)",
        ),
        req(
            "mac_addresses",
            "String",
            "One or more MAC addresses for the machine. To specify more than one MAC address, the parameter must be specified twice.",
        ),
        opt(
            "hostname",
            "String",
            "A hostname. If not given, one will be generated.",
        ),
        opt("description", "String", "A optional description."),
        opt(
            "domain",
            "String",
            "The domain of the machine. If not given the default domain is used.",
        ),
        opt(
            "power_type",
            "String",
            "A power management type, if applicable (e.g. \"virsh\", \"ipmi\").",
        ),
        opt(
            "power_parameters",
            "String",
            "Power parameters as a JSON object; or give each as power_parameters_<key>.",
        ),
        opt(
            "commission",
            "Boolean",
            "Request the newly created machine to be created with status set to COMMISSIONING. Machines will wait for COMMISSIONING results and not time out.",
        ),
        opt(
            "deployed",
            "Boolean",
            "Request the newly created machine to be created with status set to DEPLOYED. Setting this to true implies commissioning=false, meaning that the machine won't go through the commissioning process.",
        ),
        opt(
            "is_dpu",
            "Boolean",
            "Whether the machine is a DPU or not. If not provided, the machine is considered a non-DPU machine.",
        ),
    ]
}

fn filter_params() -> Vec<super::ParamDoc> {
    vec![
        opt(
            "hostname",
            "String",
            "Only nodes relating to the node with the matching hostname will be returned. This can be specified multiple times to see multiple nodes.",
        ),
        opt(
            "cpu_count",
            "Int",
            "Only nodes with the specified minimum number of CPUs will be included.",
        ),
        opt(
            "mem",
            "String",
            "Only nodes with the specified minimum amount of RAM (in MiB) will be included.",
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
            "domain",
            "String",
            "Only nodes relating to the nodes in the domain will be returned.",
        ),
        opt(
            "zone",
            "String",
            "Only nodes relating to the nodes in the zone will be returned.",
        ),
        opt(
            "pool",
            "String",
            "Only nodes belonging to the pool will be returned.",
        ),
        opt(
            "agent_name",
            "String",
            "Only nodes relating to the nodes with matching agent names will be returned.",
        ),
        opt(
            "fabrics",
            "String",
            "Only nodes with interfaces in specified fabrics will be returned.",
        ),
        opt(
            "not_fabrics",
            "String",
            "Only nodes with interfaces not in specified fabrics will be returned.",
        ),
        opt(
            "subnets",
            "String",
            "Only nodes with interfaces in specified subnets will be returned.",
        ),
        opt(
            "not_subnets",
            "String",
            "Only nodes with interfaces not in specified subnets will be returned.",
        ),
        opt(
            "tags",
            "String",
            "Only nodes with the specified tags will be returned.",
        ),
        opt(
            "not_tags",
            "String",
            "Only nodes without the specified tags will be returned.",
        ),
        opt(
            "arch",
            "String",
            "Only nodes with the specified architecture will be returned.",
        ),
        opt(
            "not_arch",
            "String",
            "Only nodes without the specified architecture will be returned.",
        ),
        opt(
            "status",
            "String",
            "Only nodes with the specified status will be returned.",
        ),
        opt(
            "not_status",
            "String",
            "Only nodes without the specified status will be returned.",
        ),
        opt(
            "simple_status",
            "String",
            "Only nodes with the specified simplified status will be returned.",
        ),
        opt(
            "owner",
            "String",
            "Only nodes owned by the specified user will be returned.",
        ),
        opt(
            "not_owner",
            "String",
            "Only nodes not owned by the specified user will be returned.",
        ),
        opt(
            "power_state",
            "String",
            "Only nodes with the specified power state will be returned.",
        ),
        opt(
            "not_in_zone",
            "String",
            "Only nodes not in the specified zones will be returned.",
        ),
        opt(
            "not_in_pool",
            "String",
            "Only nodes not in the specified pools will be returned.",
        ),
        opt(
            "deployment_target",
            "String",
            "Only nodes deployed to the given target (memory or disk) will be returned.",
        ),
    ]
}

fn update_params() -> Vec<super::ParamDoc> {
    vec![
        opt("hostname", "String", "The new hostname for this machine."),
        opt(
            "description",
            "String",
            "The new description for this machine.",
        ),
        opt(
            "domain",
            "String",
            "The domain for this machine. If not given the default domain is used.",
        ),
        opt(
            "architecture",
            "String",
            "The new architecture for this machine.",
        ),
        opt(
            "min_hwe_kernel",
            "String",
            "A string containing the minimum kernel version allowed to be ran on this machine.",
        ),
        opt(
            "power_type",
            "String",
            "The new power type for this machine. If you use the default value, power_parameters will be set to the empty string.",
        ),
        opt(
            "power_parameters_skip_check",
            "Boolean",
            "Whether or not the new power parameters for this machine should be checked against the expected power parameters for the machine's power type ('true' or 'false').",
        ),
        opt(
            "pool",
            "String",
            "The resource pool to which the machine should belong.",
        ),
        opt(
            "zone",
            "String",
            "Name of a valid physical zone in which to place this machine.",
        ),
        opt(
            "swap_size",
            "String",
            "Specifies the size of the swap file, in bytes. Field accept K, M, G and T suffixes for values expressed respectively in kilobytes, megabytes, gigabytes and terabytes.",
        ),
        opt(
            "disable_ipv4",
            "Boolean",
            "Deprecated. If specified, must be false.",
        ),
        opt(
            "cpu_count",
            "Int",
            "The amount of CPU cores the machine has.",
        ),
        opt(
            "memory",
            "String",
            "How much memory the machine has. Field accept K, M, G and T suffixes for values expressed respectively in kilobytes, megabytes, gigabytes and terabytes.",
        ),
    ]
}

fn owner_data_params() -> Vec<super::ParamDoc> {
    vec![opt(
        "key",
        "String",
        "Each key=value pair sets a key; an empty value removes the key.",
    )]
}

pub(super) fn anon_nodes_handler(name: &'static str) -> Handler {
    Handler {
        name,
        doc: "Anonymous access to nodes.",
        actions: vec![
            op(
                Method::GET,
                "is_registered",
                "MAC address registered",
                vec![req(
                    "mac_address",
                    "URL String",
                    "The MAC address to be checked.",
                )],
                action_fn!(is_registered),
            ),
            op(
                Method::GET,
                "is_action_in_progress",
                "Check if a machine is commissioning or deploying",
                vec![req(
                    "mac_address",
                    "URL String",
                    "The MAC address to be checked.",
                )],
                action_fn!(is_action_in_progress),
            ),
        ],
    }
}

pub fn resources() -> Vec<Resource> {
    vec![
        Resource {
            path: "machines/",
            params: &[],
            auth: Some(Handler {
                name: "MachinesHandler",
                doc: "Manage the collection of all the machines in the MAAS.",
                actions: vec![
                    rest(
                        Method::GET,
                        "List Nodes visible to the user",
                        filter_params(),
                        action_fn!(list_machines),
                    ),
                    rest(
                        Method::POST,
                        "Create a new machine",
                        create_params(),
                        action_fn!(create_machine),
                    ),
                    op(
                        Method::GET,
                        "is_registered",
                        "MAC address registered",
                        vec![req(
                            "mac_address",
                            "URL String",
                            "The MAC address to be checked.",
                        )],
                        action_fn!(is_registered),
                    ),
                    op(
                        Method::GET,
                        "power_parameters",
                        "Get power parameters",
                        vec![opt(
                            "id",
                            "String",
                            "A system ID. To request more than one machine, provide multiple id arguments in the request. E.g. /machines/op-power_parameters?id=abc123&id=def456",
                        )],
                        action_fn!(power_parameters_all),
                    ),
                    op(
                        Method::POST,
                        "set_zone",
                        "Assign nodes to a zone",
                        vec![
                            req("zone", "String", "Zone name."),
                            req(
                                "nodes",
                                "String",
                                "system_ids of the nodes whose zones are to be set.",
                            ),
                        ],
                        action_fn!(set_zone),
                    ),
                ],
            }),
            anon: Some(Handler {
                name: "AnonMachinesHandler",
                doc: "Anonymous access to Machines.",
                actions: vec![
                    rest(
                        Method::POST,
                        "Create a new Machine",
                        create_params(),
                        action_fn!(enlist),
                    ),
                    op(
                        Method::POST,
                        "accept",
                        "Accept a machine's enlistment",
                        vec![],
                        action_fn!(anon_accept),
                    ),
                    op(
                        Method::GET,
                        "is_registered",
                        "MAC address registered",
                        vec![req(
                            "mac_address",
                            "URL String",
                            "The MAC address to be checked.",
                        )],
                        action_fn!(is_registered),
                    ),
                    op(
                        Method::GET,
                        "is_action_in_progress",
                        "Check if a machine is commissioning or deploying",
                        vec![req(
                            "mac_address",
                            "URL String",
                            "The MAC address to be checked.",
                        )],
                        action_fn!(is_action_in_progress),
                    ),
                ],
            }),
            admin: false,
            hidden: false,
        },
        Resource {
            path: "machines/{system_id}/",
            params: &["system_id"],
            auth: Some(Handler {
                name: "MachineHandler",
                doc: "Manage an individual machine.\n\nA machine is identified by its system_id.",
                actions: vec![
                    rest(Method::GET, "Read a node", vec![], action_fn!(read_machine)),
                    rest(
                        Method::PUT,
                        "Update a machine",
                        update_params(),
                        action_fn!(update_machine),
                    ),
                    rest(
                        Method::DELETE,
                        "Delete a machine",
                        vec![],
                        action_fn!(delete_machine),
                    ),
                    op(
                        Method::POST,
                        "set_owner_data",
                        "Deprecated, use set-workload-annotations",
                        owner_data_params(),
                        action_fn!(set_owner_data),
                    ),
                    op(
                        Method::POST,
                        "set_workload_annotations",
                        "Set key=value data",
                        owner_data_params(),
                        action_fn!(set_owner_data),
                    ),
                    op(
                        Method::GET,
                        "power_parameters",
                        "Get power parameters",
                        vec![],
                        action_fn!(machine_power_parameters),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "nodes/",
            params: &[],
            auth: Some(Handler {
                name: "NodesHandler",
                doc: "Manage the collection of all the nodes in the MAAS.",
                actions: vec![
                    rest(
                        Method::GET,
                        "List Nodes visible to the user",
                        filter_params(),
                        action_fn!(list_nodes),
                    ),
                    op(
                        Method::GET,
                        "is_registered",
                        "MAC address registered",
                        vec![req(
                            "mac_address",
                            "URL String",
                            "The MAC address to be checked.",
                        )],
                        action_fn!(is_registered),
                    ),
                    op(
                        Method::POST,
                        "set_zone",
                        "Assign nodes to a zone",
                        vec![
                            req("zone", "String", "Zone name."),
                            req(
                                "nodes",
                                "String",
                                "system_ids of the nodes whose zones are to be set.",
                            ),
                        ],
                        action_fn!(set_zone),
                    ),
                ],
            }),
            anon: Some(anon_nodes_handler("AnonNodesHandler")),
            admin: false,
            hidden: false,
        },
        Resource {
            path: "nodes/{system_id}/",
            params: &["system_id"],
            auth: Some(Handler {
                name: "NodeHandler",
                doc: "Manage an individual Node.\n\nThe Node is identified by its system_id.",
                actions: vec![
                    rest(Method::GET, "Read a node", vec![], action_fn!(read_node)),
                    rest(
                        Method::DELETE,
                        "Delete a node",
                        vec![],
                        action_fn!(delete_node),
                    ),
                    op(
                        Method::GET,
                        "power_parameters",
                        "Get power parameters",
                        vec![],
                        action_fn!(machine_power_parameters),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
    ]
}
