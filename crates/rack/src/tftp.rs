//! The TFTP server: read requests on the listening sockets; each transfer resolves its file
//! in a task, then runs on a thread of its own with a blocking socket (one system call per
//! packet received, none spent on readiness), driving a `tftp-wire` [`ReadTransfer`].
//! A window of blocks goes out in one send with UDP segmentation offload where the kernel
//! allows it, and files are read ahead in large chunks.

use std::future::Future;
use std::io;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maas_tftp_wire::{
    ErrorCode, Limits, Packet, ReadTransfer, Request, Status, Transmit, data_header, encode_error,
    encode_oack,
};
use nix::sys::socket::{ControlMessage, MsgFlags, SockaddrIn, sendmsg};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tracing::{Instrument, debug, info, warn};

use crate::backend::Protocol;
use crate::boot_files::{BootFiles, FileRequest, ResolveError, Resolved};
use crate::dhcp::error_chain;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TftpConfig {
    /// Addresses to listen on (`0.0.0.0:69` in production). Each transfer answers from the
    /// address its request arrived on, so list specific addresses on multi-homed racks.
    pub listen: Vec<SocketAddr>,
    pub limits: Limits,
    /// Transfers running at once; requests beyond it get a "server busy" error.
    pub max_transfers: usize,
}

impl Default for TftpConfig {
    fn default() -> TftpConfig {
        TftpConfig {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 69))],
            limits: Limits::default(),
            max_transfers: 1000,
        }
    }
}

#[derive(Debug, Error)]
pub enum TftpError {
    #[error("binding TFTP socket on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("TFTP server needs at least one listening address")]
    NoListenAddress,
}

/// Counters, readable while the server runs.
#[derive(Debug, Default)]
pub struct TftpStats {
    pub requests: AtomicU64,
    /// Packets that did not decode, on the listening or a transfer socket; dropped.
    pub malformed: AtomicU64,
    /// Well-formed packets that are not read requests, on the listening socket.
    pub unexpected: AtomicU64,
    pub not_found: AtomicU64,
    pub refused: AtomicU64,
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_sent: AtomicU64,
}

