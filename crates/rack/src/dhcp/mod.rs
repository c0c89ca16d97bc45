//! The DHCPv4 server: UDP sockets, one per configured interface, feeding the lease engine.
//!
//! Shape: socket loop -> `dhcp-wire` decode -> engine (addresses, options) with the boot
//! policy choosing the boot file -> encode -> send. Replies that promise a lease (ACKs) wait
//! for the lease log: a sync thread writes and syncs everything queued since its last sync
//! (group commit) and hands those replies back, while the socket loop goes on serving.
//! The server answers only on interfaces the backend lists, and only for subnets it lists:
//! an empty configuration answers nobody.

pub mod lease_store;

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use maas_boot_policy::BootMethod;
use maas_dhcp_wire::Message;
use maas_dhcp_wire::engine::{
    BootFile, BootFileChooser, ClientBootInfo, Engine, Ingress, Lease, LeaseEvent, ReplyTo,
};
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrIn, recvmmsg, sendmmsg};
use thiserror::Error;
use tracing::{debug, error, info, warn};

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
    /// Shortest time from one lease-log sync to the next. Under load, the ACKs that arrive
    /// meanwhile share the next sync (group commit), which bounds the syncs per second and so
    /// their CPU cost, at the price of up to this much extra ACK latency.
    pub sync_interval: Duration,
    /// After a batch of more than one packet (the sign of load), wait this long before the
    /// next receive, so that packets gather and one wake-up serves several (like a NIC's
    /// interrupt moderation; light load is not delayed); zero disables.
    pub receive_coalesce: Duration,
}

impl DhcpServerConfig {
    pub fn new(state_dir: PathBuf) -> DhcpServerConfig {
        DhcpServerConfig {
            state_dir,
            server_port: 67,
            client_port: 68,
            http_port: 5248,
            fsync: true,
            sync_interval: Duration::from_millis(2),
            receive_coalesce: Duration::from_micros(200),
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
    journal: Journal,
}

/// Lease-log work waiting for the sync thread, queued under the same lock as the engine so
/// the log's order is the engine's order.
#[derive(Default)]
struct Journal {
    /// Encoded lines not yet written.
    pending: Vec<u8>,
    /// Replies to send once `pending` is on disk.
    waiters: Vec<Waiter>,
    /// A snapshot to replace the log with, and where in `pending` the lines after it start.
    compaction: Option<(Vec<u8>, usize)>,
    /// Lines appended since the last compaction.
    appended: usize,
    stop: bool,
}

impl Journal {
    fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.waiters.is_empty() && self.compaction.is_none()
    }

    fn append(&mut self, events: &[LeaseEvent]) {
        for event in events {
            lease_store::encode_line_into(event, &mut self.pending);
        }
        self.appended += events.len();
    }
}

/// Replies of one batch that promise leases: sent by the sync thread once they are on disk.
struct Waiter {
    socket: Arc<std::net::UdpSocket>,
    replies: Vec<Outgoing>,
}

struct Shared {
    state: Mutex<State>,
    /// Signals the sync thread that the journal has work.
    work: Condvar,
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
    store: LeaseStore,
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
                state: Mutex::new(State {
                    engine,
                    journal: Journal::default(),
                }),
                work: Condvar::new(),
                stats: Arc::new(DhcpStats::default()),
                backend,
                config,
            }),
            store,
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
        let sync_shared = Arc::clone(&shared);
        let mut store = self.store;
        let syncer = std::thread::Builder::new()
            .name("dhcp-lease-log".into())
            .spawn(move || sync_loop(&sync_shared, &mut store))
            .map_err(|source| DhcpError::LeaseStore {
                source: LeaseStoreError::Write {
                    path: shared.config.state_dir.clone(),
                    source,
                },
            })?;
        let mut changes = shared.backend.dhcp_config();
        let mut listeners: HashMap<String, (DhcpInterface, Listener)> = HashMap::new();
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
        // Listeners first (each sees its flag within POLL), so nothing is queued after the
        // sync thread's last write and the sockets are closed when this returns.
        let stopping: Vec<Listener> = listeners
            .drain()
            .map(|(_, (_, listener))| listener)
            .collect();
        for listener in &stopping {
            listener.stop();
        }
        let stop_shared = Arc::clone(&shared);
        let joined = tokio::task::spawn_blocking(move || {
            for listener in stopping {
                let _ = listener.handle.join();
            }
            stop_shared.lock().journal.stop = true;
            stop_shared.work.notify_one();
            // The sync thread writes what is queued and ends.
            syncer.join()
        })
        .await;
        match joined {
            Ok(Ok(result)) => result.map_err(|source| DhcpError::LeaseStore { source }),
            _ => {
                error!("DHCP lease log thread panicked");
                Ok(())
            }
        }
    }
}

