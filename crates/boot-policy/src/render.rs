//! Config text for iPXE, PXELINUX and GRUB (provisioning reference §3.5 and §3.6).

use std::fmt::Write as _;

use crate::method::HttpBase;
use crate::params::{BootParams, Purpose};
use crate::paths::Loader;

/// How the loader itself was fetched; GRUB loaded over TFTP must name the HTTP server in
/// its paths, GRUB loaded over HTTP can use server-relative ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    Tftp,
    Http,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tftp => "tftp",
            Transport::Http => "http",
        }
    }
}

/// Renders the config for `loader` from the region's decision.
pub fn render(loader: Loader, params: &BootParams, transport: Transport) -> String {
    match loader {
        Loader::Ipxe => render_ipxe(params),
        Loader::Pxelinux => render_pxelinux(params),
        Loader::Grub => render_grub(params, transport),
    }
}

/// `Content-Type` to serve a rendered config with over HTTP.
pub fn content_type(loader: Loader) -> &'static str {
    match loader {
        Loader::Ipxe | Loader::Pxelinux | Loader::Grub => "text/plain; charset=utf-8",
    }
}

pub fn render_ipxe(params: &BootParams) -> String {
    let mut out = String::from("#!ipxe\n");
    match params.purpose {
        Purpose::Local => {
            out.push_str("echo Booting local disk...\n");
            out.push_str(
                "sanboot --no-describe --drive 0x80 || sanboot --no-describe --drive 0x81 || \
                 sanboot --no-describe --drive 0x82 || sanboot --no-describe --drive 0x83\n",
            );
        }
        Purpose::Poweroff => {
            out.push_str("echo Powering off...\n");
            out.push_str("poweroff\n");
        }
        Purpose::Commissioning | Purpose::Enlist | Purpose::Xinstall | Purpose::Rescue => {
            let _ = writeln!(
                out,
                "echo Booting under MAAS direction: {}",
                params.purpose.description()
            );
            let _ = writeln!(out, "kernel {}", params.kernel_url());
            let _ = writeln!(
                out,
                "imgargs {} {} BOOTIF=01-${{mac}}",
                params.kernel_name(),
                params.kernel_command_line(false)
            );
            let _ = writeln!(out, "initrd {}", params.initrd_url());
            out.push_str("boot\n");
        }
    }
    out
}

pub fn render_pxelinux(params: &BootParams) -> String {
    let mut out = String::new();
    match params.purpose {
        Purpose::Local => {
            out.push_str("DEFAULT local\n\nLABEL local\n");
            if matches!(params.arch.as_str(), "amd64" | "i386") {
                out.push_str("  KERNEL chain.c32\n  APPEND hd0\n");
            } else {
                out.push_str("  LOCALBOOT 0\n");
            }
        }
        Purpose::Poweroff => {
            out.push_str("DEFAULT poweroff\n\nLABEL poweroff\n  COM32 poweroff.c32\n");
        }
        Purpose::Commissioning | Purpose::Enlist | Purpose::Xinstall | Purpose::Rescue => {
            out.push_str("DEFAULT execute\n\nLABEL execute\n");
            out.push_str("  SAY Booting under MAAS direction...\n");
            let _ = writeln!(out, "  SAY {}", params.purpose.description());
            let _ = writeln!(out, "  KERNEL {}", params.kernel_url());
            let _ = writeln!(out, "  INITRD {}", params.initrd_url());
            if let Some(dtb) = &params.boot_dtb {
                let _ = writeln!(out, "  FDT {}/images/{dtb}", params.http_base());
            }
            let _ = writeln!(out, "  APPEND {}", params.kernel_command_line(false));
            out.push_str("  IPAPPEND 2\n");
        }
    }
    out
}

