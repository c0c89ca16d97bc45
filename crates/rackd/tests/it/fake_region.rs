//! A test double of the region's side of the link: it accepts the HTTP upgrade (101 written
//! by hand), runs `region_handshake` and `run`, records every call and answers them from
//! settings the test controls.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use maas_rpc::{
    BootConfigReply, Call, DhcpConfig, Handler, Outcome, Peer, Push, Registered, RemoteError,
    Secret,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

pub const ASSIGNED_SYSTEM_ID: &str = "abc678";

/// What the fake answers; change it while it runs.
pub struct Settings {
    /// Pushed right after each successful Register.
    pub dhcp_on_register: Option<DhcpConfig>,
    /// BootConfig answer.
    pub boot_config: Outcome,
    /// Leases calls answered with an error before the first `Done`.
    pub failing_leases: usize,
    /// Ping calls from the rack are never answered.
    pub ignore_pings: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            dhcp_on_register: None,
            boot_config: Outcome::BootConfig(None),
            failing_leases: 0,
            ignore_pings: false,
        }
    }
}

#[derive(Default)]
pub struct State {
    pub calls: Mutex<Vec<Call>>,
    pub settings: Mutex<Settings>,
    pub peers: Mutex<Vec<Peer>>,
    pub upgrades: AtomicUsize,
    pub handshake_failures: AtomicUsize,
}

