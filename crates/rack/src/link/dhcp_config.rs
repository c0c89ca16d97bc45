//! The region's DHCP configuration turned into what the rack's DHCP server serves. The
//! region is trusted but not infallible: an entry that cannot be served (a malformed CIDR, a
//! range outside its subnet, a reservation in no served subnet) is skipped and reported, and
//! the rest is served.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::str::FromStr;

use maas_dhcp_wire::engine::{EngineConfig, Reservation, SubnetConfig};
use maas_dhcp_wire::{IpRange, Ipv4Net};
use maas_domain::MacAddress;
use maas_rpc::DhcpConfig;

use crate::backend::{DhcpInterface, DhcpServiceConfig};

/// Lease time used when the region sends none (0).
const DEFAULT_LEASE_TIME: u32 = 600;

/// An entry of the region's configuration that is not served, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// `interface "eth1"`, `subnet "10.0.0.0/33"`, `range 10.0.0.9-10.0.0.1 of 10.0.0.0/24`, ...
    pub entry: String,
    pub problem: String,
}

/// Converts, returning what was skipped alongside.
pub fn service_config(config: &DhcpConfig) -> (DhcpServiceConfig, Vec<Skipped>) {
    let mut skipped = Vec::new();
    let mut skip = |entry: String, problem: String| skipped.push(Skipped { entry, problem });

    let mut interfaces: Vec<DhcpInterface> = Vec::new();
    for interface in &config.interfaces {
        let name = interface.name.trim();
        let entry = || format!("interface {:?}", interface.name);
        if name.is_empty() || name.len() > 15 || name.contains(['/', '\0', ' ']) {
            skip(entry(), "not a usable interface name".into());
        } else if interface.address.is_unspecified() || interface.address.is_broadcast() {
            skip(
                entry(),
                format!("address {} is not usable", interface.address),
            );
        } else if interfaces.iter().any(|i| i.name == name) {
            skip(entry(), "listed twice".into());
        } else {
            interfaces.push(DhcpInterface {
                name: name.to_owned(),
                address: interface.address,
            });
        }
    }

    let mut subnets: Vec<SubnetConfig> = Vec::new();
    for subnet in &config.subnets {
        let entry = || format!("subnet {:?}", subnet.cidr);
        let cidr = match Ipv4Net::from_str(subnet.cidr.trim()) {
            Ok(cidr) => cidr,
            Err(error) => {
                skip(entry(), error.to_string());
                continue;
            }
        };
        if subnets.iter().any(|s| s.cidr == cidr) {
            skip(entry(), "listed twice".into());
            continue;
        }
        let mut ranges: Vec<IpRange> = Vec::new();
        for &(start, end) in &subnet.ranges {
            let entry = format!("range {start}-{end} of {cidr}");
            match IpRange::new(start, end) {
                Err(error) => skip(entry, error.to_string()),
                Ok(_) if !cidr.contains(start) || !cidr.contains(end) => {
                    skip(entry, format!("not inside {cidr}"));
                }
                Ok(range) if ranges.iter().any(|r| overlaps(r, &range)) => {
                    skip(entry, "overlaps another range of the subnet".into());
                }
                Ok(range) => ranges.push(range),
            }
        }
        let lease_time = if subnet.lease_time == 0 {
            skip(
                format!("lease time of {cidr}"),
                format!("0 seconds; using {DEFAULT_LEASE_TIME}"),
            );
            DEFAULT_LEASE_TIME
        } else {
            subnet.lease_time
        };
        let server_ip = match subnet.server_ip {
            Some(ip) if !cidr.contains(ip) => {
                skip(
                    format!("server address {ip} of {cidr}"),
                    "not inside the subnet; the receiving address is used".into(),
                );
                None
            }
            other => other,
        };
        let mtu = match subnet.mtu {
            Some(mtu) if mtu < 576 => {
                skip(format!("MTU of {cidr}"), format!("{mtu} is below 576"));
                None
            }
            other => other,
        };
        subnets.push(SubnetConfig {
            cidr,
            router: subnet.router,
            dns_servers: subnet.dns_servers.clone(),
            domain_name: subnet.domain_name.clone().filter(|d| !d.trim().is_empty()),
            lease_time,
            mtu,
            ranges,
            server_ip,
        });
    }

    let mut reservations: Vec<Reservation> = Vec::new();
    let mut seen_macs: HashSet<MacAddress> = HashSet::new();
    let mut seen_ips: HashSet<Ipv4Addr> = HashSet::new();
    for host in &config.hosts {
        let entry = || format!("host {} {}", host.mac, host.ip);
        let mac = match MacAddress::from_str(host.mac.trim()) {
            Ok(mac) => mac,
            Err(error) => {
                skip(entry(), error.to_string());
                continue;
            }
        };
        if !subnets.iter().any(|s| s.cidr.contains(host.ip)) {
            skip(entry(), "address is in no served subnet".into());
        } else if !seen_macs.insert(mac) {
            skip(entry(), "MAC already has a reservation".into());
        } else if !seen_ips.insert(host.ip) {
            skip(entry(), "address already reserved for another MAC".into());
        } else {
            reservations.push(Reservation {
                mac,
                ip: host.ip,
                hostname: host.hostname.clone().filter(|h| !h.trim().is_empty()),
            });
        }
    }

    let service = DhcpServiceConfig {
        interfaces,
        engine: EngineConfig {
            subnets,
            reservations,
            ..EngineConfig::default()
        },
    };
    (service, skipped)
}

