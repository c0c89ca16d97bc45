//! The boot loader root (`<data dir>/boot-loaders/`), assembled at startup from the Debian
//! packages `scripts/deps/rack.sh` installs. Files are copied (the servers refuse symlinks
//! that leave the root) and replaced atomically only when their content changed. A missing
//! package means a missing loader and a warning, never a failed start.
//!
//! The static pre-loaders `grub/grub.cfg` and `ipxe.cfg` are not copied: `BootFiles`
//! generates them when the root has none.

use std::path::{Path, PathBuf};

/// One file of the loader root and where Debian installs it (first existing path wins).
#[derive(Clone, Copy, Debug)]
pub struct Loader {
    pub name: &'static str,
    pub package: &'static str,
    pub candidates: &'static [&'static str],
}

/// What a MAAS rack serves for amd64 BIOS, UEFI and iPXE clients (provisioning reference
/// §3.1), as Debian bookworm lays it out.
pub const LOADERS: &[Loader] = &[
    Loader {
        name: "lpxelinux.0",
        package: "pxelinux",
        candidates: &["usr/lib/PXELINUX/lpxelinux.0"],
    },
    Loader {
        name: "ldlinux.c32",
        package: "syslinux-common",
        candidates: &["usr/lib/syslinux/modules/bios/ldlinux.c32"],
    },
    Loader {
        name: "chain.c32",
        package: "syslinux-common",
        candidates: &["usr/lib/syslinux/modules/bios/chain.c32"],
    },
    Loader {
        name: "ifcpu.c32",
        package: "syslinux-common",
        candidates: &["usr/lib/syslinux/modules/bios/ifcpu.c32"],
    },
    Loader {
        name: "ifcpu64.c32",
        package: "syslinux-common",
        candidates: &["usr/lib/syslinux/modules/bios/ifcpu64.c32"],
    },
    Loader {
        name: "libcom32.c32",
        package: "syslinux-common",
        candidates: &["usr/lib/syslinux/modules/bios/libcom32.c32"],
    },
    Loader {
        name: "libutil.c32",
        package: "syslinux-common",
        candidates: &["usr/lib/syslinux/modules/bios/libutil.c32"],
    },
    Loader {
        name: "bootx64.efi",
        package: "shim-signed",
        candidates: &[
            "usr/lib/shim/shimx64.efi.signed",
            "usr/lib/shim/shimx64.efi",
        ],
    },
    Loader {
        name: "mmx64.efi",
        package: "shim-helpers-amd64-signed",
        candidates: &["usr/lib/shim/mmx64.efi.signed", "usr/lib/shim/mmx64.efi"],
    },
    // The network image: its prefix is the TFTP/HTTP root, so it reads grub/grub.cfg there.
    Loader {
        name: "grubx64.efi",
        package: "grub-efi-amd64-signed",
        candidates: &["usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed"],
    },
    Loader {
        name: "ipxe.efi",
        package: "ipxe",
        candidates: &["usr/lib/ipxe/ipxe.efi", "boot/ipxe.efi"],
    },
    Loader {
        name: "snponly.efi",
        package: "ipxe",
        candidates: &["usr/lib/ipxe/snponly.efi"],
    },
    Loader {
        name: "undionly.kpxe",
        package: "ipxe",
        candidates: &["usr/lib/ipxe/undionly.kpxe"],
    },
];

/// What assembling found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoaderReport {
    pub installed: Vec<&'static str>,
    /// Loader name and the package that would provide it.
    pub missing: Vec<(&'static str, &'static str)>,
    /// Loader name and what went wrong copying it.
    pub failed: Vec<(&'static str, String)>,
}

/// Copies every loader found under `system_root` into `target`.
pub fn assemble(system_root: &Path, target: &Path, loaders: &[Loader]) -> LoaderReport {
    let mut report = LoaderReport::default();
    if let Err(error) = std::fs::create_dir_all(target) {
        report.failed = loaders
            .iter()
            .map(|l| (l.name, format!("creating {}: {error}", target.display())))
            .collect();
        return report;
    }
    for loader in loaders {
        let source = loader
            .candidates
            .iter()
            .map(|candidate| system_root.join(candidate))
            .find(|path| path.is_file());
        let Some(source) = source else {
            report.missing.push((loader.name, loader.package));
            continue;
        };
        match install(&source, &target.join(loader.name)) {
            Ok(()) => report.installed.push(loader.name),
            Err(error) => report.failed.push((
                loader.name,
                format!("copying {}: {error}", source.display()),
            )),
        }
    }
    report
}

/// Copies `source` to `target` unless it already holds the same bytes.
fn install(source: &Path, target: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(source)?;
    if std::fs::read(target).ok().as_deref() == Some(bytes.as_slice()) {
        return Ok(());
    }
    let temp: PathBuf = target.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&temp, &bytes)?;
    // A transfer that opened the old file keeps reading it; new ones get the new file.
    std::fs::rename(&temp, target)
}

/// [`assemble`] with the standard table, logging what is missing.
pub fn assemble_logged(system_root: &Path, target: &Path) -> LoaderReport {
    let report = assemble(system_root, target, LOADERS);
    for (name, package) in &report.missing {
        tracing::warn!(
            loader = name,
            package,
            "boot loader missing; machines that need it cannot boot (install the package, see scripts/deps/rack.sh)"
        );
    }
    for (name, error) in &report.failed {
        tracing::warn!(loader = name, error = %error, "cannot install boot loader");
    }
    tracing::info!(
        root = %target.display(),
        installed = report.installed.len(),
        missing = report.missing.len(),
        "boot loaders ready"
    );
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_what_exists_reports_what_does_not_and_refreshes_changes() {
        let system = tempfile::tempdir().expect("tempdir");
        let target = tempfile::tempdir().expect("tempdir");
        let put = |relative: &str, bytes: &[u8]| {
            let path = system.path().join(relative);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(path, bytes).expect("write");
        };
        put("usr/lib/PXELINUX/lpxelinux.0", b"pxe");
        put("usr/lib/syslinux/modules/bios/ldlinux.c32", b"ld");
        put("usr/lib/shim/shimx64.efi", b"unsigned shim");
        let report = assemble(system.path(), target.path(), LOADERS);
        assert_eq!(
            report.installed,
            vec!["lpxelinux.0", "ldlinux.c32", "bootx64.efi"]
        );
        assert!(
            report
                .missing
                .contains(&("grubx64.efi", "grub-efi-amd64-signed"))
        );
        assert!(report.failed.is_empty());
        let read = |name: &str| std::fs::read(target.path().join(name)).expect("read");
        assert_eq!(read("bootx64.efi"), b"unsigned shim");
        // The signed shim is preferred once it is there; unchanged files stay.
        put("usr/lib/shim/shimx64.efi.signed", b"signed shim");
        let again = assemble(system.path(), target.path(), LOADERS);
        assert_eq!(again.installed.len(), 3);
        assert_eq!(read("bootx64.efi"), b"signed shim");
        assert_eq!(read("lpxelinux.0"), b"pxe");
    }

    #[test]
    fn this_machines_packages_are_found_where_installed() {
        // On a machine set up by scripts/deps/rack.sh every loader is present; elsewhere the
        // report names the missing packages instead of failing.
        let target = tempfile::tempdir().expect("tempdir");
        let report = assemble(Path::new("/"), target.path(), LOADERS);
        assert_eq!(report.installed.len() + report.missing.len(), LOADERS.len());
        assert!(report.failed.is_empty(), "{report:?}");
    }
}
