//! Conformance cases for controllers and the region-rack link (`RackStore`).

use std::collections::BTreeMap;
use std::sync::Arc;

use maas_domain::{NodeStatus, NodeType};
use maas_store::defaults::*;
use maas_store::*;

fn rack(system_id: &str, hostname: &str, mac: &str) -> NewNode {
    NewNode {
        system_id: system_id.to_owned(),
        hostname: hostname.to_owned(),
        description: String::new(),
        node_type: NodeType::RackController,
        status: NodeStatus::Deployed,
        owner_id: None,
        domain_id: DEFAULT_DOMAIN_ID,
        zone_id: DEFAULT_ZONE_ID,
        pool_id: None,
        architecture: Some("amd64/generic".to_owned()),
        min_hwe_kernel: None,
        power_type: "manual".to_owned(),
        power_parameters: BTreeMap::new(),
        is_dpu: false,
        created: 1_000,
        mac_addresses: vec![mac.to_owned()],
    }
}

fn service(name: &str, status: &str, info: &str) -> ServiceStatus {
    ServiceStatus {
        name: name.to_owned(),
        status: status.to_owned(),
        status_info: info.to_owned(),
    }
}

pub async fn controllers_services_and_links(store: Arc<dyn Store>) {
    let a = store
        .create_node(rack("rack01", "rack-a", "52:54:00:0a:00:01"))
        .await
        .unwrap();
    let b = store
        .create_node(rack("rack02", "rack-b", "52:54:00:0a:00:02"))
        .await
        .unwrap();
    let ids = [a.id, b.id];

    let info = ControllerInfo {
        node_id: a.id,
        version: "0.1.0".into(),
        url: "http://10.0.0.1:5240/MAAS".into(),
        registered: 5,
    };
    store.set_controller_info(&info).await.unwrap();
    let newer = ControllerInfo {
        version: "0.2.0".into(),
        registered: 6,
        ..info.clone()
    };
    store.set_controller_info(&newer).await.unwrap();
    assert_eq!(store.controller_infos(&ids).await.unwrap(), vec![newer]);
    assert!(store.controller_infos(&[]).await.unwrap().is_empty());

    store
        .set_services(
            a.id,
            &[
                service("tftp", "running", ""),
                service("dhcpd", "dead", "no root"),
            ],
            10,
        )
        .await
        .unwrap();
    // A later report replaces the named services and leaves the others.
    store
        .set_services(a.id, &[service("dhcpd", "running", "")], 11)
        .await
        .unwrap();
    store
        .set_services(b.id, &[service("http", "running", "")], 11)
        .await
        .unwrap();
    assert_eq!(
        store.services(&ids).await.unwrap(),
        vec![
            (a.id, service("dhcpd", "running", "")),
            (a.id, service("tftp", "running", "")),
            (b.id, service("http", "running", "")),
        ]
    );

    store
        .region_heartbeat("region-1:pid=1", &[a.id, b.id], 100)
        .await
        .unwrap();
    store
        .region_heartbeat("region-2:pid=2", &[a.id], 150)
        .await
        .unwrap();
    store
        .region_heartbeat("region-1:pid=1", &[a.id], 200)
        .await
        .unwrap();
    assert_eq!(
        store.live_regions(150).await.unwrap(),
        vec!["region-1:pid=1".to_owned(), "region-2:pid=2".to_owned()]
    );
    assert_eq!(
        store.live_regions(160).await.unwrap(),
        vec!["region-1:pid=1".to_owned()]
    );
    let links = store.rack_links(&ids, 150).await.unwrap();
    assert_eq!(
        links
            .iter()
            .map(|l| (l.node_id, l.region.as_str(), l.last_seen))
            .collect::<Vec<_>>(),
        vec![(a.id, "region-1:pid=1", 200), (a.id, "region-2:pid=2", 150)]
    );
    // Rack b's link went stale at 100.
    assert_eq!(store.rack_links(&[b.id], 150).await.unwrap(), vec![]);
    store.drop_rack_link(a.id, "region-2:pid=2").await.unwrap();
    assert_eq!(store.rack_links(&ids, 0).await.unwrap().len(), 2);

    // Deleting the rack takes its rows with it.
    store.delete_node(a.id).await.unwrap();
    assert!(store.services(&[a.id]).await.unwrap().is_empty());
    assert!(store.rack_links(&[a.id], 0).await.unwrap().is_empty());
    assert!(store.controller_infos(&[a.id]).await.unwrap().is_empty());
}

