//! The port the rack's servers program against: what to serve, and what each booting machine
//! gets. The region link implements it over RPC; [`crate::FileBackend`] implements it from an
//! operator's config file.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;

use maas_boot_policy::BootParams;
use maas_dhcp_wire::engine::{EngineConfig, LeaseEvent};
use maas_domain::MacAddress;
use thiserror::Error;
use tokio::sync::watch;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One interface the DHCP server listens on, with this rack's address on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpInterface {
    pub name: String,
    pub address: Ipv4Addr,
}

/// Everything the DHCP server serves. With no interfaces it answers nobody.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DhcpServiceConfig {
    pub interfaces: Vec<DhcpInterface>,
    /// Subnets, dynamic ranges, reservations and lease timing.
    pub engine: EngineConfig,
}

/// Transport a boot file was asked over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Tftp,
    Http,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tftp => "tftp",
            Protocol::Http => "http",
        }
    }
}

/// A booting machine's request for its config (MAAS `GetBootConfig` arguments).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootRequest {
    pub mac: Option<MacAddress>,
    pub hardware_uuid: Option<String>,
    pub arch: Option<String>,
    pub subarch: Option<String>,
    /// The rack address that received the request.
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    /// `pxe`, `uefi`, `ipxe`, ...
    pub bios_boot_method: &'static str,
    pub protocol: Protocol,
}

#[derive(Debug, Error)]
pub enum BackendError {
    #[error("region is unreachable")]
    Unreachable {
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("region refused the request: {reason}")]
    Refused { reason: String },
}

/// What the rack serves and what each booting machine gets.
pub trait BootBackend: Send + Sync + 'static {
    /// The DHCP configuration now and as it changes; the DHCP server follows every change
    /// without a restart.
    fn dhcp_config(&self) -> watch::Receiver<Arc<DhcpServiceConfig>>;

    /// The boot decision for a machine; `Ok(None)` when the region has nothing for it (an
    /// unknown MAC asking for its per-MAC file), which the rack answers with file-not-found
    /// so the loader falls through to its next candidate path.
    fn boot_config<'a>(
        &'a self,
        request: &'a BootRequest,
    ) -> BoxFuture<'a, Result<Option<BootParams>, BackendError>>;

    /// A lease changed (commit, release, expiry, decline); must not block.
    fn lease_changed(&self, event: &LeaseEvent);
}
