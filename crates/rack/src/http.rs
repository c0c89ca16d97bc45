//! The HTTP boot server (port 5248): iPXE/GRUB configs per machine, boot loaders, and
//! kernels, initrds and root images streamed with `Range` support.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use thiserror::Error;
use tokio::net::TcpListener;
use tracing::{Instrument, debug, info, warn};

use crate::backend::Protocol;
use crate::boot_files::{BootFiles, FileRequest, ResolveError, Resolved};
use crate::dhcp::error_chain;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpConfig {
    /// `0.0.0.0:5248` in production.
    pub listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> HttpConfig {
        HttpConfig {
            listen: SocketAddr::from(([0, 0, 0, 0], 5248)),
        }
    }
}

#[derive(Debug, Error)]
pub enum HttpError {
    #[error("binding HTTP boot server on {address}")]
    Bind {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
}

#[derive(Debug, Default)]
pub struct HttpStats {
    pub requests: AtomicU64,
    pub not_found: AtomicU64,
    pub bytes_sent: AtomicU64,
}

pub struct HttpServer {
    listener: TcpListener,
    files: Arc<BootFiles>,
    stats: Arc<HttpStats>,
}

impl HttpServer {
    pub async fn bind(config: HttpConfig, files: Arc<BootFiles>) -> Result<HttpServer, HttpError> {
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| HttpError::Bind {
                    address: config.listen,
                    source,
                })?;
        Ok(HttpServer {
            listener,
            files,
            stats: Arc::new(HttpStats::default()),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.listener.local_addr().ok()
    }

    pub fn stats(&self) -> Arc<HttpStats> {
        Arc::clone(&self.stats)
    }

    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), HttpError> {
        if let Some(address) = self.local_addr() {
            info!(%address, "HTTP boot serving");
        }
        let mut connections = tokio::task::JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            let (stream, peer) = tokio::select! {
                () = &mut shutdown => break,
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = self.listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        warn!(%error, "HTTP accept failed");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let local = stream.local_addr().ok();
            let files = Arc::clone(&self.files);
            let stats = Arc::clone(&self.stats);
            connections.spawn(
                async move {
                    let service = service_fn(move |request| {
                        let files = Arc::clone(&files);
                        let stats = Arc::clone(&stats);
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                handle(request, files, stats, peer, local).await,
                            )
                        }
                    });
                    if let Err(error) = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        debug!(%error, "HTTP connection ended with an error");
                    }
                }
                .instrument(tracing::debug_span!("http", %peer)),
            );
        }
        connections.abort_all();
        Ok(())
    }
}

async fn handle(
    request: Request<Incoming>,
    files: Arc<BootFiles>,
    stats: Arc<HttpStats>,
    peer: SocketAddr,
    local: Option<SocketAddr>,
) -> Response<BootBody> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let head_only = request.method() == Method::HEAD;
    if request.method() != Method::GET && !head_only {
        return plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served\n",
        );
    }
    let Some(path) = percent_decode(request.uri().path()) else {
        return plain(StatusCode::BAD_REQUEST, "bad path encoding\n");
    };
    let file_request = FileRequest {
        local_ip: local.map(|a| a.ip()).unwrap_or_else(|| peer.ip()),
        remote_ip: peer.ip(),
        protocol: Protocol::Http,
    };
    let range = request
        .headers()
        .get(header::RANGE)
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let response = match files.resolve(&path, file_request).await {
        Ok(Resolved::Generated { body, .. }) => {
            let mut response = Response::new(if head_only {
                BootBody::Empty
            } else {
                BootBody::Full(Some(Bytes::from(body.clone())))
            });
            set(
                &mut response,
                header::CONTENT_TYPE,
                "text/plain; charset=utf-8",
            );
            set(
                &mut response,
                header::CONTENT_LENGTH,
                &body.len().to_string(),
            );
            response
        }
        Ok(Resolved::File { path, len }) => {
            file_response(path, len, range.as_deref(), head_only).await
        }
        Err(error) => {
            let status = match &error {
                ResolveError::NotFound { .. } => StatusCode::NOT_FOUND,
                ResolveError::Escape { .. } => StatusCode::FORBIDDEN,
                ResolveError::Backend { .. } => StatusCode::SERVICE_UNAVAILABLE,
            };
            match &error {
                ResolveError::Backend { .. } => {
                    warn!(error = %error_chain(&error), "HTTP boot request failed")
                }
                _ => debug!(%error, "HTTP boot request refused"),
            }
            stats.not_found.fetch_add(1, Ordering::Relaxed);
            plain(status, "not found\n")
        }
    };
    debug!(method = %request.method(), path = %path, status = response.status().as_u16(), "HTTP boot request");
    if let Some(length) = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && !head_only
    {
        stats.bytes_sent.fetch_add(length, Ordering::Relaxed);
    }
    response
}

