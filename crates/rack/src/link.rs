//! The rack's side of the region-rack link, as a [`BootBackend`].
//!
//! [`RegionLink`] keeps one link to every configured region URL (MAAS racks connect to every
//! region): dial, handshake, `Register` (with the persisted system_id), then serve. A link
//! that drops or whose ping fails is dialled again with capped exponential backoff and
//! jitter; a region that refuses the rack (wrong shared secret) is retried slowly.
//!
//! What the link gives the rack's servers: the region's DHCP configuration on the
//! [`BootBackend::dhcp_config`] channel (also persisted, so a rack restarted while the region
//! is down serves what it served before), the boot decisions of `BootConfig`, and delivery of
//! lease changes (queued, batched, retried until the region acknowledges them) and service
//! states.

mod backoff;
mod dhcp_config;
mod leases;
mod persist;

use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use maas_boot_policy::{BootParams, Purpose};
use maas_dhcp_wire::engine::LeaseEvent;
use maas_rpc::{
    BootConfigReply, BootConfigRequest, Call, DhcpConfig, Handler, LinkError, Outcome, Peer, Push,
    RackInterface, Registration, RemoteError, Secret,
};
use thiserror::Error;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

use crate::backend::{BackendError, BootBackend, BootRequest, BoxFuture, DhcpServiceConfig};
use crate::services::ServiceRegistry;

pub use backoff::Backoff;
pub use dhcp_config::{Skipped, service_config};
pub use leases::{Batch, LeaseQueue, lease_update};
pub use persist::{
    DHCP_CONFIG_FILE, PersistError, SYSTEM_ID_FILE, load_dhcp_config, load_system_id,
    save_dhcp_config, save_system_id, write_atomic,
};

/// How often and how long; the defaults are MAAS's where it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkTiming {
    /// Connecting and upgrading the HTTP connection.
    pub dial_timeout: Duration,
    /// `Register`, `Leases`, `Services`.
    pub call_timeout: Duration,
    /// MAAS pings every connection every 30 s with a 10 s timeout.
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
    /// A link silent for this long is dropped (the pings keep a healthy one busy).
    pub idle: Duration,
    /// MAAS sends `UpdateServices` every 30 s.
    pub services_interval: Duration,
    /// Lease changes are sent at least this often (sooner when a batch fills).
    pub lease_flush_interval: Duration,
    pub boot_config_timeout: Duration,
    /// Reconnection backoff: first step and cap.
    pub backoff_min: Duration,
    pub backoff_max: Duration,
    /// Wait after the region refused the rack (wrong secret, registration refused).
    pub refused_retry: Duration,
}

impl Default for LinkTiming {
    fn default() -> LinkTiming {
        LinkTiming {
            dial_timeout: Duration::from_secs(10),
            call_timeout: Duration::from_secs(10),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(10),
            idle: Duration::from_secs(90),
            services_interval: Duration::from_secs(30),
            lease_flush_interval: Duration::from_secs(1),
            boot_config_timeout: Duration::from_secs(5),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
            refused_retry: Duration::from_secs(60),
        }
    }
}

#[derive(Clone, Debug)]
pub struct RegionLinkConfig {
    /// Region URLs (`http://10.0.0.1:5240/MAAS`); the rack keeps a link to each.
    pub urls: Vec<String>,
    pub secret: Secret,
    /// Where the system_id and the last DHCP configuration are kept.
    pub data_dir: PathBuf,
    pub hostname: String,
    /// The rack's software version, sent at registration.
    pub version: String,
    /// The rack's HTTP boot port, written into the boot configs it serves.
    pub http_port: u16,
    pub timing: LinkTiming,
    /// Lease changes kept while no region acknowledges them; beyond it the oldest go.
    pub lease_queue_capacity: usize,
    /// Most lease changes in one `Leases` call.
    pub lease_batch: usize,
}

impl RegionLinkConfig {
    pub fn new(urls: Vec<String>, secret: Secret, data_dir: PathBuf) -> RegionLinkConfig {
        RegionLinkConfig {
            urls,
            secret,
            data_dir,
            hostname: "maas-rack".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            http_port: 5248,
            timing: LinkTiming::default(),
            lease_queue_capacity: 10_000,
            lease_batch: 500,
        }
    }
}

/// The rack's interfaces, read afresh at each registration.
pub type InterfaceSource = Arc<dyn Fn() -> Vec<RackInterface> + Send + Sync>;

