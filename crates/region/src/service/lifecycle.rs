//! Machine actions and status writes: every status change goes through
//! [`transition`], which checks MAAS's transition table, writes the change
//! only if the machine is still where the caller saw it, clears the owner
//! where MAAS does, drops the metadata token when the owner changes, and
//! records the events that tell the machine's story.

use std::sync::Arc;

use maas_domain::lifecycle;
use maas_domain::{NodeStatus, NodeType, PowerState};
use maas_store::{EventLevel, Millis, NewEvent, Node, NodeUpdate, StatusChange, User, result_type};

use crate::error::{ServiceError, ServiceResult};
use crate::power::{PowerFailure, PowerRequest};
use crate::region::Region;
use crate::service::scripts;

/// Who asked: a user, or the region itself (timers, signals from machines).
#[derive(Clone, Copy)]
pub enum Actor<'a> {
    User(&'a User),
    System,
}

impl Actor<'_> {
    fn user_id(&self) -> Option<i64> {
        match self {
            Actor::User(user) => Some(user.id),
            Actor::System => None,
        }
    }

    fn describe(&self, comment: Option<&str>) -> String {
        let who = match self {
            Actor::User(user) => format!("({})", user.username),
            Actor::System => "(maas)".to_owned(),
        };
        match comment.filter(|c| !c.is_empty()) {
            Some(comment) => format!("{who} - {comment}"),
            None => who,
        }
    }
}

/// Extra fields written with a status change.
#[derive(Default)]
pub struct Change {
    pub owner: Option<Option<i64>>,
    pub owner_must_be: Option<Option<i64>>,
    pub agent_name: Option<String>,
    pub expires: Option<Option<Millis>>,
    pub error: Option<String>,
    /// The status event's description (the comment, a reason).
    pub description: String,
}

/// Leaving these statuses keeps `previous_status`, so the machine can go
/// back where it was before rescue or testing.
fn keeps_previous(from: NodeStatus) -> bool {
    matches!(
        from,
        NodeStatus::RescueMode
            | NodeStatus::EnteringRescueMode
            | NodeStatus::ExitingRescueMode
            | NodeStatus::FailedEnteringRescueMode
            | NodeStatus::FailedExitingRescueMode
            | NodeStatus::Testing
    )
}

pub async fn event(
    region: &Region,
    node: &Node,
    event_type: &str,
    description: &str,
    level: EventLevel,
    actor: Actor<'_>,
    is_status: bool,
) -> ServiceResult<()> {
    region
        .store
        .create_event(NewEvent {
            node_id: Some(node.id),
            event_type: event_type.to_owned(),
            description: description.to_owned(),
            action: String::new(),
            level,
            user_id: actor.user_id(),
            created: region.now(),
            is_status,
        })
        .await?;
    Ok(())
}

/// A user's request, logged as MAAS logs requests: `(<user>) - <comment>`.
pub async fn request_event(
    region: &Region,
    node: &Node,
    what: &str,
    actor: Actor<'_>,
    comment: Option<&str>,
) -> ServiceResult<()> {
    let level = match actor {
        Actor::User(_) => EventLevel::Debug,
        Actor::System => EventLevel::Error,
    };
    event(
        region,
        node,
        what,
        &actor.describe(comment),
        level,
        actor,
        false,
    )
    .await
}

