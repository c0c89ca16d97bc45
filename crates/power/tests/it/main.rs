//! Integration tests of maas-power against BMC emulators written by others,
//! started by each test on loopback high ports. A test whose prerequisite
//! is missing says so loudly and skips, except under CI=true.

// Test helpers go unused when some drivers are compiled out.
#![cfg_attr(
    not(all(
        feature = "ipmi",
        feature = "redfish",
        feature = "virsh",
        feature = "webhook"
    )),
    allow(dead_code, unused_imports)
)]

mod support;

mod dead;
#[cfg(feature = "webhook")]
mod http_peer;
#[cfg(feature = "ipmi")]
mod ipmi;
#[cfg(all(feature = "webhook", feature = "ipmi"))]
mod poller;
#[cfg(feature = "redfish")]
mod redfish;
#[cfg(all(
    feature = "ipmi",
    feature = "redfish",
    feature = "virsh",
    feature = "webhook"
))]
mod schema;
#[cfg(feature = "virsh")]
mod virsh;
#[cfg(feature = "webhook")]
mod webhook;
