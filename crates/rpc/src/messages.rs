//! What region and rack say to each other. Every frame is one JSON object; the `frame` field
//! names its kind. Calls carry an id that their reply repeats; pushes are one-way.

use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

/// The `Upgrade` token the rack asks for on the region's HTTP port.
pub const UPGRADE_TOKEN: &str = "maas-rack-link/1";
/// Path of the link endpoint under the region URL's path (`/MAAS` + this).
pub const LINK_PATH: &str = "/rpc/link";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "frame", rename_all = "snake_case")]
pub enum Frame {
    /// Rack → region, first frame: a fresh random challenge (hex).
    Hello {
        rack_nonce: String,
    },
    /// Region → rack: the region's proof over both nonces, and its own challenge.
    Challenge {
        region: String,
        region_nonce: String,
        region_proof: String,
    },
    /// Rack → region: the rack's proof over both nonces.
    Proof {
        rack_proof: String,
    },
    /// Region → rack: authenticated; calls may flow both ways.
    Welcome,
    /// Region → rack, then the region closes the link.
    Refused {
        reason: String,
    },
    Call {
        id: u64,
        call: Call,
    },
    Reply {
        id: u64,
        outcome: Outcome,
    },
    Push {
        push: Push,
    },
}

impl Frame {
    pub fn kind(&self) -> &'static str {
        match self {
            Frame::Hello { .. } => "hello",
            Frame::Challenge { .. } => "challenge",
            Frame::Proof { .. } => "proof",
            Frame::Welcome => "welcome",
            Frame::Refused { .. } => "refused",
            Frame::Call { .. } => "call",
            Frame::Reply { .. } => "reply",
            Frame::Push { .. } => "push",
        }
    }
}

/// A request; the peer answers each with one [`Outcome`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum Call {
    /// Either way: liveness.
    Ping,
    /// Rack → region: who I am and what my interfaces are; answered with `Registered`.
    Register(Registration),
    /// Rack → region: what a booting machine gets (MAAS `GetBootConfig`).
    BootConfig(BootConfigRequest),
    /// Rack → region: lease changes, oldest first (MAAS `UpdateLeases`).
    Leases(Vec<LeaseUpdate>),
    /// Rack → region: the state of the rack's services (MAAS `UpdateServices`).
    Services(Vec<ServiceState>),
    /// Rack → region: a booting machine cannot be served (missing image and the like).
    MarkNodeFailed {
        system_id: String,
        error_description: String,
    },
}

impl Call {
    pub fn name(&self) -> &'static str {
        match self {
            Call::Ping => "ping",
            Call::Register(_) => "register",
            Call::BootConfig(_) => "boot_config",
            Call::Leases(_) => "leases",
            Call::Services(_) => "services",
            Call::MarkNodeFailed { .. } => "mark_node_failed",
        }
    }
}

/// The answer to a [`Call`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", content = "value", rename_all = "snake_case")]
pub enum Outcome {
    Pong,
    Done,
    Registered(Registered),
    /// `None`: the region has nothing for this machine (MAAS's `BootConfigNoResponse`).
    BootConfig(Option<Box<BootConfigReply>>),
    Error(RemoteError),
}

/// A call the peer could not carry out; `code` is MAAS's error name where one exists
/// (`NoSuchNode`, `NotRegistered`, ...).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    pub code: String,
    pub message: String,
}

