//! Node statuses, node types and power states with MAAS's numbers and names.
//!
//! The transition rules between statuses live with the life cycle; this
//! module only names the values.

use std::fmt;

/// A node's status, numbered as MAAS numbers it on the wire (`status`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NodeStatus {
    New,
    Commissioning,
    FailedCommissioning,
    Missing,
    Ready,
    Reserved,
    Deployed,
    Retired,
    Broken,
    Deploying,
    Allocated,
    FailedDeployment,
    Releasing,
    FailedReleasing,
    DiskErasing,
    FailedDiskErasing,
    RescueMode,
    EnteringRescueMode,
    FailedEnteringRescueMode,
    ExitingRescueMode,
    FailedExitingRescueMode,
    Testing,
    FailedTesting,
}

impl NodeStatus {
    /// Every status, in numeric order.
    pub const ALL: [NodeStatus; 23] = [
        NodeStatus::New,
        NodeStatus::Commissioning,
        NodeStatus::FailedCommissioning,
        NodeStatus::Missing,
        NodeStatus::Ready,
        NodeStatus::Reserved,
        NodeStatus::Deployed,
        NodeStatus::Retired,
        NodeStatus::Broken,
        NodeStatus::Deploying,
        NodeStatus::Allocated,
        NodeStatus::FailedDeployment,
        NodeStatus::Releasing,
        NodeStatus::FailedReleasing,
        NodeStatus::DiskErasing,
        NodeStatus::FailedDiskErasing,
        NodeStatus::RescueMode,
        NodeStatus::EnteringRescueMode,
        NodeStatus::FailedEnteringRescueMode,
        NodeStatus::ExitingRescueMode,
        NodeStatus::FailedExitingRescueMode,
        NodeStatus::Testing,
        NodeStatus::FailedTesting,
    ];

    /// The wire number (`status`).
    pub fn number(self) -> i64 {
        match self {
            NodeStatus::New => 0,
            NodeStatus::Commissioning => 1,
            NodeStatus::FailedCommissioning => 2,
            NodeStatus::Missing => 3,
            NodeStatus::Ready => 4,
            NodeStatus::Reserved => 5,
            NodeStatus::Deployed => 6,
            NodeStatus::Retired => 7,
            NodeStatus::Broken => 8,
            NodeStatus::Deploying => 9,
            NodeStatus::Allocated => 10,
            NodeStatus::FailedDeployment => 11,
            NodeStatus::Releasing => 12,
            NodeStatus::FailedReleasing => 13,
            NodeStatus::DiskErasing => 14,
            NodeStatus::FailedDiskErasing => 15,
            NodeStatus::RescueMode => 16,
            NodeStatus::EnteringRescueMode => 17,
            NodeStatus::FailedEnteringRescueMode => 18,
            NodeStatus::ExitingRescueMode => 19,
            NodeStatus::FailedExitingRescueMode => 20,
            NodeStatus::Testing => 21,
            NodeStatus::FailedTesting => 22,
        }
    }

    pub fn from_number(number: i64) -> Option<NodeStatus> {
        NodeStatus::ALL.into_iter().find(|s| s.number() == number)
    }

