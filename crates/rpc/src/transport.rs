//! The link over a byte stream: dialling the region (an HTTP/1.1 upgrade on its API port),
//! the handshake, and the running connection that carries calls both ways.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngCore;
use thiserror::Error;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::auth::{NONCE_LEN, Secret, parse_nonce};
use crate::codec::{self, CodecError};
use crate::messages::{Call, Frame, LINK_PATH, Outcome, Push, UPGRADE_TOKEN};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

#[derive(Debug, Error)]
pub enum LinkError {
    #[error("region URL {url:?} cannot be used: {problem}")]
    BadUrl { url: String, problem: &'static str },
    #[error("connecting to {address}")]
    Connect {
        address: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the region did not accept the link upgrade: {status}")]
    UpgradeRefused { status: String },
    #[error("link i/o")]
    Io {
        #[source]
        source: std::io::Error,
    },
    #[error("bad frame")]
    Codec {
        #[source]
        source: CodecError,
    },
    #[error("unexpected {got} frame while {stage}")]
    Unexpected {
        stage: &'static str,
        got: &'static str,
    },
    #[error("the peer sent a malformed nonce")]
    BadNonce,
    #[error("the region could not prove it knows the shared secret (is the rack's secret right?)")]
    RegionNotAuthentic,
    #[error("the rack could not prove it knows the shared secret")]
    RackNotAuthentic,
    #[error("the region refused the rack: {reason}")]
    Refused { reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the link is closed")]
    Closed,
}

impl LinkError {
    fn io(source: std::io::Error) -> LinkError {
        if source.kind() == std::io::ErrorKind::UnexpectedEof {
            return LinkError::Closed;
        }
        LinkError::Io { source }
    }
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    frame: &Frame,
) -> Result<(), LinkError> {
    let bytes = codec::encode(frame).map_err(|source| LinkError::Codec { source })?;
    stream.write_all(&bytes).await.map_err(LinkError::io)?;
    stream.flush().await.map_err(LinkError::io)
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> Result<Frame, LinkError> {
    let mut prefix = [0u8; 4];
    stream
        .read_exact(&mut prefix)
        .await
        .map_err(LinkError::io)?;
    let len = codec::body_len(prefix).map_err(|source| LinkError::Codec { source })?;
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await.map_err(LinkError::io)?;
    codec::decode_body(&body).map_err(|source| LinkError::Codec { source })
}

fn nonce() -> [u8; NONCE_LEN] {
    let mut bytes = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut bytes);
    bytes
}

/// The host:port to connect to and the request path of the link endpoint, from a region URL
/// such as `http://10.0.0.1:5240/MAAS`.
pub fn link_target(url: &str) -> Result<(String, String), LinkError> {
    let bad = |problem| LinkError::BadUrl {
        url: url.to_owned(),
        problem,
    };
    if url.starts_with("https://") {
        return Err(bad(
            "the rack link does not speak TLS yet; use the region's http:// URL",
        ));
    }
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("it must start with http://"))?;
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/MAAS"),
    };
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("it has no usable host"));
    }
    let has_port = match authority.rfind(']') {
        Some(bracket) => authority[bracket..].contains(':'),
        None => authority.contains(':'),
    };
    let address = if has_port {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let path = path
        .split(['?', '#'])
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    Ok((address, format!("{path}{LINK_PATH}")))
}

/// Connects to the region and upgrades the HTTP connection to the link.
pub async fn dial(url: &str, timeout: Duration) -> Result<TcpStream, LinkError> {
    let (address, path) = link_target(url)?;
    let attempt = async {
        let mut stream =
            TcpStream::connect(&address)
                .await
                .map_err(|source| LinkError::Connect {
                    address: address.clone(),
                    source,
                })?;
        let _ = stream.set_nodelay(true);
        let host = address.as_str();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: {UPGRADE_TOKEN}\r\n\r\n"
        );
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(LinkError::io)?;
        // Read the response head a byte at a time so nothing after it is consumed; the region
        // sends nothing more until the rack's hello.
        let mut head = Vec::with_capacity(256);
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if head.len() > 16 * 1024 {
                return Err(LinkError::UpgradeRefused {
                    status: "response head over 16 KiB".to_owned(),
                });
            }
            let n = stream.read(&mut byte).await.map_err(LinkError::io)?;
            if n == 0 {
                return Err(LinkError::UpgradeRefused {
                    status: "connection closed before a response".to_owned(),
                });
            }
            head.push(byte[0]);
        }
        let text = String::from_utf8_lossy(&head);
        let status = text.lines().next().unwrap_or("").trim().to_owned();
        let mut parts = status.split_whitespace();
        let code = parts.nth(1);
        if code != Some("101") {
            return Err(LinkError::UpgradeRefused { status });
        }
        Ok(stream)
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| LinkError::Timeout(timeout))?
}

