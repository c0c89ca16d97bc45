//! Life-cycle operations on `machines/` and `machines/{system_id}/`
//! (api.md §7–8), and script results under `nodes/{system_id}/results/`.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use axum::response::Response;
use maas_domain::{NodeStatus, NodeType};
use maas_store::{Node, NodeFilter, ScriptSet};

use super::render::{self, Catalog};
use super::{Action, ApiRequest, Resource, op, opt, req};
use crate::action_fn;
use crate::error::{ServiceError, ServiceResult};
use crate::http::params::Params;
use crate::http::response::{ok_json, with_type};
use crate::region::Region;
use crate::service::allocation::{self, DeployOptions};
use crate::service::lifecycle::{self as life, Actor, CommissionOptions, ReleaseOptions};
use crate::service::machines as machines_service;
use crate::service::scripts::status;

async fn machine(region: &Region, request: &ApiRequest) -> ServiceResult<Node> {
    machines_service::visible_machine(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await
}

async fn render_machine(region: &Region, node: &Node) -> ServiceResult<Response> {
    let catalog = Catalog::new(region.store.network_catalog().await?);
    Ok(ok_json(&render::machine(node, &catalog)))
}

fn comment(params: &Params) -> Option<&str> {
    params.get("comment").filter(|c| !c.is_empty())
}

fn flag(params: &Params, name: &str) -> ServiceResult<Option<bool>> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => maas_domain::parse_bool(v).map(Some).map_err(|_| {
            ServiceError::field(name, format!("'{v}' value must be either True or False."))
        }),
    }
}

fn names(params: &Params, name: &str) -> Vec<String> {
    params
        .all(name)
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

pub fn commission_options(params: &Params) -> ServiceResult<CommissionOptions> {
    let testing = if params.contains("testing_scripts") {
        let list = names(params, "testing_scripts");
        Some(if list.iter().any(|n| n == "none") {
            Vec::new()
        } else {
            list
        })
    } else {
        None
    };
    Ok(CommissionOptions {
        enable_ssh: flag(params, "enable_ssh")?.unwrap_or(false),
        skip_bmc_config: flag(params, "skip_bmc_config")?.unwrap_or(false),
        skip_networking: flag(params, "skip_networking")?.unwrap_or(false),
        skip_storage: flag(params, "skip_storage")?.unwrap_or(false),
        commissioning_scripts: names(params, "commissioning_scripts"),
        testing_scripts: testing,
        comment: comment(params).map(str::to_owned),
    })
}

async fn commission(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let options = commission_options(&request.params)?;
    let node = life::commission(&region, Actor::User(request.user()?), &node, options).await?;
    render_machine(&region, &node).await
}

async fn abort(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::abort(&region, request.user()?, &node, comment(&request.params)).await?;
    render_machine(&region, &node).await
}

async fn deploy(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let options = DeployOptions::from_params(&request.params)?;
    let node = allocation::deploy(&region, request.user()?, &node, options).await?;
    render_machine(&region, &node).await
}

fn release_options(params: &Params) -> ServiceResult<ReleaseOptions> {
    Ok(ReleaseOptions {
        erase: flag(params, "erase")?,
        secure_erase: flag(params, "secure_erase")?,
        quick_erase: flag(params, "quick_erase")?,
        comment: comment(params).map(str::to_owned),
    })
}

async fn release(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::release(
        &region,
        request.user()?,
        &node,
        release_options(&request.params)?,
    )
    .await?;
    render_machine(&region, &node).await
}

async fn mark_broken(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let why = comment(&request.params).or(request.params.get("error_description"));
    let node = life::mark_broken(&region, request.user()?, &node, why).await?;
    render_machine(&region, &node).await
}

async fn mark_fixed(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::mark_fixed(&region, request.user()?, &node, comment(&request.params)).await?;
    render_machine(&region, &node).await
}

async fn rescue_mode(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::rescue_mode(&region, request.user()?, &node).await?;
    render_machine(&region, &node).await
}

async fn exit_rescue_mode(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::exit_rescue_mode(&region, request.user()?, &node).await?;
    render_machine(&region, &node).await
}

async fn test(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let scripts = request
        .params
        .contains("testing_scripts")
        .then(|| names(&request.params, "testing_scripts"));
    let node = life::test(
        &region,
        request.user()?,
        &node,
        scripts,
        comment(&request.params),
    )
    .await?;
    render_machine(&region, &node).await
}

async fn override_failed_testing(
    region: Arc<Region>,
    request: ApiRequest,
) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node =
        life::override_failed_testing(&region, request.user()?, &node, comment(&request.params))
            .await?;
    render_machine(&region, &node).await
}

