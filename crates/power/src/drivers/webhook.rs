//! The `webhook` driver: power on and off by POSTing to URLs, query by
//! GETting one and matching the body against regular expressions
//! (provisioning.md §6.5).

use std::fmt;

use async_trait::async_trait;
use maas_domain::PowerState;
use regex::Regex;
use reqwest::{Method, StatusCode, Url};
use tracing::{Instrument, info_span};

use super::http;
use crate::driver::{
    DriverOptions, PowerDriver, QueryFuture, Timeouts, wait_for_state, with_retries,
};
use crate::error::{PowerAction, PowerError};
use crate::params::{PowerParameters, SettingsReader};
use crate::schema::{Capabilities, PowerTypeSchema, SettingField};
use crate::secret::Secret;

pub(crate) const NAME: &str = "webhook";
const DEFAULT_ON_REGEX: &str = r"status.*\:.*running";
const DEFAULT_OFF_REGEX: &str = r"status.*\:.*stopped";

const CAPABILITIES: Capabilities = Capabilities {
    queryable: true,
    pxe_boot_once: false,
    chassis: false,
    can_probe: false,
    can_set_boot_order: false,
};

pub(crate) fn schema() -> PowerTypeSchema {
    PowerTypeSchema::new(
        NAME,
        "Webhook",
        CAPABILITIES,
        vec![
            SettingField::string("power_on_uri", "URI to power on the node").required(),
            SettingField::string("power_off_uri", "URI to power off the node").required(),
            SettingField::string("power_query_uri", "URI to query the nodes power status")
                .required(),
            SettingField::string("power_on_regex", "Regex to confirm the node is on")
                .required()
                .with_default(DEFAULT_ON_REGEX),
            SettingField::string("power_off_regex", "Regex to confirm the node is off")
                .required()
                .with_default(DEFAULT_OFF_REGEX),
            SettingField::string("power_user", "Power user"),
            SettingField::password("power_pass", "Power password"),
            SettingField::password(
                "power_token",
                "Power token, will be used in place of power_user and power_pass",
            ),
            SettingField::choice(
                "power_verify_ssl",
                "Verify SSL connections with system CA certificates",
                &[("n", "No"), ("y", "Yes")],
                "n",
            )
            .required(),
        ],
    )
}

#[derive(Clone, Debug)]
pub enum WebhookAuth {
    None,
    Basic { user: String, password: Secret },
    Bearer(Secret),
}

/// The parsed `webhook` power parameters.
#[derive(Clone, Debug)]
pub struct WebhookSettings {
    pub on_uri: Url,
    pub off_uri: Url,
    pub query_uri: Url,
    pub on_regex: Regex,
    pub off_regex: Regex,
    pub auth: WebhookAuth,
    pub verify_tls: bool,
}

impl WebhookSettings {
    pub fn from_parameters(params: &PowerParameters) -> Result<WebhookSettings, PowerError> {
        let reader = SettingsReader::new(NAME, params);
        let uri = |key: &'static str| -> Result<Url, PowerError> {
            let url = Url::parse(reader.required(key)?)
                .map_err(|error| reader.invalid(key, error.to_string()))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(reader.invalid(key, "not an http or https URL".into()));
            }
            Ok(url)
        };
        let regex = |key: &'static str, default: &str| -> Result<Regex, PowerError> {
            Regex::new(reader.optional(key).unwrap_or(default))
                .map_err(|error| reader.invalid(key, error.to_string()))
        };
        let token = reader.secret("power_token");
        let auth = if !token.is_empty() {
            WebhookAuth::Bearer(token)
        } else if let Some(user) = reader.optional("power_user") {
            WebhookAuth::Basic {
                user: user.to_owned(),
                password: reader.secret("power_pass"),
            }
        } else {
            WebhookAuth::None
        };
        Ok(WebhookSettings {
            on_uri: uri("power_on_uri")?,
            off_uri: uri("power_off_uri")?,
            query_uri: uri("power_query_uri")?,
            on_regex: regex("power_on_regex", DEFAULT_ON_REGEX)?,
            off_regex: regex("power_off_regex", DEFAULT_OFF_REGEX)?,
            auth,
            verify_tls: reader.choice("power_verify_ssl", &["n", "y"], "n")? == "y",
        })
    }
}

pub struct WebhookDriver {
    settings: WebhookSettings,
    bmc: String,
    system_id: Option<String>,
    timeouts: Timeouts,
    client: reqwest::Client,
}

impl fmt::Debug for WebhookDriver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookDriver")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// The URL without user info or query (which may hold tokens), for messages.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.to_string()
}

impl WebhookDriver {
    pub fn new(
        settings: WebhookSettings,
        options: &DriverOptions,
    ) -> Result<WebhookDriver, PowerError> {
        let client = http::client(settings.verify_tls, &options.timeouts).map_err(|error| {
            PowerError::InvalidSetting {
                power_type: NAME,
                key: "power_verify_ssl",
                reason: format!("cannot build an HTTP client: {error}"),
            }
        })?;
        Ok(WebhookDriver {
            bmc: display_url(&settings.query_uri),
            settings,
            system_id: options.system_id.as_ref().map(ToString::to_string),
            timeouts: options.timeouts,
            client,
        })
    }

