//! The running rack: the region link plus the DHCP, TFTP and HTTP boot servers, each
//! supervised so that one that cannot start (no root for port 67 or 69, a port taken)
//! reports itself `dead` with the reason and is retried, while the rest keeps running.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::Context;
use maas_rack::{
    BootBackend, BootFiles, BootFilesConfig, DhcpServer, DhcpServerConfig, HttpConfig, HttpServer,
    ImageCache, ImageCacheConfig, RegionHttpSource, RegionLink, RegionLinkConfig, ServiceRegistry,
    ServiceStatus, TftpConfig, TftpServer,
};
use maas_rpc::Secret;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::config::RackConfig;
use crate::error_chain;
use crate::interfaces::{self, Sources};
use crate::loaders;

/// Service names MAAS uses for the rack's services.
pub const RACKD: &str = "rackd";
pub const DHCPD: &str = "dhcpd";
pub const TFTP: &str = "tftp";
pub const HTTP: &str = "http";

/// Directories under the data directory.
pub const LOADER_DIR: &str = "boot-loaders";
pub const IMAGES_DIR: &str = "images";
pub const IMAGE_CACHE_DIR: &str = "image-cache";
pub const DHCP_STATE_DIR: &str = "dhcp";

/// A started rack; [`Rack::stop`] shuts it down.
pub struct Rack {
    link: RegionLink,
    services: Arc<ServiceRegistry>,
    bound: Arc<Mutex<Bound>>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Addresses the servers actually bound (the real port when 0 was asked for).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Bound {
    pub tftp: Vec<SocketAddr>,
    pub http: Option<SocketAddr>,
}

impl Rack {
    pub fn link(&self) -> &RegionLink {
        &self.link
    }

    pub fn services(&self) -> &Arc<ServiceRegistry> {
        &self.services
    }

    pub fn bound(&self) -> Bound {
        self.bound
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Stops every server and the link, and waits for them.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
        info!("rack stopped");
    }
}

/// Runs the rack until `shutdown` completes: what `maas-rack start` does, and what an
/// all-in-one `maas start` calls to run a rack in the region's process.
pub async fn run(
    config: RackConfig,
    secret: Secret,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let rack = start(config, secret).await?;
    shutdown.await;
    rack.stop().await;
    Ok(())
}

/// Starts the rack and returns at once; the servers bind in the background.
pub async fn start(config: RackConfig, secret: Secret) -> anyhow::Result<Rack> {
    let data = config.data_dir.clone();
    std::fs::create_dir_all(&data)
        .with_context(|| format!("creating the rack data directory {}", data.display()))?;
    let services = Arc::new(ServiceRegistry::new());
    services.set_running(RACKD);

    let loader_root = data.join(LOADER_DIR);
    let system_root = config.loader_system_root.clone();
    let target = loader_root.clone();
    tokio::task::spawn_blocking(move || loaders::assemble_logged(&system_root, &target))
        .await
        .context("assembling the boot loaders")?;

    let mut link_config = RegionLinkConfig::new(config.maas_urls.clone(), secret, data.clone());
    link_config.hostname = config.hostname.clone();
    link_config.http_port = config.http_port;
    link_config.timing = config.link.clone();
    let sources = Sources::system();
    let link = RegionLink::new(
        link_config,
        Arc::clone(&services),
        Arc::new(move || interfaces::discover(&sources)),
    )
    .context("starting the region link")?;
    let backend: Arc<dyn BootBackend> = Arc::new(link.clone());

    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let bound = Arc::new(Mutex::new(Bound::default()));

    let images = data.join(IMAGES_DIR);
    std::fs::create_dir_all(&images).with_context(|| format!("creating {}", images.display()))?;
    let mut files = BootFiles::new(
        BootFilesConfig {
            root: loader_root,
            images: Some(images),
            http_port: config.http_port,
        },
        Arc::clone(&backend),
    );
    let regions: Vec<String> = config
        .maas_urls
        .iter()
        .filter_map(|url| {
            crate::images::region_http(url)
                .ok()
                .map(|(address, _)| address)
        })
        .collect();
    match ImageCache::open(
        ImageCacheConfig {
            dir: data.join(IMAGE_CACHE_DIR),
            max_bytes: config.image_cache_max_bytes,
        },
        Arc::new(RegionHttpSource::new(regions)),
    )
    .await
    {
        Ok(cache) => {
            let cache = Arc::new(cache);
            files = files.with_image_cache(Arc::clone(&cache));
            tasks.spawn(crate::images::keep_manifest(
                cache,
                config.maas_urls.clone(),
                config.manifest_interval,
                stopped.clone(),
            ));
        }
        Err(error) => {
            warn!(error = %error_chain(&error), "boot image cache unavailable; serving only local files");
        }
    }
    let files = Arc::new(files);

    {
        let link = link.clone();
        let mut stopped = stopped.clone();
        tasks.spawn(async move {
            link.run(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await;
        });
    }
    if config.dhcp_enabled {
        tasks.spawn(supervise_dhcp(
            config.clone(),
            Arc::clone(&backend),
            Arc::clone(&services),
            stopped.clone(),
        ));
    } else {
        services.set(DHCPD, ServiceStatus::Off, "disabled in rackd.toml");
    }
    if config.tftp_enabled {
        tasks.spawn(supervise_tftp(
            config.clone(),
            Arc::clone(&files),
            Arc::clone(&services),
            Arc::clone(&bound),
            stopped.clone(),
        ));
    } else {
        services.set(TFTP, ServiceStatus::Off, "disabled in rackd.toml");
    }
    if config.http_enabled {
        tasks.spawn(supervise_http(
            config.clone(),
            files,
            Arc::clone(&services),
            Arc::clone(&bound),
            stopped,
        ));
    } else {
        services.set(HTTP, ServiceStatus::Off, "disabled in rackd.toml");
    }
    info!(
        data_dir = %data.display(),
        regions = ?config.maas_urls,
        hostname = %config.hostname,
        "MAAS rack started"
    );
    Ok(Rack {
        link,
        services,
        bound,
        stop,
        tasks,
    })
}

/// `cannot bind UDP 0.0.0.0:67: permission denied`.
fn bind_reason(what: &str, address: &str, error: &std::io::Error) -> String {
    let cause = match error.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::AddrInUse => "address in use".to_owned(),
        std::io::ErrorKind::AddrNotAvailable => "address not available".to_owned(),
        _ => error.to_string(),
    };
    format!("cannot bind {what} {address}: {cause}")
}

/// The status info for a server that failed to start: the bind reason when an I/O error
/// is in the chain, the whole chain otherwise.
fn start_failure(
    what: &str,
    addresses: &[SocketAddr],
    error: &(dyn std::error::Error + 'static),
) -> String {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            let shown: Vec<String> = addresses.iter().map(SocketAddr::to_string).collect();
            return bind_reason(what, &shown.join(","), io);
        }
        source = cause.source();
    }
    error_chain(error)
}

