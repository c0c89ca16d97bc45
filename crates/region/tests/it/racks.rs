//! The region's end of the rack link over a real socket: a rack (written here with
//! `maas-rpc`, as `maas-rack` uses it) registers, is shown in `rackcontrollers`, receives
//! DHCP configuration as the network is changed through the API, asks for boot configs,
//! reports leases and services, and disconnects.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use maas_client::Params;
use maas_rpc::{
    BootConfigRequest, Call, DhcpConfig, Handler, LeaseAction, LeaseUpdate, Outcome, Peer, Push,
    RackInterface, Registration, Secret, ServiceState,
};
use maas_store::{InterfaceType, Inventory, LinkMode, NewInterface, NewIpLink};
use tokio::sync::mpsc;

use crate::support::{TEST_SECRET, TestRegion};

struct Rack {
    peer: Peer,
    pushes: mpsc::UnboundedReceiver<DhcpConfig>,
    task: tokio::task::JoinHandle<Result<(), maas_rpc::LinkError>>,
}

struct Collect(mpsc::UnboundedSender<DhcpConfig>);

impl Handler for Collect {
    fn call(&self, call: Call) -> maas_rpc::BoxFuture<Outcome> {
        Box::pin(async move {
            match call {
                Call::Ping => Outcome::Pong,
                _ => Outcome::Error(maas_rpc::RemoteError::new("Unsupported", "")),
            }
        })
    }
    fn push(&self, push: Push) {
        let Push::Dhcp(config) = push;
        let _ = self.0.send(config);
    }
}

async fn connect(url: &str, secret: &str) -> Result<Rack, maas_rpc::LinkError> {
    let mut stream = maas_rpc::dial(url, Duration::from_secs(5)).await?;
    maas_rpc::rack_handshake(&mut stream, &Secret::from_hex(secret).unwrap()).await?;
    let (tx, pushes) = mpsc::unbounded_channel();
    let (peer, task) = maas_rpc::run(stream, Arc::new(Collect(tx)), Duration::from_secs(60));
    Ok(Rack { peer, pushes, task })
}

