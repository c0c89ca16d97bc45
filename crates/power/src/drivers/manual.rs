//! The `manual` driver: someone presses the button. Every action is a no-op
//! that logs what a person has to do; the state is unknown.

use async_trait::async_trait;
use maas_domain::PowerState;
use tracing::info;

use crate::driver::{DriverOptions, PowerDriver};
use crate::error::PowerError;
use crate::schema::{Capabilities, PowerTypeSchema};

pub(crate) const NAME: &str = "manual";

const CAPABILITIES: Capabilities = Capabilities {
    queryable: false,
    pxe_boot_once: false,
    chassis: false,
    can_probe: false,
    can_set_boot_order: false,
};

pub(crate) fn schema() -> PowerTypeSchema {
    PowerTypeSchema::new(NAME, "Manual", CAPABILITIES, Vec::new())
}

#[derive(Debug)]
pub struct ManualDriver {
    /// The node's system id, or a placeholder, for the log lines.
    node: String,
}

impl ManualDriver {
    pub fn new(options: &DriverOptions) -> ManualDriver {
        let node = options
            .system_id
            .as_ref()
            .map_or_else(|| "the node".to_owned(), ToString::to_string);
        ManualDriver { node }
    }
}

#[async_trait]
impl PowerDriver for ManualDriver {
    fn power_type(&self) -> &'static str {
        NAME
    }

    fn bmc(&self) -> &str {
        "manual"
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn on(&self) -> Result<(), PowerError> {
        info!(node = %self.node, "You need to power on {} manually", self.node);
        Ok(())
    }

    async fn off(&self) -> Result<(), PowerError> {
        info!(node = %self.node, "You need to power off {} manually", self.node);
        Ok(())
    }

    async fn cycle(&self) -> Result<(), PowerError> {
        info!(node = %self.node, "You need to power cycle {} manually", self.node);
        Ok(())
    }

    async fn query(&self) -> Result<PowerState, PowerError> {
        Ok(PowerState::Unknown)
    }
}