/// Resolves when the rack is stopping.
async fn stopping(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

/// Waits `retry`, or returns `true` when the rack stops first.
async fn wait_retry(stopped: &watch::Receiver<bool>, retry: std::time::Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(retry) => false,
        () = stopping(stopped.clone()) => true,
    }
}

/// Records a failure once per distinct reason.
fn report_dead(services: &ServiceRegistry, name: &str, reason: String) {
    if services.status(name) != Some((ServiceStatus::Dead, reason.clone())) {
        error!(service = name, reason = %reason, "rack service cannot run; retrying");
    }
    services.set_dead(name, reason);
}

/// Whether UDP `port` can be bound on the wildcard address next to the DHCP server's own
/// sockets (which share it with SO_REUSEADDR).
fn probe_udp(port: u16) -> Result<(), String> {
    let address = SocketAddr::from(([0, 0, 0, 0], port));
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(|e| bind_reason("UDP", &address.to_string(), &e))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| bind_reason("UDP", &address.to_string(), &e))?;
    socket
        .bind(&address.into())
        .map_err(|e| bind_reason("UDP", &address.to_string(), &e))
}

async fn supervise_dhcp(
    config: RackConfig,
    backend: Arc<dyn BootBackend>,
    services: Arc<ServiceRegistry>,
    stopped: watch::Receiver<bool>,
) {
    let state_dir: PathBuf = config.data_dir.join(DHCP_STATE_DIR);
    loop {
        if let Err(reason) = probe_udp(config.dhcp_server_port) {
            report_dead(&services, DHCPD, reason);
            if wait_retry(&stopped, config.server_retry).await {
                return;
            }
            continue;
        }
        let mut server_config = DhcpServerConfig::new(state_dir.clone());
        server_config.server_port = config.dhcp_server_port;
        server_config.client_port = config.dhcp_client_port;
        server_config.http_port = config.http_port;
        server_config.fsync = config.dhcp_fsync;
        let server = match DhcpServer::bind(server_config, Arc::clone(&backend)).await {
            Ok(server) => server,
            Err(error) => {
                report_dead(&services, DHCPD, error_chain(&error));
                if wait_retry(&stopped, config.server_retry).await {
                    return;
                }
                continue;
            }
        };
        // Running while the region gives it interfaces to serve, off otherwise.
        let status = tokio::spawn(follow_dhcp_status(
            backend.dhcp_config(),
            Arc::clone(&services),
        ));
        let result = server.run(stopping(stopped.clone())).await;
        status.abort();
        match result {
            Ok(()) => return,
            Err(error) => {
                report_dead(&services, DHCPD, error_chain(&error));
                if wait_retry(&stopped, config.server_retry).await {
                    return;
                }
            }
        }
    }
}

