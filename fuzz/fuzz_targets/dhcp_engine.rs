//! Any decodable request, relayed or not, at any time, leaves the lease engine standing.
#![no_main]

use std::net::Ipv4Addr;

use libfuzzer_sys::fuzz_target;
use maas_dhcp_wire::Message;
use maas_dhcp_wire::engine::{Engine, EngineConfig, Ingress, NoBootFile, Reservation, SubnetConfig};
use maas_domain::MacAddress;

fuzz_target!(|data: &[u8]| {
    let Some((&time, packet)) = data.split_first() else { return };
    let Ok(request) = Message::decode(packet) else { return };
    let config = EngineConfig {
        subnets: vec![SubnetConfig {
            cidr: "10.0.0.0/24".parse().expect("cidr"),
            router: Some(Ipv4Addr::new(10, 0, 0, 1)),
            dns_servers: vec![Ipv4Addr::new(10, 0, 0, 1)],
            domain_name: Some("maas".into()),
            lease_time: 60,
            mtu: Some(1500),
            ranges: vec!["10.0.0.10-10.0.0.12".parse().expect("range")],
            server_ip: None,
        }],
        reservations: vec![Reservation {
            mac: MacAddress::new([0x52, 0x54, 0, 0, 0, 1]),
            ip: Ipv4Addr::new(10, 0, 0, 5),
            hostname: None,
        }],
        ..EngineConfig::default()
    };
    let mut engine = Engine::new(config);
    let ingress = Ingress { local_ip: Ipv4Addr::new(10, 0, 0, 1) };
    // The same request several times, as retransmissions arrive.
    for step in 0..4u64 {
        let outcome = engine.handle(&request, ingress, u64::from(time) * 10 + step, &NoBootFile);
        if let Some(reply) = outcome.reply {
            reply.message.encode().expect("replies always encode");
        }
        for event in &outcome.events {
            engine.apply(event);
        }
    }
    engine.expire(u64::from(time) * 100);
});
