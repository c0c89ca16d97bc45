//! Boot methods (provisioning reference §3.1): which loader a DHCP client is pointed at.

use std::fmt;
use std::net::IpAddr;

/// How a client boots, decided from its DHCP request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BootMethod {
    /// iPXE (option 77 `iPXE` or option 175): an HTTP script.
    Ipxe,
    /// BIOS PXE (option 93 = 0, and anything unrecognised): `lpxelinux.0`.
    Pxe,
    /// UEFI x64 over TFTP (93 = 7): shim `bootx64.efi` then GRUB.
    UefiAmd64Tftp,
    /// UEFI EBC (93 = 9): as UEFI x64 over TFTP.
    UefiEbcTftp,
    /// UEFI x64 HTTP boot (93 = 16).
    UefiAmd64Http,
    /// UEFI arm64 over TFTP (93 = 11).
    UefiArm64Tftp,
    /// UEFI arm64 HTTP boot (93 = 19).
    UefiArm64Http,
    /// Open Firmware ppc64el (93 = 12).
    OpenFirmwarePpc64el,
    /// PowerNV (93 = 14).
    Powernv,
    /// s390x KVM guests (93 = 31).
    S390x,
    /// s390x LPAR (93 = 32).
    S390xPartition,
}

impl BootMethod {
    /// Chooses the method in MAAS's order: iPXE first, then option 93, then BIOS PXE.
    pub fn detect(arch: Option<u16>, is_ipxe: bool) -> BootMethod {
        if is_ipxe {
            return BootMethod::Ipxe;
        }
        match arch {
            Some(0x07) => BootMethod::UefiAmd64Tftp,
            Some(0x10) => BootMethod::UefiAmd64Http,
            Some(0x09) => BootMethod::UefiEbcTftp,
            Some(0x0b) => BootMethod::UefiArm64Tftp,
            Some(0x13) => BootMethod::UefiArm64Http,
            Some(0x0c) => BootMethod::OpenFirmwarePpc64el,
            Some(0x0e) => BootMethod::Powernv,
            Some(0x1f) => BootMethod::S390x,
            Some(0x20) => BootMethod::S390xPartition,
            _ => BootMethod::Pxe,
        }
    }

    /// The `bios_boot_method` name the region records.
    pub fn bios_boot_method(self) -> &'static str {
        match self {
            BootMethod::Ipxe => "ipxe",
            BootMethod::Pxe => "pxe",
            BootMethod::UefiAmd64Tftp
            | BootMethod::UefiEbcTftp
            | BootMethod::UefiAmd64Http
            | BootMethod::UefiArm64Tftp
            | BootMethod::UefiArm64Http => "uefi",
            BootMethod::OpenFirmwarePpc64el => "open-firmware",
            BootMethod::Powernv => "powernv",
            BootMethod::S390x => "s390x",
            BootMethod::S390xPartition => "s390x_partition",
        }
    }

    /// The method's name in MAAS (`uefi_amd64_tftp`, ...).
    pub fn name(self) -> &'static str {
        match self {
            BootMethod::Ipxe => "ipxe",
            BootMethod::Pxe => "pxe",
            BootMethod::UefiAmd64Tftp => "uefi_amd64_tftp",
            BootMethod::UefiEbcTftp => "uefi_ebc_tftp",
            BootMethod::UefiAmd64Http => "uefi_amd64_http",
            BootMethod::UefiArm64Tftp => "uefi_arm64_tftp",
            BootMethod::UefiArm64Http => "uefi_arm64_http",
            BootMethod::OpenFirmwarePpc64el => "open-firmware_ppc64el",
            BootMethod::Powernv => "powernv",
            BootMethod::S390x => "s390x",
            BootMethod::S390xPartition => "s390x_partition",
        }
    }

    /// The DHCP boot fields for this method, with the rack at `rack` serving HTTP on
    /// `http_port`.
    pub fn dhcp_boot(self, rack: IpAddr, http_port: u16) -> DhcpBoot {
        let base = HttpBase {
            host: rack,
            port: http_port,
        };
        let plain = |filename: &str| DhcpBoot {
            filename: filename.to_owned(),
            vendor_class: None,
            path_prefix: None,
        };
        match self {
            BootMethod::Ipxe => plain(&format!("{base}/ipxe.cfg")),
            BootMethod::Pxe => DhcpBoot {
                filename: "lpxelinux.0".into(),
                vendor_class: None,
                path_prefix: Some(format!("{base}/")),
            },
            BootMethod::UefiAmd64Tftp | BootMethod::UefiEbcTftp => plain("bootx64.efi"),
            BootMethod::UefiAmd64Http => DhcpBoot {
                filename: format!("{base}/images/bootx64.efi"),
                vendor_class: Some("HTTPClient".into()),
                path_prefix: None,
            },
            BootMethod::UefiArm64Tftp => plain("bootaa64.efi"),
            BootMethod::UefiArm64Http => DhcpBoot {
                filename: format!("{base}/images/bootaa64.efi"),
                vendor_class: Some("HTTPClient".into()),
                path_prefix: None,
            },
            BootMethod::OpenFirmwarePpc64el => plain("bootppc64.bin"),
            BootMethod::Powernv => DhcpBoot {
                filename: "pxelinux.0".into(),
                vendor_class: None,
                path_prefix: Some("ppc64el/".into()),
            },
            BootMethod::S390x => DhcpBoot {
                filename: "boots390x.bin".into(),
                vendor_class: None,
                path_prefix: Some("s390x/".into()),
            },
            BootMethod::S390xPartition => plain("s390x_partition/maas"),
        }
    }
}

