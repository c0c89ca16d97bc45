//! Packets captured from real firmware (QEMU 10 under TCG): SeaBIOS with the iPXE option
//! ROM of Debian's ipxe-qemu, and OVMF's own UEFI PXE client (no option ROM).

use maas_dhcp_wire::engine::{Engine, EngineConfig, Ingress, NoBootFile, SubnetConfig};
use maas_dhcp_wire::{Message, MessageType};

fn fixture(name: &str) -> Message {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let message = Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        Message::decode(&message.encode().expect("encodes")),
        Ok(message.clone()),
        "{name} round trip"
    );
    message
}

#[test]
fn captured_clients_table() {
    // (file, MAC, option 93, is iPXE, option 60 prefix)
    let cases = [
        (
            "ipxe-bios-discover.bin",
            "52:54:00:77:00:01",
            Some(0),
            true,
            "PXEClient:Arch:00000",
        ),
        (
            "uefi-x64-discover.bin",
            "52:54:00:77:00:02",
            Some(7),
            false,
            "PXEClient:Arch:00007",
        ),
    ];
    for (name, mac, arch, ipxe, vendor) in cases {
        let message = fixture(name);
        assert_eq!(
            message.message_type(),
            Some(MessageType::Discover),
            "{name}"
        );
        assert_eq!(
            message.client_mac().map(|m| m.to_string()).as_deref(),
            Some(mac),
            "{name}"
        );
        assert_eq!(message.client_architecture(), arch, "{name}");
        assert_eq!(message.is_ipxe(), ipxe, "{name}");
        let class =
            String::from_utf8_lossy(message.vendor_class().unwrap_or_default()).into_owned();
        assert!(class.starts_with(vendor), "{name}: {class}");
    }
}

#[test]
fn captured_discover_gets_an_offer() {
    let mut engine = Engine::new(EngineConfig {
        subnets: vec![SubnetConfig {
            cidr: "10.66.0.0/24".parse().expect("cidr"),
            router: None,
            dns_servers: vec![],
            domain_name: None,
            lease_time: 600,
            mtu: None,
            ranges: vec!["10.66.0.100-10.66.0.110".parse().expect("range")],
            server_ip: None,
        }],
        ..EngineConfig::default()
    });
    let ingress = Ingress {
        local_ip: "10.66.0.1".parse().expect("ip"),
    };
    for name in ["ipxe-bios-discover.bin", "uefi-x64-discover.bin"] {
        let outcome = engine.handle(&fixture(name), ingress, 1000, &NoBootFile);
        let ignored = outcome.ignored;
        let reply = outcome
            .reply
            .unwrap_or_else(|| panic!("{name}: {ignored:?}"));
        assert_eq!(
            reply.message.message_type(),
            Some(MessageType::Offer),
            "{name}"
        );
        // Both are PXE firmware: short leases.
        assert_eq!(
            reply.message.option(51),
            Some(&maas_dhcp_wire::DhcpOption::LeaseTime(30)),
            "{name}"
        );
    }
}
