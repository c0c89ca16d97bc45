//! The `redfish` driver: DMTF Redfish over HTTPS (or HTTP for emulators),
//! HTTP Basic authentication, as MAAS does it (provisioning.md §6.4).

use std::fmt;

use async_trait::async_trait;
use maas_domain::PowerState;
use reqwest::{Method, Url};
use serde_json::{Value, json};
use tokio::sync::OnceCell;
use tracing::{Instrument, debug, info_span, warn};

use super::http;
use crate::driver::{
    DriverOptions, PowerDriver, QueryFuture, Timeouts, wait_for_state, with_retries,
};
use crate::error::{PowerAction, PowerError, PowerErrorKind};
use crate::params::{PowerParameters, SettingsReader};
use crate::schema::{Capabilities, IP_EXTRACTOR_URL, PowerTypeSchema, SettingField};
use crate::secret::Secret;

pub(crate) const NAME: &str = "redfish";

const CAPABILITIES: Capabilities = Capabilities {
    queryable: true,
    pxe_boot_once: true,
    chassis: true,
    can_probe: false,
    can_set_boot_order: false,
};

pub(crate) fn schema() -> PowerTypeSchema {
    PowerTypeSchema::new(
        NAME,
        "Redfish",
        CAPABILITIES,
        vec![
            SettingField::string("power_address", "Redfish address").required(),
            SettingField::string("power_user", "Redfish user").required(),
            SettingField::password("power_pass", "Redfish password").required(),
            SettingField::string("node_id", "Node ID").node_scope(),
        ],
    )
    .with_ip_extractor("power_address", IP_EXTRACTOR_URL)
}

/// The parsed `redfish` power parameters.
#[derive(Clone, Debug)]
pub struct RedfishSettings {
    /// The service root's host: `https://` is assumed without a scheme.
    pub base: Url,
    pub user: String,
    pub password: Secret,
    /// The system's id under `/redfish/v1/Systems/`; discovered when unset.
    pub node_id: Option<String>,
}

impl RedfishSettings {
    pub fn from_parameters(params: &PowerParameters) -> Result<RedfishSettings, PowerError> {
        let reader = SettingsReader::new(NAME, params);
        let address = reader.required("power_address")?;
        let with_scheme = if address.contains("://") {
            address.to_owned()
        } else {
            format!("https://{address}")
        };
        let mut base = Url::parse(&with_scheme)
            .map_err(|error| reader.invalid("power_address", error.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(reader.invalid("power_address", "not an http or https address".into()));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(reader.invalid(
                "power_address",
                "put credentials in power_user and power_pass, not the address".into(),
            ));
        }
        base.set_path("/");
        base.set_query(None);
        let user = reader.required("power_user")?.to_owned();
        reader.required("power_pass")?;
        let password = reader.secret("power_pass");
        let node_id = reader.optional("node_id").map(str::to_owned);
        if let Some(id) = node_id.as_ref().filter(|id| id.contains(['/', '?', '#'])) {
            return Err(reader.invalid("node_id", format!("{id:?} is not a system id")));
        }
        Ok(RedfishSettings {
            base,
            user,
            password,
            node_id,
        })
    }
}

pub struct RedfishDriver {
    settings: RedfishSettings,
    bmc: String,
    timeouts: Timeouts,
    client: reqwest::Client,
    /// The system's resource path, from `node_id` or discovered once.
    system: OnceCell<String>,
}

impl fmt::Debug for RedfishDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedfishDriver")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A JSON reply and its `ETag` header.
struct Reply {
    body: Value,
    etag: Option<String>,
}

impl RedfishDriver {
    pub fn new(
        settings: RedfishSettings,
        options: &DriverOptions,
    ) -> Result<RedfishDriver, PowerError> {
        let client =
            http::client(false, &options.timeouts).map_err(|error| PowerError::InvalidSetting {
                power_type: NAME,
                key: "power_address",
                reason: format!("cannot build an HTTP client: {error}"),
            })?;
        let bmc = settings.base.as_str().trim_end_matches('/').to_owned();
        Ok(RedfishDriver {
            system: OnceCell::new(),
            settings,
            bmc,
            timeouts: options.timeouts,
            client,
        })
    }

    fn span(&self, action: PowerAction) -> tracing::Span {
        info_span!("power", driver = NAME, action = %action, bmc = %self.bmc)
    }