/// Boot fields of a DHCP reply (the caller adds next-server).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DhcpBoot {
    /// BOOTP `file`: a TFTP path or an absolute HTTP URL.
    pub filename: String,
    /// Option 60 in the reply.
    pub vendor_class: Option<String>,
    /// Option 210.
    pub path_prefix: Option<String>,
}

/// `http://host:port`, with IPv6 hosts in brackets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpBase {
    pub host: IpAddr,
    pub port: u16,
}

impl fmt::Display for HttpBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host {
            IpAddr::V4(v4) => write!(f, "http://{v4}:{}", self.port),
            IpAddr::V6(v6) => write!(f, "http://[{v6}]:{}", self.port),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(
        arch: Option<u16>,
        is_ipxe: bool,
        expected: (BootMethod, &str, Option<&str>, Option<&str>),
    ) {
        let method = BootMethod::detect(arch, is_ipxe);
        let boot = method.dhcp_boot("10.0.0.1".parse().expect("ip"), 5248);
        assert_eq!(
            (
                method,
                boot.filename.as_str(),
                boot.vendor_class.as_deref(),
                boot.path_prefix.as_deref()
            ),
            expected,
            "arch {arch:?} ipxe {is_ipxe}"
        );
    }

    #[test]
    fn detection_table() {
        use BootMethod as M;
        check(
            None,
            false,
            (M::Pxe, "lpxelinux.0", None, Some("http://10.0.0.1:5248/")),
        );
        check(
            Some(0),
            false,
            (M::Pxe, "lpxelinux.0", None, Some("http://10.0.0.1:5248/")),
        );
        check(
            Some(0),
            true,
            (M::Ipxe, "http://10.0.0.1:5248/ipxe.cfg", None, None),
        );
        check(
            Some(7),
            true,
            (M::Ipxe, "http://10.0.0.1:5248/ipxe.cfg", None, None),
        );
        check(
            Some(7),
            false,
            (M::UefiAmd64Tftp, "bootx64.efi", None, None),
        );
        check(Some(9), false, (M::UefiEbcTftp, "bootx64.efi", None, None));
        check(
            Some(0x10),
            false,
            (
                M::UefiAmd64Http,
                "http://10.0.0.1:5248/images/bootx64.efi",
                Some("HTTPClient"),
                None,
            ),
        );
        check(
            Some(0x0b),
            false,
            (M::UefiArm64Tftp, "bootaa64.efi", None, None),
        );
        check(
            Some(0x13),
            false,
            (
                M::UefiArm64Http,
                "http://10.0.0.1:5248/images/bootaa64.efi",
                Some("HTTPClient"),
                None,
            ),
        );
        check(
            Some(0x0c),
            false,
            (M::OpenFirmwarePpc64el, "bootppc64.bin", None, None),
        );
        check(
            Some(0x0e),
            false,
            (M::Powernv, "pxelinux.0", None, Some("ppc64el/")),
        );
        check(
            Some(0x1f),
            false,
            (M::S390x, "boots390x.bin", None, Some("s390x/")),
        );
        check(
            Some(0x20),
            false,
            (M::S390xPartition, "s390x_partition/maas", None, None),
        );
        check(
            Some(0x6),
            false,
            (M::Pxe, "lpxelinux.0", None, Some("http://10.0.0.1:5248/")),
        );
    }

    #[test]
    fn http_base_brackets_ipv6() {
        let base = HttpBase {
            host: "fd00::1".parse().expect("ip"),
            port: 5248,
        };
        assert_eq!(base.to_string(), "http://[fd00::1]:5248");
        assert_eq!(BootMethod::UefiAmd64Tftp.bios_boot_method(), "uefi");
        assert_eq!(BootMethod::UefiAmd64Http.name(), "uefi_amd64_http");
    }
}
