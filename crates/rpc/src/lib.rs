//! The region-rack link. A rack dials the region's HTTP port and upgrades the connection
//! (`Upgrade: maas-rack-link/1` on `/MAAS/rpc/link`); both sides then prove they hold the
//! region's shared secret (HMAC-SHA256 over fresh nonces from each side) before anything
//! else is said. After that, frames (4-byte length, JSON) carry calls with ids and their
//! replies in both directions, and one-way pushes from the region (DHCP configuration).
//!
//! This is our own protocol, not MAAS's AMP: MAAS racks and regions never talk to ours, and
//! the messages mirror the MAAS commands they replace (`RegisterRackController`,
//! `GetBootConfig`, `UpdateLeases`, `UpdateServices`, `ConfigureDHCPv4`).

pub mod auth;
pub mod codec;
pub mod messages;
pub mod transport;

pub use auth::{Secret, SecretError};
pub use messages::*;
pub use transport::{
    BoxFuture, Handler, LinkError, Peer, dial, rack_handshake, region_handshake, run,
};
