//! What a booting machine gets (MAAS's `GetBootConfig`, provisioning §3.3): the purpose from
//! its status, the OS and kernel to boot, and the URLs its environment talks to.

use std::net::IpAddr;
use std::sync::Arc;

use maas_domain::{NodeStatus, NodeType};
use maas_rpc::{BootConfigReply, BootConfigRequest};
use maas_store::{EventLevel, Node, NodeUpdate};

use crate::error::ServiceResult;
use crate::region::Region;
use crate::service::config;
use crate::service::lifecycle::{self as life, Actor};

/// Root image file names, in order of preference.
const ROOT_FILES: [&str; 5] = [
    "squashfs",
    "root-tgz",
    "root.tgz",
    "root-txz",
    "root.tar.xz",
];

/// The boot paths of the region's images (`<os>/<arch>/<subarch>/<series>/<label>/<file>`),
/// as racks find them in the manifest. Empty (with a warning) if they cannot be read.
async fn image_paths(region: &Region) -> Vec<String> {
    let catalog =
        crate::service::images::StoreCatalog::new(region.store.clone(), region.clock.clone());
    match maas_images::boot_files(&catalog).await {
        Ok(entries) => entries.into_iter().map(|e| e.path).collect(),
        Err(error) => {
            tracing::warn!(%error, "reading the boot images for a boot decision failed");
            Vec::new()
        }
    }
}

/// The image directory (`<os>/<arch>/<subarch>/<series>/<label>`) holding a kernel for this
/// OS, architecture and release: the wanted kernel flavour if there is one, else the
/// newest `ga-`/`hwe-` flavour, else any.
pub fn image_dir(
    images: &[String],
    osystem: &str,
    arch: &str,
    release: &str,
    flavour: &str,
) -> Option<String> {
    let mut candidates: Vec<(&str, String)> = images
        .iter()
        .filter_map(|path| {
            let parts: Vec<&str> = path.split('/').collect();
            match parts.as_slice() {
                [os, a, sub, series, label, "boot-kernel"]
                    if *os == osystem && *a == arch && *series == release =>
                {
                    Some((*sub, format!("{os}/{a}/{sub}/{series}/{label}")))
                }
                _ => None,
            }
        })
        .collect();
    if let Some((_, dir)) = candidates.iter().find(|(sub, _)| *sub == flavour) {
        return Some(dir.clone());
    }
    candidates.sort();
    candidates
        .iter()
        .rev()
        .find(|(sub, _)| sub.starts_with("ga-") || sub.starts_with("hwe-"))
        .or(candidates.last())
        .map(|(_, dir)| dir.clone())
}

/// The boot purpose for a node's state (§3.3 table).
pub fn purpose(node: &Node) -> &'static str {
    match node.node_type {
        NodeType::RackController
        | NodeType::RegionController
        | NodeType::RegionAndRackController => {
            return "local";
        }
        NodeType::Device => return "local",
        NodeType::Machine => {}
    }
    if node.ephemeral_deploy && matches!(node.status, NodeStatus::Deploying | NodeStatus::Deployed)
    {
        return "xinstall";
    }
    match node.status {
        NodeStatus::New
        | NodeStatus::Commissioning
        | NodeStatus::DiskErasing
        | NodeStatus::EnteringRescueMode
        | NodeStatus::Releasing
        | NodeStatus::RescueMode
        | NodeStatus::Testing => "commissioning",
        NodeStatus::Deploying if node.netboot => "xinstall",
        NodeStatus::Deploying | NodeStatus::Deployed => "local",
        NodeStatus::Ready
        | NodeStatus::Allocated
        | NodeStatus::Reserved
        | NodeStatus::Broken
        | NodeStatus::Missing
        | NodeStatus::Retired
        | NodeStatus::FailedCommissioning
        | NodeStatus::FailedDeployment
        | NodeStatus::FailedReleasing
        | NodeStatus::FailedDiskErasing
        | NodeStatus::FailedEnteringRescueMode
        | NodeStatus::ExitingRescueMode
        | NodeStatus::FailedExitingRescueMode
        | NodeStatus::FailedTesting => "poweroff",
    }
}

/// The kernel flavour for a release when the machine's subarchitecture is `generic`:
/// `ga-<version>` for Ubuntu, else the subarchitecture itself.
fn kernel_subarch(osystem: &str, release: &str, subarch: &str, hwe_kernel: Option<&str>) -> String {
    if let Some(kernel) = hwe_kernel.filter(|k| !k.is_empty()) {
        return kernel.to_owned();
    }
    if subarch != "generic" {
        return subarch.to_owned();
    }
    if osystem == "ubuntu"
        && let Some(version) = crate::service::allocation::ubuntu_version(release)
    {
        return format!("ga-{version}");
    }
    subarch.to_owned()
}

