//! `PowerError`: what went wrong talking to a BMC, split into failures worth
//! retrying and final ones.

use std::fmt;
use std::time::Duration;

/// The power action a driver was asked to perform, named in errors and spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerAction {
    On,
    Off,
    Cycle,
    Query,
    /// Ask the firmware to network-boot (PXE) once, at the next power on.
    SetPxeBoot,
}

impl PowerAction {
    pub fn as_str(self) -> &'static str {
        match self {
            PowerAction::On => "power on",
            PowerAction::Off => "power off",
            PowerAction::Cycle => "power cycle",
            PowerAction::Query => "query power state",
            PowerAction::SetPxeBoot => "set one-time PXE boot",
        }
    }
}

impl fmt::Display for PowerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the caller should treat a [`PowerError`], mirroring the classes of
/// MAAS's power driver errors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PowerErrorKind {
    /// The power settings are missing or invalid, or name something this
    /// build does not have ("Missing or invalid power setting").
    Setting,
    /// The BMC rejected the credentials ("Could not authenticate to node's BMC").
    Authentication,
    /// The BMC could not be reached, did not answer in time, or was busy
    /// ("Could not contact node's BMC"). Worth retrying.
    Connection,
    /// A tool the driver runs is not installed ("Missing power tool").
    MissingTool,
    /// The BMC answered but did not do what was asked
    /// ("Failed to complete power action").
    Action,
    /// The BMC's reply made no sense ("Failed talking to node's BMC").
    Protocol,
    /// The driver cannot do this at all.
    Unsupported,
}

/// Everything a power driver can report. Each message names the BMC (its
/// address), the action and the reason; wrapped errors are kept as sources.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    #[error("unknown power type {power_type:?}")]
    UnknownPowerType { power_type: String },

    #[error("power type {power_type} is not built into this program (cargo feature {feature})")]
    DriverNotBuilt {
        power_type: &'static str,
        feature: &'static str,
    },

    #[error("missing power setting {key} for power type {power_type}")]
    MissingSetting {
        power_type: &'static str,
        key: &'static str,
    },

    #[error("invalid power setting {key} for power type {power_type}: {reason}")]
    InvalidSetting {
        power_type: &'static str,
        key: &'static str,
        reason: String,
    },

    #[error("power type {power_type} cannot {action}")]
    Unsupported {
        power_type: &'static str,
        action: PowerAction,
    },

    #[error("could not authenticate to BMC {bmc} to {action}: {reason}")]
    Authentication {
        bmc: String,
        action: PowerAction,
        reason: String,
    },

    /// The BMC is reachable but does not offer what the settings ask for,
    /// such as a cipher suite or an IPMI version.
    #[error("BMC {bmc} does not support the configured {setting} ({action}): {reason}")]
    SettingRejected {
        bmc: String,
        action: PowerAction,
        setting: &'static str,
        reason: String,
    },

    #[error("could not contact BMC {bmc} to {action}")]
    Connection {
        bmc: String,
        action: PowerAction,
        #[source]
        source: std::io::Error,
    },

    #[error("BMC {bmc} did not answer within {waited:?} to {action}")]
    Timeout {
        bmc: String,
        action: PowerAction,
        waited: Duration,
    },

    #[error("BMC {bmc} is busy and could not {action}: {reason}")]
    Busy {
        bmc: String,
        action: PowerAction,
        reason: String,
    },

    #[error("BMC {bmc} refused to {action}: {reason}")]
    Refused {
        bmc: String,
        action: PowerAction,
        reason: String,
    },

    #[error("BMC {bmc} sent a reply that makes no sense while trying to {action}: {reason}")]
    BadReply {
        bmc: String,
        action: PowerAction,
        reason: String,
    },

    #[error("BMC {bmc} never transitioned from {from} to {desired} after {action}")]
    NeverTransitioned {
        bmc: String,
        action: PowerAction,
        from: &'static str,
        desired: &'static str,
    },

    #[error("missing power tool {tool} needed to {action} BMC {bmc}")]
    MissingTool {
        tool: &'static str,
        bmc: String,
        action: PowerAction,
        #[source]
        source: std::io::Error,
    },

    #[error("power tool {tool} failed to {action} BMC {bmc}: {reason}")]
    ToolFailed {
        tool: &'static str,
        bmc: String,
        action: PowerAction,
        reason: String,
    },
}

impl PowerError {
    pub fn kind(&self) -> PowerErrorKind {
        match self {
            PowerError::UnknownPowerType { .. }
            | PowerError::DriverNotBuilt { .. }
            | PowerError::MissingSetting { .. }
            | PowerError::InvalidSetting { .. }
            | PowerError::SettingRejected { .. } => PowerErrorKind::Setting,
            PowerError::Unsupported { .. } => PowerErrorKind::Unsupported,
            PowerError::Authentication { .. } => PowerErrorKind::Authentication,
            PowerError::Connection { .. }
            | PowerError::Timeout { .. }
            | PowerError::Busy { .. } => PowerErrorKind::Connection,
            PowerError::MissingTool { .. } => PowerErrorKind::MissingTool,
            PowerError::Refused { .. }
            | PowerError::NeverTransitioned { .. }
            | PowerError::ToolFailed { .. } => PowerErrorKind::Action,
            PowerError::BadReply { .. } => PowerErrorKind::Protocol,
        }
    }

    /// True for failures that may go away if the same request is sent again
    /// (timeout, connection refused, BMC busy). Everything else is final.
    pub fn is_retryable(&self) -> bool {
        self.kind() == PowerErrorKind::Connection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_only_for_connection_problems() {
        let bmc = || "10.0.0.9:623".to_owned();
        let timeout = PowerError::Timeout {
            bmc: bmc(),
            action: PowerAction::Query,
            waited: Duration::from_secs(3),
        };
        assert!(timeout.is_retryable());
        assert_eq!(
            timeout.to_string(),
            "BMC 10.0.0.9:623 did not answer within 3s to query power state"
        );
        let refused = PowerError::Connection {
            bmc: bmc(),
            action: PowerAction::On,
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        assert!(refused.is_retryable());
        let auth = PowerError::Authentication {
            bmc: bmc(),
            action: PowerAction::Off,
            reason: "password invalid".into(),
        };
        assert!(!auth.is_retryable());
        assert_eq!(auth.kind(), PowerErrorKind::Authentication);
        let missing = PowerError::MissingSetting {
            power_type: "ipmi",
            key: "power_address",
        };
        assert!(!missing.is_retryable());
        assert_eq!(
            missing.to_string(),
            "missing power setting power_address for power type ipmi"
        );
    }
}
