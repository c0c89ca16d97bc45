//! The DHCPv4 server: UDP sockets, one per configured interface, feeding the lease engine.
//!
//! Shape: socket loop -> `dhcp-wire` decode -> engine (addresses, options) with the boot
//! policy choosing the boot file -> lease log append (one sync per batch) -> encode -> send.
//! The server answers only on interfaces the backend lists, and only for subnets it lists:
//! an empty configuration answers nobody.

pub mod lease_store;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use maas_boot_policy::BootMethod;
use maas_dhcp_wire::Message;
use maas_dhcp_wire::engine::{
    BootFile, BootFileChooser, ClientBootInfo, Engine, Ingress, Lease, LeaseEvent, ReplyTo,
};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tracing::{Instrument, debug, error, info, warn};

use crate::backend::{BootBackend, DhcpInterface, DhcpServiceConfig};
use lease_store::{LeaseStore, LeaseStoreError};

/// The DHCP server's own settings; what to serve comes from the [`BootBackend`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpServerConfig {
    /// Where the lease log lives.
    pub state_dir: PathBuf,
    /// 67.
    pub server_port: u16,
    /// 68.
    pub client_port: u16,
    /// The HTTP boot port named in iPXE and UEFI HTTP boot file URLs (5248).
    pub http_port: u16,
    /// Sync the lease log to disk before replying (one sync per batch of packets).
    pub fsync: bool,
}

impl DhcpServerConfig {
    pub fn new(state_dir: PathBuf) -> DhcpServerConfig {
        DhcpServerConfig {
            state_dir,
            server_port: 67,
            client_port: 68,
            http_port: 5248,
            fsync: true,
        }
    }
}

#[derive(Debug, Error)]
pub enum DhcpError {
    #[error("lease log")]
    LeaseStore {
        #[source]
        source: LeaseStoreError,
    },
    #[error("binding DHCP socket on interface {interface}")]
    Bind {
        interface: String,
        #[source]
        source: io::Error,
    },
}

/// Counters, readable while the server runs.
#[derive(Debug, Default)]
pub struct DhcpStats {
    pub received: AtomicU64,
    /// Packets that did not decode; dropped.
    pub malformed: AtomicU64,
    /// Decoded requests that got no reply (unserved subnet, other server chosen, ...).
    pub ignored: AtomicU64,
    pub replies: AtomicU64,
    pub send_errors: AtomicU64,
    pub lease_events: AtomicU64,
}

impl DhcpStats {
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    pub fn replies(&self) -> u64 {
        self.replies.load(Ordering::Relaxed)
    }
}

struct State {
    engine: Engine,
    store: LeaseStore,
}

