//! The preseed fetched from `cloud-config-url`: cloud-config YAML whose
//! `datasource.MAAS` holds the metadata URL and, for a known node, its OAuth token (§2.2,
//! §3.7). The enlistment preseed has the URL and no credentials.

use serde::Deserialize;

use crate::oauth::Credentials;

/// Why a preseed was refused.
#[derive(Debug, thiserror::Error)]
pub enum PreseedError {
    #[error("preseed is not valid YAML")]
    Yaml(#[source] serde_norway::Error),
    #[error("preseed has no datasource.MAAS.metadata_url")]
    NoMetadataUrl,
    #[error("preseed has only some of consumer_key, token_key and token_secret")]
    PartialCredentials,
}

/// What the agent takes from a preseed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Preseed {
    /// Always ends with `/` (`http://<rack>:5248/MAAS/metadata/` or `.../curtin/`).
    pub metadata_url: String,
    pub credentials: Option<Credentials>,
    /// The status webhook (`reporting.maas.endpoint`), when given.
    pub reporting_endpoint: Option<String>,
    /// `power_state.mode`: `poweroff`, `reboot`, or none.
    pub power_mode: Option<String>,
}

#[derive(Deserialize, Default)]
struct Document {
    #[serde(default)]
    datasource: Option<Datasources>,
    #[serde(default)]
    reporting: Option<Reporting>,
    #[serde(default)]
    power_state: Option<PowerState>,
}

#[derive(Deserialize)]
struct Datasources {
    #[serde(rename = "MAAS")]
    maas: Option<MaasDatasource>,
}

#[derive(Deserialize)]
struct MaasDatasource {
    metadata_url: Option<String>,
    consumer_key: Option<String>,
    token_key: Option<String>,
    token_secret: Option<String>,
}

#[derive(Deserialize)]
struct Reporting {
    maas: Option<Webhook>,
}

#[derive(Deserialize)]
struct Webhook {
    endpoint: Option<String>,
}

#[derive(Deserialize)]
struct PowerState {
    mode: Option<String>,
}

impl Preseed {
    pub fn parse(text: &str) -> Result<Self, PreseedError> {
        let document: Document = if text.trim().is_empty() {
            Document::default()
        } else {
            serde_norway::from_str(text).map_err(PreseedError::Yaml)?
        };
        let maas = document
            .datasource
            .and_then(|datasource| datasource.maas)
            .ok_or(PreseedError::NoMetadataUrl)?;
        let mut metadata_url = maas
            .metadata_url
            .filter(|url| !url.trim().is_empty())
            .ok_or(PreseedError::NoMetadataUrl)?
            .trim()
            .to_owned();
        if !metadata_url.ends_with('/') {
            metadata_url.push('/');
        }
        let credentials = match (maas.consumer_key, maas.token_key, maas.token_secret) {
            (Some(consumer_key), Some(token_key), Some(token_secret)) => Some(Credentials {
                consumer_key,
                token_key,
                token_secret,
            }),
            (None, None, None) => None,
            _ => return Err(PreseedError::PartialCredentials),
        };
        Ok(Preseed {
            metadata_url,
            credentials,
            reporting_endpoint: document
                .reporting
                .and_then(|reporting| reporting.maas)
                .and_then(|webhook| webhook.endpoint),
            power_mode: document.power_state.and_then(|power| power.mode),
        })
    }

    /// Whether this is the deployment preseed (metadata URL under `/curtin/`, §3.7).
    pub fn is_deployment(&self) -> bool {
        self.metadata_url.trim_end_matches('/').ends_with("/curtin")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NODE: &str = "#cloud-config
datasource:
  MAAS:
    consumer_key: Cq2s
    metadata_url: http://10.0.0.1:5248/MAAS/metadata/curtin
    token_key: 'Tk:9'
    token_secret: \"s3cr3t\"
manage_etc_hosts: true
power_state:
  condition: test ! -e /tmp/block-reboot
  delay: now
  mode: reboot
  timeout: 1800
reporting:
  maas:
    consumer_key: Cq2s
    endpoint: http://10.0.0.1:5248/MAAS/metadata/status/abc123
    token_key: Tk
    token_secret: s3cr3t
    type: webhook
";

    #[test]
    fn node_preseed() {
        let preseed = Preseed::parse(NODE).unwrap();
        assert_eq!(
            preseed.metadata_url,
            "http://10.0.0.1:5248/MAAS/metadata/curtin/"
        );
        assert!(preseed.is_deployment());
        let credentials = preseed.credentials.unwrap();
        assert_eq!(credentials.token_key, "Tk:9");
        assert_eq!(credentials.token_secret, "s3cr3t");
        assert_eq!(preseed.power_mode.as_deref(), Some("reboot"));
        assert_eq!(
            preseed.reporting_endpoint.as_deref(),
            Some("http://10.0.0.1:5248/MAAS/metadata/status/abc123")
        );
    }

    #[test]
    fn enlist_preseed_and_json() {
        let preseed = Preseed::parse(
            r#"{"datasource": {"MAAS": {"metadata_url": "http://10.0.0.1:5248/MAAS/metadata/"}}, "power_state": {"mode": "poweroff"}}"#,
        )
        .unwrap();
        assert_eq!(preseed.credentials, None);
        assert!(!preseed.is_deployment());
    }

    #[test]
    fn bad_preseeds() {
        assert!(matches!(
            Preseed::parse("datasource: [unclosed"),
            Err(PreseedError::Yaml(_))
        ));
        assert!(matches!(
            Preseed::parse(""),
            Err(PreseedError::NoMetadataUrl)
        ));
        assert!(matches!(
            Preseed::parse("datasource: {MAAS: {metadata_url: ''}}"),
            Err(PreseedError::NoMetadataUrl)
        ));
        assert!(matches!(
            Preseed::parse("datasource: {MAAS: {metadata_url: 'http://h/', token_key: x}}"),
            Err(PreseedError::PartialCredentials)
        ));
        assert!(Preseed::parse("- just\n- a list\n").is_err());
    }
}
