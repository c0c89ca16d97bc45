//! Records about controllers: what a rack reported of itself, its services, which region
//! processes hold a link to it, and the addresses its DHCP server must reserve.

use async_trait::async_trait;

use crate::{Millis, StoreResult};

/// What a controller said about itself when it registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    pub node_id: i64,
    pub version: String,
    /// The region URL the rack was configured with (blank when it is loopback).
    pub url: String,
    pub registered: Millis,
}

/// One service of a controller as last reported (`rackd`, `dhcpd`, `tftp`, `http`, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceStatus {
    pub name: String,
    /// `running`, `degraded`, `dead`, `off` or `unknown`.
    pub status: String,
    pub status_info: String,
}

/// A region process's link to a rack, as of its last heartbeat.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RackLinkRecord {
    pub node_id: i64,
    pub region: String,
    pub last_seen: Millis,
}

/// An address assigned to a node's interface (auto, static or sticky) on a subnet: what a
/// rack's DHCP server hands out as a fixed address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StaticAddress {
    pub node_id: i64,
    pub system_id: String,
    pub hostname: String,
    pub interface_name: String,
    pub mac: Option<String>,
    pub ip: String,
    pub subnet_id: i64,
}

/// A DHCP lease change reported by a rack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseRecord {
    pub mac: String,
    pub subnet_id: i64,
    pub ip: String,
    /// Commit: the address is now the interface's; otherwise it was given back.
    pub committed: bool,
}

#[async_trait]
pub trait RackStore: Send + Sync {
    async fn set_controller_info(&self, info: &ControllerInfo) -> StoreResult<()>;
    async fn controller_infos(&self, node_ids: &[i64]) -> StoreResult<Vec<ControllerInfo>>;

    /// Replaces the statuses of the named services (others keep theirs).
    async fn set_services(
        &self,
        node_id: i64,
        services: &[ServiceStatus],
        now: Millis,
    ) -> StoreResult<()>;
    /// Services of these nodes, by node then name.
    async fn services(&self, node_ids: &[i64]) -> StoreResult<Vec<(i64, ServiceStatus)>>;

    /// Records that region process `region` is alive and holds links to these racks.
    async fn region_heartbeat(
        &self,
        region: &str,
        rack_node_ids: &[i64],
        now: Millis,
    ) -> StoreResult<()>;
    /// Forgets one region process's link to a rack (the link closed).
    async fn drop_rack_link(&self, node_id: i64, region: &str) -> StoreResult<()>;
    /// Region processes heard from at or after `since`, by name.
    async fn live_regions(&self, since: Millis) -> StoreResult<Vec<String>>;
    /// Links to these racks refreshed at or after `since`.
    async fn rack_links(&self, node_ids: &[i64], since: Millis)
    -> StoreResult<Vec<RackLinkRecord>>;

    /// Assigned addresses on these subnets, by subnet then address.
    async fn static_addresses(&self, subnet_ids: &[i64]) -> StoreResult<Vec<StaticAddress>>;
    /// Applies a lease to the interfaces with its MAC: a commit replaces their discovered
    /// addresses on the subnet with this one; a release or expiry clears them. Returns the
    /// ids of the nodes touched (none when no interface has the MAC).
    async fn record_lease(&self, lease: &LeaseRecord) -> StoreResult<Vec<i64>>;
}
