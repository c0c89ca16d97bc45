//! Integration tests of the agent: one test binary, one module per area.

mod inventory;