pub fn render_grub(params: &BootParams, transport: Transport) -> String {
    let mut out = String::from("set default=\"0\"\nset timeout=0\n\n");
    match params.purpose {
        Purpose::Local => render_grub_local(&params.arch, &mut out),
        Purpose::Poweroff => {
            out.push_str("menuentry 'Poweroff' {\n    echo 'Powering off...'\n    halt\n}\n");
        }
        Purpose::Commissioning | Purpose::Enlist | Purpose::Xinstall | Purpose::Rescue => {
            let images = match transport {
                Transport::Tftp => {
                    let HttpBase { host, port } = params.http_base();
                    match host {
                        std::net::IpAddr::V4(v4) => format!("(http,{v4}:{port})/images"),
                        std::net::IpAddr::V6(v6) => format!("(http,[{v6}]:{port})/images"),
                    }
                }
                Transport::Http => "/images".to_owned(),
            };
            out.push_str("menuentry 'Ephemeral' {\n");
            out.push_str("    echo 'Booting under MAAS direction...'\n");
            let _ = writeln!(out, "    echo '{}'", params.purpose.description());
            let _ = writeln!(
                out,
                "    linux {images}/{} {} BOOTIF=01-${{net_default_mac}}",
                params.kernel,
                params.kernel_command_line(true)
            );
            let _ = writeln!(out, "    initrd {images}/{}", params.initrd);
            if let Some(dtb) = &params.boot_dtb {
                let _ = writeln!(out, "    devicetree {images}/{dtb}");
            }
            out.push_str("}\n");
        }
    }
    out
}

fn render_grub_local(arch: &str, out: &mut String) {
    let (signed, unsigned): (&[&str], &[&str]) = match arch {
        "arm64" => (&["ubuntu/grubaa64.efi", "boot/bootaa64.efi"], &[]),
        _ => (
            &[
                "boot/bootx64.efi",
                "ubuntu/shimx64.efi",
                "ubuntu/grubx64.efi",
                "Microsoft/Boot/bootmgfw.efi",
            ],
            &[
                "centos/shimx64.efi",
                "centos/grubx64.efi",
                "redhat/shimx64.efi",
                "redhat/grubx64.efi",
                "rhel/shimx64.efi",
                "rhel/grubx64.efi",
                "rocky/shimx64.efi",
                "rocky/grubx64.efi",
                "suse/shim.efi",
                "suse/grubx64.efi",
                "ol/shim.efi",
                "ol/grubx64.efi",
                "red/grubx64.efi",
            ],
        ),
    };
    out.push_str("menuentry 'Local' {\n    echo 'Booting local disk...'\n");
    let _ = writeln!(out, "    for bootloader in {}; do", signed.join(" "));
    out.push_str(GRUB_TRY_LOADER);
    out.push_str("    done\n");
    if !unsigned.is_empty() {
        // Loaders that shim would refuse are only worth trying with secure boot off.
        out.push_str("    if [ \"${shim_lock}\" != \"y\" ]; then\n");
        let _ = writeln!(out, "        for bootloader in {}; do", unsigned.join(" "));
        for line in GRUB_TRY_LOADER.lines() {
            let _ = writeln!(out, "    {line}");
        }
        out.push_str("        done\n    fi\n");
    }
    out.push_str(
        "    # Nothing found: let the firmware try the next boot device.\n    exit 1\n}\n",
    );
}

const GRUB_TRY_LOADER: &str = "        if search --set=root --file /efi/$bootloader; then\n            chainloader /efi/$bootloader\n            boot\n        fi\n";

/// The static `ipxe.cfg` the DHCP server points iPXE at: chain to this machine's config,
/// else to the default for its architecture.
pub fn ipxe_preloader(http_port: u16) -> String {
    format!(
        "#!ipxe\n\
         # MAAS rack: fetch the configuration generated for this machine.\n\
         chain http://${{next-server}}:{http_port}/ipxe.cfg-${{mac}} || \
         chain http://${{next-server}}:{http_port}/ipxe.cfg-default-amd64\n"
    )
}

/// The static `grub/grub.cfg`: source this machine's config, else the default for its CPU.
pub fn grub_preloader() -> String {
    "set default=\"0\"\n\
     set timeout=0\n\
     # MAAS rack: fetch the configuration generated for this machine.\n\
     if [ -s ($root)/grub/grub.cfg-${net_default_mac} ]; then\n    \
     configfile ($root)/grub/grub.cfg-${net_default_mac}\n\
     fi\n\
     configfile ($root)/grub/grub.cfg-default-${grub_cpu}\n"
        .to_owned()
}
