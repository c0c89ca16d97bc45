//! The region's shared state: the store, configuration, clock and the
//! resource table, handed to every request.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use maas_store::{Millis, Store};

use crate::api::{self, Resource};
use crate::changes::Changes;
use crate::http::oauth::NonceCache;
use crate::power::{DirectPower, PowerControl};

/// Where time comes from, so tests can move it.
pub trait Clock: Send + Sync {
    fn now_millis(&self) -> Millis;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_millis(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            .unwrap_or(0)
    }
}

/// A clock tests set by hand.
#[derive(Default)]
pub struct ManualClock(std::sync::atomic::AtomicI64);

impl ManualClock {
    pub fn new(now: Millis) -> ManualClock {
        ManualClock(std::sync::atomic::AtomicI64::new(now))
    }

    pub fn set(&self, now: Millis) {
        self.0.store(now, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_millis(&self) -> Millis {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// What the region needs to know about itself.
#[derive(Clone, Debug)]
pub struct RegionConfig {
    /// The URL machines and racks use to reach the region (`maas_url`).
    pub maas_url: String,
    /// Largest request body accepted by the API, in bytes.
    pub max_body_bytes: usize,
    /// Nonces remembered for replay protection (bounds the cache's memory).
    pub nonce_capacity: usize,
    /// Where `/MAAS/machine-resources/<arch>` helpers (the machine agent) are.
    pub agent_dir: Option<std::path::PathBuf>,
    /// How often status timers and heartbeats are checked.
    pub monitor_interval: std::time::Duration,
    /// The secret racks must prove they know (`<data dir>/secret`); without it racks
    /// cannot connect.
    pub secret: Option<maas_rpc::Secret>,
    /// How often this process records that it is alive and which racks it holds.
    pub heartbeat_interval: std::time::Duration,
    /// Boot images: the content store, the importer, automatic imports, the default source.
    pub images: crate::service::images::ImagesConfig,
    /// The power-state poller [`Region::start`] runs; `None` polls nothing.
    pub power_poll: Option<maas_power::poller::PollerConfig>,
}

impl Default for RegionConfig {
    fn default() -> RegionConfig {
        RegionConfig {
            maas_url: "http://localhost:5240/MAAS".to_owned(),
            max_body_bytes: 64 * 1024 * 1024,
            nonce_capacity: 1_000_000,
            agent_dir: None,
            monitor_interval: std::time::Duration::from_secs(10),
            secret: None,
            heartbeat_interval: std::time::Duration::from_secs(30),
            images: crate::service::images::ImagesConfig::default(),
            power_poll: Some(maas_power::poller::PollerConfig::default()),
        }
    }
}

pub struct Region {
    pub store: Arc<dyn Store>,
    pub power: Arc<dyn PowerControl>,
    pub config: RegionConfig,
    pub clock: Arc<dyn Clock>,
    pub nonces: NonceCache,
    pub resources: Vec<Resource>,
    pub api_hash: String,
    /// The racks linked to this process.
    pub hub: crate::link::RackHub,
    /// Opened on first use: see [`Region::images`].
    images: tokio::sync::OnceCell<Arc<crate::service::images::Images>>,
    /// Status and power changes, for the dashboard's live updates.
    pub changes: Changes,
    /// The dashboard's in-memory state (forms already submitted).
    pub dashboard: crate::dashboard::State,
}

impl Region {
    /// A region that powers machines itself ([`DirectPower`]).
    pub fn new(store: Arc<dyn Store>, config: RegionConfig, clock: Arc<dyn Clock>) -> Arc<Region> {
        Region::with_power(store, config, clock, Arc::new(DirectPower::default()))
    }

    pub fn with_power(
        store: Arc<dyn Store>,
        config: RegionConfig,
        clock: Arc<dyn Clock>,
        power: Arc<dyn PowerControl>,
    ) -> Arc<Region> {
        let resources = api::resources();
        let api_hash = api::describe::hash(&resources);
        Arc::new(Region {
            store,
            power,
            nonces: NonceCache::new(config.nonce_capacity),
            config,
            clock,
            resources,
            api_hash,
            hub: crate::link::RackHub::new(),
            images: tokio::sync::OnceCell::new(),
            changes: Changes::default(),
            dashboard: crate::dashboard::State::default(),
        })
    }

    pub fn now(&self) -> Millis {
        self.clock.now_millis()
    }

    /// Networks, addresses or machines changed: racks get a fresh DHCP configuration.
    pub fn network_changed(&self) {
        self.hub.network_changed();
    }

    /// The boot image content store, importer and uploads, opened the first time they are
    /// needed; 503 when the region has no image directory.
    pub async fn images(&self) -> Result<Arc<crate::service::images::Images>, crate::ServiceError> {
        self.images
            .get_or_try_init(|| async { crate::service::images::open(self).await.map(Arc::new) })
            .await
            .cloned()
    }
}

impl Region {
    /// Prepares the database for serving (builtin scripts, the default boot source) and
    /// starts the background work: status timers, heartbeat supervision, the power-state
    /// poller and, when configured, automatic boot image imports.
    pub async fn start(
        self: &Arc<Region>,
    ) -> Result<tokio::task::JoinHandle<()>, crate::ServiceError> {
        crate::service::scripts::install_builtins(self.store.as_ref(), self.now()).await?;
        crate::service::images::ensure_default_source(
            self.store.as_ref(),
            &self.config.images.default_source,
            self.now(),
        )
        .await?;
        let region = self.clone();
        let heartbeat = tokio::spawn(crate::link::heartbeat(
            self.clone(),
            self.config.heartbeat_interval,
        ));
        Ok(tokio::spawn(async move {
            // Dropping this task's handle does not stop the heartbeat; aborting it does.
            let _heartbeat = AbortOnDrop(heartbeat);
            let power_poll = region.config.power_poll;
            tokio::join!(
                crate::service::timers::run(region.clone()),
                crate::service::images::auto_import(region.clone()),
                async move {
                    if let Some(config) = power_poll {
                        crate::service::power_poll::run(region, config).await;
                    }
                },
            );
        }))
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