/// Writes `node.status -> to`, or refuses with 409.
pub async fn transition(
    region: &Region,
    node: &Node,
    to: NodeStatus,
    change: Change,
    actor: Actor<'_>,
) -> ServiceResult<Node> {
    lifecycle::check(node.status, to).map_err(|e| ServiceError::conflict(e.to_string()))?;
    let mut owner = change.owner;
    if node.node_type == NodeType::Machine && matches!(to, NodeStatus::New | NodeStatus::Ready) {
        owner = Some(None);
    }
    let owner_changes = owner.is_some_and(|o| o != node.owner.as_ref().map(|u| u.id));
    let now = region.now();
    let mut changed = format!("From '{}' to '{}'", node.status.label(), to.label());
    if to == NodeStatus::Allocated
        && let Actor::User(user) = actor
    {
        changed.push_str(&format!(" (to {})", user.username));
    }
    let event =
        |event_type: &str, description: String, level: EventLevel, is_status: bool| NewEvent {
            node_id: Some(node.id),
            event_type: event_type.to_owned(),
            description,
            action: String::new(),
            level,
            user_id: actor.user_id(),
            created: now,
            is_status,
        };
    // The change and its events are written together: nobody sees one without the other.
    let events = vec![
        event("Node changed status", changed, EventLevel::Debug, false),
        event(
            status_event_type(to),
            change.description.clone(),
            EventLevel::Info,
            true,
        ),
    ];
    let written = region
        .store
        .change_status(
            node.id,
            StatusChange {
                from: node.status,
                to,
                owner,
                owner_must_be: change.owner_must_be,
                agent_name: change.agent_name,
                status_expires: change.expires,
                error_description: change.error,
                keep_previous: keeps_previous(node.status),
                events,
                updated: now,
            },
        )
        .await?;
    if !written {
        return Err(ServiceError::conflict(format!(
            "Machine {} changed while the request ran (it is no longer {}); try again.",
            node.system_id,
            node.status.label()
        )));
    }
    if owner_changes {
        region.store.delete_node_token(node.id).await?;
    }
    tracing::info!(system_id = %node.system_id, from = %node.status, to = %to, "status changed");
    let updated = reread(region, &node.system_id).await?;
    region.changes.node(&updated);
    Ok(updated)
}

/// The status-message event MAAS records on entering a status.
fn status_event_type(status: NodeStatus) -> &'static str {
    match status {
        NodeStatus::Ready => "Ready",
        NodeStatus::Releasing => "Releasing",
        other => other.label(),
    }
}

pub async fn reread(region: &Region, system_id: &str) -> ServiceResult<Node> {
    region
        .store
        .node_by_system_id(system_id)
        .await?
        .ok_or_else(|| ServiceError::not_found("Machine"))
}

/// `node_timeout` from the configuration, in milliseconds.
pub async fn node_timeout(region: &Region) -> ServiceResult<Millis> {
    let minutes = crate::service::config::get(region.store.as_ref(), "node_timeout")
        .await?
        .as_i64()
        .unwrap_or(30)
        .max(1);
    Ok(minutes * 60_000)
}

/// Runs a power action in the background after a status change. If it
/// fails, the machine goes back to `revert_to` (or its failure status, for
/// releasing and erasing) and the event log says why, as MAAS does.
pub fn power_after(
    region: Arc<Region>,
    node: Node,
    request: PowerRequest,
    revert_to: Option<NodeStatus>,
) {
    tokio::spawn(async move {
        let result = region.power.execute(&node, request).await;
        if let Err(error) = handle_power_result(&region, &node, request, result, revert_to).await {
            tracing::error!(system_id = %node.system_id, %error, "recording a power result failed");
        }
    });
}

