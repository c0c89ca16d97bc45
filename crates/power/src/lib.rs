//! Power control for MAAS: the [`PowerDriver`] port that the region and the
//! rack program against, its [`PowerError`], the settings schemas behind
//! `describe_power_types`, driver lookup by MAAS power type, the drivers
//! themselves (`ipmi`, `redfish`, `virsh`, `webhook`, `manual`, and `fake`
//! for tests), and a [`poller`] that keeps many BMCs' states current.
//!
//! This crate does not decide when to power a machine on or off, does not
//! store power states and does not pick the rack that can reach a BMC: those
//! are the region's and the rack's jobs. It holds no global state except the
//! registry of `fake` BMCs used by tests.

#![forbid(unsafe_code)]
// Helpers shared by the drivers go unused when some drivers are compiled out.
#![cfg_attr(
    not(all(
        feature = "ipmi",
        feature = "redfish",
        feature = "virsh",
        feature = "webhook"
    )),
    allow(dead_code)
)]

mod driver;
pub mod drivers;
mod error;
mod lookup;
mod params;
pub mod poller;
mod schema;
mod secret;

pub use driver::{DriverOptions, PowerDriver, Timeouts};
pub use drivers::fake::FakeDriver;
pub use error::{PowerAction, PowerError, PowerErrorKind};
pub use lookup::{POWER_TYPES, driver, power_types};
pub use maas_domain::PowerState;
pub use params::PowerParameters;
pub use schema::{
    Capabilities, DriverType, FieldType, IpExtractor, PowerTypeSchema, Scope, SettingField,
};
pub use secret::Secret;