/// The region URL as a booting machine reaches it: `maas_url`, except that a loopback host
/// (the all-in-one default, `http://localhost:5240/MAAS`) is replaced by the address of the
/// rack that answered, which in an all-in-one is this host.
pub fn region_url_for(maas_url: &str, local_ip: IpAddr) -> String {
    let trimmed = maas_url.trim_end_matches('/');
    let Some(rest) = trimmed.strip_prefix("http://") else {
        return trimmed.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (host, port) = match authority.rfind(':') {
        Some(colon) if !authority[colon..].contains(']') => {
            (&authority[..colon], &authority[colon..])
        }
        _ => (authority, ""),
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare == "localhost" || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return trimmed.to_owned();
    }
    let ip = match local_ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    format!("http://{ip}{port}{path}")
}

fn split_arch(architecture: &str) -> (String, String) {
    match architecture.split_once('/') {
        Some((arch, sub)) => (arch.to_owned(), sub.to_owned()),
        None => (architecture.to_owned(), "generic".to_owned()),
    }
}

/// The boot decision for the machine behind `request`, or `None` when the region has
/// nothing for it (an unknown MAC asking before its architecture is known).
pub async fn boot_config(
    region: &Arc<Region>,
    rack: &str,
    request: &BootConfigRequest,
) -> ServiceResult<Option<BootConfigReply>> {
    let store = region.store.as_ref();
    let mac = request
        .mac
        .as_deref()
        .and_then(|m| m.parse::<maas_domain::MacAddress>().ok());
    let node = match mac {
        Some(mac) => store.node_by_mac(&mac.to_string()).await?,
        None => None,
    };
    if node.is_none() && request.arch.is_none() {
        return Ok(None);
    }
    let commissioning_os = "ubuntu".to_owned();
    let commissioning_release = config::get(store, "commissioning_distro_series")
        .await?
        .as_str()
        .unwrap_or("noble")
        .to_owned();
    let kernel_opts = config::get(store, "kernel_opts")
        .await?
        .as_str()
        .unwrap_or("")
        .to_owned();
    let log_port = config::get(store, "maas_syslog_port")
        .await?
        .as_i64()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(5247);
    let base = region_url_for(&region.config.maas_url, request.local_ip);
    let (arch, subarch) = match node.as_ref().and_then(|n| n.architecture.as_deref()) {
        Some(architecture) => split_arch(architecture),
        None => (
            request.arch.clone().unwrap_or_else(|| "amd64".to_owned()),
            request
                .subarch
                .clone()
                .unwrap_or_else(|| "generic".to_owned()),
        ),
    };
    let Some(node) = node else {
        let label = kernel_subarch(&commissioning_os, &commissioning_release, &subarch, None);
        let images = image_paths(region).await;
        tracing::debug!(rack, mac = ?request.mac, %arch, "boot config for an unknown machine: enlistment");
        return Ok(Some(reply(
            "commissioning",
            &arch,
            &subarch,
            &commissioning_os,
            &commissioning_release,
            &label,
            "maas-enlist",
            "maas",
            format!("{base}/metadata/latest/enlist-preseed/?op=get_enlist_preseed"),
            request,
            log_port,
            kernel_opts,
            None,
            &images,
        )));
    };
    let purpose = purpose(&node);
    // Commissioning-like purposes boot the commissioning release; a deployment of Ubuntu
    // boots the target release itself, other OSes are installed from the commissioning one.
    // Erasing an Ubuntu machine boots its deployed release too.
    let own_release = node.osystem == "ubuntu"
        && !node.distro_series.is_empty()
        && (purpose == "xinstall" || node.status == NodeStatus::DiskErasing);
    let (osystem, release) = if own_release {
        (node.osystem.clone(), node.distro_series.clone())
    } else {
        (commissioning_os.clone(), commissioning_release.clone())
    };
    let hwe = if purpose == "xinstall" {
        node.hwe_kernel.as_deref()
    } else {
        None
    };
    let label = kernel_subarch(&osystem, &release, &subarch, hwe);
    let images = image_paths(region).await;
    // A PXE request shows the machine is alive: re-arm its status timer and log it.
    if let Some(expires) = node.status_expires {
        let timeout = life::node_timeout(region).await?;
        let now = region.now();
        if expires < now + timeout {
            store
                .update_node(
                    node.id,
                    NodeUpdate {
                        status_expires: Some(Some(now + timeout)),
                        updated: now,
                        ..NodeUpdate::default()
                    },
                )
                .await?;
        }
    }
    life::event(
        region,
        &node,
        "PXE Request",
        &format!("PXE Request - {purpose}"),
        EventLevel::Debug,
        Actor::System,
        false,
    )
    .await?;
    tracing::info!(system_id = %node.system_id, rack, purpose, %osystem, %release, "boot config");
    Ok(Some(reply(
        purpose,
        &arch,
        &subarch,
        &osystem,
        &release,
        &label,
        &node.hostname,
        &node.domain.name,
        format!(
            "{base}/metadata/latest/by-id/{}/?op=get_preseed",
            node.system_id
        ),
        request,
        log_port,
        kernel_opts,
        Some(node.system_id.clone()),
        &images,
    )))
}

#[allow(clippy::too_many_arguments)]
fn reply(
    purpose: &str,
    arch: &str,
    subarch: &str,
    osystem: &str,
    release: &str,
    label: &str,
    hostname: &str,
    domain: &str,
    preseed_url: String,
    request: &BootConfigRequest,
    log_port: u16,
    extra_opts: String,
    system_id: Option<String>,
    images: &[String],
) -> BootConfigReply {
    let dir = image_dir(images, osystem, arch, release, label)
        .unwrap_or_else(|| format!("{osystem}/{arch}/{label}/{release}/stable"));
    let root = ROOT_FILES
        .iter()
        .map(|name| format!("{dir}/{name}"))
        .find(|path| images.contains(path))
        .unwrap_or_else(|| format!("{dir}/squashfs"));
    BootConfigReply {
        purpose: purpose.to_owned(),
        arch: arch.to_owned(),
        subarch: subarch.to_owned(),
        osystem: osystem.to_owned(),
        release: release.to_owned(),
        kernel: format!("{dir}/boot-kernel"),
        initrd: format!("{dir}/boot-initrd"),
        boot_dtb: None,
        xinstall_path: Some(root),
        hostname: hostname.to_owned(),
        domain: domain.to_owned(),
        preseed_url,
        fs_host: request.local_ip,
        log_host: request.local_ip.to_string(),
        log_port,
        extra_opts,
        ephemeral_opts: String::new(),
        system_id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_urls_for_booting_machines() {
        let rack: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(
            region_url_for("http://localhost:5240/MAAS", rack),
            "http://10.0.0.2:5240/MAAS"
        );
        assert_eq!(
            region_url_for("http://127.0.0.1:5240/MAAS/", rack),
            "http://10.0.0.2:5240/MAAS"
        );
        assert_eq!(
            region_url_for("http://[::1]:5240/MAAS", "fd00::2".parse().unwrap()),
            "http://[fd00::2]:5240/MAAS"
        );
        assert_eq!(
            region_url_for("http://region.example:5240/MAAS", rack),
            "http://region.example:5240/MAAS"
        );
        assert_eq!(
            region_url_for("https://region.example/MAAS", rack),
            "https://region.example/MAAS"
        );
    }

    #[test]
    fn image_directories() {
        let images: Vec<String> = [
            "ubuntu/amd64/ga-24.04/noble/stable/boot-kernel",
            "ubuntu/amd64/ga-24.04/noble/stable/boot-initrd",
            "ubuntu/amd64/hwe-24.04/noble/stable/boot-kernel",
            "ubuntu/amd64/ga-22.04/jammy/20240101/boot-kernel",
            "ubuntu/arm64/ga-24.04/noble/stable/boot-kernel",
            "grub-efi-signed/uefi/amd64/20210819/grubx64.efi",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            image_dir(&images, "ubuntu", "amd64", "noble", "hwe-24.04").as_deref(),
            Some("ubuntu/amd64/hwe-24.04/noble/stable")
        );
        assert_eq!(
            image_dir(&images, "ubuntu", "amd64", "jammy", "ga-22.04").as_deref(),
            Some("ubuntu/amd64/ga-22.04/jammy/20240101")
        );
        // No exact flavour: the newest ga/hwe one.
        assert_eq!(
            image_dir(&images, "ubuntu", "amd64", "noble", "xgene").as_deref(),
            Some("ubuntu/amd64/hwe-24.04/noble/stable")
        );
        assert_eq!(
            image_dir(&images, "ubuntu", "ppc64el", "noble", "ga-24.04"),
            None
        );
    }

    #[test]
    fn kernels() {
        assert_eq!(
            kernel_subarch("ubuntu", "noble", "generic", None),
            "ga-24.04"
        );
        assert_eq!(
            kernel_subarch("ubuntu", "jammy", "generic", Some("hwe-22.04")),
            "hwe-22.04"
        );
        assert_eq!(
            kernel_subarch("ubuntu", "noble", "xgene-uboot", None),
            "xgene-uboot"
        );
        assert_eq!(kernel_subarch("centos", "8", "generic", None), "generic");
    }
}
