//! In-process change notifications: services publish a [`NodeChange`] when
//! a machine's status or power state is written, and the dashboard's
//! server-sent event streams subscribe. Nothing is stored; a subscriber
//! that falls behind is told it lagged and re-reads what it shows.

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
    sender: broadcast::Sender<NodeChange>,
}

impl Changes {
    /// A channel that holds up to `capacity` changes per subscriber.
    pub fn new(capacity: usize) -> Changes {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Changes { sender }
    }

    pub fn publish(&self, change: NodeChange) {
        // An error only means nobody is listening.
        let _ = self.sender.send(change);
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

    pub fn subscribe(&self) -> broadcast::Receiver<NodeChange> {
        self.sender.subscribe()
    }
}

impl Default for Changes {
    fn default() -> Changes {
        Changes::new(1024)
    }
}