impl State {
    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().expect("calls").clone()
    }

    pub fn registrations(&self) -> Vec<maas_rpc::Registration> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Register(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    pub fn leases(&self) -> Vec<maas_rpc::LeaseUpdate> {
        self.calls()
            .into_iter()
            .filter_map(|c| match c {
                Call::Leases(l) => Some(l),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn last_services(&self) -> Option<Vec<maas_rpc::ServiceState>> {
        self.calls().into_iter().rev().find_map(|c| match c {
            Call::Services(s) => Some(s),
            _ => None,
        })
    }

    pub fn live_peers(&self) -> Vec<Peer> {
        let mut peers = self.peers.lock().expect("peers");
        peers.retain(|p| !p.is_closed());
        peers.clone()
    }

    /// Polls `check` from a plain thread.
    pub fn wait_blocking(&self, what: &str, timeout: Duration, check: impl Fn(&State) -> bool) {
        let start = Instant::now();
        while !check(self) {
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; calls so far: {:#?}",
                self.calls()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

pub struct FakeRegion {
    pub address: SocketAddr,
    pub state: Arc<State>,
    accept: JoinHandle<()>,
    links: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl FakeRegion {
    pub async fn start(secret: Secret) -> FakeRegion {
        FakeRegion::start_on("127.0.0.1:0".parse().expect("addr"), secret, Arc::default()).await
    }

    /// Listens on `address` (a former fake's, to play a restarted region) with `state`.
    pub async fn start_on(address: SocketAddr, secret: Secret, state: Arc<State>) -> FakeRegion {
        // A stopped fake's listener goes away when its aborted task is dropped, which may be
        // a moment after `stop`.
        let start = Instant::now();
        let listener = loop {
            match TcpListener::bind(address).await {
                Ok(listener) => break listener,
                Err(error) if start.elapsed() < Duration::from_secs(5) => {
                    let _ = error;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(error) => panic!("binding the fake region on {address}: {error}"),
            }
        };
        let address = listener.local_addr().expect("addr");
        let links: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let accept_state = Arc::clone(&state);
        let accept_links = Arc::clone(&links);
        let accept = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&accept_state);
                let secret = secret.clone();
                let task = tokio::spawn(serve(stream, secret, state));
                accept_links.lock().expect("links").push(task);
            }
        });
        FakeRegion {
            address,
            state,
            accept,
            links,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/MAAS", self.address)
    }

    /// Stops listening and drops every link, like a region going down.
    pub fn stop(self) -> (SocketAddr, Arc<State>) {
        self.accept.abort();
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
        self.state.peers.lock().expect("peers").clear();
        (self.address, Arc::clone(&self.state))
    }

    pub async fn wait(&self, what: &str, timeout: Duration, check: impl Fn(&State) -> bool) {
        let start = Instant::now();
        while !check(&self.state) {
            assert!(
                start.elapsed() < timeout,
                "timed out waiting for {what}; calls so far: {:#?}",
                self.state.calls()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for FakeRegion {
    fn drop(&mut self) {
        self.accept.abort();
        if let Ok(mut links) = self.links.lock() {
            for link in links.drain(..) {
                link.abort();
            }
        }
    }
}

async fn serve(mut stream: TcpStream, secret: Secret, state: Arc<State>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte).await {
            Ok(1) => head.push(byte[0]),
            _ => return,
        }
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    if !text.starts_with("get /maas/rpc/link http/1.1")
        || !text.contains("upgrade: maas-rack-link/1")
    {
        let _ = stream
            .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
            .await;
        return;
    }
    state.upgrades.fetch_add(1, Ordering::SeqCst);
    if stream
        .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: maas-rack-link/1\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    if maas_rpc::region_handshake(&mut stream, &secret, "fake-region:pid=1")
        .await
        .is_err()
    {
        state.handshake_failures.fetch_add(1, Ordering::SeqCst);
        return;
    }
    let handler = Arc::new(FakeHandler {
        state: Arc::clone(&state),
        peer: Arc::new(OnceLock::new()),
    });
    let peer_slot = Arc::clone(&handler.peer);
    let (peer, task) = maas_rpc::run(stream, handler, Duration::from_secs(60));
    let _ = peer_slot.set(peer.clone());
    state.peers.lock().expect("peers").push(peer);
    // Aborting this task (stop) aborts the link with it.
    struct AbortOnDrop(JoinHandle<Result<(), maas_rpc::LinkError>>);
    impl Drop for AbortOnDrop {
        fn drop(&mut self) {
            self.0.abort();
        }
    }
    let mut guard = AbortOnDrop(task);
    let _ = (&mut guard.0).await;
}

struct FakeHandler {
    state: Arc<State>,
    peer: Arc<OnceLock<Peer>>,
}

impl Handler for FakeHandler {
    fn call(&self, call: Call) -> maas_rpc::BoxFuture<Outcome> {
        self.state.calls.lock().expect("calls").push(call.clone());
        let mut settings = self.state.settings.lock().expect("settings");
        let outcome = match &call {
            Call::Ping if settings.ignore_pings => {
                return Box::pin(std::future::pending());
            }
            Call::Ping => Outcome::Pong,
            Call::Register(registration) => {
                if let Some(config) = settings.dhcp_on_register.clone() {
                    let peer = Arc::clone(&self.peer);
                    tokio::spawn(async move {
                        for _ in 0..100 {
                            if let Some(peer) = peer.get() {
                                let _ = peer.push(Push::Dhcp(config)).await;
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    });
                }
                Outcome::Registered(Registered {
                    system_id: registration
                        .system_id
                        .clone()
                        .unwrap_or_else(|| ASSIGNED_SYSTEM_ID.to_owned()),
                    region: "fake-region:pid=1".into(),
                })
            }
            Call::BootConfig(_) => settings.boot_config.clone(),
            Call::Leases(_) if settings.failing_leases > 0 => {
                settings.failing_leases -= 1;
                Outcome::Error(RemoteError::new("Busy", "try again"))
            }
            Call::Leases(_) | Call::Services(_) | Call::MarkNodeFailed { .. } => Outcome::Done,
        };
        Box::pin(async move { outcome })
    }

    fn push(&self, _push: Push) {}
}

pub fn boot_reply() -> BootConfigReply {
    BootConfigReply {
        purpose: "commissioning".into(),
        arch: "amd64".into(),
        subarch: "generic".into(),
        osystem: "ubuntu".into(),
        release: "noble".into(),
        kernel: "abc1234/ubuntu/amd64/ga-24.04/noble/stable/boot-kernel".into(),
        initrd: "abc1234/ubuntu/amd64/ga-24.04/noble/stable/boot-initrd".into(),
        boot_dtb: None,
        xinstall_path: Some("abc1234/ubuntu/amd64/ga-24.04/noble/stable/squashfs".into()),
        hostname: "node1".into(),
        domain: "maas".into(),
        preseed_url: "http://10.0.0.2:5248/MAAS/metadata/latest/by-id/xyz234/?op=get_preseed"
            .into(),
        fs_host: "10.0.0.2".parse().expect("ip"),
        log_host: "10.0.0.2".into(),
        log_port: 5247,
        extra_opts: String::new(),
        ephemeral_opts: String::new(),
        system_id: Some("xyz234".into()),
    }
}