/// The rack's half of the handshake; returns the region's name.
pub async fn rack_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &Secret,
) -> Result<String, LinkError> {
    let rack_nonce = nonce();
    write_frame(
        stream,
        &Frame::Hello {
            rack_nonce: hex::encode(rack_nonce),
        },
    )
    .await?;
    let (region, region_nonce, region_proof) = match read_frame(stream).await? {
        Frame::Challenge {
            region,
            region_nonce,
            region_proof,
        } => (region, region_nonce, region_proof),
        Frame::Refused { reason } => return Err(LinkError::Refused { reason }),
        other => {
            return Err(LinkError::Unexpected {
                stage: "waiting for the region's challenge",
                got: other.kind(),
            });
        }
    };
    let region_nonce = parse_nonce(&region_nonce).ok_or(LinkError::BadNonce)?;
    if !secret.check_region_proof(&rack_nonce, &region_nonce, &region_proof) {
        return Err(LinkError::RegionNotAuthentic);
    }
    write_frame(
        stream,
        &Frame::Proof {
            rack_proof: secret.rack_proof(&rack_nonce, &region_nonce),
        },
    )
    .await?;
    match read_frame(stream).await? {
        Frame::Welcome => Ok(region),
        Frame::Refused { reason } => Err(LinkError::Refused { reason }),
        other => Err(LinkError::Unexpected {
            stage: "waiting for the region's welcome",
            got: other.kind(),
        }),
    }
}

/// The region's half of the handshake. A rack that fails it is told so and must be dropped.
pub async fn region_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    secret: &Secret,
    region: &str,
) -> Result<(), LinkError> {
    let rack_nonce = match read_frame(stream).await? {
        Frame::Hello { rack_nonce } => parse_nonce(&rack_nonce).ok_or(LinkError::BadNonce)?,
        other => {
            return Err(LinkError::Unexpected {
                stage: "waiting for the rack's hello",
                got: other.kind(),
            });
        }
    };
    let region_nonce = nonce();
    write_frame(
        stream,
        &Frame::Challenge {
            region: region.to_owned(),
            region_nonce: hex::encode(region_nonce),
            region_proof: secret.region_proof(&rack_nonce, &region_nonce),
        },
    )
    .await?;
    let proof = match read_frame(stream).await? {
        Frame::Proof { rack_proof } => rack_proof,
        other => {
            return Err(LinkError::Unexpected {
                stage: "waiting for the rack's proof",
                got: other.kind(),
            });
        }
    };
    if !secret.check_rack_proof(&rack_nonce, &region_nonce, &proof) {
        let _ = write_frame(
            stream,
            &Frame::Refused {
                reason: "the rack's proof does not match the region's shared secret".to_owned(),
            },
        )
        .await;
        return Err(LinkError::RackNotAuthentic);
    }
    write_frame(stream, &Frame::Welcome).await
}

/// What one side does with the other side's calls and pushes.
pub trait Handler: Send + Sync + 'static {
    fn call(&self, call: Call) -> BoxFuture<Outcome>;
    fn push(&self, push: Push);
}

struct PeerInner {
    outgoing: mpsc::Sender<Frame>,
    pending: Mutex<HashMap<u64, oneshot::Sender<Outcome>>>,
    next_id: AtomicU64,
    closed: watch::Receiver<bool>,
}

/// The far side of a running link: call it, push to it, watch it close.
#[derive(Clone)]
pub struct Peer {
    inner: Arc<PeerInner>,
}