async fn file_response(
    path: PathBuf,
    len: u64,
    range: Option<&str>,
    head_only: bool,
) -> Response<BootBody> {
    let (status, start, end) = match range.map(|r| parse_range(r, len)) {
        None | Some(RangeRequest::Ignored) => (StatusCode::OK, 0, len),
        Some(RangeRequest::Satisfiable { start, end }) => (StatusCode::PARTIAL_CONTENT, start, end),
        Some(RangeRequest::Unsatisfiable) => {
            let mut response = plain(StatusCode::RANGE_NOT_SATISFIABLE, "");
            set(
                &mut response,
                header::CONTENT_RANGE,
                &format!("bytes */{len}"),
            );
            return response;
        }
    };
    let body = if head_only {
        BootBody::Empty
    } else {
        // Boot files are read with plain reads on the serving thread, as nginx does without
        // thread pools: they come from the page cache, and a hop to a blocking pool per
        // chunk costs more than the read.
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(error) => {
                debug!(%error, path = %path.display(), "cannot open boot file");
                return plain(StatusCode::NOT_FOUND, "not found\n");
            }
        };
        let mut body = FileBody {
            file,
            offset: start,
            remaining: end - start,
        };
        if body.remaining <= SMALL_FILE {
            // Small files (loaders, scripts) go out as one piece.
            match body.next_chunk() {
                Ok(bytes) => BootBody::Full(Some(bytes)),
                Err(error) => {
                    warn!(%error, path = %path.display(), "cannot read boot file");
                    return plain(StatusCode::INTERNAL_SERVER_ERROR, "read error\n");
                }
            }
        } else {
            BootBody::File(body)
        }
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    set(
        &mut response,
        header::CONTENT_TYPE,
        "application/octet-stream",
    );
    set(
        &mut response,
        header::CONTENT_LENGTH,
        &(end - start).to_string(),
    );
    set(&mut response, header::ACCEPT_RANGES, "bytes");
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            &mut response,
            header::CONTENT_RANGE,
            &format!("bytes {start}-{}/{len}", end - 1),
        );
    }
    response
}

/// A parsed `Range` header against a body of known length; `end` is exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeRequest {
    Satisfiable {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
    /// Not a single byte range we serve (multiple ranges, other units): send everything.
    Ignored,
}

