//! The rack controller library: the DHCPv4, TFTP and HTTP boot servers that get machines
//! booted, behind one [`BootBackend`] that says what to serve.
//!
//! Each server follows the same shape: socket loop, a pure wire crate to decode, a decision
//! (the DHCP lease engine, the boot policy, the backend), the wire crate to encode, the socket.
//! Entry points: [`DhcpServer::bind`], [`TftpServer::bind`], [`HttpServer::bind`], each then
//! `run(shutdown)`. Listening addresses and ports are always arguments.
//!
//! Boot images the rack does not hold come from [`ImageCache`], which fetches them from the
//! region by sha256 over HTTP. Otherwise this crate does not talk to the region (the region
//! link implements [`BootBackend`]), install boot loaders, or parse command lines and
//! environment.

pub mod backend;
pub mod boot_files;
pub mod dhcp;
pub mod file_backend;
pub mod http;
pub mod image_cache;
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
pub use tftp::{TftpConfig, TftpError, TftpServer, TftpStats};
