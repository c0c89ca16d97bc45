//! The rack host's network interfaces, as registration reports them: name, kind (physical,
//! bond, bridge, vlan), MAC, parents, VLAN id, whether it is up, MTU and addresses.
//!
//! The list and the addresses come from `getifaddrs` (the network namespace the process is
//! in); kind, parents, VLAN id and MTU from `/sys/class/net/<name>` and `/proc/net/vlan/config`.
//! sysfs shows the namespace it was mounted in, so its entry is used only when its
//! `ifindex` matches the interface's; otherwise those details fall back to defaults.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use maas_domain::MacAddress;
use maas_rpc::RackInterface;

/// IFF_UP and IFF_LOOPBACK from `<linux/if.h>`.
const IFF_UP: u32 = 0x1;
const IFF_LOOPBACK: u32 = 0x8;
/// ARPHRD_LOOPBACK.
const ARPHRD_LOOPBACK: u32 = 772;

/// Where the OS describes interfaces; [`Sources::system`] in production, fixture trees in
/// tests.
#[derive(Clone, Debug)]
pub struct Sources {
    /// `/sys/class/net`.
    pub sys_class_net: PathBuf,
    /// `/proc/net/vlan/config`.
    pub proc_vlan_config: PathBuf,
}

impl Sources {
    pub fn system() -> Sources {
        Sources {
            sys_class_net: PathBuf::from("/sys/class/net"),
            proc_vlan_config: PathBuf::from("/proc/net/vlan/config"),
        }
    }
}

/// What `getifaddrs` says about one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OsInterface {
    pub name: String,
    pub index: Option<u32>,
    pub up: bool,
    pub loopback: bool,
    pub mac: Option<String>,
    /// CIDR form.
    pub addresses: Vec<String>,
}

/// What sysfs says about one interface.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SysfsInterface {
    pub index: Option<u32>,
    pub kind: String,
    pub mac: Option<String>,
    pub parents: Vec<String>,
    pub vid: Option<u16>,
    pub up: Option<bool>,
    pub loopback: bool,
    pub mtu: Option<u32>,
}

fn read_trimmed(path: &Path) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|text| text.trim().to_owned())
}

fn parse_number(text: &str) -> Option<u32> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// A MAC in MAAS's form, or `None` for none or all zeros.
fn normal_mac(text: &str) -> Option<String> {
    let mac: MacAddress = text.trim().parse().ok()?;
    let shown = mac.to_string();
    (shown != "00:00:00:00:00:00").then_some(shown)
}

/// `/proc/net/vlan/config`: `name | vid | lower device` per VLAN, after two header lines.
pub fn parse_vlan_config(text: &str) -> BTreeMap<String, (u16, String)> {
    text.lines()
        .filter_map(|line| {
            let mut fields = line.split('|').map(str::trim);
            let name = fields.next()?;
            let vid = fields.next()?.parse().ok()?;
            let lower = fields.next()?;
            (!name.is_empty() && !lower.is_empty())
                .then(|| (name.to_owned(), (vid, lower.to_owned())))
        })
        .collect()
}

/// Names of entries in `dir` (missing directory: none), sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|list| {
            list.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Reads `<sys_class_net>/<name>`; `None` when there is no such entry.
