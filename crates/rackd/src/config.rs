//! The rack's configuration: defaults in code, then `rackd.toml` in the data directory
//! (written by `maas-rack register`), with the shared secret in its own 0600 file beside it.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use maas_rack::LinkTiming;
use maas_rpc::Secret;
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "rackd.toml";
pub const SECRET_FILE: &str = "secret";
pub const DATA_DIR_ENV: &str = "MAAS_RACK_DATA_DIR";

/// What `rackd.toml` may hold. Unknown keys are an error, so a typo is reported.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The region URLs; the rack links to each (`http://10.0.0.1:5240/MAAS`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub maas_url: Vec<String>,
    /// The name the rack registers with; the host name by default.
    pub hostname: Option<String>,
    /// `text` (default) or `json` log lines.
    pub log_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dhcp: Option<DhcpFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tftp: Option<TftpFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpFile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub images: Option<ImagesFile>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DhcpFile {
    pub enabled: Option<bool>,
    pub server_port: Option<u16>,
    pub client_port: Option<u16>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TftpFile {
    pub enabled: Option<bool>,
    pub listen: Option<Vec<String>>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpFile {
    pub enabled: Option<bool>,
    pub listen: Option<String>,
    /// The port written into boot URLs, when a proxy in front changes it; the listening
    /// port by default.
    pub port: Option<u16>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagesFile {
    /// Bytes the boot image cache may hold (MAAS's default budget is 20 GB).
    pub cache_max_bytes: Option<u64>,
}

fn one_or_many<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(deserializer)? {
        OneOrMany::One(url) => vec![url],
        OneOrMany::Many(urls) => urls,
    })
}

/// Everything [`crate::run`] needs, resolved and checked. Build one with
/// [`RackConfig::new`] and adjust the fields (tests use high ports on loopback).
#[derive(Debug, Clone)]
pub struct RackConfig {
    /// State: system_id, last DHCP configuration, lease log, boot loaders, image cache.
    pub data_dir: PathBuf,
    pub maas_urls: Vec<String>,
    pub hostname: String,
    /// Serve DHCP at all (the region still decides on which interfaces).
    pub dhcp_enabled: bool,
    /// 67 and 68.
    pub dhcp_server_port: u16,
    pub dhcp_client_port: u16,
    /// Sync the lease log before each reply.
    pub dhcp_fsync: bool,
    pub tftp_enabled: bool,
    /// `0.0.0.0:69`.
    pub tftp_listen: Vec<SocketAddr>,
    pub http_enabled: bool,
    /// `0.0.0.0:5248`.
    pub http_listen: SocketAddr,
    /// The HTTP boot port written into boot URLs (the listening port unless a proxy sits in
    /// front).
    pub http_port: u16,
    pub image_cache_max_bytes: u64,
    /// Where the Debian boot loader packages are installed (`/`); tests point it at a
    /// fixture tree.
    pub loader_system_root: PathBuf,
    /// How long a failed server waits before binding again.
    pub server_retry: std::time::Duration,
    /// How often the region's image manifest is fetched.
    pub manifest_interval: std::time::Duration,
    pub link: LinkTiming,
}

impl RackConfig {
    pub fn new(data_dir: PathBuf, maas_urls: Vec<String>) -> RackConfig {
        RackConfig {
            data_dir,
            maas_urls,
            hostname: host_name(),
            dhcp_enabled: true,
            dhcp_server_port: 67,
            dhcp_client_port: 68,
            dhcp_fsync: true,
            tftp_enabled: true,
            tftp_listen: vec![SocketAddr::from(([0, 0, 0, 0], 69))],
            http_enabled: true,
            http_listen: SocketAddr::from(([0, 0, 0, 0], 5248)),
            http_port: 5248,
            image_cache_max_bytes: 20_000_000_000,
            loader_system_root: PathBuf::from("/"),
            server_retry: std::time::Duration::from_secs(30),
            manifest_interval: std::time::Duration::from_secs(60),
            link: LinkTiming::default(),
        }
    }
}

/// The kernel's host name, or `maas-rack`.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "maas-rack".to_owned())
}

/// `--data-dir`, else `MAAS_RACK_DATA_DIR`, else `/var/lib/maas-rack` for root and
/// `~/.local/share/maas-rack` for everyone else.
pub fn data_dir(flag: Option<&str>) -> PathBuf {
    if let Some(dir) = flag {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let is_root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if is_root.unwrap_or(false) {
        return PathBuf::from("/var/lib/maas-rack");
    }
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".local/share/maas-rack"),
        None => PathBuf::from("/var/lib/maas-rack"),
    }
}

pub fn read_file(dir: &Path) -> anyhow::Result<Option<FileConfig>> {
    let path = dir.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => parse(&text)
            .with_context(|| format!("reading rack config from {}", path.display()))
            .map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading rack config from {}", path.display())),
    }
}

pub fn parse(text: &str) -> anyhow::Result<FileConfig> {
    Ok(toml::from_str(text)?)
}

/// Writes `rackd.toml` (atomically) with a header saying where it came from.
pub fn write_file(dir: &Path, config: &FileConfig) -> anyhow::Result<()> {
    let text = format!(
        "# maas-rack configuration, written by `maas-rack register`; the shared secret is in\n# the `{SECRET_FILE}` file beside this one. See rackd.example.toml for every key.\n{}",
        toml::to_string(config).context("encoding rack config")?
    );
    let path = dir.join(CONFIG_FILE);
    write_with_mode(&path, text.as_bytes(), 0o644)
        .with_context(|| format!("writing rack config to {}", path.display()))
}

