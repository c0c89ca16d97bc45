//! `maas-rack register`: checks the region URL and the shared secret against the region
//! once, then records them in the data directory.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use maas_rpc::{LinkError, Secret};

use crate::config::{self, FileConfig};

/// Dials the region and runs the handshake once; returns the region's name.
pub async fn check_region(url: &str, secret: &Secret, timeout: Duration) -> anyhow::Result<String> {
    let mut stream = maas_rpc::dial(url, timeout).await.map_err(|error| match error {
        LinkError::BadUrl { .. } => anyhow!(error),
        LinkError::UpgradeRefused { status } => anyhow!(
            "{url} answered but is not a MAAS region that accepts racks (it said {status:?}); check the URL, which ends in /MAAS"
        ),
        other => anyhow!("cannot reach the region at {url}: {}", crate::error_chain(&other)),
    })?;
    let handshake = tokio::time::timeout(timeout, maas_rpc::rack_handshake(&mut stream, secret))
        .await
        .map_err(|_| {
            anyhow!("the region at {url} did not complete the handshake within {timeout:?}")
        })?;
    match handshake {
        Ok(region) => Ok(region),
        Err(LinkError::RegionNotAuthentic | LinkError::Refused { .. }) => bail!(
            "the region at {url} does not accept this secret: it must be the hex string in the region's <data dir>/secret file"
        ),
        Err(other) => Err(anyhow!(
            "handshake with the region at {url} failed: {}",
            crate::error_chain(&other)
        )),
    }
}

/// Validates `url` and `secret` against the region, then writes `rackd.toml` (the URL list
/// becomes just `url`; other settings are kept) and the 0600 `secret` file.
pub async fn register(data_dir: &Path, url: &str, secret_hex: &str) -> anyhow::Result<String> {
    let url = url.trim().trim_end_matches('/').to_owned();
    maas_rpc::transport::link_target(&url).with_context(|| format!("region URL {url:?}"))?;
    let secret = Secret::from_hex(secret_hex).context("the --secret value")?;
    let region = check_region(&url, &secret, Duration::from_secs(10)).await?;
    let mut file: FileConfig = config::read_file(data_dir)?.unwrap_or_default();
    file.maas_url = vec![url];
    config::write_file(data_dir, &file)?;
    config::write_secret(data_dir, &secret)?;
    Ok(region)
}
