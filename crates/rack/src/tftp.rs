//! The TFTP server: read requests on the listening sockets, one task and one socket per
//! transfer, each driving a `tftp-wire` [`ReadTransfer`].

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use maas_tftp_wire::{
    ErrorCode, Limits, Packet, ReadTransfer, Request, Status, Transmit, encode_data, encode_error,
    encode_oack,
};
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
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
            ));
        }
        shutdown.await;
        listeners.abort_all();
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
        transfers.spawn(
            async move {
                let _permit = permit;
                serve(
                    task_files, request, peer, local_ip, limits, task_stats, origin,
                )
                .await;
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

enum Source {
    File(std::fs::File),
    Memory(Vec<u8>),
}

impl Source {
    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        match self {
            Source::File(file) => file.read_exact_at(out, offset),
            Source::Memory(bytes) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX);
                let slice = bytes
                    .get(start..start.saturating_add(out.len()))
                    .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
                out.copy_from_slice(slice);
                Ok(())
            }
        }
    }
}

async fn serve(
    files: Arc<BootFiles>,
    request: Request,
    peer: SocketAddr,
    local_ip: IpAddr,
    limits: Limits,
    stats: Arc<TftpStats>,
    origin: Instant,
) {
    let socket = match UdpSocket::bind(SocketAddr::new(local_ip, 0)).await {
        Ok(socket) => socket,
        Err(error) => {
            warn!(%error, "cannot open TFTP transfer socket");
            stats.failed.fetch_add(1, Ordering::Relaxed);
            return;
        }
    };
    if let Err(error) = socket.connect(peer).await {
        warn!(%error, "cannot connect TFTP transfer socket");
        stats.failed.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let mut out = Vec::with_capacity(usize::from(limits.max_blksize) + 4);
    // The reply's source address is what the machine sent to, which is what it will fetch
    // further files from.
    let reply_ip = socket.local_addr().map(|a| a.ip()).unwrap_or(local_ip);
    let file_request = FileRequest {
        local_ip: reply_ip,
        remote_ip: peer.ip(),
        protocol: Protocol::Tftp,
    };
    let (source, size) = match files.resolve(&request.filename, file_request).await {
        Ok(Resolved::Generated { body, .. }) => {
            let size = body.len() as u64;
            (Source::Memory(body), size)
        }
        Ok(Resolved::File { path, len }) => match std::fs::File::open(&path) {
            Ok(file) => (Source::File(file), len),
            Err(error) => {
                debug!(%error, path = %path.display(), "cannot open boot file");
                stats.not_found.fetch_add(1, Ordering::Relaxed);
                encode_error(ErrorCode::FileNotFound, "file not found", &mut out);
                let _ = socket.send(&out).await;
                return;
            }
        },
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
            let _ = socket.send(&out).await;
            return;
        }
    };
    let now = || origin.elapsed();
    let (mut transfer, mut step) = ReadTransfer::start(&request, size, &limits, now());
    debug!(
        size,
        blksize = transfer.blksize(),
        windowsize = transfer.windowsize(),
        "TFTP transfer started"
    );
    let mut data = vec![0u8; usize::from(transfer.blksize())];
    let mut incoming = vec![0u8; 65536];
    loop {
        match &step.transmit {
            Transmit::Nothing => {}
            Transmit::OptionAck(options) => {
                encode_oack(options, &mut out);
                let _ = socket.send(&out).await;
            }
            Transmit::Blocks { first, last } => {
                for index in *first..=*last {
                    let range = transfer.block(index);
                    let chunk = &mut data[..range.len];
                    if let Err(error) = source.read(range.offset, chunk) {
                        warn!(%error, "reading boot file failed");
                        encode_error(ErrorCode::NotDefined, "read error", &mut out);
                        let _ = socket.send(&out).await;
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    encode_data(range.wire_block, chunk, &mut out);
                    if let Err(error) = socket.send(&out).await {
                        // The retransmission timer recovers from transient send errors.
                        debug!(%error, "TFTP send failed");
                        break;
                    }
                    stats
                        .bytes_sent
                        .fetch_add(range.len as u64, Ordering::Relaxed);
                }
            }
            Transmit::Error { code, message } => {
                encode_error(*code, message, &mut out);
                let _ = socket.send(&out).await;
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
                    acked = transfer.bytes_acked(),
                    "TFTP transfer failed"
                );
                return;
            }
        }
        let Some(wake_at) = step.wake_at else {
            return;
        };
        let sleep_for = wake_at.saturating_sub(now());
        tokio::select! {
            received = socket.recv(&mut incoming) => {
                step = match received {
                    Ok(len) => match Packet::decode(&incoming[..len]) {
                        Ok(packet) => transfer.on_packet(&packet, now()),
                        Err(error) => {
                            stats.malformed.fetch_add(1, Ordering::Relaxed);
                            debug!(%error, "dropping malformed TFTP packet");
                            transfer.on_timeout(now())
                        }
                    },
                    // ICMP port unreachable from a client that went away shows up here.
                    Err(error) => {
                        debug!(%error, "TFTP receive failed");
                        tokio::time::sleep(sleep_for).await;
                        transfer.on_timeout(now())
                    }
                };
            }
            () = tokio::time::sleep(sleep_for) => {
                step = transfer.on_timeout(now());
            }
        }
    }
}
