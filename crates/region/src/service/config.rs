//! Global configuration (`maas/?op=get_config|set_config`): the known keys,
//! their types and defaults, and validation of new values.

use serde_json::Value;

use maas_store::Store;

use crate::error::{ServiceError, ServiceResult};

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Text,
    /// Text or null.
    OptionalText,
    Bool,
    Int,
    Choice(&'static [&'static str]),
}

pub struct Key {
    pub name: &'static str,
    pub kind: Kind,
    pub default: fn() -> Value,
}

macro_rules! key {
    ($name:literal, $kind:expr, $($default:tt)+) => {
        Key { name: $name, kind: $kind, default: || serde_json::json!($($default)+) }
    };
}

pub const KEYS: &[Key] = &[
    key!("maas_name", Kind::Text, "maas"),
    key!("default_osystem", Kind::Text, "ubuntu"),
    key!("default_distro_series", Kind::Text, "noble"),
    key!("commissioning_distro_series", Kind::Text, "noble"),
    key!("default_min_hwe_kernel", Kind::Text, ""),
    key!(
        "default_storage_layout",
        Kind::Choice(&["flat", "lvm", "bcache", "vmfs6", "vmfs7", "custom", "blank"]),
        "flat"
    ),
    key!("enable_disk_erasing_on_release", Kind::Bool, false),
    key!("disk_erase_with_secure_erase", Kind::Bool, true),
    key!("disk_erase_with_quick_erase", Kind::Bool, false),
    key!("enable_kernel_crash_dump", Kind::Bool, false),
    key!("enable_third_party_drivers", Kind::Bool, true),
    key!("boot_images_auto_import", Kind::Bool, true),
    key!("boot_images_no_proxy", Kind::Bool, false),
    key!("enable_http_proxy", Kind::Bool, true),
    key!("http_proxy", Kind::OptionalText, null),
    key!("use_peer_proxy", Kind::Bool, false),
    key!("prefer_v4_proxy", Kind::Bool, false),
    key!("use_rack_proxy", Kind::Bool, true),
    key!("maas_proxy_port", Kind::Int, 8000),
    key!("upstream_dns", Kind::Text, ""),
    key!(
        "dnssec_validation",
        Kind::Choice(&["auto", "yes", "no"]),
        "auto"
    ),
    key!("dns_trusted_acl", Kind::Text, ""),
    key!("default_dns_ttl", Kind::Int, 30),
    key!("maas_internal_domain", Kind::Text, "maas-internal"),
    key!("ntp_servers", Kind::Text, "ntp.ubuntu.com"),
    key!("ntp_external_only", Kind::Bool, false),
    key!("kernel_opts", Kind::Text, ""),
    key!("curtin_verbose", Kind::Bool, true),
    key!(
        "network_discovery",
        Kind::Choice(&["enabled", "disabled"]),
        "enabled"
    ),
    key!("active_discovery_interval", Kind::Int, 10800),
    key!(
        "default_boot_interface_link_type",
        Kind::Choice(&["auto", "dhcp", "static", "link_up"]),
        "auto"
    ),
    key!("enlist_commissioning", Kind::Bool, true),
    key!("node_timeout", Kind::Int, 30),
    key!("maas_auto_ipmi_user", Kind::Text, "maas"),
    key!(
        "maas_auto_ipmi_user_privilege_level",
        Kind::Choice(&["ADMIN", "OPERATOR", "USER"]),
        "ADMIN"
    ),
    key!("maas_auto_ipmi_k_g_bmc_key", Kind::Text, ""),
    key!("maas_auto_ipmi_cipher_suite_id", Kind::Text, "3"),
    key!(
        "maas_auto_ipmi_workaround_flags",
        Kind::Text,
        "opensesspriv"
    ),
    key!("remote_syslog", Kind::OptionalText, null),
    key!("maas_syslog_port", Kind::Int, 5247),
    key!("windows_kms_host", Kind::OptionalText, null),
    key!("theme", Kind::Text, ""),
    key!("completed_intro", Kind::Bool, false),
    key!("release_notifications", Kind::Bool, true),
    key!("max_node_commissioning_results", Kind::Int, 10),
    key!("max_node_testing_results", Kind::Int, 10),
    key!("max_node_installation_results", Kind::Int, 3),
    key!("max_node_release_results", Kind::Int, 5),
    key!("subnet_ip_exhaustion_threshold_count", Kind::Int, 16),
    key!("prometheus_enabled", Kind::Bool, false),
    key!("prometheus_push_gateway", Kind::OptionalText, null),
    key!("prometheus_push_interval", Kind::Int, 60),
    key!("promtail_enabled", Kind::Bool, false),
    key!("promtail_port", Kind::Int, 5238),
    key!("vcenter_server", Kind::Text, ""),
    key!("vcenter_username", Kind::Text, ""),
    key!("vcenter_password", Kind::Text, ""),
    key!("vcenter_datacenter", Kind::Text, ""),
    key!("hardware_sync_interval", Kind::Text, "15m"),
    key!(
        "tls_cert_expiration_notification_enabled",
        Kind::Bool,
        false
    ),
    key!("tls_cert_expiration_notification_interval", Kind::Int, 30),
    key!("session_length", Kind::Int, 1_209_600),
    key!("auto_vlan_creation", Kind::Bool, true),
    key!("force_v1_network_yaml", Kind::Bool, false),
    key!("enable_analytics", Kind::Bool, true),
    key!("allow_only_trusted_transfers", Kind::Bool, false),
    key!(
        "main_archive",
        Kind::Text,
        "http://archive.ubuntu.com/ubuntu"
    ),
    key!(
        "ports_archive",
        Kind::Text,
        "http://ports.ubuntu.com/ubuntu-ports"
    ),
];

