//! JSON shapes of the MAAS-compatible REST API, as serde structs that borrow
//! from the region's records, so a listing serialises without building a
//! tree of values first.
//!
//! Field names and types are MAAS's (see `../shared/reference/api.md`).
//! This crate knows no storage and no business rules: the region fills the
//! structs. [`pretty`] writes JSON indented as MAAS writes it.

#![forbid(unsafe_code)]

pub mod objects;
pub mod pretty;

pub use objects::*;
