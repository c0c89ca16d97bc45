//! The `virsh` driver: libvirt domains through the `virsh` tool, as MAAS
//! does (provisioning.md §6.5).
//!
//! `virsh` is run with an argument list and a cleared environment, never
//! through a shell. A password for `qemu+ssh://` reaches ssh through
//! `SSH_ASKPASS`: a helper in a private temporary directory prints it from
//! a file of mode 0600, so it never appears on a command line or in logs.

use std::io;
use std::path::PathBuf;
use std::process::Stdio;

use async_trait::async_trait;
use maas_domain::PowerState;
use tokio::process::Command;
use tracing::{Instrument, debug, info_span};

use crate::driver::{DriverOptions, PowerDriver, Timeouts};
use crate::error::{PowerAction, PowerError};
use crate::params::{PowerParameters, SettingsReader};
use crate::schema::{Capabilities, IP_EXTRACTOR_URL, PowerTypeSchema, SettingField};
use crate::secret::Secret;

pub(crate) const NAME: &str = "virsh";
const TOOL: &str = "virsh";

const CAPABILITIES: Capabilities = Capabilities {
    queryable: true,
    pxe_boot_once: false,
    chassis: true,
    can_probe: false,
    can_set_boot_order: false,
};

pub(crate) fn schema() -> PowerTypeSchema {
    let mut schema = PowerTypeSchema::new(
        NAME,
        "Virsh (virtual systems)",
        CAPABILITIES,
        vec![
            SettingField::string("power_address", "Address").required(),
            SettingField::password("power_pass", "Password (optional)"),
            SettingField::string("power_id", "Virsh VM ID")
                .required()
                .node_scope(),
        ],
    )
    .with_ip_extractor("power_address", IP_EXTRACTOR_URL);
    if find_tool().is_none() {
        schema.missing_packages.push("libvirt-clients".to_owned());
    }
    schema
}

fn find_tool() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(TOOL))
        .find(|candidate| candidate.is_file())
}

/// The parsed `virsh` power parameters.
#[derive(Clone, Debug)]
pub struct VirshSettings {
    /// A libvirt URI such as `qemu+ssh://user@host/system` or `qemu:///system`.
    pub uri: String,
    /// The domain's name (or UUID).
    pub domain: String,
    pub password: Option<Secret>,
}

impl VirshSettings {
    pub fn from_parameters(params: &PowerParameters) -> Result<VirshSettings, PowerError> {
        let reader = SettingsReader::new(NAME, params);
        let uri = reader.required("power_address")?;
        let valid_uri = uri.contains(":/")
            && !uri.starts_with('-')
            && !uri.chars().any(|c| c.is_whitespace() || c.is_control());
        if !valid_uri {
            return Err(reader.invalid("power_address", format!("{uri:?} is not a libvirt URI")));
        }
        let domain = reader.required("power_id")?;
        if domain.starts_with('-') || domain.chars().any(char::is_control) {
            return Err(reader.invalid("power_id", format!("{domain:?} is not a domain name")));
        }
        let password = Some(reader.secret("power_pass")).filter(|secret| !secret.is_empty());
        Ok(VirshSettings {
            uri: uri.to_owned(),
            domain: domain.to_owned(),
            password,
        })
    }

    /// The URI handed to virsh: for SSH transports, libvirt is told not to
    /// verify the host key, as MAAS does.
    fn connect_uri(&self) -> String {
        let ssh = self
            .uri
            .split("://")
            .next()
            .is_some_and(|scheme| scheme.ends_with("+ssh"));
        if ssh && !self.uri.contains("no_verify=") {
            let separator = if self.uri.contains('?') { '&' } else { '?' };
            format!("{}{separator}no_verify=1", self.uri)
        } else {
            self.uri.clone()
        }
    }
}

#[derive(Debug)]
pub struct VirshDriver {
    settings: VirshSettings,
    bmc: String,
    timeouts: Timeouts,
}

/// Where an askpass helper and its password file live while virsh runs.
struct Askpass {
    dir: tempfile::TempDir,
}

impl Askpass {
    fn new(password: &Secret) -> io::Result<Askpass> {
        use std::io::Write;
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::Builder::new()
            .prefix("maas-power-virsh-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir()?;
        // Whatever the umask did, nobody else may look inside.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let secret_path = dir.path().join("password");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&secret_path)?;
        file.write_all(password.expose().as_bytes())?;
        let helper = dir.path().join("askpass");
        let script = format!(
            "#!/bin/sh\nexec cat '{}'\n",
            secret_path.display().to_string().replace('\'', "'\\''")
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(&helper)?;
        file.write_all(script.as_bytes())?;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o700))?;
        Ok(Askpass { dir })
    }