fn lookup(name: &str) -> Option<&'static Key> {
    // `ntp_server` is MAAS's accepted alias for `ntp_servers`.
    let name = if name == "ntp_server" {
        "ntp_servers"
    } else {
        name
    };
    KEYS.iter().find(|k| k.name == name)
}

/// The current value of `name`, JSON-encoded as `get_config` returns it.
pub async fn get(store: &dyn Store, name: &str) -> ServiceResult<Value> {
    let key = lookup(name).ok_or_else(|| {
        ServiceError::bad_request(format!("No such configuration setting: {name}"))
    })?;
    match store.config_value(key.name).await? {
        Some(text) => serde_json::from_str(&text).map_err(|_| {
            ServiceError::Store(maas_store::StoreError::InvalidData {
                what: format!("configuration value {name}"),
            })
        }),
        None => Ok((key.default)()),
    }
}

/// Validates `value` (as sent: text) for `name` and stores it.
pub async fn set(store: &dyn Store, name: &str, value: &str) -> ServiceResult<()> {
    let key = lookup(name).ok_or_else(|| {
        ServiceError::field(
            "name",
            format!("Select a valid choice. {name} is not one of the available choices."),
        )
    })?;
    let invalid = |why: String| ServiceError::field(key.name, why);
    let json = match key.kind {
        Kind::Text => Value::String(value.to_owned()),
        Kind::OptionalText => {
            if value.is_empty() {
                Value::Null
            } else {
                Value::String(value.to_owned())
            }
        }
        Kind::Bool => Value::Bool(
            maas_domain::parse_bool(value)
                .map_err(|_| invalid(format!("'{value}' value must be either True or False.")))?,
        ),
        Kind::Int => {
            let number: i64 = value
                .trim()
                .parse()
                .map_err(|_| invalid("Enter a whole number.".to_owned()))?;
            Value::from(number)
        }
        Kind::Choice(choices) => {
            if !choices.contains(&value) {
                return Err(invalid(format!(
                    "Select a valid choice. {value} is not one of the available choices."
                )));
            }
            Value::String(value.to_owned())
        }
    };
    store.set_config_value(key.name, &json.to_string()).await?;
    tracing::info!(name = key.name, "configuration changed");
    Ok(())
}

/// Sets several keys at once, as a settings form submits them: an admin
/// only; every value is validated as [`set`] validates it, and nothing is
/// stored unless all are valid (the errors name each bad key). Keys whose
/// value is unchanged are not written. Returns how many were written.
pub async fn set_many(
    store: &dyn Store,
    caller: &maas_store::User,
    values: &[(String, String)],
) -> ServiceResult<usize> {
    if !caller.is_superuser {
        return Err(ServiceError::admin_only());
    }
    let mut errors = crate::error::FieldErrors::new();
    for (name, value) in values {
        if let Err(error) = validate(name, value) {
            match error {
                ServiceError::Validation(map) => {
                    for (field, messages) in map {
                        for message in messages {
                            errors.add(&field, message);
                        }
                    }
                }
                other => return Err(other),
            }
        }
    }
    errors.check()?;
    let mut written = 0;
    for (name, value) in values {
        let current = get(store, name).await?;
        if current != validate(name, value)? {
            set(store, name, value).await?;
            written += 1;
        }
    }
    Ok(written)
}

/// The JSON value `set` would store for `value`, or its field error.
fn validate(name: &str, value: &str) -> ServiceResult<Value> {
    let key = lookup(name).ok_or_else(|| {
        ServiceError::field(
            name,
            format!("Select a valid choice. {name} is not one of the available choices."),
        )
    })?;
    let invalid = |why: String| ServiceError::field(key.name, why);
    Ok(match key.kind {
        Kind::Text => Value::String(value.to_owned()),
        Kind::OptionalText if value.is_empty() => Value::Null,
        Kind::OptionalText => Value::String(value.to_owned()),
        Kind::Bool => Value::Bool(
            maas_domain::parse_bool(value)
                .map_err(|_| invalid(format!("'{value}' value must be either True or False.")))?,
        ),
        Kind::Int => Value::from(
            value
                .trim()
                .parse::<i64>()
                .map_err(|_| invalid("Enter a whole number.".to_owned()))?,
        ),
        Kind::Choice(choices) => {
            if !choices.contains(&value) {
                return Err(invalid(format!(
                    "Select a valid choice. {value} is not one of the available choices."
                )));
            }
            Value::String(value.to_owned())
        }
    })
}

/// The kind of a known key, for forms.
pub fn kind(name: &str) -> Option<Kind> {
    lookup(name).map(|k| k.kind)
}
