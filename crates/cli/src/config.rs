//! The region's configuration: defaults in code, then `regiond.toml` in the
//! data directory, then `MAAS_*` environment variables, then flags.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

pub const CONFIG_FILE: &str = "regiond.toml";
pub const DEFAULT_PORT: u16 = 5240;

/// What `regiond.toml` may hold. Unknown keys are an error, so a typo is
/// reported instead of silently ignored.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The URL machines and racks use to reach this region.
    pub maas_url: Option<String>,
    /// `sqlite:<path>` (the default, under the data directory) or `postgres://…`.
    pub database_uri: Option<String>,
    /// Address and port the HTTP API listens on.
    pub listen: Option<String>,
    /// `text` (default) or `json` log lines.
    pub log_format: Option<String>,
    /// Directory of machine-agent binaries served as
    /// `/MAAS/machine-resources/<arch>` (file name: the Debian architecture).
    pub agent_dir: Option<PathBuf>,
    /// Where boot image files are stored (default: `images` in the data directory).
    pub images_dir: Option<PathBuf>,
    /// Whether `maas start` imports boot images (then hourly) while the
    /// `boot_images_auto_import` setting is true (default true).
    pub images_auto_import: Option<bool>,
    /// The boot source a region without any gets (default MAAS's public stream).
    pub boot_source_url: Option<String>,
    /// That source's keyring file.
    pub boot_source_keyring: Option<PathBuf>,
    /// Seconds between power-state queries of one BMC (default 15; 0 turns polling off).
    pub power_poll_interval: Option<u64>,
}

/// The configuration after every layer is applied and checked.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub data_dir: PathBuf,
    pub maas_url: String,
    pub database_uri: String,
    pub listen: std::net::SocketAddr,
    pub json_logs: bool,
    pub agent_dir: Option<PathBuf>,
    pub images_dir: PathBuf,
    pub images_auto_import: bool,
    pub boot_source_url: String,
    pub boot_source_keyring: PathBuf,
    pub power_poll_interval: u64,
}

/// `--data-dir`, else `MAAS_DATA_DIR`, else MAAS's `/var/lib/maas` for root
/// and `~/.local/share/maas` for everyone else.
pub fn data_dir(flag: Option<&str>) -> PathBuf {
    if let Some(dir) = flag {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("MAAS_DATA_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let is_root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    if is_root.unwrap_or(false) {
        return PathBuf::from("/var/lib/maas");
    }
    match std::env::var_os("HOME") {
        Some(home) => Path::new(&home).join(".local/share/maas"),
        None => PathBuf::from("/var/lib/maas"),
    }
}

pub fn read_file(dir: &Path) -> anyhow::Result<Option<FileConfig>> {
    let path = dir.join(CONFIG_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let config = toml::from_str(&text)
                .with_context(|| format!("reading region config from {}", path.display()))?;
            Ok(Some(config))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading region config from {}", path.display())),
    }
}

pub fn write_file(dir: &Path, config: &FileConfig) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let text = format!(
        "# MAAS region configuration, written by `maas init`.\n# Environment variables MAAS_URL, MAAS_DATABASE_URI, MAAS_LISTEN and MAAS_LOG_FORMAT override these.\n{}",
        toml::to_string(config).context("encoding region config")?
    );
    let path = dir.join(CONFIG_FILE);
    std::fs::write(&path, text)
        .with_context(|| format!("writing region config to {}", path.display()))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Applies environment variables and flags over the file and the defaults.
pub fn resolve(
    data_dir: PathBuf,
    file: FileConfig,
    listen_flag: Option<&str>,
) -> anyhow::Result<Resolved> {
    let maas_url = env("MAAS_URL")
        .or(file.maas_url)
        .unwrap_or_else(|| format!("http://localhost:{DEFAULT_PORT}/MAAS"));
    let database_uri = env("MAAS_DATABASE_URI")
        .or(file.database_uri)
        .unwrap_or_else(|| format!("sqlite:{}", data_dir.join("maas.db").display()));
    let listen_text = listen_flag
        .map(str::to_owned)
        .or_else(|| env("MAAS_LISTEN"))
        .or(file.listen)
        .unwrap_or_else(|| format!("0.0.0.0:{DEFAULT_PORT}"));
    let listen = listen_text
        .parse()
        .with_context(|| format!("listen address '{listen_text}' is not ADDR:PORT"))?;
    let json_logs = match env("MAAS_LOG_FORMAT").or(file.log_format).as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => bail!("log_format '{other}' is neither 'text' nor 'json'"),
    };
    if !(maas_url.starts_with("http://") || maas_url.starts_with("https://")) {
        bail!("maas_url '{maas_url}' must start with http:// or https://");
    }
    let agent_dir = env("MAAS_AGENT_DIR").map(PathBuf::from).or(file.agent_dir);
    let images_dir = env("MAAS_IMAGES_DIR")
        .map(PathBuf::from)
        .or(file.images_dir)
        .unwrap_or_else(|| data_dir.join("images"));
    let images_auto_import = match env("MAAS_IMAGES_AUTO_IMPORT") {
        None => file.images_auto_import.unwrap_or(true),
        Some(text) => match text.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => true,
            "0" | "false" | "no" | "off" => false,
            _ => bail!("MAAS_IMAGES_AUTO_IMPORT '{text}' is neither true nor false"),
        },
    };
    let boot_source_url = env("MAAS_BOOT_SOURCE_URL")
        .or(file.boot_source_url)
        .unwrap_or_else(|| maas_region::service::images::DefaultBootSource::default().url);
    let boot_source_keyring = env("MAAS_BOOT_SOURCE_KEYRING")
        .map(PathBuf::from)
        .or(file.boot_source_keyring)
        .unwrap_or_else(|| {
            PathBuf::from(
                maas_region::service::images::DefaultBootSource::default().keyring_filename,
            )
        });
    let power_poll_interval = match env("MAAS_POWER_POLL_INTERVAL") {
        None => file.power_poll_interval.unwrap_or(15),
        Some(text) => text.parse().with_context(|| {
            format!("MAAS_POWER_POLL_INTERVAL '{text}' is not a number of seconds")
        })?,
    };
    Ok(Resolved {
        power_poll_interval,
        data_dir,
        maas_url,
        database_uri,
        listen,
        json_logs,
        agent_dir,
        images_dir,
        images_auto_import,
        boot_source_url,
        boot_source_keyring,
    })
}

