//! Simplestreams v3 as MAAS's image streams (`ephemeral-v3`) shape it: the index and
//! product-list documents, boot source selections, and the plan of what to import (the
//! newest complete version of every selected product, and which files are missing).
//!
//! Pure: no network, files, clock or environment. Fetching, signature checking (behind
//! [`SignatureVerifier`]) and storing are the importer's (`maas-images`). Untrusted documents
//! never panic: parsers return errors, and a malformed item is set aside and reported
//! instead of voiding the whole document.
#![forbid(unsafe_code)]

pub mod clearsign;
pub mod document;
pub mod location;
pub mod plan;
pub mod selection;
pub mod types;
pub mod verify;

pub use clearsign::{ClearsignError, Clearsigned, is_clearsigned, parse_clearsigned};
pub use document::{
    Attributes, DocumentError, EntryError, INDEX_FORMAT, Index, IndexEntry, InvalidItem, Item,
    PRODUCTS_FORMAT, Product, ProductList, Version,
};
pub use location::{DEFAULT_INDEX, LocationError, StreamLocation};
pub use plan::{
    Download, Plan, PlannedFile, PlannedResource, ProductKind, SkipReason, Skipped, SourceProducts,
    plan,
};
pub use selection::{ANY, BootloaderSelection, Selection};
pub use types::{FileType, Sha256, Sha256Error, StreamPath, StreamPathError};
pub use verify::{
    OpenError, SignatureVerifier, Signing, Trust, VerifyError, needs_detached_signature,
    open_document,
};
