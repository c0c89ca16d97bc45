//! The power-state poller: keeps every machine's `power_state` current by asking its
//! BMC through the region's [`PowerControl`] port (directly in the all-in-one; a
//! rack-routed port changes nothing here).
//!
//! Scheduling is `maas-power`'s pure [`Schedule`]: at most `concurrency` queries at
//! once and `per_bmc_concurrency` per BMC address, each bounded by `query_timeout`, so a
//! hung BMC holds one slot and delays nobody else; a BMC that keeps failing is asked
//! less and less often, up to `max_backoff`. The machines to poll are re-read from the
//! store once per interval with one query ([`maas_store::NodeStore::power_polled_nodes`]);
//! a query reads its one node. A change of state is stored, published and logged; a
//! failure sets `power_state` to `error` and logs the BMC's message once per run of
//! failures.

use std::collections::HashMap;
use std::sync::Arc;

use maas_domain::PowerState;
use maas_power::poller::{PollerConfig, Schedule};
use maas_store::{EventLevel, Node, NodeUpdate};
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::error::ServiceResult;
use crate::power::{PowerFailure, PowerRequest};
use crate::region::Region;
use crate::service::lifecycle::{self as life, Actor};

/// What one query found.
enum Outcome {
    /// The node is gone, or its power type no longer reports state.
    Gone,
    State(Box<Node>, PowerState),
    Failed(Box<Node>, PowerFailure),
}

/// Polls until the task is dropped or aborted.
pub async fn run(region: Arc<Region>, config: PollerConfig) {
    let mut schedule: Schedule<String> = Schedule::new(config);
    // system_id → the BMC address it was scheduled under.
    let mut known: HashMap<String, String> = HashMap::new();
    let mut running: JoinSet<(String, Outcome)> = JoinSet::new();
    let mut refresh_at = Instant::now();
    loop {
        let now = Instant::now();
        if now >= refresh_at {
            refresh(&region, &mut schedule, &mut known, now).await;
            refresh_at = now + config.interval;
        }
        for system_id in schedule.take_due(now) {
            let region = region.clone();
            running.spawn(async move {
                let outcome = query(&region, &system_id, config.query_timeout).await;
                (system_id, outcome)
            });
        }
        let wake = schedule
            .next_due()
            .map_or(refresh_at, |due| due.min(refresh_at));
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            Some(joined) = running.join_next(), if !running.is_empty() => {
                let Ok((system_id, outcome)) = joined else { continue };
                let finished = Instant::now();
                let result = match &outcome {
                    Outcome::Gone => {
                        schedule.remove(&system_id);
                        known.remove(&system_id);
                        continue;
                    }
                    Outcome::State(_, state) => Ok(*state),
                    Outcome::Failed(..) => Err(()),
                };
                let Some(completion) = schedule.complete(&system_id, finished, result) else {
                    continue;
                };
                if completion.report
                    && let Err(error) = record(&region, outcome, completion.consecutive_failures).await
                {
                    tracing::warn!(system_id, %error, "recording a polled power state failed");
                }
            }
        }
    }
}

/// Brings the schedule in line with the machines the store says have a BMC.
async fn refresh(
    region: &Region,
    schedule: &mut Schedule<String>,
    known: &mut HashMap<String, String>,
    now: Instant,
) {
    let nodes = match region.store.power_polled_nodes().await {
        Ok(nodes) => nodes,
        Err(error) => {
            tracing::warn!(%error, "listing machines for the power poller failed");
            return;
        }
    };
    let mut current: HashMap<String, String> = HashMap::with_capacity(nodes.len());
    for node in nodes {
        let bmc = if node.power_address.is_empty() {
            // No address: the node is its own BMC for the per-BMC limit.
            format!("{}:{}", node.power_type, node.system_id)
        } else {
            node.power_address
        };
        current.insert(node.system_id, bmc);
    }
    known.retain(|system_id, bmc| {
        let keep = current.get(system_id) == Some(bmc);
        if !keep {
            schedule.remove(system_id);
        }
        keep
    });
    for (system_id, bmc) in current {
        if let std::collections::hash_map::Entry::Vacant(entry) = known.entry(system_id) {
            schedule.insert(entry.key().clone(), &bmc, now);
            entry.insert(bmc);
        }
    }
}

async fn query(region: &Region, system_id: &str, timeout: std::time::Duration) -> Outcome {
    let node = match region.store.node_by_system_id(system_id).await {
        Ok(Some(node)) => node,
        Ok(None) => return Outcome::Gone,
        Err(error) => {
            tracing::warn!(system_id, %error, "reading a machine for the power poller failed");
            return Outcome::Gone;
        }
    };
    match tokio::time::timeout(timeout, region.power.execute(&node, PowerRequest::Query)).await {
        Ok(Ok(Some(state))) => Outcome::State(Box::new(node), state),
        Ok(Ok(None)) => Outcome::Gone,
        Ok(Err(failure)) => Outcome::Failed(Box::new(node), failure),
        Err(_) => {
            let bmc = node
                .power_parameters
                .get("power_address")
                .cloned()
                .unwrap_or_default();
            let failure = PowerFailure {
                message: format!(
                    "{} BMC {bmc}: power query timed out after {} s",
                    node.power_type,
                    timeout.as_secs()
                ),
                retryable: true,
            };
            Outcome::Failed(Box::new(node), failure)
        }
    }
}

async fn store_state(region: &Region, node: &Node, state: PowerState) -> ServiceResult<()> {
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
    Ok(())
}

async fn record(region: &Region, outcome: Outcome, consecutive_failures: u32) -> ServiceResult<()> {
    match outcome {
        Outcome::Gone => Ok(()),
        Outcome::State(node, state) => {
            if node.power_state == state {
                return Ok(());
            }
            tracing::info!(system_id = %node.system_id, from = %node.power_state.as_str(), to = %state.as_str(), "power state changed");
            store_state(region, &node, state).await?;
            let what = match state {
                PowerState::On => "Powered on",
                PowerState::Off => "Powered off",
                _ => "Power state changed",
            };
            life::event(
                region,
                &node,
                what,
                &format!(
                    "power state is {} (was {})",
                    state.as_str(),
                    node.power_state.as_str()
                ),
                EventLevel::Debug,
                Actor::System,
                false,
            )
            .await
        }
        Outcome::Failed(node, failure) => {
            tracing::warn!(system_id = %node.system_id, error = %failure, consecutive_failures, "power query failed");
            if node.power_state != PowerState::Error {
                store_state(region, &node, PowerState::Error).await?;
            }
            // One event per run of failures, not one per poll.
            if consecutive_failures == 1 {
                life::event(
                    region,
                    &node,
                    "Failed to query node's BMC",
                    &failure.message,
                    EventLevel::Error,
                    Actor::System,
                    false,
                )
                .await?;
            }
            Ok(())
        }
    }
}
