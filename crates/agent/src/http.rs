//! A small blocking HTTP/1.1 client over `std::net`: one request per connection,
//! `Content-Length` or chunked responses, bodies streamed to the caller.
//!
//! Only `http://` is supported: the region and the rack serve the metadata API and images
//! on plain HTTP (ports 5240 and 5248). Hosts should be IP literals; a name goes through
//! the C library's resolver, which in a static glibc binary needs NSS modules the
//! in-memory environment does not have.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a request failed before a response arrived, or while reading it.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("bad URL {url:?}: {reason}")]
    BadUrl { url: String, reason: &'static str },
    #[error("unsupported URL scheme in {url:?} (only http:// is supported)")]
    UnsupportedScheme { url: String },
    #[error("cannot resolve {host:?}")]
    Resolve {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("cannot connect to {address}")]
    Connect {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("i/o error talking to {host}")]
    Io {
        host: String,
        #[source]
        source: io::Error,
    },
    #[error("malformed response from {host}: {reason}")]
    BadResponse { host: String, reason: String },
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge { limit: usize },
}

/// A parsed `http://host:port/path?query` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub port: u16,
    /// Path and query, always starting with `/`.
    pub target: String,
}

impl Url {
    pub fn parse(url: &str) -> Result<Self, HttpError> {
        let bad = |reason| HttpError::BadUrl {
            url: url.to_owned(),
            reason,
        };
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => {
                return Err(HttpError::UnsupportedScheme {
                    url: url.to_owned(),
                });
            }
            None => return Err(bad("no scheme")),
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(index) => (&rest[..index], &rest[index..]),
            None => (rest, "/"),
        };
        let target = if target.starts_with('?') {
            format!("/{target}")
        } else {
            target.to_owned()
        };
        let target = target.split('#').next().unwrap_or("/").to_owned();
        if authority.contains('@') {
            return Err(bad("user info is not supported"));
        }
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("unterminated IPv6 literal"))?;
            let port = match after.strip_prefix(':') {
                Some(port) => port.parse().map_err(|_| bad("bad port"))?,
                None if after.is_empty() => 80,
                None => return Err(bad("junk after IPv6 literal")),
            };
            (host.to_owned(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| bad("bad port"))?),
                None => (authority.to_owned(), 80),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        Ok(Url { host, port, target })
    }

    /// `host:port` as sent in the `Host` header.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }

    /// `http://host:port` without the target.
    pub fn origin(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        format!("http://{host}:{}", self.port)
    }

    fn socket_addresses(&self) -> Result<Vec<SocketAddr>, HttpError> {
        if let Ok(ip) = self.host.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, self.port)]);
        }
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .map_err(|source| HttpError::Resolve {
                host: self.host.clone(),
                source,
            })
    }
}

/// A response whose body has not been read yet.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: Box<dyn Read + Send>,
    host: String,
}

impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

impl Response {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as a stream (for images).
    pub fn into_reader(self) -> Box<dyn Read + Send> {
        self.body
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub fn read_body(self, limit: usize) -> Result<Vec<u8>, HttpError> {
        let mut body = Vec::new();
        let host = self.host;
        self.body
            .take(limit as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|source| HttpError::Io { host, source })?;
        if body.len() > limit {
            return Err(HttpError::BodyTooLarge { limit });
        }
        Ok(body)
    }
}

/// Timeouts for one client.
#[derive(Clone, Copy, Debug)]
pub struct Client {
    pub connect_timeout: Duration,
    pub io_timeout: Duration,
}

impl Default for Client {
    fn default() -> Self {
        Client {
            connect_timeout: Duration::from_secs(10),
            io_timeout: Duration::from_secs(120),
        }
    }
}

const MAX_HEAD: usize = 64 * 1024;

impl Client {
    /// Sends one request. `headers` must not include `Host`, `Content-Length` or
    /// `Connection`, which are added here.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, String)],
        body: Option<&[u8]>,
    ) -> Result<Response, HttpError> {
        let parsed = Url::parse(url)?;
        let stream = self.connect(&parsed)?;
        let io = |source| HttpError::Io {
            host: parsed.host.clone(),
            source,
        };
        stream.set_read_timeout(Some(self.io_timeout)).map_err(io)?;
        stream
            .set_write_timeout(Some(self.io_timeout))
            .map_err(io)?;
        let mut head = format!(
            "{method} {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: maas-agent/{}\r\nAccept: */*\r\nConnection: close\r\n",
            parsed.target,
            parsed.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if body.is_some() || matches!(method, "POST" | "PUT") {
            head.push_str(&format!(
                "Content-Length: {}\r\n",
                body.map_or(0, <[u8]>::len)
            ));
        }
        head.push_str("\r\n");
        let mut writer = &stream;
        writer.write_all(head.as_bytes()).map_err(io)?;
        if let Some(body) = body {
            writer.write_all(body).map_err(io)?;
        }
        writer.flush().map_err(io)?;
        read_response(BufReader::new(stream), &parsed.host, method == "HEAD")
    }

    fn connect(&self, url: &Url) -> Result<TcpStream, HttpError> {
        let addresses = url.socket_addresses()?;
        let mut last = None;
        for address in addresses {
            match TcpStream::connect_timeout(&address, self.connect_timeout) {
                Ok(stream) => return Ok(stream),
                Err(source) => last = Some(HttpError::Connect { address, source }),
            }
        }
        Err(last.unwrap_or_else(|| HttpError::Resolve {
            host: url.host.clone(),
            source: io::Error::new(io::ErrorKind::NotFound, "no addresses"),
        }))
    }
}

fn read_response(
    mut reader: BufReader<TcpStream>,
    host: &str,
    head_only: bool,
) -> Result<Response, HttpError> {
    let bad = |reason: String| HttpError::BadResponse {
        host: host.to_owned(),
        reason,
    };
    let io = |source| HttpError::Io {
        host: host.to_owned(),
        source,
    };
    let mut total = 0;
    let mut status_line = String::new();
    total += reader.read_line(&mut status_line).map_err(io)?;
    let mut parts = status_line.split_whitespace();
    let version = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(bad(format!("status line {:?}", status_line.trim_end())));
    }
    let status: u16 = parts
        .next()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| bad(format!("status line {:?}", status_line.trim_end())))?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        let read = reader.read_line(&mut line).map_err(io)?;
        total += read;
        if total > MAX_HEAD {
            return Err(bad("header section too large".into()));
        }
        if read == 0 {
            return Err(bad("connection closed inside the header section".into()));
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| bad(format!("header line {line:?}")))?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let find = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
    };
    let no_body = head_only || status == 204 || status == 304 || (100..200).contains(&status);
    let body: Box<dyn Read + Send> = if no_body {
        Box::new(io::empty())
    } else if find("Transfer-Encoding")
        .is_some_and(|value| value.to_ascii_lowercase().contains("chunked"))
    {
        Box::new(ChunkedReader::new(reader))
    } else if let Some(length) = find("Content-Length") {
        let length: u64 = length
            .parse()
            .map_err(|_| bad(format!("Content-Length {length:?}")))?;
        Box::new(ExactReader {
            inner: reader,
            remaining: length,
        })
    } else {
        Box::new(reader)
    };
    Ok(Response {
        status,
        headers,
        body,
        host: host.to_owned(),
    })
}