async fn handle_power_result(
    region: &Region,
    node: &Node,
    request: PowerRequest,
    result: Result<Option<PowerState>, PowerFailure>,
    revert_to: Option<NodeStatus>,
) -> ServiceResult<()> {
    match result {
        Ok(state) => {
            if let Some(state) = state {
                region
                    .store
                    .update_node(
                        node.id,
                        NodeUpdate {
                            power_state: Some(state),
                            updated: region.now(),
                            ..NodeUpdate::default()
                        },
                    )
                    .await?;
                region.changes.power(node, state);
            }
            let what = match request {
                PowerRequest::On | PowerRequest::Cycle => "Powered on",
                PowerRequest::Off { .. } => "Powered off",
                PowerRequest::Query => return Ok(()),
            };
            if state.is_some() {
                event(
                    region,
                    node,
                    what,
                    "",
                    EventLevel::Debug,
                    Actor::System,
                    false,
                )
                .await?;
            }
            // A release that waited for the machine to be off ends here.
            if let (PowerRequest::Off { .. }, Some(_)) = (request, state) {
                let current = reread(region, &node.system_id).await?;
                if current.status == NodeStatus::Releasing {
                    finish_release(region, &current).await?;
                }
            }
            Ok(())
        }
        Err(failure) => {
            tracing::warn!(system_id = %node.system_id, action = request.name(), error = %failure, "power action failed");
            let current = reread(region, &node.system_id).await?;
            let kind = match request {
                PowerRequest::On | PowerRequest::Cycle => "Failed to power on node",
                PowerRequest::Off { .. } => "Failed to power off node",
                PowerRequest::Query => "Failed to query node's BMC",
            };
            event(
                region,
                &current,
                kind,
                &failure.message,
                EventLevel::Error,
                Actor::System,
                false,
            )
            .await?;
            region
                .store
                .update_node(
                    current.id,
                    NodeUpdate {
                        power_state: Some(PowerState::Error),
                        updated: region.now(),
                        ..NodeUpdate::default()
                    },
                )
                .await?;
            region.changes.power(&current, PowerState::Error);
            let Some(old) = revert_to else { return Ok(()) };
            let target = match current.status {
                NodeStatus::Releasing | NodeStatus::DiskErasing => {
                    current.status.failure_counterpart().unwrap_or(old)
                }
                _ => old,
            };
            if current.status != target && lifecycle::allowed(current.status, target) {
                let description = format!(
                    "Aborting {} and reverting to {}. Unable to power control the node. Please check power credentials.",
                    current.status.label(),
                    target.label()
                );
                event(
                    region,
                    &current,
                    "Failed to query node's BMC",
                    &description,
                    EventLevel::Warning,
                    Actor::System,
                    false,
                )
                .await?;
                transition(
                    region,
                    &current,
                    target,
                    Change {
                        expires: Some(None),
                        error: Some(failure.message.clone()),
                        description,
                        ..Change::default()
                    },
                    Actor::System,
                )
                .await?;
            }
            Ok(())
        }
    }
}

/// On, or a cycle when the machine is known to be on (MAAS boots a running
/// machine into the ephemeral environment by cycling it).
pub fn boot_request(node: &Node) -> PowerRequest {
    if node.power_state == PowerState::On {
        PowerRequest::Cycle
    } else {
        PowerRequest::On
    }
}

/// Whether `user` may change this machine (owner or admin), and it isn't locked.
pub fn check_edit(user: &User, node: &Node) -> ServiceResult<()> {
    let owns = node.owner.as_ref().is_some_and(|o| o.id == user.id);
    if !user.is_superuser && !owns && node.owner.is_some() {
        return Err(ServiceError::Forbidden(String::new()));
    }
    if !user.is_superuser && node.owner.is_none() {
        return Err(ServiceError::Forbidden(String::new()));
    }
    check_unlocked(node)
}

pub fn check_unlocked(node: &Node) -> ServiceResult<()> {
    if node.locked {
        return Err(ServiceError::Forbidden(format!(
            "Can't perform this action: machine {} is locked.",
            node.system_id
        )));
    }
    Ok(())
}

fn admin(user: &User) -> ServiceResult<()> {
    if user.is_superuser {
        Ok(())
    } else {
        Err(ServiceError::admin_only())
    }
}

/// Options of `commission` (api.md §8.3).
#[derive(Default, Clone)]
pub struct CommissionOptions {
    pub enable_ssh: bool,
    pub skip_bmc_config: bool,
    pub skip_networking: bool,
    pub skip_storage: bool,
    pub commissioning_scripts: Vec<String>,
    /// `None`: the default testing scripts; `Some(empty)`: none (`testing_scripts=none`).
    pub testing_scripts: Option<Vec<String>>,
    pub comment: Option<String>,
}

