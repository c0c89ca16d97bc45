//! The region's end of the rack link: the `/MAAS/rpc/link` upgrade, the handshake, one
//! session per connected rack (registration, boot decisions, leases, services), the DHCP
//! configuration pushed to each rack whenever the network changes, and the heartbeat that
//! tells other region processes which racks this one holds.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use maas_rpc::{
    BoxFuture, Call, DhcpConfig, Handler, Outcome, Peer, Push, Registered, RemoteError,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::error::ServiceError;
use crate::region::Region;
use crate::service::{boot, lifecycle, racks};

/// A rack silent for this long is dropped (it pings every 30 s).
const IDLE: Duration = Duration::from_secs(90);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Network changes arriving within this window are sent as one configuration.
const DEBOUNCE: Duration = Duration::from_millis(200);
/// Configurations are also rebuilt this often, to catch changes made through another
/// region process.
const RESYNC: Duration = Duration::from_secs(30);
/// Most lease updates taken in one call.
const MAX_LEASES_PER_CALL: usize = 10_000;

/// The racks connected to this region process.
pub struct RackHub {
    name: String,
    sessions: Mutex<HashMap<i64, Vec<(u64, Peer)>>>,
    next_session: AtomicU64,
    network: watch::Sender<u64>,
}

impl Default for RackHub {
    fn default() -> RackHub {
        RackHub::new()
    }
}

impl RackHub {
    pub fn new() -> RackHub {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "region".to_owned());
        let (network, _) = watch::channel(0);
        RackHub {
            name: format!("{host}:pid={}", std::process::id()),
            sessions: Mutex::new(HashMap::new()),
            next_session: AtomicU64::new(1),
            network,
        }
    }

    /// This process's name for itself (`hostname:pid=N`, as MAAS names event loops).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Something racks serve may have changed; every session rebuilds its DHCP configuration.
    pub fn network_changed(&self) {
        self.network.send_modify(|generation| *generation += 1);
    }

    /// Racks with at least one live session here, by node id.
    pub fn connected(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.lock().keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// A live link to the rack, if this process holds one.
    pub fn peer(&self, rack_id: i64) -> Option<Peer> {
        self.lock()
            .get(&rack_id)
            .and_then(|sessions| sessions.iter().rev().find(|(_, p)| !p.is_closed()))
            .map(|(_, peer)| peer.clone())
    }

    /// Forgets a rack's sessions (it was deleted).
    pub fn disconnect(&self, rack_id: i64) {
        self.lock().remove(&rack_id);
    }

    fn add(&self, rack_id: i64, session: u64, peer: Peer) {
        self.lock()
            .entry(rack_id)
            .or_default()
            .push((session, peer));
    }

    /// Removes a session; true when it was the rack's last one here.
    fn remove(&self, rack_id: i64, session: u64) -> bool {
        let mut sessions = self.lock();
        let Some(list) = sessions.get_mut(&rack_id) else {
            return true;
        };
        list.retain(|(id, _)| *id != session);
        if list.is_empty() {
            sessions.remove(&rack_id);
            return true;
        }
        false
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Vec<(u64, Peer)>>> {
        // The map stays whole even if a holder panicked.
        self.sessions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn text(status: StatusCode, body: &str) -> Response {
    (status, body.to_owned()).into_response()
}

/// `GET /MAAS/rpc/`: the region processes racks may connect to (MAAS's `eventloops` shape;
/// our racks link over the HTTP port, so each entry names it).
pub fn eventloops(region: &Region, host: &str) -> Response {
    let body = serde_json::json!({
        "eventloops": { region.hub.name(): [[host, 0]] }
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// `GET /MAAS/rpc/link` with `Upgrade: maas-rack-link/1`: switches the connection to the
/// rack link and serves it in the background.
pub async fn upgrade(region: Arc<Region>, mut request: Request) -> Response {
    let wants = request
        .headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(maas_rpc::UPGRADE_TOKEN));
    if !wants {
        return text(
            StatusCode::BAD_REQUEST,
            &format!(
                "This endpoint is the rack link; send Upgrade: {}",
                maas_rpc::UPGRADE_TOKEN
            ),
        );
    }
    if region.config.secret.is_none() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "This region has no shared secret, so racks cannot connect.",
        );
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => serve_session(region, TokioIo::new(upgraded)).await,
            Err(error) => tracing::warn!(%error, "rack link upgrade failed"),
        }
    });
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(
        header::UPGRADE,
        HeaderValue::from_static(maas_rpc::UPGRADE_TOKEN),
    );
    response
}

/// Serves one rack link from the handshake until it closes.
pub async fn serve_session<S>(region: Arc<Region>, mut stream: S)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let Some(secret) = region.config.secret.clone() else {
        return;
    };
    let name = region.hub.name().to_owned();
    match tokio::time::timeout(
        HANDSHAKE_TIMEOUT,
        maas_rpc::region_handshake(&mut stream, &secret, &name),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "rack link refused");
            return;
        }
        Err(_) => {
            tracing::warn!("rack link refused: no handshake within 10 s");
            return;
        }
    }
    let session = region.hub.next_session.fetch_add(1, Ordering::Relaxed);
    let (peer_tx, peer_rx) = watch::channel(None);
    let handler = Session {
        inner: Arc::new(SessionInner {
            region: region.clone(),
            session,
            rack: Mutex::new(None),
            peer: peer_rx,
        }),
    };
    let (peer, task) = maas_rpc::run(stream, Arc::new(handler.clone()), IDLE);
    let _ = peer_tx.send(Some(peer));
    let ended = task.await;
    let rack = handler.inner.rack().take();
    if let Some(rack) = rack {
        if region.hub.remove(rack.id, session)
            && let Err(error) = region.store.drop_rack_link(rack.id, &name).await
        {
            tracing::warn!(system_id = %rack.system_id, %error, "forgetting a rack link failed");
        }
        match ended {
            Ok(Ok(())) => tracing::info!(system_id = %rack.system_id, "rack disconnected"),
            Ok(Err(error)) => {
                tracing::info!(system_id = %rack.system_id, reason = %error, "rack disconnected")
            }
            Err(error) => {
                tracing::warn!(system_id = %rack.system_id, %error, "rack session task failed")
            }
        }
    }
}