    /// The display label (`status_name`).
    pub fn label(self) -> &'static str {
        match self {
            NodeStatus::New => "New",
            NodeStatus::Commissioning => "Commissioning",
            NodeStatus::FailedCommissioning => "Failed commissioning",
            NodeStatus::Missing => "Missing",
            NodeStatus::Ready => "Ready",
            NodeStatus::Reserved => "Reserved",
            NodeStatus::Deployed => "Deployed",
            NodeStatus::Retired => "Retired",
            NodeStatus::Broken => "Broken",
            NodeStatus::Deploying => "Deploying",
            NodeStatus::Allocated => "Allocated",
            NodeStatus::FailedDeployment => "Failed deployment",
            NodeStatus::Releasing => "Releasing",
            NodeStatus::FailedReleasing => "Releasing failed",
            NodeStatus::DiskErasing => "Disk erasing",
            NodeStatus::FailedDiskErasing => "Failed disk erasing",
            NodeStatus::RescueMode => "Rescue mode",
            NodeStatus::EnteringRescueMode => "Entering rescue mode",
            NodeStatus::FailedEnteringRescueMode => "Failed to enter rescue mode",
            NodeStatus::ExitingRescueMode => "Exiting rescue mode",
            NodeStatus::FailedExitingRescueMode => "Failed to exit rescue mode",
            NodeStatus::Testing => "Testing",
            NodeStatus::FailedTesting => "Failed testing",
        }
    }

    /// The name used by the `status=` filter, e.g. `failed_commissioning`.
    pub fn filter_name(self) -> &'static str {
        match self {
            NodeStatus::New => "new",
            NodeStatus::Commissioning => "commissioning",
            NodeStatus::FailedCommissioning => "failed_commissioning",
            NodeStatus::Missing => "missing",
            NodeStatus::Ready => "ready",
            NodeStatus::Reserved => "reserved",
            NodeStatus::Deployed => "deployed",
            NodeStatus::Retired => "retired",
            NodeStatus::Broken => "broken",
            NodeStatus::Deploying => "deploying",
            NodeStatus::Allocated => "allocated",
            NodeStatus::FailedDeployment => "failed_deployment",
            NodeStatus::Releasing => "releasing",
            NodeStatus::FailedReleasing => "failed_releasing",
            NodeStatus::DiskErasing => "disk_erasing",
            NodeStatus::FailedDiskErasing => "failed_disk_erasing",
            NodeStatus::RescueMode => "rescue_mode",
            NodeStatus::EnteringRescueMode => "entering_rescue_mode",
            NodeStatus::FailedEnteringRescueMode => "failed_entering_rescue_mode",
            NodeStatus::ExitingRescueMode => "exiting_rescue_mode",
            NodeStatus::FailedExitingRescueMode => "failed_exiting_rescue_mode",
            NodeStatus::Testing => "testing",
            NodeStatus::FailedTesting => "failed_testing",
        }
    }

    pub fn from_filter_name(name: &str) -> Option<NodeStatus> {
        NodeStatus::ALL
            .into_iter()
            .find(|s| s.filter_name() == name)
    }

    /// The simplified status the `simple_status=` filter and the dashboard use.
    pub fn simple(self) -> SimpleStatus {
        match self {
            NodeStatus::New => SimpleStatus::New,
            NodeStatus::Commissioning => SimpleStatus::Commissioning,
            NodeStatus::Ready => SimpleStatus::Ready,
            NodeStatus::Allocated => SimpleStatus::Allocated,
            NodeStatus::Deploying => SimpleStatus::Deploying,
            NodeStatus::Deployed => SimpleStatus::Deployed,
            NodeStatus::Broken => SimpleStatus::Broken,
            NodeStatus::Testing => SimpleStatus::Testing,
            NodeStatus::Releasing | NodeStatus::DiskErasing => SimpleStatus::Releasing,
            NodeStatus::RescueMode
            | NodeStatus::EnteringRescueMode
            | NodeStatus::ExitingRescueMode => SimpleStatus::RescueMode,
            NodeStatus::FailedCommissioning
            | NodeStatus::FailedDeployment
            | NodeStatus::FailedReleasing
            | NodeStatus::FailedDiskErasing
            | NodeStatus::FailedEnteringRescueMode
            | NodeStatus::FailedExitingRescueMode
            | NodeStatus::FailedTesting => SimpleStatus::Failed,
            NodeStatus::Missing | NodeStatus::Reserved | NodeStatus::Retired => SimpleStatus::Other,
        }
    }

    /// The status a node falls to when this in-progress status fails or times out.
    pub fn failure_counterpart(self) -> Option<NodeStatus> {
        match self {
            NodeStatus::Commissioning => Some(NodeStatus::FailedCommissioning),
            NodeStatus::Deploying => Some(NodeStatus::FailedDeployment),
            NodeStatus::Releasing => Some(NodeStatus::FailedReleasing),
            NodeStatus::DiskErasing => Some(NodeStatus::FailedDiskErasing),
            NodeStatus::EnteringRescueMode => Some(NodeStatus::FailedEnteringRescueMode),
            NodeStatus::ExitingRescueMode => Some(NodeStatus::FailedExitingRescueMode),
            NodeStatus::Testing => Some(NodeStatus::FailedTesting),
            NodeStatus::New
            | NodeStatus::FailedCommissioning
            | NodeStatus::Missing
            | NodeStatus::Ready
            | NodeStatus::Reserved
            | NodeStatus::Deployed
            | NodeStatus::Retired
            | NodeStatus::Broken
            | NodeStatus::Allocated
            | NodeStatus::FailedDeployment
            | NodeStatus::FailedReleasing
            | NodeStatus::FailedDiskErasing
            | NodeStatus::RescueMode
            | NodeStatus::FailedEnteringRescueMode
            | NodeStatus::FailedExitingRescueMode
            | NodeStatus::FailedTesting => None,
        }
    }
}

impl fmt::Display for NodeStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The simplified status groups of the `simple_status=` filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SimpleStatus {
    Allocated,
    Broken,
    Commissioning,
    Deployed,
    Deploying,
    Failed,
    New,
    Ready,
    Releasing,
    RescueMode,
    Testing,
    Other,
}