pub fn read_secret(dir: &Path) -> anyhow::Result<Secret> {
    let path = dir.join(SECRET_FILE);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading the shared secret from {}", path.display()))?;
    Secret::from_hex(&text).with_context(|| format!("the shared secret in {}", path.display()))
}

/// Writes the secret readable by its owner only.
pub fn write_secret(dir: &Path, secret: &Secret) -> anyhow::Result<()> {
    let path = dir.join(SECRET_FILE);
    write_with_mode(&path, format!("{}\n", secret.to_hex()).as_bytes(), 0o600)
        .with_context(|| format!("writing the shared secret to {}", path.display()))
}

/// Temporary file created with `mode`, synced, renamed over `path`.
fn write_with_mode(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let _ = std::fs::remove_file(&temp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temp, path)
}

fn parse_listen(text: &str, what: &str) -> anyhow::Result<SocketAddr> {
    text.trim()
        .parse()
        .with_context(|| format!("{what} address {text:?} is not ADDR:PORT"))
}

/// The configuration `maas-rack start` runs with: the file over the defaults, checked.
pub fn resolve(data_dir: PathBuf, file: FileConfig) -> anyhow::Result<(RackConfig, bool)> {
    if file.maas_url.is_empty() {
        bail!(
            "no region URL in {}: run `maas-rack register --url URL --secret SECRET` first",
            data_dir.join(CONFIG_FILE).display()
        );
    }
    for url in &file.maas_url {
        maas_rpc::transport::link_target(url).with_context(|| format!("maas_url {url:?}"))?;
    }
    let json_logs = match file.log_format.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => bail!("log_format {other:?} is neither \"text\" nor \"json\""),
    };
    let mut config = RackConfig::new(data_dir, file.maas_url.clone());
    if let Some(hostname) = file.hostname.filter(|h| !h.trim().is_empty()) {
        config.hostname = hostname;
    }
    let dhcp = file.dhcp.unwrap_or_default();
    config.dhcp_enabled = dhcp.enabled.unwrap_or(true);
    config.dhcp_server_port = dhcp.server_port.unwrap_or(67);
    config.dhcp_client_port = dhcp.client_port.unwrap_or(68);
    let tftp = file.tftp.unwrap_or_default();
    config.tftp_enabled = tftp.enabled.unwrap_or(true);
    if let Some(listen) = tftp.listen {
        config.tftp_listen = listen
            .iter()
            .map(|text| parse_listen(text, "tftp.listen"))
            .collect::<anyhow::Result<_>>()?;
        if config.tftp_enabled && config.tftp_listen.is_empty() {
            bail!("tftp.listen is empty; set tftp.enabled = false to run without TFTP");
        }
    }
    let http = file.http.unwrap_or_default();
    config.http_enabled = http.enabled.unwrap_or(true);
    if let Some(listen) = http.listen {
        config.http_listen = parse_listen(&listen, "http.listen")?;
    }
    config.http_port = http.port.unwrap_or(config.http_listen.port());
    if let Some(max) = file.images.and_then(|i| i.cache_max_bytes) {
        config.image_cache_max_bytes = max;
    }
    Ok((config, json_logs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses_and_resolves() {
        let file = parse(include_str!("../rackd.example.toml")).expect("example parses");
        let (config, json) = resolve(PathBuf::from("/tmp/r"), file).expect("resolves");
        assert_eq!(config.maas_urls, vec!["http://10.0.0.1:5240/MAAS"]);
        assert_eq!(
            config.tftp_listen,
            vec![SocketAddr::from(([0, 0, 0, 0], 69))]
        );
        assert_eq!(config.http_port, 5248);
        assert!(!json);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(parse("maas_urll = 'x'").is_err());
        assert!(parse("[dhcp]\nport = 67").is_err());
        let file =
            parse("maas_url = 'http://r:5240/MAAS'\n[http]\nlisten = 'nope'").expect("parses");
        assert!(resolve(PathBuf::from("/tmp/r"), file).is_err());
        let file = parse("maas_url = 'ftp://r'").expect("parses");
        assert!(resolve(PathBuf::from("/tmp/r"), file).is_err());
        assert!(resolve(PathBuf::from("/tmp/r"), FileConfig::default()).is_err());
    }

    #[test]
    fn a_single_url_or_a_list_and_ports_from_the_file() {
        let file = parse(
            "maas_url = 'http://r:5240/MAAS'\n[http]\nlisten = '127.0.0.1:15248'\n[dhcp]\nserver_port = 1067\n",
        )
        .expect("parses");
        let (config, _) = resolve(PathBuf::from("/tmp/r"), file).expect("resolves");
        assert_eq!(config.maas_urls, vec!["http://r:5240/MAAS"]);
        assert_eq!((config.http_port, config.dhcp_server_port), (15248, 1067));
        let file = parse("maas_url = ['http://a/MAAS', 'http://b/MAAS']").expect("parses");
        assert_eq!(file.maas_url.len(), 2);
    }

    #[test]
    fn config_and_secret_round_trip_with_private_secret() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = FileConfig {
            maas_url: vec!["http://r:5240/MAAS".into()],
            http: Some(HttpFile {
                listen: Some("127.0.0.1:1".into()),
                ..HttpFile::default()
            }),
            ..FileConfig::default()
        };
        write_file(dir.path(), &file).expect("write");
        assert_eq!(read_file(dir.path()).expect("read"), Some(file));
        let secret = Secret::from_hex("00112233445566778899aabbccddeeff").expect("hex");
        write_secret(dir.path(), &secret).expect("write");
        assert_eq!(read_secret(dir.path()).expect("read"), secret);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = std::fs::read_to_string(dir.path().join(CONFIG_FILE)).expect("read");
        assert!(!text.contains("00112233"), "{text}");
    }
}