fn parse_range(header: &str, len: u64) -> RangeRequest {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeRequest::Ignored;
    };
    if spec.contains(',') {
        return RangeRequest::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeRequest::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let parsed = match (first.is_empty(), last.is_empty()) {
        (true, true) => return RangeRequest::Ignored,
        // Suffix: the last N bytes.
        (true, false) => match last.parse::<u64>() {
            Ok(0) => return RangeRequest::Unsatisfiable,
            Ok(count) => (len.saturating_sub(count), len),
            Err(_) => return RangeRequest::Ignored,
        },
        (false, true) => match first.parse::<u64>() {
            Ok(start) => (start, len),
            Err(_) => return RangeRequest::Ignored,
        },
        (false, false) => match (first.parse::<u64>(), last.parse::<u64>()) {
            (Ok(start), Ok(stop)) if start <= stop => (start, stop.saturating_add(1).min(len)),
            (Ok(_), Ok(_)) => return RangeRequest::Unsatisfiable,
            _ => return RangeRequest::Ignored,
        },
    };
    let (start, end) = parsed;
    if start >= len {
        RangeRequest::Unsatisfiable
    } else {
        RangeRequest::Satisfiable { start, end }
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<BootBody> {
    let mut response = Response::new(BootBody::Full(Some(Bytes::from_static(text.as_bytes()))));
    *response.status_mut() = status;
    set(
        &mut response,
        header::CONTENT_TYPE,
        "text/plain; charset=utf-8",
    );
    response
}

fn set(response: &mut Response<BootBody>, name: header::HeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

/// Decodes `%XX` escapes; `None` when an escape is malformed or the result is not UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%' {
            let hex = std::str::from_utf8(bytes.get(index + 1..index + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            index += 3;
        } else {
            out.push(bytes[index]);
            index += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Response bodies: small in-memory ones, or a file streamed in chunks.
pub enum BootBody {
    Empty,
    Full(Option<Bytes>),
    File(FileBody),
}

pub struct FileBody {
    file: std::fs::File,
    offset: u64,
    remaining: u64,
}

/// Bodies up to this size are read at once.
const SMALL_FILE: u64 = 256 * 1024;
/// Bytes read per frame of a large body.
const CHUNK: usize = 256 * 1024;

impl FileBody {
    fn next_chunk(&mut self) -> io::Result<Bytes> {
        // CHUNK >= SMALL_FILE, so a small body is one chunk.
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(CHUNK);
        let mut buffer = vec![0u8; want];
        let mut filled = 0;
        while filled < want {
            match self.file.read_at(&mut buffer[filled..], self.offset) {
                // The file shrank under us: end the body short rather than hang.
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(read) => {
                    filled += read;
                    self.offset += read as u64;
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
            }
        }
        self.remaining -= filled as u64;
        Ok(Bytes::from(buffer))
    }
}

impl Body for BootBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match self.get_mut() {
            BootBody::Empty => Poll::Ready(None),
            BootBody::Full(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BootBody::File(body) => {
                if body.remaining == 0 {
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(body.next_chunk().map(Frame::data)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            BootBody::Empty => true,
            BootBody::Full(bytes) => bytes.is_none(),
            BootBody::File(body) => body.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            BootBody::Empty => SizeHint::with_exact(0),
            BootBody::Full(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BootBody::File(body) => SizeHint::with_exact(body.remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_table() {
        use RangeRequest::{Ignored, Satisfiable, Unsatisfiable};
        let cases = [
            ("bytes=0-99", Satisfiable { start: 0, end: 100 }),
            (
                "bytes=100-",
                Satisfiable {
                    start: 100,
                    end: 1000,
                },
            ),
            (
                "bytes=-100",
                Satisfiable {
                    start: 900,
                    end: 1000,
                },
            ),
            (
                "bytes=-5000",
                Satisfiable {
                    start: 0,
                    end: 1000,
                },
            ),
            (
                "bytes=900-5000",
                Satisfiable {
                    start: 900,
                    end: 1000,
                },
            ),
            ("bytes=1000-", Unsatisfiable),
            ("bytes=5-4", Unsatisfiable),
            ("bytes=-0", Unsatisfiable),
            ("bytes=0-1,5-6", Ignored),
            ("items=0-1", Ignored),
            ("bytes=x-1", Ignored),
            ("bytes=-", Ignored),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_range(header, 1000), expected, "{header}");
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some("/a b"));
        assert_eq!(percent_decode("/a%2").as_deref(), None);
        assert_eq!(percent_decode("/%ff").as_deref(), None);
        assert_eq!(
            percent_decode("/ipxe.cfg-52:54:00:00:00:01").as_deref(),
            Some("/ipxe.cfg-52:54:00:00:00:01")
        );
    }
}
