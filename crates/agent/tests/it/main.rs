//! Integration tests of the agent: one test binary, one module per area.

mod boot;
mod disk;
mod flows;
mod inventory;
mod peer;