async fn lock(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::lock(&region, request.user()?, &node, comment(&request.params)).await?;
    render_machine(&region, &node).await
}

async fn unlock(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let node = life::unlock(&region, request.user()?, &node, comment(&request.params)).await?;
    render_machine(&region, &node).await
}

async fn power_on(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let user = request.user()?;
    let node = if node.status == NodeStatus::Allocated {
        // Powering on an allocated machine deploys it.
        let mut params = Params::new();
        if let Some(data) = request.params.get("user_data") {
            params.push("user_data", data);
        }
        allocation::deploy(&region, user, &node, DeployOptions::from_params(&params)?).await?
    } else {
        life::power_on(
            &region,
            user,
            &node,
            request.params.get("user_data"),
            comment(&request.params),
        )
        .await?
    };
    render_machine(&region, &node).await
}

async fn power_off(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let soft = request.params.get("stop_mode") == Some("soft");
    let node = life::power_off(
        &region,
        request.user()?,
        &node,
        soft,
        comment(&request.params),
    )
    .await?;
    render_machine(&region, &node).await
}

async fn query_power_state(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machine(&region, &request).await?;
    let state = life::query_power_state(&region, &node).await?;
    Ok(ok_json(&serde_json::json!({"state": state.as_str()})))
}

async fn get_token(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    request.admin()?;
    let node = machine(&region, &request).await?;
    match region.store.node_token(node.id).await? {
        Some(token) => Ok(ok_json(&serde_json::json!({
            "token_key": token.token_key,
            "token_secret": token.token_secret.expose(),
            "consumer_key": token.consumer_key,
        }))),
        None => Ok(ok_json(&serde_json::Value::Null)),
    }
}

async fn allocate(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let parsed = allocation::parse_request(&region, &request.params, user).await?;
    let (node, constraints) = allocation::allocate(&region, user, parsed).await?;
    let catalog = Catalog::new(region.store.network_catalog().await?);
    let mut wire = render::machine(&node, &catalog);
    wire.constraints_by_type = Some(constraints);
    Ok(ok_json(&wire))
}

async fn accept(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.admin()?;
    let ids = request.params.all("machines");
    let mut nodes = Vec::new();
    for id in &ids {
        let node = region
            .store
            .node_by_system_id(id)
            .await?
            .filter(|n| n.node_type == NodeType::Machine)
            .ok_or_else(|| ServiceError::bad_request(format!("Unknown machine(s): {id}.")))?;
        nodes.push(node);
    }
    let mut accepted = Vec::new();
    for node in nodes {
        // Accepting Ready or Commissioning machines is a silent no-op.
        if node.status == NodeStatus::New {
            accepted.push(
                life::commission(
                    &region,
                    Actor::User(user),
                    &node,
                    CommissionOptions::default(),
                )
                .await?,
            );
        }
    }
    let catalog = Catalog::new(region.store.network_catalog().await?);
    Ok(ok_json(
        &accepted
            .iter()
            .map(|n| render::machine(n, &catalog))
            .collect::<Vec<_>>(),
    ))
}

async fn accept_all(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.admin()?;
    let filter = NodeFilter {
        node_types: vec![NodeType::Machine],
        statuses: vec![NodeStatus::New],
        ..NodeFilter::default()
    };
    let mut accepted = Vec::new();
    let mut after = 0;
    loop {
        let page = region.store.nodes(&filter, after, 200).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for node in page {
            accepted.push(
                life::commission(
                    &region,
                    Actor::User(user),
                    &node,
                    CommissionOptions::default(),
                )
                .await?,
            );
        }
    }
    let catalog = Catalog::new(region.store.network_catalog().await?);
    Ok(ok_json(
        &accepted
            .iter()
            .map(|n| render::machine(n, &catalog))
            .collect::<Vec<_>>(),
    ))
}