#[derive(Clone, Debug)]
struct RackRef {
    id: i64,
    system_id: String,
}

struct SessionInner {
    region: Arc<Region>,
    session: u64,
    rack: Mutex<Option<RackRef>>,
    peer: watch::Receiver<Option<Peer>>,
}

impl SessionInner {
    fn rack(&self) -> std::sync::MutexGuard<'_, Option<RackRef>> {
        self.rack
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn peer(&self) -> Option<Peer> {
        let mut peer = self.peer.clone();
        let found = peer.wait_for(Option::is_some).await.ok()?;
        found.clone()
    }

    fn registered(&self) -> Result<RackRef, RemoteError> {
        self.rack().clone().ok_or_else(|| {
            RemoteError::new("NotRegistered", "register the rack before anything else")
        })
    }

    async fn handle(self: Arc<Self>, call: Call) -> Result<Outcome, RemoteError> {
        let region = &self.region;
        match call {
            Call::Ping => Ok(Outcome::Pong),
            Call::Register(registration) => {
                let node = racks::register(region, &registration)
                    .await
                    .map_err(remote)?;
                let rack = RackRef {
                    id: node.id,
                    system_id: node.system_id.clone(),
                };
                let previous = self.rack().replace(rack.clone());
                if let Some(previous) = previous
                    && previous.id != rack.id
                {
                    region.hub.remove(previous.id, self.session);
                }
                let Some(peer) = self.peer().await else {
                    return Err(RemoteError::new("Closed", "the link closed"));
                };
                region.hub.add(rack.id, self.session, peer.clone());
                region
                    .store
                    .region_heartbeat(region.hub.name(), &[rack.id], region.now())
                    .await
                    .map_err(|e| remote(e.into()))?;
                tracing::info!(system_id = %rack.system_id, hostname = %node.hostname, version = %registration.version, "rack connected");
                tokio::spawn(push_dhcp(region.clone(), rack.system_id.clone(), peer));
                Ok(Outcome::Registered(Registered {
                    system_id: rack.system_id,
                    region: region.hub.name().to_owned(),
                }))
            }
            Call::BootConfig(request) => {
                let rack = self.registered()?;
                let reply = boot::boot_config(region, &rack.system_id, &request)
                    .await
                    .map_err(remote)?;
                Ok(Outcome::BootConfig(reply.map(Box::new)))
            }
            Call::Leases(updates) => {
                let rack = self.registered()?;
                if updates.len() > MAX_LEASES_PER_CALL {
                    return Err(RemoteError::new(
                        "TooMany",
                        format!("at most {MAX_LEASES_PER_CALL} leases per call"),
                    ));
                }
                let applied = racks::record_leases(region, &rack.system_id, &updates)
                    .await
                    .map_err(remote)?;
                tracing::debug!(system_id = %rack.system_id, leases = updates.len(), applied, "leases recorded");
                Ok(Outcome::Done)
            }
            Call::Services(services) => {
                let rack = self.registered()?;
                let node = region
                    .store
                    .node_by_system_id(&rack.system_id)
                    .await
                    .map_err(|e| remote(e.into()))?
                    .ok_or_else(|| RemoteError::new("NoSuchNode", "this rack was deleted"))?;
                racks::record_services(region, &node, &services)
                    .await
                    .map_err(remote)?;
                Ok(Outcome::Done)
            }
            Call::MarkNodeFailed {
                system_id,
                error_description,
            } => {
                self.registered()?;
                let node = region
                    .store
                    .node_by_system_id(&system_id)
                    .await
                    .map_err(|e| remote(e.into()))?
                    .ok_or_else(|| {
                        RemoteError::new("NoSuchNode", format!("no node {system_id}"))
                    })?;
                lifecycle::mark_failed(region, &node, &error_description, false)
                    .await
                    .map_err(remote)?;
                Ok(Outcome::Done)
            }
        }
    }
}