/// The sync thread: writes queued lines (one sync per wake-up, however many batches queued
/// meanwhile: a group commit), then sends the replies that waited for them.
fn sync_loop(shared: &Shared, store: &mut LeaseStore) -> Result<(), LeaseStoreError> {
    let mut lines = Vec::new();
    let interval = if shared.config.fsync {
        shared.config.sync_interval
    } else {
        Duration::ZERO
    };
    let mut last_sync: Option<Instant> = None;
    loop {
        {
            let mut state = shared.lock();
            while state.journal.is_idle() && !state.journal.stop {
                state = shared
                    .work
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
        // Let the work of the next moments join this sync.
        if let Some(wait) = last_sync.and_then(|at| interval.checked_sub(at.elapsed()))
            && !wait.is_zero()
        {
            std::thread::sleep(wait);
        }
        last_sync = Some(Instant::now());
        let (waiters, compaction, stop) = {
            let mut state = shared.lock();
            let journal = &mut state.journal;
            std::mem::swap(&mut lines, &mut journal.pending);
            (
                std::mem::take(&mut journal.waiters),
                journal.compaction.take(),
                journal.stop && journal.is_idle(),
            )
        };
        let result = match compaction {
            Some((mut snapshot, after)) => {
                snapshot.extend_from_slice(lines.get(after..).unwrap_or_default());
                store.replace(&snapshot)
            }
            None => store.write_lines(&lines),
        };
        lines.clear();
        match &result {
            Ok(()) => {
                for waiter in waiters {
                    send_all(&shared.stats, &waiter.socket, &waiter.replies);
                }
            }
            Err(error) => {
                error!(error = %error_chain(error), "lease log write failed; dropping replies");
            }
        }
        if stop {
            return result;
        }
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
        let State { engine, journal } = &mut *state;
        let events = engine.expire(now);
        journal.append(&events);
        if lease_store::wants_compaction(journal.appended, engine.leases().count()) {
            let mut snapshot = Vec::new();
            for event in engine.snapshot(now) {
                lease_store::encode_line_into(&event, &mut snapshot);
            }
            journal.compaction = Some((snapshot, journal.pending.len()));
            journal.appended = 0;
        }
        events
    };
    shared.work.notify_one();
    for event in &events {
        shared.backend.lease_changed(event);
    }
}

/// Starts listeners for new interfaces, stops those no longer listed, and restarts any
/// that died (for example because the interface did not exist yet).
fn reconcile(
    shared: &Arc<Shared>,
    service: &DhcpServiceConfig,
    listeners: &mut HashMap<String, (DhcpInterface, Listener)>,
) {
    listeners.retain(|name, (interface, listener)| {
        let wanted = service.interfaces.iter().any(|i| i == interface);
        if !wanted || listener.handle.is_finished() {
            listener.stop();
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
        let started = bind_interface(interface, shared.config.server_port).and_then(|socket| {
            let stop = Arc::new(AtomicBool::new(false));
            let thread_shared = Arc::clone(shared);
            let thread_interface = interface.clone();
            let thread_stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(format!("dhcp-{}", interface.name))
                .spawn(move || {
                    let _span =
                        tracing::info_span!("dhcp", interface = %thread_interface.name).entered();
                    listen(&thread_shared, &thread_interface, socket, &thread_stop);
                })
                .map(|handle| Listener { stop, handle })
                .map_err(|source| DhcpError::Bind {
                    interface: interface.name.clone(),
                    source,
                })
        });
        match started {
            Ok(listener) => {
                info!(interface = %interface.name, address = %interface.address, "DHCP serving on interface");
                listeners.insert(interface.name.clone(), (interface.clone(), listener));
            }
            Err(error) => {
                error!(interface = %interface.name, error = %error_chain(&error), "cannot serve DHCP on interface; retrying");
            }
        }
    }
}

/// A listener thread; it checks `stop` at least every [`POLL`].
struct Listener {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<()>,
}

impl Listener {
    fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How long a listener blocks in a receive before looking at its stop flag.
const POLL: Duration = Duration::from_millis(200);

fn bind_interface(interface: &DhcpInterface, port: u16) -> Result<std::net::UdpSocket, DhcpError> {
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
    // Room for bursts while the listener waits for the CPU (capped by net.core.rmem_max).
    let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
    // Broadcast requests only reach a socket bound to the wildcard address; the device
    // binding keeps each socket to its one interface.
    socket
        .bind_device(Some(interface.name.as_bytes()))
        .map_err(bind_error)?;
    let address = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port);
    socket
        .bind(&SocketAddr::V4(address).into())
        .map_err(bind_error)?;
    socket.set_read_timeout(Some(POLL)).map_err(bind_error)?;
    Ok(socket.into())
}

const RECEIVE_BUFFER: usize = 4 << 20;

/// Most packets handled per lock and per lease-log sync.
const BATCH: usize = 64;

struct Outgoing {
    bytes: Vec<u8>,
    to: SocketAddr,
}

/// The listener thread: blocking receives of up to [`BATCH`] packets per system call, the
/// engine under one lock per batch, then the replies that promise nothing.
fn listen(
    shared: &Shared,
    interface: &DhcpInterface,
    socket: std::net::UdpSocket,
    stop: &AtomicBool,
) {
    let socket = Arc::new(socket);
    let mut receiver = BatchReceiver::new();
    let chooser = PolicyBootFiles {
        http_port: shared.config.http_port,
    };
    let ingress = Ingress {
        local_ip: interface.address,
    };
    while !stop.load(Ordering::Relaxed) {
        match receiver.receive(&socket) {
            Ok(()) => {}
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(error) => {
                warn!(%error, "DHCP receive failed");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        }
        let batch = handle_batch(shared, &receiver, ingress, &chooser, &socket);
        for event in &batch.events {
            shared.backend.lease_changed(event);
        }
        send_all(&shared.stats, &socket, &batch.immediate);
        // Under load, let the next packets gather so one wake-up serves several.
        let coalesce = shared.config.receive_coalesce;
        if !coalesce.is_zero() && receiver.received.len() > 1 {
            std::thread::sleep(coalesce);
        }
    }
}

/// Buffers for `recvmmsg`: one blocking wait for the first packet, then whatever else is queued.
struct BatchReceiver {
    buffers: Vec<Vec<u8>>,
    headers: MultiHeaders<SockaddrIn>,
    received: Vec<(usize, SocketAddr)>,
}

impl BatchReceiver {
    fn new() -> BatchReceiver {
        BatchReceiver {
            buffers: (0..BATCH).map(|_| vec![0u8; 1500]).collect(),
            headers: MultiHeaders::preallocate(BATCH, None),
            received: Vec::with_capacity(BATCH),
        }
    }

    fn receive(&mut self, socket: &std::net::UdpSocket) -> io::Result<()> {
        self.received.clear();
        let mut slices: Vec<[IoSliceMut<'_>; 1]> = self
            .buffers
            .iter_mut()
            .map(|buffer| [IoSliceMut::new(buffer)])
            .collect();
        let results = recvmmsg(
            socket.as_raw_fd(),
            &mut self.headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )
        .map_err(io::Error::from)?;
        for message in results {
            if let Some(address) = message.address {
                let peer = SocketAddrV4::new(address.ip(), address.port());
                self.received.push((message.bytes, SocketAddr::V4(peer)));
            }
        }
        Ok(())
    }

    fn packets(&self) -> impl Iterator<Item = (&[u8], SocketAddr)> {
        self.buffers
            .iter()
            .zip(&self.received)
            .map(|(buffer, (len, peer))| (&buffer[..(*len).min(buffer.len())], *peer))
    }
}

/// Sends replies with as few system calls as `sendmmsg` allows.
fn send_all(stats: &DhcpStats, socket: &std::net::UdpSocket, replies: &[Outgoing]) {
    let mut index = 0;
    while replies.len() - index > 1 {
        let chunk = &replies[index..replies.len().min(index + BATCH)];
        let addresses: Option<Vec<Option<SockaddrIn>>> = chunk
            .iter()
            .map(|packet| match packet.to {
                SocketAddr::V4(to) => Some(Some(SockaddrIn::from(to))),
                SocketAddr::V6(_) => None,
            })
            .collect();
        let Some(addresses) = addresses else {
            break;
        };
        let slices: Vec<[IoSlice<'_>; 1]> = chunk
            .iter()
            .map(|packet| [IoSlice::new(&packet.bytes)])
            .collect();
        let mut headers = MultiHeaders::<SockaddrIn>::preallocate(chunk.len(), None);
        // On an error, the loop below sends one by one and reports each failure.
        let sent = sendmmsg(
            socket.as_raw_fd(),
            &mut headers,
            &slices,
            &addresses,
            [],
            MsgFlags::empty(),
        )
        .map_or(0, Iterator::count);
        if sent == 0 {
            break;
        }
        stats.replies.fetch_add(sent as u64, Ordering::Relaxed);
        index += sent;
    }
    for packet in &replies[index..] {
        match socket.send_to(&packet.bytes, packet.to) {
            Ok(_) => {
                stats.replies.fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                warn!(%error, to = %packet.to, "DHCP send failed");
            }
        }
    }
}

struct Batch {
    /// Replies that promise nothing the lease log must hold first (OFFER, NAK, INFORM's ACK).
    immediate: Vec<Outgoing>,
    events: Vec<LeaseEvent>,
}

fn handle_batch(
    shared: &Shared,
    receiver: &BatchReceiver,
    ingress: Ingress,
    chooser: &PolicyBootFiles,
    socket: &Arc<std::net::UdpSocket>,
) -> Batch {
    let stats = &shared.stats;
    let now = unix_now();
    let mut immediate = Vec::with_capacity(receiver.received.len());
    let mut durable = Vec::new();
    let mut all_events = Vec::new();
    let mut state = shared.lock();
    for (bytes, peer) in receiver.packets() {
        stats.received.fetch_add(1, Ordering::Relaxed);
        let len = bytes.len();
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
        let promises = !outcome.events.is_empty();
        state.journal.append(&outcome.events);
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
                    // Leases are on disk before any reply that promises them leaves.
                    if promises {
                        durable.push(Outgoing { bytes, to });
                    } else {
                        immediate.push(Outgoing { bytes, to });
                    }
                }
                Err(error) => warn!(xid = request.xid, %error, "cannot encode DHCP reply"),
            }
        }
    }
    let has_work = !state.journal.pending.is_empty() || !durable.is_empty();
    if !durable.is_empty() {
        state.journal.waiters.push(Waiter {
            socket: Arc::clone(socket),
            replies: durable,
        });
    }
    drop(state);
    if has_work {
        shared.work.notify_one();
    }
    Batch {
        immediate,
        events: all_events,
    }
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
