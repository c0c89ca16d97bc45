//! In-process change notifications: services publish a [`NodeChange`] when
//! a machine's status or power state is written, and the dashboard's
//! server-sent event streams subscribe. Nothing is stored; a subscriber
//! that falls behind is told it lagged and re-reads what it shows.
//! [`Changes::close`] ends every subscription, so open event streams
//! don't hold up a graceful shutdown.

use std::sync::Mutex;

use maas_domain::{NodeStatus, PowerState};
use maas_store::Node;
use tokio::sync::broadcast;

/// What changed about one node, enough to decide who may see it.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeChange {
    pub system_id: String,
    pub hostname: String,
    pub owner_id: Option<i64>,
    pub status: NodeStatus,
    pub power_state: PowerState,
}

impl NodeChange {
    pub fn of(node: &Node) -> NodeChange {
        NodeChange {
            system_id: node.system_id.clone(),
            hostname: node.hostname.clone(),
            owner_id: node.owner.as_ref().map(|o| o.id),
            status: node.status,
            power_state: node.power_state,
        }
    }
}

/// The region's change channel. Publishing never waits: with no
/// subscribers a change is dropped, and slow subscribers lag.
pub struct Changes {
    /// `None` once closed.
    sender: Mutex<Option<broadcast::Sender<NodeChange>>>,
}

impl Changes {
    /// A channel that holds up to `capacity` changes per subscriber.
    pub fn new(capacity: usize) -> Changes {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Changes {
            sender: Mutex::new(Some(sender)),
        }
    }

    fn sender(&self) -> Option<broadcast::Sender<NodeChange>> {
        // The lock guards a clone or a take; a panic can't leave it half done.
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub fn publish(&self, change: NodeChange) {
        if let Some(sender) = self.sender() {
            // An error only means nobody is listening.
            let _ = sender.send(change);
        }
    }

    /// Publishes the node as it now is.
    pub fn node(&self, node: &Node) {
        self.publish(NodeChange::of(node));
    }

    /// Publishes the node with a power state just written for it.
    pub fn power(&self, node: &Node, state: PowerState) {
        let mut change = NodeChange::of(node);
        change.power_state = state;
        self.publish(change);
    }

    /// A subscription; after [`Changes::close`] it reports closed at once.
    pub fn subscribe(&self) -> broadcast::Receiver<NodeChange> {
        match self.sender() {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(1);
                drop(sender);
                receiver
            }
        }
    }

    /// Ends every subscription (at shutdown); later changes go nowhere.
    pub fn close(&self) {
        self.sender
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
    }
}

impl Default for Changes {
    fn default() -> Changes {
        Changes::new(1024)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::broadcast::error::RecvError;

    fn change(system_id: &str) -> NodeChange {
        NodeChange {
            system_id: system_id.to_owned(),
            hostname: "h".to_owned(),
            owner_id: None,
            status: NodeStatus::Ready,
            power_state: PowerState::Off,
        }
    }

    #[tokio::test]
    async fn subscribers_hear_changes_until_closed() {
        let changes = Changes::new(2);
        changes.publish(change("nobody-listens"));
        let mut receiver = changes.subscribe();
        changes.publish(change("a"));
        assert_eq!(receiver.recv().await.unwrap().system_id, "a");
        // A slow subscriber is told it lagged.
        for id in ["b", "c", "d"] {
            changes.publish(change(id));
        }
        assert!(matches!(receiver.recv().await, Err(RecvError::Lagged(1))));
        assert_eq!(receiver.recv().await.unwrap().system_id, "c");
        assert_eq!(receiver.recv().await.unwrap().system_id, "d");
        changes.close();
        assert!(matches!(receiver.recv().await, Err(RecvError::Closed)));
        let mut late = changes.subscribe();
        changes.publish(change("e"));
        assert!(matches!(late.recv().await, Err(RecvError::Closed)));
    }
}