pub fn read_sysfs(
    sys_class_net: &Path,
    name: &str,
    vlans: &BTreeMap<String, (u16, String)>,
) -> Option<SysfsInterface> {
    let dir = sys_class_net.join(name);
    if !dir.is_dir() {
        return None;
    }
    let devtype = read_trimmed(&dir.join("uevent"))
        .and_then(|uevent| {
            uevent
                .lines()
                .find_map(|line| line.strip_prefix("DEVTYPE=").map(str::to_owned))
        })
        .unwrap_or_default();
    let vlan = vlans.get(name);
    let kind = if dir.join("bonding").is_dir() || devtype == "bond" {
        "bond"
    } else if dir.join("bridge").is_dir() || devtype == "bridge" {
        "bridge"
    } else if vlan.is_some() || devtype == "vlan" {
        "vlan"
    } else {
        "physical"
    };
    let mut parents: Vec<String> = match kind {
        "bond" => read_trimmed(&dir.join("bonding/slaves"))
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        "bridge" => entries(&dir.join("brif")),
        _ => Vec::new(),
    };
    if parents.is_empty() {
        parents = entries(&dir)
            .into_iter()
            .filter_map(|entry| entry.strip_prefix("lower_").map(str::to_owned))
            .collect();
    }
    if parents.is_empty()
        && let Some((_, lower)) = vlan
    {
        parents.push(lower.clone());
    }
    let vid = vlan.map(|(vid, _)| *vid).or_else(|| {
        // Without 8021q's proc file, the conventional `<parent>.<vid>` name.
        (kind == "vlan")
            .then(|| name.rsplit_once('.').and_then(|(_, vid)| vid.parse().ok()))
            .flatten()
    });
    let flags = read_trimmed(&dir.join("flags")).and_then(|f| parse_number(&f));
    let up = flags
        .map(|f| f & IFF_UP != 0)
        .or_else(|| read_trimmed(&dir.join("operstate")).map(|s| s == "up"));
    let loopback = flags.is_some_and(|f| f & IFF_LOOPBACK != 0)
        || read_trimmed(&dir.join("type")).and_then(|t| parse_number(&t)) == Some(ARPHRD_LOOPBACK);
    Some(SysfsInterface {
        index: read_trimmed(&dir.join("ifindex")).and_then(|i| parse_number(&i)),
        kind: kind.to_owned(),
        mac: read_trimmed(&dir.join("address")).and_then(|m| normal_mac(&m)),
        parents,
        vid,
        up,
        loopback,
        mtu: read_trimmed(&dir.join("mtu")).and_then(|m| parse_number(&m)),
    })
}

/// Combines the two views; loopback interfaces are left out.
pub fn merge(os: Vec<OsInterface>, sources: &Sources) -> Vec<RackInterface> {
    let vlans = read_trimmed(&sources.proc_vlan_config)
        .map(|text| parse_vlan_config(&text))
        .unwrap_or_default();
    let mut interfaces = Vec::new();
    for interface in os {
        let sysfs = read_sysfs(&sources.sys_class_net, &interface.name, &vlans)
            // An entry of another namespace's interface of the same name says nothing
            // about this one.
            .filter(|s| {
                interface.index.is_none() || s.index.is_none() || s.index == interface.index
            });
        let loopback = interface.loopback || sysfs.as_ref().is_some_and(|s| s.loopback);
        if loopback {
            continue;
        }
        let sysfs = sysfs.unwrap_or_else(|| SysfsInterface {
            kind: "physical".to_owned(),
            ..SysfsInterface::default()
        });
        interfaces.push(RackInterface {
            mac_address: interface.mac.or(sysfs.mac),
            kind: sysfs.kind,
            parents: sysfs.parents,
            vid: sysfs.vid,
            enabled: interface.up || sysfs.up.unwrap_or(false),
            mtu: sysfs.mtu.unwrap_or(1500),
            addresses: interface.addresses,
            name: interface.name,
        });
    }
    interfaces
}

fn prefix_len(netmask: IpAddr) -> u8 {
    let ones = match netmask {
        IpAddr::V4(v4) => u32::from(v4).count_ones(),
        IpAddr::V6(v6) => u128::from(v6).count_ones(),
    };
    // At most 128 ones fit in an address.
    u8::try_from(ones).unwrap_or(128)
}

fn is_link_local_v6(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80)
}