async fn release_many(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let ids = request.params.all("machines");
    if ids.is_empty() {
        return Err(ServiceError::missing("machines"));
    }
    let mut nodes = Vec::new();
    let mut unknown = Vec::new();
    for id in &ids {
        match region
            .store
            .node_by_system_id(id)
            .await?
            .filter(|n| n.node_type == NodeType::Machine)
        {
            Some(node) => nodes.push(node),
            None => unknown.push(*id),
        }
    }
    if !unknown.is_empty() {
        return Err(ServiceError::bad_request(format!(
            "Unknown machine(s): {}.",
            unknown.join(", ")
        )));
    }
    let refused: Vec<String> = nodes
        .iter()
        .filter(|n| {
            !maas_domain::lifecycle::is_releasable(n.status)
                && !matches!(n.status, NodeStatus::Ready | NodeStatus::Releasing)
        })
        .map(|n| format!("{} ('{}')", n.system_id, n.status.label()))
        .collect();
    if !refused.is_empty() {
        return Err(ServiceError::conflict(format!(
            "Machine(s) cannot be released in their current state: {}.",
            refused.join(", ")
        )));
    }
    let options = release_options(&request.params)?;
    let mut released = Vec::new();
    for node in nodes {
        if matches!(node.status, NodeStatus::Ready | NodeStatus::Releasing) {
            continue;
        }
        life::release(&region, user, &node, options.clone()).await?;
        released.push(node.system_id);
    }
    Ok(ok_json(&released))
}

async fn list_allocated(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let user = request.user()?;
    let filter = NodeFilter {
        node_types: vec![NodeType::Machine],
        statuses: vec![NodeStatus::Allocated],
        owners: vec![user.username.clone()],
        system_ids: request
            .params
            .all("id")
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        ..NodeFilter::default()
    };
    Ok(super::machines::stream_nodes(region, filter))
}

