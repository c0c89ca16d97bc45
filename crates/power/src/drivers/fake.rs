//! The `fake` driver: an in-memory BMC that records every call, for tests of
//! the crates above this one. Always built; not listed in
//! `describe_power_types`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use async_trait::async_trait;
use maas_domain::PowerState;

use crate::driver::PowerDriver;
use crate::error::{PowerAction, PowerError};
use crate::params::PowerParameters;
use crate::schema::Capabilities;

pub(crate) const NAME: &str = "fake";

#[derive(Debug)]
struct FakeBmc {
    state: PowerState,
    pxe_boot_pending: bool,
    calls: Vec<PowerAction>,
    /// Errors handed out by the next calls, first one first.
    failures: Vec<PowerError>,
    delay: Duration,
}

/// An in-memory BMC. Clones share the same BMC, so a test can keep one
/// handle while the code under test holds another as `Arc<dyn PowerDriver>`.
#[derive(Clone, Debug)]
pub struct FakeDriver {
    address: String,
    bmc: Arc<Mutex<FakeBmc>>,
}

fn registry() -> &'static Mutex<HashMap<String, FakeDriver>> {
    static REGISTRY: OnceLock<Mutex<HashMap<String, FakeDriver>>> = OnceLock::new();
    REGISTRY.get_or_init(Default::default)
}

impl FakeDriver {
    /// A new BMC that is off, not registered under any address.
    pub fn new(address: &str) -> FakeDriver {
        FakeDriver {
            address: address.to_owned(),
            bmc: Arc::new(Mutex::new(FakeBmc {
                state: PowerState::Off,
                pxe_boot_pending: false,
                calls: Vec::new(),
                failures: Vec::new(),
                delay: Duration::ZERO,
            })),
        }
    }

    /// The BMC that [`crate::driver`] hands out for `power_type` `fake` with
    /// this `power_address`, created on first use. Lets a test reach the
    /// fake that code it calls built by name.
    pub fn registered(address: &str) -> FakeDriver {
        let mut registry = registry()
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        registry
            .entry(address.to_owned())
            .or_insert_with(|| FakeDriver::new(address))
            .clone()
    }

    pub(crate) fn from_parameters(params: &PowerParameters) -> FakeDriver {
        let address = params.get("power_address").unwrap_or_default();
        let driver = FakeDriver::registered(address);
        if let Some(state) = params.get("power_state").and_then(PowerState::parse) {
            driver.set_state(state);
        }
        driver
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FakeBmc> {
        // A panic in another test thread must not hide this BMC's record.
        self.bmc
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn state(&self) -> PowerState {
        self.lock().state
    }

    pub fn set_state(&self, state: PowerState) {
        self.lock().state = state;
    }

    /// Every action asked of this BMC so far, in order.
    pub fn calls(&self) -> Vec<PowerAction> {
        self.lock().calls.clone()
    }

    pub fn pxe_boot_pending(&self) -> bool {
        self.lock().pxe_boot_pending
    }

    /// The next call fails with `error` (calls are still recorded).
    pub fn fail_next(&self, error: PowerError) {
        self.lock().failures.push(error);
    }

    /// Every call waits this long first (a slow or hung BMC).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    async fn call(&self, action: PowerAction) -> Result<(), PowerError> {
        let delay = {
            let mut bmc = self.lock();
            bmc.calls.push(action);
            bmc.delay
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut bmc = self.lock();
        if bmc.failures.is_empty() {
            Ok(())
        } else {
            Err(bmc.failures.remove(0))
        }
    }
}

#[async_trait]
impl PowerDriver for FakeDriver {
    fn power_type(&self) -> &'static str {
        NAME
    }

    fn bmc(&self) -> &str {
        &self.address
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            queryable: true,
            pxe_boot_once: true,
            chassis: false,
            can_probe: false,
            can_set_boot_order: false,
        }
    }

    async fn on(&self) -> Result<(), PowerError> {
        self.call(PowerAction::On).await?;
        let mut bmc = self.lock();
        bmc.pxe_boot_pending = true;
        bmc.state = PowerState::On;
        Ok(())
    }

    async fn off(&self) -> Result<(), PowerError> {
        self.call(PowerAction::Off).await?;
        self.lock().state = PowerState::Off;
        Ok(())
    }

    async fn cycle(&self) -> Result<(), PowerError> {
        self.call(PowerAction::Cycle).await?;
        let mut bmc = self.lock();
        bmc.pxe_boot_pending = true;
        bmc.state = PowerState::On;
        Ok(())
    }

    async fn query(&self) -> Result<PowerState, PowerError> {
        self.call(PowerAction::Query).await?;
        Ok(self.lock().state)
    }

    async fn set_pxe_boot(&self) -> Result<(), PowerError> {
        self.call(PowerAction::SetPxeBoot).await?;
        self.lock().pxe_boot_pending = true;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_calls_and_state() {
        let fake = FakeDriver::new("fake-1");
        let driver: Arc<dyn PowerDriver> = Arc::new(fake.clone());
        assert_eq!(driver.query().await.ok(), Some(PowerState::Off));
        driver.on().await.ok();
        assert_eq!(fake.state(), PowerState::On);
        assert!(fake.pxe_boot_pending());
        fake.fail_next(PowerError::Busy {
            bmc: "fake-1".into(),
            action: PowerAction::Off,
            reason: "test".into(),
        });
        assert!(driver.off().await.is_err_and(|e| e.is_retryable()));
        assert_eq!(fake.state(), PowerState::On);
        assert_eq!(
            fake.calls(),
            [PowerAction::Query, PowerAction::On, PowerAction::Off]
        );
    }

    #[test]
    fn registered_fakes_are_shared() {
        let params = PowerParameters::new()
            .with("power_address", "fake-shared")
            .with("power_state", "on");
        let built = FakeDriver::from_parameters(&params);
        assert_eq!(
            FakeDriver::registered("fake-shared").state(),
            PowerState::On
        );
        built.set_state(PowerState::Off);
        assert_eq!(
            FakeDriver::registered("fake-shared").state(),
            PowerState::Off
        );
    }
}
