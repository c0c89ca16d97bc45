//! Deployment (§8): the plan taken from the node's curtin configuration, writing a disk
//! image or a root tarball to the boot disk, the cloud-init seed that makes the deployed
//! OS talk to the metadata API, and the boot loader.
//!
//! Tools the in-memory environment must provide for root tarballs: `sgdisk`, `mkfs.ext4`,
//! `mkfs.vfat` (UEFI), `mount`/`umount`, `blockdev`, `partx`, and `grub-install` with the GRUB
//! modules of the platform when the image has no GRUB of its own. Disk images need
//! `mount`, `blockdev` and `partx` only, to place the seed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_norway::Value;

use crate::image::{self, Expected, ImageError, ImageKind, Written};
use crate::oauth::Credentials;

#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    #[error("the curtin configuration is not valid YAML")]
    Yaml(#[source] serde_norway::Error),
    #[error("the curtin configuration has no install source (`sources`)")]
    NoSource,
    #[error("the install source {source_text:?} is not understood")]
    BadSource { source_text: String },
    #[error(transparent)]
    Image(#[from] ImageError),
    #[error("no disk to install to (storage config asks for {wanted})")]
    NoDisk { wanted: String },
    #[error("`{command}` failed: {output}")]
    Command { command: String, output: String },
    #[error("{path} did not appear after partitioning")]
    NoPartition { path: String },
    #[error("{target} needs a block device, {path} is not one")]
    NotBlockDevice { target: &'static str, path: String },
    #[error("cannot write {path} into the target")]
    WriteFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the image has no kernel under /boot")]
    NoKernel,
    #[error(
        "no boot loader: neither the image nor the environment has grub-install for {platform}"
    )]
    NoBootLoader { platform: &'static str },
}

/// Where the image comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source {
    pub kind: ImageKind,
    pub url: String,
    pub expected: Expected,
}

impl PartialEq for Expected {
    fn eq(&self, other: &Self) -> bool {
        self.sha256 == other.sha256 && self.size == other.size
    }
}
impl Eq for Expected {}

/// Which disk to install to, as the storage config names it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskWanted {
    pub path: Option<String>,
    pub serial: Option<String>,
    pub name: Option<String>,
}

/// A file to put into the deployed system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetFile {
    /// Absolute path inside the target.
    pub path: String,
    pub content: String,
    pub mode: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub source: Source,
    pub disk: DiskWanted,
    pub files: Vec<TargetFile>,
}

fn text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

fn field(value: &Value, key: &str) -> Option<String> {
    value.get(key).and_then(text)
}

/// `dd-xz:http://...` or a bare URL whose file name tells the type.
fn parse_source_text(source: &str) -> Result<(ImageKind, String), DeployError> {
    let bad = || DeployError::BadSource {
        source_text: source.to_owned(),
    };
    if let Some((prefix, url)) = source.split_once(':')
        && prefix.starts_with("dd-")
    {
        return Ok((ImageKind::parse(prefix).map_err(|_| bad())?, url.to_owned()));
    }
    let name = source.rsplit('/').next().unwrap_or("");
    for (suffix, kind) in [
        ("root-dd.tar.gz", "ddtgz"),
        ("root-dd.tar.xz", "ddtxz"),
        ("root-dd.tar.bz2", "ddtbz"),
        ("root-dd.tar", "ddtar"),
        (".tar.gz", "tgz"),
        (".tgz", "tgz"),
        (".txz", "txz"),
        (".tar.xz", "txz"),
        (".tbz", "tbz"),
        (".tar.bz2", "tbz"),
        ("root-dd.gz", "ddgz"),
        ("root-dd.xz", "ddxz"),
        ("root-dd.bz2", "ddbz2"),
        ("root-dd", "ddraw"),
        (".img.gz", "ddgz"),
        (".img.xz", "ddxz"),
        (".img", "ddraw"),
        (".raw", "ddraw"),
    ] {
        if name.ends_with(suffix) {
            return Ok((
                ImageKind::parse(kind).map_err(|_| bad())?,
                source.to_owned(),
            ));
        }
    }
    Err(bad())
}