#[derive(Clone)]
struct Session {
    inner: Arc<SessionInner>,
}

impl Handler for Session {
    fn call(&self, call: Call) -> BoxFuture<Outcome> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let name = call.name();
            match inner.handle(call).await {
                Ok(outcome) => outcome,
                Err(error) => {
                    tracing::debug!(call = name, code = %error.code, message = %error.message, "rack call refused");
                    Outcome::Error(error)
                }
            }
        })
    }

    fn push(&self, push: Push) {
        tracing::debug!(?push, "ignoring a push from a rack");
    }
}

/// MAAS-style error names for a rack.
fn remote(error: ServiceError) -> RemoteError {
    match error {
        ServiceError::NotFound(message) => RemoteError::new("NoSuchNode", message),
        ServiceError::Conflict(message) => RemoteError::new("Conflict", message),
        ServiceError::BadRequest(message) => RemoteError::new("BadRequest", message),
        ServiceError::Store(error) => {
            tracing::error!(%error, "store error while serving a rack");
            RemoteError::new("InternalError", "the region could not reach its database")
        }
        other => RemoteError::new("Refused", other.to_string()),
    }
}

/// Sends the rack its DHCP configuration now and again whenever it changes.
async fn push_dhcp(region: Arc<Region>, system_id: String, peer: Peer) {
    let mut changes = region.hub.network.subscribe();
    let mut last: Option<DhcpConfig> = None;
    loop {
        let node = match region.store.node_by_system_id(&system_id).await {
            Ok(Some(node)) => Some(node),
            Ok(None) => break,
            Err(error) => {
                tracing::warn!(%system_id, %error, "reading the rack for its DHCP configuration failed");
                None
            }
        };
        if let Some(node) = node {
            match racks::dhcp_config_for(&region, &node).await {
                Ok(config) if last.as_ref() != Some(&config) => {
                    let (subnets, hosts) = (config.subnets.len(), config.hosts.len());
                    if peer.push(Push::Dhcp(config.clone())).await.is_err() {
                        break;
                    }
                    tracing::info!(%system_id, interfaces = config.interfaces.len(), subnets, hosts, "DHCP configuration sent to rack");
                    last = Some(config);
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(%system_id, %error, "building the rack's DHCP configuration failed")
                }
            }
        }
        tokio::select! {
            _ = peer.closed() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    break;
                }
                tokio::time::sleep(DEBOUNCE).await;
                changes.borrow_and_update();
            }
            _ = tokio::time::sleep(RESYNC) => {}
        }
    }
}

/// Every `interval`, tells the store this process is alive and which racks it holds.
pub async fn heartbeat(region: Arc<Region>, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        let racks = region.hub.connected();
        if let Err(error) = region
            .store
            .region_heartbeat(region.hub.name(), &racks, region.now())
            .await
        {
            tracing::warn!(%error, "region heartbeat failed");
        }
    }
}
