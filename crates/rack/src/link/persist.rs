//! What the rack keeps in its data directory across restarts: the system_id the region gave
//! it, and the last DHCP configuration, so a rack restarted while the region is down keeps
//! serving the VLANs it served. Files are replaced atomically (temporary file, sync, rename).

use std::io::Write;
use std::path::{Path, PathBuf};

use maas_rpc::DhcpConfig;
use thiserror::Error;

pub const SYSTEM_ID_FILE: &str = "system_id";
pub const DHCP_CONFIG_FILE: &str = "dhcp-config.json";

#[derive(Debug, Error)]
pub enum PersistError {
    #[error("{action} {path}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} does not hold a DHCP configuration")]
    Malformed {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Writes `bytes` to `path` so that a reader sees the old or the new content, never a mix,
/// even across a crash.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PersistError> {
    let io = |action, path: &Path| {
        let path = path.to_owned();
        move |source| PersistError::Io {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file = std::fs::File::create(&temp).map_err(io("creating", &temp))?;
    file.write_all(bytes).map_err(io("writing", &temp))?;
    file.sync_all().map_err(io("syncing", &temp))?;
    drop(file);
    std::fs::rename(&temp, path).map_err(io("renaming into", path))?;
    // The rename is durable once the directory is synced; a failure here only loses the
    // newest write on power loss.
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
    Ok(())
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, PersistError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(PersistError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

/// The persisted system_id, if any (an empty or blank file counts as none).
pub fn load_system_id(dir: &Path) -> Result<Option<String>, PersistError> {
    let bytes = read_optional(&dir.join(SYSTEM_ID_FILE))?;
    Ok(bytes
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .filter(|id| !id.is_empty()))
}

pub fn save_system_id(dir: &Path, system_id: &str) -> Result<(), PersistError> {
    write_atomic(
        &dir.join(SYSTEM_ID_FILE),
        format!("{system_id}\n").as_bytes(),
    )
}

/// The last DHCP configuration the region sent, as it was sent.
pub fn load_dhcp_config(dir: &Path) -> Result<Option<DhcpConfig>, PersistError> {
    let path = dir.join(DHCP_CONFIG_FILE);
    let Some(bytes) = read_optional(&path)? else {
        return Ok(None);
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| PersistError::Malformed { path, source })
}

pub fn save_dhcp_config(dir: &Path, config: &DhcpConfig) -> Result<(), PersistError> {
    // Serialising plain structs of strings, numbers and addresses cannot fail.
    let bytes = serde_json::to_vec_pretty(config).unwrap_or_default();
    write_atomic(&dir.join(DHCP_CONFIG_FILE), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use maas_rpc::{DhcpHost, DhcpInterface, DhcpSubnet};

    #[test]
    fn round_trips_and_missing_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("nested");
        assert_eq!(load_system_id(&data).expect("read"), None);
        assert_eq!(load_dhcp_config(&data).expect("read"), None);

        save_system_id(&data, "xyz234").expect("save");
        assert_eq!(
            load_system_id(&data).expect("read").as_deref(),
            Some("xyz234")
        );
        save_system_id(&data, "abc678").expect("replace");
        assert_eq!(
            load_system_id(&data).expect("read").as_deref(),
            Some("abc678")
        );

        let config = DhcpConfig {
            interfaces: vec![DhcpInterface {
                name: "eth1".into(),
                address: "10.0.0.2".parse().expect("ip"),
            }],
            subnets: vec![DhcpSubnet {
                cidr: "10.0.0.0/24".into(),
                router: None,
                dns_servers: vec![],
                domain_name: None,
                lease_time: 600,
                mtu: None,
                ranges: vec![(
                    "10.0.0.100".parse().expect("ip"),
                    "10.0.0.200".parse().expect("ip"),
                )],
                server_ip: None,
            }],
            hosts: vec![DhcpHost {
                mac: "52:54:00:00:00:01".into(),
                ip: "10.0.0.5".parse().expect("ip"),
                hostname: None,
            }],
        };
        save_dhcp_config(&data, &config).expect("save");
        assert_eq!(load_dhcp_config(&data).expect("read"), Some(config));
        // No temporary files are left behind.
        let names: Vec<_> = std::fs::read_dir(&data)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        assert!(names.iter().all(|n| !n.contains(".tmp-")), "{names:?}");
    }

    #[test]
    fn a_damaged_config_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(DHCP_CONFIG_FILE), b"{\"interfaces\": [").expect("write");
        assert!(matches!(
            load_dhcp_config(dir.path()),
            Err(PersistError::Malformed { .. })
        ));
        std::fs::write(dir.path().join(SYSTEM_ID_FILE), b"  \n").expect("write");
        assert_eq!(load_system_id(dir.path()).expect("read"), None);
    }
}
