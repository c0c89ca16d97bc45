//! HTTP: stream documents with a size bound, and boot files resumed with `Range` into the
//! content store's partial files.

use std::time::Duration;

use maas_simplestreams::Sha256;
use thiserror::Error;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

use crate::content_store::{ContentStore, StoreError};

/// HTTP settings of the importer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchConfig {
    /// MAAS's `http_proxy` for image downloads; `None` goes direct (the environment's proxy
    /// variables are ignored, as with `boot_images_no_proxy`).
    pub proxy: Option<String>,
    pub connect_timeout: Duration,
    /// How long a transfer may receive nothing before it is abandoned (and retried).
    pub idle_timeout: Duration,
    /// Largest index or product list accepted.
    pub max_document_bytes: u64,
}

impl Default for FetchConfig {
    fn default() -> FetchConfig {
        FetchConfig {
            proxy: None,
            connect_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_document_bytes: 64 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("building the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("requesting {url}")]
    Request {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} sent nothing for {seconds} s")]
    Stalled { url: String, seconds: u64 },
    #[error("{url} is larger than {limit} bytes")]
    TooLarge { url: String, limit: u64 },
    #[error("{url} ended after {received} of {expected} bytes")]
    Truncated {
        url: String,
        received: u64,
        expected: u64,
    },
    #[error("{url} answered a range request with {content_range:?}")]
    BadRange {
        url: String,
        content_range: Option<String>,
    },
    #[error("storing {url}")]
    Store {
        url: String,
        #[source]
        source: StoreError,
    },
    #[error("stopped")]
    Stopped,
}

pub(crate) struct Fetcher {
    client: reqwest::Client,
    config: FetchConfig,
}

impl Fetcher {
    pub(crate) fn new(config: FetchConfig) -> Result<Fetcher, FetchError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("maas-images/", env!("CARGO_PKG_VERSION")));
        builder = match &config.proxy {
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy).map_err(FetchError::Client)?),
            None => builder.no_proxy(),
        };
        Ok(Fetcher {
            client: builder.build().map_err(FetchError::Client)?,
            config,
        })
    }

    async fn next_chunk(
        &self,
        url: &str,
        response: &mut reqwest::Response,
    ) -> Result<Option<bytes::Bytes>, FetchError> {
        match tokio::time::timeout(self.config.idle_timeout, response.chunk()).await {
            Err(_) => Err(FetchError::Stalled {
                url: url.to_owned(),
                seconds: self.config.idle_timeout.as_secs(),
            }),
            Ok(Err(source)) => Err(FetchError::Request {
                url: url.to_owned(),
                source,
            }),
            Ok(Ok(chunk)) => Ok(chunk),
        }
    }

    async fn get(&self, url: &str, range_from: u64) -> Result<reqwest::Response, FetchError> {
        let mut request = self.client.get(url);
        if range_from > 0 {
            request = request.header(reqwest::header::RANGE, format!("bytes={range_from}-"));
        }
        let send = request.send();
        match tokio::time::timeout(self.config.idle_timeout + self.config.connect_timeout, send)
            .await
        {
            Err(_) => Err(FetchError::Stalled {
                url: url.to_owned(),
                seconds: self.config.idle_timeout.as_secs(),
            }),
            Ok(Err(source)) => Err(FetchError::Request {
                url: url.to_owned(),
                source,
            }),
            Ok(Ok(response)) => Ok(response),
        }
    }

    /// A whole document, refused past `max_document_bytes`. `Ok(None)` on 404, for
    /// optional documents (detached signatures).
    pub(crate) async fn document(&self, url: &str) -> Result<Option<Vec<u8>>, FetchError> {
        let mut response = self.get(url, 0).await?;
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(FetchError::Status {
                url: url.to_owned(),
                status: response.status().as_u16(),
            });
        }
        let limit = self.config.max_document_bytes;
        if response.content_length().is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk(url, &mut response).await? {
            if body.len() as u64 + chunk.len() as u64 > limit {
                return Err(FetchError::TooLarge {
                    url: url.to_owned(),
                    limit,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }

    /// Downloads `url` into the store as `sha256`, resuming what an earlier attempt left in
    /// the partial file. `progress` is told the bytes held after every chunk; a stop request
    /// ends the transfer between chunks and keeps the partial file.
    pub(crate) async fn download(
        &self,
        url: &str,
        store: &ContentStore,
        sha256: &Sha256,
        size: u64,
        progress: &(dyn Fn(u64) + Send + Sync),
        stop: &watch::Receiver<bool>,
    ) -> Result<(), FetchError> {
        let store_error = |source| FetchError::Store {
            url: url.to_owned(),
            source,
        };
        let partial = store.partial_path(sha256);
        let mut held = store.partial_len(sha256).await;
        if held > size {
            held = 0;
        }
        if held == size && size > 0 {
            progress(held);
            return store
                .commit_partial(sha256, size)
                .await
                .map_err(store_error);
        }
        let mut response = self.get(url, held).await?;
        let status = response.status();
        let append = match status {
            reqwest::StatusCode::PARTIAL_CONTENT if held > 0 => {
                let content_range = response
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let expected = format!("bytes {held}-");
                if !content_range
                    .as_deref()
                    .is_some_and(|range| range.starts_with(&expected))
                {
                    // Start over rather than splice bytes from the wrong offset.
                    let _ = tokio::fs::remove_file(&partial).await;
                    return Err(FetchError::BadRange {
                        url: url.to_owned(),
                        content_range,
                    });
                }
                tracing::debug!(url, resumed_at = held, "resuming download");
                true
            }
            // The server ignored the range: take the whole body from the start.
            reqwest::StatusCode::OK => false,
            status => {
                if status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
                    let _ = tokio::fs::remove_file(&partial).await;
                }
                return Err(FetchError::Status {
                    url: url.to_owned(),
                    status: status.as_u16(),
                });
            }
        };
        if !append {
            held = 0;
        }
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&partial)
            .await
            .map_err(|source| {
                store_error(StoreError::Io {
                    action: "opening",
                    path: partial.clone(),
                    source,
                })
            })?;
        progress(held);
        loop {
            if *stop.borrow() {
                let _ = file.flush().await;
                return Err(FetchError::Stopped);
            }
            let chunk = match self.next_chunk(url, &mut response).await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(error) => {
                    // Keep what arrived: the next attempt resumes from it.
                    let _ = file.flush().await;
                    return Err(error);
                }
            };
            if held + chunk.len() as u64 > size {
                drop(file);
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(FetchError::TooLarge {
                    url: url.to_owned(),
                    limit: size,
                });
            }
            file.write_all(&chunk).await.map_err(|source| {
                store_error(StoreError::Io {
                    action: "writing",
                    path: partial.clone(),
                    source,
                })
            })?;
            held += chunk.len() as u64;
            progress(held);
        }
        file.sync_all().await.map_err(|source| {
            store_error(StoreError::Io {
                action: "syncing",
                path: partial.clone(),
                source,
            })
        })?;
        drop(file);
        if held < size {
            return Err(FetchError::Truncated {
                url: url.to_owned(),
                received: held,
                expected: size,
            });
        }
        store
            .commit_partial(sha256, size)
            .await
            .map_err(store_error)
    }
}