    fn url(&self, path: &str, action: PowerAction) -> Result<Url, PowerError> {
        self.settings
            .base
            .join(path)
            .map_err(|error| PowerError::BadReply {
                bmc: self.bmc.clone(),
                action,
                reason: format!("resource path {path:?}: {error}"),
            })
    }

    fn bad_reply(&self, action: PowerAction, reason: String) -> PowerError {
        PowerError::BadReply {
            bmc: self.bmc.clone(),
            action,
            reason,
        }
    }

    /// One request with retries for retryable failures; error statuses
    /// become errors.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        etag: Option<&str>,
        action: PowerAction,
    ) -> Result<Reply, PowerError> {
        let url = self.url(path, action)?;
        with_retries(&self.timeouts, &self.bmc, action, || {
            let mut request = self
                .client
                .request(method.clone(), url.clone())
                .basic_auth(&self.settings.user, Some(self.settings.password.expose()))
                .header(reqwest::header::ACCEPT, "application/json");
            if let Some(body) = body {
                request = request.json(body);
            }
            if let Some(etag) = etag {
                request = request.header(reqwest::header::IF_MATCH, etag);
            }
            async move {
                let response = request
                    .send()
                    .await
                    .map_err(|e| http::request_error(e, &self.bmc, action, &self.timeouts))?;
                let status = response.status();
                let etag = response
                    .headers()
                    .get(reqwest::header::ETAG)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned);
                let text = response
                    .text()
                    .await
                    .map_err(|e| http::request_error(e, &self.bmc, action, &self.timeouts))?;
                if !status.is_success() {
                    return Err(http::status_error(status, &text, &self.bmc, action));
                }
                let body = if text.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(&text).map_err(|error| {
                        self.bad_reply(action, format!("reply is not JSON: {error}"))
                    })?
                };
                Ok(Reply { body, etag })
            }
        })
        .await
    }

    /// The system's resource path: `node_id`, or the first member of the
    /// Systems collection.
    async fn system(&self, action: PowerAction) -> Result<&str, PowerError> {
        self.system
            .get_or_try_init(|| async {
                if let Some(id) = &self.settings.node_id {
                    return Ok(format!("/redfish/v1/Systems/{id}"));
                }
                let systems = self
                    .call(Method::GET, "/redfish/v1/Systems", None, None, action)
                    .await?;
                let member = systems.body["Members"][0]["@odata.id"]
                    .as_str()
                    .ok_or_else(|| {
                        self.bad_reply(action, "the Systems collection has no members".into())
                    })?;
                debug!(system = member, "discovered system");
                Ok(member.to_owned())
            })
            .await
            .map(String::as_str)
    }

    async fn state(&self, action: PowerAction) -> Result<PowerState, PowerError> {
        let system = self.system(action).await?.to_owned();
        // "Reset", "Unknown" or a missing state are passing states on some
        // BMCs: ask again a few times before calling it an error.
        for _ in 0..3 {
            let reply = self.call(Method::GET, &system, None, None, action).await?;
            match reply.body["PowerState"].as_str() {
                Some("On" | "Paused" | "PoweringOff") => return Ok(PowerState::On),
                Some("Off" | "PoweringOn") => return Ok(PowerState::Off),
                None | Some("Reset" | "Unknown") => {
                    tokio::time::sleep(self.timeouts.poll_interval).await
                }
                Some(other) => {
                    return Err(self.bad_reply(action, format!("unknown PowerState {other:?}")));
                }
            }
        }
        Err(self.bad_reply(action, "PowerState stayed unknown".into()))
    }

    async fn reset(&self, reset_type: &str, action: PowerAction) -> Result<(), PowerError> {
        let system = self.system(action).await?.to_owned();
        let resource = self.call(Method::GET, &system, None, None, action).await?;
        let target = resource.body["Actions"]["#ComputerSystem.Reset"]["target"]
            .as_str()
            .map_or_else(
                || {
                    format!(
                        "{}/Actions/ComputerSystem.Reset",
                        system.trim_end_matches('/')
                    )
                },
                str::to_owned,
            );
        self.call(
            Method::POST,
            &target,
            Some(&json!({ "ResetType": reset_type })),
            None,
            action,
        )
        .await
        .map(|_| ())
    }

    async fn wait(&self, action: PowerAction, desired: PowerState) -> Result<(), PowerError> {
        let mut driver = self;
        wait_for_state(
            &self.timeouts,
            &self.bmc,
            action,
            desired,
            &mut driver,
            |driver| -> QueryFuture<'_> { Box::pin(driver.state(action)) },
        )
        .await
    }

    async fn pxe_boot(&self, action: PowerAction) -> Result<(), PowerError> {
        let system = self.system(action).await?.to_owned();
        let resource = self.call(Method::GET, &system, None, None, action).await?;
        // Some BMCs take changes on a separate settings resource.
        let target = resource.body["@Redfish.Settings"]["SettingsObject"]["@odata.id"]
            .as_str()
            .map_or(system, str::to_owned);
        let etag = resource.body["@odata.etag"]
            .as_str()
            .map(str::to_owned)
            .or(resource.etag);
        let body = json!({ "Boot": { "BootSourceOverrideEnabled": "Once", "BootSourceOverrideTarget": "Pxe" } });
        self.call(Method::PATCH, &target, Some(&body), etag.as_deref(), action)
            .await
            .map(|_| ())
    }

    async fn pxe_boot_best_effort(&self, action: PowerAction) -> Result<(), PowerError> {
        match self.pxe_boot(action).await {
            Err(error) if error.kind() == PowerErrorKind::Authentication => Err(error),
            Err(error) => {
                warn!(error = %error, "could not set one-time PXE boot; going on");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    /// MAAS's power on: off first if on, one-time PXE, on.
    async fn power_on(&self, action: PowerAction) -> Result<(), PowerError> {
        if self.state(action).await? == PowerState::On {
            self.reset("ForceOff", action).await?;
            self.wait(action, PowerState::Off).await?;
        }
        self.pxe_boot_best_effort(action).await?;
        self.reset("On", action).await?;
        self.wait(action, PowerState::On).await
    }
}

#[async_trait]
impl PowerDriver for RedfishDriver {
    fn power_type(&self) -> &'static str {
        NAME
    }

    fn bmc(&self) -> &str {
        &self.bmc
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn on(&self) -> Result<(), PowerError> {
        let action = PowerAction::On;
        self.power_on(action).instrument(self.span(action)).await
    }

    async fn off(&self) -> Result<(), PowerError> {
        let action = PowerAction::Off;
        async {
            if self.state(action).await? != PowerState::Off {
                self.reset("ForceOff", action).await?;
                self.wait(action, PowerState::Off).await?;
            }
            // So that a power on from elsewhere also network-boots, as MAAS does.
            self.pxe_boot_best_effort(action).await
        }
        .instrument(self.span(action))
        .await
    }

    async fn cycle(&self) -> Result<(), PowerError> {
        let action = PowerAction::Cycle;
        self.power_on(action).instrument(self.span(action)).await
    }

    async fn query(&self) -> Result<PowerState, PowerError> {
        let action = PowerAction::Query;
        self.state(action).instrument(self.span(action)).await
    }

    async fn set_pxe_boot(&self) -> Result<(), PowerError> {
        let action = PowerAction::SetPxeBoot;
        self.pxe_boot(action).instrument(self.span(action)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<RedfishSettings, PowerError> {
        RedfishSettings::from_parameters(&pairs.iter().copied().collect())
    }

    #[test]
    fn addresses() {
        let base = |address: &str| {
            settings(&[
                ("power_address", address),
                ("power_user", "u"),
                ("power_pass", "p"),
            ])
            .map(|s| s.base.to_string())
        };
        assert_eq!(base("10.0.0.5").ok().as_deref(), Some("https://10.0.0.5/"));
        assert_eq!(
            base("http://127.0.0.1:8000/redfish/v1").ok().as_deref(),
            Some("http://127.0.0.1:8000/")
        );
        assert_eq!(
            base("[fd00::5]:8443").ok().as_deref(),
            Some("https://[fd00::5]:8443/")
        );
        assert!(matches!(
            base("ftp://x"),
            Err(PowerError::InvalidSetting { .. })
        ));
        assert!(matches!(
            base("https://admin:pw@x"),
            Err(PowerError::InvalidSetting { .. })
        ));
        assert!(matches!(
            settings(&[("power_address", "x"), ("power_user", "u")]),
            Err(PowerError::MissingSetting {
                key: "power_pass",
                ..
            })
        ));
        assert!(matches!(
            settings(&[
                ("power_address", "x"),
                ("power_user", "u"),
                ("power_pass", "p"),
                ("node_id", "../x")
            ]),
            Err(PowerError::InvalidSetting { key: "node_id", .. })
        ));
    }
}
