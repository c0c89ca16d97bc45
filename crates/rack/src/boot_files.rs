//! What a boot file path resolves to, for TFTP and HTTP alike (provisioning reference §3.2):
//! a config generated for the machine, a static pre-loader, or a file under the roots.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use maas_boot_policy::{
    BootParams, ConfigRequest, Loader, Lookup, Transport, grub_preloader, ipxe_preloader,
    normalise, render,
};
use thiserror::Error;

use crate::backend::{BackendError, BootBackend, BootRequest, Protocol};

/// Where boot files live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootFilesConfig {
    /// Boot loaders and static files (`lpxelinux.0`, `bootx64.efi`, `ldlinux.c32`, ...),
    /// served over TFTP and HTTP.
    pub root: PathBuf,
    /// Boot images (kernels, initrds, squashfs), served under `/images/` over HTTP and by
    /// their relative path over TFTP. Loaders under `root` are also served under `/images/`.
    pub images: Option<PathBuf>,
    /// The HTTP boot port written into generated configs (5248).
    pub http_port: u16,
}

/// Who asked, and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRequest {
    pub local_ip: IpAddr,
    pub remote_ip: IpAddr,
    pub protocol: Protocol,
}

/// A resolved path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Generated text (a machine's config or a pre-loader).
    Generated { body: Vec<u8>, machine_config: bool },
    /// A regular file, already checked to lie under one of the roots.
    File { path: PathBuf, len: u64 },
}

#[derive(Debug, Error)]
pub enum ResolveError {
    #[error("{path:?} is not a file the rack serves")]
    NotFound { path: String },
    #[error("{path:?} tries to leave the served directories")]
    Escape { path: String },
    #[error("asking the region for a boot config")]
    Backend {
        #[source]
        source: BackendError,
    },
}

/// Resolves boot file paths; shared by the TFTP and HTTP servers.
pub struct BootFiles {
    config: BootFilesConfig,
    backend: Arc<dyn BootBackend>,
    /// The roots' canonical paths, found once they exist (saves a `realpath` per request).
    canonical_root: OnceLock<PathBuf>,
    canonical_images: OnceLock<PathBuf>,
}

impl BootFiles {
    pub fn new(config: BootFilesConfig, backend: Arc<dyn BootBackend>) -> BootFiles {
        BootFiles {
            config,
            backend,
            canonical_root: OnceLock::new(),
            canonical_images: OnceLock::new(),
        }
    }

    fn canonical(&self, root: &Path) -> Option<PathBuf> {
        let cell = if root == self.config.root {
            &self.canonical_root
        } else {
            &self.canonical_images
        };
        if let Some(found) = cell.get() {
            return Some(found.clone());
        }
        let found = root.canonicalize().ok()?;
        Some(cell.get_or_init(|| found).clone())
    }

    pub fn config(&self) -> &BootFilesConfig {
        &self.config
    }

    pub fn backend(&self) -> &Arc<dyn BootBackend> {
        &self.backend
    }

    /// Resolves a TFTP file name or an HTTP path (without query).
    pub async fn resolve(
        &self,
        raw_path: &str,
        request: FileRequest,
    ) -> Result<Resolved, ResolveError> {
        let path = normalise(raw_path);
        if let Some(config_request) = ConfigRequest::parse(&path) {
            return self.generate(&path, &config_request, request).await;
        }
        let (relative, roots) = match (request.protocol, path.strip_prefix("images/")) {
            (Protocol::Http, Some(rest)) => (
                rest,
                vec![self.config.images.as_deref(), Some(&*self.config.root)],
            ),
            (Protocol::Http, None) => (path.as_str(), vec![Some(&*self.config.root)]),
            (Protocol::Tftp, _) => (
                path.as_str(),
                vec![Some(&*self.config.root), self.config.images.as_deref()],
            ),
        };
        for root in roots.into_iter().flatten() {
            let Some(real_root) = self.canonical(root) else {
                continue;
            };
            if let Some(found) = safe_lookup(root, &real_root, relative, &path)? {
                return Ok(found);
            }
        }
        // Pre-loaders are generated when the root does not carry its own.
        match path.as_str() {
            "ipxe.cfg" => {
                return Ok(Resolved::Generated {
                    body: ipxe_preloader(self.config.http_port).into_bytes(),
                    machine_config: false,
                });
            }
            "grub/grub.cfg" => {
                return Ok(Resolved::Generated {
                    body: grub_preloader().into_bytes(),
                    machine_config: false,
                });
            }
            _ => {}
        }
        if path.starts_with("grub/") && path.ends_with(".lst") {
            // GRUB probes for module lists it may not need; an empty file keeps it going.
            return Ok(Resolved::Generated {
                body: Vec::new(),
                machine_config: false,
            });
        }
        Err(ResolveError::NotFound { path })
    }

    async fn generate(
        &self,
        path: &str,
        config_request: &ConfigRequest,
        request: FileRequest,
    ) -> Result<Resolved, ResolveError> {
        let (mac, hardware_uuid, arch, subarch) = match &config_request.lookup {
            Lookup::Mac(mac) => (Some(*mac), None, None, None),
            Lookup::HardwareUuid(uuid) => (None, Some(uuid.clone()), None, None),
            Lookup::Default { arch, subarch } => (None, None, arch.clone(), subarch.clone()),
        };
        let bios_boot_method = match config_request.loader {
            Loader::Pxelinux => "pxe",
            Loader::Grub => "uefi",
            Loader::Ipxe => "ipxe",
        };
        let boot_request = BootRequest {
            mac,
            hardware_uuid,
            arch,
            subarch,
            local_ip: request.local_ip,
            remote_ip: request.remote_ip,
            bios_boot_method,
            protocol: request.protocol,
        };
        let params: Option<BootParams> = self
            .backend
            .boot_config(&boot_request)
            .await
            .map_err(|source| ResolveError::Backend { source })?;
        let Some(mut params) = params else {
            return Err(ResolveError::NotFound {
                path: path.to_owned(),
            });
        };
        // Files always come from the address the machine is talking to.
        params.fs_host = request.local_ip;
        params.http_port = self.config.http_port;
        let transport = match request.protocol {
            Protocol::Tftp => Transport::Tftp,
            Protocol::Http => Transport::Http,
        };
        tracing::debug!(
            path,
            purpose = %params.purpose,
            mac = ?mac,
            remote = %request.remote_ip,
            "generated boot config"
        );
        Ok(Resolved::Generated {
            body: render(config_request.loader, &params, transport).into_bytes(),
            machine_config: true,
        })
    }
}

/// Looks `relative` up under `root`, refusing `..`, absolute paths and symlinks that lead
/// outside. `Ok(None)` when there is no such regular file.
fn safe_lookup(
    root: &Path,
    real_root: &Path,
    relative: &str,
    shown: &str,
) -> Result<Option<Resolved>, ResolveError> {
    let escape = || ResolveError::Escape {
        path: shown.to_owned(),
    };
    if relative.contains('\0') {
        return Err(escape());
    }
    let mut joined = root.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => joined.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape());
            }
        }
    }
    let Ok(real) = joined.canonicalize() else {
        return Ok(None);
    };
    if !real.starts_with(real_root) {
        return Err(escape());
    }
    match std::fs::metadata(&real) {
        Ok(meta) if meta.is_file() => Ok(Some(Resolved::File {
            path: real,
            len: meta.len(),
        })),
        _ => Ok(None),
    }
}