impl RemoteError {
    pub fn new(code: &str, message: impl Into<String>) -> RemoteError {
        RemoteError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// One-way messages from the region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", content = "args", rename_all = "snake_case")]
pub enum Push {
    /// Everything the rack's DHCP server serves now; replaces what it had.
    Dhcp(DhcpConfig),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registration {
    /// The id this rack was given before, if any.
    pub system_id: Option<String>,
    pub hostname: String,
    pub interfaces: Vec<RackInterface>,
    /// The rack's software version.
    pub version: String,
    /// The region URL as the rack was configured with it.
    pub url: String,
}

/// One network interface of the rack host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RackInterface {
    pub name: String,
    /// `physical`, `bond`, `bridge` or `vlan`.
    pub kind: String,
    pub mac_address: Option<String>,
    /// Names of the interfaces this one sits on (bond members, a VLAN's parent).
    #[serde(default)]
    pub parents: Vec<String>,
    /// 802.1Q id for `vlan` interfaces.
    pub vid: Option<u16>,
    pub enabled: bool,
    pub mtu: u32,
    /// Addresses in CIDR form, `192.168.10.2/24`.
    #[serde(default)]
    pub addresses: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Registered {
    pub system_id: String,
    /// The region's name for itself (`hostname:pid=N`).
    pub region: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootConfigRequest {
    pub mac: Option<String>,
    pub hardware_uuid: Option<String>,
    pub arch: Option<String>,
    pub subarch: Option<String>,
    /// The rack address that received the request.
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    /// `pxe`, `uefi`, `ipxe`, ...
    pub bios_boot_method: String,
    /// `tftp` or `http`.
    pub protocol: String,
}

/// MAAS's `GetBootConfig` response fields that the boot loaders' configs use.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BootConfigReply {
    /// `commissioning`, `enlist`, `xinstall`, `local`, `rescue` or `poweroff`.
    pub purpose: String,
    pub arch: String,
    pub subarch: String,
    pub osystem: String,
    pub release: String,
    /// Image paths relative to the rack's `/images/`.
    pub kernel: String,
    pub initrd: String,
    pub boot_dtb: Option<String>,
    pub xinstall_path: Option<String>,
    pub hostname: String,
    pub domain: String,
    pub preseed_url: String,
    pub fs_host: IpAddr,
    pub log_host: String,
    pub log_port: u16,
    pub extra_opts: String,
    pub ephemeral_opts: String,
    pub system_id: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseAction {
    Commit,
    Expiry,
    Release,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaseUpdate {
    pub action: LeaseAction,
    pub mac: String,
    pub ip: IpAddr,
    /// Unix seconds when the rack saw the change.
    pub timestamp: i64,
    pub lease_time: Option<u32>,
    pub hostname: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceState {
    /// `rackd`, `dhcpd`, `tftp`, `http`, ...
    pub name: String,
    /// `running`, `degraded`, `dead`, `off` or `unknown`.
    pub status: String,
    pub status_info: String,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DhcpConfig {
    /// Interfaces to answer on, with the rack's address there. Empty: answer nobody.
    pub interfaces: Vec<DhcpInterface>,
    pub subnets: Vec<DhcpSubnet>,
    pub hosts: Vec<DhcpHost>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpInterface {
    pub name: String,
    pub address: Ipv4Addr,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DhcpSubnet {
    /// `10.0.0.0/24`.
    pub cidr: String,
    pub router: Option<Ipv4Addr>,
    pub dns_servers: Vec<Ipv4Addr>,
    pub domain_name: Option<String>,
    /// Seconds.
    pub lease_time: u32,
    pub mtu: Option<u16>,
    /// Dynamic ranges, inclusive.
    pub ranges: Vec<(Ipv4Addr, Ipv4Addr)>,
    /// The rack's address on this subnet (server identifier, next-server).
    pub server_ip: Option<Ipv4Addr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DhcpHost {
    pub mac: String,
    pub ip: Ipv4Addr,
    pub hostname: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_tagged_json() {
        let frame = Frame::Call {
            id: 7,
            call: Call::Services(vec![ServiceState {
                name: "tftp".into(),
                status: "running".into(),
                status_info: String::new(),
            }]),
        };
        let text = serde_json::to_string(&frame).unwrap();
        assert_eq!(
            text,
            r#"{"frame":"call","id":7,"call":{"op":"services","args":[{"name":"tftp","status":"running","status_info":""}]}}"#
        );
        assert_eq!(serde_json::from_str::<Frame>(&text).unwrap(), frame);
        let ping = serde_json::to_string(&Frame::Call {
            id: 1,
            call: Call::Ping,
        })
        .unwrap();
        assert_eq!(ping, r#"{"frame":"call","id":1,"call":{"op":"ping"}}"#);
        let none = Frame::Reply {
            id: 2,
            outcome: Outcome::BootConfig(None),
        };
        let text = serde_json::to_string(&none).unwrap();
        assert_eq!(serde_json::from_str::<Frame>(&text).unwrap(), none);
    }
}
