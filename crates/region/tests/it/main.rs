//! The region's REST API driven in memory through the router, with requests
//! built exactly as the `maas` CLI builds them.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod agent;
mod support;
// maas-images' test plumbing: the signed test mirror and its loopback server.
#[allow(dead_code)]
#[path = "../../../images/tests/it/support.rs"]
mod mirror;

mod auth;
mod boot_resources;
mod browser;
mod dashboard;
mod describe;
mod dispatch;
mod lifecycle;
mod machines;
mod racks;
mod resources;
