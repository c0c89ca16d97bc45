//! A [`BootBackend`] read from a TOML file, for running a rack without a region.
//!
//! The file lists the interfaces to serve DHCP on, the subnets with their ranges, the known
//! machines (MAC, optional fixed address, boot purpose) and the image defaults. See
//! `rack-backend.example.toml` in this crate for every key.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use maas_boot_policy::{BootParams, Purpose};
use maas_dhcp_wire::engine::{EngineConfig, LeaseEvent, Reservation, SubnetConfig};
use maas_dhcp_wire::{IpRange, Ipv4Net};
use maas_domain::MacAddress;
use serde::Deserialize;
use thiserror::Error;
use tokio::sync::watch;

use crate::backend::{
    BackendError, BootBackend, BootRequest, BoxFuture, DhcpInterface, DhcpServiceConfig,
};

#[derive(Debug, Error)]
pub enum FileBackendError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("parsing rack backend config")]
    Parse {
        #[source]
        source: toml::de::Error,
    },
    #[error("subnet {cidr:?}: {problem}")]
    Subnet { cidr: String, problem: String },
    #[error("machine {mac:?}: {problem}")]
    Machine { mac: String, problem: String },
    #[error("boot purpose {purpose:?} for unknown machines is not valid")]
    UnknownPurpose { purpose: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    dhcp: RawDhcp,
    #[serde(default, rename = "subnet")]
    subnets: Vec<RawSubnet>,
    #[serde(default)]
    boot: RawBoot,
    #[serde(default, rename = "machine")]
    machines: Vec<RawMachine>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDhcp {
    #[serde(default, rename = "interface")]
    interfaces: Vec<RawInterface>,
    #[serde(default = "default_pxe_lease_time")]
    pxe_lease_time: u32,
    #[serde(default = "default_offer_hold")]
    offer_hold: u32,
    #[serde(default = "default_decline_hold")]
    decline_hold: u32,
}

impl Default for RawDhcp {
    fn default() -> RawDhcp {
        RawDhcp {
            interfaces: Vec::new(),
            pxe_lease_time: default_pxe_lease_time(),
            offer_hold: default_offer_hold(),
            decline_hold: default_decline_hold(),
        }
    }
}

fn default_pxe_lease_time() -> u32 {
    30
}
fn default_offer_hold() -> u32 {
    30
}
fn default_decline_hold() -> u32 {
    600
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInterface {
    name: String,
    address: Ipv4Addr,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSubnet {
    cidr: String,
    router: Option<Ipv4Addr>,
    #[serde(default)]
    dns_servers: Vec<Ipv4Addr>,
    domain_name: Option<String>,
    #[serde(default = "default_lease_time")]
    lease_time: u32,
    mtu: Option<u16>,
    #[serde(default)]
    ranges: Vec<String>,
    server_ip: Option<Ipv4Addr>,
}

fn default_lease_time() -> u32 {
    600
}

#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
struct RawBoot {
    #[serde(default = "default_osystem")]
    osystem: String,
    #[serde(default = "default_release")]
    release: String,
    #[serde(default = "default_arch")]
    arch: String,
    #[serde(default = "default_subarch")]
    subarch: String,
    #[serde(default = "default_kernel")]
    kernel: String,
    #[serde(default = "default_initrd")]
    initrd: String,
    #[serde(default = "default_root")]
    root: String,
    boot_dtb: Option<String>,
    #[serde(default = "default_domain")]
    domain: String,
    #[serde(default = "default_preseed_url")]
    preseed_url: String,
    #[serde(default = "default_log_port")]
    log_port: u16,
    #[serde(default)]
    extra_opts: String,
    #[serde(default)]
    ephemeral_opts: String,
    #[serde(default = "default_http_port")]
    http_port: u16,
    /// What machines without a `[[machine]]` entry get from the default config paths;
    /// `"none"` answers them with file-not-found.
    #[serde(default = "default_unknown_purpose")]
    unknown_purpose: String,
}

impl Default for RawBoot {
    fn default() -> RawBoot {
        RawBoot {
            osystem: default_osystem(),
            release: default_release(),
            arch: default_arch(),
            subarch: default_subarch(),
            kernel: default_kernel(),
            initrd: default_initrd(),
            root: default_root(),
            boot_dtb: None,
            domain: default_domain(),
            preseed_url: default_preseed_url(),
            log_port: default_log_port(),
            extra_opts: String::new(),
            ephemeral_opts: String::new(),
            http_port: default_http_port(),
            unknown_purpose: default_unknown_purpose(),
        }
    }
}

fn default_osystem() -> String {
    "ubuntu".into()
}
fn default_release() -> String {
    "noble".into()
}
fn default_arch() -> String {
    "amd64".into()
}
fn default_subarch() -> String {
    "generic".into()
}
fn default_kernel() -> String {
    "{osystem}/{arch}/{subarch}/{release}/stable/boot-kernel".into()
}
fn default_initrd() -> String {
    "{osystem}/{arch}/{subarch}/{release}/stable/boot-initrd".into()
}
fn default_root() -> String {
    "{osystem}/{arch}/{subarch}/{release}/stable/squashfs".into()
}
fn default_domain() -> String {
    "maas".into()
}
fn default_preseed_url() -> String {
    "http://{fs_host}:5248/MAAS/metadata/latest/by-id/{system_id}/?op=get_preseed".into()
}
fn default_log_port() -> u16 {
    5247
}
fn default_http_port() -> u16 {
    5248
}
fn default_unknown_purpose() -> String {
    "commissioning".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    mac: String,
    hostname: Option<String>,
    ip: Option<Ipv4Addr>,
    #[serde(default = "default_unknown_purpose")]
    purpose: String,
    system_id: Option<String>,
    osystem: Option<String>,
    release: Option<String>,
    arch: Option<String>,
    subarch: Option<String>,
    extra_opts: Option<String>,
}

/// One known machine after validation.
#[derive(Clone, Debug)]
struct Machine {
    mac: MacAddress,
    hostname: Option<String>,
    purpose: Purpose,
    system_id: Option<String>,
    osystem: Option<String>,
    release: Option<String>,
    arch: Option<String>,
    subarch: Option<String>,
    extra_opts: Option<String>,
}

/// The validated file.
struct Loaded {
    dhcp: DhcpServiceConfig,
    boot: RawBoot,
    unknown_purpose: Option<Purpose>,
    machines: Vec<Machine>,
}

/// A backend whose answers come from a TOML file; [`FileBackend::reload`] re-reads it and the
/// DHCP server picks the change up at once.
pub struct FileBackend {
    path: Option<PathBuf>,
    state: std::sync::RwLock<Arc<LoadedState>>,
    dhcp: watch::Sender<Arc<DhcpServiceConfig>>,
}

struct LoadedState {
    boot: RawBoot,
    unknown_purpose: Option<Purpose>,
    machines: Vec<Machine>,
}

impl FileBackend {
    pub fn load(path: &Path) -> Result<FileBackend, FileBackendError> {
        let text = read(path)?;
        let mut backend = FileBackend::from_toml(&text)?;
        backend.path = Some(path.to_owned());
        Ok(backend)
    }

    pub fn from_toml(text: &str) -> Result<FileBackend, FileBackendError> {
        let loaded = parse(text)?;
        let (dhcp, _) = watch::channel(Arc::new(loaded.dhcp));
        Ok(FileBackend {
            path: None,
            state: std::sync::RwLock::new(Arc::new(LoadedState {
                boot: loaded.boot,
                unknown_purpose: loaded.unknown_purpose,
                machines: loaded.machines,
            })),
            dhcp,
        })
    }

    /// Re-reads the file it was loaded from (no-op for a backend built from a string).
    pub fn reload(&self) -> Result<(), FileBackendError> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        self.replace(&read(path)?)
    }

    /// Replaces the whole configuration with `text`.
    pub fn replace(&self, text: &str) -> Result<(), FileBackendError> {
        let loaded = parse(text)?;
        let state = Arc::new(LoadedState {
            boot: loaded.boot,
            unknown_purpose: loaded.unknown_purpose,
            machines: loaded.machines,
        });
        match self.state.write() {
            Ok(mut guard) => *guard = state,
            Err(poisoned) => *poisoned.into_inner() = state,
        }
        self.dhcp.send_replace(Arc::new(loaded.dhcp));
        Ok(())
    }

    fn snapshot(&self) -> Arc<LoadedState> {
        match self.state.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }
}

fn read(path: &Path) -> Result<String, FileBackendError> {
    std::fs::read_to_string(path).map_err(|source| FileBackendError::Read {
        path: path.to_owned(),
        source,
    })
}

fn parse(text: &str) -> Result<Loaded, FileBackendError> {
    let raw: RawFile = toml::from_str(text).map_err(|source| FileBackendError::Parse { source })?;
    let mut subnets = Vec::new();
    for subnet in &raw.subnets {
        let bad = |problem: String| FileBackendError::Subnet {
            cidr: subnet.cidr.clone(),
            problem,
        };
        let cidr = Ipv4Net::from_str(&subnet.cidr).map_err(|e| bad(e.to_string()))?;
        let mut ranges = Vec::new();
        for text in &subnet.ranges {
            let range = IpRange::from_str(text).map_err(|e| bad(e.to_string()))?;
            if !cidr.contains(range.start()) || !cidr.contains(range.end()) {
                return Err(bad(format!("range {range} is not inside {cidr}")));
            }
            ranges.push(range);
        }
        subnets.push(SubnetConfig {
            cidr,
            router: subnet.router,
            dns_servers: subnet.dns_servers.clone(),
            domain_name: subnet.domain_name.clone(),
            lease_time: subnet.lease_time,
            mtu: subnet.mtu,
            ranges,
            server_ip: subnet.server_ip,
        });
    }
    let mut machines = Vec::new();
    let mut reservations = Vec::new();
    for machine in &raw.machines {
        let bad = |problem: String| FileBackendError::Machine {
            mac: machine.mac.clone(),
            problem,
        };
        let mac = MacAddress::from_str(&machine.mac).map_err(|e| bad(e.to_string()))?;
        let purpose = Purpose::from_str(&machine.purpose).map_err(|e| bad(e.to_string()))?;
        if let Some(ip) = machine.ip {
            if !subnets.iter().any(|s| s.cidr.contains(ip)) {
                return Err(bad(format!("address {ip} is in no configured subnet")));
            }
            reservations.push(Reservation {
                mac,
                ip,
                hostname: machine.hostname.clone(),
            });
        }
        machines.push(Machine {
            mac,
            hostname: machine.hostname.clone(),
            purpose,
            system_id: machine.system_id.clone(),
            osystem: machine.osystem.clone(),
            release: machine.release.clone(),
            arch: machine.arch.clone(),
            subarch: machine.subarch.clone(),
            extra_opts: machine.extra_opts.clone(),
        });
    }
    let unknown_purpose = match raw.boot.unknown_purpose.as_str() {
        "none" => None,
        other => Some(
            Purpose::from_str(other).map_err(|_| FileBackendError::UnknownPurpose {
                purpose: other.to_owned(),
            })?,
        ),
    };
    let dhcp = DhcpServiceConfig {
        interfaces: raw
            .dhcp
            .interfaces
            .iter()
            .map(|i| DhcpInterface {
                name: i.name.clone(),
                address: i.address,
            })
            .collect(),
        engine: EngineConfig {
            subnets,
            reservations,
            pxe_lease_time: Some(raw.dhcp.pxe_lease_time),
            offer_hold: raw.dhcp.offer_hold,
            decline_hold: raw.dhcp.decline_hold,
        },
    };
    Ok(Loaded {
        dhcp,
        boot: raw.boot,
        unknown_purpose,
        machines,
    })
}

impl LoadedState {
    fn decide(&self, request: &BootRequest) -> Option<BootParams> {
        let machine = request
            .mac
            .and_then(|mac| self.machines.iter().find(|m| m.mac == mac));
        let (purpose, hostname) = match machine {
            Some(machine) => (
                machine.purpose,
                machine
                    .hostname
                    .clone()
                    .unwrap_or_else(|| "maas-node".into()),
            ),
            // An unknown MAC asking for its own file gets nothing, so the loader moves on
            // to the default path, which is answered for unknown machines.
            None if request.mac.is_some() => return None,
            None => (self.unknown_purpose?, "maas-enlist".into()),
        };
        let boot = &self.boot;
        let pick = |own: Option<&String>, from_request: Option<&String>, default: &String| {
            own.or(from_request).unwrap_or(default).clone()
        };
        let osystem = pick(
            machine.and_then(|m| m.osystem.as_ref()),
            None,
            &boot.osystem,
        );
        let release = pick(
            machine.and_then(|m| m.release.as_ref()),
            None,
            &boot.release,
        );
        let arch = pick(
            machine.and_then(|m| m.arch.as_ref()),
            request.arch.as_ref(),
            &boot.arch,
        );
        let subarch = pick(
            machine.and_then(|m| m.subarch.as_ref()),
            request.subarch.as_ref(),
            &boot.subarch,
        );
        let system_id = machine.and_then(|m| m.system_id.clone());
        let fill = |template: &str| {
            template
                .replace("{osystem}", &osystem)
                .replace("{release}", &release)
                .replace("{arch}", &arch)
                .replace("{subarch}", &subarch)
                .replace("{fs_host}", &host_text(request.local_ip))
                .replace("{system_id}", system_id.as_deref().unwrap_or(""))
        };
        Some(BootParams {
            purpose,
            kernel: fill(&boot.kernel),
            initrd: fill(&boot.initrd),
            xinstall_path: Some(fill(&boot.root)),
            boot_dtb: boot.boot_dtb.as_deref().map(fill),
            preseed_url: fill(&boot.preseed_url),
            hostname,
            domain: boot.domain.clone(),
            fs_host: request.local_ip,
            log_host: request.local_ip.to_string(),
            log_port: boot.log_port,
            extra_opts: machine
                .and_then(|m| m.extra_opts.clone())
                .unwrap_or_else(|| boot.extra_opts.clone()),
            ephemeral_opts: boot.ephemeral_opts.clone(),
            system_id,
            http_port: boot.http_port,
            osystem,
            release,
            arch,
            subarch,
        })
    }
}

fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl BootBackend for FileBackend {
    fn dhcp_config(&self) -> watch::Receiver<Arc<DhcpServiceConfig>> {
        self.dhcp.subscribe()
    }

    fn boot_config<'a>(
        &'a self,
        request: &'a BootRequest,
    ) -> BoxFuture<'a, Result<Option<BootParams>, BackendError>> {
        let decision = self.snapshot().decide(request);
        Box::pin(async move { Ok(decision) })
    }

    fn lease_changed(&self, event: &LeaseEvent) {
        // Nobody to tell without a region; the lease log under the state directory keeps it.
        tracing::debug!(?event, "lease changed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::Protocol;

    const EXAMPLE: &str = include_str!("../rack-backend.example.toml");

    fn request(mac: Option<&str>) -> BootRequest {
        BootRequest {
            mac: mac.map(|m| m.parse().expect("mac")),
            hardware_uuid: None,
            arch: None,
            subarch: None,
            local_ip: "10.20.0.1".parse().expect("ip"),
            remote_ip: "10.20.0.100".parse().expect("ip"),
            bios_boot_method: "pxe",
            protocol: Protocol::Tftp,
        }
    }

    #[test]
    fn example_config_parses() {
        let backend = FileBackend::from_toml(EXAMPLE).expect("example parses");
        let dhcp = backend.dhcp_config().borrow().clone();
        assert_eq!(dhcp.interfaces.len(), 1);
        assert_eq!(dhcp.engine.subnets.len(), 1);
        assert_eq!(dhcp.engine.reservations.len(), 1);
    }

    #[test]
    fn decisions_table() {
        let backend = FileBackend::from_toml(EXAMPLE).expect("example parses");
        let state = backend.snapshot();
        let cases = [
            (Some("52:54:00:00:00:01"), Some((Purpose::Local, "node1"))),
            (
                Some("52:54:00:00:00:02"),
                Some((Purpose::Commissioning, "node2")),
            ),
            (Some("52:54:00:99:99:99"), None),
            (None, Some((Purpose::Commissioning, "maas-enlist"))),
        ];
        for (mac, expected) in cases {
            let decided = state.decide(&request(mac));
            assert_eq!(
                decided.as_ref().map(|p| (p.purpose, p.hostname.as_str())),
                expected,
                "{mac:?}"
            );
        }
        let node2 = state
            .decide(&request(Some("52:54:00:00:00:02")))
            .expect("known");
        assert_eq!(
            node2.kernel,
            "ubuntu/amd64/generic/noble/stable/boot-kernel"
        );
        assert_eq!(
            node2.preseed_url,
            "http://10.20.0.1:5248/MAAS/metadata/latest/by-id/xyz234/?op=get_preseed"
        );
    }

    #[test]
    fn rejects_bad_config() {
        let cases = [
            ("[[subnet]]\ncidr = \"10.0.0.0\"\n", "subnet \"10.0.0.0\""),
            (
                "[[subnet]]\ncidr = \"10.0.0.0/24\"\nranges = [\"10.0.1.1-10.0.1.9\"]\n",
                "range 10.0.1.1-10.0.1.9 is not inside 10.0.0.0/24",
            ),
            ("[[machine]]\nmac = \"zz\"\n", "machine \"zz\""),
            (
                "[[machine]]\nmac = \"52:54:00:00:00:01\"\nip = \"10.9.9.9\"\n",
                "is in no configured subnet",
            ),
            ("[boot]\nunknown_purpose = \"dance\"\n", "is not valid"),
            ("bogus = 1\n", "parsing"),
        ];
        for (text, needle) in cases {
            let error = FileBackend::from_toml(text).err().expect("rejected");
            let shown = format!(
                "{error}: {}",
                std::error::Error::source(&error)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            assert!(shown.contains(needle), "{text:?}: {shown}");
        }
    }

    #[test]
    fn replace_pushes_dhcp_changes() {
        let backend = FileBackend::from_toml("").expect("empty parses");
        let mut changes = backend.dhcp_config();
        assert!(changes.borrow().interfaces.is_empty());
        backend.replace(EXAMPLE).expect("example parses");
        assert!(changes.has_changed().expect("sender alive"));
        assert_eq!(changes.borrow_and_update().interfaces.len(), 1);
    }
}
