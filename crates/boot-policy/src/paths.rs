//! Dynamic config paths (provisioning reference §3.2), shared by TFTP and HTTP.

use std::str::FromStr;

use maas_domain::MacAddress;

/// Which loader a config is for; decides the template family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loader {
    Pxelinux,
    Grub,
    Ipxe,
}

/// Which machine a config path names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookup {
    Mac(MacAddress),
    /// Lower-case hardware UUID.
    HardwareUuid(String),
    /// The fallback config for an architecture (or for none).
    Default {
        arch: Option<String>,
        subarch: Option<String>,
    },
}

/// A request for a generated config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigRequest {
    pub loader: Loader,
    pub lookup: Lookup,
}

/// A request path after normalisation: `\` turned into `/`, leading slashes removed.
pub fn normalise(path: &str) -> String {
    path.replace('\\', "/").trim_start_matches('/').to_owned()
}

impl ConfigRequest {
    /// Parses a normalised path; `None` for paths that name ordinary files.
    pub fn parse(path: &str) -> Option<ConfigRequest> {
        if let Some(name) = path.strip_prefix("pxelinux.cfg/") {
            return parse_pxelinux(name).map(|lookup| ConfigRequest {
                loader: Loader::Pxelinux,
                lookup,
            });
        }
        if let Some(rest) = path.strip_prefix("grub/grub.cfg-") {
            let lookup = match rest.strip_prefix("default-") {
                Some(cpu) if !cpu.is_empty() => Lookup::Default {
                    arch: Some(grub_cpu_to_arch(cpu).to_owned()),
                    subarch: None,
                },
                Some(_) => return None,
                None => Lookup::Mac(parse_mac(rest)?),
            };
            return Some(ConfigRequest {
                loader: Loader::Grub,
                lookup,
            });
        }
        if let Some(rest) = path.strip_prefix("ipxe.cfg-") {
            let lookup = match rest.strip_prefix("default-") {
                Some(arch) if !arch.is_empty() => Lookup::Default {
                    arch: Some(arch.to_owned()),
                    subarch: None,
                },
                Some(_) => return None,
                None => Lookup::Mac(parse_mac(rest)?),
            };
            return Some(ConfigRequest {
                loader: Loader::Ipxe,
                lookup,
            });
        }
        None
    }
}

fn parse_pxelinux(name: &str) -> Option<Lookup> {
    if let Some(mac) = name.strip_prefix("01-") {
        // ARP type 1 (Ethernet) only, dash-separated.
        return (mac.len() == 17 && mac.split('-').count() == 6)
            .then(|| MacAddress::from_str(mac).ok())
            .flatten()
            .map(Lookup::Mac);
    }
    if name == "default" {
        return Some(Lookup::Default {
            arch: None,
            subarch: None,
        });
    }
    if let Some(arch) = name.strip_prefix("default.") {
        return (!arch.is_empty()).then(|| Lookup::Default {
            arch: Some(pxe_arch_alias(arch).to_owned()),
            subarch: None,
        });
    }
    if let Some(rest) = name.strip_prefix("default-") {
        let (arch, subarch) = rest.split_once('-')?;
        return (!arch.is_empty() && !subarch.is_empty()).then(|| Lookup::Default {
            arch: Some(pxe_arch_alias(arch).to_owned()),
            subarch: Some(subarch.to_owned()),
        });
    }
    is_uuid(name).then(|| Lookup::HardwareUuid(name.to_ascii_lowercase()))
}

fn parse_mac(text: &str) -> Option<MacAddress> {
    (text.len() == 17)
        .then(|| MacAddress::from_str(text).ok())
        .flatten()
}

/// 8-4-4-4-12 hexadecimal digits.
fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// GRUB's `${grub_cpu}` to a Debian architecture.
fn grub_cpu_to_arch(cpu: &str) -> &str {
    match cpu {
        "x86_64" => "amd64",
        "powerpc" | "ppc64" | "ppc64le" => "ppc64el",
        "aarch64" => "arm64",
        other => other,
    }
}

/// PXELINUX architecture aliases.
fn pxe_arch_alias(arch: &str) -> &str {
    match arch {
        "arm" => "armhf",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(text: &str) -> Lookup {
        Lookup::Mac(text.parse().expect("mac"))
    }

    fn default(arch: Option<&str>, subarch: Option<&str>) -> Lookup {
        Lookup::Default {
            arch: arch.map(str::to_owned),
            subarch: subarch.map(str::to_owned),
        }
    }

    fn check(path: &str, expected: Option<(Loader, Lookup)>) {
        let parsed = ConfigRequest::parse(&normalise(path));
        let expected = expected.map(|(loader, lookup)| ConfigRequest { loader, lookup });
        assert_eq!(parsed, expected, "{path}");
    }

    #[test]
    fn path_table() {
        use Loader::{Grub, Ipxe, Pxelinux};
        check(
            "pxelinux.cfg/01-52-54-00-ab-cd-ef",
            Some((Pxelinux, mac("52:54:00:ab:cd:ef"))),
        );
        check(
            "/pxelinux.cfg/01-52-54-00-AB-CD-EF",
            Some((Pxelinux, mac("52:54:00:ab:cd:ef"))),
        );
        check("pxelinux.cfg/01-525400abcdef", None);
        check("pxelinux.cfg/06-52-54-00-ab-cd-ef", None);
        check(
            "pxelinux.cfg/8E4D6B2A-0C1F-4E47-9A65-7B1F2B8D4C11",
            Some((
                Pxelinux,
                Lookup::HardwareUuid("8e4d6b2a-0c1f-4e47-9a65-7b1f2b8d4c11".into()),
            )),
        );
        check("pxelinux.cfg/C0A8010A", None);
        check(
            "pxelinux.cfg/default",
            Some((Pxelinux, default(None, None))),
        );
        check(
            "pxelinux.cfg/default.arm",
            Some((Pxelinux, default(Some("armhf"), None))),
        );
        check(
            "pxelinux.cfg/default-amd64-generic",
            Some((Pxelinux, default(Some("amd64"), Some("generic")))),
        );
        check(
            "grub/grub.cfg-52:54:00:ab:cd:ef",
            Some((Grub, mac("52:54:00:ab:cd:ef"))),
        );
        check(
            "grub\\grub.cfg-52-54-00-ab-cd-ef",
            Some((Grub, mac("52:54:00:ab:cd:ef"))),
        );
        check(
            "grub/grub.cfg-default-x86_64",
            Some((Grub, default(Some("amd64"), None))),
        );
        check(
            "grub/grub.cfg-default-ppc64le",
            Some((Grub, default(Some("ppc64el"), None))),
        );
        check("grub/grub.cfg-default-", None);
        check("grub/grub.cfg", None);
        check("grub/grub.cfg-nonsense", None);
        check(
            "ipxe.cfg-52:54:00:ab:cd:ef",
            Some((Ipxe, mac("52:54:00:ab:cd:ef"))),
        );
        check(
            "ipxe.cfg-default-amd64",
            Some((Ipxe, default(Some("amd64"), None))),
        );
        check("ipxe.cfg", None);
        check("images/boot-kernel", None);
    }
}
