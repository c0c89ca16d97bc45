//! What a boot file path resolves to, for TFTP and HTTP alike (provisioning reference §3.2):
//! a config generated for the machine, a static pre-loader, or a file under the roots.

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, OnceLock};

use maas_boot_policy::{
    BootParams, ConfigRequest, Loader, Lookup, Transport, grub_preloader, ipxe_preloader,
    normalise, render,
};
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use thiserror::Error;

use crate::backend::{BackendError, BootBackend, BootRequest, Protocol};
use crate::image_cache::{ImageCache, ImageCacheError};

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
    /// A regular file, already checked to lie under one of the roots, and opened.
    File {
        path: PathBuf,
        len: u64,
        file: OpenFile,
    },
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
    image_cache: Option<Arc<ImageCache>>,
    /// The roots, opened once they exist (lookups then walk only the relative path).
    root: OnceLock<Root>,
    images: OnceLock<Root>,
}

impl BootFiles {
    pub fn new(config: BootFilesConfig, backend: Arc<dyn BootBackend>) -> BootFiles {
        BootFiles {
            config,
            backend,
            image_cache: None,
            root: OnceLock::new(),
            images: OnceLock::new(),
        }
    }

    fn open_root(&self, path: &Path) -> Option<&Root> {
        let cell = if path == self.config.root {
            &self.root
        } else {
            &self.images
        };
        if let Some(root) = cell.get() {
            return Some(root);
        }
        let root = Root::open(path)?;
        Some(cell.get_or_init(|| root))
    }

    /// Serves boot images the roots do not hold from `cache` (fetched from the region on
    /// first request): `/images/<path>` over HTTP, `<path>` over TFTP.
    pub fn with_image_cache(mut self, cache: Arc<ImageCache>) -> BootFiles {
        self.image_cache = Some(cache);
        self
    }

    pub fn image_cache(&self) -> Option<&Arc<ImageCache>> {
        self.image_cache.as_ref()
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
            let Some(root) = self.open_root(root) else {
                continue;
            };
            if let Some(found) = safe_lookup(root, relative, &path)? {
                return Ok(found);
            }
        }
        if let Some(found) = self.lookup_image_cache(&path, request.protocol).await? {
            return Ok(found);
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

    async fn lookup_image_cache(
        &self,
        path: &str,
        protocol: Protocol,
    ) -> Result<Option<Resolved>, ResolveError> {
        let Some(cache) = &self.image_cache else {
            return Ok(None);
        };
        let relative = match (protocol, path.strip_prefix("images/")) {
            (Protocol::Http, Some(rest)) => rest,
            (Protocol::Http, None) => return Ok(None),
            (Protocol::Tftp, _) => path,
        };
        match cache.resolve(relative).await {
            Ok(Some((path, len))) => match std::fs::File::open(&path) {
                Ok(file) => Ok(Some(Resolved::File {
                    path,
                    len,
                    file: OpenFile(Arc::new(file)),
                })),
                // Evicted between the lookup and the open: the next request fetches it again.
                Err(_) => Ok(None),
            },
            Ok(None) => Ok(None),
            Err(error) => {
                let source = match error {
                    ImageCacheError::Source(_) | ImageCacheError::Transfer { .. } => {
                        BackendError::Unreachable {
                            source: Box::new(error),
                        }
                    }
                    other => BackendError::Refused {
                        reason: crate::dhcp::error_chain(&other),
                    },
                };
                Err(ResolveError::Backend { source })
            }
        }
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
fn safe_lookup(root: &Root, relative: &str, shown: &str) -> Result<Option<Resolved>, ResolveError> {
    let escape = || ResolveError::Escape {
        path: shown.to_owned(),
    };
    if relative.contains('\0') {
        return Err(escape());
    }
    let mut clean = PathBuf::new();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(escape());
            }
        }
    }
    if clean.as_os_str().is_empty() {
        return Ok(None);
    }
    // One path walk that the kernel keeps beneath the root; O_NONBLOCK so that a FIFO
    // cannot hang the open (it is not a regular file and is refused below).
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NOCTTY | OFlag::O_NONBLOCK)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match openat2(&root.dir, clean.as_path(), how) {
        Ok(fd) => {
            let file = std::fs::File::from(fd);
            return Ok(regular(file, root.path.join(&clean)));
        }
        Err(Errno::ENOENT | Errno::ENOTDIR) => return Ok(None),
        // EXDEV: an absolute symlink, or one that leaves the root; ENOSYS: an old kernel.
        // Decide those by the canonical path, as the slow path always did.
        Err(_) => {}
    }
    let Ok(real) = root.path.join(&clean).canonicalize() else {
        return Ok(None);
    };
    if !real.starts_with(&root.real) {
        return Err(escape());
    }
    match std::fs::metadata(&real) {
        Ok(meta) if meta.is_file() => match std::fs::File::open(&real) {
            Ok(file) => Ok(regular(file, real)),
            Err(_) => Ok(None),
        },
        _ => Ok(None),
    }
}