/// Every interface of the current network namespace, from `getifaddrs`.
pub fn os_interfaces() -> std::io::Result<Vec<OsInterface>> {
    use nix::net::if_::InterfaceFlags;
    let mut by_name: BTreeMap<String, OsInterface> = BTreeMap::new();
    for entry in nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)? {
        let name = entry.interface_name.clone();
        let interface = by_name.entry(name.clone()).or_insert_with(|| OsInterface {
            index: nix::net::if_::if_nametoindex(name.as_str()).ok(),
            name,
            ..OsInterface::default()
        });
        interface.up |= entry.flags.contains(InterfaceFlags::IFF_UP);
        interface.loopback |= entry.flags.contains(InterfaceFlags::IFF_LOOPBACK);
        let Some(address) = entry.address else {
            continue;
        };
        if let Some(link) = address.as_link_addr() {
            if let Some(bytes) = link.addr() {
                let text = bytes
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(":");
                interface.mac = normal_mac(&text).or(interface.mac.take());
            }
            continue;
        }
        let ip = if let Some(v4) = address.as_sockaddr_in() {
            IpAddr::V4(v4.ip())
        } else if let Some(v6) = address.as_sockaddr_in6() {
            IpAddr::V6(v6.ip())
        } else {
            continue;
        };
        if is_link_local_v6(ip) {
            continue;
        }
        let netmask = entry.netmask.and_then(|mask| {
            mask.as_sockaddr_in()
                .map(|m| IpAddr::V4(m.ip()))
                .or_else(|| mask.as_sockaddr_in6().map(|m| IpAddr::V6(m.ip())))
        });
        let prefix = netmask.map(prefix_len).unwrap_or(match ip {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        });
        interface.addresses.push(format!("{ip}/{prefix}"));
    }
    Ok(by_name.into_values().collect())
}