    fn helper(&self) -> PathBuf {
        self.dir.path().join("askpass")
    }
}

impl VirshDriver {
    pub fn new(settings: VirshSettings, options: &DriverOptions) -> VirshDriver {
        VirshDriver {
            bmc: format!("{} domain {}", settings.uri, settings.domain),
            settings,
            timeouts: options.timeouts,
        }
    }

    fn span(&self, action: PowerAction) -> tracing::Span {
        info_span!("power", driver = NAME, action = %action, bmc = %self.bmc)
    }

    /// Runs `virsh --connect URI <args>` bounded by the exchange time limit
    /// and returns its standard output.
    async fn virsh(&self, args: &[&str], action: PowerAction) -> Result<String, PowerError> {
        let tool = find_tool().ok_or_else(|| PowerError::MissingTool {
            tool: TOOL,
            bmc: self.bmc.clone(),
            action,
            source: io::Error::new(
                io::ErrorKind::NotFound,
                "virsh is not on PATH (Debian package libvirt-clients)",
            ),
        })?;
        let askpass = match &self.settings.password {
            Some(password) => {
                Some(
                    Askpass::new(password).map_err(|source| PowerError::Connection {
                        bmc: self.bmc.clone(),
                        action,
                        source,
                    })?,
                )
            }
            None => None,
        };
        let mut command = Command::new(tool);
        command
            .arg("--quiet")
            .arg("--connect")
            .arg(self.settings.connect_uri())
            .args(args)
            .env_clear()
            .env("LC_ALL", "C")
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(home) = std::env::var_os("HOME") {
            command.env("HOME", home);
        }
        if let Some(askpass) = &askpass {
            command
                .env("SSH_ASKPASS", askpass.helper())
                .env("SSH_ASKPASS_REQUIRE", "force")
                .env("DISPLAY", "none");
        }
        debug!(args = ?args, "running virsh");
        let limit = self.timeouts.exchange_bound();
        let output = match tokio::time::timeout(limit, command.output()).await {
            Err(_) => {
                return Err(PowerError::Timeout {
                    bmc: self.bmc.clone(),
                    action,
                    waited: limit,
                });
            }
            Ok(Err(source)) if source.kind() == io::ErrorKind::NotFound => {
                return Err(PowerError::MissingTool {
                    tool: TOOL,
                    bmc: self.bmc.clone(),
                    action,
                    source,
                });
            }
            Ok(Err(source)) => {
                return Err(PowerError::ToolFailed {
                    tool: TOOL,
                    bmc: self.bmc.clone(),
                    action,
                    reason: format!("could not run: {source}"),
                });
            }
            Ok(Ok(output)) => output,
        };
        drop(askpass);
        if output.status.success() {
            return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        Err(self.classify(action, stderr.trim()))
    }

    fn classify(&self, action: PowerAction, stderr: &str) -> PowerError {
        let text: String = stderr
            .lines()
            .filter(|line| !line.trim().is_empty())
            .collect::<Vec<_>>()
            .join("; ");
        let lower = text.to_lowercase();
        let bmc = self.bmc.clone();
        if lower.contains("authentication failed")
            || lower.contains("permission denied")
            || lower.contains("authentication unavailable")
        {
            PowerError::Authentication {
                bmc,
                action,
                reason: text,
            }
        } else if lower.contains("failed to connect")
            || lower.contains("connection refused")
            || lower.contains("cannot recv data")
            || lower.contains("no route to host")
            || lower.contains("timed out")
        {
            PowerError::Connection {
                bmc,
                action,
                source: io::Error::new(io::ErrorKind::ConnectionRefused, text),
            }
        } else if lower.contains("domain not found") || lower.contains("failed to get domain") {
            PowerError::Refused {
                bmc,
                action,
                reason: format!("no domain {:?}: {text}", self.settings.domain),
            }
        } else {
            PowerError::ToolFailed {
                tool: TOOL,
                bmc,
                action,
                reason: text,
            }
        }
    }

    async fn state(&self, action: PowerAction) -> Result<PowerState, PowerError> {
        let output = self
            .virsh(&["domstate", "--domain", &self.settings.domain], action)
            .await?;
        let state = output
            .lines()
            .map(str::trim)
            .find(|line| !line.is_empty())
            .unwrap_or_default();
        match state {
            "running" | "in shutdown" => Ok(PowerState::On),
            "shut off" | "no state" | "idle" | "paused" | "crashed" | "pmsuspended" => {
                Ok(PowerState::Off)
            }
            other => Err(PowerError::BadReply {
                bmc: self.bmc.clone(),
                action,
                reason: format!("unknown domain state {other:?}"),
            }),
        }
    }

    async fn start(&self, action: PowerAction) -> Result<(), PowerError> {
        self.virsh(&["start", "--domain", &self.settings.domain], action)
            .await
            .map(|_| ())
    }

    async fn destroy(&self, action: PowerAction) -> Result<(), PowerError> {
        self.virsh(&["destroy", "--domain", &self.settings.domain], action)
            .await
            .map(|_| ())
    }

    async fn expect(&self, action: PowerAction, desired: PowerState) -> Result<(), PowerError> {
        let state = self.state(action).await?;
        if state == desired {
            Ok(())
        } else {
            Err(PowerError::NeverTransitioned {
                bmc: self.bmc.clone(),
                action,
                from: state.as_str(),
                desired: desired.as_str(),
            })
        }
    }
}

#[async_trait]
impl PowerDriver for VirshDriver {
    fn power_type(&self) -> &'static str {
        NAME
    }

