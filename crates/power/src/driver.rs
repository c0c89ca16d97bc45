//! The `PowerDriver` trait and what every driver shares: options, time
//! limits, retries and waiting for a BMC to reach the state asked for.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use maas_domain::{PowerState, SystemId};
use tracing::debug;

use crate::error::{PowerAction, PowerError};
use crate::schema::Capabilities;

/// One node's power control, with its settings already parsed.
///
/// Hold drivers as `Arc<dyn PowerDriver>`; build them with
/// [`crate::driver`]. Every method is bounded in time by the driver's
/// [`Timeouts`]: a dead BMC gives a retryable error, never a hang.
#[async_trait]
pub trait PowerDriver: Send + Sync + fmt::Debug {
    /// The MAAS power type, such as `ipmi`.
    fn power_type(&self) -> &'static str;

    /// The BMC as shown in errors and spans (address, URL or domain); never
    /// contains a secret.
    fn bmc(&self) -> &str;

    fn capabilities(&self) -> Capabilities;

    /// Powers on. Drivers with `pxe_boot_once` first ask for a one-time PXE
    /// boot, as MAAS does (a failure there other than authentication is
    /// logged as a warning and does not stop the power on). Queryable
    /// drivers return once the BMC reports `on`.
    async fn on(&self) -> Result<(), PowerError>;

    /// Powers off hard. Queryable drivers return once the BMC reports `off`.
    async fn off(&self) -> Result<(), PowerError>;

    /// Reboots into PXE: off if on, then [`PowerDriver::on`].
    async fn cycle(&self) -> Result<(), PowerError>;

    /// The current power state.
    async fn query(&self) -> Result<PowerState, PowerError>;

    /// Asks the firmware to network-boot once, at the next power on.
    async fn set_pxe_boot(&self) -> Result<(), PowerError> {
        Err(PowerError::Unsupported {
            power_type: self.power_type(),
            action: PowerAction::SetPxeBoot,
        })
    }
}

/// Time limits for one driver. Every exchange with the BMC (one IPMI
/// request and reply, one HTTP request, one `virsh` run) is bounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long to wait for one reply.
    pub request: Duration,
    /// How many times a request is sent before a retryable failure is
    /// reported (at least one).
    pub attempts: u32,
    /// After an action, how long to wait for the BMC to report the new state.
    pub transition: Duration,
    /// Pause between state queries while waiting for a transition.
    pub poll_interval: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            request: Duration::from_secs(2),
            attempts: 3,
            transition: Duration::from_secs(30),
            poll_interval: Duration::from_millis(500),
        }
    }
}

impl Timeouts {
    /// The longest one exchange can take, counting every attempt.
    pub fn exchange_bound(&self) -> Duration {
        self.request * self.attempts.max(1)
    }
}

/// What every driver gets besides its settings.
#[derive(Clone, Debug, Default)]
pub struct DriverOptions {
    /// The node being controlled; the webhook driver sends it as `System_Id`.
    pub system_id: Option<SystemId>,
    pub timeouts: Timeouts,
}

/// Runs `attempt` up to `timeouts.attempts` times while it fails with a
/// retryable error, each try bounded by `timeouts.request`.
pub(crate) async fn with_retries<T, F, Fut>(
    timeouts: &Timeouts,
    bmc: &str,
    action: PowerAction,
    mut attempt: F,
) -> Result<T, PowerError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PowerError>>,
{
    let attempts = timeouts.attempts.max(1);
    let mut tried = 0;
    loop {
        tried += 1;
        let result = match tokio::time::timeout(timeouts.request, attempt()).await {
            Ok(result) => result,
            Err(_) => Err(PowerError::Timeout {
                bmc: bmc.to_owned(),
                action,
                waited: timeouts.request,
            }),
        };
        match result {
            Err(error) if error.is_retryable() && tried < attempts => {
                debug!(bmc, %action, attempt = tried, error = %error, "retrying");
                // A short pause lets a busy BMC recover; it stays well
                // below the request timeout.
                tokio::time::sleep(Duration::from_millis(100 * u64::from(tried))).await;
            }
            Err(PowerError::Timeout { bmc, action, .. }) => {
                return Err(PowerError::Timeout {
                    bmc,
                    action,
                    waited: timeouts.request * tried,
                });
            }
            other => return other,
        }
    }
}

/// A boxed state query borrowing what it queries through.
pub(crate) type QueryFuture<'a> =
    Pin<Box<dyn Future<Output = Result<PowerState, PowerError>> + Send + 'a>>;

/// Queries until the BMC reports `desired` or `timeouts.transition` runs
/// out, which gives [`PowerError::NeverTransitioned`].
pub(crate) async fn wait_for_state<S: Send>(
    timeouts: &Timeouts,
    bmc: &str,
    action: PowerAction,
    desired: PowerState,
    target: &mut S,
    query: impl Fn(&mut S) -> QueryFuture<'_> + Send,
) -> Result<(), PowerError> {
    let deadline = tokio::time::Instant::now() + timeouts.transition;
    let mut last = PowerState::Unknown;
    loop {
        match query(target).await {
            Ok(state) if state == desired => return Ok(()),
            Ok(state) => last = state,
            // A BMC busy with the action may miss a query; keep waiting.
            Err(error) if error.is_retryable() => {
                debug!(bmc, error = %error, "query failed while waiting")
            }
            Err(error) => return Err(error),
        }
        if tokio::time::Instant::now() + timeouts.poll_interval > deadline {
            return Err(PowerError::NeverTransitioned {
                bmc: bmc.to_owned(),
                action,
                from: last.as_str(),
                desired: desired.as_str(),
            });
        }
        tokio::time::sleep(timeouts.poll_interval).await;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn quick() -> Timeouts {
        Timeouts {
            request: Duration::from_millis(50),
            attempts: 3,
            transition: Duration::from_millis(200),
            poll_interval: Duration::from_millis(10),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_retryable_then_gives_up() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&quick(), "bmc", PowerAction::Query, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::pending::<()>().await;
            Ok(())
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        match result {
            Err(PowerError::Timeout { waited, .. }) => {
                assert_eq!(waited, Duration::from_millis(150))
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn final_errors_are_not_retried() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = with_retries(&quick(), "bmc", PowerAction::On, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(PowerError::Authentication {
                bmc: "bmc".into(),
                action: PowerAction::On,
                reason: "password invalid".into(),
            })
        })
        .await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert!(matches!(result, Err(PowerError::Authentication { .. })));
    }

    #[tokio::test(start_paused = true)]
    async fn waits_for_transition() {
        let calls = AtomicU32::new(0);
        let mut target = &calls;
        let ok = wait_for_state(
            &quick(),
            "bmc",
            PowerAction::On,
            PowerState::On,
            &mut target,
            |calls| {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                Box::pin(async move {
                    Ok(if n >= 2 {
                        PowerState::On
                    } else {
                        PowerState::Off
                    })
                })
            },
        )
        .await;
        assert!(ok.is_ok());
        let never = wait_for_state(
            &quick(),
            "bmc",
            PowerAction::Off,
            PowerState::Off,
            &mut (),
            |_| Box::pin(async { Ok(PowerState::On) }),
        )
        .await;
        assert_eq!(
            never.err().map(|e| e.to_string()).as_deref(),
            Some("BMC bmc never transitioned from on to off after power off")
        );
    }
}
