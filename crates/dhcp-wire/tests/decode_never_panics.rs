//! Hermetic stand-in for the fuzz target: mutated and random inputs never panic the decoder,
//! and anything that decodes survives an encode/decode round trip.

use maas_dhcp_wire::{DhcpOption, Message, MessageType, Op, SubOption};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next() % bound.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut discover = Message::new(Op::BootRequest, 0x1234);
    discover.set_client_mac("52:54:00:12:34:56".parse().expect("mac"));
    discover.options = vec![
        DhcpOption::MessageType(MessageType::Discover),
        DhcpOption::ParameterRequestList(vec![1, 3, 6, 15, 26, 43, 60, 66, 67, 175]),
        DhcpOption::MaxMessageSize(1472),
        DhcpOption::VendorClassIdentifier(b"PXEClient:Arch:00007:UNDI:003016".to_vec()),
        DhcpOption::ClientSystemArchitecture(vec![7]),
        DhcpOption::ClientNetworkInterface(maas_dhcp_wire::NetworkInterfaceId {
            kind: 1,
            major: 3,
            minor: 16,
        }),
        DhcpOption::ClientMachineId(vec![0; 17]),
        DhcpOption::UserClass(b"iPXE".to_vec()),
        DhcpOption::IpxeEncapsulated(vec![SubOption {
            code: 19,
            data: vec![1],
        }]),
        DhcpOption::RelayAgentInformation(vec![SubOption {
            code: 1,
            data: b"eth0".to_vec(),
        }]),
        DhcpOption::Hostname("node".into()),
    ];
    let mut request = discover.clone();
    request.options[0] = DhcpOption::MessageType(MessageType::Request);
    request.options.push(DhcpOption::RequestedIpAddress(
        "10.0.0.5".parse().expect("ip"),
    ));
    request.options.push(DhcpOption::ServerIdentifier(
        "10.0.0.1".parse().expect("ip"),
    ));
    let mut fixtures: Vec<Vec<u8>> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data"))
            .map(|dir| {
                dir.filter_map(|e| e.ok())
                    .filter_map(|e| std::fs::read(e.path()).ok())
                    .collect()
            })
            .unwrap_or_default();
    fixtures.push(discover.encode().expect("encode"));
    fixtures.push(request.encode().expect("encode"));
    fixtures
}

#[test]
fn mutated_messages_never_panic() {
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut decoded = 0;
    for round in 0..60_000 {
        let mut bytes = seeds[round % seeds.len()].clone();
        for _ in 0..=rng.below(6) {
            match rng.below(5) {
                0 if !bytes.is_empty() => {
                    let at = rng.below(bytes.len());
                    bytes[at] = rng.next() as u8;
                }
                1 => bytes.truncate(rng.below(bytes.len() + 1)),
                2 => {
                    let at = rng.below(bytes.len() + 1);
                    bytes.insert(at, rng.next() as u8);
                }
                3 if bytes.len() > 240 => {
                    // Aim at the options area, where the structure is.
                    let at = 240 + rng.below(bytes.len() - 240);
                    bytes[at] = [0, 255, 52, 53, 82, 175, 1][rng.below(7)];
                }
                _ => bytes.extend((0..rng.below(8)).map(|_| rng.next() as u8)),
            }
        }
        if let Ok(message) = Message::decode(&bytes) {
            decoded += 1;
            if let Ok(encoded) = message.encode() {
                assert_eq!(
                    Message::decode(&encoded).as_ref(),
                    Ok(&message),
                    "round {round}"
                );
            }
        }
    }
    assert!(
        decoded > 1_000,
        "mutations should still decode often, got {decoded}"
    );
    for len in 0..600 {
        let random: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        let _ = Message::decode(&random);
    }
}