fn overlaps(a: &IpRange, b: &IpRange) -> bool {
    a.start() <= b.end() && b.start() <= a.end()
}

#[cfg(test)]
mod tests {
    use super::*;
    use maas_rpc::{DhcpHost, DhcpInterface as WireInterface, DhcpSubnet};

    fn ip(text: &str) -> Ipv4Addr {
        text.parse().expect("ip")
    }

    fn subnet(cidr: &str, ranges: &[(&str, &str)]) -> DhcpSubnet {
        DhcpSubnet {
            cidr: cidr.into(),
            router: Some(ip("10.0.0.1")),
            dns_servers: vec![ip("10.0.0.1")],
            domain_name: Some("maas".into()),
            lease_time: 600,
            mtu: None,
            ranges: ranges.iter().map(|(a, b)| (ip(a), ip(b))).collect(),
            server_ip: None,
        }
    }

    fn host(mac: &str, address: &str) -> DhcpHost {
        DhcpHost {
            mac: mac.into(),
            ip: ip(address),
            hostname: Some("node".into()),
        }
    }

    fn check(config: DhcpConfig, expected_skips: &[&str]) -> DhcpServiceConfig {
        let (service, skipped) = service_config(&config);
        let shown: Vec<String> = skipped
            .iter()
            .map(|s| format!("{}: {}", s.entry, s.problem))
            .collect();
        assert_eq!(shown.len(), expected_skips.len(), "{shown:#?}");
        for (got, needle) in shown.iter().zip(expected_skips) {
            assert!(got.contains(needle), "{got:?} lacks {needle:?}");
        }
        service
    }

    #[test]
    fn a_good_configuration_converts_whole() {
        let service = check(
            DhcpConfig {
                interfaces: vec![WireInterface {
                    name: "eth1".into(),
                    address: ip("10.0.0.2"),
                }],
                subnets: vec![DhcpSubnet {
                    mtu: Some(9000),
                    server_ip: Some(ip("10.0.0.2")),
                    ..subnet("10.0.0.0/24", &[("10.0.0.100", "10.0.0.199")])
                }],
                hosts: vec![host("52:54:00:aa:bb:cc", "10.0.0.20")],
            },
            &[],
        );
        assert_eq!(
            service.interfaces,
            vec![DhcpInterface {
                name: "eth1".into(),
                address: ip("10.0.0.2")
            }]
        );
        let engine = &service.engine;
        assert_eq!(engine.subnets.len(), 1);
        let converted = &engine.subnets[0];
        assert_eq!(converted.cidr.to_string(), "10.0.0.0/24");
        assert_eq!(converted.ranges[0].to_string(), "10.0.0.100-10.0.0.199");
        assert_eq!(converted.mtu, Some(9000));
        assert_eq!(converted.server_ip, Some(ip("10.0.0.2")));
        assert_eq!(engine.reservations.len(), 1);
        assert_eq!(engine.reservations[0].ip, ip("10.0.0.20"));
        assert_eq!(engine.pxe_lease_time, Some(30));
    }

