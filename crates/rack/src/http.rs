//! The HTTP boot server (port 5248): iPXE/GRUB configs per machine, boot loaders, and
//! kernels, initrds and root images streamed with `Range` support.
//!
//! A small HTTP/1.1 server of its own (requests parsed by `httparse`): boot clients only GET
//! and HEAD, and serving files with `sendfile(2)` (no copy through user space, as nginx does)
//! is what a general server library would not let us do. Keep-alive and pipelined requests
//! are served in order; request bodies are refused, and the connection closed after them.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsFd;
use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use thiserror::Error;
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::{TcpListener, TcpStream};
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
    /// Requests that did not parse, or were too large; answered 400/431 and closed.
    pub malformed: AtomicU64,
}

pub struct HttpServer {
    listener: TcpListener,
    files: Arc<BootFiles>,
    stats: Arc<HttpStats>,
}

/// Longest request head accepted.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;
/// How long a connection may take to send a request head, and stay idle between requests.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a client may leave the socket unwritable before the connection is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Most bytes one sendfile call may send before the connection yields to the others.
const SEND_CHUNK: usize = 2 << 20;
/// Bodies up to this size are read into memory and sent with the head in one write.
const SMALL_FILE: u64 = 64 * 1024;

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
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            let files = Arc::clone(&self.files);
            let stats = Arc::clone(&self.stats);
            connections.spawn(
                async move {
                    if let Err(error) = serve_connection(stream, peer, &files, &stats).await {
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

/// One parsed request head.
struct RequestHead {
    method: Method,
    /// The path, percent-decoded, without the query; `None` when its escapes are malformed.
    path: Option<String>,
    range: Option<String>,
    keep_alive: bool,
    has_body: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Method {
    Get,
    Head,
    Other,
}

enum Parsed {
    Request(RequestHead, usize),
    Partial,
    Invalid(u16),
}

fn parse_head(buffer: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(buffer) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(httparse::Error::TooManyHeaders) => return Parsed::Invalid(431),
        Err(_) => return Parsed::Invalid(400),
    };
    let method = match request.method {
        Some("GET") => Method::Get,
        Some("HEAD") => Method::Head,
        _ => Method::Other,
    };
    let version = request.version.unwrap_or(0);
    let mut keep_alive = version >= 1;
    let mut range = None;
    let mut has_body = false;
    for header in request.headers.iter() {
        let value = std::str::from_utf8(header.value).unwrap_or("").trim();
        if header.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                if token.eq_ignore_ascii_case("close") {
                    keep_alive = false;
                } else if token.eq_ignore_ascii_case("keep-alive") {
                    keep_alive = true;
                }
            }
        } else if header.name.eq_ignore_ascii_case("range") {
            range = Some(value.to_owned());
        } else if header.name.eq_ignore_ascii_case("transfer-encoding")
            || (header.name.eq_ignore_ascii_case("content-length") && value != "0")
        {
            has_body = true;
        }
    }
    let target = request.path.unwrap_or("/");
    // An absolute-form target (through a proxy): keep only its path.
    let target = match target.strip_prefix("http://") {
        Some(rest) => rest.find('/').map_or("/", |at| &rest[at..]),
        None => target,
    };
    let path = target.split(['?', '#']).next().unwrap_or("/");
    Parsed::Request(
        RequestHead {
            method,
            path: percent_decode(path),
            range,
            keep_alive,
            has_body,
        },
        consumed,
    )
}

/// What to send back.
struct Reply {
    status: u16,
    content_type: &'static str,
    /// Extra header lines, each ending in CRLF.
    headers: String,
    body: ReplyBody,
    content_length: u64,
}

enum ReplyBody {
    Memory(Vec<u8>),
    /// Read on the serving thread, as nginx does without thread pools: boot files come from
    /// the page cache, and a hop to a blocking pool would cost more than the read.
    File {
        file: Arc<std::fs::File>,
        offset: u64,
    },
}

impl Reply {
    fn text(status: u16, text: &'static str) -> Reply {
        Reply {
            status,
            content_type: "text/plain; charset=utf-8",
            headers: String::new(),
            content_length: text.len() as u64,
            body: ReplyBody::Memory(text.as_bytes().to_vec()),
        }
    }
}

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    files: &BootFiles,
    stats: &HttpStats,
) -> io::Result<()> {
    let local = stream.local_addr().map(|a| a.ip()).unwrap_or(peer.ip());
    let mut buffer: Vec<u8> = Vec::with_capacity(4096);
    let mut first = true;
    loop {
        // The whole head must arrive within HEAD_TIMEOUT (IDLE_TIMEOUT for the first byte of
        // a follow-up request), however slowly it trickles in.
        let idle = !first && buffer.is_empty();
        let mut deadline =
            tokio::time::Instant::now() + if idle { IDLE_TIMEOUT } else { HEAD_TIMEOUT };
        // Read until one request head is complete (a pipelined one may be buffered already).
        let (head, consumed) = loop {
            match parse_head(&buffer) {
                Parsed::Request(head, consumed) => break (head, consumed),
                Parsed::Invalid(status) => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    let reply = Reply::text(status, "bad request\n");
                    let _ = write_reply(&mut stream, reply, false, false, stats).await;
                    return Ok(());
                }
                Parsed::Partial if buffer.len() >= MAX_HEAD => {
                    stats.malformed.fetch_add(1, Ordering::Relaxed);
                    let reply = Reply::text(431, "request head too large\n");
                    let _ = write_reply(&mut stream, reply, false, false, stats).await;
                    return Ok(());
                }
                Parsed::Partial => {}
            }
            let start = buffer.len();
            buffer.resize(start + 4096, 0);
            let read = tokio::time::timeout_at(deadline, stream.read(&mut buffer[start..])).await;
            match read {
                Ok(Ok(0)) | Err(_) => return Ok(()),
                Ok(Ok(read)) => buffer.truncate(start + read),
                Ok(Err(error)) => return Err(error),
            }
            if start == 0 && idle {
                // A follow-up request has begun: it gets HEAD_TIMEOUT from here.
                deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
            }
        };
        buffer.drain(..consumed);
        first = false;
        stats.requests.fetch_add(1, Ordering::Relaxed);
        // Bodies are not read; the connection cannot carry another request after one.
        let keep_alive = head.keep_alive && !head.has_body && head.method != Method::Other;
        let head_only = head.method == Method::Head;
        let reply = respond(&head, files, stats, peer, local).await;
        debug!(method = ?head.method, path = ?head.path, status = reply.status, "HTTP boot request");
        write_reply(&mut stream, reply, head_only, keep_alive, stats).await?;
        if !keep_alive {
            let _ = stream.shutdown().await;
            return Ok(());
        }
    }
}

