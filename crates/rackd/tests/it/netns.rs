//! The whole rack in a network namespace: the fake region (on the namespace's loopback)
//! pushes a DHCP configuration for the veth subnet, busybox udhcpc in a second namespace
//! gets a lease from its dynamic range, and the lease reaches the region.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use maas_rackd::RackConfig;
use maas_rpc::{DhcpConfig, DhcpInterface, DhcpSubnet, LeaseAction};
use tokio::sync::oneshot;

use crate::fake_region::{FakeRegion, State};
use crate::link::{fast_timing, secret};
use crate::support::{Netns, require_netns, run_with_timeout, veth};

const SCRIPT: &str = "#!/bin/sh\n[ \"$1\" = bound ] || exit 0\nenv | sort > \"$OUT\"\n";
const CLIENT_MAC: &str = "52:54:00:63:00:01";

fn pushed_config() -> DhcpConfig {
    DhcpConfig {
        interfaces: vec![DhcpInterface {
            name: "r0".into(),
            address: "10.63.0.1".parse().expect("ip"),
        }],
        subnets: vec![DhcpSubnet {
            cidr: "10.63.0.0/24".into(),
            router: Some("10.63.0.1".parse().expect("ip")),
            dns_servers: vec!["10.63.0.1".parse().expect("ip")],
            domain_name: Some("maas.test".into()),
            lease_time: 600,
            mtu: None,
            ranges: vec![(
                "10.63.0.100".parse().expect("ip"),
                "10.63.0.120".parse().expect("ip"),
            )],
            server_ip: Some("10.63.0.1".parse().expect("ip")),
        }],
        hosts: vec![],
    }
}

#[test]
fn the_rack_answers_udhcpc_from_the_pushed_range_and_reports_the_lease() {
    if !require_netns(&["busybox"]) {
        return;
    }
    let rack_ns = Netns::new("rack");
    let client_ns = Netns::new("cli");
    veth(&rack_ns, "r0", "10.63.0.1/24", &client_ns, "c0", "");
    let data = tempfile::tempdir().expect("tempdir");
    let data_dir = data.path().to_owned();

    // The region and the rack run on a thread inside the rack's namespace.
    let (ready_tx, ready) = mpsc::channel::<Arc<State>>();
    let (stop, stopped) = oneshot::channel::<()>();
    let ns_path = rack_ns.path();
    let thread = std::thread::spawn(move || {
        let file = std::fs::File::open(&ns_path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        // Built after setns, so the runtime's threads are in the namespace too.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let region = FakeRegion::start(secret()).await;
            region
                .state
                .settings
                .lock()
                .expect("settings")
                .dhcp_on_register = Some(pushed_config());
            let mut config = RackConfig::new(data_dir, vec![region.url()]);
            config.hostname = "netns-rack".into();
            config.tftp_listen = vec!["127.0.0.1:0".parse().expect("addr")];
            config.http_listen = "127.0.0.1:0".parse().expect("addr");
            config.link = fast_timing();
            config.server_retry = Duration::from_millis(200);
            let rack = maas_rackd::start(config, secret())
                .await
                .expect("rack starts");
            ready_tx.send(Arc::clone(&region.state)).expect("report");
            let _ = stopped.await;
            rack.stop().await;
            drop(region);
        });
    });
    let state = ready
        .recv_timeout(Duration::from_secs(20))
        .expect("rack started");
    state.wait_blocking(
        "dhcpd serving the pushed interface",
        Duration::from_secs(20),
        |s| {
            s.last_services().is_some_and(|services| {
                services
                    .iter()
                    .any(|x| x.name == "dhcpd" && x.status == "running")
            })
        },
    );
    let registration = state.registrations().remove(0);
    assert!(
        registration
            .interfaces
            .iter()
            .any(|i| i.name == "r0" && i.addresses.contains(&"10.63.0.1/24".to_owned())),
        "interfaces discovered in the namespace: {:?}",
        registration.interfaces
    );

    let script = data.path().join("udhcpc.sh");
    std::fs::write(&script, SCRIPT).expect("script");
    run_with_timeout(
        Command::new("chmod").arg("+x").arg(&script),
        Duration::from_secs(5),
    );
    client_ns.ip(&["link", "set", "c0", "down"]);
    client_ns.ip(&["link", "set", "c0", "address", CLIENT_MAC]);
    client_ns.ip(&["link", "set", "c0", "up"]);
    let out = data.path().join("lease.env");
    let mut command = client_ns.command("env");
    command
        .arg(format!("OUT={}", out.display()))
        .args([
            "busybox", "udhcpc", "-i", "c0", "-f", "-q", "-n", "-t", "10", "-T", "1", "-A", "1",
        ])
        .arg("-s")
        .arg(&script);
    let output = run_with_timeout(&mut command, Duration::from_secs(60));
    assert!(
        output.status.success(),
        "udhcpc got no lease: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let lease: HashMap<String, String> = std::fs::read_to_string(&out)
        .expect("lease written")
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let address: std::net::Ipv4Addr = lease
        .get("ip")
        .and_then(|ip| ip.parse().ok())
        .unwrap_or_else(|| panic!("no ip in {lease:?}"));
    assert!(
        (100..=120).contains(&address.octets()[3]) && address.octets()[..3] == [10, 63, 0],
        "{lease:?}"
    );
    assert_eq!(lease.get("serverid").map(String::as_str), Some("10.63.0.1"));
    assert_eq!(lease.get("domain").map(String::as_str), Some("maas.test"));

    state.wait_blocking(
        "the lease reported to the region",
        Duration::from_secs(20),
        |s| {
            s.leases().iter().any(|l| {
                l.action == LeaseAction::Commit
                    && l.mac == CLIENT_MAC
                    && l.ip == std::net::IpAddr::V4(address)
            })
        },
    );
    eprintln!("udhcpc got {address} from the rack; the region got the lease");
    let _ = stop.send(());
    thread.join().expect("rack thread");
}
