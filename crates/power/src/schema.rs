//! Power type schemas: the data behind MAAS's `describe_power_types`.

use serde::Serialize;

/// `driver_type` in `describe_power_types`: plain power drivers, or pod
/// (VM host) drivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverType {
    Power,
    Pod,
}

/// How a setting is entered in MAAS's UI and CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Password,
    Choice,
    MultipleChoice,
    MacAddress,
}

/// Where a setting lives: on the BMC shared by the nodes of a chassis, or on
/// the node itself (a VM name, a Redfish system id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Bmc,
    Node,
}

/// One `power_parameters` key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SettingField {
    pub name: &'static str,
    pub label: &'static str,
    pub required: bool,
    pub field_type: FieldType,
    /// `[value, label]` pairs for choice fields, empty otherwise.
    pub choices: Vec<(&'static str, &'static str)>,
    pub default: &'static str,
    pub scope: Scope,
    pub secret: bool,
}

impl SettingField {
    /// A plain string field on the BMC, optional, no default.
    pub(crate) fn string(name: &'static str, label: &'static str) -> SettingField {
        SettingField {
            name,
            label,
            required: false,
            field_type: FieldType::String,
            choices: Vec::new(),
            default: "",
            scope: Scope::Bmc,
            secret: false,
        }
    }

    pub(crate) fn password(name: &'static str, label: &'static str) -> SettingField {
        SettingField {
            field_type: FieldType::Password,
            secret: true,
            ..SettingField::string(name, label)
        }
    }

    pub(crate) fn choice(
        name: &'static str,
        label: &'static str,
        choices: &[(&'static str, &'static str)],
        default: &'static str,
    ) -> SettingField {
        SettingField {
            field_type: FieldType::Choice,
            choices: choices.to_vec(),
            default,
            ..SettingField::string(name, label)
        }
    }

    pub(crate) fn required(mut self) -> SettingField {
        self.required = true;
        self
    }

    pub(crate) fn node_scope(mut self) -> SettingField {
        self.scope = Scope::Node;
        self
    }

    pub(crate) fn with_default(mut self, default: &'static str) -> SettingField {
        self.default = default;
        self
    }
}

/// How MAAS finds the BMC's IP address in a setting, to link the BMC to a
/// subnet and so to the racks that can reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IpExtractor {
    pub field_name: &'static str,
    /// A regular expression with a group named `address`.
    pub pattern: &'static str,
}

/// What a driver can do, as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// `query` returns the real state (MAAS polls only queryable drivers).
    pub queryable: bool,
    /// `set_pxe_boot` works, and `on` asks for a one-time PXE boot first.
    pub pxe_boot_once: bool,
    /// Several nodes share one BMC (a VM host, a Redfish chassis).
    pub chassis: bool,
    /// Usable by `add_chassis` to discover nodes.
    pub can_probe: bool,
    pub can_set_boot_order: bool,
}

/// One entry of `describe_power_types`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PowerTypeSchema {
    pub driver_type: DriverType,
    pub name: &'static str,
    pub description: &'static str,
    pub chassis: bool,
    pub can_probe: bool,
    pub can_set_boot_order: bool,
    pub queryable: bool,
    /// Packages this rack lacks for the driver; drivers here need none at
    /// build time, and `virsh` reports its tool when it is missing.
    pub missing_packages: Vec<String>,
    pub fields: Vec<SettingField>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip_extractor: Option<IpExtractor>,
}

impl PowerTypeSchema {
    pub(crate) fn new(
        name: &'static str,
        description: &'static str,
        capabilities: Capabilities,
        fields: Vec<SettingField>,
    ) -> PowerTypeSchema {
        PowerTypeSchema {
            driver_type: DriverType::Power,
            name,
            description,
            chassis: capabilities.chassis,
            can_probe: capabilities.can_probe,
            can_set_boot_order: capabilities.can_set_boot_order,
            queryable: capabilities.queryable,
            missing_packages: Vec::new(),
            fields,
            ip_extractor: None,
        }
    }

    pub(crate) fn with_ip_extractor(
        mut self,
        field_name: &'static str,
        pattern: &'static str,
    ) -> PowerTypeSchema {
        self.ip_extractor = Some(IpExtractor {
            field_name,
            pattern,
        });
        self
    }

    pub fn field(&self, name: &str) -> Option<&SettingField> {
        self.fields.iter().find(|field| field.name == name)
    }
}

/// MAAS's "identity" pattern: the whole field is the address.
pub(crate) const IP_EXTRACTOR_IDENTITY: &str = "^(?P<address>.+?)$";
/// MAAS's "URL" pattern: the host part of a URL.
pub(crate) const IP_EXTRACTOR_URL: &str = r"^(?P<schema>.+?)://(?:(?P<user>[^:@]+?)(?::(?P<password>[^@]*?))?@)?(?:\[?(?P<address>(?:[0-9a-fA-F]*:[0-9a-fA-F:.]+)|(?:[^\[\]/:]+))\]?)(?::(?P<port>\d+?))?(?P<path>/.*?)?(?P<query>[?].*?)?$";