fn regular(file: std::fs::File, path: PathBuf) -> Option<Resolved> {
    match file.metadata() {
        Ok(meta) if meta.is_file() => Some(Resolved::File {
            path,
            len: meta.len(),
            file: OpenFile(Arc::new(file)),
        }),
        _ => None,
    }
}

/// A served directory: its path, its canonical path, and an open handle to look files up in.
struct Root {
    path: PathBuf,
    real: PathBuf,
    dir: std::fs::File,
}

impl Root {
    fn open(path: &Path) -> Option<Root> {
        Some(Root {
            path: path.to_path_buf(),
            real: path.canonicalize().ok()?,
            dir: std::fs::File::open(path).ok()?,
        })
    }
}

/// A boot file opened by the lookup that checked it, so what is served is what was checked.
#[derive(Clone, Debug)]
pub struct OpenFile(pub Arc<std::fs::File>);

impl PartialEq for OpenFile {
    fn eq(&self, other: &OpenFile) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for OpenFile {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FileBackend;

    /// The file's bytes, `None` for not found, or the kind of refusal.
    type Lookup = Result<Option<Vec<u8>>, &'static str>;

    fn lookup(files: &BootFiles, path: &str) -> Lookup {
        let request = FileRequest {
            local_ip: IpAddr::from([127, 0, 0, 1]),
            remote_ip: IpAddr::from([127, 0, 0, 1]),
            protocol: Protocol::Tftp,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        match runtime.block_on(files.resolve(path, request)) {
            Ok(Resolved::File { file, len, .. }) => {
                let mut bytes = vec![0; usize::try_from(len).expect("len")];
                std::os::unix::fs::FileExt::read_exact_at(&*file.0, &mut bytes, 0).expect("read");
                Ok(Some(bytes))
            }
            Ok(Resolved::Generated { .. }) => Err("generated"),
            Err(ResolveError::NotFound { .. }) => Ok(None),
            Err(ResolveError::Escape { .. }) => Err("escape"),
            Err(ResolveError::Backend { .. }) => Err("backend"),
        }
    }

    #[test]
    fn lookups_stay_under_the_root_table() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("sub")).expect("dirs");
        std::fs::write(root.join("sub/file"), b"inside").expect("file");
        std::fs::write(dir.path().join("secret"), b"outside").expect("secret");
        use std::os::unix::fs::symlink;
        symlink("sub/file", root.join("relative-link")).expect("link");
        symlink(root.join("sub/file"), root.join("absolute-link")).expect("link");
        symlink("../secret", root.join("leaving-link")).expect("link");
        symlink(
            dir.path().join("secret"),
            root.join("absolute-leaving-link"),
        )
        .expect("link");
        nix::unistd::mkfifo(&root.join("fifo"), nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        let backend = Arc::new(FileBackend::from_toml("").expect("backend"));
        let files = BootFiles::new(
            BootFilesConfig {
                root,
                images: None,
                http_port: 5248,
            },
            backend,
        );
        let inside = Ok(Some(b"inside".to_vec()));
        let cases: [(&str, Lookup); 9] = [
            ("sub/file", inside.clone()),
            ("./sub//file", inside.clone()),
            ("relative-link", inside.clone()),
            ("absolute-link", inside),
            ("leaving-link", Err("escape")),
            ("absolute-leaving-link", Err("escape")),
            ("sub", Ok(None)),
            ("fifo", Ok(None)),
            ("missing/file", Ok(None)),
        ];
        for (path, expected) in cases {
            assert_eq!(lookup(&files, path), expected, "{path}");
        }
    }
}