/// The file holding the region's shared secret (hex), which racks must prove they know.
pub const SECRET_FILE: &str = "secret";

/// Reads the shared secret, creating a random one (mode 0600) the first time, as MAAS's
/// `maas init` does.
pub fn ensure_secret(dir: &Path) -> anyhow::Result<maas_rpc::Secret> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            return maas_rpc::Secret::from_hex(&text)
                .with_context(|| format!("reading the shared secret in {}", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("reading the shared secret in {}", path.display()));
        }
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let secret = maas_rpc::Secret::from_bytes(rand::random());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating the shared secret in {}", path.display()))?;
    file.write_all(format!("{}\n", secret.to_hex()).as_bytes())
        .with_context(|| format!("writing the shared secret in {}", path.display()))?;
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_parses() {
        let text = include_str!("../regiond.example.toml");
        let config: FileConfig = toml::from_str(text).expect("example config parses");
        assert_eq!(config.listen.as_deref(), Some("0.0.0.0:5240"));
    }

    #[test]
    fn secret_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = ensure_secret(dir.path()).unwrap();
        let again = ensure_secret(dir.path()).unwrap();
        assert_eq!(first, again);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(SECRET_FILE), "not hex").unwrap();
        assert!(ensure_secret(dir.path()).is_err());
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<FileConfig>("databse_uri = 'x'").is_err());
    }

    #[test]
    fn defaults_and_checks() {
        let resolved = resolve(
            PathBuf::from("/tmp/d"),
            FileConfig::default(),
            Some("127.0.0.1:9"),
        )
        .unwrap();
        assert_eq!(resolved.database_uri, "sqlite:/tmp/d/maas.db");
        assert_eq!(resolved.images_dir, PathBuf::from("/tmp/d/images"));
        assert!(resolved.images_auto_import);
        assert_eq!(
            resolved.boot_source_url,
            "http://images.maas.io/ephemeral-v3/stable/"
        );
        assert_eq!(resolved.listen.port(), 9);
        assert!(resolve(PathBuf::from("/tmp/d"), FileConfig::default(), Some("nope")).is_err());
        let bad = FileConfig {
            maas_url: Some("ftp://x".into()),
            ..FileConfig::default()
        };
        assert!(resolve(PathBuf::from("/tmp/d"), bad, None).is_err());
    }
}
