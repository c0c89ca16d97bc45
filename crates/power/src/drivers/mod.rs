//! The drivers, one module each, each behind its Cargo feature except
//! `fake` and `manual`.

pub mod fake;
pub mod manual;

#[cfg(feature = "http")]
pub(crate) mod http;
#[cfg(feature = "ipmi")]
pub mod ipmi;
#[cfg(feature = "redfish")]
pub mod redfish;
#[cfg(feature = "virsh")]
pub mod virsh;
#[cfg(feature = "webhook")]
pub mod webhook;
