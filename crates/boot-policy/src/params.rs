//! What the region decided for one booting machine (its `GetBootConfig` answer, §3.3), and
//! the kernel command line built from it (§3.4).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::BootPolicyError;
use crate::method::HttpBase;

/// Why the machine is booting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    Commissioning,
    /// An unknown machine enlisting itself.
    Enlist,
    /// Deployment: the ephemeral environment that runs the installer.
    Xinstall,
    /// Boot from the local disk.
    Local,
    /// Rescue mode: the ephemeral environment, kept running.
    Rescue,
    Poweroff,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::Commissioning => "commissioning",
            Purpose::Enlist => "enlist",
            Purpose::Xinstall => "xinstall",
            Purpose::Local => "local",
            Purpose::Rescue => "rescue",
            Purpose::Poweroff => "poweroff",
        }
    }

    /// Whether the machine boots the network ephemeral environment (kernel, initrd, root).
    pub fn is_ephemeral(self) -> bool {
        match self {
            Purpose::Commissioning | Purpose::Enlist | Purpose::Xinstall | Purpose::Rescue => true,
            Purpose::Local | Purpose::Poweroff => false,
        }
    }

    /// The line the loader prints while booting.
    pub fn description(self) -> &'static str {
        match self {
            Purpose::Commissioning => "Commissioning",
            Purpose::Enlist => "Enlisting",
            Purpose::Xinstall => "Installation",
            Purpose::Local => "Local boot",
            Purpose::Rescue => "Rescue mode",
            Purpose::Poweroff => "Power off",
        }
    }
}

impl FromStr for Purpose {
    type Err = BootPolicyError;

    fn from_str(text: &str) -> Result<Purpose, BootPolicyError> {
        match text {
            "commissioning" => Ok(Purpose::Commissioning),
            "enlist" | "enlistment" => Ok(Purpose::Enlist),
            "xinstall" | "install" | "deploy" => Ok(Purpose::Xinstall),
            "local" | "local-device" => Ok(Purpose::Local),
            "rescue" => Ok(Purpose::Rescue),
            "poweroff" => Ok(Purpose::Poweroff),
            other => Err(BootPolicyError::UnknownPurpose {
                purpose: other.to_owned(),
            }),
        }
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The boot decision for one machine: the fields of MAAS's `GetBootConfig` response that
/// the templates use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootParams {
    pub purpose: Purpose,
    /// Debian architecture (`amd64`, `arm64`, ...).
    pub arch: String,
    pub subarch: String,
    pub osystem: String,
    pub release: String,
    /// Image paths relative to `/images/`.
    pub kernel: String,
    pub initrd: String,
    pub boot_dtb: Option<String>,
    /// Root image path relative to `/images/` (squashfs, or a `.tgz`/`.txz` root tarball).
    pub xinstall_path: Option<String>,
    pub hostname: String,
    pub domain: String,
    pub preseed_url: String,
    /// The rack address the machine fetches files from (the address that received its
    /// request).
    pub fs_host: IpAddr,
    pub log_host: String,
    pub log_port: u16,
    /// Options after `---`, copied into the installed system's boot loader.
    pub extra_opts: String,
    pub ephemeral_opts: String,
    pub system_id: Option<String>,
    /// The rack's HTTP boot port (5248).
    pub http_port: u16,
}

impl BootParams {
    pub fn http_base(&self) -> HttpBase {
        HttpBase {
            host: self.fs_host,
            port: self.http_port,
        }
    }

    pub fn kernel_url(&self) -> String {
        format!("{}/images/{}", self.http_base(), self.kernel)
    }

    pub fn initrd_url(&self) -> String {
        format!("{}/images/{}", self.http_base(), self.initrd)
    }

    /// The kernel file name, as iPXE's `imgargs` wants it.
    pub fn kernel_name(&self) -> &str {
        self.kernel.rsplit('/').next().unwrap_or(&self.kernel)
    }

