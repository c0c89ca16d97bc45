//! The metadata service's rules (provisioning.md §2): node credentials and
//! preseeds, user-data selection, `signal` from the script runner, the
//! status webhook, and netboot switching.

use std::sync::Arc;

use base64::Engine;
use maas_domain::lifecycle;
use maas_domain::{NodeStatus, NodeType};
use maas_store::{
    EventLevel, Millis, NewScriptResult, Node, NodeToken, NodeUpdate, ScriptResult,
    ScriptResultUpdate, Secret,
};

use crate::credentials::random_key;
use crate::error::{ServiceError, ServiceResult};
use crate::http::params::{FilePart, Params};
use crate::region::Region;
use crate::service::inventory;
use crate::service::lifecycle::{self as life, Actor, Change};
use crate::service::scripts::{self, status};

/// The node's metadata credentials, made on first need.
pub async fn node_token(region: &Region, node: &Node) -> ServiceResult<NodeToken> {
    if let Some(token) = region.store.node_token(node.id).await? {
        return Ok(token);
    }
    let token = NodeToken {
        node_id: node.id,
        consumer_key: random_key(18),
        token_key: random_key(18),
        token_secret: Secret::new(random_key(32)),
    };
    region
        .store
        .set_node_token(token.clone(), region.now())
        .await?;
    Ok(token)
}

fn yaml_string(text: &str) -> String {
    // JSON strings are valid YAML scalars.
    serde_json::Value::String(text.to_owned()).to_string()
}

/// The preseed of `by-id/<system_id>/?op=get_preseed`: cloud-config with the
/// MAAS datasource and the node's credentials, status reporting to the
/// webhook, and power-off when the environment is done.
pub async fn preseed(region: &Region, node: &Node, base_url: &str) -> ServiceResult<String> {
    let token = node_token(region, node).await?;
    // A deployment boots the installer: curtin's metadata URL, and a reboot into the
    // installed system at the end (§8.1 step 4).
    let deploying = node.status == NodeStatus::Deploying && !node.ephemeral_deploy;
    let metadata_url = if deploying {
        format!("{base_url}/MAAS/metadata/curtin/")
    } else {
        format!("{base_url}/MAAS/metadata/")
    };
    let power_mode = if deploying { "reboot" } else { "poweroff" };
    let (ck, tk, ts) = (
        yaml_string(&token.consumer_key),
        yaml_string(&token.token_key),
        yaml_string(token.token_secret.expose()),
    );
    Ok(format!(
        "#cloud-config\n\
         datasource:\n  MAAS:\n    consumer_key: {ck}\n    metadata_url: {url}\n    token_key: {tk}\n    token_secret: {ts}\n\
         reporting:\n  maas:\n    consumer_key: {ck}\n    endpoint: {status}\n    token_key: {tk}\n    token_secret: {ts}\n    type: webhook\n\
         power_state:\n  condition: test ! -e /tmp/block-poweroff\n  delay: now\n  mode: {power_mode}\n  timeout: 1800\n",
        url = yaml_string(&metadata_url),
        status = yaml_string(&format!(
            "{base_url}/MAAS/metadata/status/{}",
            node.system_id
        )),
    ))
}

/// The enlistment preseed: the MAAS datasource without credentials.
pub fn enlist_preseed(base_url: &str) -> String {
    format!(
        "#cloud-config\n\
         datasource:\n  MAAS:\n    metadata_url: {url}\n\
         packages: [python3-yaml, python3-oauthlib]\n\
         power_state:\n  condition: test ! -e /tmp/block-poweroff\n  delay: now\n  mode: poweroff\n  timeout: 1800\n",
        url = yaml_string(&format!("{base_url}/MAAS/metadata/"))
    )
}

/// The user data of the ephemeral environment: a shell script (cloud-init
/// runs it in MAAS's Ubuntu images; our own environment runs it directly)
/// that starts the machine agent, fetching it from the region when the
/// environment doesn't carry one.
pub fn ephemeral_user_data(base_url: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # MAAS ephemeral environment: run the scripts the region has queued for this machine.\n\
         set -e\n\
         agent=$(command -v maas-agent || true)\n\
         if [ -z \"$agent\" ]; then\n\
         \x20 arch=$(dpkg --print-architecture 2>/dev/null || uname -m)\n\
         \x20 agent=/tmp/maas-agent\n\
         \x20 wget -q -O \"$agent\" \"{base_url}/MAAS/machine-resources/$arch\"\n\
         \x20 chmod +x \"$agent\"\n\
         fi\n\
         exec \"$agent\" run --metadata-url \"{base_url}/MAAS/metadata/\"\n"
    )
}

/// Decodes stored user data that is base64 (with or without whitespace).
pub fn decode_user_data(stored: &str) -> Vec<u8> {
    let compact: String = stored.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .unwrap_or_else(|_| stored.as_bytes().to_vec())
}

