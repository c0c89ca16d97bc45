//! The region's power-control port. Services ask it to power machines; the
//! all-in-one region answers itself through `maas-power`'s drivers
//! ([`DirectPower`]); a rack-routed implementation can replace it without
//! the services noticing.

use std::time::Duration;

use async_trait::async_trait;
use maas_domain::{PowerState, SystemId};
use maas_store::Node;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerRequest {
    On,
    Off { soft: bool },
    Cycle,
    Query,
}

impl PowerRequest {
    pub fn name(self) -> &'static str {
        match self {
            PowerRequest::On => "power on",
            PowerRequest::Off { .. } => "power off",
            PowerRequest::Cycle => "power cycle",
            PowerRequest::Query => "power query",
        }
    }
}

/// Why a power action did not happen, in words fit for an event and a 503.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct PowerFailure {
    pub message: String,
    /// A timeout, refused connection or busy BMC: worth trying again.
    pub retryable: bool,
}

#[async_trait]
pub trait PowerControl: Send + Sync {
    /// Performs `request` on the node's BMC. `Ok(None)` means the power type
    /// can't control or report power (`manual`, or none set).
    async fn execute(
        &self,
        node: &Node,
        request: PowerRequest,
    ) -> Result<Option<PowerState>, PowerFailure>;
}

/// Drives BMCs straight from the region with `maas-power`.
#[derive(Default)]
pub struct DirectPower {
    pub timeouts: maas_power::Timeouts,
}

#[async_trait]
impl PowerControl for DirectPower {
    async fn execute(
        &self,
        node: &Node,
        request: PowerRequest,
    ) -> Result<Option<PowerState>, PowerFailure> {
        if node.power_type.is_empty() || node.power_type == "manual" {
            return Ok(None);
        }
        let params: maas_power::PowerParameters = node
            .power_parameters
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let options = maas_power::DriverOptions {
            system_id: node.system_id.parse::<SystemId>().ok(),
            timeouts: self.timeouts,
        };
        let failure = |error: maas_power::PowerError| PowerFailure {
            retryable: error.is_retryable(),
            message: error.to_string(),
        };
        let driver = maas_power::driver(&node.power_type, &params, &options).map_err(failure)?;
        let result = match request {
            PowerRequest::On => driver.on().await.map(|()| Some(PowerState::On)),
            PowerRequest::Off { .. } => driver.off().await.map(|()| Some(PowerState::Off)),
            PowerRequest::Cycle => driver.cycle().await.map(|()| Some(PowerState::On)),
            PowerRequest::Query => driver.query().await.map(Some),
        };
        result.map_err(failure)
    }
}

/// How long a synchronous power query may take before the API gives up.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(45);