async fn respond(
    head: &RequestHead,
    files: &BootFiles,
    stats: &HttpStats,
    peer: SocketAddr,
    local: IpAddr,
) -> Reply {
    if head.method == Method::Other {
        return Reply::text(405, "only GET and HEAD are served\n");
    }
    let Some(path) = &head.path else {
        return Reply::text(400, "bad path encoding\n");
    };
    let file_request = FileRequest {
        local_ip: local,
        remote_ip: peer.ip(),
        protocol: Protocol::Http,
    };
    match files.resolve(path, file_request).await {
        Ok(Resolved::Generated { body, .. }) => Reply {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            headers: String::new(),
            content_length: body.len() as u64,
            body: ReplyBody::Memory(body),
        },
        Ok(Resolved::File { file, len, .. }) => file_reply(file.0, len, head.range.as_deref()),
        Err(error) => {
            let status = match &error {
                ResolveError::NotFound { .. } => 404,
                ResolveError::Escape { .. } => 403,
                ResolveError::Backend { .. } => 503,
            };
            match &error {
                ResolveError::Backend { .. } => {
                    warn!(error = %error_chain(&error), "HTTP boot request failed")
                }
                _ => debug!(%error, "HTTP boot request refused"),
            }
            stats.not_found.fetch_add(1, Ordering::Relaxed);
            Reply::text(status, "not found\n")
        }
    }
}

fn file_reply(file: Arc<std::fs::File>, len: u64, range: Option<&str>) -> Reply {
    let (status, start, end) = match range.map(|r| parse_range(r, len)) {
        None | Some(RangeRequest::Ignored) => (200, 0, len),
        Some(RangeRequest::Satisfiable { start, end }) => (206, start, end),
        Some(RangeRequest::Unsatisfiable) => {
            let mut reply = Reply::text(416, "");
            reply.headers = format!("content-range: bytes */{len}\r\n");
            return reply;
        }
    };
    let mut headers = String::from("accept-ranges: bytes\r\n");
    if status == 206 {
        headers.push_str(&format!(
            "content-range: bytes {start}-{}/{len}\r\n",
            end - 1
        ));
    }
    Reply {
        status,
        content_type: "application/octet-stream",
        headers,
        content_length: end - start,
        body: ReplyBody::File {
            file,
            offset: start,
        },
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

async fn write_reply(
    stream: &mut TcpStream,
    reply: Reply,
    head_only: bool,
    keep_alive: bool,
    stats: &HttpStats,
) -> io::Result<()> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(
        format!(
            "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\n{}{}\r\n",
            reply.status,
            reason(reply.status),
            reply.content_type,
            reply.content_length,
            reply.headers,
            if keep_alive {
                ""
            } else {
                "connection: close\r\n"
            },
        )
        .as_bytes(),
    );
    if head_only {
        return write_all(stream, &out).await;
    }
    match reply.body {
        ReplyBody::Memory(body) => {
            out.extend_from_slice(&body);
            write_all(stream, &out).await?;
        }
        ReplyBody::File { file, offset } if reply.content_length <= SMALL_FILE => {
            // Small files go out with the head in one write.
            let start = out.len();
            let len = usize::try_from(reply.content_length).unwrap_or(0);
            out.resize(start + len, 0);
            read_exact_at(&file, &mut out[start..], offset)?;
            write_all(stream, &out).await?;
        }
        ReplyBody::File { file, offset } => {
            // The kernel sends the file from the page cache, without a copy through here.
            write_all(stream, &out).await?;
            send_file(stream, &file, offset, reply.content_length).await?;
        }
    }
    stats
        .bytes_sent
        .fetch_add(reply.content_length, Ordering::Relaxed);
    Ok(())
}

fn read_exact_at(file: &std::fs::File, out: &mut [u8], offset: u64) -> io::Result<()> {
    // A file that shrank under us ends the connection rather than sending short.
    file.read_exact_at(out, offset)
}

async fn write_all(stream: &mut TcpStream, bytes: &[u8]) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.write_all(bytes)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
}