/// The machine actions added to the handlers of `machines.rs`.
pub fn machine_actions() -> Vec<Action> {
    let c = || opt("comment", "String", "Optional comment for the event log.");
    vec![
        op(
            Method::POST,
            "commission",
            "Commission a machine",
            vec![
                opt(
                    "enable_ssh",
                    "Int",
                    "Whether to enable SSH for the commissioning environment using the user's SSH key(s). '1' == True, '0' == False.",
                ),
                opt(
                    "skip_bmc_config",
                    "Int",
                    "Whether to skip re-configuration of the BMC for IPMI based machines. '1' == True, '0' == False.",
                ),
                opt(
                    "skip_networking",
                    "Int",
                    "Whether to skip re-configuring the networking on the machine after the commissioning has completed. '1' == True, '0' == False.",
                ),
                opt(
                    "skip_storage",
                    "Int",
                    "Whether to skip re-configuring the storage on the machine after the commissioning has completed. '1' == True, '0' == False.",
                ),
                opt(
                    "commissioning_scripts",
                    "String",
                    "A comma seperated list of commissioning script names and tags to be run. By default all custom commissioning scripts are run. Built-in commissioning scripts always run.",
                ),
                opt(
                    "testing_scripts",
                    "String",
                    "A comma seperated list of testing script names and tags to be run. By default all tests tagged 'commissioning' will be run. Set to 'none' to disable running tests.",
                ),
                c(),
            ],
            action_fn!(commission),
        ),
        op(
            Method::POST,
            "abort",
            "Abort a machine's current operation",
            vec![c()],
            action_fn!(abort),
        ),
        op(
            Method::POST,
            "deploy",
            "Deploy a machine",
            vec![
                opt(
                    "user_data",
                    "String",
                    "If present, this blob of base64-encoded user-data to be made available to the machines through the metadata service.",
                ),
                opt(
                    "distro_series",
                    "String",
                    "If present, this parameter specifies the OS release the machine will use.",
                ),
                opt(
                    "hwe_kernel",
                    "String",
                    "If present, this parameter specified the kernel to be used on the machine.",
                ),
                opt(
                    "agent_name",
                    "String",
                    "An optional agent name to attach to the acquired machine.",
                ),
                opt(
                    "install_kvm",
                    "Boolean",
                    "If true, KVM will be installed on this machine and added to MAAS.",
                ),
                opt(
                    "register_vmhost",
                    "Boolean",
                    "If true, the machine will be registered as a LXD VM host in MAAS.",
                ),
                opt(
                    "ephemeral_deploy",
                    "Boolean",
                    "If true, machine will be deployed ephemerally even if it has disks.",
                ),
                opt(
                    "enable_kernel_crash_dump",
                    "Boolean",
                    "If true, machine will be deployed with the kernel crash dump feature enabled and configured automatically.",
                ),
                opt(
                    "enable_hw_sync",
                    "Boolean",
                    "If true, machine will be deployed with a small agent periodically pushing hardware data to detect any change in devices.",
                ),
                c(),
            ],
            action_fn!(deploy),
        ),
        op(
            Method::POST,
            "release",
            "Release a machine",
            vec![
                c(),
                opt("erase", "Boolean", "Erase the disk when releasing."),
                opt(
                    "secure_erase",
                    "Boolean",
                    "Use the drive's secure erase feature if available.",
                ),
                opt(
                    "quick_erase",
                    "Boolean",
                    "Wipe 2MiB at the start and at the end of the drive to make data recovery inconvenient and unlikely to happen by accident.",
                ),
                opt("force", "Boolean", "Will force the release of a machine."),
            ],
            action_fn!(release),
        ),
        op(
            Method::POST,
            "mark_broken",
            "Mark a machine as Broken",
            vec![c()],
            action_fn!(mark_broken),
        ),
        op(
            Method::POST,
            "mark_fixed",
            "Mark a machine as Fixed",
            vec![c()],
            action_fn!(mark_fixed),
        ),
        op(
            Method::POST,
            "rescue_mode",
            "Enter rescue mode",
            vec![],
            action_fn!(rescue_mode),
        ),
        op(
            Method::POST,
            "exit_rescue_mode",
            "Exit rescue mode",
            vec![],
            action_fn!(exit_rescue_mode),
        ),
        op(
            Method::POST,
            "test",
            "Begin testing process for a machine",
            vec![
                opt(
                    "enable_ssh",
                    "Int",
                    "Whether to enable SSH for the testing environment using the user's SSH key(s).",
                ),
                opt(
                    "testing_scripts",
                    "String",
                    "A comma-separated list of testing script names and tags to be run.",
                ),
                c(),
            ],
            action_fn!(test),
        ),
        op(
            Method::POST,
            "override_failed_testing",
            "Ignore failed tests",
            vec![c()],
            action_fn!(override_failed_testing),
        ),
        op(
            Method::POST,
            "lock",
            "Lock a machine",
            vec![c()],
            action_fn!(lock),
        ),
        op(
            Method::POST,
            "unlock",
            "Unlock a machine",
            vec![c()],
            action_fn!(unlock),
        ),
        op(
            Method::POST,
            "power_on",
            "Turn on a node",
            vec![
                opt(
                    "user_data",
                    "String",
                    "Base64-encoded blob of data to be made available to the nodes through the metadata service.",
                ),
                c(),
            ],
            action_fn!(power_on),
        ),
        op(
            Method::POST,
            "power_off",
            "Power off a node",
            vec![
                opt(
                    "stop_mode",
                    "String",
                    "Power-off mode. If 'soft', perform a soft power down if the node's power type supports it, otherwise perform a hard power off. For all values other than 'soft', and by default, perform a hard power off.",
                ),
                c(),
            ],
            action_fn!(power_off),
        ),
        op(
            Method::GET,
            "query_power_state",
            "Get the power state of a node",
            vec![],
            action_fn!(query_power_state),
        ),
        op(
            Method::GET,
            "get_token",
            "Get a machine token",
            vec![],
            action_fn!(get_token),
        ),
        op(
            Method::GET,
            "details",
            "Get system details",
            vec![],
            action_fn!(details),
        ),
    ]
}

