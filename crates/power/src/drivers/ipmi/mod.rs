//! The `ipmi` driver: a native IPMI client over LAN, v1.5 (`LAN`) and v2.0
//! RMCP+ (`LAN_2_0`, cipher suites 0-3 and 15-17), doing what MAAS does with
//! freeipmi's `ipmipower` and `ipmi-chassis-config`.
//!
//! Each action opens one session, runs its commands and closes it. Every
//! datagram exchange is bounded by the driver's [`Timeouts`].

mod session;
pub(crate) mod wire;

use std::fmt;

use async_trait::async_trait;
use maas_domain::PowerState;
use tracing::{Instrument, info_span, warn};

use crate::driver::{DriverOptions, PowerDriver, Timeouts, wait_for_state};
use crate::error::{PowerAction, PowerError, PowerErrorKind};
use crate::params::{PowerParameters, SettingsReader};
use crate::schema::{Capabilities, IP_EXTRACTOR_IDENTITY, PowerTypeSchema, SettingField};
use crate::secret::Secret;
use session::Session;
use wire::CipherSuite;

pub(crate) const NAME: &str = "ipmi";
const DEFAULT_PORT: u16 = 623;

const CAPABILITIES: Capabilities = Capabilities {
    queryable: true,
    pxe_boot_once: true,
    chassis: false,
    can_probe: false,
    can_set_boot_order: false,
};

pub(crate) fn schema() -> PowerTypeSchema {
    PowerTypeSchema::new(
        NAME,
        "IPMI",
        CAPABILITIES,
        vec![
            SettingField::choice(
                "power_driver",
                "Power driver",
                &[("LAN", "LAN [IPMI 1.5]"), ("LAN_2_0", "LAN_2_0 [IPMI 2.0]")],
                "LAN_2_0",
            )
            .required(),
            SettingField::choice(
                "power_boot_type",
                "Power boot type",
                &[
                    ("auto", "Automatic"),
                    ("legacy", "Legacy boot"),
                    ("efi", "EFI boot"),
                ],
                "auto",
            )
            .required(),
            SettingField::string("power_address", "IP address").required(),
            SettingField::string("power_user", "Power user"),
            SettingField::password("power_pass", "Power password"),
            SettingField::password("k_g", "K_g BMC key"),
            SettingField::choice(
                "cipher_suite_id",
                "Cipher Suite ID",
                &[
                    ("17", "17 - HMAC-SHA256::HMAC_SHA256_128::AES-CBC-128"),
                    ("3", "3 - HMAC-SHA1::HMAC-SHA1-96::AES-CBC-128"),
                    ("", "default (3)"),
                ],
                "3",
            ),
            SettingField::choice(
                "privilege_level",
                "Privilege Level",
                &[
                    ("USER", "User"),
                    ("OPERATOR", "Operator"),
                    ("ADMIN", "Administrator"),
                ],
                "OPERATOR",
            ),
            SettingField::choice(
                "power_off_mode",
                "Power off mode",
                &[("soft", "Soft power off"), ("hard", "Hard power off")],
                "hard",
            ),
        ],
    )
    .with_ip_extractor("power_address", IP_EXTRACTOR_IDENTITY)
}

/// A BMC's UDP address: `host`, `host:port`, `[v6addr]:port` or a bare
/// IPv6 address; the port defaults to 623.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BmcAddress {
    pub host: String,
    pub port: u16,
}