    fn bmc(&self) -> &str {
        &self.bmc
    }

    fn capabilities(&self) -> Capabilities {
        CAPABILITIES
    }

    async fn on(&self) -> Result<(), PowerError> {
        let action = PowerAction::On;
        async {
            if self.state(action).await? != PowerState::On {
                self.start(action).await?;
            }
            self.expect(action, PowerState::On).await
        }
        .instrument(self.span(action))
        .await
    }

    async fn off(&self) -> Result<(), PowerError> {
        let action = PowerAction::Off;
        async {
            if self.state(action).await? == PowerState::On {
                self.destroy(action).await?;
            }
            self.expect(action, PowerState::Off).await
        }
        .instrument(self.span(action))
        .await
    }

    async fn cycle(&self) -> Result<(), PowerError> {
        let action = PowerAction::Cycle;
        async {
            if self.state(action).await? == PowerState::On {
                self.destroy(action).await?;
            }
            self.start(action).await?;
            self.expect(action, PowerState::On).await
        }
        .instrument(self.span(action))
        .await
    }

    async fn query(&self) -> Result<PowerState, PowerError> {
        let action = PowerAction::Query;
        self.state(action).instrument(self.span(action)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<VirshSettings, PowerError> {
        VirshSettings::from_parameters(&pairs.iter().copied().collect())
    }

    #[test]
    fn uris_and_domains() {
        let ssh = settings(&[
            ("power_address", "qemu+ssh://maas@vmhost/system"),
            ("power_id", "vm1"),
            ("power_pass", "pw"),
        ]);
        assert_eq!(
            ssh.as_ref().map(VirshSettings::connect_uri).ok().as_deref(),
            Some("qemu+ssh://maas@vmhost/system?no_verify=1")
        );
        assert!(ssh.is_ok_and(|s| s.password.is_some()));
        let local = settings(&[("power_address", "qemu:///system"), ("power_id", "vm1")]);
        assert_eq!(
            local.map(|s| s.connect_uri()).ok().as_deref(),
            Some("qemu:///system")
        );
        assert!(matches!(
            settings(&[("power_address", "--help"), ("power_id", "x")]),
            Err(PowerError::InvalidSetting { .. })
        ));
        assert!(matches!(
            settings(&[("power_address", "qemu:///system"), ("power_id", "-x")]),
            Err(PowerError::InvalidSetting { .. })
        ));
        assert!(matches!(
            settings(&[("power_address", "qemu:///system")]),
            Err(PowerError::MissingSetting {
                key: "power_id",
                ..
            })
        ));
    }

    #[test]
    fn askpass_files_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let askpass = Askpass::new(&Secret::new("pw")).expect("askpass files");
        let mode = |path: PathBuf| {
            std::fs::metadata(path)
                .map(|m| m.permissions().mode() & 0o777)
                .unwrap_or(0)
        };
        assert_eq!(mode(askpass.dir.path().to_path_buf()), 0o700);
        assert_eq!(mode(askpass.dir.path().join("password")), 0o600);
        assert_eq!(mode(askpass.helper()), 0o700);
        let printed = std::process::Command::new(askpass.helper())
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default();
        assert_eq!(printed, b"pw");
    }
}