    fn span(&self, action: PowerAction) -> tracing::Span {
        info_span!("power", driver = NAME, action = %action, bmc = %self.bmc)
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &Url,
        action: PowerAction,
    ) -> Result<(StatusCode, String), PowerError> {
        let mut request = self
            .client
            .request(method.clone(), url.clone())
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(system_id) = &self.system_id {
            request = request.header("System_Id", system_id);
        }
        request = match &self.settings.auth {
            WebhookAuth::None => request,
            WebhookAuth::Basic { user, password } => {
                request.basic_auth(user, Some(password.expose()))
            }
            WebhookAuth::Bearer(token) => request.bearer_auth(token.expose()),
        };
        let response = request
            .send()
            .await
            .map_err(|e| http::request_error(e, &self.bmc, action, &self.timeouts))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .map_err(|e| http::request_error(e, &self.bmc, action, &self.timeouts))?;
        Ok((status, body))
    }

    /// One call with retries; a 404 is tried once more with a trailing
    /// slash, as MAAS does.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        action: PowerAction,
    ) -> Result<String, PowerError> {
        with_retries(&self.timeouts, &self.bmc, action, || async {
            let (mut status, mut body) = self.send_once(&method, url, action).await?;
            if status == StatusCode::NOT_FOUND && !url.path().ends_with('/') {
                let mut slashed = url.clone();
                slashed.set_path(&format!("{}/", url.path()));
                (status, body) = self.send_once(&method, &slashed, action).await?;
            }
            if status.is_client_error() || status.is_server_error() {
                return Err(http::status_error(status, &body, &self.bmc, action));
            }
            Ok(body)
        })
        .await
    }

    async fn state(&self, action: PowerAction) -> Result<PowerState, PowerError> {
        let body = self
            .send(Method::GET, &self.settings.query_uri, action)
            .await?;
        Ok(if self.settings.on_regex.is_match(&body) {
            PowerState::On
        } else if self.settings.off_regex.is_match(&body) {
            PowerState::Off
        } else {
            PowerState::Unknown
        })
    }

    async fn switch(
        &self,
        action: PowerAction,
        url: &Url,
        desired: PowerState,
    ) -> Result<(), PowerError> {
        self.send(Method::POST, url, action).await?;
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
}

#[async_trait]
impl PowerDriver for WebhookDriver {
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
        self.switch(action, &self.settings.on_uri, PowerState::On)
            .instrument(self.span(action))
            .await
    }

    async fn off(&self) -> Result<(), PowerError> {
        let action = PowerAction::Off;
        self.switch(action, &self.settings.off_uri, PowerState::Off)
            .instrument(self.span(action))
            .await
    }

    async fn cycle(&self) -> Result<(), PowerError> {
        let action = PowerAction::Cycle;
        async {
            if self.state(action).await? == PowerState::On {
                self.switch(action, &self.settings.off_uri, PowerState::Off)
                    .await?;
            }
            self.switch(action, &self.settings.on_uri, PowerState::On)
                .await
        }
        .instrument(self.span(action))
        .await
    }

    async fn query(&self) -> Result<PowerState, PowerError> {
        let action = PowerAction::Query;
        self.state(action).instrument(self.span(action)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<WebhookSettings, PowerError> {
        let mut all = vec![
            ("power_on_uri", "http://h/on"),
            ("power_off_uri", "http://h/off"),
            ("power_query_uri", "http://h/state?token=abc"),
        ];
        all.extend_from_slice(pairs);
        WebhookSettings::from_parameters(&all.into_iter().collect())
    }

    #[test]
    fn defaults_and_errors() {
        let parsed = settings(&[]).ok();
        assert!(
            parsed
                .as_ref()
                .is_some_and(|s| s.on_regex.is_match(r#"{"status": "running"}"#))
        );
        assert!(
            parsed
                .as_ref()
                .is_some_and(|s| matches!(s.auth, WebhookAuth::None) && !s.verify_tls)
        );
        assert!(matches!(
            settings(&[("power_on_regex", "(")]),
            Err(PowerError::InvalidSetting {
                key: "power_on_regex",
                ..
            })
        ));
        assert!(matches!(
            settings(&[("power_on_uri", "file:///etc/passwd")]),
            Err(PowerError::InvalidSetting {
                key: "power_on_uri",
                ..
            })
        ));
        assert!(matches!(
            settings(&[("power_token", "t"), ("power_user", "u")]).map(|s| s.auth),
            Ok(WebhookAuth::Bearer(_))
        ));
        assert_eq!(
            display_url(&Url::parse("https://u:p@h/x?token=1").expect("url")),
            "https://h/x"
        );
    }
}