#[derive(Debug, Error)]
pub enum RegionLinkError {
    #[error("no region URL is configured")]
    NoRegion,
    #[error("reading the rack's saved state")]
    Persist {
        #[source]
        source: PersistError,
    },
}

/// Why one connection attempt failed.
#[derive(Debug, Error)]
enum ConnectError {
    #[error("cannot reach the region")]
    Dial(#[source] LinkError),
    #[error("handshake with the region failed")]
    Handshake(#[source] LinkError),
    #[error("registering with the region failed")]
    Register(#[source] LinkError),
    #[error("the region refused to register this rack: {0}")]
    RegisterRefused(RemoteError),
    #[error("the region answered Register with {0}")]
    UnexpectedReply(&'static str),
}

impl ConnectError {
    /// The region said no (as opposed to being unreachable): retry slowly.
    fn is_refusal(&self) -> bool {
        match self {
            ConnectError::Handshake(error) => matches!(
                error,
                LinkError::RegionNotAuthentic
                    | LinkError::RackNotAuthentic
                    | LinkError::Refused { .. }
            ),
            ConnectError::RegisterRefused(_) => true,
            ConnectError::Dial(_)
            | ConnectError::Register(_)
            | ConnectError::UnexpectedReply(_) => false,
        }
    }
}

/// `error: cause: cause`, for log fields.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

struct Inner {
    config: RegionLinkConfig,
    services: Arc<ServiceRegistry>,
    interfaces: InterfaceSource,
    dhcp: watch::Sender<Arc<DhcpServiceConfig>>,
    /// The last configuration received, as sent, to skip rewriting an unchanged one.
    last_dhcp: Mutex<Option<DhcpConfig>>,
    system_id: Mutex<Option<String>>,
    /// The running link to each URL, by index in `config.urls`.
    links: Mutex<Vec<Option<Peer>>>,
    connected: watch::Sender<usize>,
    leases: Mutex<LeaseQueue>,
    lease_wakeup: Notify,
    lease_overflow_warned: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every guarded value here is whole after any single update, so a panicked holder
    // leaves nothing half-done.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The region link; cheap to clone (all clones share one state).
#[derive(Clone)]
pub struct RegionLink {
    inner: Arc<Inner>,
}

impl RegionLink {
    /// Loads the persisted system_id and DHCP configuration; links open in
    /// [`RegionLink::run`]. Until any configuration is known the DHCP server serves nobody.
    pub fn new(
        config: RegionLinkConfig,
        services: Arc<ServiceRegistry>,
        interfaces: InterfaceSource,
    ) -> Result<RegionLink, RegionLinkError> {
        if config.urls.is_empty() {
            return Err(RegionLinkError::NoRegion);
        }
        let system_id = load_system_id(&config.data_dir)
            .map_err(|source| RegionLinkError::Persist { source })?;
        let (saved, initial) = match load_dhcp_config(&config.data_dir) {
            Ok(Some(saved)) => {
                let (service, skipped) = service_config(&saved);
                log_skipped("saved", &skipped);
                info!(
                    interfaces = service.interfaces.len(),
                    subnets = service.engine.subnets.len(),
                    "serving the saved DHCP configuration until a region sends one"
                );
                (Some(saved), service)
            }
            Ok(None) => (None, DhcpServiceConfig::default()),
            Err(error) => {
                warn!(error = %chain(&error), "ignoring the saved DHCP configuration; serving nobody until a region sends one");
                (None, DhcpServiceConfig::default())
            }
        };
        let links = vec![None; config.urls.len()];
        let capacity = config.lease_queue_capacity;
        Ok(RegionLink {
            inner: Arc::new(Inner {
                config,
                services,
                interfaces,
                dhcp: watch::channel(Arc::new(initial)).0,
                last_dhcp: Mutex::new(saved),
                system_id: Mutex::new(system_id),
                links: Mutex::new(links),
                connected: watch::channel(0).0,
                leases: Mutex::new(LeaseQueue::new(capacity)),
                lease_wakeup: Notify::new(),
                lease_overflow_warned: AtomicBool::new(false),
            }),
        })
    }

    /// Keeps the links up and delivers lease changes until `shutdown` completes.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()> + Send) {
        let mut tasks = JoinSet::new();
        for index in 0..self.inner.config.urls.len() {
            tasks.spawn(maintain(Arc::clone(&self.inner), index));
        }
        tasks.spawn(flush_leases(Arc::clone(&self.inner)));
        shutdown.await;
        tasks.shutdown().await;
        let mut links = lock(&self.inner.links);
        for slot in links.iter_mut() {
            *slot = None;
        }
        drop(links);
        self.inner.connected.send_replace(0);
    }

    /// The id the region gave this rack, once registered (or from a previous run).
    pub fn system_id(&self) -> Option<String> {
        lock(&self.inner.system_id).clone()
    }

    /// How many regions the rack is linked to now, as it changes.
    pub fn connected(&self) -> watch::Receiver<usize> {
        self.inner.connected.subscribe()
    }

    /// Lease changes not yet acknowledged by a region.
    pub fn pending_leases(&self) -> usize {
        lock(&self.inner.leases).len()
    }

    /// Lease changes dropped because the queue was full.
    pub fn dropped_leases(&self) -> u64 {
        lock(&self.inner.leases).dropped()
    }

    /// Tells the region a booting machine cannot be served (a missing image, say).
    pub async fn mark_node_failed(
        &self,
        system_id: &str,
        error_description: &str,
    ) -> Result<(), BackendError> {
        let call = Call::MarkNodeFailed {
            system_id: system_id.to_owned(),
            error_description: error_description.to_owned(),
        };
        match self
            .inner
            .call_any(call, self.inner.config.timing.call_timeout)
            .await?
        {
            Outcome::Done => Ok(()),
            Outcome::Error(error) => Err(BackendError::Refused {
                reason: error.to_string(),
            }),
            other => Err(BackendError::Refused {
                reason: format!("unexpected reply {}", outcome_name(&other)),
            }),
        }
    }
}

fn outcome_name(outcome: &Outcome) -> &'static str {
    match outcome {
        Outcome::Pong => "pong",
        Outcome::Done => "done",
        Outcome::Registered(_) => "registered",
        Outcome::BootConfig(_) => "boot_config",
        Outcome::Error(_) => "error",
    }
}

fn log_skipped(source: &str, skipped: &[Skipped]) {
    for entry in skipped {
        warn!(
            source,
            entry = %entry.entry,
            problem = %entry.problem,
            "DHCP configuration entry not served"
        );
    }
}

impl Inner {
    fn peers(&self) -> Vec<Peer> {
        lock(&self.links)
            .iter()
            .flatten()
            .filter(|peer| !peer.is_closed())
            .cloned()
            .collect()
    }

    fn set_link(&self, index: usize, peer: Option<Peer>) {
        let mut links = lock(&self.links);
        if let Some(slot) = links.get_mut(index) {
            *slot = peer;
        }
        let count = links.iter().flatten().count();
        drop(links);
        self.connected.send_replace(count);
    }

    /// Calls the first connected region that answers; transport failures move on to the
    /// next one.
    async fn call_any(&self, call: Call, timeout: Duration) -> Result<Outcome, BackendError> {
        let peers = self.peers();
        if peers.is_empty() {
            return Err(BackendError::Unreachable {
                source: "no region is connected".into(),
            });
        }
        let attempt = async {
            let mut last = LinkError::Closed;
            for peer in peers {
                match peer.call(call.clone(), timeout).await {
                    Ok(outcome) => return Ok(outcome),
                    Err(error) => last = error,
                }
            }
            Err(BackendError::Unreachable {
                source: Box::new(last),
            })
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(BackendError::Unreachable {
                source: Box::new(LinkError::Timeout(timeout)),
            }),
        }
    }

    /// Serves a configuration the region pushed, and keeps it for the next start.
    fn apply_dhcp(&self, config: DhcpConfig, region: &str) {
        let (service, skipped) = service_config(&config);
        log_skipped(region, &skipped);
        let changed = self.dhcp.send_if_modified(|current| {
            if **current == service {
                return false;
            }
            *current = Arc::new(service.clone());
            true
        });
        if changed {
            info!(
                region,
                interfaces = service.interfaces.len(),
                subnets = service.engine.subnets.len(),
                reservations = service.engine.reservations.len(),
                "DHCP configuration received"
            );
        } else {
            debug!(region, "DHCP configuration received, unchanged");
        }
        let mut last = lock(&self.last_dhcp);
        if last.as_ref() == Some(&config) {
            return;
        }
        match save_dhcp_config(&self.config.data_dir, &config) {
            Ok(()) => *last = Some(config),
            Err(error) => {
                warn!(error = %chain(&error), "cannot save the DHCP configuration; a restart without a region would lose it");
            }
        }
    }

    fn registration(&self, url: &str) -> Registration {
        Registration {
            system_id: lock(&self.system_id).clone(),
            hostname: self.config.hostname.clone(),
            interfaces: (self.interfaces)(),
            version: self.config.version.clone(),
            url: url.to_owned(),
        }
    }

    fn registered(&self, system_id: &str, region: &str) {
        let mut current = lock(&self.system_id);
        if current.as_deref() == Some(system_id) {
            return;
        }
        match &*current {
            None => info!(system_id, region, "registered with the region"),
            Some(old) => {
                warn!(old = %old, system_id, region, "the region gave this rack a new system_id")
            }
        }
        if let Err(error) = save_system_id(&self.config.data_dir, system_id) {
            warn!(error = %chain(&error), "cannot save the system_id; the next start registers afresh");
        }
        *current = Some(system_id.to_owned());
    }
}

/// Answers the region's calls and takes its pushes.
struct RackHandler {
    inner: Arc<Inner>,
    url: String,
}

impl Handler for RackHandler {
    fn call(&self, call: Call) -> maas_rpc::BoxFuture<Outcome> {
        let outcome = match call {
            Call::Ping => Outcome::Pong,
            other => Outcome::Error(RemoteError::new(
                "Unsupported",
                format!("the rack does not answer {}", other.name()),
            )),
        };
        Box::pin(async move { outcome })
    }

    fn push(&self, push: Push) {
        match push {
            Push::Dhcp(config) => self.inner.apply_dhcp(config, &self.url),
        }
    }
}

/// A registered link.
struct Session {
    peer: Peer,
    task: tokio::task::JoinHandle<Result<(), LinkError>>,
    region: String,
    system_id: String,
}

async fn connect(inner: &Arc<Inner>, url: &str) -> Result<Session, ConnectError> {
    let timing = &inner.config.timing;
    let mut stream = maas_rpc::dial(url, timing.dial_timeout)
        .await
        .map_err(ConnectError::Dial)?;
    let region = tokio::time::timeout(
        timing.call_timeout,
        maas_rpc::rack_handshake(&mut stream, &inner.config.secret),
    )
    .await
    .map_err(|_| ConnectError::Handshake(LinkError::Timeout(timing.call_timeout)))?
    .map_err(ConnectError::Handshake)?;
    let handler = Arc::new(RackHandler {
        inner: Arc::clone(inner),
        url: url.to_owned(),
    });
    let (peer, task) = maas_rpc::run(stream, handler, timing.idle);
    let registration = inner.registration(url);
    let outcome = peer
        .call(Call::Register(registration), timing.call_timeout)
        .await;
    let system_id = match outcome {
        Ok(Outcome::Registered(registered)) => registered.system_id,
        other => {
            task.abort();
            return Err(match other {
                Ok(Outcome::Error(error)) => ConnectError::RegisterRefused(error),
                Ok(other) => ConnectError::UnexpectedReply(outcome_name(&other)),
                Err(error) => ConnectError::Register(error),
            });
        }
    };
    inner.registered(&system_id, &region);
    Ok(Session {
        peer,
        task,
        region,
        system_id,
    })
}

/// Keeps the link to one region up, for ever.
async fn maintain(inner: Arc<Inner>, index: usize) {
    let url = inner.config.urls[index].clone();
    let timing = inner.config.timing.clone();
    let mut backoff = Backoff::new(timing.backoff_min, timing.backoff_max);
    // The last problem logged at warn or error, so a retry that fails the same way is only
    // logged at debug.
    let mut last_problem: Option<String> = None;
    loop {
        match connect(&inner, &url).await {
            Ok(session) => {
                backoff.reset();
                last_problem = None;
                info!(region = %url, region_name = %session.region, system_id = %session.system_id, "connected to the region");
                inner.set_link(index, Some(session.peer.clone()));
                let reason = serve(&inner, &session).await;
                inner.set_link(index, None);
                session.task.abort();
                warn!(region = %url, reason = %reason, "link to the region lost; reconnecting");
                tokio::time::sleep(backoff.next_delay(rand::random())).await;
            }
            Err(error) => {
                let problem = chain(&error);
                let repeated = last_problem.as_deref() == Some(problem.as_str());
                let delay = if error.is_refusal() {
                    if !repeated {
                        error!(
                            region = %url,
                            error = %problem,
                            retry_in = ?timing.refused_retry,
                            "the region refused this rack; check the shared secret given to `maas-rack register` (the region's <data dir>/secret)"
                        );
                    }
                    timing
                        .refused_retry
                        .mul_f64(0.75 + rand::random::<f64>() / 2.0)
                } else {
                    if !repeated {
                        warn!(region = %url, error = %problem, "cannot connect to the region; retrying with backoff");
                    }
                    backoff.next_delay(rand::random())
                };
                if repeated {
                    debug!(region = %url, error = %problem, ?delay, "still cannot connect to the region");
                }
                last_problem = Some(problem);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Pings and reports services on a registered link until it fails; returns why.
async fn serve(inner: &Arc<Inner>, session: &Session) -> String {
    let timing = &inner.config.timing;
    let peer = &session.peer;
    let mut services = inner.services.subscribe();
    send_services(inner, peer).await;
    let start = tokio::time::Instant::now();
    let mut ping = tokio::time::interval_at(start + timing.ping_interval, timing.ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report =
        tokio::time::interval_at(start + timing.services_interval, timing.services_interval);
    report.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = peer.closed() => return "the region closed the link".to_owned(),
            _ = ping.tick() => match peer.call(Call::Ping, timing.ping_timeout).await {
                Ok(Outcome::Pong) => {}
                Ok(other) => debug!(reply = outcome_name(&other), "odd answer to ping"),
                Err(error) => return format!("ping failed: {}", chain(&error)),
            },
            _ = report.tick() => send_services(inner, peer).await,
            changed = services.changed() => {
                if changed.is_ok() {
                    send_services(inner, peer).await;
                }
            }
        }
    }
}

async fn send_services(inner: &Inner, peer: &Peer) {
    let states = inner.services.snapshot();
    match peer
        .call(Call::Services(states), inner.config.timing.call_timeout)
        .await
    {
        Ok(Outcome::Done) => {}
        Ok(Outcome::Error(error)) => debug!(%error, "the region did not take the service states"),
        Ok(other) => debug!(reply = outcome_name(&other), "odd answer to services"),
        Err(error) => debug!(error = %chain(&error), "cannot send the service states"),
    }
}

/// Sends queued lease changes in batches, oldest first, each removed once acknowledged.
async fn flush_leases(inner: Arc<Inner>) {
    let timing = &inner.config.timing;
    let mut tick = tokio::time::interval(timing.lease_flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_problem: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = inner.lease_wakeup.notified() => {}
        }
        loop {
            let Some(batch) = lock(&inner.leases).batch(inner.config.lease_batch) else {
                break;
            };
            let count = batch.updates.len();
            let problem = match inner
                .call_any(Call::Leases(batch.updates), timing.call_timeout)
                .await
            {
                Ok(Outcome::Done) => {
                    let mut queue = lock(&inner.leases);
                    queue.ack(batch.last);
                    if queue.len() < inner.config.lease_queue_capacity {
                        inner.lease_overflow_warned.store(false, Ordering::Relaxed);
                    }
                    debug!(count, pending = queue.len(), "lease changes delivered");
                    last_problem = None;
                    continue;
                }
                Ok(Outcome::Error(error)) => format!("the region refused them: {error}"),
                Ok(other) => format!("unexpected reply {}", outcome_name(&other)),
                Err(error) => chain(&error),
            };
            if last_problem.as_deref() != Some(problem.as_str()) {
                warn!(count, error = %problem, "cannot deliver lease changes; they stay queued");
            }
            last_problem = Some(problem);
            break;
        }
    }
}

fn boot_request(request: &BootRequest) -> BootConfigRequest {
    BootConfigRequest {
        mac: request.mac.map(|mac| mac.to_string()),
        hardware_uuid: request.hardware_uuid.clone(),
        arch: request.arch.clone(),
        subarch: request.subarch.clone(),
        local_ip: request.local_ip,
        remote_ip: request.remote_ip,
        bios_boot_method: request.bios_boot_method.to_owned(),
        protocol: request.protocol.as_str().to_owned(),
    }
}

/// The boot loader parameters for the region's decision. Files are fetched from the rack
/// address the machine reached (`local_ip`) on the rack's own HTTP port.
pub fn boot_params(
    reply: BootConfigReply,
    local_ip: IpAddr,
    http_port: u16,
) -> Result<BootParams, BackendError> {
    let purpose = Purpose::from_str(&reply.purpose).map_err(|_| BackendError::Refused {
        reason: format!("the region sent unknown boot purpose {:?}", reply.purpose),
    })?;
    Ok(BootParams {
        purpose,
        arch: reply.arch,
        subarch: reply.subarch,
        osystem: reply.osystem,
        release: reply.release,
        kernel: reply.kernel,
        initrd: reply.initrd,
        boot_dtb: reply.boot_dtb,
        xinstall_path: reply.xinstall_path,
        hostname: reply.hostname,
        domain: reply.domain,
        preseed_url: reply.preseed_url,
        fs_host: local_ip,
        log_host: reply.log_host,
        log_port: reply.log_port,
        extra_opts: reply.extra_opts,
        ephemeral_opts: reply.ephemeral_opts,
        system_id: reply.system_id,
        http_port,
    })
}

impl BootBackend for RegionLink {
    fn dhcp_config(&self) -> watch::Receiver<Arc<DhcpServiceConfig>> {
        self.inner.dhcp.subscribe()
    }

    fn boot_config<'a>(
        &'a self,
        request: &'a BootRequest,
    ) -> BoxFuture<'a, Result<Option<BootParams>, BackendError>> {
        Box::pin(async move {
            let call = Call::BootConfig(boot_request(request));
            let timeout = self.inner.config.timing.boot_config_timeout;
            match self.inner.call_any(call, timeout).await? {
                Outcome::BootConfig(None) => Ok(None),
                Outcome::BootConfig(Some(reply)) => {
                    boot_params(*reply, request.local_ip, self.inner.config.http_port).map(Some)
                }
                Outcome::Error(error) => Err(BackendError::Refused {
                    reason: error.to_string(),
                }),
                other => Err(BackendError::Refused {
                    reason: format!("unexpected reply {}", outcome_name(&other)),
                }),
            }
        })
    }

    fn lease_changed(&self, event: &LeaseEvent) {
        let Some(update) = lease_update(event) else {
            return;
        };
        let mut queue = lock(&self.inner.leases);
        let dropped = queue.push(update);
        let full_batch = queue.len() >= self.inner.config.lease_batch;
        let total_dropped = queue.dropped();
        drop(queue);
        if dropped
            && !self
                .inner
                .lease_overflow_warned
                .swap(true, Ordering::Relaxed)
        {
            warn!(
                capacity = self.inner.config.lease_queue_capacity,
                dropped = total_dropped,
                "lease queue full while no region acknowledges; dropping the oldest changes"
            );
        }
        if full_batch {
            self.inner.lease_wakeup.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(purpose: &str) -> BootConfigReply {
        BootConfigReply {
            purpose: purpose.into(),
            arch: "amd64".into(),
            subarch: "generic".into(),
            osystem: "ubuntu".into(),
            release: "noble".into(),
            kernel: "abc1234/ubuntu/amd64/ga-24.04/noble/stable/boot-kernel".into(),
            initrd: "abc1234/ubuntu/amd64/ga-24.04/noble/stable/boot-initrd".into(),
            boot_dtb: None,
            xinstall_path: Some("abc1234/ubuntu/amd64/ga-24.04/noble/stable/squashfs".into()),
            hostname: "node1".into(),
            domain: "maas".into(),
            preseed_url: "http://10.0.0.2:5248/MAAS/metadata/latest/by-id/xyz234/?op=get_preseed"
                .into(),
            fs_host: "192.0.2.1".parse().expect("ip"),
            log_host: "10.0.0.2".into(),
            log_port: 5247,
            extra_opts: "quiet".into(),
            ephemeral_opts: String::new(),
            system_id: Some("xyz234".into()),
        }
    }

    #[test]
    fn replies_map_to_boot_params_with_the_racks_address_and_port() {
        let local: IpAddr = "10.0.0.2".parse().expect("ip");
        let params = boot_params(reply("commissioning"), local, 15248).expect("maps");
        assert_eq!(params.purpose, Purpose::Commissioning);
        assert_eq!(params.fs_host, local);
        assert_eq!(params.http_port, 15248);
        assert_eq!(params.hostname, "node1");
        assert_eq!(params.system_id.as_deref(), Some("xyz234"));
        assert_eq!(
            params.kernel_url(),
            "http://10.0.0.2:15248/images/abc1234/ubuntu/amd64/ga-24.04/noble/stable/boot-kernel"
        );
        assert_eq!(
            boot_params(reply("local-device"), local, 5248)
                .expect("maps")
                .purpose,
            Purpose::Local
        );
        assert!(matches!(
            boot_params(reply("dance"), local, 5248),
            Err(BackendError::Refused { .. })
        ));
    }

    #[test]
    fn refusals_are_told_apart_from_outages() {
        let refused = [
            ConnectError::Handshake(LinkError::RegionNotAuthentic),
            ConnectError::Handshake(LinkError::Refused {
                reason: "no".into(),
            }),
            ConnectError::RegisterRefused(RemoteError::new("NotAllowed", "no")),
        ];
        assert!(refused.iter().all(ConnectError::is_refusal));
        let transient = [
            ConnectError::Dial(LinkError::Closed),
            ConnectError::Handshake(LinkError::Closed),
            ConnectError::Register(LinkError::Timeout(Duration::from_secs(1))),
            ConnectError::UnexpectedReply("pong"),
        ];
        assert!(!transient.iter().any(ConnectError::is_refusal));
    }

    #[test]
    fn a_saved_configuration_is_served_at_start_and_a_bad_one_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = RegionLinkConfig::new(
            vec!["http://127.0.0.1:9/MAAS".into()],
            Secret::from_bytes([7; 16]),
            dir.path().to_owned(),
        );
        let services = Arc::new(ServiceRegistry::new());
        let no_interfaces: InterfaceSource = Arc::new(Vec::new);
        let link = RegionLink::new(config.clone(), Arc::clone(&services), no_interfaces.clone())
            .expect("link");
        assert!(link.dhcp_config().borrow().interfaces.is_empty());
        assert_eq!(link.system_id(), None);

        let pushed = DhcpConfig {
            interfaces: vec![maas_rpc::DhcpInterface {
                name: "eth1".into(),
                address: "10.0.0.2".parse().expect("ip"),
            }],
            subnets: vec![],
            hosts: vec![],
        };
        let mut changes = link.dhcp_config();
        link.inner.apply_dhcp(pushed.clone(), "test");
        assert!(changes.has_changed().expect("alive"));
        assert_eq!(changes.borrow_and_update().interfaces.len(), 1);
        // The same configuration again changes nothing.
        link.inner.apply_dhcp(pushed, "test");
        assert!(!changes.has_changed().expect("alive"));
        link.inner.registered("xyz234", "test");

        let restarted =
            RegionLink::new(config.clone(), Arc::clone(&services), no_interfaces.clone())
                .expect("link");
        assert_eq!(restarted.dhcp_config().borrow().interfaces.len(), 1);
        assert_eq!(restarted.system_id().as_deref(), Some("xyz234"));

        std::fs::write(dir.path().join(DHCP_CONFIG_FILE), b"garbage").expect("write");
        let damaged = RegionLink::new(config, services, no_interfaces).expect("link");
        assert!(damaged.dhcp_config().borrow().interfaces.is_empty());
    }

    #[tokio::test]
    async fn without_a_region_boot_config_is_unreachable_and_leases_queue() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = RegionLinkConfig::new(
            vec!["http://127.0.0.1:9/MAAS".into()],
            Secret::from_bytes([7; 16]),
            dir.path().to_owned(),
        );
        config.lease_queue_capacity = 2;
        let link = RegionLink::new(config, Arc::new(ServiceRegistry::new()), Arc::new(Vec::new))
            .expect("link");
        let request = BootRequest {
            mac: None,
            hardware_uuid: None,
            arch: Some("amd64".into()),
            subarch: None,
            local_ip: "10.0.0.2".parse().expect("ip"),
            remote_ip: "10.0.0.9".parse().expect("ip"),
            bios_boot_method: "pxe",
            protocol: crate::backend::Protocol::Tftp,
        };
        assert!(matches!(
            link.boot_config(&request).await,
            Err(BackendError::Unreachable { .. })
        ));
        let mac = "52:54:00:00:00:01".parse().expect("mac");
        for n in 1..=3 {
            link.lease_changed(&LeaseEvent::Expire {
                mac,
                ip: std::net::Ipv4Addr::new(10, 0, 0, n),
                at: u64::from(n),
            });
        }
        assert_eq!((link.pending_leases(), link.dropped_leases()), (2, 1));
    }
}