impl TftpStats {
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }

    pub fn completed(&self) -> u64 {
        self.completed.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

pub struct TftpServer {
    sockets: Vec<Arc<UdpSocket>>,
    files: Arc<BootFiles>,
    config: TftpConfig,
    stats: Arc<TftpStats>,
}

impl TftpServer {
    pub async fn bind(config: TftpConfig, files: Arc<BootFiles>) -> Result<TftpServer, TftpError> {
        if config.listen.is_empty() {
            return Err(TftpError::NoListenAddress);
        }
        let mut sockets = Vec::new();
        for address in &config.listen {
            let socket = UdpSocket::bind(address)
                .await
                .map_err(|source| TftpError::Bind {
                    address: *address,
                    source,
                })?;
            sockets.push(Arc::new(socket));
        }
        Ok(TftpServer {
            sockets,
            files,
            config,
            stats: Arc::new(TftpStats::default()),
        })
    }

    /// The bound addresses (with the real port when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.sockets
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    pub fn stats(&self) -> Arc<TftpStats> {
        Arc::clone(&self.stats)
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), TftpError> {
        let slots = Arc::new(Semaphore::new(self.config.max_transfers.max(1)));
        let stopping = Arc::new(AtomicBool::new(false));
        let origin = Instant::now();
        let mut listeners = tokio::task::JoinSet::new();
        for socket in &self.sockets {
            if let Ok(address) = socket.local_addr() {
                info!(%address, "TFTP serving");
            }
            listeners.spawn(listen(
                Arc::clone(socket),
                Arc::clone(&self.files),
                self.config.limits,
                Arc::clone(&self.stats),
                Arc::clone(&slots),
                origin,
                Arc::clone(&stopping),
            ));
        }
        shutdown.await;
        listeners.abort_all();
        // Transfer threads see this within their receive timeout and end.
        stopping.store(true, Ordering::Relaxed);
        Ok(())
    }
}

async fn listen(
    socket: Arc<UdpSocket>,
    files: Arc<BootFiles>,
    limits: Limits,
    stats: Arc<TftpStats>,
    slots: Arc<Semaphore>,
    origin: Instant,
    stopping: Arc<AtomicBool>,
) {
    let mut buffer = vec![0u8; 65536];
    let mut transfers = tokio::task::JoinSet::new();
    let local = socket.local_addr().ok();
    loop {
        let (len, peer) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(error) => {
                    warn!(%error, "TFTP receive failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // Reap finished transfers so the set does not grow.
            Some(_) = transfers.join_next(), if !transfers.is_empty() => continue,
        };
        let request = match Packet::decode(&buffer[..len]) {
            Ok(Packet::ReadRequest(request)) => request,
            Ok(Packet::WriteRequest(request)) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, file = %request.filename, "refusing TFTP write");
                let mut out = Vec::new();
                encode_error(
                    ErrorCode::AccessViolation,
                    "this server does not accept writes",
                    &mut out,
                );
                let _ = socket.send_to(&out, peer).await;
                continue;
            }
            Ok(other) => {
                stats.unexpected.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, packet = ?other, "unexpected TFTP packet on the listening port");
                continue;
            }
            Err(error) => {
                stats.malformed.fetch_add(1, Ordering::Relaxed);
                debug!(%peer, %error, len, "dropping malformed TFTP packet");
                continue;
            }
        };
        stats.requests.fetch_add(1, Ordering::Relaxed);
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            let mut out = Vec::new();
            encode_error(ErrorCode::NotDefined, "server busy, try again", &mut out);
            let _ = socket.send_to(&out, peer).await;
            continue;
        };
        // Answer from the address the client sent to, so its firewall and TID checks pass.
        let local_ip = match local {
            Some(address) if !address.ip().is_unspecified() => address.ip(),
            _ => unspecified_like(peer.ip()),
        };
        let span = tracing::debug_span!("tftp", %peer, file = %request.filename);
        let task_files = Arc::clone(&files);
        let task_stats = Arc::clone(&stats);
        let task_stopping = Arc::clone(&stopping);
        transfers.spawn(
            async move {
                let transfer = Transfer {
                    request,
                    peer,
                    limits,
                    stats: task_stats,
                    origin,
                    stopping: task_stopping,
                    _permit: permit,
                };
                serve(task_files, transfer, local_ip).await;
            }
            .instrument(span),
        );
    }
}

fn unspecified_like(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// One accepted read request and what its transfer needs.
struct Transfer {
    request: Request,
    peer: SocketAddr,
    limits: Limits,
    stats: Arc<TftpStats>,
    origin: Instant,
    stopping: Arc<AtomicBool>,
    /// Holds a slot of `max_transfers` until the transfer ends.
    _permit: OwnedSemaphorePermit,
}

enum Source {
    /// A file, read ahead in large chunks so that most blocks cost no system call.
    File {
        file: Arc<std::fs::File>,
        cache: Vec<u8>,
        cache_offset: u64,
        cache_len: usize,
    },
    Memory(Vec<u8>),
}

/// Bytes read from a file at once.
const READ_AHEAD: usize = 256 * 1024;

impl Source {
    fn file(file: Arc<std::fs::File>) -> Source {
        Source::File {
            file,
            cache: Vec::new(),
            cache_offset: 0,
            cache_len: 0,
        }
    }

    /// The `len` bytes at `offset`.
    fn read(&mut self, offset: u64, len: usize) -> io::Result<&[u8]> {
        match self {
            Source::File {
                file,
                cache,
                cache_offset,
                cache_len,
            } => {
                let end = offset.saturating_add(len as u64);
                if offset < *cache_offset || end > *cache_offset + *cache_len as u64 {
                    if cache.len() < READ_AHEAD.max(len) {
                        cache.resize(READ_AHEAD.max(len), 0);
                    }
                    let mut filled = 0;
                    while filled < cache.len() {
                        match file.read_at(&mut cache[filled..], offset + filled as u64) {
                            Ok(0) => break,
                            Ok(read) => filled += read,
                            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                            Err(error) => return Err(error),
                        }
                    }
                    *cache_offset = offset;
                    *cache_len = filled;
                    if filled < len {
                        return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
                    }
                }
                let start = usize::try_from(offset - *cache_offset).unwrap_or(usize::MAX);
                cache
                    .get(start..start.saturating_add(len))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
            }
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                bytes
                    .get(start..start.saturating_add(len))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))
            }
        }
    }
}

