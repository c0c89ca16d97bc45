//! The machine actions a person picks from a menu (the dashboard's action
//! menu and bulk actions), as one closed set. Each action calls the same
//! service function as its REST operation, so the checks are the API's;
//! [`available`] says which actions to offer for a machine, and the
//! service refuses anything else when it runs.

use std::sync::Arc;

use maas_domain::{NodeStatus, NodeType, lifecycle};
use maas_store::{Node, User};

use crate::error::{ServiceError, ServiceResult};
use crate::http::params::Params;
use crate::region::Region;
use crate::service::allocation::{self, DeployOptions};
use crate::service::lifecycle::{self as life, Actor, CommissionOptions, ReleaseOptions};
use crate::service::{grouping, machines};

/// Which action, without its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ActionKind {
    Commission,
    Allocate,
    Deploy,
    Release,
    Abort,
    PowerOn,
    PowerOff,
    Test,
    RescueMode,
    ExitRescueMode,
    MarkBroken,
    MarkFixed,
    OverrideFailedTesting,
    Lock,
    Unlock,
    SetZone,
    SetPool,
    Tag,
    Untag,
    Delete,
}

impl ActionKind {
    pub const ALL: [ActionKind; 20] = [
        ActionKind::Commission,
        ActionKind::Allocate,
        ActionKind::Deploy,
        ActionKind::Release,
        ActionKind::Abort,
        ActionKind::PowerOn,
        ActionKind::PowerOff,
        ActionKind::Test,
        ActionKind::RescueMode,
        ActionKind::ExitRescueMode,
        ActionKind::MarkBroken,
        ActionKind::MarkFixed,
        ActionKind::OverrideFailedTesting,
        ActionKind::Lock,
        ActionKind::Unlock,
        ActionKind::SetZone,
        ActionKind::SetPool,
        ActionKind::Tag,
        ActionKind::Untag,
        ActionKind::Delete,
    ];