impl Plan {
    /// Reads the parts of a curtin configuration the agent acts on: `sources` (first
    /// entry by key; `{type, uri, sha256, size}` or `dd-xz:<url>`), the `disk` of
    /// `storage.config` marked `grub_device` (else the first), `cloudconfig` entries
    /// (written under `/etc/cloud/cloud.cfg.d/`) and `write_files`.
    pub fn parse(yaml: &str) -> Result<Self, DeployError> {
        let config: Value = serde_norway::from_str(yaml).map_err(DeployError::Yaml)?;
        let sources = config.get("sources").ok_or(DeployError::NoSource)?;
        let first = match sources {
            Value::Mapping(map) => {
                let mut entries: Vec<(String, &Value)> = map
                    .iter()
                    .map(|(k, v)| (text(k).unwrap_or_default(), v))
                    .collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                entries.into_iter().next().map(|(_, v)| v.clone())
            }
            Value::Sequence(list) => list.first().cloned(),
            other => Some(other.clone()),
        }
        .ok_or(DeployError::NoSource)?;
        let source = match &first {
            Value::String(source) => {
                let (kind, url) = parse_source_text(source)?;
                Source {
                    kind,
                    url,
                    expected: Expected::default(),
                }
            }
            Value::Mapping(_) => {
                let uri = field(&first, "uri").ok_or(DeployError::NoSource)?;
                let (kind, url) = match (uri.split_once(':'), field(&first, "type")) {
                    (Some((prefix, _)), _) if prefix.starts_with("dd-") => parse_source_text(&uri)?,
                    (_, Some(kind)) => (
                        ImageKind::parse(&kind).map_err(|_| DeployError::BadSource {
                            source_text: format!("{kind}:{uri}"),
                        })?,
                        uri.clone(),
                    ),
                    (_, None) => parse_source_text(&uri)?,
                };
                Source {
                    kind,
                    url,
                    expected: Expected {
                        sha256: field(&first, "sha256"),
                        size: field(&first, "size").and_then(|s| s.parse().ok()),
                    },
                }
            }
            _ => return Err(DeployError::NoSource),
        };
        let disks: Vec<&Value> = config
            .get("storage")
            .and_then(|s| s.get("config"))
            .and_then(Value::as_sequence)
            .map(|items| {
                items
                    .iter()
                    .filter(|item| field(item, "type").as_deref() == Some("disk"))
                    .collect()
            })
            .unwrap_or_default();
        let boot = disks
            .iter()
            .find(|disk| disk.get("grub_device").and_then(Value::as_bool) == Some(true))
            .or(disks.first());
        let disk = boot
            .map(|disk| DiskWanted {
                path: field(disk, "path"),
                serial: field(disk, "serial"),
                name: field(disk, "name"),
            })
            .unwrap_or_default();
        let mut files = Vec::new();
        if let Some(Value::Mapping(entries)) = config.get("cloudconfig") {
            let mut entries: Vec<(String, &Value)> = entries
                .iter()
                .map(|(k, v)| (text(k).unwrap_or_default(), v))
                .collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            for (name, entry) in entries {
                let content = match entry {
                    Value::String(content) => content.clone(),
                    other => field(other, "content").unwrap_or_default(),
                };
                let file_name = if name.ends_with(".cfg") {
                    name
                } else {
                    format!("{name}.cfg")
                };
                let path = field(entry, "path")
                    .unwrap_or_else(|| format!("/etc/cloud/cloud.cfg.d/{file_name}"));
                files.push(TargetFile {
                    path,
                    content,
                    mode: 0o600,
                });
            }
        }
        if let Some(Value::Mapping(entries)) = config.get("write_files") {
            for entry in entries.values() {
                if let Some(path) = field(entry, "path") {
                    files.push(TargetFile {
                        path,
                        content: field(entry, "content").unwrap_or_default(),
                        mode: field(entry, "permissions")
                            .and_then(|p| u32::from_str_radix(p.trim_start_matches("0o"), 8).ok())
                            .unwrap_or(0o644),
                    });
                }
            }
        }
        Ok(Plan {
            source,
            disk,
            files,
        })
    }
}

