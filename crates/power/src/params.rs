//! MAAS's flat `power_parameters` map and the checked reads drivers make
//! from it while building their typed settings.

use std::collections::BTreeMap;

use crate::error::PowerError;
use crate::secret::Secret;

/// A node's `power_parameters` as MAAS stores them: keys such as
/// `power_address` and `power_user` mapped to strings.
///
/// `Debug` shows the keys only, because some values are secrets.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PowerParameters(BTreeMap<String, String>);

impl PowerParameters {
    pub fn new() -> PowerParameters {
        PowerParameters::default()
    }

    /// Builds the map from a JSON object as found in MAAS's database and
    /// API: strings are kept, numbers and booleans are written out, lists
    /// (such as `workaround_flags`) are joined with commas, null is empty.
    /// Anything but an object gives an empty map.
    pub fn from_json(value: &serde_json::Value) -> PowerParameters {
        fn flat(value: &serde_json::Value) -> String {
            match value {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Null => String::new(),
                serde_json::Value::Array(items) => {
                    items.iter().map(flat).collect::<Vec<_>>().join(",")
                }
                other => other.to_string(),
            }
        }
        let map = match value {
            serde_json::Value::Object(object) => object
                .iter()
                .map(|(key, value)| (key.clone(), flat(value)))
                .collect(),
            _ => BTreeMap::new(),
        };
        PowerParameters(map)
    }

    pub fn with(mut self, key: &str, value: &str) -> PowerParameters {
        self.insert(key, value);
        self
    }

    pub fn insert(&mut self, key: &str, value: &str) {
        self.0.insert(key.to_owned(), value.to_owned());
    }

    /// The value, or `None` when the key is absent.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for PowerParameters {
    fn from_iter<T: IntoIterator<Item = (K, V)>>(iter: T) -> PowerParameters {
        PowerParameters(
            iter.into_iter()
                .map(|(key, value)| (key.into(), value.into()))
                .collect(),
        )
    }
}

impl std::fmt::Debug for PowerParameters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// Reads one driver's settings, turning absent or malformed values into
/// [`PowerError::MissingSetting`] and [`PowerError::InvalidSetting`].
pub(crate) struct SettingsReader<'a> {
    pub(crate) power_type: &'static str,
    params: &'a PowerParameters,
}

impl<'a> SettingsReader<'a> {
    pub(crate) fn new(power_type: &'static str, params: &'a PowerParameters) -> SettingsReader<'a> {
        SettingsReader { power_type, params }
    }

    /// The trimmed value, or `None` when absent or blank: MAAS stores unset
    /// optional settings as empty strings.
    pub(crate) fn optional(&self, key: &str) -> Option<&'a str> {
        self.params
            .get(key)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    }

    pub(crate) fn required(&self, key: &'static str) -> Result<&'a str, PowerError> {
        self.optional(key).ok_or(PowerError::MissingSetting {
            power_type: self.power_type,
            key,
        })
    }

    /// A secret is taken as given (not trimmed: spaces may be part of it).
    pub(crate) fn secret(&self, key: &str) -> Secret {
        Secret::new(self.params.get(key).unwrap_or_default())
    }

    /// One of `choices` (compared case-insensitively, returned as spelled in
    /// `choices`), or `default` when unset.
    pub(crate) fn choice(
        &self,
        key: &'static str,
        choices: &[&'static str],
        default: &'static str,
    ) -> Result<&'static str, PowerError> {
        let Some(value) = self.optional(key) else {
            return Ok(default);
        };
        choices
            .iter()
            .copied()
            .find(|choice| choice.eq_ignore_ascii_case(value))
            .ok_or_else(|| {
                self.invalid(
                    key,
                    format!("{value:?} is not one of {}", choices.join(", ")),
                )
            })
    }

    pub(crate) fn invalid(&self, key: &'static str, reason: String) -> PowerError {
        PowerError::InvalidSetting {
            power_type: self.power_type,
            key,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_values_are_flattened() {
        let params = PowerParameters::from_json(&serde_json::json!({
            "power_address": "10.0.0.1",
            "cipher_suite_id": 17,
            "workaround_flags": ["opensesspriv", "authcap"],
            "k_g": null,
        }));
        assert_eq!(params.get("power_address"), Some("10.0.0.1"));
        assert_eq!(params.get("cipher_suite_id"), Some("17"));
        assert_eq!(params.get("workaround_flags"), Some("opensesspriv,authcap"));
        assert_eq!(params.get("k_g"), Some(""));
    }

    #[test]
    fn debug_hides_values() {
        let params = PowerParameters::new().with("power_pass", "hunter2");
        assert_eq!(format!("{params:?}"), "{\"power_pass\"}");
    }

    #[test]
    fn reader_errors() {
        let params = PowerParameters::new()
            .with("power_address", "  ")
            .with("privilege_level", "admin")
            .with("power_driver", "LAN_3");
        let reader = SettingsReader::new("ipmi", &params);
        assert!(matches!(
            reader.required("power_address"),
            Err(PowerError::MissingSetting {
                key: "power_address",
                ..
            })
        ));
        assert_eq!(
            reader
                .choice(
                    "privilege_level",
                    &["USER", "OPERATOR", "ADMIN"],
                    "OPERATOR"
                )
                .ok(),
            Some("ADMIN")
        );
        assert_eq!(
            reader.choice("cipher_suite_id", &["3", "17"], "3").ok(),
            Some("3")
        );
        let error = reader
            .choice("power_driver", &["LAN", "LAN_2_0"], "LAN_2_0")
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some(
                "invalid power setting power_driver for power type ipmi: \"LAN_3\" is not one of LAN, LAN_2_0"
            )
        );
    }
}