pub fn machines_actions() -> Vec<Action> {
    vec![
        op(
            Method::POST,
            "allocate",
            "Allocate a machine",
            vec![
                opt("name", "String", "Hostname or FQDN of the desired machine."),
                opt("system_id", "String", "system_id of the desired machine."),
                opt(
                    "arch",
                    "String",
                    "Architecture of the returned machine (e.g. 'i386/generic', 'amd64', 'armhf/highbank', etc.).",
                ),
                opt(
                    "cpu_count",
                    "Int",
                    "Minimum number of CPUs a returned machine must have.",
                ),
                opt(
                    "mem",
                    "Int",
                    "The minimum amount of memory (expressed in MB) the returned machine must have.",
                ),
                opt(
                    "tags",
                    "String",
                    "Tags the machine must match in order to be acquired.",
                ),
                opt("not_tags", "String", "Tags the machine must NOT match."),
                opt(
                    "zone",
                    "String",
                    "Physical zone name the machine must be located in.",
                ),
                opt(
                    "not_in_zone",
                    "String",
                    "List of physical zones from which the machine must not be acquired.",
                ),
                opt(
                    "pool",
                    "String",
                    "Resource pool name the machine must belong to.",
                ),
                opt(
                    "not_in_pool",
                    "String",
                    "List of resource pool from which the machine must not be acquired.",
                ),
                opt(
                    "subnets",
                    "String",
                    "Subnets that must be linked to the machine.",
                ),
                opt(
                    "not_subnets",
                    "String",
                    "Subnets that must not be linked to the machine.",
                ),
                opt(
                    "fabrics",
                    "String",
                    "Set of fabrics that the machine must be associated with in order to be acquired.",
                ),
                opt(
                    "not_fabrics",
                    "String",
                    "Fabrics the machine must NOT be associated with in order to be acquired.",
                ),
                opt(
                    "storage",
                    "String",
                    "A list of storage constraint identifiers, in the form: label:size(tag[,tag[,...])][,label:...].",
                ),
                opt(
                    "interfaces",
                    "String",
                    "A labeled constraint map associating constraint labels with interface properties that should be matched.",
                ),
                opt(
                    "agent_name",
                    "String",
                    "An optional agent name to attach to the acquired machine.",
                ),
                opt("comment", "String", "Comment for the event log."),
                opt(
                    "dry_run",
                    "Boolean",
                    "Optional boolean to indicate that the machine should not actually be acquired (this is for support/troubleshooting, or users who want to see which machine would match a constraint, without acquiring a machine). Defaults to False.",
                ),
                opt(
                    "verbose",
                    "Boolean",
                    "Optional boolean to indicate that the user would like additional verbosity in the constraints_by_type field (each constraint will be prefixed by verbose_, and contain the full data structure that indicates which machine(s) matched).",
                ),
            ],
            action_fn!(allocate),
        ),
        op(
            Method::POST,
            "accept",
            "Accept declared machines",
            vec![req(
                "machines",
                "String",
                "A list of system_ids of the machines whose enlistment is to be accepted.",
            )],
            action_fn!(accept),
        ),
        op(
            Method::POST,
            "accept_all",
            "Accept all declared machines",
            vec![],
            action_fn!(accept_all),
        ),
        op(
            Method::POST,
            "release",
            "Release machines",
            vec![
                req(
                    "machines",
                    "String",
                    "A list of system_ids of the machines which are to be released.",
                ),
                opt("comment", "String", "Optional comment for the event log."),
            ],
            action_fn!(release_many),
        ),
        op(
            Method::GET,
            "list_allocated",
            "List allocated",
            vec![opt(
                "id",
                "String",
                "If given, limits the list to these system_ids.",
            )],
            action_fn!(list_allocated),
        ),
    ]
}

/// A tiny BSON writer for `details`: `{"lldp": binary|null, "lshw": binary|null}`.
fn bson_details(lldp: Option<&[u8]>, lshw: Option<&[u8]>) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, value) in [("lldp", lldp), ("lshw", lshw)] {
        match value {
            Some(bytes) => {
                body.push(0x05);
                body.extend_from_slice(name.as_bytes());
                body.push(0);
                body.extend_from_slice(&(bytes.len() as i32).to_le_bytes());
                body.push(0x00);
                body.extend_from_slice(bytes);
            }
            None => {
                body.push(0x0A);
                body.extend_from_slice(name.as_bytes());
                body.push(0);
            }
        }
    }
    let mut doc = ((body.len() + 5) as i32).to_le_bytes().to_vec();
    doc.extend_from_slice(&body);
    doc.push(0);
    doc
}

