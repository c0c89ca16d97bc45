//! NICs (`resources.network`) and interface state with addresses (`networks`).
//!
//! Addresses come from `/proc/net/fib_trie` (local IPv4 addresses), `/proc/net/route`
//! (which interface and prefix each belongs to) and `/proc/net/if_inet6`, so no netlink
//! or ioctl is needed.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::sysfs::Sysfs;
use super::system::{pci_address_in, pci_names};

#[derive(Clone, Debug, Serialize)]
pub struct Network {
    pub cards: Vec<Card>,
    pub total: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Card {
    pub driver: String,
    pub driver_version: String,
    pub ports: Vec<Port>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sriov: Option<Sriov>,
    pub numa_node: u64,
    pub pci_address: String,
    pub vendor: String,
    pub vendor_id: String,
    pub product: String,
    pub product_id: String,
    pub firmware_version: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct Sriov {
    pub current_vfs: u64,
    pub maximum_vfs: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Port {
    pub id: String,
    pub address: String,
    pub port: u64,
    pub protocol: &'static str,
    pub supported_modes: Vec<String>,
    pub supported_ports: Vec<String>,
    pub port_type: String,
    pub transceiver_type: String,
    pub auto_negotiation: bool,
    pub link_detected: bool,
    /// Mbit/s; 0 when unknown or down.
    pub link_speed: u64,
    pub link_duplex: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct NetworkState {
    pub addresses: Vec<NetworkAddress>,
    pub hwaddr: String,
    pub mtu: u64,
    pub state: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NetworkAddress {
    pub family: &'static str,
    pub address: String,
    pub netmask: String,
    pub scope: &'static str,
}

pub fn collect_cards(fs: &Sysfs) -> Network {
    let mut cards: Vec<Card> = Vec::new();
    for name in fs.entries("sys/class/net") {
        let base = format!("sys/class/net/{name}");
        if fs.link(&format!("{base}/device")).is_none() {
            continue; // virtual: lo, bridges, bonds, VLANs, veth
        }
        let device = fs.resolve(&format!("{base}/device")).unwrap_or_default();
        let pci_address = pci_address_in(&device).unwrap_or_default();
        let driver = fs
            .link_name(&format!("{base}/device/driver"))
            .unwrap_or_default();
        let port = Port {
            id: name.clone(),
            address: fs.text(&format!("{base}/address")).unwrap_or_default(),
            port: fs.number(&format!("{base}/dev_port")).unwrap_or(0),
            protocol: "ethernet",
            supported_modes: Vec::new(),
            supported_ports: Vec::new(),
            port_type: String::new(),
            transceiver_type: String::new(),
            auto_negotiation: false,
            link_detected: fs.number(&format!("{base}/carrier")) == Some(1),
            link_speed: fs
                .signed(&format!("{base}/speed"))
                .and_then(|speed| u64::try_from(speed).ok())
                .unwrap_or(0),
            link_duplex: fs
                .text(&format!("{base}/duplex"))
                .filter(|duplex| duplex != "unknown")
                .unwrap_or_default(),
        };
        if !pci_address.is_empty()
            && let Some(card) = cards
                .iter_mut()
                .find(|card| card.pci_address == pci_address)
        {
            card.ports.push(port);
            continue;
        }
        let pci = format!("sys/bus/pci/devices/{pci_address}");
        let (vendor_id, product_id) = if pci_address.is_empty() {
            (String::new(), String::new())
        } else {
            (
                fs.hex(&format!("{pci}/vendor"))
                    .map(|v| format!("{v:04x}"))
                    .unwrap_or_default(),
                fs.hex(&format!("{pci}/device"))
                    .map(|v| format!("{v:04x}"))
                    .unwrap_or_default(),
            )
        };
        let (vendor, product) = pci_names(fs, &vendor_id, &product_id);
        let sriov = fs
            .number(&format!("{pci}/sriov_totalvfs"))
            .filter(|_| !pci_address.is_empty())
            .map(|maximum_vfs| Sriov {
                current_vfs: fs.number(&format!("{pci}/sriov_numvfs")).unwrap_or(0),
                maximum_vfs,
            });
        cards.push(Card {
            driver_version: fs
                .text(&format!("sys/module/{driver}/version"))
                .unwrap_or_default(),
            driver,
            ports: vec![port],
            sriov,
            numa_node: fs
                .signed(&format!("{base}/device/numa_node"))
                .or_else(|| fs.signed(&format!("{pci}/numa_node")))
                .and_then(|node| u64::try_from(node).ok())
                .unwrap_or(0),
            pci_address,
            vendor,
            vendor_id,
            product,
            product_id,
            firmware_version: String::new(),
        });
    }
    Network {
        total: cards.len() as u64,
        cards,
    }
}

pub fn collect_states(fs: &Sysfs) -> BTreeMap<String, NetworkState> {
    let mut addresses = ipv4_addresses(fs);
    for (name, address) in ipv6_addresses(fs) {
        addresses.entry(name).or_default().push(address);
    }
    fs.entries("sys/class/net")
        .into_iter()
        .map(|name| {
            let base = format!("sys/class/net/{name}");
            let kind = match fs.number(&format!("{base}/type")) {
                Some(772) => "loopback",
                _ => "broadcast",
            };
            let state = match fs.text(&format!("{base}/operstate")).as_deref() {
                Some("up") | Some("unknown")
                    if fs
                        .number(&format!("{base}/flags"))
                        .is_none_or(|f| f & 1 == 1) =>
                {
                    "up"
                }
                _ => "down",
            };
            let state = NetworkState {
                addresses: addresses.remove(&name).unwrap_or_default(),
                hwaddr: fs.text(&format!("{base}/address")).unwrap_or_default(),
                mtu: fs.number(&format!("{base}/mtu")).unwrap_or(0),
                state: state.to_owned(),
                kind,
            };
            (name, state)
        })
        .collect()
}

/// Local IPv4 addresses (fib_trie `/32 host LOCAL` leaves) matched to the interface and
/// prefix of the route that contains them.
fn ipv4_addresses(fs: &Sysfs) -> BTreeMap<String, Vec<NetworkAddress>> {
    let mut locals: Vec<Ipv4Addr> = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in fs.text("proc/net/fib_trie").unwrap_or_default().lines() {
        let line = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Ok(address) = line.parse::<Ipv4Addr>() {
            last = Some(address);
        } else if line.starts_with("/32 host LOCAL")
            && let Some(address) = last
            && !locals.contains(&address)
        {
            locals.push(address);
        }
    }
    // /proc/net/route: Iface Destination Gateway Flags RefCnt Use Metric Mask ...
    // Addresses are the kernel's native (little-endian) words printed in hex.
    let word = |hex: &str| {
        u32::from_str_radix(hex, 16)
            .ok()
            .map(|value| u32::from(Ipv4Addr::from(value.to_le_bytes())))
    };
    let mut routes: Vec<(String, u32, u32)> = Vec::new();
    for line in fs
        .text("proc/net/route")
        .unwrap_or_default()
        .lines()
        .skip(1)
    {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        if let (Some(destination), Some(mask)) = (word(fields[1]), word(fields[7]))
            && mask != 0
        {
            routes.push((fields[0].to_owned(), destination, mask));
        }
    }
    let mut by_interface: BTreeMap<String, Vec<NetworkAddress>> = BTreeMap::new();
    for address in locals {
        let value = u32::from(address);
        let best = routes
            .iter()
            .filter(|(_, destination, mask)| value & mask == *destination)
            .max_by_key(|(_, _, mask)| mask.count_ones());
        let (name, prefix) = match best {
            Some((name, _, mask)) => (name.clone(), mask.count_ones()),
            None if address.is_loopback() => ("lo".to_owned(), 8),
            None => continue,
        };
        by_interface.entry(name).or_default().push(NetworkAddress {
            family: "inet",
            address: address.to_string(),
            netmask: prefix.to_string(),
            scope: if address.is_loopback() {
                "local"
            } else {
                "global"
            },
        });
    }
    by_interface
}

/// `/proc/net/if_inet6`: address, ifindex, prefix length, scope, flags, name.
fn ipv6_addresses(fs: &Sysfs) -> Vec<(String, NetworkAddress)> {
    let mut addresses = Vec::new();
    for line in fs.text("proc/net/if_inet6").unwrap_or_default().lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [hex, _, prefix, scope, _, name] = fields.as_slice() else {
            continue;
        };
        let Ok(value) = u128::from_str_radix(hex, 16) else {
            continue;
        };
        let Ok(prefix) = u8::from_str_radix(prefix, 16) else {
            continue;
        };
        let scope = match *scope {
            "00" => "global",
            "20" => "link",
            "10" => "local",
            _ => "global",
        };
        addresses.push((
            (*name).to_owned(),
            NetworkAddress {
                family: "inet6",
                address: Ipv6Addr::from(value).to_string(),
                netmask: prefix.to_string(),
                scope,
            },
        ));
    }
    addresses
}