/// Starts commissioning: a fresh commissioning set (and testing set), the
/// machine owned by the caller while it runs, a timer, and power on.
pub async fn commission(
    region: &Arc<Region>,
    actor: Actor<'_>,
    node: &Node,
    options: CommissionOptions,
) -> ServiceResult<Node> {
    if let Actor::User(user) = actor {
        admin(user)?;
    }
    check_unlocked(node)?;
    if node.power_type.is_empty() {
        return Err(ServiceError::conflict(format!(
            "Can't commission {}: it has no power type; set one (e.g. power_type=manual) first.",
            node.system_id
        )));
    }
    lifecycle::check(node.status, NodeStatus::Commissioning).map_err(|_| {
        ServiceError::conflict(format!(
            "Can't commission a machine that is in the '{}' state.",
            node.status.label()
        ))
    })?;
    let now = region.now();
    let plan = scripts::plan_commissioning(region.store.as_ref(), &options).await?;
    scripts::create_sets(region.store.as_ref(), node, plan, now).await?;
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                enable_ssh: Some(options.enable_ssh),
                skip_networking: Some(options.skip_networking),
                skip_storage: Some(options.skip_storage),
                error_description: Some(String::new()),
                updated: now,
                ..NodeUpdate::default()
            },
        )
        .await?;
    request_event(
        region,
        node,
        "User starting node commissioning",
        actor,
        options.comment.as_deref(),
    )
    .await?;
    let expires = now + node_timeout(region).await?;
    let owner = match actor {
        Actor::User(user) => Some(Some(user.id)),
        Actor::System => None,
    };
    let updated = transition(
        region,
        node,
        NodeStatus::Commissioning,
        Change {
            owner,
            expires: Some(Some(expires)),
            description: options.comment.clone().unwrap_or_default(),
            ..Change::default()
        },
        actor,
    )
    .await?;
    power_after(
        region.clone(),
        updated.clone(),
        boot_request(&updated),
        Some(node.status),
    );
    Ok(updated)
}

/// A machine that enlisted itself (anonymous `POST machines/` with
/// `commission=true`) is already running the commissioning environment: it
/// goes straight to Commissioning with the enlisting flag, and nothing is
/// powered.
pub async fn start_enlistment(region: &Arc<Region>, node: &Node) -> ServiceResult<Node> {
    let enabled = crate::service::config::get(region.store.as_ref(), "enlist_commissioning")
        .await?
        .as_bool()
        .unwrap_or(true);
    if !enabled {
        return Ok(node.clone());
    }
    let now = region.now();
    let plan =
        scripts::plan_commissioning(region.store.as_ref(), &CommissionOptions::default()).await?;
    scripts::create_sets(region.store.as_ref(), node, plan, now).await?;
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                enlisting: Some(true),
                updated: now,
                ..NodeUpdate::default()
            },
        )
        .await?;
    let expires = now + node_timeout(region).await?;
    transition(
        region,
        node,
        NodeStatus::Commissioning,
        Change {
            expires: Some(Some(expires)),
            description: "Enlisting".into(),
            ..Change::default()
        },
        Actor::System,
    )
    .await
}