/// The DHCP service's state from what the region asks it to serve: `off` with nothing to
/// serve, `degraded` while a listed interface does not exist on this host (the server keeps
/// retrying it), `running` otherwise. Checked on every change and every 30 s.
async fn follow_dhcp_status(
    mut changes: watch::Receiver<Arc<maas_rack::DhcpServiceConfig>>,
    services: Arc<ServiceRegistry>,
) {
    let mut recheck = tokio::time::interval(std::time::Duration::from_secs(30));
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let names: Vec<String> = changes
            .borrow_and_update()
            .interfaces
            .iter()
            .map(|i| i.name.clone())
            .collect();
        let (status, info) =
            dhcp_status(&names, |name| nix::net::if_::if_nametoindex(name).is_ok());
        services.set(DHCPD, status, info);
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
            }
            _ = recheck.tick() => {}
        }
    }
}

fn dhcp_status(interfaces: &[String], exists: impl Fn(&str) -> bool) -> (ServiceStatus, String) {
    if interfaces.is_empty() {
        return (
            ServiceStatus::Off,
            "the region has not asked this rack to serve DHCP".to_owned(),
        );
    }
    let missing: Vec<&str> = interfaces
        .iter()
        .map(String::as_str)
        .filter(|name| !exists(name))
        .collect();
    if missing.is_empty() {
        (
            ServiceStatus::Running,
            format!("serving {} interface(s)", interfaces.len()),
        )
    } else {
        (
            ServiceStatus::Degraded,
            format!("no such interface on this host: {}", missing.join(", ")),
        )
    }
}

async fn supervise_tftp(
    config: RackConfig,
    files: Arc<BootFiles>,
    services: Arc<ServiceRegistry>,
    bound: Arc<Mutex<Bound>>,
    stopped: watch::Receiver<bool>,
) {
    loop {
        let tftp_config = TftpConfig {
            listen: config.tftp_listen.clone(),
            ..TftpConfig::default()
        };
        let server = match TftpServer::bind(tftp_config, Arc::clone(&files)).await {
            Ok(server) => server,
            Err(error) => {
                let reason = start_failure("UDP", &config.tftp_listen, &error);
                report_dead(&services, TFTP, reason);
                if wait_retry(&stopped, config.server_retry).await {
                    return;
                }
                continue;
            }
        };
        lock(&bound).tftp = server.local_addrs();
        services.set_running(TFTP);
        match server.run(stopping(stopped.clone())).await {
            Ok(()) => return,
            Err(error) => {
                report_dead(&services, TFTP, error_chain(&error));
                if wait_retry(&stopped, config.server_retry).await {
                    return;
                }
            }
        }
    }
}

async fn supervise_http(
    config: RackConfig,
    files: Arc<BootFiles>,
    services: Arc<ServiceRegistry>,
    bound: Arc<Mutex<Bound>>,
    stopped: watch::Receiver<bool>,
) {
    loop {
        let http_config = HttpConfig {
            listen: config.http_listen,
        };
        let server = match HttpServer::bind(http_config, Arc::clone(&files)).await {
            Ok(server) => server,
            Err(error) => {
                let reason = start_failure("TCP", &[config.http_listen], &error);
                report_dead(&services, HTTP, reason);
                if wait_retry(&stopped, config.server_retry).await {
                    return;
                }
                continue;
            }
        };
        lock(&bound).http = server.local_addr();
        services.set_running(HTTP);
        match server.run(stopping(stopped.clone())).await {
            Ok(()) => return,
            Err(error) => {
                report_dead(&services, HTTP, error_chain(&error));
                if wait_retry(&stopped, config.server_retry).await {
                    return;
                }
            }
        }
    }
}

fn lock(bound: &Mutex<Bound>) -> std::sync::MutexGuard<'_, Bound> {
    // Plain data, whole after every assignment.
    bound
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dhcp_status_follows_the_served_interfaces() {
        let names = |list: &[&str]| list.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>();
        let exists = |name: &str| name != "eth9";
        assert_eq!(dhcp_status(&[], exists).0, ServiceStatus::Off);
        assert_eq!(
            dhcp_status(&names(&["eth0", "eth1"]), exists),
            (ServiceStatus::Running, "serving 2 interface(s)".to_owned())
        );
        assert_eq!(
            dhcp_status(&names(&["eth0", "eth9"]), exists),
            (
                ServiceStatus::Degraded,
                "no such interface on this host: eth9".to_owned()
            )
        );
    }

    #[test]
    fn bind_failures_read_like_maas_status_info() {
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert_eq!(
            bind_reason("UDP", "0.0.0.0:67", &denied),
            "cannot bind UDP 0.0.0.0:67: permission denied"
        );
        let address = SocketAddr::from(([127, 0, 0, 1], 69));
        let error = maas_rack::TftpError::Bind {
            address,
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
        };
        assert_eq!(
            start_failure("UDP", &[address], &error),
            "cannot bind UDP 127.0.0.1:69: address in use"
        );
    }
}