/// Resolves the file (asking the backend when it is a generated config), then hands the
/// transfer to a thread of its own.
async fn serve(files: Arc<BootFiles>, transfer: Transfer, local_ip: IpAddr) {
    let stats = Arc::clone(&transfer.stats);
    let socket = match open_socket(local_ip, transfer.peer) {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%error, "cannot open TFTP transfer socket");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    let mut out = Vec::new();
    // The reply's source address is what the machine sent to, which is what it will fetch
    // further files from.
    let reply_ip = socket.local_addr().map(|a| a.ip()).unwrap_or(local_ip);
    let file_request = FileRequest {
        local_ip: reply_ip,
        remote_ip: transfer.peer.ip(),
        protocol: Protocol::Tftp,
    };
    let (source, size) = match files
        .resolve(&transfer.request.filename, file_request)
        .await
    {
        Ok(Resolved::Generated { body, .. }) => {
            let size = body.len() as u64;
            (Source::Memory(body), size)
        }
        Ok(Resolved::File { file, len, .. }) => (Source::file(file.0), len),
        Err(error) => {
            let (code, message) = match &error {
                ResolveError::NotFound { .. } => (ErrorCode::FileNotFound, "file not found"),
                ResolveError::Escape { .. } => (ErrorCode::AccessViolation, "access violation"),
                ResolveError::Backend { .. } => {
                    (ErrorCode::NotDefined, "boot configuration unavailable")
                }
            };
            match &error {
                ResolveError::Backend { .. } => {
                    warn!(error = %error_chain(&error), "TFTP request failed")
                }
                _ => debug!(error = %error, "TFTP request refused"),
            }
            stats.not_found.fetch_add(1, Ordering::Relaxed);
            encode_error(code, message, &mut out);
            let _ = socket.send(&out);
            return;
        }
    };
    let span = tracing::Span::current();
    let spawned = std::thread::Builder::new()
        .name("tftp-transfer".into())
        .spawn(move || {
            let _span = span.entered();
            run_transfer(&transfer, &socket, source, size);
        });
    if let Err(error) = spawned {
        warn!(%error, "cannot start TFTP transfer thread");
        stats.failed.fetch_add(1, Ordering::Relaxed);
    }
}

/// A blocking UDP socket on an ephemeral port, connected to the client (its transfer id).
fn open_socket(local_ip: IpAddr, peer: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(local_ip, 0))?;
    socket.connect(peer)?;
    Ok(socket)
}

/// Whether UDP segmentation offload works here; cleared at the first refusal.
static GSO_WORKS: AtomicBool = AtomicBool::new(true);

/// Packets of one window laid out back to back, sent with one system call where the kernel
/// segments them (UDP GSO), else one by one.
struct WindowSender {
    buffer: Vec<u8>,
}

impl WindowSender {
    /// Sends blocks `first..=last`; returns the payload bytes sent.
    fn send(
        &mut self,
        socket: &std::net::UdpSocket,
        transfer: &ReadTransfer,
        source: &mut Source,
        first: u64,
        last: u64,
    ) -> io::Result<u64> {
        let segment = usize::from(transfer.blksize()) + 4;
        // Kernel limits: 64 segments, and one IP datagram's worth of bytes.
        let per_send = (65_000 / segment).clamp(1, 64) as u64;
        let mut sent = 0;
        let mut index = first;
        while index <= last {
            let end = (index + per_send - 1).min(last);
            self.buffer.clear();
            for block in index..=end {
                let range = transfer.block(block);
                let data = source.read(range.offset, range.len)?;
                self.buffer
                    .extend_from_slice(&data_header(range.wire_block));
                self.buffer.extend_from_slice(data);
                sent += range.len as u64;
            }
            let count = end - index + 1;
            if count > 1 && GSO_WORKS.load(Ordering::Relaxed) {
                match send_segmented(socket, &self.buffer, segment) {
                    Ok(()) => {
                        index = end + 1;
                        continue;
                    }
                    Err(error) => {
                        debug!(%error, "UDP segmentation offload refused; sending packets one by one");
                        GSO_WORKS.store(false, Ordering::Relaxed);
                    }
                }
            }
            for packet in self.buffer.chunks(segment) {
                socket.send(packet)?;
            }
            index = end + 1;
        }
        Ok(sent)
    }
}