impl SimpleStatus {
    pub const ALL: [SimpleStatus; 12] = [
        SimpleStatus::Allocated,
        SimpleStatus::Broken,
        SimpleStatus::Commissioning,
        SimpleStatus::Deployed,
        SimpleStatus::Deploying,
        SimpleStatus::Failed,
        SimpleStatus::New,
        SimpleStatus::Ready,
        SimpleStatus::Releasing,
        SimpleStatus::RescueMode,
        SimpleStatus::Testing,
        SimpleStatus::Other,
    ];

    pub fn filter_name(self) -> &'static str {
        match self {
            SimpleStatus::Allocated => "allocated",
            SimpleStatus::Broken => "broken",
            SimpleStatus::Commissioning => "commissioning",
            SimpleStatus::Deployed => "deployed",
            SimpleStatus::Deploying => "deploying",
            SimpleStatus::Failed => "failed",
            SimpleStatus::New => "new",
            SimpleStatus::Ready => "ready",
            SimpleStatus::Releasing => "releasing",
            SimpleStatus::RescueMode => "rescue_mode",
            SimpleStatus::Testing => "testing",
            SimpleStatus::Other => "other",
        }
    }

    pub fn from_filter_name(name: &str) -> Option<SimpleStatus> {
        SimpleStatus::ALL
            .into_iter()
            .find(|s| s.filter_name() == name)
    }

    /// The node statuses this group stands for.
    pub fn statuses(self) -> impl Iterator<Item = NodeStatus> {
        NodeStatus::ALL
            .into_iter()
            .filter(move |s| s.simple() == self)
    }
}

/// What kind of node a record is (`node_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NodeType {
    Machine,
    Device,
    RackController,
    RegionController,
    RegionAndRackController,
}

impl NodeType {
    pub fn number(self) -> i64 {
        match self {
            NodeType::Machine => 0,
            NodeType::Device => 1,
            NodeType::RackController => 2,
            NodeType::RegionController => 3,
            NodeType::RegionAndRackController => 4,
        }
    }

    pub fn from_number(number: i64) -> Option<NodeType> {
        [
            NodeType::Machine,
            NodeType::Device,
            NodeType::RackController,
            NodeType::RegionController,
            NodeType::RegionAndRackController,
        ]
        .into_iter()
        .find(|t| t.number() == number)
    }

    /// The label (`node_type_name`).
    pub fn label(self) -> &'static str {
        match self {
            NodeType::Machine => "Machine",
            NodeType::Device => "Device",
            NodeType::RackController => "Rack controller",
            NodeType::RegionController => "Region controller",
            NodeType::RegionAndRackController => "Region and rack controller",
        }
    }
}

/// The last known power state of a node (`power_state`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerState {
    On,
    Off,
    Unknown,
    Error,
}

impl PowerState {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerState::On => "on",
            PowerState::Off => "off",
            PowerState::Unknown => "unknown",
            PowerState::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<PowerState> {
        match text {
            "on" => Some(PowerState::On),
            "off" => Some(PowerState::Off),
            "unknown" => Some(PowerState::Unknown),
            "error" => Some(PowerState::Error),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip_and_are_dense() {
        for (i, status) in NodeStatus::ALL.iter().enumerate() {
            assert_eq!(status.number(), i as i64);
            assert_eq!(NodeStatus::from_number(i as i64), Some(*status));
            assert_eq!(
                NodeStatus::from_filter_name(status.filter_name()),
                Some(*status)
            );
        }
        assert_eq!(NodeStatus::from_number(23), None);
        assert_eq!(NodeStatus::from_number(-1), None);
    }

    #[test]
    fn labels_match_maas() {
        assert_eq!(NodeStatus::FailedReleasing.label(), "Releasing failed");
        assert_eq!(
            NodeStatus::FailedEnteringRescueMode.label(),
            "Failed to enter rescue mode"
        );
        assert_eq!(NodeStatus::Allocated.number(), 10);
    }

    #[test]
    fn simple_statuses_cover_all() {
        let failed: Vec<_> = SimpleStatus::Failed.statuses().collect();
        assert_eq!(failed.len(), 7);
        let releasing: Vec<_> = SimpleStatus::Releasing.statuses().collect();
        assert_eq!(
            releasing,
            vec![NodeStatus::Releasing, NodeStatus::DiskErasing]
        );
        let covered: usize = SimpleStatus::ALL.iter().map(|s| s.statuses().count()).sum();
        assert_eq!(covered, 23);
    }

    #[test]
    fn failure_counterparts() {
        assert_eq!(
            NodeStatus::Deploying.failure_counterpart(),
            Some(NodeStatus::FailedDeployment)
        );
        assert_eq!(NodeStatus::Ready.failure_counterpart(), None);
    }
}
