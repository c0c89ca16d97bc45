//! `RegionLink` against the fake region over real TCP on loopback.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use maas_dhcp_wire::engine::LeaseEvent;
use maas_rack::{
    BackendError, BootBackend, BootRequest, InterfaceSource, LinkTiming, Protocol, RegionLink,
    RegionLinkConfig, ServiceRegistry,
};
use maas_rpc::{
    Call, DhcpConfig, DhcpInterface, DhcpSubnet, LeaseAction, Outcome, RackInterface, RemoteError,
    Secret,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::fake_region::{ASSIGNED_SYSTEM_ID, FakeRegion, boot_reply};

const WAIT: Duration = Duration::from_secs(10);

pub fn secret() -> Secret {
    Secret::from_hex("00112233445566778899aabbccddeeff").expect("hex")
}

pub fn fast_timing() -> LinkTiming {
    LinkTiming {
        dial_timeout: Duration::from_secs(2),
        call_timeout: Duration::from_secs(2),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        idle: Duration::from_secs(5),
        services_interval: Duration::from_millis(300),
        lease_flush_interval: Duration::from_millis(50),
        boot_config_timeout: Duration::from_secs(2),
        backoff_min: Duration::from_millis(50),
        backoff_max: Duration::from_millis(400),
        refused_retry: Duration::from_millis(400),
    }
}

fn interfaces() -> InterfaceSource {
    Arc::new(|| {
        vec![RackInterface {
            name: "eth0".into(),
            kind: "physical".into(),
            mac_address: Some("52:54:00:12:34:56".into()),
            parents: vec![],
            vid: None,
            enabled: true,
            mtu: 1500,
            addresses: vec!["10.0.0.2/24".into()],
        }]
    })
}

/// A running link; dropping it stops it.
struct Running {
    link: RegionLink,
    services: Arc<ServiceRegistry>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Running {
    fn start(urls: Vec<String>, dir: &Path, secret: Secret) -> Running {
        let mut config = RegionLinkConfig::new(urls, secret, dir.to_owned());
        config.hostname = "rack-under-test".into();
        config.timing = fast_timing();
        let services = Arc::new(ServiceRegistry::new());
        services.set_running("rackd");
        let link = RegionLink::new(config, Arc::clone(&services), interfaces()).expect("link");
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(link.clone().run(async move {
            let _ = stopped.await;
        }));
        Running {
            link,
            services,
            stop: Some(stop),
            task: Some(task),
        }
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("link task");
        }
    }

    async fn wait_connected(&self, count: usize) {
        let mut connected = self.link.connected();
        tokio::time::timeout(WAIT, connected.wait_for(|c| *c == count))
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {count} connected region(s)"))
            .expect("link alive");
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

fn dhcp_config() -> DhcpConfig {
    DhcpConfig {
        interfaces: vec![DhcpInterface {
            name: "eth0".into(),
            address: "10.0.0.2".parse().expect("ip"),
        }],
        subnets: vec![
            DhcpSubnet {
                cidr: "10.0.0.0/24".into(),
                router: Some("10.0.0.1".parse().expect("ip")),
                dns_servers: vec![],
                domain_name: Some("maas".into()),
                lease_time: 600,
                mtu: None,
                ranges: vec![(
                    "10.0.0.100".parse().expect("ip"),
                    "10.0.0.150".parse().expect("ip"),
                )],
                server_ip: Some("10.0.0.2".parse().expect("ip")),
            },
            DhcpSubnet {
                cidr: "bogus".into(),
                router: None,
                dns_servers: vec![],
                domain_name: None,
                lease_time: 600,
                mtu: None,
                ranges: vec![],
                server_ip: None,
            },
        ],
        hosts: vec![],
    }
}

fn commit(n: u8) -> LeaseEvent {
    LeaseEvent::Commit {
        mac: format!("52:54:00:00:00:{n:02x}").parse().expect("mac"),
        ip: std::net::Ipv4Addr::new(10, 0, 0, 100 + n),
        hostname: None,
        start: 1_000 + u64::from(n),
        lease_time: 600,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registers_persists_the_system_id_and_reuses_it_after_a_restart() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    rack.wait_connected(1).await;
    let first = region.state.registrations();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].system_id, None);
    assert_eq!(first[0].hostname, "rack-under-test");
    assert_eq!(first[0].url, region.url());
    assert_eq!(first[0].version, env!("CARGO_PKG_VERSION"));
    assert_eq!(first[0].interfaces[0].name, "eth0");
    assert_eq!(rack.link.system_id().as_deref(), Some(ASSIGNED_SYSTEM_ID));
    let saved = std::fs::read_to_string(dir.path().join("system_id")).expect("saved");
    assert_eq!(saved.trim(), ASSIGNED_SYSTEM_ID);
    // Right after registering the rack reports its services.
    region
        .wait("services", WAIT, |s| {
            s.last_services()
                .is_some_and(|services| services.iter().any(|x| x.name == "rackd"))
        })
        .await;
    rack.stop().await;

    let again = Running::start(vec![region.url()], dir.path(), secret());
    region
        .wait("second registration", WAIT, |s| {
            s.registrations().len() == 2
        })
        .await;
    assert_eq!(
        region.state.registrations()[1].system_id.as_deref(),
        Some(ASSIGNED_SYSTEM_ID)
    );
    again.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dhcp_push_reaches_the_watch_channel_and_is_served_after_a_restart_without_region() {
    let region = FakeRegion::start(secret()).await;
    region
        .state
        .settings
        .lock()
        .expect("settings")
        .dhcp_on_register = Some(dhcp_config());
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    let mut changes = rack.link.dhcp_config();
    assert!(
        changes.borrow().interfaces.is_empty(),
        "serves nobody before any config"
    );
    tokio::time::timeout(WAIT, changes.wait_for(|c| !c.interfaces.is_empty()))
        .await
        .expect("DHCP config pushed")
        .expect("alive");
    let served = changes.borrow().clone();
    assert_eq!(served.interfaces[0].name, "eth0");
    // The bogus subnet is skipped, the good one served.
    assert_eq!(served.engine.subnets.len(), 1);
    assert_eq!(served.engine.subnets[0].ranges.len(), 1);
    // A later push replaces the configuration.
    let mut emptied = dhcp_config();
    emptied.interfaces.clear();
    for peer in region.state.live_peers() {
        peer.push(maas_rpc::Push::Dhcp(emptied.clone()))
            .await
            .expect("push");
    }
    tokio::time::timeout(WAIT, changes.wait_for(|c| c.interfaces.is_empty()))
        .await
        .expect("replaced")
        .expect("alive");
    for peer in region.state.live_peers() {
        peer.push(maas_rpc::Push::Dhcp(dhcp_config()))
            .await
            .expect("push");
    }
    tokio::time::timeout(WAIT, changes.wait_for(|c| !c.interfaces.is_empty()))
        .await
        .expect("pushed again")
        .expect("alive");
    rack.stop().await;
    drop(region.stop());

    // Restarted while the region is down: it serves what it served.
    let restarted = Running::start(vec!["http://127.0.0.1:1/MAAS".into()], dir.path(), secret());
    let config = restarted.link.dhcp_config().borrow().clone();
    assert_eq!(config.interfaces.len(), 1);
    assert_eq!(config.engine.subnets.len(), 1);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_region_pings_and_refuses_unknown_calls() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    rack.wait_connected(1).await;
    let peer = region.state.live_peers().pop().expect("a link");
    let t = Duration::from_secs(2);
    assert_eq!(peer.call(Call::Ping, t).await.expect("ping"), Outcome::Pong);
    match peer.call(Call::Leases(vec![]), t).await.expect("call") {
        Outcome::Error(RemoteError { code, .. }) => assert_eq!(code, "Unsupported"),
        other => panic!("unexpected {other:?}"),
    }
    // And the rack pings the region on its own.
    region
        .wait("rack pings", WAIT, |s| {
            s.calls().iter().filter(|c| **c == Call::Ping).count() >= 2
        })
        .await;
    rack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_region_restarts_and_delivers_leases_made_while_it_was_down() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    rack.wait_connected(1).await;
    rack.link.lease_changed(&commit(1));
    region
        .wait("first lease", WAIT, |s| s.leases().len() == 1)
        .await;

    let (address, state) = region.stop();
    rack.wait_connected(0).await;
    let down_at = Instant::now();
    for n in 2..=4 {
        rack.link.lease_changed(&commit(n));
    }
    // A DECLINE is not reported, as in MAAS.
    rack.link.lease_changed(&LeaseEvent::Decline {
        mac: "52:54:00:00:00:09".parse().expect("mac"),
        ip: "10.0.0.109".parse().expect("ip"),
        at: 5,
        until: 6,
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rack.link.pending_leases(), 3);

    let region = FakeRegion::start_on(address, secret(), state).await;
    rack.wait_connected(1).await;
    let reconnect = down_at.elapsed();
    region
        .wait("leases after reconnect", WAIT, |s| s.leases().len() == 4)
        .await;
    let leases = region.state.leases();
    let ips: Vec<String> = leases.iter().map(|l| l.ip.to_string()).collect();
    assert_eq!(
        ips,
        ["10.0.0.101", "10.0.0.102", "10.0.0.103", "10.0.0.104"]
    );
    assert!(leases.iter().all(|l| l.action == LeaseAction::Commit));
    assert_eq!(rack.link.pending_leases(), 0);
    assert_eq!(region.state.registrations().len(), 2);
    eprintln!("reconnected {reconnect:?} after the region went down");
    rack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_batches_are_retried_until_acknowledged() {
    let region = FakeRegion::start(secret()).await;
    region
        .state
        .settings
        .lock()
        .expect("settings")
        .failing_leases = 2;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    rack.wait_connected(1).await;
    for n in 1..=3 {
        rack.link.lease_changed(&commit(n));
    }
    region
        .wait("three Leases calls", WAIT, |s| {
            s.calls()
                .iter()
                .filter(|c| matches!(c, Call::Leases(_)))
                .count()
                >= 3
        })
        .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Every attempt carried the same changes; the last one was acknowledged.
    let batches: Vec<Vec<maas_rpc::LeaseUpdate>> = region
        .state
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Leases(batch) => Some(batch),
            _ => None,
        })
        .collect();
    assert_eq!(batches.len(), 3, "{batches:#?}");
    assert!(batches.iter().all(|b| b.len() == 3 && *b == batches[0]));
    assert_eq!(rack.link.pending_leases(), 0);
    rack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_is_refused_and_retried_slowly() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let wrong = Secret::from_hex("ffeeddccbbaa99887766554433221100").expect("hex");
    let rack = Running::start(vec![region.url()], dir.path(), wrong);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let attempts = region.state.upgrades.load(Ordering::SeqCst);
    // With a 400 ms (±25%) wait after each refusal: about 4 attempts in 1.5 s; the
    // 50 ms backoff of an outage would allow many more.
    assert!((1..=6).contains(&attempts), "{attempts} attempts");
    assert_eq!(*rack.link.connected().borrow(), 0);
    assert!(region.state.registrations().is_empty());
    assert_eq!(rack.link.system_id(), None);
    eprintln!("{attempts} attempts in 1.5 s with a wrong secret");
    rack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boot_config_round_trip_none_refusal_and_outage() {
    let region = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    rack.wait_connected(1).await;
    let request = BootRequest {
        mac: Some("52:54:00:aa:bb:cc".parse().expect("mac")),
        hardware_uuid: None,
        arch: Some("amd64".into()),
        subarch: None,
        local_ip: "10.0.0.2".parse().expect("ip"),
        remote_ip: "10.0.0.100".parse().expect("ip"),
        bios_boot_method: "pxe",
        protocol: Protocol::Tftp,
    };
    // The region has nothing for this machine.
    assert_eq!(rack.link.boot_config(&request).await.expect("answer"), None);
    let asked = region
        .state
        .calls()
        .into_iter()
        .find_map(|c| match c {
            Call::BootConfig(r) => Some(r),
            _ => None,
        })
        .expect("asked");
    assert_eq!(asked.mac.as_deref(), Some("52:54:00:aa:bb:cc"));
    assert_eq!(
        (asked.bios_boot_method.as_str(), asked.protocol.as_str()),
        ("pxe", "tftp")
    );

    region.state.settings.lock().expect("settings").boot_config =
        Outcome::BootConfig(Some(Box::new(boot_reply())));
    let params = rack
        .link
        .boot_config(&request)
        .await
        .expect("answer")
        .expect("params");
    assert_eq!(params.hostname, "node1");
    assert_eq!(params.fs_host, request.local_ip);
    assert_eq!(params.http_port, 5248);
    assert!(
        params
            .kernel_url()
            .starts_with("http://10.0.0.2:5248/images/abc1234/")
    );

    region.state.settings.lock().expect("settings").boot_config =
        Outcome::Error(RemoteError::new("NoSuchNode", "gone"));
    match rack.link.boot_config(&request).await {
        Err(BackendError::Refused { reason }) => assert!(reason.contains("NoSuchNode"), "{reason}"),
        other => panic!("unexpected {other:?}"),
    }

    drop(region.stop());
    rack.wait_connected(0).await;
    assert!(matches!(
        rack.link.boot_config(&request).await,
        Err(BackendError::Unreachable { .. })
    ));
    rack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_whose_ping_goes_unanswered_is_dropped_and_dialled_again() {
    let region = FakeRegion::start(secret()).await;
    region.state.settings.lock().expect("settings").ignore_pings = true;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![region.url()], dir.path(), secret());
    // Ping every 200 ms with a 300 ms timeout: the link is given up and registered again.
    region
        .wait("re-registration after a failed ping", WAIT, |s| {
            s.registrations().len() >= 2
        })
        .await;
    region.state.settings.lock().expect("settings").ignore_pings = false;
    rack.wait_connected(1).await;
    rack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_to_every_region_and_reports_service_changes() {
    let first = FakeRegion::start(secret()).await;
    let second = FakeRegion::start(secret()).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rack = Running::start(vec![first.url(), second.url()], dir.path(), secret());
    rack.wait_connected(2).await;
    rack.services
        .set_dead("tftp", "cannot bind UDP 0.0.0.0:69: permission denied");
    for region in [&first, &second] {
        region
            .wait("tftp reported dead", WAIT, |s| {
                s.last_services().is_some_and(|services| {
                    services.iter().any(|x| {
                        x.name == "tftp"
                            && x.status == "dead"
                            && x.status_info == "cannot bind UDP 0.0.0.0:69: permission denied"
                    })
                })
            })
            .await;
    }
    // One region going away leaves the other linked.
    drop(second.stop());
    rack.wait_connected(1).await;
    rack.stop().await;
}
