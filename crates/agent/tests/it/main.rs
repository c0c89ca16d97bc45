//! Integration tests of the agent: one test binary, one module per area.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] functions unwrap too

mod boot;
mod disk;
mod flows;
mod inventory;
mod peer;