impl BmcAddress {
    pub fn parse(text: &str) -> Result<BmcAddress, String> {
        let text = text.trim();
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?} opens [ without closing it"))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| format!("{text:?} has {after:?} after the address"))?,
                ),
            };
            if host.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!("{host:?} is not an IPv6 address"));
            }
            (host, port)
        } else if text.matches(':').count() > 1 {
            if text.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(format!(
                    "{text:?} is not an IPv6 address (write [address]:port to add a port)"
                ));
            }
            (text, None)
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err("no host".into());
        }
        if host
            .chars()
            .any(|c| c.is_whitespace() || c == '/' || c == '@')
        {
            return Err(format!("{host:?} is not a host name or address"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => port
                .parse::<u16>()
                .ok()
                .filter(|port| *port != 0)
                .ok_or_else(|| format!("{port:?} is not a UDP port"))?,
        };
        Ok(BmcAddress {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for BmcAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpmiVersion {
    /// `LAN`: IPMI v1.5 sessions.
    Lan15,
    /// `LAN_2_0`: IPMI v2.0 RMCP+ sessions.
    Lan20,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Privilege {
    User,
    Operator,
    Admin,
}

impl Privilege {
    pub fn code(self) -> u8 {
        match self {
            Privilege::User => 2,
            Privilege::Operator => 3,
            Privilege::Admin => 4,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Privilege::User => "USER",
            Privilege::Operator => "OPERATOR",
            Privilege::Admin => "ADMIN",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootType {
    /// Keep the firmware's current BIOS/EFI choice.
    Auto,
    Legacy,
    Efi,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OffMode {
    Hard,
    /// ACPI soft shutdown (Chassis Control 5).
    Soft,
}

/// The parsed `ipmi` power parameters.
#[derive(Clone, Debug)]
pub struct IpmiSettings {
    pub address: BmcAddress,
    pub user: String,
    pub password: Secret,
    /// The BMC key; RMCP+ uses the password instead when unset.
    pub k_g: Option<KgKey>,
    pub version: IpmiVersion,
    pub cipher_suite: CipherSuite,
    pub privilege: Privilege,
    pub boot_type: BootType,
    pub off_mode: OffMode,
}

/// A K_g key: up to 20 bytes, given as text or as `0x` and hex digits.
#[derive(Clone)]
pub struct KgKey(Vec<u8>);

impl KgKey {
    pub fn as_deref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for KgKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

impl IpmiSettings {
    pub fn from_parameters(params: &PowerParameters) -> Result<IpmiSettings, PowerError> {
        let reader = SettingsReader::new(NAME, params);
        let address = BmcAddress::parse(reader.required("power_address")?)
            .map_err(|reason| reader.invalid("power_address", reason))?;
        let version = match reader.choice("power_driver", &["LAN", "LAN_2_0"], "LAN_2_0")? {
            "LAN" => IpmiVersion::Lan15,
            _ => IpmiVersion::Lan20,
        };
        let user = reader.optional("power_user").unwrap_or_default().to_owned();
        if user.len() > 16 {
            return Err(reader.invalid("power_user", "longer than IPMI's 16 bytes".into()));
        }
        let password = reader.secret("power_pass");
        let limit = if version == IpmiVersion::Lan15 {
            16
        } else {
            20
        };
        if password.expose().len() > limit {
            return Err(reader.invalid(
                "power_pass",
                format!("longer than {limit} bytes, the most this IPMI version allows"),
            ));
        }
        let k_g = match reader.optional("k_g") {
            None => None,
            Some(text) => Some(parse_kg(text).map_err(|reason| reader.invalid("k_g", reason))?),
        };
        let suite_text = reader.optional("cipher_suite_id").unwrap_or("3");
        let cipher_suite = suite_text
            .parse::<u8>()
            .ok()
            .and_then(CipherSuite::from_id)
            .ok_or_else(|| {
                reader.invalid(
                    "cipher_suite_id",
                    format!("{suite_text:?} is not a cipher suite this driver speaks (0-3, 15-17)"),
                )
            })?;
        let privilege = match reader.choice(
            "privilege_level",
            &["USER", "OPERATOR", "ADMIN"],
            "OPERATOR",
        )? {
            "USER" => Privilege::User,
            "ADMIN" => Privilege::Admin,
            _ => Privilege::Operator,
        };
        let boot_type =
            match reader.choice("power_boot_type", &["auto", "legacy", "efi"], "auto")? {
                "legacy" => BootType::Legacy,
                "efi" => BootType::Efi,
                _ => BootType::Auto,
            };
        let off_mode = match reader.choice("power_off_mode", &["hard", "soft"], "hard")? {
            "soft" => OffMode::Soft,
            _ => OffMode::Hard,
        };
        Ok(IpmiSettings {
            address,
            user,
            password,
            k_g,
            version,
            cipher_suite,
            privilege,
            boot_type,
            off_mode,
        })
    }
}

fn parse_kg(text: &str) -> Result<KgKey, String> {
    let bytes = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => {
            if hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("0x must be followed by pairs of hex digits".into());
            }
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).map_err(|e| e.to_string()))
                .collect::<Result<Vec<u8>, String>>()?
        }
        None => text.as_bytes().to_vec(),
    };
    if bytes.len() > 20 {
        return Err("longer than 20 bytes".into());
    }
    Ok(KgKey(bytes))
}

#[derive(Debug)]
pub struct IpmiDriver {
    settings: IpmiSettings,
    bmc: String,
    timeouts: Timeouts,
}

impl IpmiDriver {
    pub fn new(settings: IpmiSettings, options: &DriverOptions) -> IpmiDriver {
        IpmiDriver {
            bmc: settings.address.to_string(),
            settings,
            timeouts: options.timeouts,
        }
    }

    fn span(&self, action: PowerAction) -> tracing::Span {
        info_span!("power", driver = NAME, action = %action, bmc = %self.bmc)
    }

    /// Sets one-time PXE boot, then powers up and waits for `on`. With
    /// `cycle`, a running machine is power cycled instead, as
    /// `ipmipower --cycle --on-if-off` does.
    async fn power_on(
        &self,
        session: &mut Session<'_>,
        action: PowerAction,
        cycle: bool,
    ) -> Result<(), PowerError> {
        self.pxe_boot_best_effort(session).await?;
        let directive = if cycle && chassis_power(session).await? == PowerState::On {
            wire::CHASSIS_POWER_CYCLE
        } else {
            wire::CHASSIS_POWER_UP
        };
        chassis_control(session, directive).await?;
        wait_for_state(
            &self.timeouts,
            &self.bmc,
            action,
            PowerState::On,
            session,
            |session| Box::pin(chassis_power(session)),
        )
        .await
    }

    async fn power_off(
        &self,
        session: &mut Session<'_>,
        action: PowerAction,
    ) -> Result<(), PowerError> {
        let directive = match self.settings.off_mode {
            OffMode::Hard => wire::CHASSIS_POWER_DOWN,
            OffMode::Soft => 0x05,
        };
        chassis_control(session, directive).await?;
        wait_for_state(
            &self.timeouts,
            &self.bmc,
            action,
            PowerState::Off,
            session,
            |session| Box::pin(chassis_power(session)),
        )
        .await
    }

    /// Sets the boot flags; MAAS logs failures other than authentication
    /// and goes on with the power action, and so do we.
    async fn pxe_boot_best_effort(&self, session: &mut Session<'_>) -> Result<(), PowerError> {
        match set_pxe_boot(session, self.settings.boot_type).await {
            Err(error) if error.kind() == PowerErrorKind::Authentication => Err(error),
            Err(error) => {
                warn!(error = %error, "could not set one-time PXE boot; powering on anyway");
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }
}

async fn chassis_power(session: &mut Session<'_>) -> Result<PowerState, PowerError> {
    let reply = session
        .request(
            wire::NETFN_CHASSIS,
            wire::CMD_GET_CHASSIS_STATUS,
            Vec::new(),
        )
        .await?;
    if reply.completion != 0 {
        return Err(session.refused(wire::CMD_GET_CHASSIS_STATUS, reply.completion));
    }
    match reply.data.first() {
        Some(byte) if byte & 0x01 != 0 => Ok(PowerState::On),
        Some(_) => Ok(PowerState::Off),
        None => Err(session.refused(wire::CMD_GET_CHASSIS_STATUS, 0xc7)),
    }
}

async fn chassis_control(session: &mut Session<'_>, directive: u8) -> Result<(), PowerError> {
    let reply = session
        .request(
            wire::NETFN_CHASSIS,
            wire::CMD_CHASSIS_CONTROL,
            vec![directive],
        )
        .await?;
    match reply.completion {
        0 => Ok(()),
        code => Err(session.refused(wire::CMD_CHASSIS_CONTROL, code)),
    }
}

async fn set_pxe_boot(session: &mut Session<'_>, boot_type: BootType) -> Result<(), PowerError> {
    let efi = match boot_type {
        BootType::Efi => true,
        BootType::Legacy => false,
        BootType::Auto => {
            // Keep the firmware's BIOS/EFI choice: read the current flags.
            let reply = session
                .request(
                    wire::NETFN_CHASSIS,
                    wire::CMD_GET_SYSTEM_BOOT_OPTIONS,
                    vec![0x05, 0x00, 0x00],
                )
                .await?;
            reply.completion == 0 && reply.data.get(2).is_some_and(|flags| flags & 0x20 != 0)
        }
    };
    let reply = session
        .request(
            wire::NETFN_CHASSIS,
            wire::CMD_SET_SYSTEM_BOOT_OPTIONS,
            wire::pxe_boot_flags(efi),
        )
        .await?;
    match reply.completion {
        0 => Ok(()),
        code => Err(session.refused(wire::CMD_SET_SYSTEM_BOOT_OPTIONS, code)),
    }
}

#[async_trait]
impl PowerDriver for IpmiDriver {
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
            let mut session = Session::open(&self.settings, self.timeouts, action).await?;
            let result = self.power_on(&mut session, action, false).await;
            session.close().await;
            result
        }
        .instrument(self.span(action))
        .await
    }

    async fn off(&self) -> Result<(), PowerError> {
        let action = PowerAction::Off;
        async {
            let mut session = Session::open(&self.settings, self.timeouts, action).await?;
            let result = self.power_off(&mut session, action).await;
            session.close().await;
            result
        }
        .instrument(self.span(action))
        .await
    }

    async fn cycle(&self) -> Result<(), PowerError> {
        let action = PowerAction::Cycle;
        async {
            let mut session = Session::open(&self.settings, self.timeouts, action).await?;
            let result = self.power_on(&mut session, action, true).await;
            session.close().await;
            result
        }
        .instrument(self.span(action))
        .await
    }

    async fn query(&self) -> Result<PowerState, PowerError> {
        let action = PowerAction::Query;
        async {
            let mut session = Session::open(&self.settings, self.timeouts, action).await?;
            let result = chassis_power(&mut session).await;
            session.close().await;
            result
        }
        .instrument(self.span(action))
        .await
    }

    async fn set_pxe_boot(&self) -> Result<(), PowerError> {
        let action = PowerAction::SetPxeBoot;
        async {
            let mut session = Session::open(&self.settings, self.timeouts, action).await?;
            let result = set_pxe_boot(&mut session, self.settings.boot_type).await;
            session.close().await;
            result
        }
        .instrument(self.span(action))
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_address(input: &str, expected: Result<(&str, u16), ()>) {
        let got = BmcAddress::parse(input)
            .map(|a| (a.host, a.port))
            .map_err(|_| ());
        let expected = expected.map(|(host, port)| (host.to_owned(), port));
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn addresses() {
        check_address("10.0.0.1", Ok(("10.0.0.1", 623)));
        check_address("10.0.0.1:6230", Ok(("10.0.0.1", 6230)));
        check_address("bmc.example.com:1623", Ok(("bmc.example.com", 1623)));
        check_address("[fe80::1]:6230", Ok(("fe80::1", 6230)));
        check_address("[::1]", Ok(("::1", 623)));
        check_address("2001:db8::5", Ok(("2001:db8::5", 623)));
        check_address("", Err(()));
        check_address("10.0.0.1:0", Err(()));
        check_address("10.0.0.1:70000", Err(()));
        check_address("[fe80::1", Err(()));
        check_address("[fe80::1]6230", Err(()));
        check_address("[host]:623", Err(()));
        check_address("2001:db8::zz", Err(()));
        check_address("a b", Err(()));
        assert_eq!(
            BmcAddress::parse("[::1]:99")
                .map(|a| a.to_string())
                .ok()
                .as_deref(),
            Some("[::1]:99")
        );
    }

    fn params(pairs: &[(&str, &str)]) -> PowerParameters {
        pairs.iter().copied().collect()
    }

    #[test]
    fn settings_defaults_and_errors() {
        let settings = IpmiSettings::from_parameters(&params(&[
            ("power_address", "10.1.1.1"),
            ("power_pass", "pw"),
        ]));
        let settings = settings.ok();
        assert_eq!(
            settings
                .as_ref()
                .map(|s| (s.version, s.cipher_suite.id, s.privilege, s.boot_type)),
            Some((IpmiVersion::Lan20, 3, Privilege::Operator, BootType::Auto))
        );

        let missing = IpmiSettings::from_parameters(&params(&[("power_user", "admin")]));
        assert!(matches!(
            missing,
            Err(PowerError::MissingSetting {
                key: "power_address",
                ..
            })
        ));

        let suite = IpmiSettings::from_parameters(&params(&[
            ("power_address", "h"),
            ("cipher_suite_id", "8"),
        ]));
        assert!(matches!(
            suite,
            Err(PowerError::InvalidSetting {
                key: "cipher_suite_id",
                ..
            })
        ));

        let kg =
            IpmiSettings::from_parameters(&params(&[("power_address", "h"), ("k_g", "0x0102ff")]));
        assert_eq!(
            kg.ok().and_then(|s| s.k_g).map(|k| k.0),
            Some(vec![1, 2, 0xff])
        );
        let bad_kg =
            IpmiSettings::from_parameters(&params(&[("power_address", "h"), ("k_g", "0x123")]));
        assert!(matches!(
            bad_kg,
            Err(PowerError::InvalidSetting { key: "k_g", .. })
        ));

        let lan = IpmiSettings::from_parameters(&params(&[
            ("power_address", "h"),
            ("power_driver", "LAN"),
            ("power_pass", "seventeen-bytes!!"),
        ]));
        assert!(matches!(
            lan,
            Err(PowerError::InvalidSetting {
                key: "power_pass",
                ..
            })
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        let settings = IpmiSettings::from_parameters(&params(&[
            ("power_address", "h"),
            ("power_pass", "hunter2"),
            ("k_g", "sekrit"),
        ]));
        let shown = format!("{settings:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("sekrit"),
            "{shown}"
        );
    }
}