/// The seed MAAS's curtin configuration writes (§8.2 `cloudconfig`): the MAAS datasource
/// with the node's token, and webhook reporting; used when the configuration has none.
pub fn default_seed(
    metadata_url: &str,
    credentials: &Credentials,
    system_id: &str,
) -> Vec<TargetFile> {
    let metadata_url = metadata_url
        .trim_end_matches('/')
        .trim_end_matches("/curtin")
        .to_owned()
        + "/";
    let root = metadata_url
        .trim_end_matches('/')
        .trim_end_matches("/metadata");
    let quote = |value: &str| format!("'{}'", value.replace('\'', "''"));
    vec![
        TargetFile {
            path: "/etc/cloud/cloud.cfg.d/90_maas_datasource.cfg".into(),
            content: "datasource_list: [ MAAS ]\n".into(),
            mode: 0o644,
        },
        TargetFile {
            path: "/etc/cloud/cloud.cfg.d/90_maas_cloud_config.cfg".into(),
            content: format!(
                "datasource:\n  MAAS:\n    metadata_url: {}\n    consumer_key: {}\n    token_key: {}\n    token_secret: {}\nmanual_cache_clean: true\n",
                quote(&metadata_url),
                quote(&credentials.consumer_key),
                quote(&credentials.token_key),
                quote(&credentials.token_secret)
            ),
            mode: 0o600,
        },
        TargetFile {
            path: "/etc/cloud/cloud.cfg.d/90_maas_cloud_init_reporting.cfg".into(),
            content: format!(
                "reporting:\n  maas:\n    type: webhook\n    endpoint: {}\n    consumer_key: {}\n    token_key: {}\n    token_secret: {}\n",
                quote(&format!("{root}/metadata/status/{system_id}")),
                quote(&credentials.consumer_key),
                quote(&credentials.token_key),
                quote(&credentials.token_secret)
            ),
            mode: 0o600,
        },
    ]
}

/// Writes files under a mounted target root.
pub fn write_files(root: &Path, files: &[TargetFile]) -> Result<(), DeployError> {
    use std::os::unix::fs::PermissionsExt;
    for file in files {
        let relative = file.path.trim_start_matches('/');
        if relative.split('/').any(|part| part == "..") {
            continue;
        }
        let path = root.join(relative);
        let error = |source| DeployError::WriteFile {
            path: file.path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(error)?;
        }
        std::fs::write(&path, &file.content).map_err(error)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))
            .map_err(error)?;
    }
    Ok(())
}

/// Runs a command, turning failure into `DeployError::Command` with its output.
pub fn command(program: &str, arguments: &[&str]) -> Result<String, DeployError> {
    let line = format!("{program} {}", arguments.join(" "));
    let output = Command::new(program)
        .args(arguments)
        .output()
        .map_err(|error| DeployError::Command {
            command: line.clone(),
            output: error.to_string(),
        })?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(DeployError::Command {
            command: line,
            output: text.trim().to_owned(),
        })
    }
}

/// `/dev/sda` + 1 -> `/dev/sda1`; `/dev/nvme0n1` or `/dev/loop0` + 1 -> `...p1`.
pub fn partition_path(disk: &Path, number: u32) -> PathBuf {
    let text = disk.to_string_lossy();
    if text.ends_with(|c: char| c.is_ascii_digit()) {
        PathBuf::from(format!("{text}p{number}"))
    } else {
        PathBuf::from(format!("{text}{number}"))
    }
}

