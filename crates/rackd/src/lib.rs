//! The rack controller daemon: reads the rack's configuration and data directory, discovers
//! the host's interfaces, assembles the boot loader root from the installed Debian
//! packages, and runs [`maas_rack`]'s region link and DHCP, TFTP and HTTP boot servers
//! (see [`run`], which an all-in-one `maas start` can call in-process).
//!
//! Protocol and policy live in `maas-rack` and below; this crate is the layer that touches
//! the operating system (sysfs, `getifaddrs`, `/usr/lib`) and the command line.

pub mod cli;
pub mod config;
pub mod daemon;
pub mod images;
pub mod interfaces;
pub mod loaders;
pub mod register;

pub use config::{FileConfig, RackConfig};
pub use daemon::{Bound, Rack, run, start};
pub use maas_rpc::Secret;
pub use register::register;

/// `error: cause: cause`.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