fn interface(name: &str, mac: &str, addresses: &[&str]) -> RackInterface {
    RackInterface {
        name: name.into(),
        kind: "physical".into(),
        mac_address: Some(mac.into()),
        parents: vec![],
        vid: None,
        enabled: true,
        mtu: 1500,
        addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn registration(system_id: Option<&str>) -> Registration {
    Registration {
        system_id: system_id.map(str::to_owned),
        hostname: "rack-one.example.com".into(),
        interfaces: vec![
            interface("eth0", "52:54:00:aa:00:01", &["10.20.0.2/24", "fe80::1/64"]),
            interface("eth1", "52:54:00:aa:00:02", &["172.31.5.9/16"]),
            RackInterface {
                name: "eth0.30".into(),
                kind: "vlan".into(),
                mac_address: Some("52:54:00:aa:00:01".into()),
                parents: vec!["eth0".into()],
                vid: Some(30),
                enabled: true,
                mtu: 1500,
                addresses: vec!["10.30.0.2/24".into()],
            },
        ],
        version: "0.1.0-test".into(),
        url: "http://127.0.0.1:5240/MAAS".into(),
    }
}

async fn next_push(rack: &mut Rack) -> DhcpConfig {
    tokio::time::timeout(Duration::from_secs(10), rack.pushes.recv())
        .await
        .expect("a DHCP push within 10 s")
        .expect("link open")
}

fn boot_request(mac: Option<&str>, arch: Option<&str>) -> BootConfigRequest {
    BootConfigRequest {
        mac: mac.map(str::to_owned),
        hardware_uuid: None,
        arch: arch.map(str::to_owned),
        subarch: None,
        local_ip: "10.20.0.2".parse().unwrap(),
        remote_ip: "10.20.0.120".parse().unwrap(),
        bios_boot_method: "pxe".into(),
        protocol: "tftp".into(),
    }
}

const T: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rack_registers_and_follows_the_network() {
    let t = TestRegion::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/MAAS", listener.local_addr().unwrap());
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(maas_region::serve(t.region.clone(), listener, async move {
        let _ = stopped.await;
    }));

    // A wrong secret is refused before anything is said.
    assert!(matches!(
        connect(&url, "ffffffffffffffffffffffffffffffff")
            .await
            .err(),
        Some(maas_rpc::LinkError::RegionNotAuthentic)
    ));

    let mut rack = connect(&url, TEST_SECRET).await.unwrap();
    // Nothing but ping before registering.
    assert_eq!(rack.peer.call(Call::Ping, T).await.unwrap(), Outcome::Pong);
    match rack
        .peer
        .call(Call::BootConfig(boot_request(None, Some("amd64"))), T)
        .await
        .unwrap()
    {
        Outcome::Error(e) => assert_eq!(e.code, "NotRegistered"),
        other => panic!("{other:?}"),
    }
    let system_id = match rack
        .peer
        .call(Call::Register(registration(None)), T)
        .await
        .unwrap()
    {
        Outcome::Registered(r) => {
            assert_eq!(r.region, t.region.hub.name());
            r.system_id
        }
        other => panic!("{other:?}"),
    };
    // DHCP is off everywhere: the first configuration serves nobody.
    assert_eq!(next_push(&mut rack).await, DhcpConfig::default());

    // The rack is listed with its interfaces; its addresses made subnets on new fabrics.
    let racks = t.get("rackcontrollers/", Params::new()).await;
    racks.expect(200);
    let racks = racks.json();
    assert_eq!(racks.as_array().unwrap().len(), 1);
    let listed = &racks[0];
    assert_eq!(listed["system_id"], system_id.as_str());
    assert_eq!(listed["hostname"], "rack-one");
    assert_eq!(listed["node_type"], 2);
    assert_eq!(listed["version"], "0.1.0-test");
    assert_eq!(
        listed["resource_uri"],
        format!("/MAAS/api/2.0/rackcontrollers/{system_id}/")
    );
    assert_eq!(listed["interface_set"].as_array().unwrap().len(), 3);
    let services = listed["service_set"].as_array().unwrap();
    let rackd = services.iter().find(|s| s["name"] == "rackd").unwrap();
    assert_eq!(rackd["status"], "running", "{services:?}");
    let subnets = t.get("subnets/", Params::new()).await.json();
    let subnet = subnets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cidr"] == "10.20.0.0/24")
        .expect("subnet from eth0")
        .clone();
    let vlan30 = subnets
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["cidr"] == "10.30.0.0/24")
        .expect("subnet from eth0.30")["vlan"]
        .clone();
    assert_eq!(vlan30["vid"], 30);
    // The VLAN interface's VLAN is on its parent's fabric.
    assert_eq!(vlan30["fabric_id"], subnet["vlan"]["fabric_id"]);
    assert!(
        !subnets
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["cidr"].as_str().unwrap().starts_with("fe80")),
        "link-local addresses make no subnet"
    );
    let vlan_ids = |fabrics: serde_json::Value| -> Vec<i64> {
        fabrics
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|f| f["vlans"].as_array().unwrap().clone())
            .map(|v| v["id"].as_i64().unwrap())
            .collect()
    };
    let vlans_before = vlan_ids(t.get("fabrics/", Params::new()).await.json());

    // DHCP on: a dynamic range, then the VLAN's primary rack.
    let fabric_id = subnet["vlan"]["fabric_id"].as_i64().unwrap();
    let vid = subnet["vlan"]["vid"].as_i64().unwrap();
    t.put(
        &format!("fabrics/{fabric_id}/vlans/{vid}/"),
        Params::new()
            .text("dhcp_on", "True")
            .text("primary_rack", &system_id),
    )
    .await
    .expect(400);
    t.post(
        "ipranges/",
        Params::new()
            .text("type", "dynamic")
            .text("start_ip", "10.20.0.100")
            .text("end_ip", "10.20.0.150")
            .text("subnet", subnet["id"].to_string()),
    )
    .await
    .expect(200);
    // A primary rack that is not a rack is refused.
    t.put(
        &format!("fabrics/{fabric_id}/vlans/{vid}/"),
        Params::new()
            .text("dhcp_on", "True")
            .text("primary_rack", "nosuch"),
    )
    .await
    .expect(400);
    t.put(
        &format!("fabrics/{fabric_id}/vlans/{vid}/"),
        Params::new()
            .text("dhcp_on", "True")
            .text("primary_rack", &system_id),
    )
    .await
    .expect(200);
    let config = next_push(&mut rack).await;
    assert_eq!(config.interfaces.len(), 1);
    assert_eq!(config.interfaces[0].name, "eth0");
    assert_eq!(config.interfaces[0].address.to_string(), "10.20.0.2");
    assert_eq!(config.subnets.len(), 1);
    assert_eq!(config.subnets[0].cidr, "10.20.0.0/24");
    assert_eq!(
        config.subnets[0].ranges,
        vec![(
            "10.20.0.100".parse().unwrap(),
            "10.20.0.150".parse().unwrap()
        )]
    );
    assert_eq!(
        config.subnets[0].server_ip,
        Some("10.20.0.2".parse().unwrap())
    );
    assert!(config.hosts.is_empty());

    // A machine with a static address on the subnet becomes a fixed-address host.
    let machine = t.machine("node1", "52:54:00:bb:00:01").await;
    let node = t
        .region
        .store
        .node_by_system_id(machine["system_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    let subnet_id = subnet["id"].as_i64().unwrap();
    t.region
        .store
        .set_inventory(
            node.id,
            Inventory {
                cpu_count: 2,
                cpu_speed: 0,
                memory: 2048,
                hardware_uuid: None,
                hardware_info: Default::default(),
                bios_boot_method: None,
                interfaces: vec![NewInterface {
                    name: "eth0".into(),
                    kind: InterfaceType::Physical,
                    mac_address: Some("52:54:00:bb:00:01".into()),
                    vlan_id: subnet["vlan"]["id"].as_i64(),
                    enabled: true,
                    params: String::new(),
                    tags: vec![],
                    vendor: None,
                    product: None,
                    firmware_version: None,
                    link_connected: true,
                    interface_speed: 0,
                    link_speed: 0,
                    numa_node: None,
                    sriov_max_vf: 0,
                    mtu: 1500,
                    parents: vec![],
                    links: vec![NewIpLink {
                        mode: LinkMode::Static,
                        subnet_id: Some(subnet_id),
                        ip: Some("10.20.0.30".into()),
                    }],
                    discovered: vec![],
                    boot: true,
                }],
                block_devices: vec![],
            },
            t.region.now(),
        )
        .await
        .unwrap();
    t.region.network_changed();
    let config = next_push(&mut rack).await;
    assert_eq!(config.hosts.len(), 1);
    assert_eq!(config.hosts[0].mac, "52:54:00:bb:00:01");
    assert_eq!(config.hosts[0].ip.to_string(), "10.20.0.30");
    assert_eq!(config.hosts[0].hostname.as_deref(), Some("node1"));

    // Boot decisions: nothing for an unknown MAC without an architecture, enlistment for an
    // unknown machine with one, and the machine's own purpose for a known one.
    let boot = |mac: Option<&str>, arch: Option<&str>| {
        let peer = rack.peer.clone();
        let request = boot_request(mac, arch);
        async move { peer.call(Call::BootConfig(request), T).await.unwrap() }
    };
    assert_eq!(
        boot(Some("52:54:00:cc:00:01"), None).await,
        Outcome::BootConfig(None)
    );
    let Outcome::BootConfig(Some(enlist)) = boot(Some("52:54:00:cc:00:01"), Some("amd64")).await
    else {
        panic!("enlistment config")
    };
    assert_eq!(enlist.purpose, "commissioning");
    assert_eq!(enlist.system_id, None);
    assert!(
        enlist
            .preseed_url
            .ends_with("/metadata/latest/enlist-preseed/?op=get_enlist_preseed"),
        "{}",
        enlist.preseed_url
    );
    let Outcome::BootConfig(Some(known)) = boot(Some("52:54:00:bb:00:01"), None).await else {
        panic!("known machine config")
    };
    // A NEW machine boots the commissioning environment.
    assert_eq!(known.purpose, "commissioning");
    assert_eq!(known.system_id.as_deref(), machine["system_id"].as_str());
    assert_eq!(known.hostname, "node1");
    assert_eq!(known.fs_host, "10.20.0.2".parse::<IpAddr>().unwrap());
    assert_eq!(known.osystem, "ubuntu");
    assert_eq!(known.release, "noble");
    assert_eq!(
        known.kernel,
        "ubuntu/amd64/ga-24.04/noble/stable/boot-kernel"
    );
    // The region's loopback URL is replaced by the rack's address for the machine.
    assert!(
        known
            .preseed_url
            .starts_with("http://10.20.0.2:5240/MAAS/metadata/latest/by-id/"),
        "{}",
        known.preseed_url
    );

    // Leases in the dynamic range become the interface's discovered address.
    let lease = |ip: &str, action| LeaseUpdate {
        action,
        mac: "52:54:00:bb:00:01".into(),
        ip: ip.parse().unwrap(),
        timestamp: 1,
        lease_time: Some(600),
        hostname: None,
    };
    assert_eq!(
        rack.peer
            .call(
                Call::Leases(vec![
                    lease("10.20.0.120", LeaseAction::Commit),
                    // Outside the dynamic range, and outside every subnet: ignored.
                    lease("10.20.0.40", LeaseAction::Commit),
                    lease("198.51.100.7", LeaseAction::Commit),
                ]),
                T
            )
            .await
            .unwrap(),
        Outcome::Done
    );
    let node = t
        .region
        .store
        .node_by_system_id(machine["system_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        node.interfaces[0].discovered,
        vec![(Some(subnet_id), "10.20.0.120".to_owned())]
    );

    // Services the rack reports show up; rackd stays the region's to say.
    let state = |name: &str, status: &str, info: &str| ServiceState {
        name: name.into(),
        status: status.into(),
        status_info: info.into(),
    };
    assert_eq!(
        rack.peer
            .call(
                Call::Services(vec![
                    state("tftp", "running", ""),
                    state(
                        "dhcpd",
                        "dead",
                        "cannot bind UDP 0.0.0.0:67: permission denied"
                    ),
                    state("rackd", "dead", "lies"),
                ]),
                T
            )
            .await
            .unwrap(),
        Outcome::Done
    );
    let read = t
        .get(&format!("rackcontrollers/{system_id}/"), Params::new())
        .await;
    read.expect(200);
    let services = read.json()["service_set"].clone();
    let find = |name: &str| {
        services
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(find("tftp")["status"], "running");
    assert_eq!(find("dhcpd")["status"], "dead");
    assert_eq!(
        find("dhcpd")["status_info"],
        "cannot bind UDP 0.0.0.0:67: permission denied"
    );
    assert_eq!(find("rackd")["status"], "running");
    assert_eq!(find("http")["status"], "unknown");

    // Disconnected: every service is dead.
    rack.task.abort();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let read = t
            .get(&format!("rackcontrollers/{system_id}/"), Params::new())
            .await
            .json();
        let rackd = read["service_set"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "rackd")
            .unwrap()
            .clone();
        if rackd["status"] == "dead" {
            assert!(
                read["service_set"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s["status"] == "dead")
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rackd still {rackd}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Coming back with its system_id finds the same rack and makes no new fabrics; the
    // DHCP configuration is sent again on the new link.
    let mut again = connect(&url, TEST_SECRET).await.unwrap();
    match again
        .peer
        .call(Call::Register(registration(Some(&system_id))), T)
        .await
        .unwrap()
    {
        Outcome::Registered(r) => assert_eq!(r.system_id, system_id),
        other => panic!("{other:?}"),
    }
    assert_eq!(next_push(&mut again).await.subnets.len(), 1);
    assert_eq!(
        vlan_ids(t.get("fabrics/", Params::new()).await.json()),
        vlans_before
    );
    assert_eq!(
        t.get("rackcontrollers/", Params::new())
            .await
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Deleting a rack that serves DHCP needs force; then DHCP is off on its VLAN.
    t.delete(&format!("rackcontrollers/{system_id}/"), Params::new())
        .await
        .expect(400);
    t.delete(
        &format!("rackcontrollers/{system_id}/"),
        Params::new().text("force", "true"),
    )
    .await
    .expect(204);
    let vlan = t
        .get(&format!("fabrics/{fabric_id}/vlans/{vid}/"), Params::new())
        .await
        .json();
    assert_eq!(vlan["dhcp_on"], false);
    assert_eq!(vlan["primary_rack"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_endpoint_refuses_plain_requests() {
    let t = TestRegion::new().await;
    let reply = t.anonymous_get("/MAAS/rpc/link").await;
    reply.expect(400);
    assert!(reply.text().contains("maas-rack-link/1"));
    let reply = t.anonymous_get("/MAAS/rpc/").await;
    reply.expect(200);
    assert!(reply.json()["eventloops"][t.region.hub.name()].is_array());
}