/// Waits for a partition's device node. The kernel's rescan (`blockdev --rereadpt`) is
/// tried first; where it adds no partitions (some sandboxes), `partx -a` adds them one by
/// one through BLKPG.
fn wait_for(disk: &Path, path: &Path) -> Result<(), DeployError> {
    let start = Instant::now();
    let mut tried_partx = false;
    while !image::is_block_device(path) {
        if !tried_partx && start.elapsed() > Duration::from_secs(1) {
            tried_partx = true;
            let _ = command("partx", &["-a", &disk.to_string_lossy()]);
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(DeployError::NoPartition {
                path: path.display().to_string(),
            });
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Mounts on creation, unmounts on drop (also on an error path).
pub struct Mount {
    pub directory: PathBuf,
}

impl Mount {
    pub fn new(device: &Path, directory: &Path, options: &[&str]) -> Result<Self, DeployError> {
        std::fs::create_dir_all(directory).map_err(|source| DeployError::WriteFile {
            path: directory.display().to_string(),
            source,
        })?;
        let device = device.to_string_lossy();
        let directory_text = directory.to_string_lossy();
        let mut arguments: Vec<&str> = options.to_vec();
        arguments.push(&device);
        arguments.push(&directory_text);
        command("mount", &arguments)?;
        Ok(Mount {
            directory: directory.to_path_buf(),
        })
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("sync").status();
        let _ = Command::new("umount").arg(&self.directory).output();
    }
}

/// Writes a disk image (the dd types) to `disk`, then places the seed in the first
/// partition that holds a Linux root (`/etc`), as curtin does for dd images. Returns
/// what was written and where the seed went (`None`: no Linux root in the image).
pub fn deploy_disk_image(
    source: impl Read,
    plan: &Plan,
    disk: &Path,
    seed: &[TargetFile],
    work: &Path,
    report: &mut dyn FnMut(String),
) -> Result<(Written, Option<PathBuf>), DeployError> {
    report(format!("writing {} to {}", plan.source.url, disk.display()));
    let written = image::write_disk_image(source, plan.source.kind, disk, &plan.source.expected)?;
    report(format!(
        "wrote {} bytes ({} downloaded, sha256 {})",
        written.bytes, written.downloaded, written.sha256
    ));
    if !image::is_block_device(disk) {
        report(format!(
            "{} is not a block device: the seed is not placed",
            disk.display()
        ));
        return Ok((written, None));
    }
    let _ = command("blockdev", &["--rereadpt", &disk.to_string_lossy()]);
    std::thread::sleep(Duration::from_millis(500));
    if !image::is_block_device(&partition_path(disk, 1)) {
        let _ = command("partx", &["-a", &disk.to_string_lossy()]);
    }
    for number in 1..=16 {
        let partition = partition_path(disk, number);
        if !image::is_block_device(&partition) {
            continue;
        }
        let Ok(mount) = Mount::new(&partition, &work.join("image-root"), &[]) else {
            continue;
        };
        if mount.directory.join("etc").is_dir() {
            write_files(&mount.directory, seed)?;
            report(format!(
                "cloud-init seed written to {}",
                partition.display()
            ));
            return Ok((written, Some(partition)));
        }
    }
    report("no Linux root file system in the image: the cloud-init seed was not written".into());
    Ok((written, None))
}

/// Whether the machine booted through UEFI (and so wants an ESP and GRUB for EFI).
pub fn booted_uefi(root: &Path) -> bool {
    root.join("sys/firmware/efi").exists()
}

/// Partitions `disk` (GPT: a BIOS boot partition or an ESP, then the root), formats it,
/// extracts the tarball, writes the seed and fstab, and installs GRUB.
#[allow(clippy::too_many_arguments)] // each is a distinct input of the install; a struct would only rename them
pub fn deploy_root_tarball(
    source: impl Read,
    plan: &Plan,
    disk: &Path,
    uefi: bool,
    seed: &[TargetFile],
    kernel_options: &str,
    work: &Path,
    report: &mut dyn FnMut(String),
) -> Result<Written, DeployError> {
    let ImageKind::RootTar { compression } = plan.source.kind else {
        return Err(DeployError::BadSource {
            source_text: plan.source.url.clone(),
        });
    };
    if !image::is_block_device(disk) {
        return Err(DeployError::NotBlockDevice {
            target: "a root tarball",
            path: disk.display().to_string(),
        });
    }
    let device = disk.to_string_lossy().into_owned();
    report(format!(
        "partitioning {device} (GPT, {})",
        if uefi { "UEFI" } else { "BIOS" }
    ));
    command("sgdisk", &["--zap-all", &device])?;
    let first = if uefi {
        ["-n", "1:2048:+256M", "-t", "1:ef00", "-c", "1:efi"]
    } else {
        ["-n", "1:2048:+1M", "-t", "1:ef02", "-c", "1:bios_grub"]
    };
    let mut arguments: Vec<&str> = first.to_vec();
    arguments.extend(["-n", "2:0:0", "-t", "2:8300", "-c", "2:root", &device]);
    command("sgdisk", &arguments)?;
    let _ = command("blockdev", &["--rereadpt", &device]);
    let boot_partition = partition_path(disk, 1);
    let root_partition = partition_path(disk, 2);
    wait_for(disk, &root_partition)?;
    report(format!("formatting {} as ext4", root_partition.display()));
    command(
        "mkfs.ext4",
        &[
            "-F",
            "-q",
            "-L",
            "cloudimg-rootfs",
            &root_partition.to_string_lossy(),
        ],
    )?;
    if uefi {
        wait_for(disk, &boot_partition)?;
        command(
            "mkfs.vfat",
            &["-F", "32", "-n", "UEFI", &boot_partition.to_string_lossy()],
        )?;
    }
    let target = work.join("target");
    let root_mount = Mount::new(&root_partition, &target, &["-t", "ext4"])?;
    report(format!("extracting {}", plan.source.url));
    let mut hashing = image::HashingReader::new(source);
    {
        let decompressed = image::decompress(&mut hashing, compression);
        let mut archive = tar::Archive::new(decompressed);
        archive.set_preserve_permissions(true);
        archive.set_preserve_ownerships(true);
        archive.set_overwrite(true);
        archive
            .unpack(&target)
            .map_err(|source| ImageError::Read { written: 0, source })?;
    }
    let (sha256, downloaded) = hashing
        .finish()
        .map_err(|source| ImageError::Read { written: 0, source })?;
    image::check(&plan.source.expected, &sha256, downloaded)?;
    report(format!("extracted {downloaded} bytes, sha256 {sha256}"));
    let mut fstab = "LABEL=cloudimg-rootfs / ext4 defaults 0 1\n".to_owned();
    let _esp_mount = if uefi {
        fstab.push_str("LABEL=UEFI /boot/efi vfat umask=0077 0 1\n");
        Some(Mount::new(
            &boot_partition,
            &target.join("boot/efi"),
            &["-t", "vfat"],
        )?)
    } else {
        None
    };
    let mut files = seed.to_vec();
    files.push(TargetFile {
        path: "/etc/fstab".into(),
        content: fstab,
        mode: 0o644,
    });
    write_files(&target, &files)?;
    report("cloud-init seed and fstab written".into());
    let how = install_grub(&target, &device, uefi, kernel_options)?;
    report(format!("boot loader installed: {how}"));
    drop(_esp_mount);
    drop(root_mount);
    Ok(Written {
        bytes: downloaded,
        downloaded,
        sha256,
    })
}

/// GRUB from the image (chroot, as curtin does) or from the environment.
fn install_grub(
    target: &Path,
    disk: &str,
    uefi: bool,
    kernel_options: &str,
) -> Result<String, DeployError> {
    let platform = if uefi { "x86_64-efi" } else { "i386-pc" };
    let target_text = target.to_string_lossy().into_owned();
    // Tells grub-install which BIOS drive the disk is, which it cannot work out for loop
    // devices and some controllers.
    write_files(
        target,
        &[TargetFile {
            path: "/boot/grub/device.map".into(),
            content: format!("(hd0) {disk}\n"),
            mode: 0o644,
        }],
    )?;
    let platform_arguments: Vec<String> = if uefi {
        vec![
            format!("--target={platform}"),
            "--removable".into(),
            "--no-nvram".into(),
        ]
    } else {
        vec![format!("--target={platform}")]
    };
    if target.join("usr/sbin/grub-install").exists()
        && target.join(format!("usr/lib/grub/{platform}")).is_dir()
    {
        let mut binds = Vec::new();
        for directory in ["dev", "proc", "sys"] {
            binds.push(Mount::new(
                Path::new(&format!("/{directory}")),
                &target.join(directory),
                &["--bind"],
            )?);
        }
        if !kernel_options.trim().is_empty() {
            write_files(
                target,
                &[TargetFile {
                    path: "/etc/default/grub.d/50-maas.cfg".into(),
                    content: format!(
                        "GRUB_CMDLINE_LINUX=\"$GRUB_CMDLINE_LINUX {}\"\n",
                        kernel_options.trim()
                    ),
                    mode: 0o644,
                }],
            )?;
        }
        let mut arguments = vec![target_text.as_str(), "grub-install"];
        arguments.extend(platform_arguments.iter().map(String::as_str));
        if uefi {
            arguments.push("--efi-directory=/boot/efi");
        }
        arguments.push(disk);
        command("chroot", &arguments)?;
        command(
            "chroot",
            &[&target_text, "grub-mkconfig", "-o", "/boot/grub/grub.cfg"],
        )?;
        drop(binds);
        return Ok(format!("the image's grub-install ({platform})"));
    }
    let modules = ["/usr/lib/grub", "/usr/share/grub"]
        .iter()
        .map(|base| PathBuf::from(base).join(platform))
        .find(|path| path.is_dir());
    let Some(modules) = modules else {
        return Err(DeployError::NoBootLoader { platform });
    };
    let boot_directory = format!("--boot-directory={target_text}/boot");
    let efi_directory = format!("--efi-directory={target_text}/boot/efi");
    let directory = format!("--directory={}", modules.display());
    let mut arguments: Vec<&str> = platform_arguments.iter().map(String::as_str).collect();
    arguments.push(&boot_directory);
    arguments.push(&directory);
    if uefi {
        arguments.push(&efi_directory);
    }
    arguments.push(disk);
    command("grub-install", &arguments).map_err(|error| match error {
        DeployError::Command { output, .. }
            if output.contains("No such file") && output.contains("grub-install") =>
        {
            DeployError::NoBootLoader { platform }
        }
        other => other,
    })?;
    let (kernel, initrd) = find_kernel(&target.join("boot"))?;
    let mut config = format!(
        "set default=0\nset timeout=1\nsearch --no-floppy --label cloudimg-rootfs --set=root\nmenuentry 'Deployed by MAAS' {{\n  linux /boot/{kernel} root=LABEL=cloudimg-rootfs ro {}\n",
        kernel_options.trim()
    );
    if let Some(initrd) = initrd {
        config.push_str(&format!("  initrd /boot/{initrd}\n"));
    }
    config.push_str("}\n");
    write_files(
        target,
        &[TargetFile {
            path: "/boot/grub/grub.cfg".into(),
            content: config,
            mode: 0o644,
        }],
    )?;
    Ok(format!(
        "the environment's grub-install ({platform}) with a generated grub.cfg"
    ))
}

/// The newest `vmlinuz-<version>` under `boot` and its `initrd.img-<version>`.
fn find_kernel(boot: &Path) -> Result<(String, Option<String>), DeployError> {
    let mut kernels: Vec<String> = std::fs::read_dir(boot)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with("vmlinuz-") || name.starts_with("vmlinux-"))
                .collect()
        })
        .unwrap_or_default();
    kernels.sort();
    let kernel = kernels.pop().ok_or(DeployError::NoKernel)?;
    let version = kernel.split_once('-').map(|(_, v)| v).unwrap_or("");
    let initrd = format!("initrd.img-{version}");
    let initrd = boot.join(&initrd).exists().then_some(initrd);
    Ok((kernel, initrd))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::Compression;

    #[test]
    fn curtin_style_plan() {
        let plan = Plan::parse(
            "sources:\n  05_primary:\n    uri: http://10.0.0.1:5248/images/abc/custom/amd64/generic/img/uploaded/root-dd.xz\n    type: dd-xz\n    sha256: ABCD\n    size: 42\n\
             storage:\n  version: 1\n  config:\n  - {id: sdb, type: disk, serial: S2, ptable: gpt}\n  - {id: sda, type: disk, serial: S1, grub_device: true, path: /dev/sda}\n\
             cloudconfig:\n  maas-datasource:\n    content: 'datasource_list: [ MAAS ]'\n  90_maas_cloud_config.cfg: |\n    datasource: {}\n",
        )
        .unwrap();
        assert_eq!(
            plan.source.kind,
            ImageKind::Disk {
                compression: Compression::Xz,
                tar: false
            }
        );
        assert!(plan.source.url.starts_with("http://10.0.0.1:5248/images/"));
        assert_eq!(plan.source.expected.sha256.as_deref(), Some("ABCD"));
        assert_eq!(plan.source.expected.size, Some(42));
        assert_eq!(plan.disk.serial.as_deref(), Some("S1"));
        assert_eq!(plan.disk.path.as_deref(), Some("/dev/sda"));
        let paths: Vec<&str> = plan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/cloud/cloud.cfg.d/90_maas_cloud_config.cfg",
                "/etc/cloud/cloud.cfg.d/maas-datasource.cfg"
            ]
        );
    }

    #[test]
    fn source_strings() {
        let plan = Plan::parse("sources: {00: 'dd-tgz:http://h/x'}").unwrap();
        assert_eq!(
            plan.source.kind,
            ImageKind::Disk {
                compression: Compression::Gzip,
                tar: true
            }
        );
        assert_eq!(plan.source.url, "http://h/x");
        let plan = Plan::parse("sources: ['http://h/p/root-tgz/root.tgz']").unwrap();
        assert_eq!(
            plan.source.kind,
            ImageKind::RootTar {
                compression: Compression::Gzip
            }
        );
        assert!(matches!(
            Plan::parse("sources: {a: 'http://h/unknown'}"),
            Err(DeployError::BadSource { .. })
        ));
        assert!(matches!(
            Plan::parse("storage: {}"),
            Err(DeployError::NoSource)
        ));
        assert!(matches!(Plan::parse("{{{"), Err(DeployError::Yaml(_))));
    }

    #[test]
    fn seed_points_at_the_metadata_root() {
        let credentials = Credentials {
            consumer_key: "ck".into(),
            token_key: "tk".into(),
            token_secret: "ts".into(),
        };
        let seed = default_seed(
            "http://10.0.0.1:5248/MAAS/metadata/curtin/",
            &credentials,
            "abc123",
        );
        assert!(
            seed[1]
                .content
                .contains("metadata_url: 'http://10.0.0.1:5248/MAAS/metadata/'")
        );
        assert!(seed[1].content.contains("token_secret: 'ts'"));
        assert!(
            seed[2]
                .content
                .contains("endpoint: 'http://10.0.0.1:5248/MAAS/metadata/status/abc123'")
        );
    }

    #[test]
    fn partition_names() {
        assert_eq!(
            partition_path(Path::new("/dev/sda"), 2),
            PathBuf::from("/dev/sda2")
        );
        assert_eq!(
            partition_path(Path::new("/dev/nvme0n1"), 1),
            PathBuf::from("/dev/nvme0n1p1")
        );
        assert_eq!(
            partition_path(Path::new("/dev/loop3"), 1),
            PathBuf::from("/dev/loop3p1")
        );
    }
}
