//! The region's REST API driven in memory through the router, with requests
//! built exactly as the `maas` CLI builds them.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod agent;
mod support;

mod auth;
mod browser;
mod dashboard;
mod describe;
mod dispatch;
mod lifecycle;
mod machines;
mod resources;