pub async fn static_addresses_and_leases(store: Arc<dyn Store>) {
    let subnet = store
        .create_subnet(
            SubnetFields {
                name: "10.9.0.0/24".into(),
                description: String::new(),
                cidr: "10.9.0.0/24".into(),
                vlan_id: DEFAULT_VLAN_ID,
                gateway_ip: None,
                dns_servers: vec![],
                rdns_mode: 2,
                allow_dns: true,
                allow_proxy: true,
                active_discovery: false,
                managed: true,
                disabled_boot_architectures: vec![],
            },
            1,
        )
        .await
        .unwrap();
    let node = store
        .create_node(rack("mach01", "m1", "52:54:00:0b:00:01"))
        .await
        .unwrap();
    let nic = |name: &str, mac: &str, links: Vec<NewIpLink>| NewInterface {
        name: name.into(),
        kind: InterfaceType::Physical,
        mac_address: Some(mac.into()),
        vlan_id: Some(DEFAULT_VLAN_ID),
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
        links,
        discovered: vec![],
        boot: false,
    };
    let link = |mode, ip: Option<&str>| NewIpLink {
        mode,
        subnet_id: Some(subnet.id),
        ip: ip.map(str::to_owned),
    };
    store
        .set_inventory(
            node.id,
            Inventory {
                cpu_count: 1,
                cpu_speed: 0,
                memory: 1024,
                hardware_uuid: None,
                hardware_info: BTreeMap::new(),
                bios_boot_method: None,
                interfaces: vec![
                    nic(
                        "eth0",
                        "52:54:00:0b:00:01",
                        vec![link(LinkMode::Static, Some("10.9.0.20"))],
                    ),
                    nic(
                        "eth1",
                        "52:54:00:0b:00:02",
                        vec![link(LinkMode::Auto, Some("10.9.0.10"))],
                    ),
                    // Not reservations: an AUTO link without an address yet, and DHCP.
                    nic(
                        "eth2",
                        "52:54:00:0b:00:03",
                        vec![link(LinkMode::Auto, None), link(LinkMode::Dhcp, None)],
                    ),
                ],
                block_devices: vec![],
            },
            2,
        )
        .await
        .unwrap();
    let found = store.static_addresses(&[subnet.id]).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|a| (
                a.ip.as_str(),
                a.interface_name.as_str(),
                a.mac.as_deref(),
                a.system_id.as_str()
            ))
            .collect::<Vec<_>>(),
        vec![
            ("10.9.0.10", "eth1", Some("52:54:00:0b:00:02"), "mach01"),
            ("10.9.0.20", "eth0", Some("52:54:00:0b:00:01"), "mach01"),
        ]
    );
    assert!(store.static_addresses(&[]).await.unwrap().is_empty());
    assert!(
        store
            .static_addresses(&[subnet.id + 999])
            .await
            .unwrap()
            .is_empty()
    );

    let lease = |ip: &str, committed| LeaseRecord {
        mac: "52:54:00:0b:00:03".into(),
        subnet_id: subnet.id,
        ip: ip.into(),
        committed,
    };
    assert_eq!(
        store
            .record_lease(&lease("10.9.0.150", true))
            .await
            .unwrap(),
        vec![node.id]
    );
    assert_eq!(
        store
            .record_lease(&lease("10.9.0.151", true))
            .await
            .unwrap(),
        vec![node.id]
    );
    let eth2 = |node: &Node| {
        node.interfaces
            .iter()
            .find(|i| i.name == "eth2")
            .unwrap()
            .discovered
            .clone()
    };
    let read = store.node_by_system_id("mach01").await.unwrap().unwrap();
    // Only the latest lease is kept; leases never become reservations.
    assert_eq!(
        eth2(&read),
        vec![(Some(subnet.id), "10.9.0.151".to_owned())]
    );
    assert_eq!(store.static_addresses(&[subnet.id]).await.unwrap().len(), 2);
    store
        .record_lease(&lease("10.9.0.151", false))
        .await
        .unwrap();
    let read = store.node_by_system_id("mach01").await.unwrap().unwrap();
    assert!(eth2(&read).is_empty());
    // A MAC no interface has touches nothing.
    let stranger = LeaseRecord {
        mac: "52:54:00:ff:ff:ff".into(),
        ..lease("10.9.0.152", true)
    };
    assert!(store.record_lease(&stranger).await.unwrap().is_empty());
}