fn send_segmented(socket: &std::net::UdpSocket, buffer: &[u8], segment: usize) -> io::Result<()> {
    let size = u16::try_from(segment).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let control = [ControlMessage::UdpGsoSegments(&size)];
    let sent = sendmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &[IoSlice::new(buffer)],
        &control,
        MsgFlags::empty(),
        None,
    )
    .map_err(io::Error::from)?;
    if sent == buffer.len() {
        Ok(())
    } else {
        Err(io::Error::from(io::ErrorKind::WriteZero))
    }
}

/// Drives one transfer to its end on the calling thread.
fn run_transfer(transfer: &Transfer, socket: &std::net::UdpSocket, mut source: Source, size: u64) {
    let stats = &transfer.stats;
    let now = || transfer.origin.elapsed();
    let (mut state, mut step) =
        ReadTransfer::start(&transfer.request, size, &transfer.limits, now());
    debug!(
        size,
        blksize = state.blksize(),
        windowsize = state.windowsize(),
        "TFTP transfer started"
    );
    let mut out = Vec::with_capacity(512);
    let mut sender = WindowSender {
        buffer: Vec::with_capacity(65_536),
    };
    let mut incoming = vec![0u8; 65536];
    let mut read_timeout = Duration::ZERO;
    loop {
        match &step.transmit {
            Transmit::Nothing => {}
            Transmit::OptionAck(options) => {
                encode_oack(options, &mut out);
                let _ = socket.send(&out);
            }
            Transmit::Blocks { first, last } => {
                match sender.send(socket, &state, &mut source, *first, *last) {
                    Ok(bytes) => {
                        stats.bytes_sent.fetch_add(bytes, Ordering::Relaxed);
                    }
                    Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
                        warn!(%error, "reading boot file failed");
                        encode_error(ErrorCode::NotDefined, "read error", &mut out);
                        let _ = socket.send(&out);
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // The retransmission timer recovers from transient send errors.
                    Err(error) => debug!(%error, "TFTP send failed"),
                }
            }
            Transmit::Error { code, message } => {
                encode_error(*code, message, &mut out);
                let _ = socket.send(&out);
            }
        }
        match step.status {
            Status::InProgress => {}
            Status::Complete => {
                stats.completed.fetch_add(1, Ordering::Relaxed);
                debug!(size, "TFTP transfer complete");
                return;
            }
            Status::Failed(failure) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                debug!(
                    ?failure,
                    acked = state.bytes_acked(),
                    "TFTP transfer failed"
                );
                return;
            }
        }
        let Some(wake_at) = step.wake_at else {
            return;
        };
        if transfer.stopping.load(Ordering::Relaxed) {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let remaining = wake_at.saturating_sub(now());
        if remaining.is_zero() {
            step = state.on_timeout(now());
            continue;
        }
        // Changing the timeout costs a system call: only when it is off by a millisecond.
        if remaining.abs_diff(read_timeout) > Duration::from_millis(1) {
            read_timeout = remaining;
            let _ = socket.set_read_timeout(Some(remaining));
        }
        step = match socket.recv(&mut incoming) {
            Ok(len) => match Packet::decode(&incoming[..len]) {
                Ok(packet) => state.on_packet(&packet, now()),
                Err(error) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    debug!(%error, "dropping malformed TFTP packet");
                    state.on_timeout(now())
                }
            },
            Err(error)
                if matches!(
                    error.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                state.on_timeout(now())
            }
            // ICMP port unreachable from a client that went away shows up here.
            Err(error) => {
                debug!(%error, "TFTP receive failed");
                std::thread::sleep(remaining.min(Duration::from_millis(100)));
                state.on_timeout(now())
            }
        };
    }
}
