//! Boot images on the region: the importer that mirrors what boot source selections ask for
//! from simplestreams mirrors (signatures verified with OpenPGP, every file's size and
//! sha256 checked, interrupted downloads resumed), the content-addressed store those files
//! live in (`<root>/<sha256>`), and custom uploads into the same store.
//!
//! Ports the region implements: [`BootResourceCatalog`] (its boot resource tables) and
//! [`ImportEventSink`] (its events). It calls [`Importer`] for `import`, `stop_import`,
//! `is_importing` and progress, and [`Uploads`] for `boot-resources create` and
//! `PUT upload_uri`. This crate does not serve HTTP, own database tables or schedule
//! imports; the region does.
#![forbid(unsafe_code)]

pub mod api_json;
pub mod catalog;
pub mod content_store;
pub mod events;
pub mod fetch;
pub mod importer;
pub mod source;
pub mod upload;
pub mod verifier;

pub use api_json::{
    BootResourceJson, FileJson, SetJson, SetsJson, resource_detail_json, resource_json,
    resource_uri,
};
pub use catalog::{
    BootFileEntry, BootResource, BootResourceCatalog, BootResourceFile, BootResourceSet,
    CatalogError, MemoryCatalog, NewBootResource, NewBootResourceFile, ResourceDetail,
    ResourceType, SetDetail, boot_files,
};
pub use content_store::{ContentStore, StoreError, hash_file, shortest_unique_prefixes};
pub use events::{ImportEvent, ImportEventSink, MemoryEvents, TracingEvents};
pub use fetch::{FetchConfig, FetchError};
pub use importer::{
    FileProgress, ImportError, ImportProgress, ImportReport, Importer, ImporterConfig, RetryPolicy,
    SourceError, error_chain,
};
pub use source::{BootSource, DEFAULT_KEYRING_FILENAME, DEFAULT_SOURCE_URL, Keyring};
pub use upload::{
    NewUpload, UnknownFileType, UploadDescription, UploadError, UploadFileType, UploadProgress,
    Uploads,
};
pub use verifier::{KeyringError, OpenPgpVerifier};