async fn writable(stream: &TcpStream) -> io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, stream.writable()).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::from(io::ErrorKind::TimedOut)),
    }
}

/// Sends `len` bytes of `file` from `offset` with sendfile(2).
async fn send_file(
    stream: &TcpStream,
    file: &std::fs::File,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let mut position =
        i64::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut remaining = len;
    while remaining > 0 {
        writable(stream).await?;
        let count = usize::try_from(remaining)
            .unwrap_or(usize::MAX)
            .min(SEND_CHUNK);
        match stream.try_io(Interest::WRITABLE, || {
            nix::sys::sendfile::sendfile(stream.as_fd(), file.as_fd(), Some(&mut position), count)
                .map_err(io::Error::from)
        }) {
            // The file shrank under us: end the connection rather than hang.
            Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
            Ok(sent) => {
                remaining -= sent as u64;
                // Take turns with the other connections, as nginx's sendfile_max_chunk does,
                // so that one fast reader cannot hold a worker while others wait.
                tokio::task::yield_now().await;
            }
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
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

    #[test]
    fn request_heads_table() {
        // (request bytes, (method, path, keep-alive, has body, range) or the status refused)
        type Expected = Result<
            (
                Method,
                Option<&'static str>,
                bool,
                bool,
                Option<&'static str>,
            ),
            u16,
        >;
        let cases: Vec<(&[u8], Expected)> = vec![
            (
                b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                Ok((Method::Get, Some("/a b"), true, false, None)),
            ),
            (
                b"HEAD /k HTTP/1.1\r\nConnection: close\r\n\r\n",
                Ok((Method::Head, Some("/k"), false, false, None)),
            ),
            (
                b"GET /k HTTP/1.0\r\n\r\n",
                Ok((Method::Get, Some("/k"), false, false, None)),
            ),
            (
                b"GET /k HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
                Ok((Method::Get, Some("/k"), true, false, None)),
            ),
            (
                b"GET http://10.0.0.1:5248/ipxe.cfg HTTP/1.1\r\n\r\n",
                Ok((Method::Get, Some("/ipxe.cfg"), true, false, None)),
            ),
            (
                b"GET /k HTTP/1.1\r\nRange: bytes=0-9\r\n\r\n",
                Ok((Method::Get, Some("/k"), true, false, Some("bytes=0-9"))),
            ),
            (
                b"POST /k HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                Ok((Method::Other, Some("/k"), true, true, None)),
            ),
            (
                b"GET /%zz HTTP/1.1\r\n\r\n",
                Ok((Method::Get, None, true, false, None)),
            ),
            (b"GET / HTTP/1.1\r\nBad Header\r\n\r\n", Err(400)),
            (b"\x00\x01\x02\r\n\r\n", Err(400)),
        ];
        for (bytes, expected) in cases {
            let got = match parse_head(bytes) {
                Parsed::Request(head, _) => Ok((
                    head.method,
                    head.path.clone(),
                    head.keep_alive,
                    head.has_body,
                    head.range.clone(),
                )),
                Parsed::Invalid(status) => Err(status),
                Parsed::Partial => Err(0),
            };
            let expected = expected
                .map(|(m, p, k, b, r)| (m, p.map(str::to_owned), k, b, r.map(str::to_owned)));
            assert_eq!(got, expected, "{:?}", String::from_utf8_lossy(bytes));
        }
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost"),
            Parsed::Partial
        ));
        // Pipelined: the first head's length leaves the second in the buffer.
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let Parsed::Request(_, used) = parse_head(two) else {
            panic!("first request");
        };
        assert!(
            matches!(parse_head(&two[used..]), Parsed::Request(head, _) if head.path.as_deref() == Some("/b"))
        );
    }
}
