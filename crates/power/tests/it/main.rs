//! Integration tests of maas-power against BMC emulators written by others,
//! started by each test on loopback high ports. A test whose prerequisite
//! is missing says so loudly and skips, except under CI=true.

mod support;

#[cfg(feature = "ipmi")]
mod ipmi;
