//! The region controller: the MAAS 2.0 REST API (wire-compatible with
//! Canonical MAAS so the `maas` CLI and python-libmaas work unchanged),
//! OAuth and password authentication, the describe document, and the
//! services behind them.
//!
//! It programs against `maas-store`'s traits and never names a database
//! driver; the binary picks the store. It does not serve DHCP, TFTP or
//! boot files (that is the rack's job) and holds no wire format in its
//! domain types: `api::render` turns records into `maas-api-types` shapes.

#![forbid(unsafe_code)]

pub mod api;
pub mod changes;
pub mod credentials;
pub mod dashboard;
pub mod error;
pub mod http;
pub mod link;
pub mod power;
pub mod region;
pub mod service;
pub mod timefmt;

pub use error::{ServiceError, ServiceResult};
pub use region::{Clock, ManualClock, Region, RegionConfig, SystemClock};

/// Serves the region's HTTP API on `listener` until `shutdown` resolves.
pub async fn serve(
    region: std::sync::Arc<Region>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let closing = region.clone();
    axum::serve(listener, http::router(region))
        .with_graceful_shutdown(async move {
            shutdown.await;
            // Open event streams end, so the graceful shutdown isn't kept waiting.
            closing.changes.close();
        })
        .await
}
