//! Rendered configs compared with `tests/golden/`; `UPDATE_EXPECT=1` rewrites the files.

use std::path::PathBuf;

use maas_boot_policy::{
    BootParams, Loader, Purpose, Transport, grub_preloader, ipxe_preloader, render,
};

fn params(purpose: Purpose, arch: &str) -> BootParams {
    let base = format!("a1b2c3/ubuntu/{arch}/ga-24.04/noble/stable");
    BootParams {
        purpose,
        arch: arch.into(),
        subarch: "ga-24.04".into(),
        osystem: "ubuntu".into(),
        release: "noble".into(),
        kernel: format!("{base}/boot-kernel"),
        initrd: format!("{base}/boot-initrd"),
        boot_dtb: None,
        xinstall_path: Some(format!("{base}/squashfs")),
        hostname: "node1".into(),
        domain: "maas".into(),
        preseed_url: "http://10.0.0.1:5248/MAAS/metadata/latest/by-id/abc123/?op=get_preseed"
            .into(),
        fs_host: "10.0.0.1".parse().expect("ip"),
        log_host: "10.0.0.1".into(),
        log_port: 5247,
        extra_opts: "console=ttyS0".into(),
        ephemeral_opts: String::new(),
        system_id: Some("abc123".into()),
        http_port: 5248,
    }
}

fn check(name: &str, actual: &str) -> Option<String> {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "tests", "golden", name]
        .iter()
        .collect();
    if std::env::var_os("UPDATE_EXPECT").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return None;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    (expected != actual).then(|| {
        format!(
            "{name} differs from {} (rerun with UPDATE_EXPECT=1 and review the diff)\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        )
    })
}

#[test]
fn rendered_configs_match_golden_files() {
    let purposes = [
        Purpose::Commissioning,
        Purpose::Enlist,
        Purpose::Xinstall,
        Purpose::Local,
        Purpose::Rescue,
        Purpose::Poweroff,
    ];
    let mut failures = Vec::new();
    for purpose in purposes {
        for arch in ["amd64", "arm64"] {
            let p = params(purpose, arch);
            let cases = [
                (
                    format!("ipxe-{purpose}-{arch}.ipxe"),
                    render(Loader::Ipxe, &p, Transport::Http),
                ),
                (
                    format!("pxelinux-{purpose}-{arch}.cfg"),
                    render(Loader::Pxelinux, &p, Transport::Tftp),
                ),
                (
                    format!("grub-tftp-{purpose}-{arch}.cfg"),
                    render(Loader::Grub, &p, Transport::Tftp),
                ),
                (
                    format!("grub-http-{purpose}-{arch}.cfg"),
                    render(Loader::Grub, &p, Transport::Http),
                ),
            ];
            for (name, text) in cases {
                failures.extend(check(&name, &text));
            }
        }
    }
    failures.extend(check("ipxe.cfg", &ipxe_preloader(5248)));
    failures.extend(check("grub.cfg", &grub_preloader()));
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
