//! Our own small HTTP test peer for the webhook driver and the poller: a
//! hyper server with one in-memory "machine" per path prefix, counting how
//! many requests it serves at once. `/node/hang/...` never answers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// (method, path, authorization, system_id) of one request.
pub type Seen = (String, String, Option<String>, Option<String>);

#[derive(Default)]
pub struct PeerState {
    pub on: Mutex<HashMap<String, bool>>,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    pub requests: AtomicUsize,
    pub log: Mutex<Vec<Seen>>,
    /// Each answer waits this long (milliseconds), so overlap is visible.
    pub delay_ms: AtomicUsize,
}

impl PeerState {
    pub fn set(&self, node: &str, on: bool) {
        self.on
            .lock()
            .expect("peer state")
            .insert(node.to_owned(), on);
    }

    pub fn is_on(&self, node: &str) -> bool {
        self.on
            .lock()
            .expect("peer state")
            .get(node)
            .copied()
            .unwrap_or(false)
    }
}

pub struct HttpPeer {
    pub address: SocketAddr,
    pub state: Arc<PeerState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl HttpPeer {
    pub async fn start() -> HttpPeer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the HTTP peer");
        let address = listener.local_addr().expect("peer address");
        let state = Arc::new(PeerState::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = shared.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        HttpPeer {
            address,
            state,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }
}

struct InFlight<'a>(&'a PeerState);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn handle(
    state: Arc<PeerState>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    state.requests.fetch_add(1, Ordering::SeqCst);
    let _guard = InFlight(&state);
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let path = request.uri().path().to_owned();
    let method = request.method().to_string();
    state.log.lock().expect("peer log").push((
        method.clone(),
        path.clone(),
        header("authorization"),
        header("system_id"),
    ));
    let delay = state.delay_ms.load(Ordering::SeqCst);
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay as u64)).await;
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, body) = match (method.as_str(), parts.as_slice()) {
        (_, ["node", "hang", ..]) => {
            // A hung BMC: accepts the connection, never answers.
            std::future::pending::<()>().await;
            (StatusCode::OK, String::new())
        }
        (_, ["node", "locked", ..])
            if header("authorization").as_deref() != Some("Bearer sesame") =>
        {
            (StatusCode::UNAUTHORIZED, "token required".to_owned())
        }
        ("POST", ["node", node, "on"]) => {
            state.set(node, true);
            (StatusCode::OK, "{}".to_owned())
        }
        ("POST", ["node", node, "off"]) => {
            state.set(node, false);
            (StatusCode::OK, "{}".to_owned())
        }
        ("GET", ["node", node, "status"]) => {
            let word = if state.is_on(node) {
                "running"
            } else {
                "stopped"
            };
            (StatusCode::OK, format!("{{\"status\": \"{word}\"}}"))
        }
        _ => (StatusCode::NOT_FOUND, "no such thing".to_owned()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    Ok(response)
}
