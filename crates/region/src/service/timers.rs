//! Status timers and heartbeat supervision (provisioning.md §1.5). The
//! deadlines live in the database (`status_expires`, script sets'
//! `last_ping`), so a region restart loses none of them.

use std::sync::Arc;

use maas_domain::NodeStatus;
use maas_store::result_type;

use crate::error::ServiceResult;
use crate::region::Region;
use crate::service::lifecycle as life;

pub async fn run(region: Arc<Region>) {
    let mut ticker = tokio::time::interval(region.config.monitor_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        if let Err(error) = check(&region).await {
            tracing::warn!(%error, "checking status timers failed");
        }
    }
}

/// One pass: every machine whose timer ran out, or whose script runner went
/// quiet for longer than `node_timeout`, is marked failed.
pub async fn check(region: &Arc<Region>) -> ServiceResult<usize> {
    let now = region.now();
    let timeout = life::node_timeout(region).await?;
    let mut failed = 0;
    for expired in region.store.expired_nodes(now).await? {
        let node = match region.store.node_by_system_id(&expired.system_id).await? {
            Some(node)
                if node.status == expired.status
                    && node.status_expires.is_some_and(|e| e <= now) =>
            {
                node
            }
            _ => continue,
        };
        let minutes = (now - node.updated).max(timeout) / 60_000;
        let reason = format!(
            "Node operation '{}' timed out after {minutes} minutes.",
            node.status.label()
        );
        tracing::warn!(system_id = %node.system_id, status = %node.status, "status timer expired");
        if life::mark_failed(region, &node, &reason, true)
            .await?
            .is_some()
        {
            failed += 1;
        } else {
            // Nothing to fail (the status settled): just drop the timer.
            region
                .store
                .update_node(
                    node.id,
                    maas_store::NodeUpdate {
                        status_expires: Some(None),
                        updated: now,
                        ..Default::default()
                    },
                )
                .await?;
        }
    }
    let quiet = [
        (NodeStatus::Commissioning, result_type::COMMISSIONING),
        (NodeStatus::Testing, result_type::TESTING),
    ];
    for (status, kind) in quiet {
        for silent in region
            .store
            .silent_nodes(&[status], kind, now - timeout)
            .await?
        {
            let Some(node) = region.store.node_by_system_id(&silent.system_id).await? else {
                continue;
            };
            if node.status != status {
                continue;
            }
            let reason = format!(
                "Node operation '{}' timed out: no heartbeat for {} minutes.",
                status.label(),
                timeout / 60_000
            );
            tracing::warn!(system_id = %node.system_id, status = %status, "heartbeats stopped");
            if life::mark_failed(region, &node, &reason, true)
                .await?
                .is_some()
            {
                failed += 1;
            }
        }
    }
    Ok(failed)
}