    /// The name in forms, the REST operation's where there is one.
    pub fn name(self) -> &'static str {
        match self {
            ActionKind::Commission => "commission",
            ActionKind::Allocate => "allocate",
            ActionKind::Deploy => "deploy",
            ActionKind::Release => "release",
            ActionKind::Abort => "abort",
            ActionKind::PowerOn => "power_on",
            ActionKind::PowerOff => "power_off",
            ActionKind::Test => "test",
            ActionKind::RescueMode => "rescue_mode",
            ActionKind::ExitRescueMode => "exit_rescue_mode",
            ActionKind::MarkBroken => "mark_broken",
            ActionKind::MarkFixed => "mark_fixed",
            ActionKind::OverrideFailedTesting => "override_failed_testing",
            ActionKind::Lock => "lock",
            ActionKind::Unlock => "unlock",
            ActionKind::SetZone => "set_zone",
            ActionKind::SetPool => "set_pool",
            ActionKind::Tag => "tag",
            ActionKind::Untag => "untag",
            ActionKind::Delete => "delete",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            ActionKind::Commission => "Commission",
            ActionKind::Allocate => "Allocate",
            ActionKind::Deploy => "Deploy",
            ActionKind::Release => "Release",
            ActionKind::Abort => "Abort",
            ActionKind::PowerOn => "Power on",
            ActionKind::PowerOff => "Power off",
            ActionKind::Test => "Test",
            ActionKind::RescueMode => "Enter rescue mode",
            ActionKind::ExitRescueMode => "Exit rescue mode",
            ActionKind::MarkBroken => "Mark broken",
            ActionKind::MarkFixed => "Mark fixed",
            ActionKind::OverrideFailedTesting => "Override failed testing",
            ActionKind::Lock => "Lock",
            ActionKind::Unlock => "Unlock",
            ActionKind::SetZone => "Set zone",
            ActionKind::SetPool => "Set resource pool",
            ActionKind::Tag => "Add tag",
            ActionKind::Untag => "Remove tag",
            ActionKind::Delete => "Delete",
        }
    }

    /// The form field holding the action's argument, if it takes one.
    pub fn argument(self) -> Option<&'static str> {
        match self {
            ActionKind::SetZone => Some("zone"),
            ActionKind::SetPool => Some("pool"),
            ActionKind::Tag | ActionKind::Untag => Some("tag"),
            _ => None,
        }
    }

    pub fn parse(name: &str) -> Option<ActionKind> {
        ActionKind::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// An action with its arguments, from form fields.
#[derive(Clone, Debug)]
pub struct MachineAction {
    pub kind: ActionKind,
    /// Zone, pool or tag name for the actions that take one.
    pub argument: Option<String>,
    pub comment: Option<String>,
}

impl MachineAction {
    /// Reads `action`, its argument and `comment` from a form; a missing or
    /// unknown action and a missing argument are field errors.
    pub fn from_params(params: &Params) -> ServiceResult<MachineAction> {
        let name = params
            .get("action")
            .filter(|a| !a.is_empty())
            .ok_or_else(|| ServiceError::field("action", "Choose an action."))?;
        let kind = ActionKind::parse(name).ok_or_else(|| {
            ServiceError::field(
                "action",
                format!("Select a valid choice. {name} is not one of the available choices."),
            )
        })?;
        let argument = match kind.argument() {
            Some(field) => Some(
                params
                    .get(field)
                    .map(str::trim)
                    .filter(|v| !v.is_empty())
                    .ok_or_else(|| ServiceError::field(field, "This field is required."))?
                    .to_owned(),
            ),
            None => None,
        };
        Ok(MachineAction {
            kind,
            argument,
            comment: params
                .get("comment")
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        })
    }
}

fn owns(user: &User, node: &Node) -> bool {
    node.owner.as_ref().is_some_and(|o| o.id == user.id)
}

/// The actions worth offering `user` for `node`: the ones whose permission
/// and state checks would pass now. Running an action checks again.
pub fn available(user: &User, node: &Node) -> Vec<ActionKind> {
    let admin = user.is_superuser;
    let status = node.status;
    let editable = life::check_edit(user, node).is_ok();
    let owner_or_admin = admin || owns(user, node);
    ActionKind::ALL
        .into_iter()
        .filter(|kind| match kind {
            ActionKind::Commission => {
                admin
                    && !node.locked
                    && !node.power_type.is_empty()
                    && lifecycle::allowed(status, NodeStatus::Commissioning)
            }
            ActionKind::Allocate => status == NodeStatus::Ready && node.owner.is_none(),
            ActionKind::Deploy => {
                !node.locked
                    && match status {
                        NodeStatus::Ready => node.owner.is_none() || owns(user, node),
                        NodeStatus::Allocated => owner_or_admin,
                        _ => false,
                    }
            }
            ActionKind::Release => editable && lifecycle::is_releasable(status),
            ActionKind::Abort => {
                (admin || editable)
                    && lifecycle::abort_target(status, node.previous_status).is_some()
            }
            ActionKind::PowerOn => editable && node.owner.is_some(),
            ActionKind::PowerOff => editable,
            ActionKind::Test => {
                admin
                    && !node.locked
                    && !(status == NodeStatus::New && node.current_commissioning_set_id.is_none())
                    && lifecycle::allowed(status, NodeStatus::Testing)
            }
            ActionKind::RescueMode => {
                admin && !node.locked && lifecycle::allowed(status, NodeStatus::EnteringRescueMode)
            }
            ActionKind::ExitRescueMode => {
                admin
                    && matches!(
                        status,
                        NodeStatus::RescueMode
                            | NodeStatus::EnteringRescueMode
                            | NodeStatus::FailedEnteringRescueMode
                            | NodeStatus::FailedExitingRescueMode
                    )
            }
            ActionKind::MarkBroken => {
                owner_or_admin && !node.locked && lifecycle::can_mark_broken(status)
            }
            ActionKind::MarkFixed => admin && status == NodeStatus::Broken,
            ActionKind::OverrideFailedTesting => admin && status == NodeStatus::FailedTesting,
            ActionKind::Lock => {
                !node.locked
                    && owner_or_admin
                    && node.owner.is_some()
                    && matches!(status, NodeStatus::Deployed | NodeStatus::Deploying)
            }
            ActionKind::Unlock => node.locked && owner_or_admin,
            ActionKind::SetZone | ActionKind::SetPool | ActionKind::Delete => admin && !node.locked,
            ActionKind::Tag | ActionKind::Untag => admin,
        })
        .collect()
}

/// Runs one action on one machine the caller can see. Returns the machine
/// as it is afterwards, or `None` once deleted.
pub async fn run(
    region: &Arc<Region>,
    user: &User,
    node: &Node,
    action: &MachineAction,
) -> ServiceResult<Option<Node>> {
    let comment = action.comment.as_deref();
    let store = region.store.as_ref();
    let argument = || {
        action
            .argument
            .as_deref()
            .ok_or_else(|| ServiceError::missing(action.kind.argument().unwrap_or("argument")))
    };
    let node = match action.kind {
        ActionKind::Commission => {
            let options = CommissionOptions {
                comment: action.comment.clone(),
                ..CommissionOptions::default()
            };
            life::commission(region, Actor::User(user), node, options).await?
        }
        ActionKind::Allocate => {
            let mut params = Params::new();
            params.push("system_id", node.system_id.clone());
            if let Some(comment) = comment {
                params.push("comment", comment);
            }
            let request = allocation::parse_request(region, &params, user).await?;
            allocation::allocate(region, user, request).await?.0
        }
        ActionKind::Deploy => {
            let mut params = Params::new();
            if let Some(comment) = comment {
                params.push("comment", comment);
            }
            allocation::deploy(region, user, node, DeployOptions::from_params(&params)?).await?
        }
        ActionKind::Release => {
            let options = ReleaseOptions {
                comment: action.comment.clone(),
                ..ReleaseOptions::default()
            };
            life::release(region, user, node, options).await?
        }
        ActionKind::Abort => life::abort(region, user, node, comment).await?,
        ActionKind::PowerOn if node.status == NodeStatus::Allocated => {
            // As `op=power_on` does: powering on an allocated machine deploys it.
            allocation::deploy(
                region,
                user,
                node,
                DeployOptions::from_params(&Params::new())?,
            )
            .await?
        }
        ActionKind::PowerOn => life::power_on(region, user, node, None, comment).await?,
        ActionKind::PowerOff => life::power_off(region, user, node, false, comment).await?,
        ActionKind::Test => life::test(region, user, node, None, comment).await?,
        ActionKind::RescueMode => life::rescue_mode(region, user, node).await?,
        ActionKind::ExitRescueMode => life::exit_rescue_mode(region, user, node).await?,
        ActionKind::MarkBroken => life::mark_broken(region, user, node, comment).await?,
        ActionKind::MarkFixed => life::mark_fixed(region, user, node, comment).await?,
        ActionKind::OverrideFailedTesting => {
            life::override_failed_testing(region, user, node, comment).await?
        }
        ActionKind::Lock => life::lock(region, user, node, comment).await?,
        ActionKind::Unlock => life::unlock(region, user, node, comment).await?,
        ActionKind::SetZone | ActionKind::SetPool => {
            let field = if action.kind == ActionKind::SetZone {
                "zone"
            } else {
                "pool"
            };
            let mut params = Params::new();
            params.push(field, argument()?);
            machines::update(store, user, node, &params, region.now()).await?;
            let updated = life::reread(region, &node.system_id).await?;
            region.changes.node(&updated);
            updated
        }
        ActionKind::Tag | ActionKind::Untag => {
            let tag = grouping::tag(store, argument()?)
                .await
                .map_err(|e| match e {
                    ServiceError::NotFound(_) => ServiceError::field(
                        "tag",
                        format!("No such tag: {}.", argument().unwrap_or("")),
                    ),
                    other => other,
                })?;
            let mut params = Params::new();
            params.push(
                if action.kind == ActionKind::Tag {
                    "add"
                } else {
                    "remove"
                },
                node.system_id.clone(),
            );
            grouping::update_nodes(store, user, &tag, &params).await?;
            let updated = life::reread(region, &node.system_id).await?;
            region.changes.node(&updated);
            updated
        }
        ActionKind::Delete => {
            machines::delete(store, user, node).await?;
            region.changes.node(node);
            return Ok(None);
        }
    };
    Ok(Some(node))
}

/// What a bulk action did: machines it worked on, and the others with why.
#[derive(Debug, Default)]
pub struct BulkOutcome {
    pub done: Vec<String>,
    pub failed: Vec<(String, String)>,
}

/// A refusal as a person reads it (403s with no body say so in words).
pub fn reason(error: &ServiceError) -> String {
    match error {
        ServiceError::Forbidden(message) if message.is_empty() => {
            "You don't have permission to do that.".to_owned()
        }
        ServiceError::Validation(fields) => fields
            .iter()
            .flat_map(|(field, messages)| messages.iter().map(move |m| format!("{field}: {m}")))
            .collect::<Vec<_>>()
            .join(" "),
        ServiceError::Store(maas_store::StoreError::NotFound { what }) => {
            format!("No {what} matches the given query.")
        }
        ServiceError::Store(_) => "The database failed; see the region log.".to_owned(),
        other => other.to_string(),
    }
}

/// Runs the action on each machine in turn. Machines the caller can't see
/// and refusals are reported per machine; a failing machine doesn't stop
/// the others. Validation of the action itself fails the whole request.
pub async fn run_many(
    region: &Arc<Region>,
    user: &User,
    system_ids: &[String],
    action: &MachineAction,
) -> ServiceResult<BulkOutcome> {
    if system_ids.is_empty() {
        return Err(ServiceError::field(
            "system_id",
            "Select at least one machine.",
        ));
    }
    let mut outcome = BulkOutcome::default();
    for system_id in system_ids {
        let node = match machines::visible_machine(region.store.as_ref(), user, system_id).await {
            Ok(node) => node,
            Err(error) => {
                outcome.failed.push((system_id.clone(), reason(&error)));
                continue;
            }
        };
        match run(region, user, &node, action).await {
            Ok(_) => outcome.done.push(node.hostname.clone()),
            Err(error @ ServiceError::Store(maas_store::StoreError::Backend(_))) => {
                return Err(error);
            }
            Err(error) => outcome.failed.push((node.hostname.clone(), reason(&error))),
        }
    }
    Ok(outcome)
}

/// `machines/` creation from the add-machine form: the API's checks and
/// its rule for starting commissioning (asked for or not refused, an admin
/// caller, and a power type to boot the machine with).
pub async fn add_machine(
    region: &Arc<Region>,
    user: &User,
    params: &Params,
) -> ServiceResult<Node> {
    let input = machines::CreateMachine::from_params(params)?;
    let commission = input.commission.unwrap_or(true)
        && !input.deployed
        && user.is_superuser
        && !input.power_type.is_empty();
    let node = machines::create(
        region.store.as_ref(),
        machines::Creator::User(user),
        input,
        region.now(),
    )
    .await?;
    region.changes.node(&node);
    if commission {
        return life::commission(
            region,
            Actor::User(user),
            &node,
            CommissionOptions::default(),
        )
        .await;
    }
    Ok(node)
}

/// Whether the node is one the machine pages show (not a device or controller).
pub fn is_machine(node: &Node) -> bool {
    node.node_type == NodeType::Machine
}
