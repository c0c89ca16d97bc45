//! Driver lookup: one function matching on the MAAS power type.

use std::sync::Arc;

use crate::driver::{DriverOptions, PowerDriver};
use crate::drivers::{fake, manual};
use crate::error::PowerError;
use crate::params::PowerParameters;
use crate::schema::PowerTypeSchema;

/// The MAAS power types this crate implements, whether or not this build
/// includes them (see [`power_types`] for the built ones).
pub const POWER_TYPES: [&str; 5] = ["ipmi", "redfish", "virsh", "webhook", "manual"];

/// Builds the driver for `power_type` from a node's `power_parameters`,
/// checking every setting it needs. `fake` is always available; it is a
/// test double registered by `power_address` (see [`crate::FakeDriver`]).
pub fn driver(
    power_type: &str,
    params: &PowerParameters,
    options: &DriverOptions,
) -> Result<Arc<dyn PowerDriver>, PowerError> {
    let _ = (params, options);
    match power_type {
        fake::NAME => Ok(Arc::new(fake::FakeDriver::from_parameters(params))),
        manual::NAME => Ok(Arc::new(manual::ManualDriver::new(options))),
        #[cfg(feature = "ipmi")]
        "ipmi" => {
            use crate::drivers::ipmi::{IpmiDriver, IpmiSettings};
            Ok(Arc::new(IpmiDriver::new(
                IpmiSettings::from_parameters(params)?,
                options,
            )))
        }
        #[cfg(feature = "redfish")]
        "redfish" => {
            use crate::drivers::redfish::{RedfishDriver, RedfishSettings};
            Ok(Arc::new(RedfishDriver::new(
                RedfishSettings::from_parameters(params)?,
                options,
            )?))
        }
        #[cfg(feature = "virsh")]
        "virsh" => {
            use crate::drivers::virsh::{VirshDriver, VirshSettings};
            Ok(Arc::new(VirshDriver::new(
                VirshSettings::from_parameters(params)?,
                options,
            )))
        }
        #[cfg(feature = "webhook")]
        "webhook" => {
            use crate::drivers::webhook::{WebhookDriver, WebhookSettings};
            Ok(Arc::new(WebhookDriver::new(
                WebhookSettings::from_parameters(params)?,
                options,
            )?))
        }
        other => match POWER_TYPES.iter().find(|name| **name == other) {
            Some(name) => Err(PowerError::DriverNotBuilt {
                power_type: name,
                feature: name,
            }),
            None => Err(PowerError::UnknownPowerType {
                power_type: other.to_owned(),
            }),
        },
    }
}

/// The schemas of every driver in this build, in MAAS's order: what
/// `GET rackcontrollers/?op=describe_power_types` returns.
// Built up push by push because each driver may be compiled out.
#[allow(clippy::vec_init_then_push)]
pub fn power_types() -> Vec<PowerTypeSchema> {
    let mut schemas = Vec::new();
    #[cfg(feature = "ipmi")]
    schemas.push(crate::drivers::ipmi::schema());
    schemas.push(manual::schema());
    #[cfg(feature = "redfish")]
    schemas.push(crate::drivers::redfish::schema());
    #[cfg(feature = "virsh")]
    schemas.push(crate::drivers::virsh::schema());
    #[cfg(feature = "webhook")]
    schemas.push(crate::drivers::webhook::schema());
    schemas
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_fake() {
        let options = DriverOptions::default();
        let params = PowerParameters::new();
        assert!(matches!(
            driver("nonsense", &params, &options),
            Err(PowerError::UnknownPowerType { .. })
        ));
        assert_eq!(
            driver("fake", &params, &options)
                .map(|d| d.power_type())
                .ok(),
            Some("fake")
        );
        assert_eq!(
            driver("manual", &params, &options)
                .map(|d| d.capabilities().queryable)
                .ok(),
            Some(false)
        );
    }

    #[test]
    fn every_built_type_has_a_schema_and_a_driver() {
        let names: Vec<&str> = power_types().iter().map(|schema| schema.name).collect();
        for name in &names {
            assert!(POWER_TYPES.contains(name), "{name}");
            // With no settings, a driver either needs none or names the
            // first missing one: never an unknown-type error.
            match driver(name, &PowerParameters::new(), &DriverOptions::default()) {
                Ok(_) | Err(PowerError::MissingSetting { .. }) => {}
                Err(other) => panic!("{name}: {other}"),
            }
        }
        let json = serde_json::to_value(power_types()).unwrap_or_default();
        let first = &json[0];
        assert_eq!(first["driver_type"], "power");
        assert!(
            first["fields"]
                .as_array()
                .is_some_and(|fields| !fields.is_empty())
                || first["name"] == "manual"
        );
    }
}
