//! Keeps the image cache's manifest current: the region serves it at
//! `GET <maas_url>/boot-resources/manifest.json`. A region that has none yet (404), or is
//! down, is logged once and asked again later; the rack serves without images meanwhile.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use maas_rack::{ImageCache, ImageManifest};
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Largest manifest accepted: one entry is about 150 bytes.
const MAX_MANIFEST: usize = 64 * 1024 * 1024;

/// Why a fetch gave no manifest.
#[derive(Debug, thiserror::Error)]
pub enum ManifestFetchError {
    #[error("region URL {url:?} cannot be used")]
    Url {
        url: String,
        #[source]
        source: maas_rpc::LinkError,
    },
    #[error("asking {address} for the image manifest")]
    Http {
        address: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("the region has no image manifest yet (HTTP {status})")]
    Status { status: u16 },
    #[error("the region's image manifest is not usable")]
    Manifest(#[source] maas_rack::ManifestError),
}

/// The `host:port` and path prefix (`/MAAS`) of a region URL.
pub fn region_http(url: &str) -> Result<(String, String), ManifestFetchError> {
    let (address, link_path) =
        maas_rpc::transport::link_target(url).map_err(|source| ManifestFetchError::Url {
            url: url.to_owned(),
            source,
        })?;
    let prefix = link_path
        .strip_suffix(maas_rpc::LINK_PATH)
        .unwrap_or("/MAAS")
        .to_owned();
    Ok((address, prefix))
}

/// Fetches and parses the manifest from one region.
pub async fn fetch_manifest(
    url: &str,
    timeout: Duration,
) -> Result<ImageManifest, ManifestFetchError> {
    let (address, prefix) = region_http(url)?;
    let http = |source: Box<dyn std::error::Error + Send + Sync>| ManifestFetchError::Http {
        address: address.clone(),
        source,
    };
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(&address)
            .await
            .map_err(|e| http(Box::new(e)))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| http(Box::new(e)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "manifest connection ended with an error");
            }
        });
        let request = hyper::Request::get(format!("{prefix}/boot-resources/manifest.json"))
            .header(hyper::header::HOST, address.as_str())
            .body(Empty::<Bytes>::new())
            .map_err(|e| http(Box::new(e)))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| http(Box::new(e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(ManifestFetchError::Status {
                status: status.as_u16(),
            });
        }
        let body = Limited::new(response.into_body(), MAX_MANIFEST)
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        ImageManifest::from_json(&body).map_err(ManifestFetchError::Manifest)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(result) => result,
        Err(_) => Err(http(format!("no answer within {timeout:?}").into())),
    }
}

/// Asks the regions in turn every `interval` until `stop` turns true, replacing the cache's
/// manifest when it changed. Each change of outcome is logged once.
pub async fn keep_manifest(
    cache: Arc<ImageCache>,
    urls: Vec<String>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut last_problem: Option<String> = None;
    loop {
        let mut problem = None;
        for url in &urls {
            match fetch_manifest(url, Duration::from_secs(30)).await {
                Ok(manifest) => {
                    if *cache.manifest() != manifest {
                        info!(region = %url, files = manifest.files.len(), "boot image manifest updated");
                        cache.set_manifest(manifest);
                    }
                    problem = None;
                    break;
                }
                Err(error) => problem = Some(crate::error_chain(&error)),
            }
        }
        match problem {
            Some(problem) if last_problem.as_deref() != Some(problem.as_str()) => {
                warn!(error = %problem, retry_in = ?interval, "no boot image manifest from the region; serving without region images for now");
                last_problem = Some(problem);
            }
            Some(problem) => debug!(error = %problem, "still no boot image manifest"),
            None => {
                if last_problem.take().is_some() {
                    info!("boot image manifest available again");
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_urls_give_address_and_prefix() {
        let (address, prefix) = region_http("http://10.0.0.1:5240/MAAS").expect("url");
        assert_eq!(
            (address.as_str(), prefix.as_str()),
            ("10.0.0.1:5240", "/MAAS")
        );
        let (address, prefix) = region_http("http://region/MAAS/").expect("url");
        assert_eq!((address.as_str(), prefix.as_str()), ("region:80", "/MAAS"));
        assert!(region_http("ftp://x").is_err());
    }
}