/// `GET <ver>/user-data`. The deployed OS fetching its user data is what
/// ends a deployment. `curtin` selects the installer's path, which always
/// gets the ephemeral data and has no side effect.
pub async fn user_data(
    region: &Region,
    node: &Node,
    base_url: &str,
    curtin: bool,
) -> ServiceResult<Option<Vec<u8>>> {
    if !curtin && node.status == NodeStatus::Deploying {
        let deployed = life::transition(
            region,
            node,
            NodeStatus::Deployed,
            Change {
                expires: Some(None),
                description: format!("deployed {}/{}", node.osystem, node.distro_series),
                ..Change::default()
            },
            Actor::System,
        )
        .await?;
        life::event(
            region,
            &deployed,
            "Image Deployed",
            &format!(
                "deployed {}/{}/{}",
                node.osystem,
                node.distro_series,
                node.architecture.as_deref().unwrap_or("")
            ),
            EventLevel::Info,
            Actor::System,
            false,
        )
        .await?;
        return Ok(node.user_data.as_deref().map(decode_user_data));
    }
    if !curtin && node.status == NodeStatus::Deployed {
        return Ok(node.user_data.as_deref().map(decode_user_data));
    }
    if node.status == NodeStatus::Commissioning {
        life::event(
            region,
            node,
            "Gathering information",
            "",
            EventLevel::Info,
            Actor::System,
            true,
        )
        .await?;
    }
    Ok(Some(ephemeral_user_data(base_url).into_bytes()))
}

/// Signal statuses the script runner sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalStatus {
    Ok,
    Failed,
    Working,
    Commissioning,
    Testing,
    TimedOut,
    Installing,
    ApplyingNetconf,
    Releasing,
    Deploying,
}

impl SignalStatus {
    pub fn parse(text: &str) -> Option<SignalStatus> {
        Some(match text {
            "OK" => SignalStatus::Ok,
            "FAILED" => SignalStatus::Failed,
            "WORKING" => SignalStatus::Working,
            "COMMISSIONING" => SignalStatus::Commissioning,
            "TESTING" => SignalStatus::Testing,
            "TIMEDOUT" => SignalStatus::TimedOut,
            "INSTALLING" => SignalStatus::Installing,
            "APPLYING_NETCONF" => SignalStatus::ApplyingNetconf,
            "RELEASING" => SignalStatus::Releasing,
            "DEPLOYING" => SignalStatus::Deploying,
            _ => return None,
        })
    }
}

/// Which of the node's script sets results go into, by the node's status.
fn active_set(node: &Node) -> Option<i64> {
    match node.status {
        NodeStatus::Commissioning
        | NodeStatus::Deployed
        | NodeStatus::New
        | NodeStatus::EnteringRescueMode
        | NodeStatus::RescueMode => node.current_commissioning_set_id,
        NodeStatus::Testing => node.current_testing_set_id,
        NodeStatus::Deploying => node.current_installation_set_id,
        NodeStatus::Releasing | NodeStatus::DiskErasing => node.current_release_set_id,
        _ => None,
    }
}

fn strip_suffix(name: &str) -> &str {
    for suffix in [".out", ".err", ".yaml"] {
        if let Some(stripped) = name.strip_suffix(suffix) {
            return stripped;
        }
    }
    name
}

/// Finds the result a signal is about: by id among the node's current
/// sets, else by name in the active set, else a new result there.
async fn find_result(
    region: &Region,
    node: &Node,
    params: &Params,
    files: &[FilePart],
) -> ServiceResult<Option<ScriptResult>> {
    let sets: Vec<i64> = [
        node.current_commissioning_set_id,
        node.current_testing_set_id,
        node.current_installation_set_id,
        node.current_release_set_id,
    ]
    .into_iter()
    .flatten()
    .collect();
    if let Some(id) = params
        .get("script_result_id")
        .and_then(|v| v.parse::<i64>().ok())
    {
        for set_id in &sets {
            if let Some(set) = region.store.script_set(*set_id, false).await?
                && let Some(result) = set.results.into_iter().find(|r| r.id == id)
            {
                return Ok(Some(result));
            }
        }
        return Err(ServiceError::bad_request(format!(
            "Unknown script_result_id: {id}"
        )));
    }
    let name = params
        .get("name")
        .map(str::to_owned)
        .or_else(|| files.first().map(|f| strip_suffix(&f.name).to_owned()));
    let Some(name) = name.filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let name = strip_suffix(&name).to_owned();
    let Some(set_id) = active_set(node) else {
        return Ok(None);
    };
    if let Some(set) = region.store.script_set(set_id, false).await?
        && let Some(result) = set.results.into_iter().find(|r| r.name == name)
    {
        return Ok(Some(result));
    }
    let created = region
        .store
        .add_script_result(
            set_id,
            NewScriptResult {
                script_id: None,
                name,
                status: status::PENDING,
                parameters: "{}".into(),
            },
            region.now(),
        )
        .await?;
    Ok(Some(created))
}