    /// The kernel command line of §3.4, without `BOOTIF` (each loader appends its own).
    /// `escape_braces` is for GRUB, where `{` and `}` are syntax.
    pub fn kernel_command_line(&self, escape_braces: bool) -> String {
        let mut parts: Vec<String> = vec!["nomodeset".into()];
        let root_path = self.xinstall_path.clone().unwrap_or_else(|| {
            // Default root: the squashfs beside the kernel.
            match self.kernel.rsplit_once('/') {
                Some((dir, _)) => format!("{dir}/squashfs"),
                None => "squashfs".into(),
            }
        });
        let is_tar = root_path.ends_with(".tgz") || root_path.ends_with(".txz");
        let root_kind = if is_tar { "tar" } else { "squash" };
        parts.push(format!(
            "root={root_kind}:{}/images/{root_path}",
            self.http_base()
        ));
        match self.fs_host {
            IpAddr::V4(_) => {
                parts.push(format!("ip=::::{}:BOOTIF:dhcp", self.hostname));
                parts.push("ip6=off".into());
            }
            IpAddr::V6(_) => {
                parts.push("ip=off".into());
                parts.push("ip6=dhcp".into());
            }
        }
        let datasource = if escape_braces {
            r"cc:\{'datasource_list': ['MAAS']\}end_cc"
        } else {
            "cc:{'datasource_list': ['MAAS']}end_cc"
        };
        parts.push(datasource.into());
        parts.push(format!("cloud-config-url={}", self.preseed_url));
        if !is_tar {
            parts.push("ro overlayroot=tmpfs overlayroot_cfgdisk=disabled".into());
        }
        if self.osystem == "ubuntu" && ubuntu_before_jammy(&self.release) {
            parts.push("apparmor=0".into());
        }
        parts.push(format!(
            "log_host={} log_port={}",
            self.log_host, self.log_port
        ));
        match self.arch.as_str() {
            "armhf" => parts.push("console=ttyAMA0".into()),
            "ppc64el" => parts.push("rootdelay=60".into()),
            _ => {}
        }
        if !self.ephemeral_opts.trim().is_empty() {
            parts.push(self.ephemeral_opts.trim().to_owned());
        }
        parts.push("---".into());
        if !self.extra_opts.trim().is_empty() {
            parts.push(self.extra_opts.trim().to_owned());
        }
        parts.join(" ")
    }
}

/// Ubuntu series before jammy (22.04), which still need `apparmor=0` in the ephemeral
/// environment. Unknown names are taken as newer.
fn ubuntu_before_jammy(release: &str) -> bool {
    const OLDER: [&str; 10] = [
        "precise", "quantal", "raring", "saucy", "trusty", "xenial", "yakkety", "bionic", "focal",
        "groovy",
    ];
    OLDER.contains(&release) || release == "hirsute" || release == "impish"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> BootParams {
        BootParams {
            purpose: Purpose::Commissioning,
            arch: "amd64".into(),
            subarch: "ga-24.04".into(),
            osystem: "ubuntu".into(),
            release: "noble".into(),
            kernel: "a1b2c3/ubuntu/amd64/ga-24.04/noble/stable/boot-kernel".into(),
            initrd: "a1b2c3/ubuntu/amd64/ga-24.04/noble/stable/boot-initrd".into(),
            boot_dtb: None,
            xinstall_path: Some("a1b2c3/ubuntu/amd64/ga-24.04/noble/stable/squashfs".into()),
            hostname: "node1".into(),
            domain: "maas".into(),
            preseed_url: "http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/?op=get_preseed"
                .into(),
            fs_host: "10.0.0.1".parse().expect("ip"),
            log_host: "10.0.0.1".into(),
            log_port: 5247,
            extra_opts: String::new(),
            ephemeral_opts: String::new(),
            system_id: Some("abc123".into()),
            http_port: 5248,
        }
    }

    fn check(change: impl FnOnce(&mut BootParams), escape: bool, expected: &str) {
        let mut p = params();
        change(&mut p);
        assert_eq!(p.kernel_command_line(escape), expected);
    }

    #[test]
    fn command_line_table() {
        let preseed = "cloud-config-url=http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/?op=get_preseed";
        let root = "root=squash:http://10.0.0.1:5248/images/a1b2c3/ubuntu/amd64/ga-24.04/noble/stable/squashfs";
        let overlay = "ro overlayroot=tmpfs overlayroot_cfgdisk=disabled";
        let logs = "log_host=10.0.0.1 log_port=5247";
        let cc = "cc:{'datasource_list': ['MAAS']}end_cc";
        check(
            |_| {},
            false,
            &format!(
                "nomodeset {root} ip=::::node1:BOOTIF:dhcp ip6=off {cc} {preseed} {overlay} {logs} ---"
            ),
        );
        check(
            |_| {},
            true,
            &format!(
                "nomodeset {root} ip=::::node1:BOOTIF:dhcp ip6=off cc:\\{{'datasource_list': ['MAAS']\\}}end_cc {preseed} {overlay} {logs} ---"
            ),
        );
        check(
            |p| {
                p.release = "focal".into();
                p.extra_opts = "console=ttyS0 ".into();
                p.ephemeral_opts = "nvme-core.multipath=0".into();
            },
            false,
            &format!(
                "nomodeset {root} ip=::::node1:BOOTIF:dhcp ip6=off {cc} {preseed} {overlay} apparmor=0 {logs} nvme-core.multipath=0 --- console=ttyS0"
            ),
        );
        check(
            |p| {
                p.xinstall_path = Some("c/centos/amd64/generic/8/stable/root-tgz.tgz".into());
                p.osystem = "centos".into();
                p.release = "focal".into();
            },
            false,
            &format!(
                "nomodeset root=tar:http://10.0.0.1:5248/images/c/centos/amd64/generic/8/stable/root-tgz.tgz ip=::::node1:BOOTIF:dhcp ip6=off {cc} {preseed} {logs} ---"
            ),
        );
        check(
            |p| {
                p.fs_host = "fd00::1".parse().expect("ip");
                p.xinstall_path = None;
                p.arch = "ppc64el".into();
            },
            false,
            &format!(
                "nomodeset root=squash:http://[fd00::1]:5248/images/a1b2c3/ubuntu/amd64/ga-24.04/noble/stable/squashfs ip=off ip6=dhcp {cc} {preseed} {overlay} {logs} rootdelay=60 ---"
            ),
        );
    }

    #[test]
    fn purposes_parse() {
        for purpose in [
            Purpose::Commissioning,
            Purpose::Enlist,
            Purpose::Xinstall,
            Purpose::Local,
            Purpose::Rescue,
            Purpose::Poweroff,
        ] {
            assert_eq!(purpose.as_str().parse::<Purpose>(), Ok(purpose));
        }
        assert_eq!(
            "dance".parse::<Purpose>(),
            Err(BootPolicyError::UnknownPurpose {
                purpose: "dance".into()
            })
        );
    }
}