/// The host's interfaces for registration; logs and returns none if the OS cannot be read.
pub fn discover(sources: &Sources) -> Vec<RackInterface> {
    match os_interfaces() {
        Ok(os) => merge(os, sources),
        Err(error) => {
            tracing::warn!(%error, "cannot list network interfaces; registering without them");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tree {
        dir: tempfile::TempDir,
    }

    impl Tree {
        fn new() -> Tree {
            Tree {
                dir: tempfile::tempdir().expect("tempdir"),
            }
        }

        fn file(&self, relative: &str, text: &str) -> &Tree {
            let path = self.dir.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, text).expect("write");
            self
        }

        fn dir(&self, relative: &str) -> &Tree {
            std::fs::create_dir_all(self.dir.path().join(relative)).expect("mkdir");
            self
        }

        fn interface(&self, name: &str, index: u32, mac: &str, flags: &str) -> &Tree {
            self.file(&format!("net/{name}/ifindex"), &format!("{index}\n"))
                .file(&format!("net/{name}/address"), &format!("{mac}\n"))
                .file(&format!("net/{name}/flags"), &format!("{flags}\n"))
                .file(&format!("net/{name}/mtu"), "1500\n")
                .file(&format!("net/{name}/type"), "1\n")
                .file(
                    &format!("net/{name}/uevent"),
                    &format!("INTERFACE={name}\nIFINDEX={index}\n"),
                )
        }

        fn sources(&self) -> Sources {
            Sources {
                sys_class_net: self.dir.path().join("net"),
                proc_vlan_config: self.dir.path().join("proc-vlan-config"),
            }
        }
    }

    fn os(name: &str, index: u32, addresses: &[&str]) -> OsInterface {
        OsInterface {
            name: name.into(),
            index: Some(index),
            up: false,
            loopback: false,
            mac: None,
            addresses: addresses.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    #[test]
    fn kinds_parents_vids_and_flags_from_a_sysfs_tree() {
        let tree = Tree::new();
        tree.interface("lo", 1, "00:00:00:00:00:00", "0x9")
            .file("net/lo/type", "772\n")
            .interface("eth0", 2, "52:54:00:00:00:01", "0x1003")
            .interface("eth1", 3, "52:54:00:00:00:02", "0x1803")
            .interface("eth2", 4, "52:54:00:00:00:02", "0x1803")
            .interface("bond0", 5, "52:54:00:00:00:02", "0x1403")
            .dir("net/bond0/bonding")
            .file("net/bond0/bonding/slaves", "eth1 eth2\n")
            .interface("bond0.100", 6, "52:54:00:00:00:02", "0x1003")
            .file("net/bond0.100/uevent", "DEVTYPE=vlan\nINTERFACE=bond0.100\n")
            .dir("net/bond0.100/lower_bond0")
            .interface("br0", 7, "52:54:00:00:00:03", "0x1002")
            .file("net/br0/mtu", "9000\n")
            .dir("net/br0/bridge")
            .dir("net/br0/brif/eth3")
            .interface("eth0.200", 8, "52:54:00:00:00:01", "0x1003")
            .file(
                "proc-vlan-config",
                "VLAN Dev name    | VLAN ID\nName-Type: VLAN_NAME_TYPE_RAW_PLUS_VID_NO_PAD\neth0.200       | 200  | eth0\n",
            );
        let listed = vec![
            OsInterface {
                loopback: true,
                ..os("lo", 1, &["127.0.0.1/8"])
            },
            OsInterface {
                up: true,
                ..os("eth0", 2, &["10.0.0.2/24", "fd00::2/64"])
            },
            os("bond0", 5, &[]),
            os("bond0.100", 6, &["10.100.0.2/24"]),
            os("br0", 7, &[]),
            os("eth0.200", 8, &[]),
            // In another namespace than sysfs shows: no details but still listed.
            os("eth1", 99, &[]),
        ];
        let found = merge(listed, &tree.sources());
        let summary: Vec<_> = found
            .iter()
            .map(|i| {
                (
                    i.name.as_str(),
                    i.kind.as_str(),
                    i.parents.join(","),
                    i.vid,
                    i.enabled,
                    i.mtu,
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("eth0", "physical", String::new(), None, true, 1500),
                ("bond0", "bond", "eth1,eth2".to_owned(), None, true, 1500),
                (
                    "bond0.100",
                    "vlan",
                    "bond0".to_owned(),
                    Some(100),
                    true,
                    1500
                ),
                ("br0", "bridge", "eth3".to_owned(), None, false, 9000),
                ("eth0.200", "vlan", "eth0".to_owned(), Some(200), true, 1500),
                ("eth1", "physical", String::new(), None, false, 1500),
            ]
        );
        assert_eq!(found[0].mac_address.as_deref(), Some("52:54:00:00:00:01"));
        assert_eq!(found[0].addresses, vec!["10.0.0.2/24", "fd00::2/64"]);
        assert_eq!(found[5].mac_address, None);
    }

    #[test]
    fn vlan_config_lines_and_odd_values() {
        let vlans = parse_vlan_config(
            "VLAN Dev name | VLAN ID\nName-Type: x\neth0.5 | 5 | eth0\nbroken | x | y\n",
        );
        assert_eq!(vlans.get("eth0.5"), Some(&(5, "eth0".to_owned())));
        assert_eq!(vlans.len(), 1);
        assert_eq!(normal_mac("00:00:00:00:00:00"), None);
        assert_eq!(
            normal_mac("52:54:00:AA:BB:CC").as_deref(),
            Some("52:54:00:aa:bb:cc")
        );
        assert_eq!(parse_number("0x1003"), Some(0x1003));
        assert_eq!(prefix_len("255.255.255.0".parse().expect("ip")), 24);
        assert!(is_link_local_v6("fe80::1".parse().expect("ip")));
    }

    #[test]
    fn this_hosts_interfaces_can_be_read() {
        // Whatever the machine has, reading it works and leaves loopback out.
        let found = discover(&Sources::system());
        assert!(found.iter().all(|i| i.name != "lo"), "{found:?}");
    }
}