/// `abort` (provisioning.md §1.7).
pub async fn abort(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    check_edit(user, node).or_else(|e| if user.is_superuser { Ok(()) } else { Err(e) })?;
    let Some(target) = lifecycle::abort_target(node.status, node.previous_status) else {
        return Err(ServiceError::conflict(format!(
            "Cannot abort in current state: machine {} is {}.",
            node.system_id,
            node.status.label()
        )));
    };
    let (what, aborted) = match node.status {
        NodeStatus::Commissioning => ("User aborting node commissioning", "Aborted commissioning"),
        NodeStatus::Testing => ("User aborting node testing", "Aborted testing"),
        NodeStatus::Deploying => ("User aborting deployment", "Aborted deployment"),
        _ => ("User aborting disk erasing", "Aborted disk erasing"),
    };
    request_event(region, node, what, Actor::User(user), comment).await?;
    scripts::abort_current(region.store.as_ref(), node, region.now()).await?;
    event(
        region,
        node,
        aborted,
        comment.unwrap_or(""),
        EventLevel::Info,
        Actor::User(user),
        false,
    )
    .await?;
    let owner = match node.status {
        NodeStatus::Commissioning => Some(None),
        _ => None,
    };
    let updated = transition(
        region,
        node,
        target,
        Change {
            owner,
            expires: Some(None),
            description: comment.unwrap_or("").to_owned(),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    power_after(
        region.clone(),
        updated.clone(),
        PowerRequest::Off { soft: false },
        None,
    );
    Ok(updated)
}

/// Marks a machine failed: the in-progress status goes to its failure
/// counterpart, running and pending results are aborted, and the reason is
/// kept in `error_description`. A machine already settled is left alone.
pub async fn mark_failed(
    region: &Arc<Region>,
    node: &Node,
    reason: &str,
    power_off: bool,
) -> ServiceResult<Option<Node>> {
    let Some(failed) = node.status.failure_counterpart() else {
        return Ok(None);
    };
    scripts::fail_current(region.store.as_ref(), node, region.now()).await?;
    request_event(
        region,
        node,
        "Marking node failed",
        Actor::System,
        Some(reason),
    )
    .await?;
    let updated = transition(
        region,
        node,
        failed,
        Change {
            expires: Some(None),
            error: Some(reason.to_owned()),
            description: reason.to_owned(),
            ..Change::default()
        },
        Actor::System,
    )
    .await?;
    if power_off && !node.enable_ssh {
        power_after(
            region.clone(),
            updated.clone(),
            PowerRequest::Off { soft: false },
            None,
        );
    }
    Ok(Some(updated))
}

pub async fn mark_broken(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    let owns = node.owner.as_ref().is_some_and(|o| o.id == user.id);
    if !owns && !user.is_superuser {
        return Err(ServiceError::Forbidden(String::new()));
    }
    check_unlocked(node)?;
    if !lifecycle::can_mark_broken(node.status) {
        return Err(ServiceError::conflict(format!(
            "Can't mark a machine broken in the '{}' state.",
            node.status.label()
        )));
    }
    request_event(
        region,
        node,
        "User marking node broken",
        Actor::User(user),
        comment,
    )
    .await?;
    let description = comment.unwrap_or("").to_owned();
    // A machine that is releasable is released (powered off) on the way.
    let releasable = lifecycle::is_releasable(node.status);
    let updated = transition(
        region,
        node,
        NodeStatus::Broken,
        Change {
            expires: Some(None),
            error: Some(description.clone()),
            description,
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    if releasable || lifecycle::is_monitored(node.status) {
        power_after(
            region.clone(),
            updated.clone(),
            PowerRequest::Off { soft: false },
            None,
        );
    }
    Ok(updated)
}

pub async fn mark_fixed(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    admin(user)?;
    if node.status != NodeStatus::Broken {
        return Err(ServiceError::conflict(
            "Can't mark a non-broken node as 'Ready'.",
        ));
    }
    request_event(
        region,
        node,
        "User marking node fixed",
        Actor::User(user),
        comment,
    )
    .await?;
    let target = lifecycle::fixed_target(node.previous_status);
    let updated = transition(
        region,
        node,
        target,
        Change {
            error: Some(String::new()),
            description: comment.unwrap_or("").to_owned(),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    if target == NodeStatus::Ready {
        clear_deployment(region, &updated).await?;
        return reread(region, &node.system_id).await;
    }
    Ok(updated)
}

/// Forgets what a deployment set: OS, kernel, user data, owner data.
pub async fn clear_deployment(region: &Region, node: &Node) -> ServiceResult<()> {
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                osystem: Some(String::new()),
                distro_series: Some(String::new()),
                hwe_kernel: Some(None),
                user_data: Some(None),
                owner_data: Some(Default::default()),
                agent_name: Some(String::new()),
                install_kvm: Some(false),
                ephemeral_deploy: Some(false),
                netboot: Some(true),
                updated: region.now(),
                ..NodeUpdate::default()
            },
        )
        .await?;
    Ok(())
}

/// Options of `release` (api.md §8.5).
#[derive(Default, Clone)]
pub struct ReleaseOptions {
    pub erase: Option<bool>,
    pub secure_erase: Option<bool>,
    pub quick_erase: Option<bool>,
    pub comment: Option<String>,
}

pub async fn release(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    options: ReleaseOptions,
) -> ServiceResult<Node> {
    check_edit(user, node)?;
    if matches!(node.status, NodeStatus::Ready | NodeStatus::Releasing) {
        return Ok(node.clone());
    }
    if !lifecycle::is_releasable(node.status) {
        return Err(ServiceError::conflict(format!(
            "Machine cannot be released in its current state ('{}').",
            node.status.label()
        )));
    }
    let store = region.store.as_ref();
    let erase = match options.erase {
        Some(erase) => erase,
        None => crate::service::config::get(store, "enable_disk_erasing_on_release")
            .await?
            .as_bool()
            .unwrap_or(false),
    };
    request_event(
        region,
        node,
        "User releasing node",
        Actor::User(user),
        options.comment.as_deref(),
    )
    .await?;
    let now = region.now();
    if erase {
        let secure = match options.secure_erase {
            Some(v) => v,
            None => crate::service::config::get(store, "disk_erase_with_secure_erase")
                .await?
                .as_bool()
                .unwrap_or(true),
        };
        let quick = match options.quick_erase {
            Some(v) => v,
            None => crate::service::config::get(store, "disk_erase_with_quick_erase")
                .await?
                .as_bool()
                .unwrap_or(false),
        };
        scripts::create_erase_set(store, node, secure, quick, now).await?;
        let expires = now + node_timeout(region).await?;
        let updated = transition(
            region,
            node,
            NodeStatus::DiskErasing,
            Change {
                expires: Some(Some(expires)),
                description: options.comment.clone().unwrap_or_default(),
                ..Change::default()
            },
            Actor::User(user),
        )
        .await?;
        power_after(
            region.clone(),
            updated.clone(),
            boot_request(&updated),
            None,
        );
        return Ok(updated);
    }
    // Releasing waits for the machine to be off; machines whose power can't
    // be queried are released at once.
    let queryable = !(node.power_type.is_empty() || node.power_type == "manual");
    let expires = queryable.then_some(now + 5 * 60_000);
    let updated = transition(
        region,
        node,
        NodeStatus::Releasing,
        Change {
            expires: Some(expires),
            description: options.comment.clone().unwrap_or_default(),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    if queryable {
        power_after(
            region.clone(),
            updated.clone(),
            PowerRequest::Off { soft: false },
            None,
        );
        Ok(updated)
    } else {
        finish_release(region, &updated).await
    }
}

/// The end of a release: READY (NEW if commissioning never passed), owner
/// and deployment settings cleared.
pub async fn finish_release(region: &Region, node: &Node) -> ServiceResult<Node> {
    clear_deployment(region, node).await?;
    let never_commissioned = node.current_commissioning_set_id.is_none();
    let target = if never_commissioned {
        NodeStatus::New
    } else {
        NodeStatus::Ready
    };
    let node = reread(region, &node.system_id).await?;
    event(
        region,
        &node,
        "Released",
        "Release completed",
        EventLevel::Info,
        Actor::System,
        false,
    )
    .await?;
    transition(
        region,
        &node,
        target,
        Change {
            expires: Some(None),
            ..Change::default()
        },
        Actor::System,
    )
    .await
}

pub async fn rescue_mode(region: &Arc<Region>, user: &User, node: &Node) -> ServiceResult<Node> {
    admin(user)?;
    check_unlocked(node)?;
    lifecycle::check(node.status, NodeStatus::EnteringRescueMode).map_err(|_| {
        ServiceError::conflict(format!(
            "Can't enter rescue mode from the '{}' state.",
            node.status.label()
        ))
    })?;
    request_event(
        region,
        node,
        "User starting rescue mode",
        Actor::User(user),
        None,
    )
    .await?;
    let expires = region.now() + node_timeout(region).await?;
    let updated = transition(
        region,
        node,
        NodeStatus::EnteringRescueMode,
        Change {
            expires: Some(Some(expires)),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    power_after(
        region.clone(),
        updated.clone(),
        PowerRequest::Cycle,
        Some(node.status),
    );
    Ok(updated)
}

pub async fn exit_rescue_mode(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
) -> ServiceResult<Node> {
    admin(user)?;
    if !matches!(
        node.status,
        NodeStatus::RescueMode
            | NodeStatus::EnteringRescueMode
            | NodeStatus::FailedEnteringRescueMode
            | NodeStatus::FailedExitingRescueMode
    ) {
        return Err(ServiceError::conflict(format!(
            "Can't exit rescue mode from the '{}' state.",
            node.status.label()
        )));
    }
    request_event(
        region,
        node,
        "User stopping rescue mode",
        Actor::User(user),
        None,
    )
    .await?;
    let back = node.previous_status;
    let updated = transition(
        region,
        node,
        NodeStatus::ExitingRescueMode,
        Change {
            expires: Some(Some(region.now() + 5 * 60_000)),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    let request = if back == NodeStatus::Deployed {
        PowerRequest::Cycle
    } else {
        PowerRequest::Off { soft: false }
    };
    let power = region.power.execute(&updated, request).await;
    match power {
        Ok(state) => {
            if let Some(state) = state {
                region
                    .store
                    .update_node(
                        node.id,
                        NodeUpdate {
                            power_state: Some(state),
                            updated: region.now(),
                            ..NodeUpdate::default()
                        },
                    )
                    .await?;
            }
            let current = reread(region, &node.system_id).await?;
            let target = if lifecycle::allowed(NodeStatus::ExitingRescueMode, back) {
                back
            } else {
                NodeStatus::Ready
            };
            event(
                region,
                &current,
                "Exited rescue mode",
                "",
                EventLevel::Info,
                Actor::System,
                false,
            )
            .await?;
            transition(
                region,
                &current,
                target,
                Change {
                    expires: Some(None),
                    ..Change::default()
                },
                Actor::System,
            )
            .await
        }
        Err(failure) => {
            let current = reread(region, &node.system_id).await?;
            transition(
                region,
                &current,
                NodeStatus::FailedExitingRescueMode,
                Change {
                    expires: Some(None),
                    error: Some(failure.message.clone()),
                    description: failure.message,
                    ..Change::default()
                },
                Actor::System,
            )
            .await
        }
    }
}

pub async fn test(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    testing_scripts: Option<Vec<String>>,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    admin(user)?;
    check_unlocked(node)?;
    if node.status == NodeStatus::New && node.current_commissioning_set_id.is_none() {
        return Err(ServiceError::conflict(
            "Can't test a machine that has never been commissioned; commission it first.",
        ));
    }
    lifecycle::check(node.status, NodeStatus::Testing).map_err(|_| {
        ServiceError::conflict(format!(
            "Can't test a machine in the '{}' state.",
            node.status.label()
        ))
    })?;
    let now = region.now();
    let results = scripts::plan_testing(region.store.as_ref(), testing_scripts.as_deref()).await?;
    region
        .store
        .create_script_set(node.id, result_type::TESTING, results, now)
        .await?;
    request_event(
        region,
        node,
        "User starting testing",
        Actor::User(user),
        comment,
    )
    .await?;
    let expires = now + node_timeout(region).await?;
    let updated = transition(
        region,
        node,
        NodeStatus::Testing,
        Change {
            expires: Some(Some(expires)),
            description: comment.unwrap_or("").to_owned(),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await?;
    power_after(
        region.clone(),
        updated.clone(),
        boot_request(&updated),
        Some(node.status),
    );
    Ok(updated)
}

pub async fn override_failed_testing(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    admin(user)?;
    if node.status != NodeStatus::FailedTesting {
        return Err(ServiceError::conflict(format!(
            "Unable to override failed testing of a machine in the '{}' state.",
            node.status.label()
        )));
    }
    request_event(
        region,
        node,
        "User overrode 'Failed testing' status",
        Actor::User(user),
        comment,
    )
    .await?;
    let target = lifecycle::testing_return(node.previous_status);
    let target = if lifecycle::allowed(NodeStatus::FailedTesting, target) {
        target
    } else {
        NodeStatus::Ready
    };
    transition(
        region,
        node,
        target,
        Change {
            description: comment.unwrap_or("").to_owned(),
            ..Change::default()
        },
        Actor::User(user),
    )
    .await
}

pub async fn lock(
    region: &Region,
    user: &User,
    node: &Node,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    check_edit(user, node).or_else(|e| {
        if matches!(e, ServiceError::Forbidden(ref m) if m.contains("locked")) {
            Ok(())
        } else {
            Err(e)
        }
    })?;
    if node.locked {
        return Err(ServiceError::conflict("Machine is already locked"));
    }
    if !matches!(node.status, NodeStatus::Deployed | NodeStatus::Deploying) {
        return Err(ServiceError::conflict(format!(
            "Can't lock a machine in the '{}' state; only Deployed or Deploying.",
            node.status.label()
        )));
    }
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                locked: Some(true),
                updated: region.now(),
                ..NodeUpdate::default()
            },
        )
        .await?;
    request_event(
        region,
        node,
        "User locking node",
        Actor::User(user),
        comment,
    )
    .await?;
    reread(region, &node.system_id).await
}

pub async fn unlock(
    region: &Region,
    user: &User,
    node: &Node,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    let owns = node.owner.as_ref().is_some_and(|o| o.id == user.id);
    if !owns && !user.is_superuser {
        return Err(ServiceError::Forbidden(String::new()));
    }
    if !node.locked {
        return Err(ServiceError::conflict("Machine is not locked"));
    }
    region
        .store
        .update_node(
            node.id,
            NodeUpdate {
                locked: Some(false),
                updated: region.now(),
                ..NodeUpdate::default()
            },
        )
        .await?;
    request_event(
        region,
        node,
        "User unlocking node",
        Actor::User(user),
        comment,
    )
    .await?;
    reread(region, &node.system_id).await
}

pub async fn power_on(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    user_data: Option<&str>,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    check_edit(user, node)?;
    if node.owner.is_none() {
        return Err(ServiceError::conflict(
            "Can't start node: it hasn't been allocated.",
        ));
    }
    if let Some(data) = user_data {
        region
            .store
            .update_node(
                node.id,
                NodeUpdate {
                    user_data: Some(Some(data.to_owned())),
                    updated: region.now(),
                    ..NodeUpdate::default()
                },
            )
            .await?;
    }
    request_event(
        region,
        node,
        "User powering up node",
        Actor::User(user),
        comment,
    )
    .await?;
    power_after(region.clone(), node.clone(), PowerRequest::On, None);
    reread(region, &node.system_id).await
}

pub async fn power_off(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    soft: bool,
    comment: Option<&str>,
) -> ServiceResult<Node> {
    check_edit(user, node)?;
    request_event(
        region,
        node,
        "User powering down node",
        Actor::User(user),
        comment,
    )
    .await?;
    power_after(
        region.clone(),
        node.clone(),
        PowerRequest::Off { soft },
        None,
    );
    reread(region, &node.system_id).await
}

/// Asks the BMC now, stores and returns the state; BMC trouble is a 503.
pub async fn query_power_state(region: &Region, node: &Node) -> ServiceResult<PowerState> {
    let query = region.power.execute(node, PowerRequest::Query);
    let result = tokio::time::timeout(crate::power::QUERY_TIMEOUT, query)
        .await
        .map_err(|_| ServiceError::Unavailable {
            message: format!("Timed out querying the power state of {}.", node.system_id),
            retry: true,
        })?;
    match result {
        Ok(Some(state)) => {
            region
                .store
                .update_node(
                    node.id,
                    NodeUpdate {
                        power_state: Some(state),
                        updated: region.now(),
                        ..NodeUpdate::default()
                    },
                )
                .await?;
            region.changes.power(node, state);
            Ok(state)
        }
        Ok(None) => Ok(PowerState::Unknown),
        Err(failure) => {
            event(
                region,
                node,
                "Failed to query node's BMC",
                &failure.message,
                EventLevel::Warning,
                Actor::System,
                false,
            )
            .await?;
            region
                .store
                .update_node(
                    node.id,
                    NodeUpdate {
                        power_state: Some(PowerState::Error),
                        updated: region.now(),
                        ..NodeUpdate::default()
                    },
                )
                .await?;
            Err(ServiceError::Unavailable {
                message: failure.message,
                retry: failure.retryable,
            })
        }
    }
}
