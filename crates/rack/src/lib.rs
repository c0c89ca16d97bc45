//! The rack controller library: the DHCPv4, TFTP and HTTP boot servers that get machines
//! booted, behind one [`BootBackend`] that says what to serve.
//!
//! Each server follows the same shape: socket loop, a pure wire crate to decode, a decision
//! (the DHCP lease engine, the boot policy, the backend), the wire crate to encode, the socket.
//! Entry points: [`DhcpServer::bind`], [`TftpServer::bind`], [`HttpServer::bind`], each then
//! `run(shutdown)`. Listening addresses and ports are always arguments.
//!
//! Boot images the rack does not hold come from [`ImageCache`], which fetches them from the
//! region by sha256 over HTTP. [`RegionLink`] is the [`BootBackend`] that asks the region
//! over the region-rack link, and reports leases and the [`ServiceRegistry`]'s states to it.
//! This crate does not read the host's interfaces, install boot loaders, or parse command
//! lines, config files or environment; the `maas-rackd` daemon does.

pub mod backend;
pub mod boot_files;
pub mod dhcp;
pub mod file_backend;
pub mod http;
pub mod image_cache;
pub mod link;
pub mod services;
pub mod tftp;

pub use backend::{
    BackendError, BootBackend, BootRequest, BoxFuture, DhcpInterface, DhcpServiceConfig, Protocol,
};
pub use boot_files::{BootFiles, BootFilesConfig, FileRequest, OpenFile, ResolveError, Resolved};
pub use dhcp::{DhcpError, DhcpServer, DhcpServerConfig, DhcpStats, LeaseView};
pub use file_backend::{FileBackend, FileBackendError};
pub use http::{HttpConfig, HttpError, HttpServer, HttpStats};
pub use image_cache::{
    ImageCache, ImageCacheConfig, ImageCacheError, ImageCacheStats, ImageManifest, ImageSource,
    ImageSourceError, ManifestError, ManifestFile, RegionHttpSource,
};
pub use link::{InterfaceSource, LinkTiming, RegionLink, RegionLinkConfig, RegionLinkError};
pub use services::{ServiceRegistry, ServiceStatus};
pub use tftp::{TftpConfig, TftpError, TftpServer, TftpStats};
