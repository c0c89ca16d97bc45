//! Domain types shared by the region and the rack: identifiers, node statuses,
//! and value types that can only be built through checked constructors.
//!
//! This crate does no I/O: no sockets, no files, no clock, no environment.
//! Randomness comes in as an argument (see [`SystemId::from_random`]).
//! Wire formats of the REST API live in `maas-api-types`, not here.

#![forbid(unsafe_code)]

pub mod ids;
pub mod lifecycle;
pub mod net;
pub mod status;
pub mod values;

pub use ids::{MacAddress, SystemId};
pub use net::Cidr;
pub use status::{NodeStatus, NodeType, PowerState, SimpleStatus};
pub use values::{Hostname, ValueError, parse_bool, parse_size};