async fn details(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machines_service::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    let mut lshw = None;
    let mut lldp = None;
    if let Some(set_id) = node.current_commissioning_set_id
        && let Some(set) = region.store.script_set(set_id, true).await?
    {
        for result in set.results {
            match result.name.as_str() {
                "maas-lshw" => lshw = result.stdout.or(result.output),
                "maas-capture-lldpd" => lldp = result.stdout.or(result.output),
                _ => {}
            }
        }
    }
    Ok(with_type(
        StatusCode::OK,
        "application/bson",
        bson_details(lldp.as_deref(), lshw.as_deref()),
    ))
}

fn result_type_name(kind: i64) -> &'static str {
    match kind {
        0 => "Commissioning",
        1 => "Installation",
        2 => "Testing",
        _ => "Release",
    }
}

fn parse_result_type(text: &str) -> Option<i64> {
    match text {
        "commissioning" | "commission" | "0" => Some(0),
        "installation" | "install" | "1" => Some(1),
        "testing" | "test" | "2" => Some(2),
        "release" | "3" => Some(3),
        _ => None,
    }
}

fn rfc2822(millis: Option<i64>) -> serde_json::Value {
    match millis {
        Some(ms) => serde_json::Value::String(crate::timefmt::rfc2822(ms)),
        None => serde_json::Value::Null,
    }
}

fn render_set(set: &ScriptSet, system_id: &str, include_output: bool) -> serde_json::Value {
    use base64::Engine;
    let b64 = |data: &Option<Vec<u8>>| {
        base64::engine::general_purpose::STANDARD.encode(data.as_deref().unwrap_or(&[]))
    };
    let aggregate = if set
        .results
        .iter()
        .any(|r| status::UNFINISHED.contains(&r.status))
    {
        if set.results.iter().any(|r| r.status == status::RUNNING) {
            status::RUNNING
        } else {
            status::PENDING
        }
    } else if set.results.iter().any(|r| status::is_failure(r.status)) {
        status::FAILED
    } else if set.results.is_empty() {
        status::PENDING
    } else {
        status::PASSED
    };
    let results: Vec<serde_json::Value> = set
        .results
        .iter()
        .map(|r| {
            let mut value = serde_json::json!({
                "id": r.id,
                "name": r.name,
                "created": crate::timefmt::rfc2822(r.created),
                "updated": crate::timefmt::rfc2822(r.updated),
                "status": r.status,
                "status_name": status::name(r.status),
                "exit_status": r.exit_status,
                "started": rfc2822(r.started),
                "ended": rfc2822(r.ended),
                "runtime": r.runtime,
                "starttime": r.started.map(|s| s as f64 / 1000.0).unwrap_or(0.0),
                "endtime": r.ended.map(|s| s as f64 / 1000.0).unwrap_or(0.0),
                "estimated_runtime": r.runtime,
                "parameters": serde_json::from_str::<serde_json::Value>(&r.parameters).unwrap_or_else(|_| serde_json::json!({})),
                "script_id": r.script_id,
                "script_revision_id": r.script_id,
                "suppressed": false,
            });
            if include_output {
                value["output"] = b64(&r.output).into();
                value["stdout"] = b64(&r.stdout).into();
                value["stderr"] = b64(&r.stderr).into();
                value["result"] = b64(&r.result).into();
            }
            value
        })
        .collect();
    let started = set.results.iter().filter_map(|r| r.started).min();
    let ended = if aggregate == status::PENDING || aggregate == status::RUNNING {
        None
    } else {
        set.results.iter().filter_map(|r| r.ended).max()
    };
    serde_json::json!({
        "id": set.id,
        "system_id": system_id,
        "type": set.result_type,
        "type_name": result_type_name(set.result_type),
        "last_ping": rfc2822(set.last_ping),
        "status": aggregate,
        "status_name": status::name(aggregate),
        "started": rfc2822(started),
        "ended": rfc2822(ended),
        "runtime": "",
        "suppressed": false,
        "results": results,
        "resource_uri": format!("/MAAS/api/2.0/nodes/{system_id}/results/{}/", set.id),
    })
}