fn runtime_text(millis: Millis) -> String {
    let secs = (millis / 1000).max(0);
    format!("{}:{:02}:{:02}", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// The `status:` a result YAML sets, if any.
fn yaml_status(yaml: &[u8]) -> Option<i64> {
    let text = String::from_utf8_lossy(yaml);
    text.lines().find_map(|line| {
        let value = line
            .trim()
            .strip_prefix("status:")?
            .trim()
            .trim_matches(['"', '\''])
            .to_ascii_lowercase();
        Some(match value.as_str() {
            "passed" => status::PASSED,
            "failed" => status::FAILED,
            "degraded" => status::DEGRADED,
            "timedout" => status::TIMEDOUT,
            "skipped" => status::SKIPPED,
            _ => return None,
        })
    })
}

/// Stores what a signal says about one script result; returns the result's
/// name and final status when it finished, and runs the region's hooks on
/// builtin outputs.
async fn store_result(
    region: &Region,
    node: &Node,
    signal: SignalStatus,
    params: &Params,
    files: &[FilePart],
) -> ServiceResult<Option<(String, i64)>> {
    let Some(result) = find_result(region, node, params, files).await? else {
        return Ok(None);
    };
    let now = region.now();
    let exit_status = ["exit_status", "script_result", "result"]
        .iter()
        .find_map(|k| params.get(k))
        .map(|v| {
            v.trim()
                .parse::<i64>()
                .map_err(|_| ServiceError::bad_request(format!("Invalid exit_status: '{v}'")))
        })
        .transpose()?;
    let file = |suffix: &str| {
        files
            .iter()
            .find(|f| {
                f.name == format!("{}{suffix}", result.name)
                    || (suffix.is_empty() && f.name == result.name)
            })
            .map(|f| f.content.clone())
    };
    let (combined, stdout, stderr, yaml) = (file(""), file(".out"), file(".err"), file(".yaml"));
    let finished = exit_status.is_some()
        || combined.is_some()
        || stdout.is_some()
        || signal == SignalStatus::TimedOut;
    let mut update = ScriptResultUpdate {
        updated: now,
        ..ScriptResultUpdate::default()
    };
    if !finished {
        let next = match signal {
            SignalStatus::Installing => status::INSTALLING,
            SignalStatus::ApplyingNetconf => status::APPLYING_NETCONF,
            _ => status::RUNNING,
        };
        if result.status == status::PENDING
            || (result.status < next && status::UNFINISHED.contains(&result.status))
        {
            update.status = Some(next);
            if result.started.is_none() {
                update.started = Some(now);
            }
            region.store.update_script_result(result.id, update).await?;
        }
        return Ok(None);
    }
    let exit = exit_status.unwrap_or(0);
    let mut final_status = if signal == SignalStatus::TimedOut {
        status::TIMEDOUT
    } else if exit == 0 {
        status::PASSED
    } else {
        match result.status {
            status::INSTALLING => status::FAILED_INSTALLING,
            status::APPLYING_NETCONF => status::FAILED_APPLYING_NETCONF,
            _ => status::FAILED,
        }
    };
    if let Some(override_status) = yaml.as_deref().and_then(yaml_status) {
        final_status = override_status;
    }
    // The region's hooks for builtin outputs; a failing hook fails the result.
    let hook_output = stdout.as_deref().or(combined.as_deref());
    if final_status == status::PASSED
        && let Some(output) = hook_output
        && let Err(why) = run_hook(region, node, &result.name, output).await
    {
        life::event(
            region,
            node,
            "Script result error",
            &format!("{}: {why}", result.name),
            EventLevel::Error,
            Actor::System,
            false,
        )
        .await?;
        final_status = status::FAILED;
    }
    update.status = Some(final_status);
    update.exit_status = Some(Some(exit));
    update.started = Some(result.started.unwrap_or(now));
    update.ended = Some(now);
    update.runtime = Some(
        params
            .get("runtime")
            .map(str::to_owned)
            .unwrap_or_else(|| runtime_text(now - result.started.unwrap_or(now))),
    );
    update.output = combined.or_else(|| stdout.clone());
    update.stdout = stdout;
    update.stderr = stderr;
    update.result = yaml;
    region.store.update_script_result(result.id, update).await?;
    Ok(Some((result.name, final_status)))
}

/// Hooks on builtin script outputs (provisioning.md §2.7).
async fn run_hook(region: &Region, node: &Node, name: &str, output: &[u8]) -> Result<(), String> {
    match name {
        scripts::COMMISSIONING_RESOURCES => {
            let catalog = region
                .store
                .network_catalog()
                .await
                .map_err(|e| e.to_string())?;
            let current = life::reread(region, &node.system_id)
                .await
                .map_err(|e| e.to_string())?;
            let facts =
                inventory::parse(output, &current, &catalog, None).map_err(|e| e.to_string())?;
            region
                .store
                .set_inventory(node.id, facts.inventory, region.now())
                .await
                .map_err(|e| e.to_string())?;
            if let Some(arch) = facts.architecture {
                region
                    .store
                    .update_node(
                        node.id,
                        NodeUpdate {
                            architecture: Some(Some(arch)),
                            updated: region.now(),
                            ..NodeUpdate::default()
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if facts.is_virtual {
                tag_node(region, node, "virtual")
                    .await
                    .map_err(|e| e.to_string())?;
            }
            tracing::info!(system_id = %node.system_id, "commissioning inventory stored");
            Ok(())
        }
        scripts::KERNEL_CMDLINE => {
            let Some(mac) = inventory::bootif_mac(&String::from_utf8_lossy(output)) else {
                return Ok(());
            };
            let current = life::reread(region, &node.system_id)
                .await
                .map_err(|e| e.to_string())?;
            if current
                .interfaces
                .iter()
                .any(|i| i.mac_address.as_deref() == Some(&mac))
                && current
                    .boot_interface_id
                    .and_then(|id| current.interfaces.iter().find(|i| i.id == id))
                    .and_then(|i| i.mac_address.as_deref())
                    != Some(&mac)
            {
                let mut interfaces = inventory::keep_interfaces(&current);
                for interface in &mut interfaces {
                    interface.boot = interface.mac_address.as_deref() == Some(&mac);
                }
                let inventory = maas_store::Inventory {
                    cpu_count: current.cpu_count,
                    cpu_speed: current.cpu_speed,
                    memory: current.memory,
                    hardware_uuid: current.hardware_uuid.clone(),
                    hardware_info: current.hardware_info.clone(),
                    bios_boot_method: current.bios_boot_method.clone(),
                    interfaces,
                    block_devices: inventory::keep_block_devices(&current),
                };
                region
                    .store
                    .set_inventory(node.id, inventory, region.now())
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

async fn tag_node(region: &Region, node: &Node, name: &str) -> ServiceResult<()> {
    let tag = match region.store.tag_by_name(name).await? {
        Some(tag) => tag,
        None => {
            let created = region
                .store
                .create_tag(maas_store::Tag {
                    id: 0,
                    name: name.to_owned(),
                    definition: String::new(),
                    comment: "Automatically created by commissioning".to_owned(),
                    kernel_opts: None,
                })
                .await;
            match created {
                Ok(tag) => tag,
                // Another machine's commissioning made it first: use that one.
                Err(maas_store::StoreError::Conflict { .. }) => {
                    region.store.tag_by_name(name).await?.ok_or_else(|| {
                        ServiceError::conflict(format!("tag {name} vanished while being created"))
                    })?
                }
                Err(other) => return Err(other.into()),
            }
        }
    };
    region
        .store
        .tag_nodes(tag.id, std::slice::from_ref(&node.system_id), &[])
        .await?;
    Ok(())
}

/// Whether any result of the set failed.
async fn any_failed(region: &Region, set_id: Option<i64>) -> ServiceResult<bool> {
    let Some(set_id) = set_id else {
        return Ok(false);
    };
    let Some(set) = region.store.script_set(set_id, false).await? else {
        return Ok(false);
    };
    Ok(set.results.iter().any(|r| status::is_failure(r.status)))
}

/// Handles `POST <ver>/?op=signal` (provisioning.md §2.5).
pub async fn signal(
    region: &Arc<Region>,
    node: &Node,
    params: &Params,
    files: &[FilePart],
) -> ServiceResult<()> {
    let text = params
        .get("status")
        .ok_or_else(|| ServiceError::missing("status"))?;
    let signal = SignalStatus::parse(text)
        .ok_or_else(|| ServiceError::bad_request(format!("Unknown status: '{text}'")))?;
    if node.node_type != NodeType::Machine {
        // Controllers and devices post results without status changes.
        store_result(region, node, signal, params, files).await?;
        return Ok(());
    }
    let signalable = matches!(
        node.status,
        NodeStatus::New
            | NodeStatus::Commissioning
            | NodeStatus::Deployed
            | NodeStatus::Testing
            | NodeStatus::Deploying
            | NodeStatus::DiskErasing
            | NodeStatus::Releasing
            | NodeStatus::EnteringRescueMode
            | NodeStatus::RescueMode
    );
    if !signalable {
        let quiet = matches!(node.status, NodeStatus::Broken | NodeStatus::Ready)
            || node.status.label().starts_with("Failed");
        if quiet {
            return Ok(());
        }
        return Err(ServiceError::conflict(format!(
            "Unable to signal a machine in the '{}' state.",
            node.status.label()
        )));
    }
    let now = region.now();
    if let Some(set_id) = active_set(node) {
        region.store.touch_script_set(set_id, now).await?;
    }
    // The first signal hands supervision from the boot timer to heartbeats.
    if matches!(node.status, NodeStatus::Commissioning | NodeStatus::Testing)
        && node.status_expires.is_some()
    {
        region
            .store
            .update_node(
                node.id,
                NodeUpdate {
                    status_expires: Some(None),
                    updated: now,
                    ..NodeUpdate::default()
                },
            )
            .await?;
    }
    if let Some(error) = params.get("error") {
        region
            .store
            .update_node(
                node.id,
                NodeUpdate {
                    error_description: Some(error.to_owned()),
                    updated: now,
                    ..NodeUpdate::default()
                },
            )
            .await?;
    }
    store_bmc(region, node, params).await?;
    let finished = store_result(region, node, signal, params, files).await?;
    if let Some((name, result_status)) = &finished
        && status::is_failure(*result_status)
    {
        tracing::info!(system_id = %node.system_id, script = %name, status = status::name(*result_status), "script failed");
    }
    let node = life::reread(region, &node.system_id).await?;
    match (node.status, signal) {
        (NodeStatus::New, SignalStatus::Commissioning) => {
            let options = life::CommissionOptions::default();
            let plan = scripts::plan_commissioning(region.store.as_ref(), &options).await?;
            scripts::create_sets(region.store.as_ref(), &node, plan, now).await?;
            life::transition(
                region,
                &node,
                NodeStatus::Commissioning,
                Change::default(),
                Actor::System,
            )
            .await?;
        }
        (NodeStatus::Commissioning, SignalStatus::Testing) => {
            life::transition(
                region,
                &node,
                NodeStatus::Testing,
                Change {
                    description: "Running tests".into(),
                    ..Change::default()
                },
                Actor::System,
            )
            .await?;
        }
        (NodeStatus::Commissioning, SignalStatus::Ok) => {
            let failed = any_failed(region, node.current_commissioning_set_id).await?;
            let target = lifecycle::commissioning_done(node.enlisting, failed);
            finish(region, &node, target, "").await?;
        }
        (NodeStatus::Commissioning, SignalStatus::Failed) => {
            scripts::abort_current(region.store.as_ref(), &node, now).await?;
            finish(
                region,
                &node,
                NodeStatus::FailedCommissioning,
                params.get("error").unwrap_or(""),
            )
            .await?;
        }
        (NodeStatus::Testing, SignalStatus::Ok) => {
            let commissioning_failed =
                any_failed(region, node.current_commissioning_set_id).await?;
            let testing_failed = any_failed(region, node.current_testing_set_id).await?;
            let target = if testing_failed {
                NodeStatus::FailedTesting
            } else if node.previous_status == NodeStatus::Commissioning {
                lifecycle::commissioning_done(node.enlisting, commissioning_failed)
            } else {
                lifecycle::testing_return(node.previous_status)
            };
            finish(region, &node, target, "").await?;
        }
        (NodeStatus::Testing, SignalStatus::Failed) => {
            scripts::abort_current(region.store.as_ref(), &node, now).await?;
            finish(
                region,
                &node,
                NodeStatus::FailedTesting,
                params.get("error").unwrap_or(""),
            )
            .await?;
        }
        (NodeStatus::Deploying, SignalStatus::Failed) => {
            life::mark_failed(
                region,
                &node,
                &format!("Installation failed: {}", params.get("error").unwrap_or("")),
                false,
            )
            .await?;
        }
        (NodeStatus::DiskErasing, SignalStatus::Ok) => {
            life::event(
                region,
                &node,
                "Node disks erased",
                "",
                EventLevel::Info,
                Actor::System,
                false,
            )
            .await?;
            release_after_scripts(region, &node).await?;
        }
        (NodeStatus::Releasing, SignalStatus::Ok) => {
            life::event(
                region,
                &node,
                "Release scripts succeeded",
                "",
                EventLevel::Info,
                Actor::System,
                false,
            )
            .await?;
            release_after_scripts(region, &node).await?;
        }
        (NodeStatus::DiskErasing | NodeStatus::Releasing, SignalStatus::Failed) => {
            life::mark_failed(
                region,
                &node,
                params.get("error").unwrap_or("Release scripts failed"),
                false,
            )
            .await?;
        }
        (NodeStatus::EnteringRescueMode, SignalStatus::Ok | SignalStatus::Working) => {
            life::transition(
                region,
                &node,
                NodeStatus::RescueMode,
                Change {
                    expires: Some(None),
                    ..Change::default()
                },
                Actor::System,
            )
            .await?;
        }
        (NodeStatus::EnteringRescueMode, SignalStatus::Failed) => {
            life::mark_failed(
                region,
                &node,
                params.get("error").unwrap_or("Failed to enter rescue mode"),
                false,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Ends commissioning or testing: the status, timers cleared, and the
/// machine powered off (unless SSH was asked for).
async fn finish(
    region: &Arc<Region>,
    node: &Node,
    target: NodeStatus,
    description: &str,
) -> ServiceResult<()> {
    let updated = life::transition(
        region,
        node,
        target,
        Change {
            expires: Some(None),
            error: (target == NodeStatus::FailedCommissioning
                || target == NodeStatus::FailedTesting)
                .then(|| description.to_owned()),
            description: description.to_owned(),
            ..Change::default()
        },
        Actor::System,
    )
    .await?;
    if target == NodeStatus::New || target == NodeStatus::Ready {
        region
            .store
            .update_node(
                node.id,
                NodeUpdate {
                    enlisting: Some(false),
                    updated: region.now(),
                    ..NodeUpdate::default()
                },
            )
            .await?;
    }
    if !node.enable_ssh {
        life::power_after(
            region.clone(),
            updated,
            crate::power::PowerRequest::Off { soft: false },
            None,
        );
    }
    Ok(())
}

/// After erasing or release scripts: power off, then READY.
async fn release_after_scripts(region: &Arc<Region>, node: &Node) -> ServiceResult<()> {
    let result = region
        .power
        .execute(node, crate::power::PowerRequest::Off { soft: false })
        .await;
    if let Err(failure) = &result {
        life::event(
            region,
            node,
            "Failed to power off node",
            &failure.message,
            EventLevel::Error,
            Actor::System,
            false,
        )
        .await?;
    }
    let current = life::reread(region, &node.system_id).await?;
    if current.status == NodeStatus::DiskErasing {
        // Erasing done: the machine is releasing until it is off (it is, now).
        let releasing = life::transition(
            region,
            &current,
            NodeStatus::Releasing,
            Change::default(),
            Actor::System,
        )
        .await?;
        life::finish_release(region, &releasing).await?;
    } else {
        life::finish_release(region, &current).await?;
    }
    Ok(())
}

/// BMC credentials found by the BMC detection script.
async fn store_bmc(region: &Region, node: &Node, params: &Params) -> ServiceResult<()> {
    let Some(power_type) = params.get("power_type").filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    // An existing Redfish BMC is never downgraded to IPMI.
    if node.power_type == "redfish" && power_type == "ipmi" {
        return Ok(());
    }
    let mut parameters = node.power_parameters.clone();
    if let Some(json) = params.get("power_parameters").filter(|p| !p.is_empty()) {
        let value: serde_json::Value = serde_json::from_str(json)
            .map_err(|_| ServiceError::bad_request("Invalid power_parameters: not JSON"))?;
        let Some(object) = value.as_object() else {
            return Err(ServiceError::bad_request(
                "Invalid power_parameters: not a JSON object",
            ));
        };
        for (key, value) in object {
            if power_type == "redfish"
                && !["power_address", "power_user", "power_pass", "node_id"].contains(&key.as_str())
            {
                continue;
            }
            let text = match value {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            parameters.insert(key.clone(), text);
        }
    }
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                power_type: Some(power_type.to_owned()),
                power_parameters: Some(parameters),
                updated: region.now(),
                ..NodeUpdate::default()
            },
        )
        .await?;
    Ok(())
}

/// `netboot_off`/`netboot_on`.
pub async fn set_netboot(region: &Region, node: &Node, on: bool) -> ServiceResult<()> {
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                netboot: Some(on),
                updated: region.now(),
                ..NodeUpdate::default()
            },
        )
        .await?;
    if !on {
        life::event(
            region,
            node,
            "Node installation finished",
            "Node disabled netboot",
            EventLevel::Info,
            Actor::System,
            false,
        )
        .await?;
    }
    Ok(())
}

/// The status webhook (provisioning.md §2.6): log start and failure events,
/// store posted files as installation results, and act on top-level finishes.
pub async fn status_event(
    region: &Arc<Region>,
    node: &Node,
    event: &serde_json::Value,
) -> ServiceResult<()> {
    let field = |key: &str| event.get(key).and_then(serde_json::Value::as_str);
    let (Some(event_type), Some(origin), Some(name)) =
        (field("event_type"), field("origin"), field("name"))
    else {
        return Err(ServiceError::bad_request(
            "Missing parameter in status message: event_type, origin and name are required.",
        ));
    };
    let description = field("description").unwrap_or("");
    let result = field("result").unwrap_or("SUCCESS");
    let failed = matches!(result, "FAIL" | "FAILURE");
    let kind = match node.status {
        NodeStatus::Commissioning => "Commissioning",
        NodeStatus::Deploying => "Installation",
        NodeStatus::Deployed if failed => "Post-installation failure",
        NodeStatus::EnteringRescueMode => "Entering rescue mode",
        _ => "Node status",
    };
    if event_type == "start" || failed {
        let level = if failed {
            EventLevel::Error
        } else {
            EventLevel::Debug
        };
        let kind = if failed {
            format!("{kind} failed")
        } else {
            kind.to_owned()
        };
        life::event(
            region,
            node,
            &kind,
            &format!("'{origin}' {description}"),
            level,
            Actor::System,
            false,
        )
        .await?;
    }
    if let Some(files) = event.get("files").and_then(serde_json::Value::as_array) {
        for file in files {
            store_webhook_file(region, node, file, failed).await?;
        }
    }
    if origin == "curtin" && event_type == "start" {
        let message = match name {
            "cmd-install/stage-partitioning" => Some("Configuring storage"),
            "cmd-install/stage-extract" => Some("Installing OS"),
            "cmd-install/stage-curthooks" => Some("Configuring OS"),
            _ => None,
        };
        if let Some(message) = message {
            life::event(
                region,
                node,
                message,
                "",
                EventLevel::Info,
                Actor::System,
                true,
            )
            .await?;
        }
        if name.starts_with("cmd-install") && node.status == NodeStatus::Deploying {
            let timeout = life::node_timeout(region).await?;
            region
                .store
                .update_node(
                    node.id,
                    NodeUpdate {
                        status_expires: Some(Some(region.now() + 2 * timeout)),
                        updated: region.now(),
                        ..NodeUpdate::default()
                    },
                )
                .await?;
        }
    }
    let top_level = !name.contains('/');
    if event_type == "finish" && top_level {
        match (node.status, failed) {
            (NodeStatus::Commissioning, true) => {
                life::mark_failed(region, node, &format!("'{origin}' {description}"), true).await?;
            }
            (NodeStatus::Deploying, true) => {
                life::mark_failed(
                    region,
                    node,
                    &format!("Installation failed: '{origin}' {description}"),
                    false,
                )
                .await?;
            }
            (NodeStatus::DiskErasing | NodeStatus::Releasing, true) => {
                life::mark_failed(region, node, &format!("'{origin}' {description}"), false)
                    .await?;
            }
            (NodeStatus::DiskErasing | NodeStatus::Releasing, false) if name == "modules-final" => {
                release_after_scripts(region, node).await?;
            }
            _ => {}
        }
    }
    Ok(())
}

async fn store_webhook_file(
    region: &Region,
    node: &Node,
    file: &serde_json::Value,
    failed: bool,
) -> ServiceResult<()> {
    let Some(path) = file.get("path").and_then(serde_json::Value::as_str) else {
        return Ok(());
    };
    let encoded = file
        .get("content")
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    // bzip2-compressed files (curtin's logs) are stored as sent.
    let content = base64::engine::general_purpose::STANDARD
        .decode(encoded.as_bytes())
        .map_err(|_| ServiceError::bad_request(format!("File {path} is not valid base64.")))?;
    let set_id = match node.status {
        NodeStatus::Testing => node.current_testing_set_id,
        NodeStatus::Commissioning => node.current_commissioning_set_id,
        NodeStatus::Deploying | NodeStatus::Deployed | NodeStatus::FailedDeployment => {
            node.current_installation_set_id
        }
        _ => None,
    };
    let Some(set_id) = set_id else { return Ok(()) };
    let now = region.now();
    let result = region
        .store
        .add_script_result(
            set_id,
            NewScriptResult {
                script_id: None,
                name: path.to_owned(),
                status: status::RUNNING,
                parameters: "{}".into(),
            },
            now,
        )
        .await?;
    let exit = if failed { 1 } else { 0 };
    region
        .store
        .update_script_result(
            result.id,
            ScriptResultUpdate {
                status: Some(if failed {
                    status::FAILED
                } else {
                    status::PASSED
                }),
                exit_status: Some(Some(exit)),
                ended: Some(now),
                output: Some(content),
                updated: now,
                ..ScriptResultUpdate::default()
            },
        )
        .await?;
    Ok(())
}

/// The curtin source type of a stored image file (provisioning.md §8.3), `None` for
/// files that are not an installable root (kernels, initrds, manifests).
pub fn curtin_source_type(filetype: &str) -> Option<&'static str> {
    Some(match filetype {
        "root-tgz" => "tgz",
        "root-tbz" => "tbz",
        "root-txz" => "txz",
        "root-dd" => "dd-tgz",
        "root-dd.tar" => "dd-tar",
        "root-dd.tar.bz2" => "dd-tbz",
        "root-dd.tar.xz" => "dd-txz",
        "root-dd.bz2" => "dd-bz2",
        "root-dd.gz" => "dd-gz",
        "root-dd.xz" => "dd-xz",
        "root-dd.raw" => "dd-raw",
        "squashfs" => "cp",
        _ => return None,
    })
}

/// The installation source of the image a deploying node gets: the newest complete set
/// of its boot resource, its installable file preferred dd image, then root tarball,
/// then squashfs (MAAS's `cp:///media/root-ro`).
async fn install_source(
    region: &Region,
    node: &Node,
    base_url: &str,
) -> ServiceResult<serde_json::Value> {
    let architecture = node.architecture.as_deref().unwrap_or("amd64/generic");
    let image = crate::service::images::deploy_resource(
        region.store.as_ref(),
        &node.osystem,
        &node.distro_series,
        architecture,
    )
    .await?
    .ok_or_else(|| {
        ServiceError::NotFound(format!(
            "No boot image '{}/{}' for {architecture}.",
            node.osystem, node.distro_series
        ))
    })?;
    let mut sets = region.store.boot_resource_sets(image.id).await?;
    sets.sort_by_key(|set| std::cmp::Reverse(set.id));
    for set in sets {
        let files = region.store.boot_resource_files(set.id).await?;
        if files.is_empty() || !files.iter().all(|f| f.complete) {
            continue;
        }
        let rank = |kind: &str| match kind {
            "cp" => 2,
            k if k.starts_with("dd-") => 0,
            _ => 1,
        };
        let best = files
            .iter()
            .filter_map(|f| curtin_source_type(&f.filetype).map(|kind| (kind, f)))
            .min_by_key(|(kind, _)| rank(kind));
        let Some((kind, file)) = best else {
            continue;
        };
        if kind == "cp" {
            return Ok(serde_json::json!({"type": "cp", "uri": "cp:///media/root-ro"}));
        }
        let url = format!(
            "{base_url}/MAAS/boot-resources/{}/{}",
            file.sha256, file.filename
        );
        let uri = if kind.starts_with("dd-") {
            format!("{kind}:{url}")
        } else {
            url
        };
        return Ok(serde_json::json!({
            "type": kind,
            "uri": uri,
            "sha256": file.sha256,
            "size": file.size,
        }));
    }
    Err(ServiceError::NotFound(format!(
        "The boot image '{}' has no complete set to install from.",
        image.name
    )))
}

/// `curtin/<ver>/curtin-config`: the curtin configuration of a deploying node (§8.2)
/// as JSON, which is YAML too: the installation source, the boot disk, reporting to the
/// status webhook, the cloud-init seed for the installed system and the `netboot_off`
/// late command. The agent installs from it; MAAS packs the same into `curtin-installer`.
pub async fn curtin_config(region: &Region, node: &Node, base_url: &str) -> ServiceResult<Vec<u8>> {
    if !matches!(node.status, NodeStatus::Deploying | NodeStatus::Deployed) {
        return Err(ServiceError::Conflict(format!(
            "Node {} is {}, not deploying: it has no curtin configuration.",
            node.system_id,
            node.status.label()
        )));
    }
    let token = node_token(region, node).await?;
    let source = install_source(region, node, base_url).await?;
    let metadata_url = format!("{base_url}/MAAS/metadata/");
    let status_url = format!("{base_url}/MAAS/metadata/status/{}", node.system_id);
    let boot = node
        .boot_disk_id
        .and_then(|id| node.block_devices.iter().find(|d| d.id == id))
        .or_else(|| node.block_devices.first());
    let storage: Vec<serde_json::Value> = boot
        .map(|disk| {
            let mut entry = serde_json::json!({
                "id": disk.name,
                "name": disk.name,
                "type": "disk",
                "ptable": "gpt",
                "wipe": "superblock",
                "grub_device": true,
            });
            match disk.serial.as_deref().filter(|s| !s.is_empty()) {
                Some(serial) => entry["serial"] = serde_json::json!(serial),
                None => {
                    entry["path"] = serde_json::json!(
                        disk.id_path
                            .clone()
                            .unwrap_or_else(|| format!("/dev/{}", disk.name))
                    )
                }
            }
            vec![entry]
        })
        .unwrap_or_default();
    let credentials = |prefix: &str| {
        format!(
            "{prefix}consumer_key: {}\n{prefix}token_key: {}\n{prefix}token_secret: {}\n",
            yaml_string(&token.consumer_key),
            yaml_string(&token.token_key),
            yaml_string(token.token_secret.expose()),
        )
    };
    let document = serde_json::json!({
        "sources": {"00_image": source},
        "storage": {"version": 1, "config": storage},
        "reporting": {"maas": {
            "type": "webhook",
            "endpoint": status_url,
            "consumer_key": token.consumer_key,
            "token_key": token.token_key,
            "token_secret": token.token_secret.expose(),
        }},
        "install": {
            "log_file": "/tmp/install.log",
            "error_tarfile": "/tmp/curtin-logs.tar",
            "post_files": ["/tmp/install.log", "/tmp/curtin-logs.tar"],
        },
        "verbosity": 3,
        "showtrace": true,
        "cloudconfig": {
            "90_maas_datasource": {
                "path": "/etc/cloud/cloud.cfg.d/90_maas_datasource.cfg",
                "content": "datasource_list: [ MAAS ]\n",
            },
            "90_maas_cloud_config": {
                "path": "/etc/cloud/cloud.cfg.d/90_maas_cloud_config.cfg",
                "content": format!(
                    "datasource:\n  MAAS:\n    metadata_url: {}\n{}manual_cache_clean: true\n",
                    yaml_string(&metadata_url),
                    credentials("    "),
                ),
            },
            "90_maas_cloud_init_reporting": {
                "path": "/etc/cloud/cloud.cfg.d/90_maas_cloud_init_reporting.cfg",
                "content": format!(
                    "reporting:\n  maas:\n    type: webhook\n    endpoint: {}\n{}",
                    yaml_string(&status_url),
                    credentials("    "),
                ),
            },
        },
        "late_commands": {"maas": [
            "wget", "--no-proxy",
            format!("{metadata_url}latest/by-id/{}/", node.system_id),
            "--post-data", "op=netboot_off", "-O", "/dev/null",
        ]},
    });
    Ok(format!("{document:#}\n").into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_overrides() {
        assert_eq!(yaml_status(b"status: skipped\n"), Some(status::SKIPPED));
        assert_eq!(
            yaml_status(b"results:\n  x: 1\nstatus: \"degraded\"\n"),
            Some(status::DEGRADED)
        );
        assert_eq!(yaml_status(b"nothing here"), None);
    }

    #[test]
    fn user_data_decoding() {
        assert_eq!(decode_user_data("I2Nsb3VkLWNvbmZpZwo="), b"#cloud-config\n");
        assert_eq!(
            decode_user_data("I2Nsb3Vk\nLWNvbmZpZwo=\n"),
            b"#cloud-config\n"
        );
        assert_eq!(decode_user_data("#!/bin/sh plain"), b"#!/bin/sh plain");
    }

    #[test]
    fn signal_statuses() {
        assert_eq!(SignalStatus::parse("OK"), Some(SignalStatus::Ok));
        assert_eq!(
            SignalStatus::parse("APPLYING_NETCONF"),
            Some(SignalStatus::ApplyingNetconf)
        );
        assert_eq!(SignalStatus::parse("ok"), None);
        assert_eq!(runtime_text(3_723_000), "1:02:03");
    }

    #[test]
    fn curtin_source_types_of_stored_files() {
        for (stored, curtin) in [
            ("root-tgz", Some("tgz")),
            ("root-txz", Some("txz")),
            ("root-dd", Some("dd-tgz")),
            ("root-dd.raw", Some("dd-raw")),
            ("root-dd.xz", Some("dd-xz")),
            ("root-dd.tar.bz2", Some("dd-tbz")),
            ("squashfs", Some("cp")),
            ("boot-kernel", None),
            ("boot-initrd", None),
        ] {
            assert_eq!(curtin_source_type(stored), curtin, "{stored}");
        }
    }
}