impl Peer {
    /// Sends a call and waits for its outcome.
    pub async fn call(&self, call: Call, timeout: Duration) -> Result<Outcome, LinkError> {
        if self.is_closed() {
            return Err(LinkError::Closed);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        let result = tokio::time::timeout(timeout, async {
            self.inner
                .outgoing
                .send(Frame::Call { id, call })
                .await
                .map_err(|_| LinkError::Closed)?;
            rx.await.map_err(|_| LinkError::Closed)
        })
        .await;
        match result {
            Ok(outcome) => outcome,
            Err(_) => {
                self.pending().remove(&id);
                Err(LinkError::Timeout(timeout))
            }
        }
    }

    pub async fn push(&self, push: Push) -> Result<(), LinkError> {
        self.inner
            .outgoing
            .send(Frame::Push { push })
            .await
            .map_err(|_| LinkError::Closed)
    }

    pub fn is_closed(&self) -> bool {
        *self.inner.closed.borrow()
    }

    /// Resolves once the link has closed.
    pub async fn closed(&self) {
        let mut closed = self.inner.closed.clone();
        let _ = closed.wait_for(|c| *c).await;
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Outcome>>> {
        // A poisoned map only means a panicking holder; the map itself is still whole.
        self.inner
            .pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Runs an authenticated link: frames are read until the peer closes, sends something
/// unexpected, or is silent for `idle`. The returned task ends with the reason.
pub fn run<S>(
    stream: S,
    handler: Arc<dyn Handler>,
    idle: Duration,
) -> (Peer, JoinHandle<Result<(), LinkError>>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut reader, writer) = tokio::io::split(stream);
    let (outgoing, mut queue) = mpsc::channel::<Frame>(256);
    let (closed_tx, closed_rx) = watch::channel(false);
    let peer = Peer {
        inner: Arc::new(PeerInner {
            outgoing: outgoing.clone(),
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            closed: closed_rx,
        }),
    };
    let writer_task = tokio::spawn(async move {
        let mut writer = BufWriter::new(writer);
        while let Some(frame) = queue.recv().await {
            let bytes = codec::encode(&frame).map_err(|source| LinkError::Codec { source })?;
            writer.write_all(&bytes).await.map_err(LinkError::io)?;
            // Flush once the queue is drained, so bursts share a write.
            if queue.is_empty() {
                writer.flush().await.map_err(LinkError::io)?;
            }
        }
        let _ = writer.shutdown().await;
        Ok::<(), LinkError>(())
    });
    let reader_peer = peer.clone();
    let task = tokio::spawn(async move {
        // Runs when the loop ends and also when the task is aborted.
        let _cleanup = Cleanup {
            closed: closed_tx,
            writer: writer_task,
            peer: reader_peer.clone(),
        };
        async {
            loop {
                let frame = match tokio::time::timeout(idle, read_frame(&mut reader)).await {
                    Ok(frame) => frame?,
                    Err(_) => return Err(LinkError::Timeout(idle)),
                };
                match frame {
                    Frame::Call { id, call } => {
                        let answer = handler.call(call);
                        let outgoing = outgoing.clone();
                        tokio::spawn(async move {
                            let outcome = answer.await;
                            let _ = outgoing.send(Frame::Reply { id, outcome }).await;
                        });
                    }
                    Frame::Reply { id, outcome } => {
                        if let Some(waiter) = reader_peer.pending().remove(&id) {
                            let _ = waiter.send(outcome);
                        }
                    }
                    Frame::Push { push } => handler.push(push),
                    other => {
                        return Err(LinkError::Unexpected {
                            stage: "running",
                            got: other.kind(),
                        });
                    }
                }
            }
        }
        .await
    });
    (peer, task)
}

/// Marks the link closed, fails the calls still waiting and stops the writer.
struct Cleanup {
    closed: watch::Sender<bool>,
    writer: JoinHandle<Result<(), LinkError>>,
    peer: Peer,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = self.closed.send(true);
        self.peer.pending().clear();
        self.writer.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::{DhcpConfig, RemoteError};

    #[test]
    fn link_targets() {
        assert_eq!(
            link_target("http://10.0.0.1:5240/MAAS").unwrap(),
            ("10.0.0.1:5240".into(), "/MAAS/rpc/link".into())
        );
        assert_eq!(
            link_target("http://region/MAAS/").unwrap(),
            ("region:80".into(), "/MAAS/rpc/link".into())
        );
        assert_eq!(
            link_target("http://[fd00::1]:5240").unwrap(),
            ("[fd00::1]:5240".into(), "/MAAS/rpc/link".into())
        );
        assert_eq!(
            link_target("http://[fd00::1]/MAAS").unwrap().0,
            "[fd00::1]:80"
        );
        assert!(matches!(
            link_target("https://region/MAAS"),
            Err(LinkError::BadUrl { .. })
        ));
        assert!(link_target("ftp://x").is_err());
        assert!(link_target("http:///MAAS").is_err());
    }

    struct Echo;
    impl Handler for Echo {
        fn call(&self, call: Call) -> BoxFuture<Outcome> {
            Box::pin(async move {
                match call {
                    Call::Ping => Outcome::Pong,
                    other => Outcome::Error(RemoteError::new("Unsupported", other.name())),
                }
            })
        }
        fn push(&self, _push: Push) {}
    }

    struct Collect(mpsc::UnboundedSender<Push>);
    impl Handler for Collect {
        fn call(&self, _call: Call) -> BoxFuture<Outcome> {
            Box::pin(async { Outcome::Done })
        }
        fn push(&self, push: Push) {
            let _ = self.0.send(push);
        }
    }

    #[tokio::test]
    async fn handshake_then_calls_and_pushes_both_ways() {
        let secret = Secret::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let (mut rack_end, mut region_end) = tokio::io::duplex(1 << 16);
        let region_secret = secret.clone();
        let region = tokio::spawn(async move {
            region_handshake(&mut region_end, &region_secret, "region:pid=1")
                .await
                .map(|()| region_end)
        });
        let name = rack_handshake(&mut rack_end, &secret).await.unwrap();
        assert_eq!(name, "region:pid=1");
        let region_end = region.await.unwrap().unwrap();

        let (pushes_tx, mut pushes) = mpsc::unbounded_channel();
        let (rack_peer, _rack_task) = run(
            rack_end,
            Arc::new(Collect(pushes_tx)),
            Duration::from_secs(5),
        );
        let (region_peer, region_task) = run(region_end, Arc::new(Echo), Duration::from_secs(5));
        let t = Duration::from_secs(5);
        assert_eq!(rack_peer.call(Call::Ping, t).await.unwrap(), Outcome::Pong);
        assert!(matches!(
            rack_peer.call(Call::Services(vec![]), t).await.unwrap(),
            Outcome::Error(_)
        ));
        assert_eq!(
            region_peer.call(Call::Ping, t).await.unwrap(),
            Outcome::Done
        );
        region_peer
            .push(Push::Dhcp(DhcpConfig::default()))
            .await
            .unwrap();
        assert_eq!(pushes.recv().await, Some(Push::Dhcp(DhcpConfig::default())));
        // Many calls in flight at once all get their own answers.
        let calls: Vec<_> = (0..100)
            .map(|_| {
                let peer = rack_peer.clone();
                tokio::spawn(async move { peer.call(Call::Ping, t).await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap(), Outcome::Pong);
        }
        // Closing one side closes the other and fails calls instead of hanging.
        _rack_task.abort();
        region_peer.closed().await;
        assert!(matches!(
            rack_peer.call(Call::Ping, t).await,
            Err(LinkError::Closed)
        ));
        assert!(region_task.await.unwrap().is_err() || region_peer.is_closed());
        assert!(matches!(
            region_peer.call(Call::Ping, t).await,
            Err(LinkError::Closed)
        ));
    }

    #[tokio::test]
    async fn a_wrong_secret_fails_on_both_sides() {
        let region_secret = Secret::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let rack_secret = Secret::from_hex("ffeeddccbbaa99887766554433221100").unwrap();
        let (mut rack_end, mut region_end) = tokio::io::duplex(1 << 16);
        let region =
            tokio::spawn(
                async move { region_handshake(&mut region_end, &region_secret, "r").await },
            );
        assert!(matches!(
            rack_handshake(&mut rack_end, &rack_secret).await,
            Err(LinkError::RegionNotAuthentic)
        ));
        drop(rack_end);
        assert!(region.await.unwrap().is_err());
    }

    #[tokio::test]
    async fn a_rack_that_skips_the_proof_is_refused() {
        let secret = Secret::from_hex("00112233445566778899aabbccddeeff").unwrap();
        let (mut rack_end, mut region_end) = tokio::io::duplex(1 << 16);
        let region =
            tokio::spawn(async move { region_handshake(&mut region_end, &secret, "r").await });
        write_frame(
            &mut rack_end,
            &Frame::Hello {
                rack_nonce: hex::encode([7u8; 16]),
            },
        )
        .await
        .unwrap();
        let _challenge = read_frame(&mut rack_end).await.unwrap();
        write_frame(
            &mut rack_end,
            &Frame::Call {
                id: 1,
                call: Call::Ping,
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            region.await.unwrap(),
            Err(LinkError::Unexpected { .. })
        ));
    }
}