    #[test]
    fn bad_entries_are_skipped_and_the_rest_served() {
        let service = check(
            DhcpConfig {
                interfaces: vec![
                    WireInterface {
                        name: "eth1".into(),
                        address: ip("10.0.0.2"),
                    },
                    WireInterface {
                        name: "".into(),
                        address: ip("10.0.0.3"),
                    },
                    WireInterface {
                        name: "eth1".into(),
                        address: ip("10.0.0.2"),
                    },
                    WireInterface {
                        name: "eth2".into(),
                        address: ip("0.0.0.0"),
                    },
                ],
                subnets: vec![
                    subnet(
                        "10.0.0.0/24",
                        &[
                            ("10.0.0.100", "10.0.0.150"),
                            ("10.0.0.160", "10.0.0.150"),
                            ("10.0.1.1", "10.0.1.9"),
                            ("10.0.0.140", "10.0.0.170"),
                        ],
                    ),
                    subnet("10.0.0.0/33", &[]),
                    subnet("not a cidr", &[]),
                    subnet("10.0.0.0/24", &[]),
                    DhcpSubnet {
                        lease_time: 0,
                        server_ip: Some(ip("192.168.0.1")),
                        mtu: Some(100),
                        ..subnet("10.9.0.0/16", &[])
                    },
                ],
                hosts: vec![
                    host("52:54:00:aa:bb:cc", "10.0.0.20"),
                    host("zz:54:00:aa:bb:cc", "10.0.0.21"),
                    host("52:54:00:aa:bb:cd", "172.16.0.1"),
                    host("52:54:00:aa:bb:cc", "10.0.0.22"),
                    host("52:54:00:aa:bb:ce", "10.0.0.20"),
                ],
            },
            &[
                "interface \"\"",
                "interface \"eth1\": listed twice",
                "interface \"eth2\": address 0.0.0.0",
                "range 10.0.0.160-10.0.0.150",
                "range 10.0.1.1-10.0.1.9 of 10.0.0.0/24: not inside",
                "range 10.0.0.140-10.0.0.170 of 10.0.0.0/24: overlaps",
                "subnet \"10.0.0.0/33\"",
                "subnet \"not a cidr\"",
                "subnet \"10.0.0.0/24\": listed twice",
                "lease time of 10.9.0.0/16",
                "server address 192.168.0.1",
                "MTU of 10.9.0.0/16",
                "host zz:54:00:aa:bb:cc",
                "host 52:54:00:aa:bb:cd 172.16.0.1: address is in no served subnet",
                "host 52:54:00:aa:bb:cc 10.0.0.22: MAC already",
                "host 52:54:00:aa:bb:ce 10.0.0.20: address already reserved",
            ],
        );
        assert_eq!(service.interfaces.len(), 1);
        let engine = &service.engine;
        assert_eq!(engine.subnets.len(), 2);
        assert_eq!(engine.subnets[0].ranges.len(), 1);
        assert_eq!(engine.subnets[1].lease_time, DEFAULT_LEASE_TIME);
        assert_eq!(engine.subnets[1].server_ip, None);
        assert_eq!(engine.subnets[1].mtu, None);
        assert_eq!(engine.reservations.len(), 1);
    }

    #[test]
    fn the_empty_configuration_serves_nobody() {
        let service = check(DhcpConfig::default(), &[]);
        assert!(service.interfaces.is_empty());
        assert!(service.engine.subnets.is_empty());
    }
}