async fn results(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machines_service::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    let wanted = match request.params.get("type").filter(|t| !t.is_empty()) {
        Some(t) => Some(
            parse_result_type(t)
                .ok_or_else(|| ServiceError::field("type", format!("Unknown result type: {t}")))?,
        ),
        None => None,
    };
    let include_output = flag(&request.params, "include_output")?.unwrap_or(false);
    let mut sets = region.store.script_sets(node.id).await?;
    sets.retain(|s| wanted.is_none_or(|w| w == s.result_type));
    if include_output {
        let mut full = Vec::new();
        for set in &sets {
            if let Some(set) = region.store.script_set(set.id, true).await? {
                full.push(set);
            }
        }
        sets = full;
    }
    Ok(ok_json(
        &sets
            .iter()
            .map(|s| render_set(s, &node.system_id, include_output))
            .collect::<Vec<_>>(),
    ))
}

async fn result_set(
    region: &Region,
    node: &Node,
    id: &str,
    with_output: bool,
) -> ServiceResult<ScriptSet> {
    let set_id = match id {
        "current-commissioning" => node.current_commissioning_set_id,
        "current-testing" => node.current_testing_set_id,
        "current-installation" => node.current_installation_set_id,
        other => other.parse::<i64>().ok(),
    };
    let Some(set_id) = set_id else {
        return Err(ServiceError::bad_request(format!(
            "Unknown script set: {id}"
        )));
    };
    region
        .store
        .script_set(set_id, with_output)
        .await?
        .filter(|s| s.node_id == node.id)
        .ok_or_else(|| ServiceError::not_found("ScriptSet"))
}

async fn result(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machines_service::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    let include_output = flag(&request.params, "include_output")?.unwrap_or(false);
    let set = result_set(&region, &node, request.path_param("id")?, include_output).await?;
    Ok(ok_json(&render_set(&set, &node.system_id, include_output)))
}

async fn download_result(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    let node = machines_service::visible_node(
        region.store.as_ref(),
        request.user()?,
        request.path_param("system_id")?,
    )
    .await?;
    let set = result_set(&region, &node, request.path_param("id")?, true).await?;
    let which = request.params.get("output").unwrap_or("combined");
    let filters: Vec<&str> = request
        .params
        .all("filters")
        .iter()
        .flat_map(|f| f.split(','))
        .collect();
    let mut body = Vec::new();
    for result in set
        .results
        .iter()
        .filter(|r| filters.is_empty() || filters.contains(&r.name.as_str()))
    {
        let part = match which {
            "stdout" => &result.stdout,
            "stderr" => &result.stderr,
            "result" => &result.result,
            _ => &result.output,
        };
        if set.results.len() > 1 && filters.len() != 1 {
            body.extend_from_slice(format!("{} {}\n", result.name, "-".repeat(40)).as_bytes());
        }
        body.extend_from_slice(part.as_deref().unwrap_or(&[]));
    }
    Ok(with_type(StatusCode::OK, "application/binary", body))
}

async fn legacy_results(region: Arc<Region>, request: ApiRequest) -> ServiceResult<Response> {
    use base64::Engine;
    let user = request.user()?;
    let ids: Vec<String> = request
        .params
        .all("system_id")
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let names: Vec<&str> = request.params.all("name");
    let kind = request
        .params
        .get("result_type")
        .and_then(|t| t.parse::<i64>().ok());
    let filter = NodeFilter {
        system_ids: ids,
        visible_to: (!user.is_superuser).then_some(user.id),
        ..NodeFilter::default()
    };
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let nodes = region.store.nodes(&filter, after, 100).await?;
        let Some(last) = nodes.last() else { break };
        after = last.id;
        for node in nodes {
            for set_id in [
                node.current_commissioning_set_id,
                node.current_testing_set_id,
                node.current_installation_set_id,
            ]
            .into_iter()
            .flatten()
            {
                let Some(set) = region.store.script_set(set_id, true).await? else {
                    continue;
                };
                if kind.is_some_and(|k| k != set.result_type) {
                    continue;
                }
                for r in set.results.iter().filter(|r| {
                    [
                        status::PASSED,
                        status::FAILED,
                        status::TIMEDOUT,
                        status::ABORTED,
                    ]
                    .contains(&r.status)
                }) {
                    if !names.is_empty() && !names.contains(&r.name.as_str()) {
                        continue;
                    }
                    let data = r
                        .stdout
                        .as_ref()
                        .filter(|s| !s.is_empty())
                        .or(r.output.as_ref());
                    let entry = |name: String, bytes: &[u8]| {
                        serde_json::json!({
                            "created": crate::timefmt::iso(r.created),
                            "updated": crate::timefmt::iso(r.updated),
                            "id": r.id,
                            "name": name,
                            "script_result": r.exit_status.unwrap_or(0),
                            "result_type": set.result_type,
                            "node": {"system_id": node.system_id},
                            "data": base64::engine::general_purpose::STANDARD.encode(bytes),
                            "resource_uri": "/MAAS/api/2.0/commissioning-scripts/",
                        })
                    };
                    out.push(entry(
                        r.name.clone(),
                        data.map(Vec::as_slice).unwrap_or(&[]),
                    ));
                    if let Some(err) = r.stderr.as_ref().filter(|e| !e.is_empty()) {
                        out.push(entry(format!("{}.err", r.name), err));
                    }
                }
            }
        }
    }
    Ok(ok_json(&out))
}