/// A `Content-Length` body: errors if the connection closes early, so a short image is
/// never taken for a whole one.
struct ExactReader<R> {
    inner: R,
    remaining: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let read = self.inner.read(&mut buf[..want])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "connection closed with {} body bytes missing",
                    self.remaining
                ),
            ));
        }
        self.remaining -= read as u64;
        Ok(read)
    }
}

/// A chunked body (RFC 9112 §7.1); trailers are read and dropped.
pub struct ChunkedReader<R> {
    inner: R,
    remaining: u64,
    done: bool,
}

impl<R: BufRead> ChunkedReader<R> {
    pub fn new(inner: R) -> Self {
        ChunkedReader {
            inner,
            remaining: 0,
            done: false,
        }
    }

    fn read_line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        let read = (&mut self.inner).take(4096).read_line(&mut line)?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunked body",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

impl<R: BufRead> Read for ChunkedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.remaining == 0 {
            let line = self.read_line()?;
            let size = line.split(';').next().unwrap_or("").trim();
            self.remaining = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {size:?}"),
                )
            })?;
            if self.remaining == 0 {
                while !self.read_line()?.is_empty() {}
                self.done = true;
                return Ok(0);
            }
        }
        let want = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let read = self.inner.read(&mut buf[..want])?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunk",
            ));
        }
        self.remaining -= read as u64;
        if self.remaining == 0 {
            let end = self.read_line()?;
            if !end.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "chunk not followed by CRLF",
                ));
            }
        }
        Ok(read)
    }
}

/// Parses an RFC 7231 `Date` (`Sun, 06 Nov 1994 08:49:37 GMT`) to Unix seconds.
pub fn parse_http_date(value: &str) -> Option<i64> {
    let parts: Vec<&str> = value.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|name| name == month)? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let clock: Vec<i64> = time
        .split(':')
        .map(|part| part.parse().ok())
        .collect::<Option<_>>()?;
    let [hour, minute, second] = clock.as_slice() else {
        return None;
    };
    // Days from the civil date (Howard Hinnant's algorithm).
    let shifted_year = if month <= 2 { year - 1 } else { year };
    let era = shifted_year.div_euclid(400);
    let year_of_era = shifted_year - era * 400;
    let day_of_year = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    let days = era * 146_097 + day_of_era - 719_468;
    Some(days * 86_400 + hour * 3600 + minute * 60 + second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let url = Url::parse("http://10.0.0.1:5248/MAAS/metadata/?op=x#frag").unwrap();
        assert_eq!(url.host, "10.0.0.1");
        assert_eq!(url.port, 5248);
        assert_eq!(url.target, "/MAAS/metadata/?op=x");
        assert_eq!(url.host_header(), "10.0.0.1:5248");
        let url = Url::parse("http://[fd00::1]/x").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("fd00::1", 80));
        assert_eq!(url.host_header(), "[fd00::1]");
        assert_eq!(Url::parse("http://h?q=1").unwrap().target, "/?q=1");
        assert!(matches!(
            Url::parse("https://h/"),
            Err(HttpError::UnsupportedScheme { .. })
        ));
        for bad in [
            "h/x",
            "http://",
            "http://h:port/",
            "http://[::1/",
            "http://u@h/",
        ] {
            assert!(Url::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chunked_bodies() {
        let wire = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
        let mut body = String::new();
        ChunkedReader::new(&wire[..])
            .read_to_string(&mut body)
            .unwrap();
        assert_eq!(body, "Wikipedia");
        let mut sink = Vec::new();
        assert!(
            ChunkedReader::new(&b"zz\r\n"[..])
                .read_to_end(&mut sink)
                .is_err()
        );
        assert!(
            ChunkedReader::new(&b"5\r\nab"[..])
                .read_to_end(&mut sink)
                .is_err()
        );
    }

    #[test]
    fn exact_reader_reports_short_bodies() {
        let mut sink = Vec::new();
        let mut reader = ExactReader {
            inner: &b"abc"[..],
            remaining: 5,
        };
        let error = reader.read_to_end(&mut sink).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(
            parse_http_date("Tue, 14 Nov 2023 22:13:20 GMT"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_http_date("yesterday"), None);
        assert_eq!(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), None);
    }
}