struct Shared {
    state: Mutex<State>,
    stats: Arc<DhcpStats>,
    backend: Arc<dyn BootBackend>,
    config: DhcpServerConfig,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the engine half-updated in a way that
        // matters more than stopping DHCP would, so keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A bound DHCP server; [`DhcpServer::run`] serves until shutdown.
pub struct DhcpServer {
    shared: Arc<Shared>,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl DhcpServer {
    /// Loads the lease log and prepares the engine; sockets open in [`DhcpServer::run`], one
    /// per interface the backend lists.
    pub async fn bind(
        config: DhcpServerConfig,
        backend: Arc<dyn BootBackend>,
    ) -> Result<DhcpServer, DhcpError> {
        let service = backend.dhcp_config().borrow().clone();
        let mut engine = Engine::new(service.engine.clone());
        let store = LeaseStore::open(&config.state_dir, config.fsync, &mut engine, unix_now())
            .map_err(|source| DhcpError::LeaseStore { source })?;
        info!(
            lease_log = %store.path().display(),
            leases = engine.leases().count(),
            "DHCP lease log loaded"
        );
        Ok(DhcpServer {
            shared: Arc::new(Shared {
                state: Mutex::new(State { engine, store }),
                stats: Arc::new(DhcpStats::default()),
                backend,
                config,
            }),
        })
    }

    pub fn stats(&self) -> Arc<DhcpStats> {
        Arc::clone(&self.shared.stats)
    }

    /// A copy of the lease table.
    pub fn leases(&self) -> Vec<Lease> {
        self.shared.lock().engine.leases().cloned().collect()
    }

    /// A handle that reads the lease table while [`DhcpServer::run`] owns the server.
    pub fn lease_view(&self) -> LeaseView {
        LeaseView {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Serves until `shutdown` completes; follows the backend's configuration changes.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), DhcpError> {
        let shared = self.shared;
        let mut changes = shared.backend.dhcp_config();
        let mut listeners: HashMap<String, (DhcpInterface, JoinHandle<()>)> = HashMap::new();
        let mut service = changes.borrow_and_update().clone();
        shared.lock().engine.set_config(service.engine.clone());
        reconcile(&shared, &service, &mut listeners);
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut source_open = true;
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                changed = changes.changed(), if source_open => {
                    if changed.is_err() {
                        // The backend is gone: keep serving the last configuration.
                        warn!("DHCP configuration source closed");
                        source_open = false;
                        continue;
                    }
                    service = changes.borrow_and_update().clone();
                    shared.lock().engine.set_config(service.engine.clone());
                    info!(
                        interfaces = service.interfaces.len(),
                        subnets = service.engine.subnets.len(),
                        "DHCP configuration changed"
                    );
                    reconcile(&shared, &service, &mut listeners);
                }
                _ = tick.tick() => {
                    housekeeping(&shared);
                    reconcile(&shared, &service, &mut listeners);
                }
            }
        }
        for (_, (_, handle)) in listeners.drain() {
            handle.abort();
        }
        let mut state = shared.lock();
        state
            .store
            .commit()
            .map_err(|source| DhcpError::LeaseStore { source })?;
        Ok(())
    }
}

/// Reads the lease table of a running server.
#[derive(Clone)]
pub struct LeaseView {
    shared: Arc<Shared>,
}

impl LeaseView {
    pub fn leases(&self) -> Vec<Lease> {
        self.shared.lock().engine.leases().cloned().collect()
    }
}

/// Expires leases and compacts the log when it has grown.
fn housekeeping(shared: &Shared) {
    let now = unix_now();
    let events = {
        let mut state = shared.lock();
        let events = state.engine.expire(now);
        state.store.append(&events);
        let live = state.engine.leases().count();
        let State { engine, store } = &mut *state;
        let result = if store.wants_compaction(live) {
            store.compact(engine, now)
        } else {
            store.commit()
        };
        if let Err(error) = result {
            error!(error = %error_chain(&error), "lease log housekeeping failed");
        }
        events
    };
    for event in &events {
        shared.backend.lease_changed(event);
    }
}

/// Starts listeners for new interfaces, stops those no longer listed, and restarts any
/// that died (for example because the interface did not exist yet).
fn reconcile(
    shared: &Arc<Shared>,
    service: &DhcpServiceConfig,
    listeners: &mut HashMap<String, (DhcpInterface, JoinHandle<()>)>,
) {
    listeners.retain(|name, (interface, handle)| {
        let wanted = service.interfaces.iter().any(|i| i == interface);
        if !wanted || handle.is_finished() {
            handle.abort();
            if !wanted {
                info!(interface = %name, "DHCP stopped on interface");
            }
            return false;
        }
        true
    });
    for interface in &service.interfaces {
        if listeners.contains_key(&interface.name) {
            continue;
        }
        match bind_interface(interface, shared.config.server_port) {
            Ok(socket) => {
                info!(interface = %interface.name, address = %interface.address, "DHCP serving on interface");
                let task_shared = Arc::clone(shared);
                let task_interface = interface.clone();
                let span = tracing::info_span!("dhcp", interface = %interface.name);
                let handle = tokio::spawn(
                    async move { listen(task_shared, task_interface, socket).await }
                        .instrument(span),
                );
                listeners.insert(interface.name.clone(), (interface.clone(), handle));
            }
            Err(error) => {
                error!(interface = %interface.name, error = %error_chain(&error), "cannot serve DHCP on interface; retrying");
            }
        }
    }
}

fn bind_interface(interface: &DhcpInterface, port: u16) -> Result<UdpSocket, DhcpError> {
    let bind_error = |source| DhcpError::Bind {
        interface: interface.name.clone(),
        source,
    };
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .map_err(bind_error)?;
    socket.set_reuse_address(true).map_err(bind_error)?;
    socket.set_broadcast(true).map_err(bind_error)?;
    // Broadcast requests only reach a socket bound to the wildcard address; the device
    // binding keeps each socket to its one interface.
    socket
        .bind_device(Some(interface.name.as_bytes()))
        .map_err(bind_error)?;
    let address = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket
        .bind(&SocketAddr::V4(address).into())
        .map_err(bind_error)?;
    socket.set_nonblocking(true).map_err(bind_error)?;
    UdpSocket::from_std(socket.into()).map_err(bind_error)
}

/// Most packets handled per lock and per lease-log sync.
const BATCH: usize = 64;

struct Outgoing {
    bytes: Vec<u8>,
    to: SocketAddr,
}

async fn listen(shared: Arc<Shared>, interface: DhcpInterface, socket: UdpSocket) {
    let mut buffers: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 1500]).collect();
    let mut lengths = Vec::with_capacity(BATCH);
    let chooser = PolicyBootFiles {
        http_port: shared.config.http_port,
    };
    let ingress = Ingress {
        local_ip: interface.address,
    };
    loop {
        lengths.clear();
        match socket.recv_from(&mut buffers[0]).await {
            Ok((len, peer)) => lengths.push((len, peer)),
            Err(error) => {
                warn!(%error, "DHCP receive failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        }
        while lengths.len() < BATCH {
            match socket.try_recv_from(&mut buffers[lengths.len()]) {
                Ok((len, peer)) => lengths.push((len, peer)),
                Err(_) => break,
            }
        }
        let (outgoing, events) = handle_batch(&shared, &buffers, &lengths, ingress, &chooser);
        for event in &events {
            shared.backend.lease_changed(event);
        }
        for packet in outgoing {
            match socket.send_to(&packet.bytes, packet.to).await {
                Ok(_) => {
                    shared.stats.replies.fetch_add(1, Ordering::Relaxed);
                }
                Err(error) => {
                    shared.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(%error, to = %packet.to, "DHCP send failed");
                }
            }
        }
    }
}

fn handle_batch(
    shared: &Shared,
    buffers: &[Vec<u8>],
    lengths: &[(usize, SocketAddr)],
    ingress: Ingress,
    chooser: &PolicyBootFiles,
) -> (Vec<Outgoing>, Vec<LeaseEvent>) {
    let stats = &shared.stats;
    let now = unix_now();
    let mut outgoing = Vec::with_capacity(lengths.len());
    let mut all_events = Vec::new();
    let mut state = shared.lock();
    for (buffer, (len, peer)) in buffers.iter().zip(lengths) {
        stats.received.fetch_add(1, Ordering::Relaxed);
        let bytes = &buffer[..*len];
        let request = match Message::decode(bytes) {
            Ok(request) => request,
            Err(error) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, %error, len, "dropping malformed DHCP packet");
                continue;
            }
        };
        let outcome = state.engine.handle(&request, ingress, now, chooser);
        let chaddr = request.client_mac();
        if let Some(reason) = outcome.ignored
            && outcome.reply.is_none()
        {
            stats.ignored.fetch_add(1, Ordering::Relaxed);
            debug!(xid = request.xid, chaddr = ?chaddr, %peer, ?reason, "no DHCP reply");
        }
        state.store.append(&outcome.events);
        stats
            .lease_events
            .fetch_add(outcome.events.len() as u64, Ordering::Relaxed);
        all_events.extend(outcome.events);
        if let Some(reply) = outcome.reply {
            let to = match reply.to {
                ReplyTo::Relay(giaddr) => {
                    SocketAddr::new(IpAddr::V4(giaddr), shared.config.server_port)
                }
                ReplyTo::Unicast(ciaddr) => {
                    SocketAddr::new(IpAddr::V4(ciaddr), shared.config.client_port)
                }
                ReplyTo::Broadcast => {
                    SocketAddr::new(IpAddr::V4(Ipv4Addr::BROADCAST), shared.config.client_port)
                }
            };
            match reply.message.encode() {
                Ok(bytes) => {
                    debug!(
                        xid = request.xid,
                        chaddr = ?chaddr,
                        kind = ?reply.message.message_type(),
                        yiaddr = %reply.message.yiaddr,
                        %to,
                        "DHCP reply"
                    );
                    outgoing.push(Outgoing { bytes, to });
                }
                Err(error) => warn!(xid = request.xid, %error, "cannot encode DHCP reply"),
            }
        }
    }
    // Leases are on disk before any reply that promises them leaves.
    if let Err(error) = state.store.commit() {
        error!(error = %error_chain(&error), "lease log write failed; dropping replies");
        outgoing.clear();
    }
    (outgoing, all_events)
}

/// Boot files by client architecture, per the boot policy.
struct PolicyBootFiles {
    http_port: u16,
}

impl BootFileChooser for PolicyBootFiles {
    fn boot_file(&self, client: &ClientBootInfo, server_ip: Ipv4Addr) -> Option<BootFile> {
        let method = BootMethod::detect(client.arch, client.is_ipxe);
        let boot = method.dhcp_boot(IpAddr::V4(server_ip), self.http_port);
        Some(BootFile {
            next_server: server_ip,
            filename: boot.filename,
            vendor_class: boot.vendor_class,
            path_prefix: boot.path_prefix,
        })
    }
}

pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