/// Result resources and the legacy commissioning-results view.
pub fn result_resources() -> Vec<Resource> {
    let results_handler = || super::Handler {
        name: "NodeResultsHandler",
        doc: "Read the collection of commissioning script results.",
        actions: vec![super::rest(
            Method::GET,
            "Read the collection of commissioning script results",
            vec![
                opt(
                    "system_id",
                    "String",
                    "An optional list of system ids. Only the results related to the nodes with these system ids will be returned.",
                ),
                opt(
                    "name",
                    "String",
                    "An optional list of names. Only the results with the specified names will be returned.",
                ),
                opt(
                    "result_type",
                    "String",
                    "An optional result_type. If supplied, only the results for the specified type will be returned.",
                ),
            ],
            action_fn!(legacy_results),
        )],
    };
    vec![
        Resource {
            path: "nodes/{system_id}/results/",
            params: &["system_id"],
            auth: Some(super::Handler {
                name: "NodeScriptResultsHandler",
                doc: "Manage node script results.",
                actions: vec![super::rest(
                    Method::GET,
                    "Return script results",
                    vec![
                        opt(
                            "type",
                            "String",
                            "Only return scripts with the given type. This can be commissioning, testing, installion or release. Defaults to showing all.",
                        ),
                        opt(
                            "include_output",
                            "String",
                            "Include base64 encoded output from the script. Note that any value of include_output will include the encoded output from the script.",
                        ),
                    ],
                    action_fn!(results),
                )],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "nodes/{system_id}/results/{id}/",
            params: &["system_id", "id"],
            auth: Some(super::Handler {
                name: "NodeScriptResultHandler",
                doc: "Manage node script results.",
                actions: vec![
                    super::rest(
                        Method::GET,
                        "Get specific script result",
                        vec![opt(
                            "include_output",
                            "String",
                            "Include the base64 encoded output from the script if any value for include_output is given.",
                        )],
                        action_fn!(result),
                    ),
                    op(
                        Method::GET,
                        "download",
                        "Download script results",
                        vec![
                            opt(
                                "output",
                                "String",
                                "Can be either \"combined\", \"stdout\", \"stderr\", or \"all\". By default only the combined output is returned.",
                            ),
                            opt(
                                "filters",
                                "String",
                                "A comma seperated list to show only results that ran with a script name, tag, or id.",
                            ),
                        ],
                        action_fn!(download_result),
                    ),
                ],
            }),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "installation-results/",
            params: &[],
            auth: Some(results_handler()),
            anon: None,
            admin: false,
            hidden: false,
        },
        Resource {
            path: "commissioning-results/",
            params: &[],
            auth: Some(results_handler()),
            anon: None,
            admin: false,
            hidden: true,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bson_layout() {
        let doc = bson_details(None, Some(b"<xml/>"));
        let len = i32::from_le_bytes([doc[0], doc[1], doc[2], doc[3]]) as usize;
        assert_eq!(len, doc.len());
        assert_eq!(*doc.last().unwrap(), 0);
        assert_eq!(doc[4], 0x0A, "lldp is null");
        assert_eq!(&doc[5..10], b"lldp\0");
        assert_eq!(doc[10], 0x05, "lshw is binary");
    }
}
