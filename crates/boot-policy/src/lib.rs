//! What a booting machine is given: its boot method and DHCP boot file, and the iPXE,
//! PXELINUX or GRUB config text for the region's decision.
//!
//! Pure functions only: no sockets, files, clock or environment. Deciding the purpose
//! (commissioning, deploy, local, ...) is the region's job; this crate renders it.
//! Rendered text follows the provisioning reference (§3.1-§3.6) and is pinned by golden
//! files in `tests/golden/`.
#![forbid(unsafe_code)]

pub mod method;
pub mod params;
pub mod paths;
pub mod render;

use thiserror::Error;

pub use method::{BootMethod, DhcpBoot, HttpBase};
pub use params::{BootParams, Purpose};
pub use paths::{ConfigRequest, Loader, Lookup, normalise};
pub use render::{Transport, grub_preloader, ipxe_preloader, render};

#[derive(Debug, Error, PartialEq, Eq)]
pub enum BootPolicyError {
    #[error(
        "boot purpose {purpose:?} is not one of commissioning, enlist, xinstall, local, rescue, poweroff"
    )]
    UnknownPurpose { purpose: String },
}
